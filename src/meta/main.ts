/**
 * A meta server process with plain flags (tests and benches spawn it; `millpond meta` is the
 * deployment command, src/cli/roles.ts):
 *   node --import tsx src/meta/main.ts --backend sqlite --db <file> --listen tcp://127.0.0.1:0
 *   node --import tsx src/meta/main.ts --backend postgres --pg-url <url> --listen tcp://...
 * Options: --synchronous full|normal (SQLite), --session-timeout-ms <ms>;
 * --mgmtd <endpoints> (also tell mgmtd which tokens to admit, collect unlinked files' chunks
 * and cut shrunk files' chunks); --secret-file <cluster.secret> (authentication on: CURVE,
 * tokens, users, data-plane capabilities); --admin-token-file <admin.token> (its token is the
 * admin user's); --metrics-listen H:P.
 * Prints "listening <endpoint>" once it serves; SIGTERM/SIGINT close it cleanly.
 */
import { parseArgs } from 'node:util';
import { ClusterAuth } from '../auth/credentials.js';
import { roleFlags } from '../cli/role-flags.js';
import { openKv, startMetaRole } from '../cli/role-services.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'sqlite' },
    db: { type: 'string' },
    'pg-url': { type: 'string' },
    listen: { type: 'string', default: 'tcp://127.0.0.1:0' },
    synchronous: { type: 'string', default: 'full' },
    mgmtd: { type: 'string' },
    'session-timeout-ms': { type: 'string' },
    'secret-file': { type: 'string' },
    'metrics-listen': { type: 'string' },
    'admin-token-file': { type: 'string' },
  },
});
const flags = roleFlags('meta', values);
if (values['admin-token-file'] && !values['secret-file']) flags.fail('--admin-token-file needs --secret-file');

await flags.run(async () => startMetaRole(await openKv(flags.kvChoice()), {
  listen: values.listen!,
  auth: values['secret-file'] ? ClusterAuth.load(values['secret-file']) : undefined,
  metricsListen: values['metrics-listen'],
  adminTokenFile: values['admin-token-file'],
  sessionTimeoutMs: flags.positiveInt('session-timeout-ms'),
  mgmtd: values.mgmtd?.split(',').filter(Boolean),
}));
