/**
 * mgmtd's admin operations on chain tables that serve meanwhile (design §9, after 3FS's
 * admin_cli): create a table by placement, grow it in place, rebalance, replace a target, drain a node, remove
 * a node. They run inside MgmtdService.exclusive() over its records; what they change is
 * marked in `Dirty` and persisted with the routing version like every other change.
 *
 * A replica moves from target F to target T of chain C in two routing changes:
 *   join    T is appended to C (and to C's preferred order) and enters a new syncing round:
 *           state `syncing`, stateVersion = the new routing version. Its predecessor forwards
 *           every new write to it, and its daemon resyncs it from the chains' serving targets
 *           (storage/resync.ts, the same path as a returning target).
 *   leave   once T is `serving` in a round after the join (its daemon reported syncing-done),
 *           F leaves C and T takes F's place in the preferred order (so a head stays a head).
 * A write acknowledged before the join is on F and C's other serving targets, which are the
 * resync's sources; one acknowledged after the join reached T too (T is in the data path). So
 * the chain never holds fewer up-to-date replicas than before, and reads and writes go on.
 * Since a target's state is one for all its chains, T joins only when every chain of it keeps
 * another serving target, and a target takes part in one move at a time.
 *
 * Each step of a move (waiting to join; syncing until `to` serves) has a timeout
 * (adminLimits.moveStepTimeoutMsDefault, MgmtdService option moveStepTimeoutMs). A step that
 * times out is undone: `to` leaves the chains again, `from` never left them, so the chain is as
 * it was and no replica is lost. The operation retries (replace: the same move; rebalance and
 * drain: whatever planning picks next) until its retry window since the first failure passes,
 * then ends with an error (`errors`, shown by `admin list ops`; `--wait` fails with it).
 *
 * A rebalance move's copy is bounded in bytes per second: routing tells the destination's
 * daemon its share of the rate (resyncRates: the rate divided among the rebalance moves that
 * have joined), and its resync takes tokens from a bucket for every byte it copies.
 *
 * The state of the operations (moves under way, rebalance on, nodes leaving, errors, removed
 * node ids) is one KV record (keys.ts 'm' 'o'), so a standby that takes over continues them
 * from where they were.
 */
import { MillpondError } from '../errors.js';
import { adminLimits, clusterLimits } from '../limits.js';
import { nextStep, placeChains, spreadOf, skew, type PlacementChain, type PlacementTarget } from './placement.js';
import type { ChainRecord, ChainTableRecord, NodeRecord, TargetRecord } from '../protocol/mgmtd-types.js';

export type MoveReason = 'rebalance' | 'drain' | 'replace';

export interface MoveRecord {
  chainIds: number[];
  from: number;
  to: number;
  reason: MoveReason;
  /** Estimated bytes the move copies (the source's used bytes per chain). */
  bytes: number;
  /** The routing version at which `to` joined the chains; absent until it joined. */
  joinedVersion?: number;
  startedAtMs: number;
  /** When the current step (joining, then syncing) began; absent: startedAtMs. */
  stepStartedAtMs?: number;
  /** replace: when its first attempt failed (the retry window counts from there). */
  failedSinceMs?: number;
}

/** An operation that ended because a move could not finish. */
export interface OpError {
  reason: MoveReason;
  /** drain: the node that was draining. */
  nodeId?: number;
  chainIds: number[];
  from: number;
  to: number;
  code: 'ETIMEDOUT';
  message: string;
  atMs: number;
}

/** Step timeout and retry window of moves (adminLimits defaults; tests shorten them). */
export interface MoveTiming {
  stepTimeoutMs: number;
  retryWindowMs: number;
}

export const defaultMoveTiming = (): MoveTiming => ({ stepTimeoutMs: adminLimits.moveStepTimeoutMsDefault, retryWindowMs: adminLimits.moveRetryWindowMsDefault });

