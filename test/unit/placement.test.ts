// Placement of chain replicas (src/cluster/placement.ts): distinct nodes, balanced replicas
// and heads, full targets left out, and the steps of rebalance and drain reaching a balanced spread.
import { describe, expect, it } from 'vitest';
import { adminLimits } from '../../src/limits.js';
import {
  balanced, nextStep, placeChains, skew, spreadOf, type PlacementChain, type PlacementTarget,
} from '../../src/cluster/placement.js';

/** `nodes` nodes with `perNode` targets each: node n's targets are n*100+1.. */
function cluster(nodes: number, perNode: number, free?: (id: number) => number): PlacementTarget[] {
  const out: PlacementTarget[] = [];
  for (let n = 1; n <= nodes; n++) for (let i = 1; i <= perNode; i++) out.push({ targetId: n * 100 + i, nodeId: n, usable: true, freeBytes: free?.(n * 100 + i) });
  return out;
}

function distinctNodes(targets: PlacementTarget[], chains: PlacementChain[]): void {
  const node = new Map(targets.map((t) => [t.targetId, t.nodeId]));
  for (const c of chains) expect(new Set(c.targets.map((id) => node.get(id))).size, `chain ${c.chainId}`).toBe(c.targets.length);
}

/** Applies steps as mgmtd does (a move replaces from by to at its place) until none is left. */
function converge(targets: PlacementTarget[], chains: PlacementChain[], leaving = new Set<number>()): number {
  let steps = 0;
  for (let step = nextStep(targets, chains, { busy: new Set(), leaving }); step; step = nextStep(targets, chains, { busy: new Set(), leaving })) {
    const c = chains.find((x) => x.chainId === step!.chainId)!;
    if (step.kind === 'move') c.targets = c.targets.map((id) => (id === step!.from ? (step as { to: number }).to : id));
    else c.targets = [step.head, ...c.targets.filter((id) => id !== (step as { head: number }).head)];
    if (++steps > 1000) throw new Error('no convergence');
  }
  return steps;
}

describe('placement', () => {
  it('puts each chain on distinct nodes and balances replicas per target and heads per node', () => {
    const targets = cluster(4, 2);
    const chains = placeChains(targets, [], 16, 3, 1);
    expect(chains.map((c) => c.chainId)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    distinctNodes(targets, chains);
    const s = spreadOf(targets, chains);
    expect(skew(s.replicasPerTarget, s.replicasPerTarget.keys())).toBeLessThanOrEqual(1);
    expect(skew(s.headsPerNode, [1, 2, 3, 4])).toBeLessThanOrEqual(1);
    expect(balanced(targets, chains)).toBe(true);
  });

  it('takes 1..5 replicas, 3 by default in the CLI, and refuses more replicas than nodes', () => {
    const targets = cluster(5, 1);
    for (let r = 1; r <= 5; r++) expect(placeChains(targets, [], 5, r, 1).every((c) => c.targets.length === r)).toBe(true);
    expect(() => placeChains(targets, [], 1, 6, 1)).toThrow(/replicas must be 1..5/);
    expect(() => placeChains(targets, [], 1, 0, 1)).toThrow(/replicas must be/);
    expect(() => placeChains(cluster(2, 3), [], 1, 3, 1)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(adminLimits.replicasDefault).toBe(3);
  });

  it('gives no new chain to a full target or an unusable one', () => {
    const full = 201;
    const targets = cluster(4, 2, (id) => (id === full ? adminLimits.targetFreeBytesMin - 1 : 10 * adminLimits.targetFreeBytesMin));
    targets.find((t) => t.targetId === 302)!.usable = false;
    const chains = placeChains(targets, [], 12, 3, 1);
    const used = new Set(chains.flatMap((c) => c.targets));
    expect(used.has(full)).toBe(false);
    expect(used.has(302)).toBe(false);
    // Every node full but two: 3 replicas cannot be placed, and the error says why.
    const tight = cluster(3, 1, (id) => (id === 101 ? 0 : 1 << 40));
    expect(() => placeChains(tight, [], 1, 3, 1)).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
  });

  it('grow: new chains favour the new node, then rebalance moves replicas until the spread is balanced', () => {
    const four = cluster(4, 2);
    const chains = placeChains(four, [], 16, 3, 1);
    const five = [...four, ...cluster(5, 2).filter((t) => t.nodeId === 5)];
    expect(balanced(five, chains)).toBe(false);
    const more = placeChains(five, chains, 4, 3, 17);
    expect(more.every((c) => c.targets.some((id) => id === 501 || id === 502))).toBe(true);
    const all = [...chains, ...more];
    const steps = converge(five, all);
    expect(steps).toBeGreaterThan(0);
    distinctNodes(five, all);
    const s = spreadOf(five, all);
    expect(skew(s.replicasPerTarget, s.replicasPerTarget.keys())).toBeLessThanOrEqual(1);
    expect(skew(s.headsPerNode, [1, 2, 3, 4, 5])).toBeLessThanOrEqual(1);
    expect(all.every((c) => c.targets.length === 3)).toBe(true);
  });

  it('drain: every replica leaves the leaving node, chains keep their length and distinct nodes', () => {
    const targets = cluster(5, 2);
    const chains = placeChains(targets, [], 20, 3, 1);
    for (const t of targets) if (t.nodeId === 3) t.usable = false; // draining: no new replicas
    converge(targets, chains, new Set([3]));
    expect(chains.flatMap((c) => c.targets).some((id) => Math.floor(id / 100) === 3)).toBe(false);
    expect(chains.every((c) => c.targets.length === 3)).toBe(true);
    distinctNodes(targets, chains);
    const rest = targets.filter((t) => t.nodeId !== 3);
    const s = spreadOf(rest, chains);
    expect(skew(s.replicasPerTarget, s.replicasPerTarget.keys())).toBeLessThanOrEqual(1);
  });

  it('a busy target is not moved again, and a dead target of a staying node is left to replace-target', () => {
    const targets = cluster(4, 1);
    const chains = placeChains(targets, [], 4, 3, 1);
    targets[0]!.usable = false;
    expect(nextStep(targets, chains, { busy: new Set(), headsToo: false })).toBeUndefined();
    const extra = [...targets, { targetId: 501, nodeId: 5, usable: true }];
    const step = nextStep(extra, chains, { busy: new Set(), headsToo: false });
    expect(step?.kind).toBe('move');
    expect(nextStep(extra, chains, { busy: new Set([501]), headsToo: false })).toBeUndefined();
  });
});
