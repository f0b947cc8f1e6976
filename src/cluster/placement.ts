/**
 * Placement of chain replicas on targets (design §9, after 3FS's chain-table tooling), as pure
 * functions over a picture of the cluster so they can be tested alone. mgmtd's admin
 * operations (admin.ts) call them.
 *
 * Rules, in order of strength:
 *   1. a chain's replicas are on distinct nodes (hosts), so one host's loss costs a chain one
 *      replica at most;
 *   2. a full target (free bytes below adminLimits.targetFreeBytesMin) or one that is not
 *      usable (not serving, its node dead or draining) gets no new replica;
 *   3. replicas per target are balanced (max - min <= 1 over the usable targets), then replicas
 *      per node;
 *   4. heads (the first of a chain's preferred order) are balanced per node, then per target.
 */
import { MillpondError } from '../errors.js';
import { adminLimits } from '../limits.js';

export interface PlacementTarget {
  targetId: number;
  nodeId: number;
  /** As last reported; unknown counts as not full. */
  freeBytes?: number;
  /** May take new replicas: serving, on a live node that is not draining. */
  usable: boolean;
}

export interface PlacementChain {
  chainId: number;
  /** The preferred order: the head is [0]. */
  targets: number[];
}

/** One step towards the wanted spread. */
export type PlacementStep =
  | { kind: 'move'; chainId: number; from: number; to: number }
  | { kind: 'head'; chainId: number; head: number };

export function isFull(t: PlacementTarget): boolean {
  return t.freeBytes !== undefined && t.freeBytes < adminLimits.targetFreeBytesMin;
}

export interface Spread {
  replicasPerTarget: Map<number, number>;
  replicasPerNode: Map<number, number>;
  headsPerNode: Map<number, number>;
  headsPerTarget: Map<number, number>;
}

/** Counts over every target given (zeros included) and every chain. */
export function spreadOf(targets: readonly PlacementTarget[], chains: readonly PlacementChain[]): Spread {
  const node = new Map(targets.map((t) => [t.targetId, t.nodeId]));
  const s: Spread = { replicasPerTarget: new Map(), replicasPerNode: new Map(), headsPerNode: new Map(), headsPerTarget: new Map() };
  for (const t of targets) {
    s.replicasPerTarget.set(t.targetId, 0);
    s.headsPerTarget.set(t.targetId, 0);
    s.replicasPerNode.set(t.nodeId, 0);
    s.headsPerNode.set(t.nodeId, 0);
  }
  const bump = (m: Map<number, number>, k: number | undefined) => k !== undefined && m.set(k, (m.get(k) ?? 0) + 1);
  for (const c of chains) {
    c.targets.forEach((id, i) => {
      bump(s.replicasPerTarget, id);
      bump(s.replicasPerNode, node.get(id));
      if (i === 0) (bump(s.headsPerTarget, id), bump(s.headsPerNode, node.get(id)));
    });
  }
  return s;
}

/** max - min of the values of `m` for the given keys (0 when none). */
export function skew(m: ReadonlyMap<number, number>, keys: Iterable<number>): number {
  const v = [...keys].map((k) => m.get(k) ?? 0);
  return v.length === 0 ? 0 : Math.max(...v) - Math.min(...v);
}

/**
 * Whether the spread is what rebalance aims at: over the usable targets that are not full,
 * replicas per target differ by at most one, and no chain has a replica on a target that is
 * not usable. (Heads per node are balanced by head steps, see nextStep.)
 */
export function balanced(targets: readonly PlacementTarget[], chains: readonly PlacementChain[]): boolean {
  return nextStep(targets, chains, { busy: new Set(), headsToo: false }) === undefined;
}

/**
 * `count` new chains of `replicas` targets (ids from `firstChainId`), placed over the usable
 * targets that are not full, taking into account the load `existing` chains already put on
 * them. EINVAL when fewer than `replicas` nodes have such a target.
 */
export function placeChains(
  targets: readonly PlacementTarget[], existing: readonly PlacementChain[],
  count: number, replicas: number, firstChainId: number,
): PlacementChain[] {
  if (!Number.isSafeInteger(replicas) || replicas < 1 || replicas > adminLimits.replicasMax) throw new MillpondError('EINVAL', `replicas must be 1..${adminLimits.replicasMax}`);
  if (!Number.isSafeInteger(count) || count < 1) throw new MillpondError('EINVAL', 'the chain count must be a positive integer');
  const open = targets.filter((t) => t.usable && !isFull(t));
  const nodes = new Set(open.map((t) => t.nodeId));
  if (nodes.size < replicas) {
    const full = targets.filter((t) => t.usable && isFull(t)).length;
    throw new MillpondError(full > 0 ? 'ENOSPC' : 'EINVAL',
      `${replicas} replicas need targets on ${replicas} distinct nodes; ${nodes.size} node(s) have a serving target with room${full ? ` (${full} full target(s) left out)` : ''}`);
  }
  const chains = [...existing];
  const out: PlacementChain[] = [];
  for (let i = 0; i < count; i++) {
    const s = spreadOf(targets, chains);
    const chosen: PlacementTarget[] = [];
    const used = new Set<number>();
    for (let r = 0; r < replicas; r++) {
      const best = open
        .filter((t) => !used.has(t.nodeId))
        .sort((a, b) => s.replicasPerTarget.get(a.targetId)! - s.replicasPerTarget.get(b.targetId)!
          || s.replicasPerNode.get(a.nodeId)! - s.replicasPerNode.get(b.nodeId)!
          || a.targetId - b.targetId)[0]!;
      chosen.push(best);
      used.add(best.nodeId);
      // Count it now so the next pick of this chain sees the load.
      s.replicasPerNode.set(best.nodeId, s.replicasPerNode.get(best.nodeId)! + 1);
    }
    const head = [...chosen].sort((a, b) => s.headsPerNode.get(a.nodeId)! - s.headsPerNode.get(b.nodeId)!
      || s.headsPerTarget.get(a.targetId)! - s.headsPerTarget.get(b.targetId)! || a.targetId - b.targetId)[0]!;
    const chain = { chainId: firstChainId + i, targets: [head.targetId, ...chosen.filter((t) => t !== head).map((t) => t.targetId)] };
    out.push(chain);
    chains.push(chain);
  }
  return out;
}

