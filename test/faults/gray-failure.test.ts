// Gray failure (issue 9 items 7, 8, 9): a storage daemon paused with SIGSTOP (alive to the
// kernel, silent to everyone) or killed and brought back, in a cluster of real processes on
// loopback: mgmtd, three storage daemons with one target each, 4 chains of length 3 whose
// heads rotate over the targets. The clients under test use the default request timeouts: the
// FileSystem (on the native client, which hedges reads and follows a replaced head) and the
// daemons' RoutingClient (chunk writes retried through restarts).
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { RoutingClient } from '../../src/cluster/routing-client.js';
import { connect, type FileSystem } from '../../src/fs/file-system.js';
import { CHAINS, Cluster } from '../cluster/support/cluster.js';
import { freePort, sleep, startMeta, until } from '../cluster/support/processes.js';
import { chunkPattern, generationOf } from '../support/pattern.js';
import { tempDir } from '../support/tmp.js';

const CHUNK_BYTES = 512 * 1024;   // reads ask for more than a chunk holds (chunkPattern: ~256-330 KiB)
const chainOf = (index: number) => (index % CHAINS) + 1;

/** A whole chunk of a file naming its index and generation, for the FileSystem tests. */
function content(index: number, generation: number): Buffer {
  const b = Buffer.alloc(CHUNK_BYTES, (index * 31 + generation * 7) & 0xff);
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(generation, 4);
  return b;
}

/** The generation whose content `data` is exactly, or -1. */
function generationIn(index: number, data: Buffer): number {
  return data.length >= 8 && content(index, data.readUInt32LE(4)).equals(data) ? data.readUInt32LE(4) : -1;
}

/** The daemons' chunk client: default timeouts, a cluster service's node key. */
function defaultClient(cluster: Cluster): RoutingClient {
  return new RoutingClient({ mgmtd: new MgmtdClient(cluster.mgmtdEndpoints, { timeoutMs: 500, cluster: cluster.keys.cluster }), chunkClient: new ChunkClient({ credentials: cluster.dataCredentials }), pollMs: 200 });
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

  /** A meta server on the cluster and the FileSystem of its admin (transport 'auto': local reads on this host). */
  async function fileSystem(cluster: Cluster): Promise<FileSystem> {
    const t = tempDir('gray-meta');
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const meta = await startMeta(join(t.dir, 'meta.db'), endpoint, cluster.mgmtdEndpoints,
      ['--secret-file', cluster.keys.secretFile, '--admin-token-file', cluster.keys.adminTokenFile]);
    cleanups.push(async () => { await meta.kill(); t.cleanup(); });
    const fs = await connect({ meta: endpoint, mgmtd: cluster.mgmtdEndpoints, ...cluster.keys.admin });
    cleanups.push(() => fs.close());
    await fs.mkdir('/g');
    await fs.setLayout('/g', { chunkSizeBytes: CHUNK_BYTES, stripeSize: CHAINS });
    return fs;
  }

  it('reads hedge around a paused replica: no read waits for the pause, every byte is right', async () => {
    // mgmtd would take 20 s to call the paused daemon dead: only hedging can keep reads going.
    const cluster = await Cluster.start(1, 3, { heartbeatTimeoutMs: 20_000 });
    cleanups.push(() => cluster.stop());
    const fs = await fileSystem(cluster);
    const chunks = 4 * CHAINS;
    const data = Buffer.concat(Array.from({ length: chunks }, (_, index) => content(index, 1)));
    await fs.writeFile('/g/hedge', data);
    const h = await fs.open('/g/hedge', 'r');
    cleanups.push(() => h.close());
    let stop = false;
    const latencies: number[] = [];
    const reader = (async () => {
      for (let i = 0; !stop; i++) {
        const index = (i * 7) % chunks; // not sequential: each read goes to the replicas, not read-ahead
        const startMs = Date.now();
        const got = await h.readAt(index * CHUNK_BYTES, CHUNK_BYTES);
        latencies.push(Date.now() - startMs);
        expect(generationIn(index, got), `chunk ${index}`).toBe(1);
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
    console.log(`paused replica: ${during.length} reads, max ${maxMs} ms`);
    expect((await cluster.routing()).targets.every((t) => t.state === 'serving')).toBe(true);  // never marked dead
    expect(afterPause - before).toBeGreaterThan(50);  // reads went on through the pause
    expect(maxMs).toBeLessThan(3_000);             // not the 8 s pause, nor a request timeout
  });

  it('a paused chain head: writes move to the new head as soon as the routing replaces it', async () => {
    const cluster = await Cluster.start(1);   // heartbeat timeout 1.2 s
    cleanups.push(() => cluster.stop());
    const fs = await fileSystem(cluster);
    // One writer per chunk of a file striped over every chain (heads rotate over the targets:
    // some chains are headed by target 101, node 1), each rewriting its chunk.
    const h = await fs.open('/g/heads', 'w+');
    cleanups.push(() => h.close());
    let stop = false;
    const errors: string[] = [];
    const latencies: number[] = [];
    const acked = new Map<number, number>();
    const writers = Array.from({ length: CHAINS }, async (_, index) => {
      for (let generation = 1; !stop; generation++) {
        const startMs = Date.now();
        try {
          await h.write(content(index, generation), index * CHUNK_BYTES);
        } catch (err) {
          errors.push(`chunk ${index}: ${(err as Error).message}`);
          return;
        }
        latencies.push(Date.now() - startMs);
        acked.set(index, generation);
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
    console.log(`paused head: max write ${maxMs} ms`);
    expect(errors).toEqual([]);
    // The pause lasted 10 s, as does a request's timeout; the routing replaced the head after
    // ~1.2 s (heartbeat timeout), and the client sees it within its routing poll (1 s).
    expect(maxMs).toBeLessThan(7_500);
    for (const [index, generation] of acked) {
      const got = await h.readAt(index * CHUNK_BYTES, CHUNK_BYTES);
      expect(generationIn(index, got), `chunk ${index}`).toBeGreaterThanOrEqual(generation);
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
