/**
 * StorageDaemon: owns targets (one ChunkStore and one DataServer each), registers them with
 * mgmtd, heartbeats, follows routing (placing each target on its chains in the DataServer, so
 * the CRAQ data path runs natively), resyncs targets mgmtd marks `syncing`, scrubs, and
 * sweeps away the chunks of chains a target left (stray-sweep.ts).
 * A small control endpoint (ZeroMQ) answers status and scrub requests.
 */
import { registerNativeMetrics } from '../metrics/native.js';
import { trackStorage } from '../metrics/services.js';
import { statfsSync } from 'node:fs';
import { ChunkClient } from '../chunk/chunk-client.js';
import { ChunkStore } from '../chunk/chunk-store.js';
import { DataServer } from '../chunk/data-server.js';
import { MillpondError } from '../errors.js';
import { clusterLimits } from '../limits.js';
import { addon, type ChainPosition, type TransportChoice } from '../native/binding.js';
import type { ClusterAuth } from '../auth/credentials.js';
import { MgmtdClient } from '../cluster/mgmtd-client.js';
import { dataPath, type LocalState, type Routing, type TargetRecord } from '../protocol/mgmtd-types.js';
import { optUint } from '../protocol/fields.js';
import { RpcServer, type Handler } from '../protocol/rpc-server.js';
import { emptyResyncStats, resync, type ResyncStats } from './resync.js';
import { TokenBucket } from './token-bucket.js';
import { scrub, type ScrubStats } from './scrub.js';
import { emptySweepStats, StrayChains, sweepPass, type SweepStats } from './stray-sweep.js';
import type { ChunkId } from '../native/binding.js';
import { logger } from '../log.js';

export interface StorageDaemonOptions {
  nodeId: number;
  mgmtd: string[];
  /** capacityBytes: refuse writes (ENOSPC) beyond this many bytes on the target (0: the disk's limit). */
  targets: Array<{ targetId: number; dir: string; capacityBytes?: number }>;
  /** Data-plane host to bind (and advertise, without advertiseHost). */
  host?: string;
  /**
   * The host peers reach this node at, when it binds another (0.0.0.0): its data and control
   * addresses are registered with mgmtd under this host, on the ports bound.
   */
  advertiseHost?: string;
  /** Control endpoint (default tcp://<host>:0). */
  controlListen?: string;
  /** The first target's data port; the next targets take the ports after it (0: free ports). */
  dataPort?: number;
  transport?: TransportChoice;
  heartbeatIntervalMs?: number;
  routingPollMs?: number;
  mgmtdTimeoutMs?: number;
  /** Background scrub every this many ms (0 = only on request). */
  scrubIntervalMs?: number;
  scrubBytesPerSec?: number;
  /**
   * The stray sweep (stray-sweep.ts): a pass every this many ms (default
   * clusterLimits.straySweepIntervalMsDefault; 0: never), removing the chunks of a chain once it
   * has been absent from their target's chains for strayGraceMs (default
   * clusterLimits.strayChainGraceSecDefault seconds; tests shorten it).
   */
  straySweepIntervalMs?: number;
  strayGraceMs?: number;
  syncWrites?: boolean;
  log?: (line: string) => void;
  /**
   * The cluster's keys (from --secret-file): registration and heartbeats are proven with the
   * node's key, the control endpoint is a CURVE server admitting cluster members only. With
   * them the data servers authenticate every connection and check capabilities, and this
   * daemon's own data-plane calls (forwards, resync, scrub) present the node's key. Without
   * them nothing is checked.
   */
  auth?: ClusterAuth;
  /** The cluster's encryptData flag (needs auth): the data servers encrypt every TCP connection. */
  encryptData?: boolean;
}

/**
 * A target's space for mgmtd (statfs of a mount): its configured capacity and what is left of
 * it, or, without one, the disk's size and free space; and the chunks it holds. One store
 * usage() read for all three.
 */
