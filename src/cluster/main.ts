/**
 * An mgmtd process with plain flags (tests and benches spawn it; `millpond mgmtd` is the
 * deployment command, src/cli/roles.ts):
 *   node --import tsx src/cluster/main.ts --db <sqlite file> --listen tcp://127.0.0.1:0
 *   node --import tsx src/cluster/main.ts --backend postgres --pg-url <url> --listen tcp://...
 * Options (ms): --heartbeat-timeout-ms, --lease-ms, --lease-poll-ms, --liveness-check-ms,
 * --move-step-timeout-ms, --move-retry-window-ms;
 * --secret-file <cluster.secret> (authentication on; every real deployment);
 * --metrics-listen H:P (Prometheus /metrics, admin token as bearer; needs --secret-file).
 * Prints "listening <endpoint>", then "primary" whenever it becomes primary and "standby" when
 * it steps down. SIGTERM/SIGINT close it cleanly (a primary gives its lease up).
 */
import { parseArgs } from 'node:util';
import { ClusterAuth } from '../auth/credentials.js';
import { openKv, serveUntilSignal, startMgmtdRole } from '../cli/role-services.js';
import { roleFlags } from '../cli/role-flags.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'sqlite' },
    db: { type: 'string' },
    'pg-url': { type: 'string' },
    listen: { type: 'string', default: 'tcp://127.0.0.1:0' },
    'heartbeat-timeout-ms': { type: 'string' },
    'lease-ms': { type: 'string' },
    'lease-poll-ms': { type: 'string' },
    'liveness-check-ms': { type: 'string' },
    'move-step-timeout-ms': { type: 'string' },
    'move-retry-window-ms': { type: 'string' },
    'secret-file': { type: 'string' },
    'metrics-listen': { type: 'string' },
  },
});
const flags = roleFlags('mgmtd', values);

await flags.run(async () => startMgmtdRole(await openKv(flags.kvChoice()), {
  listen: values.listen!,
  auth: values['secret-file'] ? ClusterAuth.load(values['secret-file']) : undefined,
  metricsListen: values['metrics-listen'],
  heartbeatTimeoutMs: flags.positiveInt('heartbeat-timeout-ms'),
  leaseMs: flags.positiveInt('lease-ms'),
  leasePollMs: flags.positiveInt('lease-poll-ms'),
  livenessCheckMs: flags.positiveInt('liveness-check-ms'),
  moveStepTimeoutMs: flags.positiveInt('move-step-timeout-ms'),
  moveRetryWindowMs: flags.positiveInt('move-retry-window-ms'),
}));
