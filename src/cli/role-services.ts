/**
 * A server role once its options are known: what `millpond mgmtd|meta|storage` (roles.ts:
 * options from cluster.json and flags) and the plain per-role entry points that tests and
 * benches spawn (src/{cluster,meta,storage}/main.ts: flags only) both run. Each start prints
 * what its callers parse ("primary"/"standby", "target <id> <dataAddress> <dir>", "metrics <url>")
 * and returns the endpoint to advertise and a stop that releases everything it opened.
 */
import { ClusterAuth, readTokenFile } from '../auth/credentials.js';
import { parseToken, tokenValid } from '../auth/keys.js';
import { MgmtdServer } from '../cluster/mgmtd-server.js';
import { MgmtdService, type MgmtdOptions } from '../cluster/mgmtd-service.js';
import { RoutingClient } from '../cluster/routing-client.js';
import { MillpondError } from '../errors.js';
import type { KvBackend } from '../kv/kv.js';
import { MetaServer } from '../meta/meta-server.js';
import { MetaService } from '../meta/meta-service.js';
import { PostgresKv } from '../kv/postgres-kv.js';
import { SqliteKv } from '../kv/sqlite-kv.js';
import { ensureAdmin } from '../meta/users.js';
import { serveMetricsFlag } from '../metrics/server.js';
import { StorageDaemon, type StorageDaemonOptions } from '../storage/daemon.js';
import { startGarbageCollector, trimChunks } from '../storage/garbage.js';

export type KvChoice =
  | { backend: 'sqlite'; db: string; synchronous?: 'full' | 'normal' }
  | { backend: 'postgres'; pgUrl: string };

export function openKv(choice: KvChoice): Promise<KvBackend> | KvBackend {
  return choice.backend === 'postgres'
    ? PostgresKv.open({ connectionString: choice.pgUrl })
    : new SqliteKv(choice.db, { synchronous: choice.synchronous ?? 'full' });
}

export interface RunningRole {
  /** The endpoint peers are told (the advertised one, else the bound one). */
  endpoint: string;
  stop(): Promise<void>;
}

interface CommonRoleOptions {
  listen: string;
  advertise?: string;
  /** The cluster's keys; without them the role authenticates nobody (tests, --insecure). */
  auth?: ClusterAuth;
  /** Serve Prometheus text at http://HOST:PORT/metrics (admin token as bearer). */
  metricsListen?: string;
}

/** mgmtd on `kv` (the role owns it from here: stop() closes it). */
export async function startMgmtdRole(kv: KvBackend, options: CommonRoleOptions & Omit<MgmtdOptions, 'address' | 'onRole'>): Promise<RunningRole> {
  const { listen, advertise, auth, metricsListen, ...service } = options;
  const server = await MgmtdServer.start(listen, (bound) => MgmtdService.start(kv, {
    ...service,
    address: advertise ?? bound,
    onRole: (primary) => console.log(primary ? 'primary' : 'standby'),
  }), { auth });
  await serveMetricsFlag(metricsListen, auth?.secret);
  return {
    endpoint: advertise ?? server.endpoint,
    stop: async () => {
      await server.close();
      await kv.close();
    },
  };
}

export interface MetaRoleOptions extends CommonRoleOptions {
  /** A token file of uid 0 (millpond init writes one): listed as user admin's token. */
  adminTokenFile?: string;
  sessionTimeoutMs?: number;
  /**
   * mgmtd endpoints: meta then tells mgmtd which tokens to admit, collects unlinked files'
   * chunks and cuts shrunk files' chunks (without them a shrink leaves old bytes that reappear
   * when the file grows).
   */
  mgmtd?: string[];
}

/** A meta server on `kv` (the role owns it from here: stop() closes it). */
export async function startMetaRole(kv: KvBackend, options: MetaRoleOptions): Promise<RunningRole> {
  const { auth } = options;
  if (options.adminTokenFile) {
    if (!auth) throw new MillpondError('EINVAL', 'an admin token file needs the cluster secret');
    const token = parseToken(readTokenFile(options.adminTokenFile));
    if (token.uid !== 0 || !tokenValid(auth.secret, token)) throw new MillpondError('EAUTH', `${options.adminTokenFile} holds no admin token of this cluster`);
    await ensureAdmin(kv, token.tokenId);
  }
  const service = await MetaService.open(kv, { sessionTimeoutMs: options.sessionTimeoutMs, ...(auth ? { clusterSecret: auth.secret } : {}) });
  const server = await MetaServer.start(service, options.listen, { auth, mgmtd: options.mgmtd });
  // Removing and cutting chunks is chain-internal: a RoutingClient given the cluster's keys
  // presents a cluster service's node key to storage.
  const routing = options.mgmtd ? new RoutingClient({ mgmtd: options.mgmtd, cluster: auth }) : undefined;
  const collector = routing ? startGarbageCollector(service, routing) : undefined;
  if (routing) service.attachStorage({ trim: (inode, layout, length) => trimChunks(routing, inode, layout, length) });
  // New files record their chain table's current version (grown tables, cluster/admin-ops.ts).
  if (routing) service.attachChainTables({ current: (tableId) => routing.tableVersion(tableId) });
  await serveMetricsFlag(options.metricsListen, auth?.secret);
  return {
    endpoint: options.advertise ?? server.endpoint,
    stop: async () => {
      await collector?.stop();
      await server.close();
      routing?.close();
      service.stop();
      await kv.close();
    },
  };
}

/** A storage daemon; prints "target <id> <dataAddress> <dir>" per target. */
export async function startStorageRole(options: StorageDaemonOptions & { metricsListen?: string }): Promise<RunningRole> {
  const { metricsListen, ...daemonOptions } = options;
  const daemon = await StorageDaemon.start(daemonOptions);
  for (const t of options.targets) console.log(`target ${t.targetId} ${daemon.dataAddress(t.targetId)} ${t.dir}`);
  await serveMetricsFlag(metricsListen, options.auth?.secret);
  return { endpoint: daemon.controlAddress, stop: () => daemon.stop() };
}

/** Prints "listening <endpoint>", serves until SIGINT or SIGTERM, then stops the role. */
export async function serveUntilSignal(role: RunningRole): Promise<void> {
  console.log(`listening ${role.endpoint}`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await role.stop();
}