function targetSpace(store: ChunkStore, dir: string): { capacityBytes: number; freeBytes: number; chunks: number } {
  const usage = store.usage();
  let disk: { capacityBytes: number; freeBytes: number } | undefined;
  try {
    const st = statfsSync(dir);
    disk = { capacityBytes: st.blocks * st.bsize, freeBytes: st.bavail * st.bsize };
  } catch {
    disk = undefined;
  }
  if (usage.capacityBytes > 0) {
    const left = Math.max(0, usage.capacityBytes - usage.bytes);
    return { capacityBytes: usage.capacityBytes, freeBytes: disk ? Math.min(left, disk.freeBytes) : left, chunks: usage.chunks };
  }
  return { ...(disk ?? { capacityBytes: 0, freeBytes: 0 }), chunks: usage.chunks };
}

interface Target {
  targetId: number;
  dir: string;
  store: ChunkStore;
  server: DataServer;
  localState: LocalState;
  /** The stateVersion of the syncing round our last finished resync was for. */
  syncedStateVersion?: number;
  /** The syncing round a resync is running for. */
  resyncFor?: number;
  lastResync?: ResyncStats & { ms: number };
  /** The resync copying now: its live figures and the targets it copies from. */
  resyncing?: { stats: ResyncStats; sourceTargetIds: number[] };
  /** runResync calls under way (a stale one may still be winding down): no sweep meanwhile. */
  resyncsRunning: number;
  /** The chains the target is on in the data path (placed in its DataServer). */
  chains: Set<number>;
  /** The stray sweep's figures, where its next pass lists from, and the pass under way. */
  strays: SweepStats;
  sweepAfter?: ChunkId;
  sweepPass?: Promise<unknown>;
}

export class StorageDaemon {
  readonly mgmtd: MgmtdClient;
  private readonly client: ChunkClient;
  private readonly targets = new Map<number, Target>();
  private control: RpcServer | undefined;
  private routing: Routing | undefined;
  private appliedVersion = 0;
  private wantedVersion = 0;
  private stopped = false;
  private timers: NodeJS.Timeout[] = [];
  private refreshing: Promise<void> | undefined;
  private scrubbing: Promise<ScrubStats[]> | undefined;
  private sweeping: Promise<void> | undefined;
  private readonly strays: StrayChains;
  private readonly log: (line: string) => void;
  /** Events worth a line that are not trouble (a resync done); not throttled. */
  private readonly note: (line: string) => void;
  private untrackMetrics: () => void = () => {};

  private constructor(private readonly options: StorageDaemonOptions) {
    this.strays = new StrayChains(options.strayGraceMs ?? clusterLimits.strayChainGraceSecDefault * 1000);
    this.mgmtd = new MgmtdClient(options.mgmtd, { timeoutMs: options.mgmtdTimeoutMs, roundsMax: 1, cluster: options.auth });
    this.client = new ChunkClient({
      transport: options.transport ?? 'auto',
      ...(options.auth ? { credentials: { nodeId: options.nodeId, clusterSecret: options.auth.secret } } : {}),
    });
    const log = logger('storage', { nodeId: options.nodeId });
    const print = options.log ?? log.warn;
    this.note = options.log ?? log.info;
    // The same complaint (e.g. no mgmtd primary during a takeover) at most once a second.
    const lastMs = new Map<string, number>();
    this.log = (line) => {
      const kind = line.slice(0, line.indexOf(':') + 1) || line;
      const now = Date.now();
      if (now - (lastMs.get(kind) ?? 0) < 1_000) return;
      if (lastMs.size > 64) lastMs.clear();
      lastMs.set(kind, now);
      print(line);
    };
  }

