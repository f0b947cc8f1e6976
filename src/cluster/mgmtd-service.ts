/**
 * MgmtdService: the cluster manager's state and rules (design §1–§3). One primary at a time,
 * chosen by a lease in the KV (lease.ts); every other instance is a standby that answers
 * ENOTPRIMARY and polls the lease. The primary keeps the records in memory, persists every
 * change in a transaction that also checks it still holds the lease, and bumps the routing
 * version on every change. Heartbeat times are kept in memory only: a new primary grants every
 * node one heartbeat timeout from its takeover.
 */
import { mgmtdHeartbeats, trackMgmtd, type MgmtdView } from '../metrics/services.js';
import { randomBytes } from 'node:crypto';
import { MillpondError } from '../errors.js';
import { clusterLimits } from '../limits.js';
import type { KvBackend } from '../kv/kv.js';
import { pack, unpack } from '../protocol/codec.js';
import { clusterKeys, type RecordKind } from './keys.js';
import { readLease, release, tryAcquire, type Lease } from './lease.js';
import { applyRules } from './rules.js';
import type { NodeDataCounters } from './mgmtd-client.js';
import { NodeThroughput } from './throughput.js';
import * as admin from './admin-ops.js';
import { emptyAdminState, emptyDirty, routingDirty, type AdminState, type Dirty, type Records } from './admin-ops.js';
import { adminLimits } from '../limits.js';
import type {
  ChainRecord, ChainTableRecord, LocalState, NodeKind, NodeRecord, Routing, TargetRecord, HeartbeatTarget, ResyncProgress, SweptChunks,
} from '../protocol/mgmtd-types.js';
import { logger } from '../log.js';

const mgmtdLog = logger('mgmtd');

export interface MgmtdOptions {
  /** This instance's control endpoint, named to callers by standbys. */
  address: string;
  heartbeatTimeoutMs?: number;
  livenessCheckMs?: number;
  leaseMs?: number;
  leasePollMs?: number;
  /** How often admin operations advance (adminLimits.tickMsDefault). */
  adminTickMs?: number;
  /** A move's step timeout and its operation's retry window (adminLimits defaults; step < window). */
  moveStepTimeoutMs?: number;
  moveRetryWindowMs?: number;
  /** Called when this instance becomes primary or steps down. */
  onRole?: (primary: boolean) => void;
}

export interface RegisterTarget { targetId: number; dataAddress: string }
type TargetWithVersion = TargetRecord;


/** msgpack gives null for what was undefined: back to undefined, as admin-ops.ts tests it. */
function loadAdminState(raw: Buffer | undefined): AdminState {
  if (!raw) return emptyAdminState();
  const v = unpack(raw) as AdminState;
  return {
    ...emptyAdminState(), ...v,
    rebalance: v.rebalance ?? undefined,
    moves: (v.moves ?? []).map((m) => ({ ...m, joinedVersion: m.joinedVersion ?? undefined, stepStartedAtMs: m.stepStartedAtMs ?? undefined, failedSinceMs: m.failedSinceMs ?? undefined })),
    leaving: (v.leaving ?? []).map((l) => ({ ...l, failedSinceMs: l.failedSinceMs ?? undefined })),
    errors: (v.errors ?? []).map((e) => ({ ...e, nodeId: e.nodeId ?? undefined })),
    removedNodes: v.removedNodes ?? [],
  };
}

export class MgmtdService {
  readonly instanceId = randomBytes(8).toString('hex');
  private readonly heartbeatTimeoutMs: number;
  private readonly livenessCheckMs: number;
  private readonly leaseMs: number;
  private readonly leasePollMs: number;

  private primary = false;
  private leaseValidUntilMs = 0;
  private lastLease: Lease | undefined;
  private stopped = false;
  /** Ends the lease loop's current wait early (stop); its timer goes with it. */
  private wake: (() => void) | undefined;
  private leaseLoopDone: Promise<void> = Promise.resolve();
  private livenessTimer: NodeJS.Timeout | undefined;
  /** Mutations run one at a time, so persistence happens in the order of the changes. */
  private queue: Promise<unknown> = Promise.resolve();

