// Resync progress in /metrics: the chunks and bytes a resync copies to a returning target,
// counted against a real source data server.
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkClient } from '../../src/index.js';
import { registry } from '../../src/metrics/registry.js';
import { resync } from '../../src/storage/resync.js';
import { parsePrometheusText, sampleValue } from '../support/prom-text.js';
import { startReplica } from '../support/replica.js';

describe('resync metrics', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const replica = (name: string) => startReplica(name, cleanups);

  it('count each chunk copied and its bytes, and nothing for chunks already in place', async () => {
    const source = await replica('metrics-resync-src');
    const target = await replica('metrics-resync-dst');
    const client = new ChunkClient({ transport: 'tcp' });
    cleanups.push(() => client.close());
    const sizes = [10_000, 70_000, 1];
    for (const [i, n] of sizes.entries()) await source.store.write({ inode: 40n, index: i }, 0, Buffer.alloc(n, i + 1));
    const here = Buffer.alloc(5_000, 9); // the same version on both: not copied
    await source.store.write({ inode: 41n, index: 0 }, 0, here);
    const meta = await source.store.stat({ inode: 41n, index: 0 });
    const copy = await source.store.read({ inode: 41n, index: 0 }, 0, here.length);
    expect(copy.data.equals(here)).toBe(true);
    await target.store.write({ inode: 41n, index: 0 }, 0, here);
    expect(await target.store.stat({ inode: 41n, index: 0 })).toMatchObject({ commitVersion: meta.commitVersion, checksum: meta.checksum });

    const read = async () => {
      const f = parsePrometheusText(await registry.metrics());
      return { chunks: sampleValue(f, 'millpond_resync_copied_chunks_total'), bytes: sampleValue(f, 'millpond_resync_copied_bytes_total') };
    };
    const before = await read();
    const stats = await resync({ store: target.store, client, sources: [source.server.address], chains: new Set([1]), removeAllowed: true });
    const after = await read();
    expect(stats.copied).toBe(sizes.length);
    expect(after.chunks - before.chunks).toBe(sizes.length);
    expect(after.bytes - before.bytes).toBe(sizes.reduce((a, b) => a + b, 0));
  });
});