  static async start(options: StorageDaemonOptions): Promise<StorageDaemon> {
    if (!Number.isSafeInteger(options.nodeId) || options.nodeId < 0) throw new RangeError('nodeId must be a non-negative integer');
    if (!Array.isArray(options.targets) || options.targets.length === 0 || options.targets.length > clusterLimits.targetsPerNodeMax) {
      throw new RangeError(`a daemon has 1..${clusterLimits.targetsPerNodeMax} targets`);
    }
    const d = new StorageDaemon(options);
    try {
      for (const [i, { targetId, dir, capacityBytes }] of options.targets.entries()) {
        const store = await ChunkStore.open(dir, { syncWrites: options.syncWrites ?? true, capacityBytes: capacityBytes ?? 0 });
        const port = options.dataPort ? options.dataPort + i : 0;
        const server = await DataServer.start(store, {
          host: options.host ?? '127.0.0.1', port, transport: options.transport ?? 'auto', nodeId: options.nodeId,
          ...(options.auth ? { clusterSecret: options.auth.secret } : {}),
          ...(options.encryptData ? { encryptData: true } : {}),
        });
        d.targets.set(targetId, { targetId, dir, store, server, localState: 'online', resyncsRunning: 0, chains: new Set(), strays: emptySweepStats() });
      }
      const cluster = options.auth;
      const curve = cluster ? { secretKey: cluster.server.secretKey, service: `storage-${options.nodeId}`, admit: (key: string) => key === cluster.member.publicKey, log: d.log } : undefined;
      registerNativeMetrics();
      d.untrackMetrics = trackStorage(() => [...d.targets.values()].map((t) => ({ targetId: t.targetId, nodeId: options.nodeId, ...targetSpace(t.store, t.dir) })));
      d.control = await RpcServer.bind(options.controlListen ?? `tcp://${options.host ?? '127.0.0.1'}:0`, d.handlers(), curve);
    } catch (err) {
      await d.stop();
      throw err;
    }
    try {
      await d.register();
    } catch (err) {
      await d.stop();
      throw err;
    }
    const hbMs = options.heartbeatIntervalMs ?? clusterLimits.heartbeatIntervalMsDefault;
    const pollMs = options.routingPollMs ?? clusterLimits.routingPollMsDefault;
    d.timers.push(setInterval(() => void d.heartbeat(), hbMs));
    d.timers.push(setInterval(() => void d.refreshRouting(), pollMs));
    if (options.scrubIntervalMs) d.timers.push(setInterval(() => void d.scrubAll().catch(() => {}), options.scrubIntervalMs));
    const sweepMs = options.straySweepIntervalMs ?? clusterLimits.straySweepIntervalMsDefault;
    if (sweepMs > 0) d.timers.push(setInterval(() => void d.sweepStrays(), sweepMs));
    void d.refreshRouting();
    return d;
  }

