/**
 * RoutingClient: a cache of mgmtd's routing for clients and daemons, and chunk I/O by chain.
 * The cache refreshes in the background when it is older than `pollMs` at use, and at once
 * on ESTALE or a dead replica. writeChunk() enters at the chain's head and retries (same clientId and requestId,
 * so the head applies a retried write once) on stale routing and connection errors until
 * `writeRetryMs` passes; readChunk() reads any serving replica, never a syncing one. Both pass
 * the file's data-plane `capability` (from meta's open) along to the servers.
 *
 * Gray failures (a paused, not dead, server; issue 9 items 7 and 8), as the native client
 * (native/client/file_client.h) handles them:
 *  - a read not answered within the hedge delay (a few times the median of recent reads,
 *    clusterLimits.readHedge*) is sent to the next replica too; the first valid answer wins
 *    and the other request is abandoned;
 *  - while a request waits, the routing is watched (every routingWatchMs): a request to a
 *    replica that stopped serving, or a write to a head the routing replaced, is abandoned at
 *    once, and the write is resent to the new head.
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

export interface RoutingClientCounters {
  /** Reads sent to a second replica because the first was slower than the hedge delay. */
  hedgedReads: number;
  /** Requests given up because their target left the route (offline, or no longer head). */
  abandonedRequests: number;
}