export interface LeavingNode {
  nodeId: number;
  /** Removed for good once its replicas are gone (a dead node); else waits for remove-node. */
  force: boolean;
  /** Replicas on the node when the drain began, and how many have left since. */
  total: number;
  moved: number;
  bytes: number;
  /** When a move off it first failed since the last one that finished. */
  failedSinceMs?: number;
}

export interface AdminState {
  /** Set while rebalance runs: the pace of its moves (failedSinceMs: as LeavingNode's). */
  rebalance?: { rateBytesPerS: number; failedSinceMs?: number };
  leaving: LeavingNode[];
  moves: MoveRecord[];
  /** Totals since the cluster began. */
  moved: { replicas: number; bytes: number };
  /** Unused since copies are bounded by a token bucket (kept: older records have it). */
  nextMoveAtMs: number;
  /** Operations that ended with an error, the newest last (adminLimits.opErrorsMax). */
  errors: OpError[];
  /** Node ids removed for good: registering one again is refused (adminLimits.removedNodesMax). */
  removedNodes: number[];
}

export const emptyAdminState = (): AdminState => ({ leaving: [], moves: [], moved: { replicas: 0, bytes: 0 }, nextMoveAtMs: 0, errors: [], removedNodes: [] });

/** What an operation changed, for MgmtdService to version and persist. */
export interface Dirty {
  n: Set<number>;
  t: Set<number>;
  c: Set<number>;
  k: Set<number>;
  /** Records to delete. */
  dn: Set<number>;
  dt: Set<number>;
  /** Targets that enter a new syncing round (stateVersion = the new routing version). */
  forced: Set<number>;
  /** The admin state changed. */
  a: boolean;
}

export const emptyDirty = (): Dirty => ({ n: new Set(), t: new Set(), c: new Set(), k: new Set(), dn: new Set(), dt: new Set(), forced: new Set(), a: false });
export const routingDirty = (d: Dirty) => d.n.size + d.t.size + d.c.size + d.k.size + d.dn.size + d.dt.size > 0;

/** The records the operations work on (MgmtdService's, by reference). */
export interface Records {
  version: number;
  nodes: Map<number, NodeRecord>;
  targets: Map<number, TargetRecord>;
  chains: Map<number, ChainRecord>;
  tables: Map<number, ChainTableRecord>;
  space: Map<number, { capacityBytes: number; freeBytes: number }>;
  alive(nodeId: number): boolean;
}

const preferredOf = (c: ChainRecord) => c.preferred ?? c.targets;

function storageTargets(r: Records): TargetRecord[] {
  return [...r.targets.values()].filter((t) => r.nodes.get(t.nodeId)?.kind === 'storage');
}

function busyTargets(a: AdminState): Set<number> {
  return new Set(a.moves.flatMap((m) => [m.from, m.to]));
}

/** The placement picture: usable = serving, node alive, not leaving, not moving. */
function picture(r: Records, a: AdminState): { targets: PlacementTarget[]; chains: PlacementChain[] } {
  const leaving = new Set(a.leaving.map((l) => l.nodeId));
  const targets = storageTargets(r).map((t) => ({
    targetId: t.targetId, nodeId: t.nodeId, freeBytes: r.space.get(t.targetId)?.freeBytes,
    usable: t.state === 'serving' && r.alive(t.nodeId) && !leaving.has(t.nodeId),
  }));
  const moving = new Set(a.moves.flatMap((m) => m.chainIds));
  const chains = [...r.chains.values()].filter((c) => !moving.has(c.chainId)).map((c) => ({ chainId: c.chainId, targets: [...preferredOf(c)] }));
  return { targets, chains };
}

/** A chain table of `chainCount` chains of `replicas` placed over the serving targets. */
/**
 * `count` new chains of `replicas` targets each, placed over `targets` beside the chains that
 * exist (placement.ts: distinct hosts, the least loaded first), with ids after the highest in
 * use; recorded in `r` and marked dirty. Returns their ids in placement order.
 */
