/**
 * A meta server process:
 *   node --import tsx src/meta/main.ts --backend sqlite --db <file> --listen tcp://127.0.0.1:0
 *   node --import tsx src/meta/main.ts --backend postgres --pg-url <url> --listen tcp://...
 * Options: --mgmtd <endpoints> (also collect unlinked files' chunks and cut shrunk files' chunks:
 * without it, a shrink leaves old bytes that reappear when the file grows; told which tokens to admit),
 * --session-timeout-ms <ms>, --secret-file <cluster.secret> (authentication on: CURVE, tokens,
 * users; open() hands out data-plane capabilities, and the chunk collector and trimmer
 * authenticate to storage as a cluster service), --admin-token-file <admin.token> (its token is
 * the admin user's).
 * Prints "listening <endpoint>" once it serves; SIGTERM/SIGINT close it cleanly.
 */
import { serveMetricsFlag } from '../metrics/server.js';
import { parseArgs } from 'node:util';
import { ClusterAuth, readTokenFile } from '../auth/credentials.js';
import { parseToken, tokenValid } from '../auth/keys.js';
import { ensureAdmin } from './users.js';
import type { KvBackend } from './kv.js';
import { MetaServer } from './meta-server.js';
import { MetaService } from './meta-service.js';
import { PostgresKv } from './postgres-kv.js';
import { SqliteKv } from './sqlite-kv.js';
import { RoutingClient } from '../cluster/routing-client.js';
import { startGarbageCollector, trimChunks } from '../storage/garbage.js';
import { SERVICE_NODE_ID } from '../auth/data-plane.js';
import { ChunkClient } from '../chunk/chunk-client.js';
import { logger } from '../log.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'sqlite' },
    db: { type: 'string' },
    'pg-url': { type: 'string' },
    listen: { type: 'string', default: 'tcp://127.0.0.1:0' },
    synchronous: { type: 'string', default: 'full' },
    // With mgmtd endpoints, this process also removes the chunks of unlinked files.
    mgmtd: { type: 'string' },
    // How long a client with write sessions may be quiet before they end (tests shorten it).
    'session-timeout-ms': { type: 'string' },
    // The cluster secret (0600 file): CURVE, tokens, users, capabilities. Without it, no authentication.
    'secret-file': { type: 'string' },
    // Serve Prometheus metrics at http://HOST:PORT/metrics (admin token as bearer; needs --secret-file).
    'metrics-listen': { type: 'string' },
    // A token file of uid 0 (millpond init writes one): its token is listed for user admin.
    'admin-token-file': { type: 'string' },
  },
});

function fail(message: string): never {
  logger('meta').error(message);
  process.exit(2);
}

let kv: KvBackend;
if (values.backend === 'sqlite') {
  if (!values.db) fail('--db <file> is required with --backend sqlite');
  if (values.synchronous !== 'full' && values.synchronous !== 'normal') fail('--synchronous must be full or normal');
  kv = new SqliteKv(values.db, { synchronous: values.synchronous });
} else if (values.backend === 'postgres') {
  const url = values['pg-url'] ?? process.env.MILLPOND_PG_URL;
  if (!url) fail('--pg-url <url> (or MILLPOND_PG_URL) is required with --backend postgres');
  kv = await PostgresKv.open({ connectionString: url });
} else {
  fail(`unknown backend ${values.backend}`);
}

const sessionTimeoutMs = values['session-timeout-ms'] === undefined ? undefined : Number(values['session-timeout-ms']);
if (sessionTimeoutMs !== undefined && !(Number.isSafeInteger(sessionTimeoutMs) && sessionTimeoutMs > 0)) fail('--session-timeout-ms must be a positive integer');
const auth = values['secret-file'] ? ClusterAuth.load(values['secret-file']) : undefined;
const service = await MetaService.open(kv, { sessionTimeoutMs, ...(auth ? { clusterSecret: auth.secret } : {}) });
if (values['admin-token-file']) {
  if (!auth) fail('--admin-token-file needs --secret-file');
  const token = parseToken(readTokenFile(values['admin-token-file']));
  if (token.uid !== 0 || !tokenValid(auth.secret, token)) fail(`${values['admin-token-file']} holds no admin token of this cluster`);
  await ensureAdmin(kv, token.tokenId);
}
const mgmtd = values.mgmtd?.split(',').filter(Boolean);
const server = await MetaServer.start(service, values.listen!, { auth, mgmtd });
if (mgmtd) {
  // Removing and cutting chunks is chain-internal: with a secret, meta presents a cluster service's node key.
  const chunkClient = auth ? new ChunkClient({ credentials: { nodeId: SERVICE_NODE_ID, clusterSecret: auth.secret } }) : undefined;
  const routing = new RoutingClient({ mgmtd, cluster: auth, ...(chunkClient ? { chunkClient } : {}) });
  startGarbageCollector(service, routing);
  service.attachStorage({ trim: (inode, layout, length) => trimChunks(routing, inode, layout, length) });
}
await serveMetricsFlag(values['metrics-listen'], auth?.secret).catch((err: Error) => fail(err.message));
console.log(`listening ${server.endpoint}`);

const shutdown = async () => {
  await server.close();
  service.stop();
  await kv.close();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