  private version = 0;
  private nodes = new Map<number, NodeRecord>();
  private targets = new Map<number, TargetWithVersion>();
  private chains = new Map<number, ChainRecord>();
  private tables = new Map<number, ChainTableRecord>();
  private lastHeartbeatMs = new Map<number, number>();
  private appliedVersion = new Map<number, number>();
  private restarted = new Set<number>();
  private syncDone = new Set<number>();
  /** Each target's space as its daemon last reported it (kept in memory only, not routing). */
  private space = new Map<number, { capacityBytes: number; freeBytes: number }>();
  /** Each target's chunk count and running resync, from its heartbeats (soft state). */
  private chunkCounts = new Map<number, number>();
  private resyncs = new Map<number, ResyncProgress>();
  /** What each target's stray sweep removed since its daemon started, from its heartbeats (soft state). */
  private swept = new Map<number, SweptChunks>();
  /** Each node's data-plane byte rates, from its heartbeats' counters (soft state). */
  private readonly throughput = new NodeThroughput();
  /** Admin operations under way (persisted: a new primary continues them). */
  private adminState: AdminState = emptyAdminState();
  private adminTimer: NodeJS.Timeout | undefined;
  private readonly moveTiming: admin.MoveTiming;
  /** The records by reference, for admin-ops.ts. */
  private readonly records: Records = (() => {
    const self = this;
    return {
      get version() { return self.version; },
      get nodes() { return self.nodes; },
      get targets() { return self.targets; },
      get chains() { return self.chains; },
      get tables() { return self.tables; },
      get space() { return self.space; },
      alive: (nodeId: number) => self.alive(nodeId),
    } as Records;
  })();
  private untrackMetrics: () => void = () => {};

  /** What /metrics shows of this mgmtd (src/metrics/services.ts), read at scrape time. */
  metricsView(): MgmtdView {
    const now = Date.now();
    return {
      primary: this.isPrimary,
      routingVersion: this.version,
      targets: [...this.targets.values()].map((t) => ({ targetId: t.targetId, state: t.state, ...this.space.get(t.targetId) })),
      nodes: this.nodes.size,
      nodesAlive: [...this.nodes.keys()].filter((id) => this.alive(id, now)).length,
    };
  }