  get controlAddress(): string {
    const endpoint = this.control?.endpoint ?? '';
    const host = this.options.advertiseHost;
    return host && endpoint ? endpoint.replace(/^tcp:\/\/(\[[^\]]*\]|[^:]*)/, `tcp://${host.includes(':') ? `[${host}]` : host}`) : endpoint;
  }

  dataAddress(targetId: number): string {
    const t = this.targets.get(targetId);
    if (!t) throw new RangeError(`no target ${targetId} here`);
    return this.advertised(t.server);
  }

  /** "host:port" of a target's data server as peers reach it (advertiseHost, else as bound). */
  private advertised(server: { address: string; port: number }): string {
    const host = this.options.advertiseHost;
    if (!host) return server.address;
    return host.includes(':') ? `[${host}]:${server.port}` : `${host}:${server.port}`;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.untrackMetrics();
    for (const t of this.timers) clearInterval(t);
    await this.control?.close();
    await this.refreshing?.catch(() => {});
    await this.scrubbing?.catch(() => {});
    await this.sweeping;
    for (const t of this.targets.values()) {
      await t.server.stop();
      t.store.close();
    }
    this.client.close();
    this.mgmtd.close();
  }

  status() {
    return {
      nodeId: this.options.nodeId,
      appliedVersion: this.appliedVersion,
      targets: [...this.targets.values()].map((t) => ({
        targetId: t.targetId,
        dataAddress: this.advertised(t.server),
        localState: t.localState,
        state: this.routing?.targets.find((r) => r.targetId === t.targetId)?.state ?? 'offline',
        chains: [...t.chains].sort((a, b) => a - b),
        chunks: t.store.usage().chunks,
        lastResync: t.lastResync ?? null,
        strays: { ...t.strays },
      })),
    };
  }

  /** One scrub pass over the given target (or all), repairing from serving replicas. */
  scrubAll(targetId?: number): Promise<ScrubStats[]> {
    if (this.scrubbing) return this.scrubbing;
    const run = (async () => {
      const out: ScrubStats[] = [];
      for (const t of this.targets.values()) {
        if (targetId !== undefined && t.targetId !== targetId) continue;
        out.push(await scrub({
          store: t.store,
          client: this.client,
          replicas: () => this.replicasFor(t),
          bytesPerSec: this.options.scrubBytesPerSec,
          cancelled: () => this.stopped,
        }));
      }
      return out;
    })();
    this.scrubbing = run.finally(() => (this.scrubbing = undefined));
    return this.scrubbing;
  }

  /**
   * One stray-sweep pass over each local target that may be swept and has a stray chain (the
   * rule: stray-sweep.ts); in the background of the timers, one run at a time.
   */
  sweepStrays(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.sweeping ??= (async () => {
      for (const t of this.targets.values()) {
        if (this.stopped || !this.maySweep(t) || !this.strays.any(t.targetId, Date.now())) continue;
        const removedBefore = t.strays.removed;
        const pass = sweepPass({
          store: t.store,
          after: t.sweepAfter,
          stats: t.strays,
          // Asked right before each removal: the routing applied, the resyncs begun meanwhile count.
          stray: (chainId) => !this.stopped && this.maySweep(t) && this.strays.stray(t.targetId, chainId, Date.now()),
        });
        t.sweepPass = pass;
        try {
          t.sweepAfter = await pass;
        } catch (err) {
          if (!this.stopped) this.log(`stray sweep of target ${t.targetId}: ${(err as Error).message}`);
        } finally {
          t.sweepPass = undefined;
        }
        if (t.strays.removed > removedBefore) this.note(`target ${t.targetId} swept ${t.strays.removed - removedBefore} chunks of chains it left: ${JSON.stringify(t.strays)}`);
      }
    })().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  /** A target is swept only while it serves and no resync of it runs (stray-sweep.ts). */
  private maySweep(t: Target): boolean {
    return t.localState === 'uptodate' && t.resyncsRunning === 0 && this.stateOf(t.targetId)?.state === 'serving';
  }

  // ---------------------------------------------------------------- mgmtd

  private async register(): Promise<void> {
    // mgmtd may not be up yet: keep trying (each round tries every address).
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const targets = [...this.targets.values()].map((t) => ({ targetId: t.targetId, dataAddress: this.advertised(t.server) }));
        const { version } = await this.mgmtd.registerNode(this.options.nodeId, 'storage', this.controlAddress, targets);
        this.wantedVersion = Math.max(this.wantedVersion, version);
        return;
      } catch (err) {
        // Refused for good (this node id was removed from the cluster): retrying cannot help.
        if (err instanceof MillpondError && err.code === 'EPERM') throw err;
        if (attempt % 10 === 1) this.log(`registering: ${(err as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * attempt)));
      }
    }
  }

  private heartbeating = false;
  private async heartbeat(): Promise<void> {
    if (this.stopped || this.heartbeating) return;
    this.heartbeating = true;
    try {
      const reports = [...this.targets.values()].map((t) => ({
        targetId: t.targetId,
        localState: t.localState,
        syncedStateVersion: t.localState === 'syncing-done' ? t.syncedStateVersion : undefined,
        ...targetSpace(t.store, t.dir),
        ...(t.resyncing ? {
          resync: {
            listedChunks: t.resyncing.stats.listed, copiedChunks: t.resyncing.stats.copied,
            copiedBytes: t.resyncing.stats.copiedBytes, sourceTargetIds: t.resyncing.sourceTargetIds,
          },
        } : {}),
        swept: { removedChunks: t.strays.removed, removedBytes: t.strays.removedBytes },
      }));
      // The process's data-server byte counters (native metrics): mgmtd turns them into throughput.
      const snap = addon.metricsSnapshot();
      const counters = { dataReadBytes: snap.bytesRead, dataWrittenBytes: snap.bytesWritten, pid: process.pid };
      const { version } = await this.mgmtd.heartbeat(this.options.nodeId, this.appliedVersion, reports, counters);
      if (version > this.appliedVersion) {
        this.wantedVersion = Math.max(this.wantedVersion, version);
        void this.refreshRouting();
      }
    } catch (err) {
      if (err instanceof MillpondError && err.code === 'ENOENT') {
        await this.register().catch((e: Error) => {
          // Removed for good while it was away (paused, partitioned): it stops asking.
          this.log(`registering: ${e.message}; heartbeats stop`);
          for (const timer of this.timers) clearInterval(timer);
        });
      }
      else if (!this.stopped) this.log(`heartbeat: ${(err as Error).message}`);
    } finally {
      this.heartbeating = false;
    }
  }

  private refreshRouting(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.refreshing ??= (async () => {
      try {
        const r = await this.mgmtd.getRouting(this.routing?.version);
        if (!('unchanged' in r)) this.apply(r);
      } catch (err) {
        if (!this.stopped) this.log(`routing: ${(err as Error).message}`);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  // ---------------------------------------------------------------- routing

  /** Places every local target on its chains as the routing says, then acts on target states. */
  private apply(r: Routing): void {
    if (this.stopped) return;
    this.routing = r;
    this.strays.applied(r, this.targets.keys(), Date.now());
    const byId = new Map(r.targets.map((t) => [t.targetId, t]));
    for (const t of this.targets.values()) {
      const now = new Set<number>();
      for (const chain of r.chains) {
        if (!chain.targets.includes(t.targetId)) continue;
        const path = dataPath(chain, byId);
        const i = path.findIndex((p) => p.targetId === t.targetId);
        if (i < 0) continue;
        const next = path[i + 1];
        const position: ChainPosition = { chainVersion: chain.version, head: i === 0 && path[0]!.state === 'serving' };
        if (next) {
          position.successor = next.dataAddress;
          position.successorSyncing = next.state === 'syncing';
        }
        t.server.setChain(chain.chainId, position);
        now.add(chain.chainId);
      }
      for (const old of t.chains) if (!now.has(old)) t.server.removeChain(old);
      t.chains = now;
    }
    this.appliedVersion = r.version;
    for (const t of this.targets.values()) {
      const record = byId.get(t.targetId);
      if (!record) continue;
      if (record.state === 'serving') t.localState = 'uptodate';
      else if (record.state === 'syncing') {
        if (t.syncedStateVersion !== record.stateVersion) {
          t.localState = 'online';
          if (t.resyncFor !== record.stateVersion) void this.runResync(t, record.stateVersion);
        }
      } else t.localState = 'online';
    }
    // Tell mgmtd at once what we applied (predecessors' progress gates resyncs elsewhere).
    void this.heartbeat();
  }

  /** Serving replicas of t's chains other than t, each chain's tail first (it commits first). */
  private replicasFor(t: Target): string[] {
    const r = this.routing;
    if (!r) return [];
    const byId = new Map(r.targets.map((x) => [x.targetId, x]));
    const out: string[] = [];
    for (const chain of r.chains) {
      if (!chain.targets.includes(t.targetId)) continue;
      const serving = dataPath(chain, byId).filter((x) => x.state === 'serving' && x.targetId !== t.targetId);
      for (const s of serving.reverse()) if (!out.includes(s.dataAddress)) out.push(s.dataAddress);
    }
    return out;
  }

  private async runResync(t: Target, stateVersion: number): Promise<void> {
    t.resyncFor = stateVersion;
    t.resyncsRunning++;
    const startedMs = Date.now();
    const stale = () => this.stopped || t.resyncFor !== stateVersion || this.stateOf(t.targetId)?.stateVersion !== stateVersion;
    let progress: Target['resyncing'];
    try {
      // Wait until every source's node applied a routing in which this target is syncing, so
      // that from now on every new write reaches this target by forwarding.
      // (appliedVersion does not bump the routing version: ask for the full routing.)
      let sources: TargetRecord[] = [];
      for (;;) {
        if (stale()) return;
        const r = await this.mgmtd.getRouting().catch(() => undefined);
        if (r && !('unchanged' in r)) {
          if (r.version > this.appliedVersion) this.apply(r);
          if (stale()) return;
          sources = this.sourcesOf(t.targetId, r);
          const nodes = new Map(r.nodes.map((n) => [n.nodeId, n]));
          if (sources.every((s) => (nodes.get(s.nodeId)?.appliedVersion ?? 0) >= stateVersion)) break;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // A sweep pass under way stops at its next chunk (resyncsRunning); its last removal ends
      // before the resync looks at any local chunk.
      await t.sweepPass?.catch(() => {});
      if (stale()) return;
      const chainsOfTarget = this.routing!.chains.filter((c) => c.targets.includes(t.targetId));
      const byId = new Map(this.routing!.targets.map((x) => [x.targetId, x]));
      const removeAllowed = chainsOfTarget.every((c) => c.targets.some((id) => id !== t.targetId && byId.get(id)?.state === 'serving'));
      progress = { stats: emptyResyncStats(), sourceTargetIds: sources.map((s) => s.targetId) };
      t.resyncing = progress;
      const stats = await resync({
        stats: progress.stats,
        store: t.store,
        client: this.client,
        sources: [...new Set(sources.map((s) => s.dataAddress))],
        chains: new Set(chainsOfTarget.map((c) => c.chainId)),
        removeAllowed,
        cancelled: stale,
        // The rate of the latest routing: a move's share changes as other moves join or end.
        bucket: new TokenBucket(() => this.routing?.resyncRates?.find((x) => x.targetId === t.targetId)?.bytesPerS),
      });
      if (stale()) return;
      t.lastResync = { ...stats, ms: Date.now() - startedMs };
      this.note(`target ${t.targetId} resynced: ${JSON.stringify(t.lastResync)}`);
      t.syncedStateVersion = stateVersion;
      t.localState = 'syncing-done';
      void this.heartbeat();
    } catch (err) {
      if (!this.stopped) this.log(`resync of target ${t.targetId}: ${(err as Error).message}`);
      // Try again at the next routing refresh.
      if (t.resyncFor === stateVersion) t.resyncFor = undefined;
    } finally {
      t.resyncsRunning--;
      if (t.resyncing === progress) t.resyncing = undefined;  // not a later round's
    }
  }

  private stateOf(targetId: number): TargetRecord | undefined {
    return this.routing?.targets.find((x) => x.targetId === targetId);
  }

  /** For each chain of the target: its last serving target (which holds every commit). */
  private sourcesOf(targetId: number, r: Routing): TargetRecord[] {
    const byId = new Map(r.targets.map((x) => [x.targetId, x]));
    const out = new Map<number, TargetRecord>();
    for (const chain of r.chains) {
      if (!chain.targets.includes(targetId)) continue;
      const serving = dataPath(chain, byId).filter((x) => x.state === 'serving' && x.targetId !== targetId);
      const last = serving.at(-1);
      if (last) out.set(last.targetId, last);
    }
    return [...out.values()];
  }

  private handlers(): Map<string, Handler> {
    return new Map<string, Handler>([
      ['storage.status', () => this.status()],
      ['storage.scrub', async (p) => ({ targets: await this.scrubAll(optUint(p, 'targetId', 0xffffffff)) })],
    ]);
  }
}
