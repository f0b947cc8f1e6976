// Admin moves that cannot finish, and nodes removed for good (issue 13 item 3), against real
// processes on loopback with a chunk writer running throughout:
// - a rebalance move's copy is bounded by its rate (--rate-mib-s, a token bucket in the
//   destination's resync), so at a rate far too low for the data its syncing step times out;
//   the move is undone (the chains keep every replica they had), retried within the retry
//   window, and then the rebalance ends with ETIMEDOUT; no acknowledged write is lost;
// - a node removed for good cannot register its id again (EPERM), even with its old targets.
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import type { AdminView } from '../../src/cli/admin.js';
import { viewOf } from '../../src/cluster/cluster-view.js';
import { generationOf } from '../support/pattern.js';
import { Cluster, Writer } from './support/cluster.js';
import { FAST, run, until } from './support/processes.js';

const storageMain = fileURLToPath(new URL('../../src/storage/main.ts', import.meta.url));
const MiB = 1024 * 1024;

/** 1 MiB chunks written to the 4 chains before the rebalance, 6 per chain. */
const BULK_CHUNKS = 24;

describe('admin: moves that cannot finish, nodes removed for good', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  }, 60_000);

  it('a rebalance move too slow for its step timeout is undone (no replica lost) and the rebalance ends with ETIMEDOUT; a removed node id is refused', async () => {
    const stepMs = 3_000;
    const windowMs = 7_000;
    const cluster = await Cluster.start(1, 3, { extra: ['--move-step-timeout-ms', String(stepMs), '--move-retry-window-ms', String(windowMs)] });
    cleanups.push(() => cluster.stop());
    const view = () => cluster.admin.admin<AdminView>('adminView');

    // 24 MiB on the chains, 6 MiB each (every target holds every chain: 3 nodes, chains of 3),
    // then a writer.
    const { routing, close: closeRouting } = cluster.memberRouting();
    cleanups.push(closeRouting);
    const bulk = (i: number) => Buffer.alloc(MiB, i + 1);
    for (let i = 0; i < BULK_CHUNKS; i++) await routing.writeChunk((i % 4) + 1, { inode: 2n, index: i }, 0, bulk(i), { replace: true });
    const chunks = new Writer(cluster, 12, 3);
    cleanups.push(() => chunks.close());
    cleanups.push(() => chunks.stop());
    chunks.start();
    await chunks.waitAcks(20, 20_000);

    await cluster.startNode(4);
    await cluster.waitStates({ 104: 'serving' }, 10_000);
    const before = (await view()).chains.map((c) => [c.chainId, [...c.targets].sort()]);
    const acksBefore = chunks.acks;
    // 1/16 MiB/s: a move copies its one chain's 6 MiB of bulk chunks (a resync copies only the
    // chunks of its target's chains). Each attempt's rate limit lets its first chunk through at
    // once and pays for it after (16 s for 1 MiB), so an attempt copies one chunk within the step
    // timeout, and the attempts of the retry window cannot copy six.
    await cluster.admin.admin('adminRebalance', { rateMiBs: 1 / 16 });
    await until(async () => (await view()).ops.moves.some((m) => m.joinedVersion !== undefined), 20_000, 'a move joined');
    const joined = await cluster.routing();
    expect(joined.resyncRates).toEqual([{ targetId: 104, bytesPerS: MiB / 16 }]);
    const startedMs = Date.now();
    // While 104 syncs, its resync's progress reaches the cluster view through the heartbeats:
    // the chunks it checked of those its sources hold, and `millpond status` prints it.
    const resyncing = await until(async () => {
      const r = viewOf({ atMs: Date.now(), admin: await view(), mgmtd: [], meta: [], executors: [], jobs: [] }).recovery.resyncs.find((x) => x.targetId === 104);
      return r?.listedChunks !== undefined && r.listedChunks > 0 && r;
    }, 10_000, 'the resync of 104 reports its progress');
    expect(resyncing.sourceChunks).toBeGreaterThanOrEqual(resyncing.listedChunks!);
    expect(resyncing.progress).toBeGreaterThan(0);
    expect(resyncing.progress).toBeLessThanOrEqual(1);
    const v = await until(async () => {
      const x = await view();
      return x.ops.errors.length > 0 && x.ops.moves.length === 0 && x.ops.rebalance === undefined && x;
    }, 60_000, 'the rebalance ends with an error');
    // It retried within its window (the first failure after one step, the end after the window).
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(windowMs);
    expect(v.ops.errors).toHaveLength(1);
    expect(v.ops.errors[0]).toMatchObject({ reason: 'rebalance', code: 'ETIMEDOUT' });
    expect(v.ops.errors[0]!.message).toMatch(/rebalance ended: .*(did not finish syncing|could not join|none could be started)/);
    expect(v.ops.moved.replicas).toBe(0);
    // The chains are as they were: 104 left them, nothing else did.
    expect(v.chains.map((c) => [c.chainId, [...c.targets].sort()])).toEqual(before);
    expect(v.chains.every((c) => !c.targets.includes(104))).toBe(true);

    // No acknowledged write lost, I/O went on: every replica of every chunk holds its data.
    await chunks.waitAcks(10, 20_000);
    expect(chunks.acks).toBeGreaterThan(acksBefore);
    expect(chunks.errors).toEqual([]);
    await until(async () => (await cluster.routing()).targets.every((t) => t.state === 'serving'), 30_000, 'all serving');
    await chunks.stop();
    const r = await cluster.routing();
    const client = new ChunkClient({ transport: 'tcp', credentials: cluster.dataCredentials });
    cleanups.push(() => client.close());
    const addressOf = (id: number) => r.targets.find((t) => t.targetId === id)!.dataAddress;
    for (const c of r.chains) {
      expect(c.targets).toHaveLength(3);
      for (const id of c.targets) {
        for (let i = c.chainId - 1; i < BULK_CHUNKS; i += 4) expect((await client.read(addressOf(id), { inode: 2n, index: i }, 0, MiB)).data.equals(bulk(i)), `chunk ${i} on ${id}`).toBe(true);
        for (const [index, generation] of chunks.acked) {
          if (Writer.chainOf(index) !== c.chainId) continue;
          expect(generationOf(index, (await client.read(addressOf(id), { inode: 1n, index }, 0, MiB)).data), `chunk ${index} on ${id}`).toBeGreaterThanOrEqual(generation);
        }
      }
    }

    // Node 4 (in no chain) dies and is removed for good: its id is refused from now on.
    await cluster.storage.get(4)!.kill();
    await until(async () => !(await view()).nodes.find((n) => n.nodeId === 4)!.alive, 10_000, 'node 4 dead');
    expect(await cluster.admin.admin('adminRemoveNode', { nodeId: 4, force: false })).toEqual({ removed: true, replicasLeft: 0 });
    expect((await view()).ops.removedNodes).toEqual([4]);
    const again = run(storageMain, ['--secret-file', cluster.keys.secretFile, '--node-id', '4', '--mgmtd', cluster.mgmtdEndpoints.join(','),
      '--transport', 'tcp', '--no-sync', '--heartbeat-ms', String(FAST.heartbeatMs), '--target', `104:${cluster.targetDir(104)}`]);
    cleanups.push(() => again.kill());
    const [code] = await once(again.child, 'exit');
    expect(code).toBe(2);
    const logged = again.errLines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged).toContainEqual(expect.objectContaining({ level: 'error', component: 'storage', message: expect.stringMatching(/EPERM: node 4 was removed from the cluster for good/) }));
    expect((await view()).nodes.some((n) => n.nodeId === 4)).toBe(false);
    // A new id on the same host is welcome.
    await cluster.startNode(5);
    await cluster.waitStates({ 105: 'serving' }, 10_000);
  }, 180_000);
});