function addChains(r: Records, d: Dirty, targets: PlacementTarget[], count: number, replicas: number): number[] {
  if (r.chains.size + count > clusterLimits.chainsMax) throw new MillpondError('ENOSPC', 'too many chains');
  const first = Math.max(0, ...r.chains.keys()) + 1;
  const existing = [...r.chains.values()].map((c) => ({ chainId: c.chainId, targets: [...preferredOf(c)] }));
  const placed = placeChains(targets, existing, count, replicas, first);
  for (const c of placed) {
    r.chains.set(c.chainId, { chainId: c.chainId, version: 1, targets: [...c.targets], preferred: [...c.targets] });
    d.c.add(c.chainId);
  }
  return placed.map((c) => c.chainId);
}

export function createTable(r: Records, a: AdminState, d: Dirty, tableId: number, replicas: number, chainCount: number | undefined): ChainTableRecord {
  if (r.tables.has(tableId)) throw new MillpondError('EEXIST', `chain table ${tableId} exists`);
  if (r.tables.size >= clusterLimits.chainTablesMax) throw new MillpondError('ENOSPC', 'too many chain tables');
  const { targets } = picture(r, a);
  const usable = targets.filter((t) => t.usable).length;
  const count = chainCount ?? Math.max(1, Math.ceil((usable * adminLimits.chainsPerTargetDefault) / replicas));
  const table = { tableId, version: 1, chainIds: addChains(r, d, targets, count, replicas) };
  r.tables.set(tableId, table);
  d.k.add(tableId);
  return table;
}

/**
 * Grows table `tableId` in place (after a host's targets joined): `chainCount` new chains of
 * `replicas` (default: as many as the table's chains have) placed over the serving targets
 * (placement favours the least loaded, so the new targets take them), appended to the table's
 * chain list at a new table version. Files keep the chains of the version their layout records
 * (fs/layout.ts tableChainsAt); files created afterwards spread over the grown table. Existing
 * data reaches the new targets by `rebalance`, which moves replicas of the old chains onto them
 * at its bounded rate. Default chainCount: what brings the table to
 * adminLimits.chainsPerTargetDefault replicas per usable target (at least one).
 */
export function growTable(r: Records, a: AdminState, d: Dirty, tableId: number, replicas: number | undefined, chainCount: number | undefined): ChainTableRecord {
  const table = r.tables.get(tableId);
  if (!table) throw new MillpondError('ENOENT', `chain table ${tableId} does not exist`);
  const versions = table.chainCounts ?? Array.from({ length: table.version }, () => table.chainIds.length);
  if (versions.length !== table.version) throw new MillpondError('EIO', `chain table ${tableId} has ${versions.length} chain counts for ${table.version} versions`);
  if (table.version >= clusterLimits.chainTableVersionsMax) throw new MillpondError('ENOSPC', `chain table ${tableId} has ${table.version} versions, the limit`);
  const length = replicas ?? Math.max(1, ...table.chainIds.map((id) => r.chains.get(id)?.targets.length ?? 0));
  if (!Number.isSafeInteger(length) || length < 1 || length > adminLimits.replicasMax) throw new MillpondError('EINVAL', `replicas must be 1..${adminLimits.replicasMax}`);
  const { targets } = picture(r, a);
  const usable = targets.filter((t) => t.usable).length;
  const count = chainCount ?? Math.max(1, Math.ceil((usable * adminLimits.chainsPerTargetDefault) / length) - table.chainIds.length);
  if (!Number.isSafeInteger(count) || count < 1) throw new MillpondError('EINVAL', 'a table grows by at least one chain');
  const added = addChains(r, d, targets, count, length);
  // Appended, never reordered: version v's chains stay the first chainCounts[v - 1].
  table.chainIds = [...table.chainIds, ...added];
  table.chainCounts = [...versions, table.chainIds.length];
  table.version++;
  d.k.add(tableId);
  return table;
}

export function setRebalance(a: AdminState, d: Dirty, rateMiBs: number): void {
  if (!Number.isFinite(rateMiBs) || rateMiBs < 0 || rateMiBs > adminLimits.rebalanceRateMiBsMax) throw new MillpondError('EINVAL', `rate must be 0..${adminLimits.rebalanceRateMiBsMax} MiB/s (0 stops rebalance)`);
  a.rebalance = rateMiBs === 0 ? undefined : { rateBytesPerS: Math.round(rateMiBs * 1024 * 1024) };
  a.nextMoveAtMs = 0;
  d.a = true;
}