/** One read request of a round: slot 0 reads into the caller's target, slot 1 into its own buffer. */
interface ReadAttempt {
  address: string;
  slot: 0 | 1;
  buffer: Buffer;
  abort: AbortController;
  startedMs: number;
}

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
  /** Latencies (ms) of recent answered reads, a ring: the hedge delay follows their median. */
  private readonly readLatencyMs: number[] = [];
  private readLatencyNext = 0;
  readonly counters: RoutingClientCounters = { hedgedReads: 0, abandonedRequests: 0 };

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
        // A head the routing replaced while the write waits (paused, then marked offline) is
        // given up at once: the retry goes to the new head.
        const abort = new AbortController();
        const stopWatch = this.watch(abort, () => {
          const now = this.routeOf(chainId);
          return now.version !== route.version && now.path[0]?.dataAddress !== head.dataAddress;
        });
        try {
          return await this.chunks.write(head.dataAddress, chunk, offset, data, {
            ...options, chain: { chainId, chainVersion: route.version, clientId: this.clientId, requestId }, signal: abort.signal,
          });
        } finally {
          stopWatch();
        }
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
   * Reads from a serving replica (random first, the tail last), trying the others on failure.
   * With `target`, the bytes land in it and `data` is a view of it.
   */
  async readChunk(chainId: number, chunk: ChunkId, offset: number, length: number,
    options: { target?: Buffer; capability?: Buffer } = {}): Promise<{ data: Buffer; meta: ChunkMeta }> {
    let last: unknown = new MillpondError('EBUSY', `chain ${chainId} has no serving target`);
    for (let round = 0; round < clusterLimits.readRoundsMax; round++) {
      const { serving } = await this.route(chainId);
      const tail = serving.at(-1);
      const others = serving.slice(0, -1);
      const start = others.length ? randomInt(others.length) : 0;
      const order = [...others.slice(start), ...others.slice(0, start), ...(tail ? [tail] : [])];
      if (order.length > 0) {
        const r = await this.readRound(chainId, order, chunk, offset, length, options.target, options.capability);
        if ('data' in r) return r;
        last = r.error;
      }
      await sleep(Math.random() * Math.min(clusterLimits.writeRetryBackoffMsMax, 20 * (round + 1)));
      await this.refresh().catch(() => {});
    }
    throw last;
  }

  /** Data addresses of the chain's serving replicas (the tail last), from the current routing. */
  async servingAddresses(chainId: number): Promise<string[]> {
    return (await this.route(chainId)).serving;
  }

  /** How long a chunk read may take before a second replica is asked too. */
  readHedgeDelayMs(): number {
    const l = clusterLimits;
    if (this.readLatencyMs.length < l.readHedgeSamplesMin) return l.readHedgeDelayMsMax;
    const sorted = [...this.readLatencyMs].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    return Math.min(l.readHedgeDelayMsMax, Math.max(l.readHedgeDelayMsMin, median * l.readHedgeMedianFactor));
  }

  /**
   * One round over `order`: at most two requests at once, the second started when the first
   * is slower than the hedge delay or failed. Resolves with the first valid answer (in
   * `target` when given) once no request is in flight (until then a request's buffer may
   * still be written); rejects with ENOENT from the tail (never written) or an error no
   * replica can fix; otherwise resolves with the last retryable error.
   */
  private readRound(chainId: number, order: string[], chunk: ChunkId, offset: number, length: number,
    target: Buffer | undefined, capability: Buffer | undefined): Promise<{ data: Buffer; meta: ChunkMeta } | { error: unknown }> {
    return new Promise((resolve, reject) => {
      const tail = order.at(-1);
      const inflight = new Set<ReadAttempt>();
      let next = 0;
      let lastError: unknown;
      let outcome: { attempt: ReadAttempt; data: Buffer; meta: ChunkMeta } | { fatal: unknown } | undefined;
      let hedgeTimer: NodeJS.Timeout | undefined;
      const stopWatch = this.watch(undefined, () => {
        const serving = this.routeOf(chainId).serving;
        for (const a of inflight) {
          if (!serving.includes(a.address) && !a.abort.signal.aborted) (this.counters.abandonedRequests++, a.abort.abort());
        }
        return false;
      });
      const finish = () => {
        clearTimeout(hedgeTimer);
        stopWatch();
        if (outcome === undefined) return resolve({ error: lastError });
        if ('fatal' in outcome) return reject(outcome.fatal);
        const { attempt, data, meta } = outcome;
        if (attempt.slot === 1 && target) {
          data.copy(target, 0, 0, data.length);
          return resolve({ data: target.subarray(0, data.length), meta });
        }
        resolve({ data, meta });
      };
      const armHedge = () => {
        clearTimeout(hedgeTimer);
        if (inflight.size !== 1 || outcome !== undefined || next >= order.length) return;
        const [a] = inflight;
        const waitMs = Math.max(0, a!.startedMs + this.readHedgeDelayMs() - Date.now());
        hedgeTimer = setTimeout(() => {
          this.counters.hedgedReads++;
          start();
        }, waitMs);
      };
      const settled = (a: ReadAttempt, err: unknown, result?: { data: Buffer; meta: ChunkMeta }) => {
        inflight.delete(a);
        if (outcome === undefined) {
          if (result) {
            this.recordReadLatency(Date.now() - a.startedMs);
            outcome = { attempt: a, ...result };
          } else if (!(err instanceof MillpondError) || (!RETRYABLE.has(err.code) && !(err.code === 'ENOENT' && a.address !== tail))) {
            outcome = { fatal: err };   // ENOENT at the tail (a hole) included: the caller decides
          } else {
            lastError = err;            // ENOENT at a non-tail replica: the tail commits first
            if (next < order.length) start();
          }
          if (outcome !== undefined) for (const other of inflight) other.abort.abort();
        }
        if (inflight.size === 0) finish();
        else armHedge();
      };
      const start = () => {
        const slot: 0 | 1 = [...inflight].some((a) => a.slot === 0) ? 1 : 0;
        const buffer = slot === 0 && target ? target.subarray(0, length) : Buffer.allocUnsafe(length);
        const a: ReadAttempt = { address: order[next++]!, slot, buffer, abort: new AbortController(), startedMs: Date.now() };
        inflight.add(a);
        this.chunks.read(a.address, chunk, offset, length, { target: buffer, signal: a.abort.signal, ...(capability ? { capability } : {}) })
          .then((r) => settled(a, undefined, r), (err) => settled(a, err));
        armHedge();
      };
      start();
    });
  }

  private recordReadLatency(ms: number): void {
    if (this.readLatencyMs.length < clusterLimits.readHedgeSamplesMax) this.readLatencyMs.push(ms);
    else this.readLatencyMs[this.readLatencyNext++ % clusterLimits.readHedgeSamplesMax] = ms;
  }

  /**
   * Checks the routing every routingWatchMs (refreshing it when older than pollMs) until the
   * returned stop is called; when `gone()` says so, aborts `abort` (once). Errors of the
   * check (the chain left the routing) are ignored: the request's own outcome decides.
   */
  private watch(abort: AbortController | undefined, gone: () => boolean): () => void {
    const timer = setInterval(() => {
      this.routing().then(() => {
        if (gone() && abort && !abort.signal.aborted) {
          this.counters.abandonedRequests++;
          abort.abort();
        }
      }).catch(() => {});
    }, clusterLimits.routingWatchMs);
    return () => clearInterval(timer);
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
