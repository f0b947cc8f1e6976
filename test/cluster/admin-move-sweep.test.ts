// A target that left a chain sweeps away that chain's chunks (issue 13 follow-up), against real
// processes on loopback with a chunk writer running throughout. Targets 101..103 each hold all
// four chains; rebalance moves one chain off each of them onto a fresh target 104. Within a
// bound each of 101..103 then holds no chunk tagged with the chain it left (the sweep's grace
// is shortened to 1.5 s), while every chunk still reads back byte-exact from every replica and
// the chunks of the chains they kept are untouched (same versions). Draining node 4 then moves
// each chain back onto the target that left it: the target gets the chain's data again through
// resync (tagged), and keeps it over many sweep passes after the grace; 104, in no chain any
// more, is swept empty. Without the sweep (--stray-sweep-interval-ms 0) the first wait times out.
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import type { AdminView } from '../../src/cli/admin.js';
import { statusLines } from '../../src/cli/status.js';
import { viewOf, type AdminView as FullAdminView } from '../../src/cluster/cluster-view.js';
import type { ChunkListEntry } from '../../src/native/binding.js';
import type { Routing } from '../../src/protocol/mgmtd-types.js';
import { RpcClient } from '../../src/protocol/rpc-client.js';
import type { SweepStats } from '../../src/storage/stray-sweep.js';
import { generationOf } from '../support/pattern.js';
import { CHAINS, Cluster, Writer } from './support/cluster.js';
import { sleep, until } from './support/processes.js';

const KiB = 1024;
const BULK_INODE = 3n;
const BULK_CHUNKS = 24;
const GRACE_MS = 1_500;
const SWEEP_MS = 200;
/** How long after a move the chain's chunks must be gone from the target that left it. */
const SWEPT_WITHIN_MS = 20_000;

const bulkChain = (index: number) => (index % CHAINS) + 1;
const bulk = (index: number) => Buffer.alloc(96 * KiB + index * 1000, index + 1);
const key = (e: ChunkListEntry) => `${e.chunk.inode}:${e.chunk.index}`;