function estimateBytes(r: Records, targetId: number): number {
  const s = r.space.get(targetId);
  if (!s) return 0;
  const chains = [...r.chains.values()].filter((c) => c.targets.includes(targetId)).length;
  return Math.floor(Math.max(0, s.capacityBytes - s.freeBytes) / Math.max(1, chains));
}

/** Replaces `oldId` by `newId` in every chain of `oldId`; the new one resyncs. */
export function replaceTarget(r: Records, a: AdminState, d: Dirty, oldId: number, newId: number): MoveRecord {
  const old = r.targets.get(oldId);
  const next = r.targets.get(newId);
  if (!old) throw new MillpondError('ENOENT', `target ${oldId} is not registered`);
  if (!next || r.nodes.get(next.nodeId)?.kind !== 'storage') throw new MillpondError('ENOENT', `target ${newId} is not a registered storage target`);
  if (oldId === newId) throw new MillpondError('EINVAL', 'a target cannot replace itself');
  const busy = busyTargets(a);
  if (busy.has(oldId) || busy.has(newId)) throw new MillpondError('EBUSY', `target ${busy.has(oldId) ? oldId : newId} is moving already`);
  if (a.moves.length >= clusterLimits.chainsMax) throw new MillpondError('ENOSPC', 'too many moves');
  if (!r.alive(next.nodeId) || next.state !== 'serving') throw new MillpondError('EINVAL', `target ${newId} is not serving (${next.state})`);
  const chains = [...r.chains.values()].filter((c) => c.targets.includes(oldId));
  if (chains.length === 0) throw new MillpondError('EINVAL', `target ${oldId} is in no chain`);
  for (const c of chains) {
    if (c.targets.includes(newId)) throw new MillpondError('EINVAL', `target ${newId} is in chain ${c.chainId} already`);
    const clash = c.targets.find((id) => id !== oldId && r.targets.get(id)?.nodeId === next.nodeId);
    if (clash !== undefined) throw new MillpondError('EINVAL', `chain ${c.chainId} has target ${clash} on node ${next.nodeId} already`);
  }
  const move: MoveRecord = { chainIds: chains.map((c) => c.chainId), from: oldId, to: newId, reason: 'replace', bytes: estimateBytes(r, oldId) * chains.length, startedAtMs: Date.now() };
  a.moves.push(move);
  d.a = true;
  return move;
}

export function drain(r: Records, a: AdminState, d: Dirty, nodeId: number, force: boolean): LeavingNode {
  const node = r.nodes.get(nodeId);
  if (!node || node.kind !== 'storage') throw new MillpondError('ENOENT', `node ${nodeId} is not a registered storage node`);
  const have = a.leaving.find((l) => l.nodeId === nodeId);
  if (have) {
    if (force && !have.force) (have.force = true, d.a = true);
    return have;
  }
  if (a.leaving.length >= adminLimits.drainingNodesMax) throw new MillpondError('ENOSPC', `at most ${adminLimits.drainingNodesMax} nodes drain at once`);
  const mine = new Set(storageTargets(r).filter((t) => t.nodeId === nodeId).map((t) => t.targetId));
  const total = [...r.chains.values()].reduce((n, c) => n + c.targets.filter((id) => mine.has(id)).length, 0);
  const leaving = { nodeId, force, total, moved: 0, bytes: 0 };
  a.leaving.push(leaving);
  d.a = true;
  return leaving;
}

/** Replicas still on the node's targets (chains of them, moves under way included). */
export function replicasOn(r: Records, nodeId: number): number {
  const mine = new Set([...r.targets.values()].filter((t) => t.nodeId === nodeId).map((t) => t.targetId));
  return [...r.chains.values()].reduce((n, c) => n + c.targets.filter((id) => mine.has(id)).length, 0);
}

