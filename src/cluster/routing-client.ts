/**
 * RoutingClient: a cache of mgmtd's routing, and chunk I/O by chain for the daemons' own few
 * chunk operations (cutting a shrunk file's last chunk) and for tests at chunk level. Files'
 * bytes move through the native client (native/client/file_client.h, under the FileSystem,
 * the DuckDB extension and the mount), which also hedges reads around a paused replica and
 * follows a replaced head at once; this one only retries.
 * The cache refreshes in the background when it is older than `pollMs` at use, and at once
 * on ESTALE or a dead replica. writeChunk() enters at the chain's head and retries (same
 * clientId and requestId, so the head applies a retried write once) on stale routing and
 * connection errors until `writeRetryMs` passes; readChunk() reads any serving replica, never
 * a syncing one. Both pass the file's data-plane `capability` (from meta's open) along.
 */
import { randomInt } from 'node:crypto';
import { SERVICE_NODE_ID } from '../auth/data-plane.js';
import { ChunkClient } from '../chunk/chunk-client.js';
import type { ChunkWriteOptions } from '../chunk/chunk-store.js';
import { MillpondError } from '../errors.js';
import { clusterLimits } from '../limits.js';
import type { ChunkId, ChunkMeta } from '../native/binding.js';
import { MgmtdClient, type MgmtdClientOptions } from './mgmtd-client.js';
import { dataPath, type ChainRecord, type Routing, type TargetRecord } from '../protocol/mgmtd-types.js';

export interface RoutingClientOptions {
  /** mgmtd addresses, or a client to share. */
  mgmtd: string[] | string | MgmtdClient;
  /** For chunk I/O; one is made (and closed by close()) when absent. */
  chunkClient?: ChunkClient;
  pollMs?: number;
  writeRetryMs?: number;
  /** Identifies this writer's chain writes at heads (default: random). */
  clientId?: number;
  /** Credentials of the mgmtd client made from addresses (a user's token, or a daemon's keys). */
  auth?: MgmtdClientOptions['auth'];
  cluster?: MgmtdClientOptions['cluster'];
}

export interface ChainRoute {
  chainId: number;
  version: number;
  /** serving then syncing targets; [0] is the head when it is serving. */
  path: TargetRecord[];
  /** Data addresses of serving targets, head first, tail last. */
  serving: string[];
}