describe('admin moves: the target a chain left sweeps that chain\'s chunks', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  }, 60_000);

  it('after a move off a target its chunks of that chain go within a bound; reads stay byte-exact, kept chains untouched, a chain moved back is resynced and stays', async () => {
    const cluster = await Cluster.start(1, 3, { storageExtra: ['--stray-grace-ms', String(GRACE_MS), '--stray-sweep-interval-ms', String(SWEEP_MS)] });
    cleanups.push(() => cluster.stop());
    const view = () => cluster.admin.admin<AdminView>('adminView');
    const client = new ChunkClient({ transport: 'tcp', credentials: cluster.dataCredentials });
    cleanups.push(() => client.close());
    const { routing, close: closeRouting } = cluster.memberRouting();
    cleanups.push(closeRouting);
    const controls = new Map<number, RpcClient>();
    const strays = async (nodeId: number): Promise<SweepStats> => {
      let c = controls.get(nodeId);
      if (!c) {
        const endpoint = (await cluster.storage.get(nodeId)!.waitFor(/^listening (\S+)$/))[1]!;
        c = new RpcClient(endpoint, { timeoutMs: 5_000, attemptsMax: 1, curve: cluster.keys.cluster.memberCurve });
        controls.set(nodeId, c);
        cleanups.push(() => c!.close());
      }
      const s = await c.call('storage.status', {}) as { targets: Array<{ strays: SweepStats }> };
      return s.targets[0]!.strays;
    };
    const addressOf = (r: Routing, id: number) => r.targets.find((t) => t.targetId === id)!.dataAddress;
    const listAll = async (address: string) => {
      const out: ChunkListEntry[] = [];
      for (let after: ChunkListEntry['chunk'] | undefined; ;) {
        const page = await client.list(address, { after, limit: 100 });
        out.push(...page);
        if (page.length < 100) return out;
        after = page.at(-1)!.chunk;
      }
    };
    const chainsOf = (r: Routing, id: number) => new Set(r.chains.filter((c) => c.targets.includes(id)).map((c) => c.chainId));

    for (let i = 0; i < BULK_CHUNKS; i++) await routing.writeChunk(bulkChain(i), { inode: BULK_INODE, index: i }, 0, bulk(i), { replace: true });
    const writer = new Writer(cluster, 8, 2);
    cleanups.push(() => writer.close());
    cleanups.push(() => writer.stop());
    writer.start();
    await writer.waitAcks(16, 20_000);
    // Every target in every chain, each chunk tagged: nothing is stray yet.
    const r0 = await cluster.routing();
    for (const id of [101, 102, 103]) expect(chainsOf(r0, id).size).toBe(CHAINS);

    // ---- rebalance: one chain off each of 101..103 onto 104
    await cluster.startNode(4);
    await cluster.waitStates({ 104: 'serving' }, 10_000);
    await cluster.admin.admin('adminRebalance', { rateMiBs: 1000 });
    const balanced = await until(async () => {
      const v = await view();
      return v.spread.balanced && v.ops.moves.length === 0 && v.ops.rebalance === undefined && v;
    }, 120_000, 'rebalance balanced');
    const movedAtMs = Date.now();
    expect(balanced.ops.errors).toEqual([]);
    expect(balanced.ops.moved.replicas).toBe(3);
    const r1 = await cluster.routing();
    /** The chain each of 101..103 left. */
    const left = new Map<number, number>();
    for (const id of [101, 102, 103]) {
      const gone = [...chainsOf(r0, id)].filter((c) => !chainsOf(r1, id).has(c));
      expect(gone.length, `chains target ${id} left`).toBe(1);
      left.set(id, gone[0]!);
    }
    // The chunks of the chains each target kept that nothing rewrites (bulk), as they are now.
    const kept = new Map<number, Map<string, ChunkListEntry['meta']>>();
    for (const id of [101, 102, 103]) {
      const mine = chainsOf(r1, id);
      const entries = (await listAll(addressOf(r1, id))).filter((e) => e.chunk.inode === BULK_INODE && mine.has(e.chainId));
      expect(entries.length).toBe(BULK_CHUNKS * 3 / CHAINS);
      kept.set(id, new Map(entries.map((e) => [key(e), e.meta])));
    }

    // ---- the sweep: within a bound no target holds a chunk of the chain it left
    await until(async () => {
      for (const [id, chain] of left) if ((await listAll(addressOf(r1, id))).some((e) => e.chainId === chain)) return false;
      return true;
    }, SWEPT_WITHIN_MS, 'the chunks of the chains 101..103 left swept');
    const sweptMs = Date.now() - movedAtMs;
    await writer.waitAcks(8, 20_000);
    const afterSweep = new Map<number, SweepStats>();
    for (const [id] of left) {
      const s = await strays(id - 100);
      afterSweep.set(id, s);
      // Its chain's bulk chunks and the writer's chunks on it, each once.
      const writerChunks = [...writer.acked.keys()].filter((i) => Writer.chainOf(i) === left.get(id)).length;
      expect(s.removed, `target ${id} removed`).toBe(BULK_CHUNKS / CHAINS + writerChunks);
    }
    // mgmtd learns the counts from the heartbeats (`millpond status` shows them per target).
    await until(async () => {
      const targets = (await view()).targets;
      return [...afterSweep].every(([id, s]) => {
        const t = targets.find((x) => x.targetId === id);
        return t?.swept?.removedChunks === s.removed && t.swept.removedBytes === s.removedBytes;
      });
    }, 5_000, 'mgmtd reports what each target swept');
    const lines = statusLines(viewOf({ atMs: Date.now(), admin: await cluster.admin.admin<FullAdminView>('adminView'), mgmtd: [], meta: [], executors: [], jobs: [] }));
    for (const [id, s] of afterSweep) expect(lines.some((l) => l.startsWith(`  target ${id} `) && l.includes(`swept ${s.removed} chunks of chains it left`)), `status line of target ${id}`).toBe(true);
    console.log(`admin-move-sweep: chains left at rebalance end swept within ${sweptMs} ms (grace ${GRACE_MS} ms, a pass every ${SWEEP_MS} ms); removed ${[...afterSweep].map(([id, s]) => `${id}: ${s.removed} chunks ${s.removedBytes} bytes in ${s.passes} passes`).join(', ')}`);

    const checkReplicas = async (r: Routing, what: string) => {
      for (const c of r.chains) {
        for (const id of c.targets) {
          for (let i = c.chainId - 1; i < BULK_CHUNKS; i += CHAINS) {
            expect((await client.read(addressOf(r, id), { inode: BULK_INODE, index: i }, 0, bulk(i).length)).data.equals(bulk(i)), `${what}: bulk ${i} on ${id}`).toBe(true);
          }
          for (const [index, generation] of writer.acked) {
            if (Writer.chainOf(index) !== c.chainId) continue;
            const got = await client.read(addressOf(r, id), { inode: 1n, index }, 0, 1 << 20);
            expect(generationOf(index, got.data), `${what}: chunk ${index} on ${id}`).toBeGreaterThanOrEqual(generation);
          }
        }
      }
    };
    const checkKept = async (r: Routing, what: string) => {
      for (const [id, metas] of kept) {
        const now = new Map((await listAll(addressOf(r, id))).map((e) => [key(e), e.meta]));
        for (const [k, meta] of metas) expect(now.get(k), `${what}: kept chunk ${k} on ${id}`).toEqual(meta);
      }
    };
    // (a) every chunk reads back byte-exact from every replica; (b) the kept chains' chunks are as they were.
    await checkReplicas(await cluster.routing(), 'after the sweep');
    await checkKept(r1, 'after the sweep');

    // ---- drain node 4: each chain moves back onto the target that left it
    await cluster.admin.admin('adminDrain', { nodeId: 4 });
    await until(async () => {
      const v = await view();
      return v.nodes.find((n) => n.nodeId === 4)?.replicas === 0 && v.ops.moves.length === 0 && v.targets.every((t) => t.state === 'serving') && v;
    }, 120_000, 'node 4 drained');
    expect((await view()).ops.errors).toEqual([]);
    const r2 = await cluster.routing();
    for (const id of [101, 102, 103]) expect(chainsOf(r2, id).size).toBe(CHAINS);
    expect(chainsOf(r2, 104).size).toBe(0);
    // (c) each target got its chain back through resync, tagged.
    for (const [id, chain] of left) {
      const resynced = cluster.storage.get(id - 100)!.errLines.filter((l) => l.includes(`target ${id} resynced`));
      expect(resynced.length, `resyncs of ${id}`).toBeGreaterThanOrEqual(1);
      const back = (await listAll(addressOf(r2, id))).filter((e) => e.chainId === chain);
      expect(back.filter((e) => e.chunk.inode === BULK_INODE).length, `chain ${chain} back on ${id}`).toBe(BULK_CHUNKS / CHAINS);
    }
    // Many passes past the grace: the chain moved back stays, 104's chunks (it is in no chain) go.
    await sleep(GRACE_MS + 10 * SWEEP_MS);
    await until(async () => (await listAll(addressOf(r2, 104))).length === 0, SWEPT_WITHIN_MS, '104 swept empty');
    await writer.waitAcks(8, 20_000);
    await writer.stop();
    expect(writer.errors).toEqual([]);
    for (const [id, chain] of left) {
      expect((await strays(id - 100)).removed, `target ${id} removed since`).toBe(afterSweep.get(id)!.removed);
      const back = (await listAll(addressOf(r2, id))).filter((e) => e.chainId === chain);
      expect(back.filter((e) => e.chunk.inode === BULK_INODE).length, `chain ${chain} still on ${id}`).toBe(BULK_CHUNKS / CHAINS);
    }
    await checkReplicas(await cluster.routing(), 'after the move back');
    await checkKept(r2, 'after the move back');
    expect((await strays(4)).removed).toBeGreaterThan(0);
  }, 300_000);
});
