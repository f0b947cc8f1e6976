// The stray sweep's rule and pass (src/storage/stray-sweep.ts), on a real chunk store: chunks of
// a chain their target left go only after the chain has been absent from the target's chains in
// every applied routing for the grace period; a chain that left moments ago, one the target is
// back in, untagged chunks and a version written after the listing stay.
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkStore } from '../../src/index.js';
import { registry } from '../../src/metrics/registry.js';
import type { Routing } from '../../src/protocol/mgmtd-types.js';
import { emptySweepStats, StrayChains, sweepPass } from '../../src/storage/stray-sweep.js';
import { parsePrometheusText, sampleValue } from '../support/prom-text.js';
import { tempDir } from '../support/tmp.js';

const T = 101;
const GRACE_MS = 10_000;

/** A routing of chains (chainId -> member target ids); every target of them registered, serving. */
function routing(version: number, chains: Record<number, number[]>, preferred: Record<number, number[]> = {}): Routing {
  const ids = new Set([T, ...Object.values(chains).flat()]);
  return {
    version, nodes: [], chainTables: [],
    targets: [...ids].map((targetId) => ({ targetId, nodeId: targetId - 100, dataAddress: '', state: 'serving', localState: 'uptodate', stateVersion: 1 })),
    chains: Object.entries(chains).map(([id, targets]) => ({ chainId: Number(id), version: 1, targets, preferred: preferred[Number(id)] ?? targets })),
  };
}

describe('stray chains: the rule', () => {
  it('a chain the target left is stray only after the grace period, without interruption', () => {
    const s = new StrayChains(GRACE_MS);
    s.applied(routing(1, { 1: [T, 102], 2: [T, 102] }), [T], 0);
    expect(s.stray(T, 2, 0)).toBe(false);
    // T leaves chain 2 at 1 s: moments later it is not stray, nor just before the grace ends.
    s.applied(routing(2, { 1: [T, 102], 2: [102, 103] }), [T], 1_000);
    expect(s.stray(T, 2, 1_050)).toBe(false);
    expect(s.any(T, 1_050)).toBe(false);
    expect(s.stray(T, 2, 1_000 + GRACE_MS - 1)).toBe(false);
    // Later routings without T in chain 2 keep the clock running from the first.
    s.applied(routing(3, { 1: [T, 102], 2: [102, 103] }), [T], 5_000);
    expect(s.stray(T, 2, 1_000 + GRACE_MS)).toBe(true);
    expect(s.any(T, 1_000 + GRACE_MS)).toBe(true);
    // Chain 1 (T is in it), untagged chunks (0), a chain the routing lacks, another target: never.
    expect(s.stray(T, 1, 1e9)).toBe(false);
    expect(s.stray(T, 0, 1e9)).toBe(false);
    expect(s.stray(T, 9, 1e9)).toBe(false);
    expect(s.stray(102, 2, 1e9)).toBe(false);

    // Moved back onto T (joined, syncing): not stray; left again, the clock starts again.
    s.applied(routing(4, { 1: [T, 102], 2: [102, 103, T] }), [T], 20_000);
    expect(s.stray(T, 2, 20_001)).toBe(false);
    s.applied(routing(5, { 1: [T, 102], 2: [102, 103] }), [T], 21_000);
    expect(s.stray(T, 2, 21_000 + GRACE_MS - 1)).toBe(false);
    expect(s.stray(T, 2, 21_000 + GRACE_MS)).toBe(true);
    // Only in the chain's preferred order counts as a member too.
    s.applied(routing(6, { 1: [T, 102], 2: [102, 103] }, { 2: [T, 102, 103] }), [T], 40_000);
    expect(s.stray(T, 2, 1e9)).toBe(false);
  });

  it('a target the routing does not know has no stray chain', () => {
    const s = new StrayChains(0);
    const r = routing(1, { 1: [102, 103] });
    r.targets = r.targets.filter((t) => t.targetId !== T);
    s.applied(r, [T], 0);
    expect(s.any(T, 1e9)).toBe(false);
    expect(s.stray(T, 1, 1e9)).toBe(false);
  });
});

