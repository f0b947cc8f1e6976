// The FileSystem API against a real cluster: mgmtd and three storage daemons as processes,
// a meta server on SQLite, files striped over chains of three replicas.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { crc32c } from '../../src/index.js';
import { MetaServer, MetaService, SqliteKv } from '../../src/meta/index.js';
import { MillpondError } from '../../src/errors.js';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import { RoutingClient } from '../../src/cluster/routing-client.js';
import { collectGarbage, startGarbageCollector, trimChunks } from '../../src/storage/garbage.js';
import { clusterLimits, fsLimits } from '../../src/limits.js';
import { listAdmin } from '../support/auth.js';
import { Cluster } from '../cluster/support/cluster.js';
import { tempDir } from '../support/tmp.js';

const CHUNK = 1 << 20; // the test directory's chunk size: many chunks from small files

describe('FileSystem', () => {
  const t = tempDir('fs');
  let cluster: Cluster;
  let meta: MetaServer;
  let service: MetaService;
  let fs: FileSystem;
  let trimRouting: RoutingClient;

  beforeAll(async () => {
    cluster = await Cluster.start(1);
    trimRouting = new RoutingClient({ mgmtd: cluster.mgmtdEndpoints, cluster: cluster.keys.cluster });
    // As `millpond meta --mgmtd` runs it: shrinks cut the files' chunks.
    const kv = new SqliteKv(join(t.dir, 'meta.db'));
    await listAdmin(kv, cluster.keys);
    service = await MetaService.open(kv, {
      clusterSecret: cluster.keys.cluster.secret, // capabilities: the token client's chunk requests carry them
      storage: { trim: (inode, layout, length) => trimChunks(trimRouting, inode, layout, length) },
    });
    meta = await MetaServer.start(service, 'tcp://127.0.0.1:0', { auth: cluster.keys.cluster, mgmtd: cluster.mgmtdEndpoints });
    fs = await connect({ meta: meta.endpoint, mgmtd: cluster.mgmtdEndpoints, transport: 'tcp', ...cluster.keys.admin });
    await fs.mkdir('/data');
    await fs.setLayout('/data', { chunkSizeBytes: CHUNK, stripeSize: 4 });
  }, 60_000);

  afterAll(async () => {
    fs?.close();
    trimRouting?.close();
    await meta?.close();
    await cluster?.stop();
    t.cleanup();
  });

  it('tunes the native client (read-ahead, chunks in flight, connections) and reports what it did', async () => {
    const data = randomBytes(6 * CHUNK + 777);
    await fs.writeFile('/data/tuned', data);
    // A sequential reader in half-chunk steps: the default client prefetches whole chunks ahead.
    const readInSteps = async (reader: FileSystem) => {
      const h = await reader.open('/data/tuned', 'r');
      try {
        const parts: Buffer[] = [];
        for (let at = 0; at < data.length; at += CHUNK / 2) parts.push(await h.readAt(at, Math.min(CHUNK / 2, data.length - at)));
        return Buffer.concat(parts);
      } finally {
        await h.close();
      }
    };
    const tuned = await connect({ meta: meta.endpoint, mgmtd: cluster.mgmtdEndpoints, transport: 'tcp', ...cluster.keys.admin,
      io: { readAheadBytes: 0, chunksInflight: 2, connectionsPerServer: 3 } });
    const plain = await connect({ meta: meta.endpoint, mgmtd: cluster.mgmtdEndpoints, transport: 'tcp', ...cluster.keys.admin });
    try {
      expect((await readInSteps(tuned)).equals(data)).toBe(true);
      expect((await readInSteps(plain)).equals(data)).toBe(true);
      const off = tuned.ioCounters();
      const on = plain.ioCounters();
      expect(off).toMatchObject({ prefetches: 0, prefetchHits: 0, bytesRead: data.length, chunkWrites: 0 });
      expect(off.chunkReads).toBeGreaterThanOrEqual(Math.ceil(data.length / (CHUNK / 2))); // each half-chunk step is its own chunk read
      expect(on.prefetches).toBeGreaterThan(0);
      expect(on.prefetchHits).toBeGreaterThan(0);
      expect(on.bytesRead).toBe(data.length);
      await tuned.writeFile('/data/tuned-copy', data);
      expect(tuned.ioCounters()).toMatchObject({ bytesWritten: data.length, chunkWrites: 7 });
    } finally {
      tuned.close();
      plain.close();
    }
    for (const io of [{ chunksInflight: 0 }, { readAheadBytes: -1 }, { connectionsPerServer: 1.5 }, { connectionsPerServer: 17 }, { chunksInflight: 100_000 }]) {
      await expect(connect({ meta: meta.endpoint, mgmtd: cluster.mgmtdEndpoints, transport: 'tcp', ...cluster.keys.admin, io }), JSON.stringify(io))
        .rejects.toMatchObject({ code: 'EINVAL' });
    }
  });

  it('hedges a small share of its reads when its own load makes every replica slow', async () => {
    // 16 readers at once, 32 chunk reads in flight each: answers wait behind this client's
    // own queue at every replica, which a second read of each late chunk only lengthens.
    // Hedges are paid from a budget (native/client/hedge_governor.h): at most the burst plus
    // one per kReadHedgeEarnDivisor (10) first attempts, however late the answers.
    const files = Array.from({ length: 16 }, (_, i) => ({ path: `/data/many-${i}`, data: randomBytes(24 * CHUNK + i) }));
    await Promise.all(files.map((f) => fs.writeFile(f.path, f.data)));
    const reader = await connect({ meta: meta.endpoint, mgmtd: cluster.mgmtdEndpoints, transport: 'tcp', ...cluster.keys.admin,
      io: { readAheadBytes: 0, chunksInflight: 32 } });
    try {
      for (let round = 0; round < 3; round++) {
        await Promise.all(files.map(async (f) => expect((await reader.readFile(f.path)).equals(f.data), f.path).toBe(true)));
      }
      const c = reader.ioCounters();
      expect(c.bytesRead).toBe(3 * files.reduce((n, f) => n + f.data.length, 0));
      expect(c.hedgedReads, JSON.stringify(c)).toBeLessThanOrEqual(16 + Math.floor(c.chunkReads / 10));
    } finally {
      reader.close();
    }
  });

  it('writes and reads back files of many sizes, across chunk boundaries', async () => {
    for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345]) {
      const data = randomBytes(size);
      await fs.writeFile(`/data/f${size}`, data);
      const back = await fs.readFile(`/data/f${size}`);
      expect(back.length, `size ${size}`).toBe(size);
      expect(back.equals(data), `size ${size}`).toBe(true);
      expect((await fs.stat(`/data/f${size}`)).size).toBe(size);
    }
  });

  it('streams a 1 GiB file in and out with its checksum intact, the writer reusing one buffer', async () => {
    const piece = randomBytes(16 * CHUNK + 333); // not chunk-aligned: every write straddles chunks
    const pieces = Math.ceil(1024 * CHUNK / piece.length);
    let expected = 0;
    // A write's callback gives the buffer back: the next piece overwrites it at once, so
    // bytes the stream still read after the callback would break the checksum.
    const stream = fs.createWriteStream('/data/big');
    const finished = new Promise<void>((resolve, reject) => stream.on('error', reject).on('finish', resolve));
    for (let i = 0; i < pieces; i++) {
      piece.writeUInt32LE(i, 0); // every piece differs
      piece.writeUInt32LE(i, 8 * CHUNK); // in a chunk the stream writes from the buffer itself
      expected = crc32c(piece, expected);
      await new Promise<void>((resolve, reject) => stream.write(piece, (err) => (err ? reject(err) : resolve())));
    }
    stream.end();
    await finished;
    expect((await fs.stat('/data/big')).size).toBe(pieces * piece.length);
    let actual = 0;
    for await (const chunk of fs.createReadStream('/data/big', { highWaterMark: 8 * CHUNK })) actual = crc32c(chunk, actual);
    expect(actual).toBe(expected);
    await fs.unlink('/data/big');
  }, 180_000);

  it('reads at positions, appends, truncates and leaves holes as zeros', async () => {
    await fs.writeFile('/data/a', 'hello');
    await fs.appendFile('/data/a', ', world');
    expect(await fs.readFile('/data/a', 'utf8')).toBe('hello, world');
    const h = await fs.open('/data/a', 'r+');
    await h.write(Buffer.from('!'), 2 * CHUNK + 5); // a hole of two chunks
    await h.close();
    const all = await fs.readFile('/data/a');
    expect(all.length).toBe(2 * CHUNK + 6);
    expect(all.subarray(12, 2 * CHUNK + 5).every((b) => b === 0)).toBe(true);
    const r = await fs.open('/data/a');
    const buf = Buffer.alloc(5);
    expect((await r.read(buf, 0, 5, 7)).bytesRead).toBe(5);
    expect(buf.toString()).toBe('world');
    // readInto: into a reused (dirty) buffer, holes come back as zeros, bounded by the end.
    const dirty = Buffer.alloc(2 * CHUNK + 100, 0xee);
    expect(await r.readInto(dirty, 7)).toBe(2 * CHUNK - 1);
    expect(dirty.subarray(0, 5).toString()).toBe('world');
    expect(dirty.subarray(5, 2 * CHUNK - 2).every((b) => b === 0)).toBe(true);
    expect(dirty[2 * CHUNK - 2]).toBe('!'.charCodeAt(0));
    expect(dirty[2 * CHUNK - 1]).toBe(0xee); // past the file's end: untouched
    expect(await r.readInto(dirty, 2 * CHUNK + 6)).toBe(0);
    await r.close();
    await fs.truncate('/data/a', 4);
    expect(await fs.readFile('/data/a', 'utf8')).toBe('hell');
    const again = await fs.open('/data/a', 'r+');
    await again.write(Buffer.from('X'), 8); // the cut bytes must not come back
    await again.close();
    expect(await fs.readFile('/data/a')).toEqual(Buffer.from('hell\0\0\0\0X'));
  });

  it('readBatch: many small reads in batched messages, across chunks, holes and the end, byte-exact', async () => {
    const data = randomBytes(5 * CHUNK + 777);
    const h = await fs.open('/data/batch', 'w');
    await h.write(data.subarray(0, 2 * CHUNK)); // chunk 2 stays a hole
    await h.write(data.subarray(3 * CHUNK), 3 * CHUNK);
    await h.close();
    const expected = Buffer.from(data);
    expected.fill(0, 2 * CHUNK, 3 * CHUNK);
    const r = await fs.open('/data/batch');
    const reads: Array<{ position: number; length: number }> = [];
    for (let i = 0; i < 500; i++) reads.push({ position: Math.floor(Math.random() * (data.length - 4096)), length: 4096 });
    reads.push({ position: CHUNK - 10, length: 20 }); // across a chunk boundary
    reads.push({ position: 2 * CHUNK + 1, length: 100 }); // in the hole
    reads.push({ position: data.length - 5, length: 100 }); // past the end: bounded
    reads.push({ position: data.length + 10, length: 100 }); // wholly past it: empty
    const got = await r.readBatch(reads);
    let at = 0;
    for (const { position, length } of reads) {
      const want = expected.subarray(position, Math.min(position + length, expected.length));
      expect(got.subarray(at, at + want.length).equals(want), `read at ${position}`).toBe(true);
      at += want.length;
    }
    expect(got.length).toBe(at);
    await expect(r.readBatch([{ position: -1, length: 1 }])).rejects.toThrow(RangeError);
    await r.close();
  });

  it('streams a file in and out with checksums intact', async () => {
    const data = randomBytes(5 * CHUNK + 777);
    await pipeline(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), fs.createWriteStream('/data/stream'));
    const hash = createHash('sha256');
    for await (const piece of fs.createReadStream('/data/stream', { highWaterMark: 300_000 })) hash.update(piece);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    const slice: Buffer[] = [];
    for await (const piece of fs.createReadStream('/data/stream', { start: 10, end: 19 })) slice.push(piece);
    expect(Buffer.concat(slice).equals(data.subarray(10, 20))).toBe(true);
  });

  it('lists, renames, globs and removes like node:fs', async () => {
    await fs.mkdir('/data/tree/x/y', { recursive: true });
    await fs.writeFile('/data/tree/x/one.parquet', 'p1');
    await fs.writeFile('/data/tree/x/y/two.parquet', 'p2');
    await fs.writeFile('/data/tree/x/y/notes.txt', 'n');
    const entries = await fs.readdir('/data/tree/x', { withFileTypes: true });
    expect(entries.map((e) => [e.name, e.isDirectory()])).toEqual([['one.parquet', false], ['y', true]]);
    expect(await fs.glob('/data/tree/**/*.parquet')).toEqual(['/data/tree/x/one.parquet', '/data/tree/x/y/two.parquet']);
    expect(await fs.glob('/data/tree/x/?/*.txt')).toEqual(['/data/tree/x/y/notes.txt']);
    await fs.rename('/data/tree/x/y', '/data/tree/z');
    expect(await fs.readFile('/data/tree/z/two.parquet', 'utf8')).toBe('p2');
    await fs.rm('/data/tree', { recursive: true });
    await expect(fs.stat('/data/tree')).rejects.toMatchObject({ code: 'ENOENT', path: '/data/tree', syscall: 'stat' });
    await fs.rm('/data/tree', { force: true });
  });

  it('gives node-shaped errors for bad input', async () => {
    const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: MillpondError) => e.code);
    await fs.writeFile('/data/file', 'x');
    expect(await codeOf(fs.readFile('/data/missing'))).toBe('ENOENT');
    expect(await codeOf(fs.mkdir('/data/file'))).toBe('EEXIST');
    expect(await codeOf(fs.readdir('/data/file'))).toBe('ENOTDIR');
    expect(await codeOf(fs.writeFile('/data', 'x'))).toBe('EISDIR');
    expect(await codeOf(fs.writeFile('/data/bad\0name', 'x'))).toBe('EINVAL');
    expect(await codeOf(fs.writeFile(`/data/${'n'.repeat(300)}`, 'x'))).toBe('ENAMETOOLONG');
    expect(await codeOf(fs.open('/data/file', 'wx'))).toBe('EEXIST');
    expect(await codeOf(fs.link('/data/file', '/data/file'))).toBe('EEXIST');
    expect(await codeOf(fs.link('/data', '/data-too'))).toBe('EPERM');
    expect(await codeOf(fs.rmdir('/data'))).toBe('ENOTEMPTY');
    const h = await fs.open('/data/file', 'r');
    expect(await codeOf(h.write(Buffer.from('y')))).toBe('EBADF');
    await h.close();
    // A file longer than readFile returns (a sparse one: no bytes written) is refused whole,
    // never returned short as if it were the file.
    await fs.writeFile('/data/huge', '');
    await fs.truncate('/data/huge', fsLimits.readBytesMax + 1);
    expect(await codeOf(fs.readFile('/data/huge'))).toBe('EINVAL');
    await fs.unlink('/data/huge');
  });

  it('removes the chunks of unlinked files in the background, after their last name', async () => {
    // 41 chunks: a target's listing of them takes pages of 16, 32, ... (garbageListPageFirst),
    // and a file made after it puts other chunks right behind them.
    const bytes = randomBytes(40 * CHUNK + 10);
    await fs.writeFile('/data/doomed', bytes);
    await fs.writeFile('/data/neighbour', randomBytes(2 * CHUNK));
    await fs.link('/data/doomed', '/data/tree2');
    const ino = (await fs.stat('/data/doomed')).ino;
    expect(await fs.stat('/data/tree2')).toMatchObject({ ino, nlink: 2, size: bytes.length });
    const routing = new RoutingClient({ mgmtd: cluster.mgmtdEndpoints, cluster: cluster.keys.cluster });
    const client = new ChunkClient({ transport: 'tcp', credentials: cluster.dataCredentials });
    try {
      const chunksOf = async () => {
        let n = 0;
        for (const target of (await routing.refresh()).targets) {
          const entries = await client.list(target.dataAddress, { after: { inode: ino - 1n, index: 0xffff_ffff } });
          n += entries.filter((e) => e.chunk.inode === ino).length;
        }
        return n;
      };
      expect(await chunksOf()).toBe(41 * 3); // 41 chunks, 3 replicas each
      await fs.unlink('/data/doomed'); // one name of two: nothing to collect
      await collectGarbage(service, routing);
      expect(await chunksOf()).toBe(41 * 3);
      expect((await fs.readFile('/data/tree2')).equals(bytes)).toBe(true);
      await fs.unlink('/data/tree2');
      const stats = await collectGarbage(service, routing); // earlier tests' removals are queued too
      expect(stats.files).toBeGreaterThanOrEqual(1);
      expect(stats.chunksRemoved).toBeGreaterThanOrEqual(41 * 3);
      expect(await chunksOf()).toBe(0);
      expect((await fs.readFile('/data/neighbour')).length).toBe(2 * CHUNK);
      expect(await service.listGarbage(10)).toEqual([]);
    } finally {
      client.close();
      routing.close();
    }
  });

  it('drains a garbage backlog of several batches pass after pass, not one batch per interval', async () => {
    // 4 batches (clusterLimits.garbageBatch) queued at once; passes every 4 s: one batch per
    // interval would take about 16 s, back-to-back passes after full batches well under 10 s.
    const files = 4 * clusterLimits.garbageBatch;
    await fs.mkdir('/data/backlog');
    await Promise.all(Array.from({ length: files }, (_, i) => fs.writeFile(`/data/backlog/${i}`, 'x')));
    await Promise.all(Array.from({ length: files }, (_, i) => fs.unlink(`/data/backlog/${i}`)));
    expect((await service.listGarbage(1024)).length).toBeGreaterThanOrEqual(files);
    const routing = new RoutingClient({ mgmtd: cluster.mgmtdEndpoints, cluster: cluster.keys.cluster });
    const started = Date.now();
    const collector = startGarbageCollector(service, routing, 4_000);
    try {
      while ((await service.listGarbage(1)).length > 0) {
        expect(Date.now() - started).toBeLessThan(10_000);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await collector.stop();
      routing.close();
    }
  });
});
