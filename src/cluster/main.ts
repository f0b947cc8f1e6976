/**
 * An mgmtd process:
 *   node --import tsx src/cluster/main.ts --db <sqlite file> --listen tcp://127.0.0.1:0
 *   node --import tsx src/cluster/main.ts --backend postgres --pg-url <url> --listen tcp://...
 * Options (ms): --heartbeat-timeout-ms, --lease-ms, --lease-poll-ms, --liveness-check-ms,
 * --move-step-timeout-ms, --move-retry-window-ms;
 * --secret-file <cluster.secret> (authentication on; every real deployment).
 * Prints "listening <endpoint>", then "primary" whenever it becomes primary and "standby" when
 * it steps down. SIGTERM/SIGINT close it cleanly (a primary gives its lease up).
 */
import { serveMetricsFlag } from '../metrics/server.js';
import { parseArgs } from 'node:util';
import { ClusterAuth } from '../auth/credentials.js';
import type { KvBackend } from '../meta/kv.js';
import { PostgresKv } from '../meta/postgres-kv.js';
import { SqliteKv } from '../meta/sqlite-kv.js';
import { MgmtdServer } from './mgmtd-server.js';
import { MgmtdService } from './mgmtd-service.js';
import { logger } from '../log.js';

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
    // A replica move's step timeout and its operation's retry window (admin-ops.ts; tests shorten them).
    'move-step-timeout-ms': { type: 'string' },
    'move-retry-window-ms': { type: 'string' },
    // The cluster secret (0600 file): CURVE, node proofs, tokens. Without it, no authentication.
    'secret-file': { type: 'string' },
    // Serve Prometheus metrics at http://HOST:PORT/metrics (admin token as bearer; needs --secret-file).
    'metrics-listen': { type: 'string' },
  },
});

function fail(message: string): never {
  logger('mgmtd').error(message);
  process.exit(2);
}

function ms(name: keyof typeof values): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isSafeInteger(n) || n < 1) fail(`--${name} must be a positive integer`);
  return n;
}

let kv: KvBackend;
if (values.backend === 'sqlite') {
  if (!values.db) fail('--db <file> is required with --backend sqlite');
  kv = new SqliteKv(values.db);
} else if (values.backend === 'postgres') {
  const url = values['pg-url'] ?? process.env.MILLPOND_PG_URL;
  if (!url) fail('--pg-url <url> (or MILLPOND_PG_URL) is required with --backend postgres');
  kv = await PostgresKv.open({ connectionString: url });
} else {
  fail(`unknown backend ${values.backend}`);
}

const server = await MgmtdServer.start(values.listen!, (address) => MgmtdService.start(kv, {
  address,
  heartbeatTimeoutMs: ms('heartbeat-timeout-ms'),
  leaseMs: ms('lease-ms'),
  leasePollMs: ms('lease-poll-ms'),
  livenessCheckMs: ms('liveness-check-ms'),
  moveStepTimeoutMs: ms('move-step-timeout-ms'),
  moveRetryWindowMs: ms('move-retry-window-ms'),
  onRole: (primary) => console.log(primary ? 'primary' : 'standby'),
}), { auth: values['secret-file'] ? ClusterAuth.load(values['secret-file']) : undefined });
await serveMetricsFlag(values['metrics-listen'], values['secret-file'] ? ClusterAuth.load(values['secret-file']).secret : undefined).catch((err: Error) => fail(err.message));
console.log(`listening ${server.endpoint}`);

const shutdown = async () => {
  await server.close();
  await kv.close();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
