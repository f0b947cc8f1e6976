/**
 * The embedded default (design §1): mgmtd, meta on SQLite and three storage daemons with one
 * target each, under one data directory, chain length 3 — in this process. Everything else
 * is the same code with other addresses. Authentication is on: the cluster secret and an admin
 * token are made in <dataDir>/keys (0700; files 0600) at the first start and kept after.
 */
import { metricsLimits } from '../limits.js';
import { startMetricsServer } from '../metrics/server.js';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureClusterKeys } from '../auth/cluster-files.js';
import { parseToken } from '../auth/keys.js';
import { SERVICE_NODE_ID } from '../auth/data-plane.js';
import { ChunkClient } from '../chunk/chunk-client.js';
import { MgmtdClient } from '../cluster/mgmtd-client.js';
import { MgmtdServer } from '../cluster/mgmtd-server.js';
import { RoutingClient } from '../cluster/routing-client.js';
import { MgmtdService } from '../cluster/mgmtd-service.js';
import { MillpondError } from '../errors.js';
import { MetaServer } from '../meta/meta-server.js';
import { MetaService } from '../meta/meta-service.js';
import { SqliteKv } from '../kv/sqlite-kv.js';
import { ensureAdmin } from '../meta/users.js';
import type { TransportChoice } from '../native/binding.js';
import { StorageDaemon } from '../storage/daemon.js';
import { startGarbageCollector, trimChunks } from '../storage/garbage.js';

export interface EmbeddedOptions {
  dataDir: string;
  mgmtdListen: string;
  metaListen: string;
  host: string;
  transport: TransportChoice;
  /** Chains in chain table 1; files stripe over them. */
  chainCount: number;
  /** fdatasync every chunk version (the default); off for throwaway data. */
  syncWrites: boolean;
  /** Bytes each target may hold (0: the disk's limit). */
  capacityBytesPerTarget?: number;
  log?: (line: string) => void;
  /**
   * Off only for the benchmark's baseline: no keys, no CURVE, the request's user trusted, no
   * capabilities, unauthenticated data connections. On (the default), the cluster secret
   * keys the control plane and the data plane (design §10): meta hands out capabilities, the
   * data servers authenticate every connection and check them.
   */
  insecure?: boolean;
  /**
   * The cluster's encryptData flag: every TCP data connection is encrypted (the data servers
   * choose it in each connection's handshake, so clients need no setting). Not with insecure.
   */
  encryptData?: boolean;
  /** /metrics at HOST:PORT (metricsLimits.embeddedListenDefault when absent); 'off': none. Never when insecure. */
  metricsListen?: string;
}

export const STORAGE_NODES = 3;
const SERVING_WAIT_MS = 30_000;

export interface Embedded {
  mgmtd: string;
  meta: string;
  /** The CURVE server public key clients need (also in cluster.json). Empty when insecure. */
  serverKey: string;
  /** The admin token (also in <dataDir>/keys/admin.token). Empty when insecure. */
  adminToken: string;
  /** http://host:port/metrics (admin token as bearer), or '' when off. */
  metrics: string;
  stop(): Promise<void>;
}

export async function startEmbedded(o: EmbeddedOptions): Promise<Embedded> {
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(o.dataDir, 0o700); // databases and chunks are users' data: only this uid may reach them
  const stops: Array<() => Promise<void> | void> = [];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    if (o.insecure && o.encryptData) throw new TypeError('encryptData needs authentication (not insecure)');
    const keys = o.insecure ? undefined : ensureClusterKeys(o.dataDir);
    const auth = keys?.cluster;
    const metrics = keys && o.metricsListen !== 'off' ? await startMetricsServer(o.metricsListen ?? metricsLimits.embeddedListenDefault, keys.cluster.secret) : undefined;
    if (metrics) stops.push(() => metrics.close());
    const mgmtdKv = new SqliteKv(join(o.dataDir, 'mgmtd.db'));
    stops.push(() => mgmtdKv.close());
    const mgmtd = await MgmtdServer.start(o.mgmtdListen, (address) => MgmtdService.start(mgmtdKv, { address }), { auth, log: o.log });
    stops.push(() => mgmtd.close());
    const metaKv = new SqliteKv(join(o.dataDir, 'meta.db'));
    stops.push(() => metaKv.close());
    if (keys) await ensureAdmin(metaKv, parseToken(keys.adminToken).tokenId);
    const metaService = await MetaService.open(metaKv, auth ? { clusterSecret: auth.secret } : {});
    const meta = await MetaServer.start(metaService, o.metaListen, { auth, mgmtd: auth ? [mgmtd.endpoint] : undefined, log: o.log });
    stops.push(() => meta.close());
    const clientAuth = keys ? { token: keys.adminToken, serverKey: keys.cluster.server.publicKey } : undefined;

    const daemons: StorageDaemon[] = [];
    for (let node = 1; node <= STORAGE_NODES; node++) {
      const targetId = 100 + node;
      const dir = join(o.dataDir, `node-${node}`, `target-${targetId}`);
      mkdirSync(dir, { recursive: true });
      const daemon = await StorageDaemon.start({
        nodeId: node, mgmtd: [mgmtd.endpoint], targets: [{ targetId, dir, capacityBytes: o.capacityBytesPerTarget ?? 0 }], host: o.host,
        transport: o.transport, syncWrites: o.syncWrites, log: o.log, auth, encryptData: o.encryptData === true,
      });
      stops.push(() => daemon.stop());
      daemons.push(daemon);
    }

    const admin = new MgmtdClient([mgmtd.endpoint], { auth: clientAuth });
    stops.push(() => admin.close());
    await waitFor(async () => (await admin.status()).primary, 'mgmtd to become primary');
    try {
      await admin.createChainTable(1, { chainCount: o.chainCount, chainLength: STORAGE_NODES });
    } catch (err) {
      if (!(err instanceof MillpondError && err.code === 'EEXIST')) throw err; // a restart keeps its table
    }
    // Serving, and on the chains: a daemon that has not applied the routing with the chain
    // table yet answers a client's first writes ESTALE ("not on chain"), and they are retried.
    await waitFor(async () => {
      const r = await admin.getRouting();
      return 'targets' in r && r.targets.length === STORAGE_NODES && r.targets.every((t) => t.state === 'serving')
        && daemons.every((d) => d.status().appliedVersion >= r.version);
    }, 'every target to serve its chains');
    // Chunks of unlinked files go in the background, next to the metadata service.
    // Removing chunks is chain-internal: with a secret the collector presents a cluster service's key.
    const chunkClient = auth
      ? new ChunkClient({ credentials: { nodeId: SERVICE_NODE_ID, clusterSecret: auth.secret } }) : undefined;
    if (chunkClient) stops.push(() => chunkClient.close());
    const routing = new RoutingClient({ mgmtd: [mgmtd.endpoint], cluster: auth, ...(chunkClient ? { chunkClient } : {}) });
    stops.push(() => routing.close());
    const collector = startGarbageCollector(metaService, routing);
    metaService.attachStorage({ trim: (inode, layout, length) => trimChunks(routing, inode, layout, length) });
    metaService.attachChainTables({ current: (tableId) => routing.tableVersion(tableId) });
    stops.push(() => collector.stop());
    return { mgmtd: mgmtd.endpoint, meta: meta.endpoint, serverKey: keys?.cluster.server.publicKey ?? '', adminToken: keys?.adminToken ?? '', metrics: metrics?.url ?? '', stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + SERVING_WAIT_MS;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new MillpondError('ETIMEDOUT', `timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}
