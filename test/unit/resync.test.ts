// Resync of a returning target against a real source data server: chunks no source has are
// removed, but never a version a forwarded write created after resync asked the sources
// (issue 9 item 5). The write lands between the check at the source and the removal: the
// test runs it from inside the real client's stat, the exact point where the race opens.
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkClient, MillpondError } from '../../src/index.js';
import { resync } from '../../src/storage/resync.js';
import { startReplica } from '../support/replica.js';

describe('resync', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const replica = (name: string) => startReplica(name, cleanups);

  it('removes a chunk no source has, but not one a write created after the sources were asked', async () => {
    const source = await replica('resync-src');
    const target = await replica('resync-dst');
    // source (head) -> target (syncing): new writes reach the target as whole chunks.
    source.server.setChain(1, { chainVersion: 1, head: true, successor: target.server.address, successorSyncing: true });
    target.server.setChain(1, { chainVersion: 1, head: false });
    const client = new ChunkClient({ transport: 'tcp' });
    cleanups.push(() => client.close());

    const leftover = { inode: 5n, index: 0 };  // deleted everywhere else while the target was away
    // Only a pending version of it is here (its write never completed); a client's write
    // creates it at the source during the resync and is forwarded here.
    const reborn = { inode: 6n, index: 0 };
    await target.store.write(leftover, 0, Buffer.from('old leftover'));
    await target.store.write(reborn, 0, Buffer.from('never committed'), { commit: false });

    const fresh = Buffer.alloc(10000, 7);
    let written = false;
    const racing = new Proxy(client, {
      get(obj, key) {
        if (key !== 'stat') return Reflect.get(obj, key);
        return async (address: string, chunk: { inode: bigint; index: number }) => {
          try {
            return await obj.stat(address, chunk);
          } catch (err) {
            // The source said "unknown"; now a client's write of that chunk goes through the
            // chain before resync gets to remove it.
            if (err instanceof MillpondError && err.code === 'ENOENT' && chunk.inode === reborn.inode && !written) {
              written = true;
              await obj.write(source.server.address, reborn, 0, fresh,
                { chain: { chainId: 1, chainVersion: 1, clientId: 3, requestId: 1 } });
            }
            throw err;
          }
        };
      },
    });

    const stats = await resync({ store: target.store, client: racing, sources: [source.server.address], chains: new Set([1]), removeAllowed: true });
    expect(written).toBe(true);
    // The acknowledged write is on both replicas, the same.
    const atSource = await source.store.read(reborn, 0, fresh.length);
    const atTarget = await target.store.read(reborn, 0, fresh.length);
    expect(atSource.data.equals(fresh)).toBe(true);
    expect(atTarget.data.equals(fresh)).toBe(true);
    expect(atTarget.meta).toEqual(atSource.meta);
    await expect(target.store.stat(leftover)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(stats.removed).toBe(1);
  });

  it('copies from a source in several chains only the chunks of the chains resynced (and untagged ones), keeping their tags', async () => {
    const source = await replica('resync-chains-src');
    const target = await replica('resync-chains-dst');
    const client = new ChunkClient({ transport: 'tcp' });
    cleanups.push(() => client.close());
    // The source is on chains 1 and 2 (tagged by the writes that made its chunks); an older
    // millpond's chunk has no tag. The target is resynced for chain 1 only.
    const ofChain1 = { inode: 20n, index: 0 }, ofChain2 = { inode: 20n, index: 1 }, untagged = { inode: 21n, index: 0 };
    await source.store.write(ofChain1, 0, Buffer.alloc(5000, 1), { chainId: 1 });
    await source.store.write(ofChain2, 0, Buffer.alloc(7000, 2), { chainId: 2 });
    await source.store.write(untagged, 0, Buffer.alloc(3000, 3));
    // A stale copy of chain 1's chunk is here: it is replaced, and keeps chain 1's tag.
    await target.store.write(ofChain1, 0, Buffer.from('stale'), { updateVersion: 1 });
    await source.store.write(ofChain1, 100, Buffer.from('newer'));  // version 2 there

    const stats = await resync({ store: target.store, client, sources: [source.server.address], chains: new Set([1]), removeAllowed: true });
    expect(stats).toMatchObject({ listed: 3, copied: 2, foreign: 1, removed: 0 });
    expect(stats.copiedBytes).toBe(5000 + 3000);
    const here = await target.store.list();
    expect(here.map((e) => [e.chunk.inode, e.chunk.index, e.chainId])).toEqual([[20n, 0, 1], [21n, 0, 0]]);
    for (const chunk of [ofChain1, untagged]) {
      const want = await source.store.read(chunk, 0, 8192);
      const got = await target.store.read(chunk, 0, 8192);
      expect(got.data.equals(want.data)).toBe(true);
      expect(got.meta).toEqual(want.meta);
    }
    await expect(target.store.stat(ofChain2)).rejects.toMatchObject({ code: 'ENOENT' });
    // Resynced for both chains, the target gets chain 2's chunk too, tagged.
    const both = await resync({ store: target.store, client, sources: [source.server.address], chains: new Set([1, 2]), removeAllowed: true });
    expect(both).toMatchObject({ copied: 1, foreign: 0 });
    expect((await target.store.list()).map((e) => e.chainId)).toEqual([1, 2, 0]);
  });

  it('a conditional remove refuses a chunk that changed and removes one that did not', async () => {
    const { store } = await replica('remove-if');
    const id = { inode: 9n, index: 1 };
    const first = await store.write(id, 0, Buffer.from('one'));
    const second = await store.write(id, 0, Buffer.from('two'));
    await expect(store.remove(id, { ifMeta: first })).rejects.toMatchObject({ code: 'ESTALE' });
    expect(await store.stat(id)).toEqual(second);
    await store.remove(id, { ifMeta: second });
    await expect(store.stat(id)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => store.remove(id, { ifMeta: { ...second, commitVersion: -1 } })).toThrow(RangeError);
  });
});