function deleteNode(r: Records, a: AdminState, d: Dirty, nodeId: number): void {
  for (const t of [...r.targets.values()]) {
    if (t.nodeId !== nodeId) continue;
    r.targets.delete(t.targetId);
    r.space.delete(t.targetId);
    d.dt.add(t.targetId);
  }
  r.nodes.delete(nodeId);
  d.dn.add(nodeId);
  a.leaving = a.leaving.filter((l) => l.nodeId !== nodeId);
  // Its id is not given out again: a forgotten daemon (or a disk put back) that registers with
  // it would rejoin with targets whose data the cluster has written off.
  a.removedNodes = [...a.removedNodes.filter((id) => id !== nodeId), nodeId].slice(-adminLimits.removedNodesMax);
  d.a = true;
}

/**
 * A drained node leaves (its daemon must be stopped: a running one would register again);
 * `force`: a dead node is removed for good, its replicas replaced from the survivors first.
 */
export function removeNode(r: Records, a: AdminState, d: Dirty, nodeId: number, force: boolean): { removed: boolean; replicasLeft: number } {
  const node = r.nodes.get(nodeId);
  if (!node) throw new MillpondError('ENOENT', `node ${nodeId} is not registered`);
  if (r.alive(nodeId)) throw new MillpondError('EBUSY', `node ${nodeId} is running: stop its daemon first`);
  const left = replicasOn(r, nodeId);
  if (left === 0) {
    deleteNode(r, a, d, nodeId);
    return { removed: true, replicasLeft: 0 };
  }
  if (!force) throw new MillpondError('EBUSY', `node ${nodeId} still holds ${left} replica(s): drain it first, or --force for a dead node`);
  drain(r, a, d, nodeId, true);
  return { removed: false, replicasLeft: left };
}

/**
 * One step of the operations: moves that may join do, moves whose target is serving again
 * finish, moves whose target died are undone, new moves start (bounded, paced), and forced
 * removals that are drained complete. REQUIRES: inside exclusive().
 */
export function tick(r: Records, a: AdminState, d: Dirty, nowMs: number, timing: MoveTiming = defaultMoveTiming()): void {
  for (const m of [...a.moves]) advance(r, a, d, m, nowMs, timing);
  for (const l of [...a.leaving]) if (l.force && replicasOn(r, l.nodeId) === 0 && !r.alive(l.nodeId)) deleteNode(r, a, d, l.nodeId);
  startMoves(r, a, d, nowMs, timing);
}

function dropMove(a: AdminState, d: Dirty, m: MoveRecord): void {
  a.moves = a.moves.filter((x) => x !== m);
  d.a = true;
}

/** Takes `to` out of the chains it joined (`from` is still in them): the chains are as before. */
function undoJoin(d: Dirty, m: MoveRecord, chains: ChainRecord[]): void {
  for (const c of chains) {
    if (!c.targets.includes(m.to) || m.joinedVersion === undefined) continue;
    c.targets = c.targets.filter((id) => id !== m.to);
    c.preferred = preferredOf(c).filter((id) => id !== m.to);
    c.version++;
    d.c.add(c.chainId);
  }
  m.joinedVersion = undefined;
}

/**
 * A step of `m` timed out (undone already): the operation retries within its window, else it
 * ends with an error. The window counts from the operation's first failure since a move of it
 * last finished.
 */
