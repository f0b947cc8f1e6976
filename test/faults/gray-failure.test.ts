// Gray failure (issue 9 items 7, 8, 9): a storage daemon paused with SIGSTOP (alive to the
// kernel, silent to everyone) or killed and brought back, in a cluster of real processes on
// loopback: mgmtd, three storage daemons with one target each, 4 chains of length 3 whose
// heads rotate over the targets. The clients under test use the default request timeouts.
import { afterEach, describe, expect, it } from 'vitest';
import { CapabilitySigner, RIGHT_READ, RIGHT_WRITE } from '../../src/auth/capability.js';
import { formatToken, mintToken } from '../../src/auth/keys.js';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { RoutingClient } from '../../src/cluster/routing-client.js';
import { CHAINS, Cluster } from '../cluster/support/cluster.js';
import { sleep, until } from '../cluster/support/processes.js';
import { chunkPattern, generationOf } from '../support/pattern.js';

const CHUNK_BYTES = 512 * 1024;   // reads ask for more than a chunk holds (chunkPattern: ~256-330 KiB)
const chainOf = (index: number) => (index % CHAINS) + 1;

/**
 * A client as applications get it: default timeouts, transport 'auto' (local reads on this
 * host). With `user`, a user's token, whose requests carry capabilities (as meta's open hands
 * out) — the local short-circuit path serves only those; else a cluster service's node key.
 */
function defaultClient(cluster: Cluster, user = false): RoutingClient {
  const credentials = user ? { token: formatToken(mintToken(cluster.keys.cluster.secret, 1000)) } : cluster.dataCredentials;
  return new RoutingClient({ mgmtd: new MgmtdClient(cluster.mgmtdEndpoints, { timeoutMs: 500, cluster: cluster.keys.cluster }), chunkClient: new ChunkClient({ credentials }), pollMs: 200 });
}

function closeClient(r: RoutingClient): void {
  r.close();
  r.mgmtd.close();
  r.chunks.close();
}

/** Pauses a daemon for `ms`, resuming it even when the test fails meanwhile. */
async function pause(cluster: Cluster, node: number, ms: number, during: () => Promise<void>): Promise<void> {
  const child = cluster.storage.get(node)!.child;
  child.kill('SIGSTOP');
  try {
    await Promise.all([sleep(ms), during()]);
  } finally {
    child.kill('SIGCONT');
  }
}

