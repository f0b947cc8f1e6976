/**
 * Chunk-sized buffers for sequential I/O in pieces (write streams and S3 PUTs filling pieces,
 * S3 GETs reading ahead of the socket), kept for reuse across calls in this process, up to
 * fsLimits.chunkBuffersPooledBytesMax idle (or more: keepChunkBuffersUpTo). Filling memory
 * already touched runs many times faster than faulting in fresh pages (0.30 GB/s on the
 * machines this runs on, against 21 GB/s warm: bench/results/memory.txt), and no buffer is
 * left to the collector. A fresh one of
 * directReadBytesMin or more is allocated by the addon: block-aligned (O_DIRECT lands in it
 * without staging) and, from a huge page up, backed by transparent huge pages.
 */
import { fsLimits, limits } from '../limits.js';
import { addon } from '../native/binding.js';

const idle = new Map<number, Buffer[]>();
let idleBytes = 0;
let idleBytesMax = fsLimits.chunkBuffersPooledBytesMax;

/**
 * Lets the pool keep up to `bytes` idle, when that is more than it keeps now: a process whose
 * own limits bound the chunk buffers it holds at once (the S3 gateway's GETs) keeps them all.
 */
export function keepChunkBuffersUpTo(bytes: number): void {
  idleBytesMax = Math.max(idleBytesMax, bytes);
}

/** A buffer of exactly `bytes`, unzeroed: one given back earlier, or a fresh one. */
export function takeChunkBuffer(bytes: number): Buffer {
  const buffer = idle.get(bytes)?.pop();
  if (buffer) {
    idleBytes -= bytes;
    return buffer;
  }
  return bytes >= limits.directReadBytesMin ? addon.allocAligned(bytes, true) : Buffer.allocUnsafeSlow(bytes);
}

/** Gives `buffer` back for reuse; the caller no longer touches it, nor does any I/O. */
export function giveChunkBuffer(buffer: Buffer): void {
  if (idleBytes + buffer.length > idleBytesMax) return;
  let list = idle.get(buffer.length);
  if (!list) idle.set(buffer.length, list = []);
  list.push(buffer);
  idleBytes += buffer.length;
}