/** Errors after which a write or read may succeed at a fresher route or a little later. */
const RETRYABLE = new Set(['ESTALE', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ECLOSED', 'EBUSY', 'ENOTCOMMITTED', 'ECHUNK_CORRUPT']);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class RoutingClient {
  readonly mgmtd: MgmtdClient;
  private chunkClient: ChunkClient | undefined;
  private readonly cluster: RoutingClientOptions['cluster'];
  readonly clientId: number;
  private readonly ownsMgmtd: boolean;
  private readonly ownsChunks: boolean;
  private readonly pollMs: number;
  private readonly writeRetryMs: number;
  private current: Routing | undefined;
  private fetchedAtMs = 0;
  private refreshing: Promise<Routing> | undefined;
  private nextRequestId = 1;
  private readonly targets = new Map<number, TargetRecord>();
  private readonly chains = new Map<number, ChainRecord>();

  constructor(options: RoutingClientOptions) {
    this.ownsMgmtd = !(options.mgmtd instanceof MgmtdClient);
    this.mgmtd = options.mgmtd instanceof MgmtdClient ? options.mgmtd : new MgmtdClient(options.mgmtd, { auth: options.auth, cluster: options.cluster });
    this.ownsChunks = options.chunkClient === undefined;
    this.chunkClient = options.chunkClient;
    this.cluster = options.cluster;
    this.pollMs = options.pollMs ?? clusterLimits.routingPollMsDefault;
    this.writeRetryMs = options.writeRetryMs ?? clusterLimits.writeRetryMsDefault;
    this.clientId = options.clientId ?? randomInt(1, 2 ** 47);
    if (!Number.isSafeInteger(this.clientId) || this.clientId < 1) throw new RangeError('clientId must be a positive safe integer');
  }

  /** For chunk I/O: the one given, else one made at first use (a routing reader needs none). */
  get chunks(): ChunkClient {
    // A cluster daemon's (options.cluster: it holds S) presents the service node key to storage.
    this.chunkClient ??= new ChunkClient({
      transport: 'auto',
      ...(this.cluster ? { credentials: { nodeId: SERVICE_NODE_ID, clusterSecret: this.cluster.secret } } : {}),
    });
    return this.chunkClient;
  }

  /**
   * The cached routing. Once it is older than pollMs a refresh starts in the background and
   * the cache is used meanwhile, so I/O does not wait for mgmtd (nor stop while it fails over);
   * errors that mean the cache is stale call refresh() and wait for it.
   */
  async routing(): Promise<Routing> {
    if (!this.current) return this.refresh();
    if (Date.now() - this.fetchedAtMs >= this.pollMs) this.refresh().catch(() => {});
    return this.current;
  }

  /**
   * The cached version of chain table `tableId`, without waiting (starts a fetch when the cache
   * is missing or older than pollMs, as routing() does); undefined when not known yet.
   */
  tableVersion(tableId: number): number | undefined {
    if (!this.current || Date.now() - this.fetchedAtMs >= this.pollMs) this.refresh().catch(() => {});
    return this.current?.chainTables.find((t) => t.tableId === tableId)?.version;
  }

  /** Fetches routing now; concurrent callers share one fetch. */
  refresh(): Promise<Routing> {
    this.refreshing ??= (async () => {
      try {
        const r = await this.mgmtd.getRouting(this.current?.version);
        this.fetchedAtMs = Date.now();
        if (!('unchanged' in r)) this.install(r);
        return this.current!;
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  async route(chainId: number): Promise<ChainRoute> {
    await this.routing();
    return this.routeOf(chainId);
  }

  /**
   * Writes at the chain's head; resolves once every replica of the chain committed. Retries
   * on stale routing and dead replicas for up to writeRetryMs.
   */
  async writeChunk(chainId: number, chunk: ChunkId, offset: number, data: Buffer,
    options: Pick<ChunkWriteOptions, 'replace' | 'chunkSizeBytes'> & { capability?: Buffer } = {}): Promise<ChunkMeta> {
    const requestId = this.nextRequestId++;
    const deadlineMs = Date.now() + this.writeRetryMs;
    let last: unknown;
    for (let attempt = 1; attempt <= clusterLimits.writeAttemptsMax; attempt++) {
      try {
        const route = await this.route(chainId);
        const head = route.path[0];
        if (!head || head.state !== 'serving') throw new MillpondError('EBUSY', `chain ${chainId} has no serving target`);
        return await this.chunks.write(head.dataAddress, chunk, offset, data, {
          ...options, chain: { chainId, chainVersion: route.version, clientId: this.clientId, requestId },
        });
      } catch (err) {
        if (!(err instanceof MillpondError) || !RETRYABLE.has(err.code)) throw err;
        last = err;
        if (Date.now() >= deadlineMs) break;
        await sleep(Math.random() * Math.min(clusterLimits.writeRetryBackoffMsMax, 10 * attempt));
        await this.refresh().catch(() => {});
      }
    }
    throw last;
  }

  /**
   * Reads from a serving replica (a random one first, the tail last), moving to the next on a
   * retryable error and on ENOENT at a non-tail replica (the tail commits first); after a
   * round over all of them it refreshes routing, for readRoundsMax rounds. ENOENT from the tail
   * (a chunk never written) and errors no replica can fix are thrown. With `target`, the bytes
   * land in it and `data` is a view of it.
   */
  async readChunk(chainId: number, chunk: ChunkId, offset: number, length: number,
    options: { target?: Buffer; capability?: Buffer } = {}): Promise<{ data: Buffer; meta: ChunkMeta }> {
    let last: unknown = new MillpondError('EBUSY', `chain ${chainId} has no serving target`);
    for (let round = 0; round < clusterLimits.readRoundsMax; round++) {
      const { serving } = await this.route(chainId);
      const tail = serving.at(-1);
      const others = serving.slice(0, -1);
      const start = others.length ? randomInt(others.length) : 0;
      for (const address of [...others.slice(start), ...others.slice(0, start), ...(tail ? [tail] : [])]) {
        try {
          return await this.chunks.read(address, chunk, offset, length, options);
        } catch (err) {
          const retry = err instanceof MillpondError && (RETRYABLE.has(err.code) || (err.code === 'ENOENT' && address !== tail));
          if (!retry) throw err;
          last = err;
        }
      }
      await sleep(Math.random() * Math.min(clusterLimits.writeRetryBackoffMsMax, 20 * (round + 1)));
      await this.refresh().catch(() => {});
    }
    throw last;
  }

  close(): void {
    if (this.ownsMgmtd) this.mgmtd.close();
    if (this.ownsChunks) this.chunkClient?.close();
  }

  private install(r: Routing): void {
    this.current = r;
    this.targets.clear();
    for (const t of r.targets) this.targets.set(t.targetId, t);
    this.chains.clear();
    for (const c of r.chains) this.chains.set(c.chainId, c);
  }

  private routeOf(chainId: number): ChainRoute {
    const chain = this.chains.get(chainId);
    if (!chain) throw new MillpondError('ENOENT', `chain ${chainId} is not in routing version ${this.current?.version ?? 0}`);
    const path = dataPath(chain, this.targets);
    return { chainId, version: chain.version, path, serving: path.filter((t) => t.state === 'serving').map((t) => t.dataAddress) };
  }
}
