/**
 * A loopback cluster of processes: mgmtd instance(s) on one SQLite file and storage daemons
 * with one target each; and a writer that writes whole chunks continuously through the
 * routing client, remembering what was acknowledged.
 */
import { SERVICE_NODE_ID } from '../../../src/auth/data-plane.js';
import { join } from 'node:path';
import { ChunkClient } from '../../../src/chunk/chunk-client.js';
import { MgmtdClient } from '../../../src/cluster/mgmtd-client.js';
import { RoutingClient } from '../../../src/cluster/routing-client.js';
import type { Routing, TargetState } from '../../../src/protocol/mgmtd-types.js';
import { chunkPattern } from '../../support/pattern.js';
import { testKeys, type TestKeys } from '../../support/auth.js';
import { tempDir } from '../../support/tmp.js';
import { freePort, startMgmtd, startStorage, until, type Proc } from './processes.js';

export const CHAINS = 4;

export class Cluster {
  readonly mgmtdEndpoints: string[] = [];
  mgmtd: Proc[] = [];
  readonly storage = new Map<number, Proc & { data: Map<number, string> }>();
  readonly admin: MgmtdClient;
  private readonly tmp = tempDir('cluster');
  /** Authentication is on: every process holds this secret; admin connects as a member. */
  readonly keys: TestKeys = testKeys();
  /** What the harness presents to storage: a cluster service's node key (no capabilities needed). */
  get dataCredentials(): { nodeId: number; clusterSecret: Buffer } {
    return { nodeId: SERVICE_NODE_ID, clusterSecret: this.keys.cluster.secret };
  }

  private constructor(endpoints: string[], private readonly storageExtra: string[] = []) {
    this.mgmtdEndpoints = endpoints;
    this.admin = new MgmtdClient(endpoints, { timeoutMs: 500, cluster: this.keys.cluster });
  }

  /**
   * `heartbeatTimeoutMs`: when mgmtd marks a silent node dead (default FAST's); `extra`: more
   * mgmtd flags; `storageExtra`: more flags of every storage daemon (startNode's too). Every daemon
   * holds the cluster secret (this.keys): the control plane and the data plane authenticate.
   */
  static async start(mgmtdCount: number, nodes = 3,
    options: { heartbeatTimeoutMs?: number; extra?: string[]; storageExtra?: string[] } = {}): Promise<Cluster> {
    const endpoints = [];
    for (let i = 0; i < mgmtdCount; i++) endpoints.push(`tcp://127.0.0.1:${await freePort()}`);
    const c = new Cluster(endpoints, options.storageExtra);
    for (const e of endpoints) c.mgmtd.push(await startMgmtd(c.db, e, c.keys.secretFile, options));
    await c.mgmtd[0]!.waitFor(/^primary$/);
    await Promise.all(Array.from({ length: nodes }, (_, i) => c.startNode(i + 1)));
    await c.admin.createChainTable(1, { chainCount: CHAINS, chainLength: 3 });
    await c.waitStates(Object.fromEntries(Array.from({ length: nodes }, (_, i) => [101 + i, 'serving'])), 10_000);
    return c;
  }

  get db(): string {
    return join(this.tmp.dir, 'mgmtd.db');
  }

  targetDir(targetId: number): string {
    return join(this.tmp.dir, `t${targetId}`);
  }

  async startNode(nodeId: number): Promise<void> {
    const p = await startStorage(nodeId, this.mgmtdEndpoints, [[100 + nodeId, this.targetDir(100 + nodeId)]], this.keys.secretFile, this.storageExtra);
    this.storage.set(nodeId, p);
  }

  async routing(): Promise<Routing> {
    const r = await this.admin.getRouting();
    if ('unchanged' in r) throw new Error('unexpected unchanged');
    return r;
  }

  /**
   * A routing client with a cluster daemon's credentials (chunk operations of the tests:
   * writes on chains, listings); `close` ends it and the clients under it.
   */
  memberRouting(options: { chunkTimeoutMs?: number; pollMs?: number; writeRetryMs?: number } = {}): { routing: RoutingClient; close: () => void } {
    const routing = new RoutingClient({
      mgmtd: new MgmtdClient(this.mgmtdEndpoints, { timeoutMs: 500, cluster: this.keys.cluster }),
      chunkClient: new ChunkClient({ transport: 'tcp', credentials: this.dataCredentials,
        ...(options.chunkTimeoutMs !== undefined ? { timeoutMs: options.chunkTimeoutMs } : {}) }),
      ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
      ...(options.writeRetryMs !== undefined ? { writeRetryMs: options.writeRetryMs } : {}),
    });
    return { routing, close: () => (routing.close(), routing.mgmtd.close(), routing.chunks.close()) };
  }

