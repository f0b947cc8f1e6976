// The move protocol of mgmtd's admin operations (src/cluster/admin-ops.ts) over records:
// join as syncing in a new round, leave only once the new target serves after that round,
// the head's place passes to the new target, a dead destination undoes the join.
import { describe, expect, it } from 'vitest';
import { emptyAdminState, emptyDirty, replaceTarget, removeNode, resyncRates, setRebalance, tick, type Records } from '../../src/cluster/admin-ops.js';
import type { ChainRecord, NodeRecord, TargetRecord } from '../../src/protocol/mgmtd-types.js';

function records(nodes: number[], chains: number[][], dead = new Set<number>()): Records {
  const r: Records = {
    version: 10,
    nodes: new Map(nodes.map((n): [number, NodeRecord] => [n, { nodeId: n, kind: 'storage', controlAddress: '' }])),
    targets: new Map(nodes.map((n): [number, TargetRecord] => [100 + n, { targetId: 100 + n, nodeId: n, dataAddress: `h${n}:1`, state: dead.has(n) ? 'offline' : 'serving', localState: 'uptodate', stateVersion: 1 }])),
    chains: new Map(chains.map((t, i): [number, ChainRecord] => [i + 1, { chainId: i + 1, version: 1, targets: [...t], preferred: [...t] }])),
    tables: new Map(),
    space: new Map(),
    alive: (nodeId) => !dead.has(nodeId),
  };
  return r;
}

