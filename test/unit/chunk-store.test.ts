import { afterEach, describe, expect, it } from 'vitest';
import { openSync, readFileSync, readSync, writeSync, closeSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkStore, MillpondError, allocAligned, crc32c, limits } from '../../src/index.js';
import { committedChunkFiles, contentOffset } from '../support/chunk-files.js';
import { tempDir } from '../support/tmp.js';

const chunk = { inode: 42n, index: 3 };

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] ^= 0x5a;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<MillpondError> {
  const error = await p.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(MillpondError);
  expect((error as MillpondError).code).toBe(code);
  return error as MillpondError;
}

describe('ChunkStore', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => cleanups.splice(0).forEach((c) => c()));
  async function open(options = {}) {
    const t = tempDir('store');
    cleanups.push(t.cleanup);
    return { dir: t.dir, store: await ChunkStore.open(t.dir, options) };
  }

  it('round-trips content and reports versions, length and CRC32C', async () => {
    const { store } = await open();
    const data = Buffer.from('hello, chunk');
    const meta = await store.write(chunk, 0, data);
    expect(meta).toEqual({ commitVersion: 1, updateVersion: 1, length: data.length, checksum: crc32c(data) });
    const read = await store.read(chunk, 0, 100);
    expect(read.data.toString()).toBe('hello, chunk');
    expect((await store.read(chunk, 7, 5)).data.toString()).toBe('chunk');
    expect((await store.write(chunk, 20, Buffer.from('!'))).length).toBe(21); // gap reads as zeros
    expect((await store.read(chunk, 12, 9)).data).toEqual(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0x21]));
    store.close();
  });

  it('writes from aligned buffers and reads 4 MiB chunks back intact', async () => {
    const { store } = await open();
    const data = allocAligned(4 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i * 2654435761 >>> 0, i);
    await store.write(chunk, 0, data);
    expect((await store.read(chunk, 0, data.length)).data.equals(data)).toBe(true);
    expect(store.usage().chunks).toBe(1);
    store.close();
  });

  it('keeps a pending version beside the committed one until commit', async () => {
    const { store } = await open();
    await store.write(chunk, 0, Buffer.from('old'));
    const pending = await store.write(chunk, 0, Buffer.from('new'), { commit: false });
    expect(pending).toMatchObject({ commitVersion: 1, updateVersion: 2 });
    expect((await store.read(chunk, 0, 3)).data.toString()).toBe('old');
    expect((await store.read(chunk, 0, 3, { uncommitted: true })).data.toString()).toBe('new');
    await rejectsWithCode(store.write(chunk, 0, Buffer.from('x'), { updateVersion: 1 }), 'ESTALE');
    expect(await store.commit(chunk, 2)).toMatchObject({ commitVersion: 2, updateVersion: 2 });
    expect(await store.commit(chunk, 2)).toMatchObject({ commitVersion: 2 }); // a retried commit applies once
    expect((await store.read(chunk, 0, 3)).data.toString()).toBe('new');
    store.close();
  });

  it('reports a flipped byte on disk as ECHUNK_CORRUPT, never as data', async () => {
    const { dir, store } = await open();
    const data = Buffer.alloc(3 * 4096 + 100, 0x33);
    await store.write(chunk, 0, data);
    const [file] = committedChunkFiles(dir);
    flipByte(file!, contentOffset(data.length) + 4096 + 17); // inside block 1
    const error = await rejectsWithCode(store.read(chunk, 0, data.length), 'ECHUNK_CORRUPT');
    expect(error.message).toMatch(/block 1/);
    await rejectsWithCode(store.read(chunk, 4096 + 10, 20), 'ECHUNK_CORRUPT');
    // Blocks that were not damaged still read (each block carries its own CRC).
    expect((await store.read(chunk, 8192, 4096)).data.equals(data.subarray(8192, 12288))).toBe(true);
    store.close();
  });

  it('refuses a chunk whose header was damaged until a replacing write repairs it', async () => {
    const { dir, store } = await open();
    await store.write(chunk, 0, Buffer.from('payload'));
    store.close();
    flipByte(committedChunkFiles(dir)[0]!, 30);
    const reopened = await ChunkStore.open(dir);
    await rejectsWithCode(reopened.read(chunk, 0, 7), 'ECHUNK_CORRUPT');
    expect((await reopened.list())[0]).toMatchObject({ corrupt: true });
    await reopened.write(chunk, 0, Buffer.from('repaired'), { replace: true });
    expect((await reopened.read(chunk, 0, 8)).data.toString()).toBe('repaired');
    reopened.close();
  });

  it('refuses writes beyond its capacity with ENOSPC and keeps the old data', async () => {
    const { store } = await open({ capacityBytes: 64 * 1024 });
    await store.write(chunk, 0, Buffer.alloc(8192, 1));
    await rejectsWithCode(store.write(chunk, 0, Buffer.alloc(128 * 1024, 2)), 'ENOSPC');
    expect((await store.read(chunk, 0, 8192)).data.equals(Buffer.alloc(8192, 1))).toBe(true);
    store.close();
  });

  it('lists chunks of one inode together, in index order, with pagination', async () => {
    const { store } = await open();
    for (const [inode, index] of [[2n, 5], [1n, 9], [2n, 1], [1n, 0]] as const) {
      await store.write({ inode, index }, 0, Buffer.from('x'));
    }
    const all = await store.list();
    expect(all.map((e) => `${e.chunk.inode}/${e.chunk.index}`)).toEqual(['1/0', '1/9', '2/1', '2/5']);
    const page = await store.list({ after: { inode: 1n, index: 9 }, limit: 1 });
    expect(page.map((e) => `${e.chunk.inode}/${e.chunk.index}`)).toEqual(['2/1']);
    await store.remove({ inode: 1n, index: 9 });
    await rejectsWithCode(store.read({ inode: 1n, index: 9 }, 0, 1), 'ENOENT');
    store.close();
  });

  it('validates arguments before they reach native code', async () => {
    const { store } = await open();
    expect(() => store.write({ inode: -1, index: 0 }, 0, Buffer.alloc(1))).toThrow(TypeError);
    expect(() => store.write({ inode: 1n, index: 2 ** 32 }, 0, Buffer.alloc(1))).toThrow(RangeError);
    expect(() => store.write(chunk, 0, 'text' as unknown as Buffer)).toThrow(TypeError);
    expect(() => store.write(chunk, limits.chunkSizeBytesMax, Buffer.alloc(1))).toThrow(RangeError);
    expect(() => store.write(chunk, 0, Buffer.alloc(70_000), { chunkSizeBytes: 65536 })).toThrow(RangeError);
    expect(() => store.write(chunk, 4, Buffer.alloc(1), { replace: true })).toThrow(RangeError);
    store.close();
    await rejectsWithCode(store.read(chunk, 0, 1), 'ECLOSED');
  });

  it('refuses a non-empty directory that is not a millpond target', async () => {
    const t = tempDir('notarget');
    cleanups.push(t.cleanup);
    mkdirSync(join(t.dir, 'precious'));
    writeFileSync(join(t.dir, 'precious', 'data.txt'), 'keep me');
    await rejectsWithCode(ChunkStore.open(t.dir), 'EINVAL');
    expect(readFileSync(join(t.dir, 'precious', 'data.txt'), 'utf8')).toBe('keep me');
  });

  it('tags a version with the chain a write names, keeps it through untagged updates and a reopen, and lists it', async () => {
    const { dir, store } = await open();
    await store.write(chunk, 0, Buffer.alloc(6000, 1), { chainId: 0xfffffffe });
    await store.write({ inode: 42n, index: 4 }, 0, Buffer.from('no chain'));
    await store.write(chunk, 10, Buffer.from('update'));  // names no chain: keeps the tag
    expect(() => store.write(chunk, 0, Buffer.from('x'), { chainId: -1 })).toThrow(RangeError);
    expect(() => store.write(chunk, 0, Buffer.from('x'), { chainId: 2 ** 32 })).toThrow(RangeError);
    store.close();
    const again = await ChunkStore.open(dir);
    cleanups.push(() => again.close());
    expect((await again.list()).map((e) => [e.chunk.index, e.chainId])).toEqual([[3, 0xfffffffe], [4, 0]]);
    // Format 3 on disk: the content sits after the fixed header, the extension block and the tables.
    const [file] = committedChunkFiles(dir).filter((f) => f.endsWith('000000000000002a00000003.c'));
    const want = Buffer.alloc(6000, 1);
    Buffer.from('update').copy(want, 10);
    expect(readFileSync(file!).subarray(contentOffset(6000), contentOffset(6000) + 6000).equals(want)).toBe(true);
    expect(readFileSync(file!).readUInt32LE(64)).toBe(0xfffffffe);
  });

  it('mirrors the native limits file', () => {
    const header = readFileSync(new URL('../../native/common/limits.h', import.meta.url), 'utf8');
    const value = (name: string) => {
      const m = header.match(new RegExp(`k${name} = ([^;]+);`));
      if (!m) throw new Error(`k${name} not in limits.h`);
      return Function(`return ${m[1]!.replace(/size_t\{(\d+)\}/g, '$1').replace(/(\d+)u/g, '$1')}`)() as number;
    };
    expect(limits.chunkSizeBytesMax).toBe(value('ChunkSizeBytesMax'));
    expect(limits.chunkSizeBytesMin).toBe(value('ChunkSizeBytesMin'));
    expect(limits.chunkBlockBytes).toBe(value('ChunkBlockBytes'));
    expect(limits.batchReadEntriesMax).toBe(value('BatchReadEntriesMax'));
    expect(limits.batchReadBytesMax).toBe(value('BatchReadBytesMax'));
    expect(limits.clientInflightBytesDefault).toBe(value('ClientInflightBytesDefault'));
    expect(limits.clientTimeoutMsDefault).toBe(value('ClientTimeoutMsDefault'));
    expect(limits.serverIoThreadsMax).toBe(value('ServerIoThreadsMax'));
    expect(limits.listReplyEntriesMax).toBe(value('ListReplyEntriesMax'));
    expect(limits.serverReceiveAheadBytes).toBe(value('ServerReceiveAheadBytes'));
  });
});
