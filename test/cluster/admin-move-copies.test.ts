// A replica move copies only the moved chains' chunks (issue 13 of millpond), against real
// processes on loopback: targets 101..103 each hold all four chains of table 1, so every source
// of a move is on chains the destination does not join. Rebalance moves replicas of three of
// the chains onto a fresh target 104 (one move per chain) while a chunk writer runs. The fresh
// target's store then lists exactly the chunks of its chains, each tagged with its chain
// (chunk_format.h, format 3), none of the fourth chain's; every chunk on it reads back
// byte-exact. Before the chain tag, resync copied every chunk of every source to 104.
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import type { AdminView } from '../../src/cli/admin.js';
import type { ChunkListEntry } from '../../src/native/binding.js';
import { generationOf } from '../support/pattern.js';
import { CHAINS, Cluster, Writer } from './support/cluster.js';
import { until } from './support/processes.js';

const KiB = 1024;
const BULK_INODE = 3n;
const BULK_CHUNKS = 24;

/** Chain of a bulk chunk (inode 3), as the writes below place them. */
const bulkChain = (index: number) => (index % CHAINS) + 1;
const bulk = (index: number) => Buffer.alloc(192 * KiB + index * 1000, index + 1);

describe('admin moves copy only the moved chains\' chunks', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  }, 60_000);

  it('a fresh target joined to 3 of 4 chains by rebalance holds exactly those chains\' chunks, tagged, byte-exact', async () => {
    const cluster = await Cluster.start(1, 3);
    cleanups.push(() => cluster.stop());
    const view = () => cluster.admin.admin<AdminView>('adminView');
    // Every source is on every chain: the premise of the test.
    for (const c of (await cluster.routing()).chains) expect([...c.targets].sort()).toEqual([101, 102, 103]);

    const { routing, close: closeRouting } = cluster.memberRouting();
    cleanups.push(closeRouting);
    for (let i = 0; i < BULK_CHUNKS; i++) await routing.writeChunk(bulkChain(i), { inode: BULK_INODE, index: i }, 0, bulk(i), { replace: true });
    // Writes go on during the moves: those of 104's chains reach it forwarded (tagged), the
    // others never do.
    const writer = new Writer(cluster, 8, 2);
    cleanups.push(() => writer.close());
    cleanups.push(() => writer.stop());
    writer.start();
    await writer.waitAcks(16, 20_000);

    await cluster.startNode(4);
    await cluster.waitStates({ 104: 'serving' }, 10_000);
    await cluster.admin.admin('adminRebalance', { rateMiBs: 1000 });
    const done = await until(async () => {
      const v = await view();
      return v.spread.balanced && v.ops.moves.length === 0 && v.ops.rebalance === undefined && v;
    }, 120_000, 'rebalance balanced');
    expect(done.ops.errors).toEqual([]);
    expect(done.ops.moved.replicas).toBe(3);
    await writer.waitAcks(8, 20_000);
    await writer.stop();
    expect(writer.errors).toEqual([]);
    await until(async () => (await cluster.routing()).targets.every((t) => t.state === 'serving'), 30_000, 'all serving');

    const r = await cluster.routing();
    const mine = new Set(r.chains.filter((c) => c.targets.includes(104)).map((c) => c.chainId));
    expect(mine.size).toBe(3);
    const other = r.chains.find((c) => !mine.has(c.chainId))!.chainId;
    const addressOf = (id: number) => r.targets.find((t) => t.targetId === id)!.dataAddress;
    const client = new ChunkClient({ transport: 'tcp', credentials: cluster.dataCredentials });
    cleanups.push(() => client.close());

    // 104's store, listed over the data plane.
    const listed: ChunkListEntry[] = [];
    for (let after: ChunkListEntry['chunk'] | undefined; ;) {
      const page = await client.list(addressOf(104), { after, limit: 100 });
      listed.push(...page);
      if (page.length < 100) break;
      after = page.at(-1)!.chunk;
    }
    // What the moves copied (each resync logs its figures), printed before any check so a run
    // of the old copy-everything resync shows its figure too.
    const resyncs = cluster.storage.get(4)!.errLines.filter((l) => l.startsWith('{'))
      .map((l) => /^target 104 resynced: (.*)$/.exec((JSON.parse(l) as { message: string }).message)?.[1])
      .filter((x): x is string => x !== undefined)
      .map((x) => JSON.parse(x) as { listed: number; copied: number; copiedBytes: number; foreign: number });
    const sum = (k: 'listed' | 'copied' | 'copiedBytes' | 'foreign') => resyncs.reduce((n, x) => n + x[k], 0);
    console.log(`admin-move-copies: ${resyncs.length} resyncs of 104 listed ${sum('listed')} chunks at the sources, copied ${sum('copied')} (${sum('copiedBytes')} bytes), left ${sum('foreign')} of other chains; 104 holds ${listed.length} chunks, the sources ${BULK_CHUNKS + writer.acked.size} each`);
    const chainOf = (e: ChunkListEntry) => (e.chunk.inode === BULK_INODE ? bulkChain(e.chunk.index) : Writer.chainOf(e.chunk.index));
    const key = (inode: bigint, index: number) => `${inode}:${index}`;
    // Exactly the chunks of its chains: every bulk chunk of them and every chunk the writer
    // wrote on them; none of chain `other`'s. Each tagged with its chain.
    const want = [
      ...Array.from({ length: BULK_CHUNKS }, (_, i) => i).filter((i) => mine.has(bulkChain(i))).map((i) => key(BULK_INODE, i)),
      ...[...writer.acked.keys()].filter((i) => mine.has(Writer.chainOf(i))).map((i) => key(1n, i)),
    ].sort();
    expect(listed.map((e) => key(e.chunk.inode, e.chunk.index)).sort()).toEqual(want);
    expect(listed.filter((e) => chainOf(e) === other)).toEqual([]);
    for (const e of listed) expect(e.chainId, `chunk ${key(e.chunk.inode, e.chunk.index)}`).toBe(chainOf(e));
    // The sources still hold chain `other`'s chunks, and 104 has none of them.
    for (let i = 0; i < BULK_CHUNKS; i++) {
      if (bulkChain(i) !== other) continue;
      expect((await client.read(addressOf(101), { inode: BULK_INODE, index: i }, 0, bulk(i).length)).data.equals(bulk(i))).toBe(true);
      await expect(client.stat(addressOf(104), { inode: BULK_INODE, index: i })).rejects.toMatchObject({ code: 'ENOENT' });
    }

    // Reads stay byte-exact: every chunk on 104, and on every replica of every chain.
    for (const c of r.chains) {
      for (const id of c.targets) {
        for (let i = c.chainId - 1; i < BULK_CHUNKS; i += CHAINS) {
          expect((await client.read(addressOf(id), { inode: BULK_INODE, index: i }, 0, bulk(i).length)).data.equals(bulk(i)), `bulk ${i} on ${id}`).toBe(true);
        }
        for (const [index, generation] of writer.acked) {
          if (Writer.chainOf(index) !== c.chainId) continue;
          const got = await client.read(addressOf(id), { inode: 1n, index }, 0, 1 << 20);
          expect(generationOf(index, got.data), `chunk ${index} on ${id}`).toBeGreaterThanOrEqual(generation);
        }
      }
    }

    // The moves copied chunks of 104's chains only; the other chain's were listed at the
    // sources and left there.
    expect(resyncs.length).toBeGreaterThanOrEqual(1);
    expect(sum('foreign')).toBeGreaterThan(0);
    expect(sum('copied')).toBeLessThanOrEqual(listed.length);
  }, 240_000);
});