  async waitStates(want: Record<number, TargetState>, timeoutMs: number): Promise<Routing> {
    return until(async () => {
      const r = await this.routing();
      return Object.entries(want).every(([id, s]) => r.targets.find((t) => t.targetId === Number(id))?.state === s) && r;
    }, timeoutMs, `target states ${JSON.stringify(want)}`);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.storage.values(), ...this.mgmtd].map((p) => p.kill()));
    this.admin.close();
    this.tmp.cleanup();
    this.keys.cleanup();
  }
}

const BLOCK = 4096;
const BLOCKS = 16;

/** The 4 KiB block that partial write `generation` puts at block generation % BLOCKS. */
export function blockPattern(index: number, generation: number): Buffer {
  const data = Buffer.alloc(BLOCK, (index * 13 + generation * 5) & 0xff);
  data.writeUInt32LE(index, 0);
  data.writeUInt32LE(generation, 4);
  return data;
}

/** What a chunk written partially holds after generations 1..last. */
export function partialContent(index: number, last: number): Buffer {
  const blocks = Math.min(last, BLOCKS - 1) + 1;
  const out = Buffer.alloc(last === 0 ? 0 : blocks * BLOCK);
  for (let g = 1; g <= last; g++) blockPattern(index, g).copy(out, (g % BLOCKS) * BLOCK);
  return out;
}

/**
 * Writes to chunks (inode 1, index 0..chunks-1), on chain index % CHAINS + 1: whole chunks,
 * except the chunks of the last worker when `partial`, which get one 4 KiB block per write
 * (so a returning replica needs the whole chunk, not just the update: successorSyncing).
 */
export class Writer {
  readonly routing: RoutingClient;
  private readonly closeRouting: () => void;
  /** The last acknowledged generation of each chunk index. */
  readonly acked = new Map<number, number>();
  readonly errors: string[] = [];
  acks = 0;
  /** The longest time between two acknowledgements since resetGap(). */
  maxGapMs = 0;
  private lastAckMs = Date.now();
  private stopped = false;
  private loops: Promise<void>[] = [];

  constructor(cluster: Cluster, readonly chunks = 24, readonly workers = 3, readonly partial = false) {
    const { routing, close } = cluster.memberRouting({ chunkTimeoutMs: 3_000, pollMs: 200, writeRetryMs: 20_000 });
    this.routing = routing;
    this.closeRouting = close;
  }

  isPartial(index: number): boolean {
    return this.partial && index % this.workers === this.workers - 1;
  }

  static chainOf(index: number): number {
    return (index % CHAINS) + 1;
  }

  start(): void {
    this.loops = Array.from({ length: this.workers }, (_, w) => this.loop(w));
  }

  private async loop(w: number): Promise<void> {
    for (let generation = 1; !this.stopped; generation++) {
      for (let index = w; index < this.chunks && !this.stopped; index += this.workers) {
        try {
          const chunk = { inode: 1n, index };
          if (this.isPartial(index)) {
            await this.routing.writeChunk(Writer.chainOf(index), chunk, (generation % BLOCKS) * BLOCK, blockPattern(index, generation));
          } else {
            await this.routing.writeChunk(Writer.chainOf(index), chunk, 0, chunkPattern(index, generation), { replace: true });
          }
          this.acked.set(index, generation);
          this.acks++;
          const now = Date.now();
          this.maxGapMs = Math.max(this.maxGapMs, now - this.lastAckMs);
          this.lastAckMs = now;
        } catch (err) {
          this.errors.push(`chunk ${index} generation ${generation}: ${(err as Error).message}`);
          return;
        }
      }
    }
  }

  resetGap(): void {
    this.maxGapMs = 0;
    this.lastAckMs = Date.now();
  }

  async waitAcks(more: number, timeoutMs: number): Promise<void> {
    const target = this.acks + more;
    await until(() => this.acks >= target || this.errors.length > 0, timeoutMs, `${more} more acks`);
    if (this.errors.length) throw new Error(this.errors.join('; '));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  close(): void {
    this.closeRouting();
  }
}
