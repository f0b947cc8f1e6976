// A rebalance move's copy at a bounded rate (issue 13 item 3, `admin rebalance --rate-mib-s`):
// resync against a real source data server, taking every chunk's bytes from a token bucket.
// The bound is a lower bound on the elapsed time (N bytes at R bytes/s take at least about N/R
// seconds), so a loaded machine cannot make it fail; without the bucket the copy takes well
// under that (the unbounded run shows it).
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkClient } from '../../src/index.js';
import { adminLimits } from '../../src/limits.js';
import { resync } from '../../src/storage/resync.js';
import { TokenBucket } from '../../src/storage/token-bucket.js';
import { startReplica } from '../support/replica.js';

const MiB = 1024 * 1024;

describe('resync at a bounded rate', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('copies N MiB at R MiB/s in at least about N/R seconds, the bound shared by its parallel copies and by two resyncs on one bucket', async () => {
    const source = await startReplica('rate-src', cleanups);
    const client = new ChunkClient({ transport: 'tcp' });
    cleanups.push(() => client.close());
    // 4 MiB in 16 chunks of 256 KiB (resync copies up to resyncCopiesInflightMax at once).
    const chunks = 16;
    for (let i = 0; i < chunks; i++) await source.store.write({ inode: 9n, index: i }, 0, Buffer.alloc(256 * 1024, i + 1));
    const bytes = chunks * 256 * 1024;

    const copy = async (bucket?: TokenBucket) => {
      const target = await startReplica('rate-dst', cleanups);
      const startedMs = Date.now();
      const stats = await resync({ store: target.store, client, sources: [source.server.address], chains: new Set([1]), removeAllowed: true, bucket });
      const ms = Date.now() - startedMs;
      expect(stats.copied).toBe(chunks);
      for (let i = 0; i < chunks; i++) expect((await target.store.read({ inode: 9n, index: i }, 0, 256 * 1024)).data.equals(Buffer.alloc(256 * 1024, i + 1))).toBe(true);
      return ms;
    };

    const unboundedMs = await copy();
    const rateBytesPerS = 2 * MiB;
    const boundMs = (bytes / rateBytesPerS) * 1000 - adminLimits.resyncBurstMs; // 2 s less the burst
    expect(unboundedMs, 'the unbounded copy is well under the bound (else this test shows nothing)').toBeLessThan(boundMs / 2);
    const boundedMs = await copy(new TokenBucket(() => rateBytesPerS));
    expect(boundedMs).toBeGreaterThanOrEqual(boundMs * 0.95);

    // Two resyncs of one operation on one bucket: twice the bytes, so at least twice the time.
    const shared = new TokenBucket(() => rateBytesPerS);
    const startedMs = Date.now();
    await Promise.all([copy(shared), copy(shared)]);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(((2 * bytes) / rateBytesPerS) * 1000 * 0.95 - adminLimits.resyncBurstMs);
  }, 60_000);

  it('a resync cancelled while its copies wait on the bucket copies nothing more (a move undone at its step timeout)', async () => {
    const source = await startReplica('rate-cancel-src', cleanups);
    const target = await startReplica('rate-cancel-dst', cleanups);
    const client = new ChunkClient({ transport: 'tcp' });
    cleanups.push(() => client.close());
    for (let i = 0; i < 16; i++) await source.store.write({ inode: 9n, index: i }, 0, Buffer.alloc(256 * 1024, i + 1));
    // 64 KiB/s: each copy waits seconds for its 256 KiB; the resync is cancelled meanwhile.
    let cancelled = false;
    setTimeout(() => (cancelled = true), 300);
    await expect(resync({
      store: target.store, client, sources: [source.server.address], chains: new Set([1]), removeAllowed: true,
      bucket: new TokenBucket(() => 64 * 1024), cancelled: () => cancelled,
    })).rejects.toMatchObject({ code: 'ECLOSED' });
    // Before, each of the copies waiting on the bucket went on at the cancel, unbounded.
    expect(await target.store.list()).toEqual([]);
  });
});