  private constructor(private readonly kv: KvBackend, private readonly options: MgmtdOptions) {
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? clusterLimits.heartbeatTimeoutMsDefault;
    this.livenessCheckMs = options.livenessCheckMs ?? clusterLimits.livenessCheckMsDefault;
    this.leaseMs = options.leaseMs ?? clusterLimits.leaseMsDefault;
    this.leasePollMs = options.leasePollMs ?? clusterLimits.leasePollMsDefault;
    this.moveTiming = {
      stepTimeoutMs: options.moveStepTimeoutMs ?? adminLimits.moveStepTimeoutMsDefault,
      retryWindowMs: options.moveRetryWindowMs ?? adminLimits.moveRetryWindowMsDefault,
    };
    for (const [name, v] of Object.entries({ heartbeatTimeoutMs: this.heartbeatTimeoutMs, livenessCheckMs: this.livenessCheckMs, leaseMs: this.leaseMs, leasePollMs: this.leasePollMs, ...this.moveTiming })) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer`);
    }
    if (this.moveTiming.stepTimeoutMs >= this.moveTiming.retryWindowMs) throw new RangeError('moveStepTimeoutMs must be shorter than moveRetryWindowMs');
  }

  /** Starts as a standby and takes the lease when it is free. */
  /**
   * The client tokens meta last listed ("uid:tokenId,..."), kept so a restarted mgmtd admits
   * the same clients before meta's next push (standbys share them through the KV too).
   */
  async saveClientTokens(text: string): Promise<void> {
    await this.kv.transact((tx) => tx.put(clusterKeys.clientTokens, pack({ tokens: text })));
  }

  async loadClientTokens(): Promise<string | undefined> {
    const raw = await this.kv.transact((tx) => tx.get(clusterKeys.clientTokens));
    if (!raw) return undefined;
    const value = unpack(raw) as { tokens?: unknown };
    return typeof value?.tokens === 'string' ? value.tokens : undefined;
  }

  static start(kv: KvBackend, options: MgmtdOptions): MgmtdService {
    if (typeof options?.address !== 'string') throw new TypeError('options.address must be a string');
    const service = new MgmtdService(kv, options);
    service.leaseLoopDone = service.leaseLoop();
    service.untrackMetrics = trackMgmtd(() => service.metricsView());
    return service;
  }

  get isPrimary(): boolean {
    return this.primary && Date.now() < this.leaseValidUntilMs;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.untrackMetrics();
    this.wake?.();
    await this.leaseLoopDone;
    const wasPrimary = this.primary;
    this.stepDown();
    await this.queue.catch(() => {});
    if (wasPrimary) await release(this.kv, this.instanceId).catch(() => {});
  }

  // ---------------------------------------------------------------- RPC methods

  registerNode(node: NodeRecord, targets: RegisterTarget[]): Promise<{ version: number }> {
    if (targets.length > clusterLimits.targetsPerNodeMax) throw new RangeError(`a node has at most ${clusterLimits.targetsPerNodeMax} targets`);
    return this.exclusive(async () => {
      if (this.adminState.removedNodes.includes(node.nodeId)) {
        throw new MillpondError('EPERM', `node ${node.nodeId} was removed from the cluster for good (admin remove-node): start this host's daemon with a new --node-id and new targets`);
      }
      // A target stays bound to the node that registered it first (design §10); checked before
      // anything changes.
      for (const { targetId } of targets) {
        const owner = this.targets.get(targetId)?.nodeId;
        if (owner !== undefined && owner !== node.nodeId) throw new MillpondError('EACCES', `target ${targetId} belongs to node ${owner}, not node ${node.nodeId}`);
      }
      const dirty = emptyDirty();
      if (!this.nodes.has(node.nodeId) && this.nodes.size >= clusterLimits.nodesMax) throw new MillpondError('ENOSPC', 'too many nodes');
      const old = this.nodes.get(node.nodeId);
      if (!old || old.kind !== node.kind || old.controlAddress !== node.controlAddress) {
        this.nodes.set(node.nodeId, { ...node });
        dirty.n.add(node.nodeId);
      }
      this.lastHeartbeatMs.set(node.nodeId, Date.now());
      for (const { targetId, dataAddress } of targets) {
        const t = this.targets.get(targetId);
        if (!t) {
          if (this.targets.size >= clusterLimits.targetsMax) throw new MillpondError('ENOSPC', 'too many targets');
          this.targets.set(targetId, { targetId, nodeId: node.nodeId, dataAddress, state: 'offline', localState: 'online', stateVersion: this.version });
          dirty.t.add(targetId);
        } else if (t.dataAddress !== dataAddress || t.localState !== 'online') {
          const moved = t.nodeId !== node.nodeId || t.dataAddress !== dataAddress;
          Object.assign(t, { nodeId: node.nodeId, dataAddress, localState: 'online' });
          dirty.t.add(targetId);
          if (moved) for (const c of this.chains.values()) if (c.targets.includes(targetId)) (c.version++, dirty.c.add(c.chainId));
        }
        this.restarted.add(targetId);
      }
      this.evaluate(dirty);
      await this.persist(dirty);
      return { version: this.version };
    });
  }

  heartbeat(nodeId: number, appliedVersion: number, reports: HeartbeatTarget[], counters?: NodeDataCounters): Promise<{ version: number }> {
    this.requirePrimary();
    if (!this.nodes.has(nodeId)) throw new MillpondError('ENOENT', `node ${nodeId} is not registered`);
    this.lastHeartbeatMs.set(nodeId, Date.now());
    if (counters) this.throughput.sample(nodeId, counters);
    mgmtdHeartbeats.inc();
    this.appliedVersion.set(nodeId, appliedVersion);
    for (const r of reports) {
      const t = this.targets.get(r.targetId);
      if (t && t.nodeId === nodeId && r.capacityBytes !== undefined && r.freeBytes !== undefined) {
        this.space.set(r.targetId, { capacityBytes: r.capacityBytes, freeBytes: r.freeBytes });
      }
      if (t && t.nodeId === nodeId) {
        if (r.chunks !== undefined) this.chunkCounts.set(r.targetId, r.chunks);
        if (r.resync) this.resyncs.set(r.targetId, r.resync);
        else this.resyncs.delete(r.targetId);
        if (r.swept) this.swept.set(r.targetId, r.swept);
      }
    }
    const news = reports.filter((r) => {
      const t = this.targets.get(r.targetId);
      return t && t.nodeId === nodeId && (t.localState !== r.localState
        || (r.localState === 'syncing-done' && t.state === 'syncing' && r.syncedStateVersion === t.stateVersion));
    });
    if (news.length === 0) return Promise.resolve({ version: this.version });
    return this.exclusive(async () => {
      const dirty = emptyDirty();
      for (const r of news) {
        const t = this.targets.get(r.targetId);
        if (!t || t.nodeId !== nodeId) continue;
        if (t.localState !== r.localState) (t.localState = r.localState, dirty.t.add(t.targetId));
        // A report for an earlier syncing round (stateVersion differs) does not count.
        if (r.localState === 'syncing-done' && t.state === 'syncing' && r.syncedStateVersion === t.stateVersion) this.syncDone.add(t.targetId);
      }
      this.evaluate(dirty);
      await this.persist(dirty);
      return { version: this.version };
    });
  }

  getRouting(knownVersion: number | undefined): Routing | { version: number; unchanged: true } {
    this.requirePrimary();
    if (knownVersion === this.version) return { version: this.version, unchanged: true };
    return this.routing();
  }

  /**
   * Creates a chain table with the given chains (each an ordered list of target ids on
   * distinct nodes). Creating the same table again with the same chains is a no-op (retries).
   */
  createChainTable(tableId: number, chains: Array<{ chainId: number; targets: number[] }>): Promise<ChainTableRecord> {
    return this.exclusive(async () => {
      const existing = this.tables.get(tableId);
      const same = (c: { chainId: number; targets: number[] }) => {
        const have = this.chains.get(c.chainId);
        return have !== undefined && [...have.targets].sort().join() === [...c.targets].sort().join();
      };
      if (existing) {
        if (existing.chainIds.join() === chains.map((c) => c.chainId).join() && chains.every(same)) return existing;
        throw new MillpondError('EEXIST', `chain table ${tableId} exists with other chains`);
      }
      if (this.tables.size >= clusterLimits.chainTablesMax) throw new MillpondError('ENOSPC', 'too many chain tables');
      if (this.chains.size + chains.length > clusterLimits.chainsMax) throw new MillpondError('ENOSPC', 'too many chains');
      const dirty = emptyDirty();
      for (const c of chains) {
        if (this.chains.has(c.chainId) && !same(c)) throw new MillpondError('EEXIST', `chain ${c.chainId} exists with other targets`);
        if (c.targets.length < 1 || c.targets.length > clusterLimits.chainLengthMax) throw new MillpondError('EINVAL', `chain ${c.chainId} must have 1..${clusterLimits.chainLengthMax} targets`);
        const nodes = new Set<number>();
        for (const id of c.targets) {
          const t = this.targets.get(id);
          if (!t) throw new MillpondError('ENOENT', `target ${id} is not registered`);
          if (nodes.has(t.nodeId)) throw new MillpondError('EINVAL', `chain ${c.chainId} has two targets on node ${t.nodeId}`);
          nodes.add(t.nodeId);
        }
      }
      for (const c of chains) {
        if (!this.chains.has(c.chainId)) {
          this.chains.set(c.chainId, { chainId: c.chainId, version: 1, targets: [...c.targets], preferred: [...c.targets] });
          dirty.c.add(c.chainId);
        }
      }
      const table = { tableId, version: 1, chainIds: chains.map((c) => c.chainId) };
      this.tables.set(tableId, table);
      dirty.k.add(tableId);
      this.evaluate(dirty);
      await this.persist(dirty);
      return table;
    });
  }

  /**
   * `chainCount` chains of `chainLength` targets on distinct nodes: chain i takes targets in
   * id order from the i-th on (wrapping), skipping nodes it already has, so heads and load
   * rotate over the targets.
   */
  planChains(firstChainId: number, chainCount: number, chainLength: number): Array<{ chainId: number; targets: number[] }> {
    this.requirePrimary();
    const all = [...this.targets.values()].filter((t) => this.nodes.get(t.nodeId)?.kind === 'storage').sort((a, b) => a.targetId - b.targetId);
    return Array.from({ length: chainCount }, (_, i) => {
      const targets: number[] = [];
      const nodes = new Set<number>();
      for (let j = 0; j < all.length && targets.length < chainLength; j++) {
        const t = all[(i + j) % all.length]!;
        if (nodes.has(t.nodeId)) continue;
        nodes.add(t.nodeId);
        targets.push(t.targetId);
      }
      if (targets.length < chainLength) throw new MillpondError('EINVAL', `${chainLength} targets on distinct storage nodes per chain, ${targets.length} available`);
      return { chainId: firstChainId + i, targets };
    });
  }

  // ---------------------------------------------------------------- admin operations (admin-ops.ts)

  /** Runs an admin change inside exclusive(): rules, version, persistence as any change. */
  private mutate<T>(fn: (r: Records, a: AdminState, d: Dirty) => T): Promise<T> {
    return this.exclusive(async () => {
      const dirty = emptyDirty();
      const out = fn(this.records, this.adminState, dirty);
      this.evaluate(dirty);
      await this.persist(dirty);
      return out;
    });
  }

  adminCreateTable(tableId: number, replicas: number, chainCount: number | undefined): Promise<ChainTableRecord> {
    return this.mutate((r, a, d) => admin.createTable(r, a, d, tableId, replicas, chainCount));
  }

  adminGrowTable(tableId: number, replicas: number | undefined, chainCount: number | undefined): Promise<ChainTableRecord> {
    return this.mutate((r, a, d) => admin.growTable(r, a, d, tableId, replicas, chainCount));
  }

  adminRebalance(rateMiBs: number): Promise<{ rateBytesPerS: number }> {
    return this.mutate((_r, a, d) => (admin.setRebalance(a, d, rateMiBs), { rateBytesPerS: a.rebalance?.rateBytesPerS ?? 0 }));
  }

  adminReplace(oldId: number, newId: number): Promise<admin.MoveRecord> {
    return this.mutate((r, a, d) => admin.replaceTarget(r, a, d, oldId, newId));
  }

  adminDrain(nodeId: number): Promise<admin.LeavingNode> {
    return this.mutate((r, a, d) => admin.drain(r, a, d, nodeId, false));
  }

  adminRemoveNode(nodeId: number, force: boolean): Promise<{ removed: boolean; replicasLeft: number }> {
    return this.mutate((r, a, d) => admin.removeNode(r, a, d, nodeId, force));
  }

  /**
   * Everything `millpond admin list` shows: nodes, targets with their space, chains with their
   * preferred order, tables, the operations under way (with drain progress) and the spread.
   */
  adminView() {
    this.requirePrimary();
    const r = this.routing();
    const space = (id: number) => this.space.get(id);
    const a = this.adminState;
    return {
      version: r.version,
      nodes: r.nodes.map((n) => {
        const mine = r.targets.filter((t) => t.nodeId === n.nodeId);
        const sum = (f: (s: { capacityBytes: number; freeBytes: number }) => number) => mine.reduce((x, t) => x + (space(t.targetId) ? f(space(t.targetId)!) : 0), 0);
        const leaving = a.leaving.find((l) => l.nodeId === n.nodeId);
        return {
          ...n, targets: mine.map((t) => t.targetId), capacityBytes: sum((s) => s.capacityBytes), freeBytes: sum((s) => s.freeBytes),
          usedBytes: sum((s) => s.capacityBytes - s.freeBytes), replicas: admin.replicasOn(this.records, n.nodeId),
          drain: leaving ? { ...leaving, left: admin.replicasOn(this.records, n.nodeId) } : undefined,
          throughput: this.throughput.of(n.nodeId),
        };
      }),
      targets: r.targets.map((t) => {
        const s = space(t.targetId);
        const chains = [...this.chains.values()].filter((c) => c.targets.includes(t.targetId));
        return {
          ...t, capacityBytes: s?.capacityBytes, freeBytes: s?.freeBytes, usedBytes: s ? s.capacityBytes - s.freeBytes : undefined,
          full: s ? s.freeBytes < adminLimits.targetFreeBytesMin : false,
          chunks: this.chunkCounts.get(t.targetId), resync: this.resyncs.get(t.targetId), swept: this.swept.get(t.targetId),
          replicas: chains.length, heads: chains.filter((c) => (c.preferred ?? c.targets)[0] === t.targetId).length,
        };
      }),
      chains: [...this.chains.values()].map((c) => ({ chainId: c.chainId, version: c.version, targets: [...c.targets], preferred: [...(c.preferred ?? c.targets)] })),
      chainTables: r.chainTables,
      ops: { rebalance: a.rebalance, leaving: a.leaving, moves: a.moves, moved: a.moved, errors: a.errors, removedNodes: a.removedNodes },
      spread: admin.spreadSummary(this.records, a),
    };
  }

  status(): { primary: boolean; instanceId: string; primaryAddress: string | undefined; routing?: Routing } {
    const primary = this.isPrimary;
    return { primary, instanceId: this.instanceId, primaryAddress: this.primaryAddress(), routing: primary ? this.routing() : undefined };
  }

  /**
   * What the cluster can hold: every byte lands on each target of its chain, and files spread
   * evenly over the chains, so it is the targets' space divided by the chains' length (the
   * replicas). Targets that have not reported their space count nothing; `targets` lists the
   * space each reported.
   */
  capacity(): { capacityBytes: number; freeBytes: number; replicas: number; targets: Array<{ targetId: number; capacityBytes: number; freeBytes: number }> } {
    this.requirePrimary();
    const chains = [...this.chains.values()];
    const replicas = chains.length === 0 ? 1 : Math.max(1, Math.round(chains.reduce((n, c) => n + c.targets.length, 0) / chains.length));
    let capacityBytes = 0;
    let freeBytes = 0;
    for (const [targetId, space] of this.space) {
      if (!this.targets.has(targetId)) continue;
      capacityBytes += space.capacityBytes;
      freeBytes += space.freeBytes;
    }
    // Each target's own space too (what `millpond status` shows per host and target).
    const targets = [...this.space].filter(([id]) => this.targets.has(id)).map(([targetId, sp]) => ({ targetId, ...sp }));
    return { capacityBytes: Math.floor(capacityBytes / replicas), freeBytes: Math.floor(freeBytes / replicas), replicas, targets };
  }

  /** The endpoint of the primary as of the last lease read (maybe this instance). */
  primaryAddress(): string | undefined {
    return this.lastLease && this.lastLease.expiresAtMs > Date.now() ? this.lastLease.address : undefined;
  }

  requirePrimary(): void {
    if (!this.isPrimary) {
      const p = this.primaryAddress();
      throw new MillpondError('ENOTPRIMARY', `this mgmtd is a standby${p && p !== this.options.address ? `; the primary is ${p}` : ''}`);
    }
  }

  // ---------------------------------------------------------------- internals

  private routing(): Routing {
    const now = Date.now();
    return {
      version: this.version,
      nodes: [...this.nodes.values()].map((n) => ({ ...n, alive: this.alive(n.nodeId, now), appliedVersion: this.appliedVersion.get(n.nodeId) ?? 0 })),
      targets: [...this.targets.values()].map((t) => ({ ...t })),
      // The preferred order is mgmtd's own business (rules.ts); clients follow `targets`.
      chains: [...this.chains.values()].map((c) => ({ chainId: c.chainId, version: c.version, targets: [...c.targets] })),
      chainTables: [...this.tables.values()].map((k) => ({ ...k, chainIds: [...k.chainIds] })),
      resyncRates: admin.resyncRates(this.adminState),
    };
  }

  private alive(nodeId: number, now = Date.now()): boolean {
    const last = this.lastHeartbeatMs.get(nodeId);
    return last !== undefined && now - last <= this.heartbeatTimeoutMs;
  }

  /** REQUIRES: inside exclusive(). Applies the state rules; marks what changed. */
  private evaluate(dirty: Dirty): void {
    const now = Date.now();
    const { changedTargets, changedChains } = applyRules({
      targets: this.targets,
      chains: this.chains,
      isAlive: (t) => this.alive(t.nodeId, now),
      restarted: this.restarted,
      syncDone: this.syncDone,
    });
    this.restarted.clear();
    this.syncDone.clear();
    for (const id of changedTargets.keys()) dirty.t.add(id);
    for (const id of changedChains) dirty.c.add(id);
    if (!routingDirty(dirty)) return;
    this.version++;
    for (const id of dirty.forced) {
      const t = this.targets.get(id);
      if (t && t.state === 'syncing') (t.stateVersion = this.version, t.localState = 'online');
    }
    for (const id of changedTargets.keys()) {
      const t = this.targets.get(id)!;
      t.stateVersion = this.version;
      // A target entering syncing has not synced yet, whatever it said before.
      if (t.state === 'syncing') t.localState = 'online';
      else if (t.state === 'serving' && t.localState === 'syncing-done') t.localState = 'uptodate';
    }
  }

  /** REQUIRES: inside exclusive(). Writes the changed records and the version, if we hold the lease. */
  private async persist(dirty: Dirty): Promise<void> {
    if (!routingDirty(dirty) && !dirty.a) return;
    const records: Array<[Buffer, unknown]> = routingDirty(dirty) ? [[clusterKeys.version, { version: this.version }]] : [];
    if (dirty.a) records.push([clusterKeys.adminOps, this.adminState]);
    const deletes = [...[...dirty.dn].map((id) => clusterKeys.record('n', id)), ...[...dirty.dt].map((id) => clusterKeys.record('t', id))];
    const add = (kind: RecordKind, ids: Set<number>, map: Map<number, unknown>) => {
      for (const id of ids) records.push([clusterKeys.record(kind, id), map.get(id)]);
    };
    add('n', new Set([...dirty.n].filter((id) => this.nodes.has(id))), this.nodes);
    add('t', new Set([...dirty.t].filter((id) => this.targets.has(id))), this.targets);
    add('c', dirty.c, this.chains);
    add('k', dirty.k, this.tables);
    try {
      await this.kv.transact(async (tx) => {
        const lease = await readLease(tx);
        if (lease?.holder !== this.instanceId) throw new MillpondError('ENOTPRIMARY', 'this mgmtd lost its lease');
        for (const [key, value] of records) await tx.put(key, pack(value));
        for (const key of deletes) await tx.delete(key);
      });
    } catch (err) {
      // The memory is ahead of the store now; only a reload from the store may serve again.
      this.stepDown();
      throw err instanceof MillpondError ? err : new MillpondError('EIO', `mgmtd could not persist: ${(err as Error).message}`);
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.requirePrimary();
    const run = this.queue.then(() => (this.requirePrimary(), fn()));
    this.queue = run.catch(() => {});
    return run;
  }

  private async leaseLoop(): Promise<void> {
    while (!this.stopped) {
      const startedMs = Date.now();
      try {
        const lease = await tryAcquire(this.kv, this.instanceId, this.options.address, this.leaseMs);
        this.lastLease = lease;
        if (lease?.holder === this.instanceId) {
          this.leaseValidUntilMs = startedMs + this.leaseMs;
          if (!this.primary) await this.becomePrimary();
        } else if (this.primary) {
          this.stepDown();
        }
      } catch (err) {
        if (!this.stopped) mgmtdLog.error(`lease: ${(err as Error).message}`);
      }
      if (this.primary && Date.now() >= this.leaseValidUntilMs) this.stepDown();
      if (this.stopped) break; // stop() came during the round: its wake found no wait
      const waitMs = this.primary ? Math.floor(this.leaseMs / 3) : this.leasePollMs;
      await new Promise<void>((resolve) => {
        // A timer left behind would keep a stopped process alive for up to waitMs.
        const timer = setTimeout(resolve, waitMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private async becomePrimary(): Promise<void> {
    const loaded = await this.kv.transact(async (tx) => {
      const scan = async (kind: RecordKind, max: number) => (await tx.scan(...clusterKeys.range(kind), max)).map(([, v]) => unpack(v));
      const version = await tx.get(clusterKeys.version);
      return {
        version: version ? (unpack(version) as { version: number }).version : 0,
        nodes: (await scan('n', clusterLimits.nodesMax)) as NodeRecord[],
        targets: (await scan('t', clusterLimits.targetsMax)) as TargetWithVersion[],
        chains: (await scan('c', clusterLimits.chainsMax)) as ChainRecord[],
        tables: (await scan('k', clusterLimits.chainTablesMax)) as ChainTableRecord[],
        admin: await tx.get(clusterKeys.adminOps),
      };
    });
    this.version = loaded.version;
    this.nodes = new Map(loaded.nodes.map((n) => [n.nodeId, n]));
    this.targets = new Map(loaded.targets.map((t) => [t.targetId, t]));
    // Chains stored before preferred orders existed prefer the order they have now.
    this.chains = new Map(loaded.chains.map((c) => [c.chainId, { ...c, preferred: c.preferred ?? [...c.targets] }]));
    this.tables = new Map(loaded.tables.map((k) => [k.tableId, k]));
    this.adminState = loadAdminState(loaded.admin);
    const now = Date.now();
    this.lastHeartbeatMs = new Map(loaded.nodes.map((n) => [n.nodeId, now]));
    this.appliedVersion.clear();
    this.restarted.clear();
    this.syncDone.clear();
    this.primary = true;
    this.livenessTimer = setInterval(() => {
      if (!this.isPrimary) return;
      this.exclusive(async () => {
        const dirty = emptyDirty();
        this.evaluate(dirty);
        await this.persist(dirty);
      }).catch(() => {});
    }, this.livenessCheckMs);
    this.adminTimer = setInterval(() => {
      if (!this.isPrimary || (this.adminState.moves.length === 0 && this.adminState.leaving.length === 0 && !this.adminState.rebalance)) return;
      this.mutate((r, a, d) => admin.tick(r, a, d, Date.now(), this.moveTiming)).catch((err) => mgmtdLog.error(`admin: ${(err as Error).message}`));
    }, this.options.adminTickMs ?? adminLimits.tickMsDefault);
    this.options.onRole?.(true);
  }

  private stepDown(): void {
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    this.livenessTimer = undefined;
    if (this.adminTimer) clearInterval(this.adminTimer);
    this.adminTimer = undefined;
    if (!this.primary) return;
    this.primary = false;
    this.leaseValidUntilMs = 0;
    this.options.onRole?.(false);
  }
}

export type { NodeKind };