describe('gray failure', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('reads hedge around a paused replica: no read waits for the pause, every byte is right', async () => {
    // mgmtd would take 20 s to call the paused daemon dead: only hedging can keep reads going.
    const cluster = await Cluster.start(1, 3, { heartbeatTimeoutMs: 20_000 });
    cleanups.push(() => cluster.stop());
    const client = defaultClient(cluster, true);
    cleanups.push(() => closeClient(client));
    const capability = new CapabilitySigner(cluster.keys.cluster.secret).sign(5n, RIGHT_READ | RIGHT_WRITE);
    const chunks = 4 * CHAINS;
    for (let index = 0; index < chunks; index++) {
      await client.writeChunk(chainOf(index), { inode: 5n, index }, 0, chunkPattern(index, 1), { replace: true, capability });
    }
    let stop = false;
    const latencies: number[] = [];
    const reader = (async () => {
      const target = Buffer.alloc(CHUNK_BYTES);
      for (let i = 0; !stop; i++) {
        const index = i % chunks;
        const startMs = Date.now();
        const { data } = await client.readChunk(chainOf(index), { inode: 5n, index }, 0, CHUNK_BYTES, { target, capability });
        latencies.push(Date.now() - startMs);
        expect(generationOf(index, data), `chunk ${index}`).toBe(1);
      }
    })();
    await sleep(500);
    const before = latencies.length;
    await pause(cluster, 2, 8_000, async () => {});
    const afterPause = latencies.length;
    stop = true;
    await reader;
    const during = latencies.slice(before);   // with a read still waiting when the pause ended
    const maxMs = Math.max(...during);
    console.log(`paused replica: ${during.length} reads, max ${maxMs} ms, ${client.counters?.hedgedReads} hedged, ${client.counters?.abandonedRequests} abandoned`);
    expect((await cluster.routing()).targets.every((t) => t.state === 'serving')).toBe(true);  // never marked dead
    expect(afterPause - before).toBeGreaterThan(50);  // reads went on through the pause
    expect(maxMs).toBeLessThan(3_000);             // not the 8 s pause, nor a request timeout
    expect(client.counters.hedgedReads).toBeGreaterThan(0);
    expect(client.chunks.stats().localReads?.reads ?? 0).toBeGreaterThan(0);  // the short-circuit path was in play
  });

  it('a paused chain head: writes move to the new head as soon as the routing replaces it', async () => {
    const cluster = await Cluster.start(1);   // heartbeat timeout 1.2 s
    cleanups.push(() => cluster.stop());
    const client = defaultClient(cluster);
    cleanups.push(() => closeClient(client));
    const r0 = await cluster.routing();
    const headed = r0.chains.filter((c) => c.targets[0] === 101).map((c) => c.chainId);
    expect(headed.length).toBeGreaterThan(0);
    // One writer per chain headed by target 101 (node 1), each rewriting its chunks.
    let stop = false;
    const errors: string[] = [];
    const latencies: number[] = [];
    const acked = new Map<number, number>();
    const writers = headed.map(async (chainId) => {
      for (let generation = 1; !stop; generation++) {
        for (let k = 0; k < 3 && !stop; k++) {
          const index = (chainId - 1) + k * CHAINS;
          const startMs = Date.now();
          try {
            await client.writeChunk(chainId, { inode: 6n, index }, 0, chunkPattern(index, generation), { replace: true });
          } catch (err) {
            errors.push(`chunk ${index}: ${(err as Error).message}`);
            return;
          }
          latencies.push(Date.now() - startMs);
          acked.set(index, generation);
        }
      }
    });
    await until(() => latencies.length > 20, 20_000, 'writes before the pause');
    const before = latencies.length;
    await pause(cluster, 1, 10_000, async () => {
      await cluster.waitStates({ 101: 'offline' }, 8_000);
    });
    await until(() => latencies.length > before + 20 || errors.length > 0, 20_000, 'writes after the pause');
    stop = true;
    await Promise.all(writers);
    const maxMs = Math.max(...latencies.slice(before));
    console.log(`paused head: max write ${maxMs} ms, ${client.counters?.abandonedRequests} abandoned`);
    expect(errors).toEqual([]);
    // The pause lasted 10 s; the routing replaced the head after ~1.2 s (heartbeat timeout).
    expect(maxMs).toBeLessThan(6_000);
    expect(client.counters.abandonedRequests).toBeGreaterThan(0);
    for (const [index, generation] of acked) {
      const { data } = await client.readChunk(chainOf(index), { inode: 6n, index }, 0, CHUNK_BYTES);
      expect(generationOf(index, data), `chunk ${index}`).toBeGreaterThanOrEqual(generation);
    }
  });

  it('heads return to their targets once these serve again, and no acknowledged write is lost', async () => {
    const cluster = await Cluster.start(1);
    cleanups.push(() => cluster.stop());
    const client = defaultClient(cluster);
    cleanups.push(() => closeClient(client));
    const headsOf = async () => Object.fromEntries((await cluster.routing()).chains.map((c) => [c.chainId, c.targets[0]]));
    const preferred = await headsOf();
    expect(new Set(Object.values(preferred)).size).toBe(3);   // spread over the three targets
    let stop = false;
    const errors: string[] = [];
    const acked = new Map<number, number>();
    const chunks = 2 * CHAINS;
    const writer = (async () => {
      for (let generation = 1; !stop; generation++) {
        for (let index = 0; index < chunks && !stop; index++) {
          try {
            await client.writeChunk(chainOf(index), { inode: 7n, index }, 0, chunkPattern(index, generation), { replace: true });
            acked.set(index, generation);
          } catch (err) {
            errors.push(`chunk ${index}: ${(err as Error).message}`);
            return;
          }
        }
      }
    })();
    await sleep(500);
    for (const node of [1, 2]) {   // two failures, one after the other: target 103 heads everything
      await cluster.storage.get(node)!.kill();
      await cluster.waitStates({ [100 + node]: 'offline' }, 10_000);
      await cluster.startNode(node);
      if (node === 1) await cluster.waitStates({ 101: 'serving' }, 30_000);
    }
    await cluster.waitStates({ 101: 'serving', 102: 'serving', 103: 'serving' }, 30_000);
    // Once serving again (resynced), each target heads the chains it headed before.
    await until(async () => JSON.stringify(await headsOf()) === JSON.stringify(preferred), 10_000, `heads ${JSON.stringify(preferred)}`);
    const mark = acked.size > 0 ? [...acked.values()].reduce((a, b) => a + b, 0) : 0;
    await until(() => [...acked.values()].reduce((a, b) => a + b, 0) > mark + chunks, 20_000, 'writes at the restored heads');
    stop = true;
    await writer;
    expect(errors).toEqual([]);
    for (const [index, generation] of acked) {
      const { data } = await client.readChunk(chainOf(index), { inode: 7n, index }, 0, CHUNK_BYTES);
      expect(generationOf(index, data), `chunk ${index}`).toBeGreaterThanOrEqual(generation);
    }
  });
});