function failMove(r: Records, a: AdminState, d: Dirty, m: MoveRecord, nowMs: number, timing: MoveTiming, message: string): void {
  d.a = true;
  const fromNode = r.targets.get(m.from)?.nodeId;
  const leaving = m.reason === 'drain' ? a.leaving.find((l) => l.nodeId === fromNode) : undefined;
  const holder: { failedSinceMs?: number } | undefined = m.reason === 'replace' ? m : m.reason === 'rebalance' ? a.rebalance : leaving;
  if (holder) holder.failedSinceMs ??= nowMs;
  const expired = !holder || nowMs - holder.failedSinceMs! >= timing.retryWindowMs;
  if (m.reason === 'replace' && !expired) {
    m.stepStartedAtMs = nowMs; // the same move again
    return;
  }
  dropMove(a, d, m);
  if (!expired) return; // planning picks a move again
  a.errors = [...a.errors, {
    reason: m.reason, nodeId: m.reason === 'drain' ? fromNode : undefined, chainIds: m.chainIds, from: m.from, to: m.to, code: 'ETIMEDOUT' as const,
    message: `${m.reason} ended: moving chain(s) ${m.chainIds.join(',')} from target ${m.from} to ${m.to} ${message}; retried for ${timing.retryWindowMs} ms; the chains keep target ${m.from}`,
    atMs: nowMs,
  }].slice(-adminLimits.opErrorsMax);
  if (m.reason === 'rebalance') a.rebalance = undefined;
  if (leaving) a.leaving = a.leaving.filter((l) => l !== leaving);
}

function advance(r: Records, a: AdminState, d: Dirty, m: MoveRecord, nowMs: number, timing: MoveTiming): void {
  const to = r.targets.get(m.to);
  const chains = m.chainIds.map((id) => r.chains.get(id)).filter((c): c is ChainRecord => c !== undefined);
  if (!to || !r.alive(to.nodeId) || chains.length === 0) {
    // The destination died (or the chains are gone): undo the join; planning starts again.
    undoJoin(d, m, chains);
    dropMove(a, d, m);
    return;
  }
  const stepStartedMs = m.stepStartedAtMs ?? m.startedAtMs;
  if (nowMs - stepStartedMs > timing.stepTimeoutMs) {
    const step = m.joinedVersion === undefined ? 'could not join (another replica of its chains was not serving)' : `did not finish syncing (target ${m.to} ${to.state})`;
    undoJoin(d, m, chains);
    failMove(r, a, d, m, nowMs, timing, `${step} within ${timing.stepTimeoutMs} ms`);
    return;
  }
  if (m.joinedVersion === undefined) {
    // Join only when no chain of `to` (the moved ones included) would lose its last serving
    // target: `to` stops serving its other chains while it syncs.
    const mine = [...r.chains.values()].filter((c) => c.targets.includes(m.to) || m.chainIds.includes(c.chainId));
    const safe = mine.every((c) => c.targets.some((id) => id !== m.to && r.targets.get(id)?.state === 'serving'));
    if (!safe) return;
    for (const c of chains) {
      if (c.targets.length >= clusterLimits.chainLengthMax) throw new MillpondError('EINVAL', `chain ${c.chainId} is at its length limit`);
      c.targets = [...c.targets, m.to];
      c.preferred = [...preferredOf(c), m.to];
      c.version++;
      d.c.add(c.chainId);
    }
    to.state = 'syncing';
    to.localState = 'online';
    d.t.add(m.to);
    d.forced.add(m.to);
    m.joinedVersion = r.version + 1; // the version this change is persisted at (evaluate bumps it)
    m.stepStartedAtMs = nowMs;
    d.a = true;
    return;
  }
  if (to.state !== 'serving' || to.stateVersion <= m.joinedVersion) return;
  // Synced: `from` leaves, `to` takes its place in the preferred order.
  for (const c of chains) {
    const pref = preferredOf(c).filter((id) => id !== m.to);
    const at = pref.indexOf(m.from);
    if (at >= 0) pref[at] = m.to;
    else pref.push(m.to);
    c.preferred = pref;
    c.targets = c.targets.filter((id) => id !== m.from);
    c.version++;
    d.c.add(c.chainId);
  }
  const from = r.targets.get(m.from);
  const leaving = from && a.leaving.find((l) => l.nodeId === from.nodeId);
  if (leaving) (leaving.moved += chains.length, leaving.bytes += m.bytes, leaving.failedSinceMs = undefined);
  if (m.reason === 'rebalance' && a.rebalance) a.rebalance.failedSinceMs = undefined;
  a.moved.replicas += chains.length;
  a.moved.bytes += m.bytes;
  dropMove(a, d, m);
}

