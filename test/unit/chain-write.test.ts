// CRAQ through the TS API: a write enters at the head, travels the chain and resolves once
// every replica committed it; replicas agree on version, length and checksum.
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkClient, ChunkStore, DataServer, crc32c } from '../../src/index.js';
import { tempDir } from '../support/tmp.js';

describe('chain writes', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function chainOf(length: number) {
    const replicas: Array<{ store: ChunkStore; server: DataServer }> = [];
    for (let i = 0; i < length; i++) {
      const t = tempDir(`chain${i}`);
      const store = await ChunkStore.open(t.dir, { syncWrites: false });
      const server = await DataServer.start(store, { transport: 'tcp' });
      cleanups.push(async () => { await server.stop(); store.close(); t.cleanup(); });
      replicas.push({ store, server });
    }
    replicas.forEach((r, i) => r.server.setChain(1, {
      chainVersion: 3, head: i === 0, successor: replicas[i + 1]?.server.address,
    }));
    return replicas;
  }

  it('commits on every replica before the client hears back', async () => {
    const replicas = await chainOf(3);
    const client = new ChunkClient({ transport: 'tcp' });
    cleanups.push(() => client.close());
    const data = Buffer.alloc(1 << 20, 9);
    const chain = { chainId: 1, chainVersion: 3, clientId: 77, requestId: 1 };
    const meta = await client.write(replicas[0]!.server.address, { inode: 4n, index: 2 }, 0, data, { chain });
    expect(meta).toMatchObject({ commitVersion: 1, updateVersion: 1, checksum: crc32c(data) });
    for (const { store } of replicas) {
      expect(await store.stat({ inode: 4n, index: 2 })).toEqual(meta);
      expect((await store.read({ inode: 4n, index: 2 }, 0, data.length)).data.equals(data)).toBe(true);
    }
    await client.write(replicas[0]!.server.address, { inode: 4n, index: 2 }, 0, data, { chain }); // a retry
    expect(replicas[0]!.server.stats().duplicateWrites).toBe(1);
    expect(replicas[2]!.server.stats().chainWrites).toBe(1); // the retry went no further than the head
    await expect(client.write(replicas[1]!.server.address, { inode: 4n, index: 3 }, 0, data,
      { chain: { ...chain, requestId: 2 } })).rejects.toMatchObject({ code: 'ESTALE' });
    expect(() => client.write(replicas[0]!.server.address, { inode: 4n, index: 3 }, 0, data,
      { chain, updateVersion: 5 })).toThrow(RangeError);
  });
});