describe('admin operations: moving a replica', () => {
  it('joins as syncing in a new round, leaves the old target only once the new one serves after it, and keeps the head in place', () => {
    const r = records([1, 2, 3, 4], [[101, 102, 103]], new Set([1]));
    const a = emptyAdminState();
    replaceTarget(r, a, emptyDirty(), 101, 104);
    let d = emptyDirty();
    tick(r, a, d, 0);
    const c = r.chains.get(1)!;
    expect(c.targets).toEqual([101, 102, 103, 104]);
    expect(r.targets.get(104)!.state).toBe('syncing');
    expect(d.forced.has(104)).toBe(true);
    expect(a.moves[0]!.joinedVersion).toBe(11);
    // Still syncing, or serving from a round before the join: nothing leaves.
    r.version = 11;
    tick(r, a, (d = emptyDirty()), 0);
    expect(c.targets).toContain(101);
    Object.assign(r.targets.get(104)!, { state: 'serving', stateVersion: 11 });
    tick(r, a, (d = emptyDirty()), 0);
    expect(c.targets).toContain(101);
    // Served after the join: 101 leaves, 104 takes its place (the head) in the preferred order.
    Object.assign(r.targets.get(104)!, { stateVersion: 12 });
    tick(r, a, (d = emptyDirty()), 0);
    expect(c.targets).toEqual([102, 103, 104]);
    expect(c.preferred).toEqual([104, 102, 103]);
    expect(a.moves).toEqual([]);
    expect(a.moved.replicas).toBe(1);
    expect(d.c.has(1) && d.a).toBe(true);
    // Node 1 holds nothing now and is dead: it may leave.
    const removed = removeNode(r, a, (d = emptyDirty()), 1, false);
    expect(removed.removed).toBe(true);
    expect(d.dn.has(1) && d.dt.has(101)).toBe(true);
  });

  it('does not join while a chain of the destination would lose its last serving target, and undoes a join when the destination dies', () => {
    const dead = new Set<number>();
    const r = records([1, 2, 3, 4], [[101, 102, 103], [104]]);
    r.alive = (n) => !dead.has(n);
    const a = emptyAdminState();
    replaceTarget(r, a, emptyDirty(), 101, 104);
    tick(r, a, emptyDirty(), 0);
    expect(r.chains.get(1)!.targets).toEqual([101, 102, 103]); // 104 is chain 2's only serving target
    r.chains.get(2)!.targets = [104, 102];
    tick(r, a, emptyDirty(), 0);
    expect(r.chains.get(1)!.targets).toEqual([101, 102, 103, 104]);
    dead.add(4);
    tick(r, a, emptyDirty(), 0);
    expect(r.chains.get(1)!.targets).toEqual([101, 102, 103]);
    expect(a.moves).toEqual([]);
  });

  it('refuses what cannot be done, with stable codes', () => {
    const r = records([1, 2, 3], [[101, 102, 103]]);
    const a = emptyAdminState();
    const code = (fn: () => unknown) => { try { fn(); return 'ok'; } catch (e) { return (e as { code: string }).code; } };
    expect(code(() => replaceTarget(r, a, emptyDirty(), 101, 999))).toBe('ENOENT');
    expect(code(() => replaceTarget(r, a, emptyDirty(), 101, 102))).toBe('EINVAL'); // in the chain already
    expect(code(() => removeNode(r, a, emptyDirty(), 1, false))).toBe('EBUSY'); // alive
    expect(code(() => setRebalance(a, emptyDirty(), -1))).toBe('EINVAL');
  });

  it('rebalance turns itself off once the spread is balanced', () => {
    const r = records([1, 2, 3], [[101, 102, 103], [102, 103, 101], [103, 101, 102]]);
    const a = emptyAdminState();
    setRebalance(a, emptyDirty(), 10);
    tick(r, a, emptyDirty(), 0);
    expect(a.rebalance).toBeUndefined();
    expect(a.moves).toEqual([]);
  });

  it('a step that times out is undone (the chain keeps every replica it had); replace retries within its window, then ends with ETIMEDOUT', () => {
    const r = records([1, 2, 3, 4], [[101, 102, 103]]);
    const a = emptyAdminState();
    const timing = { stepTimeoutMs: 1_000, retryWindowMs: 2_500 };
    const move = replaceTarget(r, a, emptyDirty(), 101, 104);
    const t0 = move.startedAtMs;
    tick(r, a, emptyDirty(), t0, timing);
    expect(r.chains.get(1)!.targets).toEqual([101, 102, 103, 104]);
    // 104 never finishes syncing: after the step timeout it leaves; 101 never left.
    let d = emptyDirty();
    tick(r, a, d, t0 + 1_001, timing);
    expect(r.chains.get(1)!.targets).toEqual([101, 102, 103]);
    expect(r.chains.get(1)!.preferred).toEqual([101, 102, 103]);
    expect(d.c.has(1)).toBe(true);
    expect(a.moves).toHaveLength(1); // retried: it joins again
    expect(a.errors).toEqual([]);
    r.targets.get(104)!.state = 'serving';
    tick(r, a, emptyDirty(), t0 + 1_100, timing);
    expect(r.chains.get(1)!.targets).toEqual([101, 102, 103, 104]);
    r.targets.get(104)!.state = 'syncing';
    tick(r, a, emptyDirty(), t0 + 2_200, timing); // second timeout, still within the window
    expect(a.moves).toHaveLength(1);
    r.targets.get(104)!.state = 'serving';
    tick(r, a, emptyDirty(), t0 + 2_300, timing);
    r.targets.get(104)!.state = 'syncing';
    tick(r, a, emptyDirty(), t0 + 3_400, timing); // a third timeout, the window not over yet
    expect(a.moves).toHaveLength(1);
    r.targets.get(104)!.state = 'serving';
    tick(r, a, emptyDirty(), t0 + 3_450, timing);
    r.targets.get(104)!.state = 'syncing';
    tick(r, a, emptyDirty(), t0 + 4_500, timing); // the window (from the first failure) has passed
    expect(a.moves).toEqual([]);
    expect(r.chains.get(1)!.targets).toEqual([101, 102, 103]);
    expect(a.errors).toHaveLength(1);
    expect(a.errors[0]).toMatchObject({ reason: 'replace', from: 101, to: 104, code: 'ETIMEDOUT', chainIds: [1] });
    expect(a.errors[0]!.message).toMatch(/did not finish syncing .* the chains keep target 101/);
  });

  it('a rebalance whose moves keep timing out turns itself off with ETIMEDOUT; its joined moves share its rate', () => {
    const r = records([1, 2, 3, 4], [[101, 102, 103], [102, 103, 101], [103, 101, 102], [101, 102, 103]]);
    const a = emptyAdminState();
    const timing = { stepTimeoutMs: 1_000, retryWindowMs: 1_500 };
    setRebalance(a, emptyDirty(), 2);
    const before = [...r.chains.values()].map((c) => [...c.targets]);
    tick(r, a, emptyDirty(), 1_000, timing); // a move onto 104 starts
    expect(a.moves).toHaveLength(1);
    tick(r, a, emptyDirty(), 1_000, timing); // it joins
    expect(a.moves[0]!.joinedVersion).toBeDefined();
    expect(resyncRates(a)).toEqual([{ targetId: 104, bytesPerS: 2 * 1024 * 1024 }]);
    tick(r, a, emptyDirty(), 2_001, timing); // times out: undone, rebalance still on
    expect([...r.chains.values()].map((c) => c.targets)).toEqual(before);
    expect(a.rebalance).toBeDefined();
    r.targets.get(104)!.state = 'serving';
    a.nextMoveAtMs = 0;
    tick(r, a, emptyDirty(), 2_100, timing); // planned again
    tick(r, a, emptyDirty(), 2_100, timing); // joined
    r.targets.get(104)!.state = 'syncing';
    tick(r, a, emptyDirty(), 3_600, timing); // window passed: rebalance ends
    expect(a.rebalance).toBeUndefined();
    expect(a.moves).toEqual([]);
    expect([...r.chains.values()].map((c) => c.targets)).toEqual(before);
    expect(a.errors.map((e) => [e.reason, e.code])).toEqual([['rebalance', 'ETIMEDOUT']]);
    expect(resyncRates(a)).toEqual([]);
  });

  it('a node removed for good is remembered, so mgmtd refuses its id', () => {
    const r = records([1, 2, 3, 4], [[101, 102, 103]], new Set([4]));
    const a = emptyAdminState();
    expect(removeNode(r, a, emptyDirty(), 4, false).removed).toBe(true);
    expect(a.removedNodes).toEqual([4]);
  });
});