describe('stray sweep: a pass', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function store(): Promise<ChunkStore> {
    const t = tempDir('stray-sweep');
    const s = await ChunkStore.open(t.dir, { syncWrites: false });
    cleanups.push(() => (s.close(), t.cleanup()));
    return s;
  }

  const removedTotal = async () => sampleValue(parsePrometheusText(await registry.metrics()), 'millpond_stray_removed_chunks_total');

  it('removes the chunks of stray chains only (pending versions too), never untagged ones or a version written since the listing', async () => {
    const s = await store();
    const id = (inode: bigint, index: number) => ({ inode, index });
    await s.write(id(1n, 0), 0, Buffer.alloc(1000, 1), { chainId: 1 });  // T is in chain 1
    await s.write(id(2n, 0), 0, Buffer.alloc(2000, 2), { chainId: 2 });  // chain 2: T left it
    await s.write(id(2n, 1), 0, Buffer.alloc(3000, 3), { chainId: 2 });
    await s.write(id(2n, 2), 0, Buffer.alloc(100, 4), { chainId: 2 });   // rewritten before its removal
    await s.write(id(2n, 3), 0, Buffer.alloc(100, 5), { chainId: 2 });
    await s.write(id(2n, 3), 0, Buffer.alloc(100, 6), { commit: false }); // a forward its chain abandoned
    await s.write(id(2n, 4), 0, Buffer.alloc(100, 7), { chainId: 2, commit: false }); // only pending
    await s.write(id(3n, 0), 0, Buffer.alloc(500, 8));                   // untagged (older format)

    const rule = new StrayChains(GRACE_MS);
    rule.applied(routing(1, { 1: [T, 102], 2: [102, 103] }), [T], 0);
    const stats = emptySweepStats();
    // A chain that left moments ago: nothing goes.
    expect(await sweepPass({ store: s, stats, stray: (c) => rule.stray(T, c, 500) })).toBeUndefined();
    expect(stats).toMatchObject({ passes: 1, listed: 7, removed: 0 });
    expect((await s.list()).length).toBe(7);

    // After the grace period, in passes of 3 listed chunks. The rule is asked right before each
    // removal; for 2:2 a write lands in between (as a forwarded write would): it stays.
    const before = await removedTotal();
    const asked: string[] = [];
    let after: Awaited<ReturnType<typeof sweepPass>>;
    for (let pass = 1; ; pass++) {
      expect(pass).toBeLessThanOrEqual(3);
      after = await sweepPass({
        store: s, after, stats, limit: 3,
        stray: async (chainId) => {
          asked.push(`${chainId}`);
          if (asked.length === 4) await s.write(id(2n, 2), 0, Buffer.alloc(100, 9), { chainId: 2 });
          return rule.stray(T, chainId, GRACE_MS);
        },
      });
      if (!after) break;
    }
    // Removed: 2:0, 2:1 (5000 bytes committed), 2:3 (100 committed, its pending version with it), 2:4 (none committed).
    expect(stats).toMatchObject({ passes: 4, listed: 14, removed: 4, removedBytes: 5100, changed: 1 });
    // Asked for every tagged chunk, never the untagged one.
    expect(asked).toEqual(['1', '2', '2', '2', '2', '2']);
    expect(await removedTotal() - before).toBe(4);
    const left = await s.list();
    expect(left.map((e) => `${e.chunk.inode}:${e.chunk.index}:${e.chainId}`)).toEqual(['1:0:1', '2:2:2', '3:0:0']);
    expect((await s.read(id(2n, 2), 0, 100)).data.equals(Buffer.alloc(100, 9))).toBe(true);
    // Chain 2 back on T (moved back): nothing of it goes, however long after.
    rule.applied(routing(2, { 1: [T, 102], 2: [102, 103, T] }), [T], GRACE_MS + 1);
    await s.write(id(2n, 9), 0, Buffer.alloc(10, 1), { chainId: 2 });
    expect(await sweepPass({ store: s, stats, stray: (c) => rule.stray(T, c, 1e9) })).toBeUndefined();
    expect(stats.removed).toBe(4);
    expect((await s.list()).length).toBe(4);
  });
});
