/** Argument checks shared by the chunk classes: TypeError for wrong types, RangeError for bounds. */
import type { ChunkId } from '../native/binding.js';

export function checkChunkId(chunk: ChunkId, what = 'chunk'): void {
  if (typeof chunk !== 'object' || chunk === null) throw new TypeError(`${what} must be { inode, index }`);
  const { inode, index } = chunk;
  if (typeof inode === 'bigint') {
    if (inode < 0n || inode >= 1n << 64n) throw new RangeError(`${what}.inode must fit in 64 bits`);
  } else if (!Number.isSafeInteger(inode) || inode < 0) {
    throw new TypeError(`${what}.inode must be a bigint or a non-negative safe integer`);
  }
  checkU32(index, `${what}.index`);
}

export function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw new RangeError(`${what} must be an integer in 0..2^32-1, got ${value}`);
  }
}

export function checkRange(value: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${what} must be an integer in ${min}..${max}, got ${value}`);
  }
}

export function checkBuffer(value: unknown, what: string): asserts value is Buffer {
  if (!Buffer.isBuffer(value)) throw new TypeError(`${what} must be a Buffer`);
}

export function checkAddress(address: string): void {
  if (typeof address !== 'string' || !/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(address)) {
    throw new TypeError(`address must be "host:port", got ${JSON.stringify(address)}`);
  }
}