describe('admin operations: growing a table in place', () => {
  it('appends chains at a new version and records the chain count of every version; a file at an old version keeps its chains', async () => {
    const { growTable } = await import('../../src/cluster/admin-ops.js');
    const { fileChains, tableChainsAt } = await import('../../src/fs/layout.js');
    const r = records([1, 2, 3, 4, 5], [[101, 102, 103], [102, 103, 104], [103, 104, 101], [104, 101, 102]]);
    const old = { tableId: 1, version: 1, chainIds: [1, 2, 3, 4] }; // as tables were made before growing existed
    r.tables.set(1, old);
    const a = emptyAdminState();
    const oldChains = Array.from({ length: 50 }, (_, seed) => fileChains(tableChainsAt(old, 1)!, 3, seed));
    const d = emptyDirty();
    const grown = growTable(r, a, d, 1, undefined, 2);
    expect(grown).toEqual({ tableId: 1, version: 2, chainIds: [1, 2, 3, 4, 5, 6], chainCounts: [4, 6] });
    expect(d.k.has(1) && d.c.has(5) && d.c.has(6)).toBe(true);
    // The new chains have the table's length (3) on distinct nodes, and take the empty target.
    for (const id of [5, 6]) {
      const c = r.chains.get(id)!;
      expect(c.targets).toHaveLength(3);
      expect(new Set(c.targets).size).toBe(3);
      expect(c.targets).toContain(105);
    }
    Array.from({ length: 50 }, (_, seed) => expect(fileChains(tableChainsAt(grown, 1)!, 3, seed)).toEqual(oldChains[seed]));
    // Again: version 3; versions 1 and 2 keep their counts.
    expect(growTable(r, a, emptyDirty(), 1, 3, 1)).toMatchObject({ version: 3, chainCounts: [4, 6, 7] });
    expect(tableChainsAt(grown, 2)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(tableChainsAt(grown, 4)).toBeUndefined();
    // Errors: an unknown table, a grow by nothing, the version limit.
    expect(() => growTable(r, a, emptyDirty(), 9, undefined, 1)).toThrow(/chain table 9 does not exist/);
    expect(() => growTable(r, a, emptyDirty(), 1, undefined, 0)).toThrow(/at least one chain/);
    r.tables.set(2, { tableId: 2, version: 1024, chainIds: [1] });
    expect(() => growTable(r, a, emptyDirty(), 2, undefined, 1)).toThrow(/the limit/);
  });
});
