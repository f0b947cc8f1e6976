/**
 * Moving object bytes between sockets and files with bounded memory. Writes go in pieces of
 * the file's chunk size, aligned to its chunks (each write replaces whole chunks, the cheap
 * path of a chain write), with s3Limits.putChunksInFlight pieces in flight; reads go in
 * chunk-sized pieces ahead of the socket (readTo), which waits for 'drain' before taking more.
 */
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { MillpondError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/file-system.js';
import { s3Limits } from '../limits.js';
import { giveChunkBuffer, keepChunkBuffersUpTo, takeChunkBuffer } from '../fs/chunk-buffers.js';
import { writeFrom } from '../fs/write-from.js';
import type { Inode, ObjectAttrs } from '../protocol/meta-types.js';
import { parentOf } from './paths.js';
import { releasePiece } from './pieces.js';

/**
 * Bytes to write; with `pieces`, a source that can come as shared pieces the shape of the
 * file's chunks from `position` (a request body: pieces.ts), written without a copy.
 */
export interface BodySource extends AsyncIterable<Buffer> {
  pieces?(chunkBytes: number, position: number): AsyncIterable<Buffer>;
}

/** Writes a source into a file in chunk-aligned pieces, s3Limits.putChunksInFlight at once. */
export function writeObjectBytes(handle: FileHandle, source: BodySource, position = 0, lengthBytes = Infinity): Promise<number> {
  const pieces = source.pieces?.(handle.info.layout.chunkSizeBytes, position);
  return writeFrom(handle, pieces ?? source, { position, lengthBytes, inFlightMax: s3Limits.putChunksInFlight, ...(pieces ? { release: releasePiece } : {}) });
}

/** Resolves when `sink` drains or closes, leaving no listener behind. */
function drained(sink: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sink.off('drain', done);
      sink.off('close', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('close', done);
  });
}

/** Bytes of chunk reads this process's GETs have ahead of their sockets (s3Limits.getReadAheadBytesMax). */
let readAheadBytes = 0;
keepChunkBuffersUpTo(s3Limits.getReadAheadBytesMax);

/** What this process's GETs have read ahead of their sockets now, in bytes. */
export function getReadAheadBytes(): number {
  return readAheadBytes;
}

/**
 * Sends bytes [start, end) of an open file to `sink`, honouring its backpressure: chunk-sized
 * reads ahead of the one being sent, up to s3Limits.getChunksAhead while this process's GETs
 * have less than s3Limits.getReadAheadBytesMax ahead (one always, so a GET reads its next chunk
 * while it sends one), into chunk buffers (fs/chunk-buffers.ts) given back once the socket has
 * taken their bytes (sink.write's callback), so GETs reuse warm buffers however long or many
 * the objects (no per-chunk allocation, page faults, zeroing or collection).
 */
export async function readTo(handle: FileHandle, start: number, end: number, sink: Writable): Promise<void> {
  const step = handle.info.layout.chunkSizeBytes;
  const bufferBytes = Math.min(step, end - start); // a chunk, or the whole range when it is smaller (a small GET)
  const ahead: Array<{ buffer: Buffer; read: Promise<number> }> = [];
  let next = start;
  const issue = () => {
    while (ahead.length < s3Limits.getChunksAhead + 1 && next < end) {
      if (ahead.length > 0 && readAheadBytes + bufferBytes > s3Limits.getReadAheadBytesMax) break;
      const n = Math.min(step - (next % step), end - next);
      const buffer = takeChunkBuffer(bufferBytes);
      readAheadBytes += bufferBytes;
      const read = handle.readInto(buffer.subarray(0, n), next);
      read.catch(() => {}); // awaited in order below (or settled in finally)
      ahead.push({ buffer, read });
      next += n;
    }
  };
  issue();
  try {
    while (ahead.length > 0) {
      const n = await ahead[0]!.read;
      const { buffer } = ahead.shift()!;
      readAheadBytes -= bufferBytes;
      if (sink.destroyed) {
        giveChunkBuffer(buffer);
        throw new MillpondError('ECONNRESET', 'the client went away');
      }
      issue();
      const flushed = sink.write(buffer.subarray(0, n), (err) => {
        if (!err) giveChunkBuffer(buffer);
      });
      if (!flushed) await drained(sink);
    }
  } finally {
    // Reads in flight finish before the handle closes; their buffers go back unsent.
    await Promise.allSettled(ahead.map((a) => a.read));
    for (const { buffer } of ahead.splice(0)) {
      readAheadBytes -= bufferBytes;
      giveChunkBuffer(buffer);
    }
  }
}

/** Names of the gateway's files inside buckets, which listings skip (and clean when old). */
export const HIDDEN_NAME_RE = /^\.s3(tmp|up)\.(\d+)\./;

/** A temporary name beside `path`: `.s3tmp.<ms>.<random>`. */
export function tempNameBeside(path: string, kind: 'tmp' | 'up', id = randomBytes(8).toString('hex')): string {
  return `${parentOf(path)}/.s3${kind}.${Date.now()}.${id}`;
}

/**
 * Writes an object so that it appears whole or not at all: the bytes go to a temporary file
 * beside `path` (so the file has its directory's layout, and the rename stays in one
 * directory), its close publishes the length and the S3 attributes, and one rename puts it
 * at `path`, replacing what was there. `attrs` is called after the source ended (the ETag is
 * the digest of what went through). Parent directories are made as needed, once `container`
 * (the bucket's check) passed: it runs only when the temporary file's directory is missing.
 */
export async function publishObject(fs: FileSystem, path: string, fill: (handle: FileHandle) => Promise<void>, attrs: () => ObjectAttrs,
  container: () => Promise<void> = async () => {}): Promise<Inode> {
  const temp = tempNameBeside(path, 'tmp');
  let handle: FileHandle;
  try {
    handle = await fs.open(temp, 'wx', { mode: 0o644 });
  } catch (err) {
    if (!(err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'ENOTDIR'))) throw err;
    await container();
    if (err.code === 'ENOTDIR') throw err;
    await fs.mkdir(parentOf(path), { recursive: true });
    handle = await fs.open(temp, 'wx', { mode: 0o644 });
  }
  let published = false;
  try {
    await fill(handle);
    await handle.close({ object: attrs() });
    await fs.rename(temp, path);
    published = true;
    return handle.info;
  } finally {
    if (!published) {
      await handle.close().catch(() => {});
      await fs.unlink(temp).catch(() => {});
    }
  }
}

/** rename(from, to), making `to`'s parents; retried once when a DELETE removed them meanwhile. */
export async function renameInto(fs: FileSystem, from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.rename(from, to);
      return;
    } catch (err) {
      if (!(err instanceof MillpondError && err.code === 'ENOENT') || attempt >= 2) throw err;
      await fs.mkdir(parentOf(to), { recursive: true });
    }
  }
}