function startMoves(r: Records, a: AdminState, d: Dirty, nowMs: number, timing: MoveTiming): void {
  const leaving = new Set(a.leaving.map((l) => l.nodeId));
  for (let i = 0; i < adminLimits.movesInflightMax && a.moves.length < adminLimits.movesInflightMax; i++) {
    if (!a.rebalance && leaving.size === 0) return;
    const { targets, chains } = picture(r, a);
    const step = nextStep(targets, chains, { busy: busyTargets(a), leaving, headsToo: a.rebalance !== undefined });
    if (!step) {
      // Rebalance runs until the spread is balanced, then turns itself off; after a failed
      // move it waits (its destination may be syncing still) until its retry window ends.
      if (a.rebalance && a.moves.length === 0 && leaving.size === 0) {
        const since = a.rebalance.failedSinceMs;
        if (since !== undefined && nowMs - since < timing.retryWindowMs) return;
        if (since !== undefined) {
          a.errors = [...a.errors, { reason: 'rebalance' as const, chainIds: [], from: 0, to: 0, code: 'ETIMEDOUT' as const, atMs: nowMs,
            message: `rebalance ended: a move failed ${nowMs - since} ms ago and none could be started since; the chains keep their replicas` }].slice(-adminLimits.opErrorsMax);
        }
        a.rebalance = undefined;
        d.a = true;
      }
      return;
    }
    const c = r.chains.get(step.chainId)!;
    if (step.kind === 'head') {
      c.preferred = [step.head, ...preferredOf(c).filter((id) => id !== step.head)];
      d.c.add(c.chainId); // rules reorder the chain (and bump its version)
      continue;
    }
    const fromNode = r.targets.get(step.from)?.nodeId;
    const draining = fromNode === undefined || leaving.has(fromNode);
    // Rebalance moves' copies are bounded by its rate (resyncRates), not their starts; moves
    // off a leaving node are not bounded (they are wanted now).
    if (!draining && !a.rebalance) return;
    const bytes = estimateBytes(r, step.from);
    a.moves.push({ chainIds: [step.chainId], from: step.from, to: step.to, reason: draining ? 'drain' : 'rebalance', bytes, startedAtMs: nowMs });
    d.a = true;
  }
}

/** What `admin list` and the status pages show of the spread: max - min over the usable targets. */
export function spreadSummary(r: Records, a: AdminState) {
  const { targets } = picture(r, a);
  const chains = [...r.chains.values()].map((c) => ({ chainId: c.chainId, targets: [...c.targets] }));
  const s = spreadOf(targets, chains);
  const usable = targets.filter((t) => t.usable);
  return {
    replicasSkew: skew(s.replicasPerTarget, usable.map((t) => t.targetId)),
    headsSkew: skew(s.headsPerNode, new Set(usable.map((t) => t.nodeId))),
    replicasPerTarget: Object.fromEntries(s.replicasPerTarget),
    headsPerNode: Object.fromEntries(s.headsPerNode),
    balanced: usable.length > 0 && nextStep(targets, [...r.chains.values()].map((c) => ({ chainId: c.chainId, targets: [...preferredOf(c)] })),
      { busy: new Set(), leaving: new Set(a.leaving.map((l) => l.nodeId)) }) === undefined && a.moves.length === 0,
  };
}

/**
 * What each destination of a rebalance move may copy per second: the rebalance rate shared
 * equally by the rebalance moves that have joined (their copies run at once, on different
 * daemons). Routing carries it; a daemon's resync takes tokens at that rate (resync.ts).
 */
export function resyncRates(a: AdminState): Array<{ targetId: number; bytesPerS: number }> {
  if (!a.rebalance) return [];
  const joined = a.moves.filter((m) => m.reason === 'rebalance' && m.joinedVersion !== undefined);
  const share = Math.max(1, Math.floor(a.rebalance.rateBytesPerS / Math.max(1, joined.length)));
  return joined.map((m) => ({ targetId: m.to, bytesPerS: share }));
}