export interface StepOptions {
  /** Targets already moving (as source or destination): one move per target at a time. */
  busy: ReadonlySet<number>;
  /** Nodes whose replicas must all leave (drain, forced removal). */
  leaving?: ReadonlySet<number>;
  /** Also propose head steps (default true). */
  headsToo?: boolean;
}

/**
 * The next step towards the wanted spread, or undefined when it is reached (or blocked by
 * busy targets). First replicas on leaving nodes or unusable targets move away; then the most
 * loaded target gives a chain to the least loaded; then a chain's head passes to a member on
 * a node with fewer heads (no data moves for that: the member is serving already).
 */
export function nextStep(targets: readonly PlacementTarget[], chains: readonly PlacementChain[], o: StepOptions): PlacementStep | undefined {
  const byId = new Map(targets.map((t) => [t.targetId, t]));
  const leaving = o.leaving ?? new Set<number>();
  const open = targets.filter((t) => t.usable && !isFull(t) && !leaving.has(t.nodeId));
  const s = spreadOf(targets, chains);
  const nodesOf = (c: PlacementChain, except: number) => new Set(c.targets.filter((id) => id !== except).map((id) => byId.get(id)?.nodeId));
  const dest = (c: PlacementChain, from: number) => {
    const taken = nodesOf(c, from);
    return open
      .filter((t) => !o.busy.has(t.targetId) && !c.targets.includes(t.targetId) && !taken.has(t.nodeId))
      .sort((a, b) => s.replicasPerTarget.get(a.targetId)! - s.replicasPerTarget.get(b.targetId)!
        || s.replicasPerNode.get(a.nodeId)! - s.replicasPerNode.get(b.nodeId)! || a.targetId - b.targetId)[0];
  };
  // 1. Replicas that must leave.
  for (const c of chains) {
    for (const id of c.targets) {
      const t = byId.get(id);
      // A dead target of a staying node is a failure (replace-target), not a move.
      if (o.busy.has(id) || (t && !leaving.has(t.nodeId))) continue;
      const to = dest(c, id);
      if (to) return { kind: 'move', chainId: c.chainId, from: id, to: to.targetId };
    }
  }
  // 2. Replicas per target.
  const load = (id: number) => s.replicasPerTarget.get(id) ?? 0;
  const heavy = targets.filter((t) => t.usable && !leaving.has(t.nodeId)).filter((t) => !o.busy.has(t.targetId)).sort((a, b) => load(b.targetId) - load(a.targetId) || a.targetId - b.targetId);
  const light = Math.min(...open.map((t) => load(t.targetId)));
  for (const from of heavy) {
    if (load(from.targetId) - light <= 1) break;
    // Prefer giving away a chain it does not head when its node heads more than its share.
    const candidates = chains.filter((c) => c.targets.includes(from.targetId));
    for (const c of candidates) {
      const to = dest(c, from.targetId);
      if (to && load(from.targetId) - load(to.targetId) > 1) return { kind: 'move', chainId: c.chainId, from: from.targetId, to: to.targetId };
    }
  }
  if (o.headsToo === false) return undefined;
  // 3. Heads per node, over the nodes of usable targets.
  const headNodes = new Set(open.map((t) => t.nodeId));
  const heads = (n: number | undefined) => (n === undefined ? 0 : s.headsPerNode.get(n) ?? 0);
  for (const c of [...chains].sort((a, b) => heads(byId.get(b.targets[0]!)?.nodeId) - heads(byId.get(a.targets[0]!)?.nodeId) || a.chainId - b.chainId)) {
    const headNode = byId.get(c.targets[0]!)?.nodeId;
    const better = c.targets.slice(1).map((id) => byId.get(id)).filter((t): t is PlacementTarget => t !== undefined && t.usable && headNodes.has(t.nodeId))
      .sort((a, b) => heads(a.nodeId) - heads(b.nodeId) || a.targetId - b.targetId)[0];
    if (better && heads(headNode) - heads(better.nodeId) > 1) return { kind: 'head', chainId: c.chainId, head: better.targetId };
  }
  return undefined;
}
