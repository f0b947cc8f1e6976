/** Hand-built data-plane frames (native/transport/frame.h) for tests that speak raw TCP. */
import { crc32c } from '../../src/index.js';

export const MAGIC = 0x3144504d;
export const HEADER_BYTES = 32;
export const OPCODE = { read: 1, write: 2, batchRead: 3, remove: 4, stat: 5, list: 6, commit: 7, ping: 8 } as const;
export const STATUS = { ok: 0, notFound: 1, corrupt: 6, protocol: 8, tooLarge: 9 } as const;

export interface FrameHeader {
  magic?: number;
  version?: number;
  opcode: number;
  flags?: number;
  requestId: bigint;
  metaBytes: number;
  dataBytes: number;
  status?: number;
}

export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.writeUInt32LE(h.magic ?? MAGIC, 0);
  b.writeUInt8(h.version ?? 1, 4);
  b.writeUInt8(h.opcode, 5);
  b.writeUInt16LE(h.flags ?? 0, 6);
  b.writeBigUInt64LE(h.requestId, 8);
  b.writeUInt32LE(h.metaBytes, 16);
  b.writeUInt32LE(h.dataBytes, 20);
  b.writeInt32LE(h.status ?? 0, 24);
  b.writeUInt32LE(crc32c(b.subarray(0, 28)), 28);
  return b;
}

export function decodeHeader(b: Buffer) {
  return {
    magic: b.readUInt32LE(0),
    opcode: b.readUInt8(5),
    flags: b.readUInt16LE(6),
    requestId: b.readBigUInt64LE(8),
    metaBytes: b.readUInt32LE(16),
    dataBytes: b.readUInt32LE(20),
    status: b.readInt32LE(24),
  };
}

/** A ChunkId on the wire: 12 bytes big-endian. */
export function chunkIdBytes(inode: bigint, index: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeBigUInt64BE(inode, 0);
  b.writeUInt32BE(index, 8);
  return b;
}

export function statRequest(requestId: bigint, inode: bigint, index: number): Buffer {
  const meta = chunkIdBytes(inode, index);
  return Buffer.concat([encodeHeader({ opcode: OPCODE.stat, requestId, metaBytes: meta.length, dataBytes: 0 }), meta]);
}

export function writeRequest(requestId: bigint, inode: bigint, index: number, payload: Buffer, payloadChecksum: number): Buffer {
  const meta = Buffer.alloc(64); // WriteArgs; chain fields (40..63) stay zero
  chunkIdBytes(inode, index).copy(meta, 0);
  meta.writeUInt32LE(0, 12); // offset
  meta.writeUInt32LE(payload.length, 16);
  meta.writeBigUInt64LE(0n, 20); // updateVersion: next
  meta.writeUInt32LE(1, 28); // flags: commit
  meta.writeUInt32LE(payloadChecksum, 32);
  meta.writeUInt32LE(0, 36); // chunkSizeBytes: default
  const header = encodeHeader({ opcode: OPCODE.write, requestId, metaBytes: meta.length, dataBytes: payload.length });
  return Buffer.concat([header, meta, payload]);
}

export const BLOCK_BYTES = 4096;
export const WRITE_FLAGS = { commit: 1, replace: 2, chain: 4, expectChecksum: 8, blockCrcs: 16 } as const;
export const READ_FLAGS = { uncommitted: 1, blockCrcs: 2 } as const;

/** The CRC32C of each 4 KiB block of `data` (frame::ComputeBlockCrcs). */
export function blockCrcs(data: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at < data.length; at += BLOCK_BYTES) out.push(crc32c(data.subarray(at, at + BLOCK_BYTES)));
  return out;
}

/**
 * A write request as the native ChunkClient sends it (flag blockCrcs): WriteArgs, then the
 * payload's block CRCs, then the payload. `crcs` and `payloadChecksum` default to the payload's
 * own (a test passes the undamaged payload's to stand for a flip on the wire).
 */
export function writeRequestWithBlockCrcs(requestId: bigint, inode: bigint, index: number, offset: number, payload: Buffer,
  crcs: number[] = blockCrcs(payload), payloadChecksum = crc32c(payload)): Buffer {
  const meta = Buffer.alloc(64 + 4 * crcs.length);
  chunkIdBytes(inode, index).copy(meta, 0);
  meta.writeUInt32LE(offset, 12);
  meta.writeUInt32LE(payload.length, 16);
  meta.writeBigUInt64LE(0n, 20); // updateVersion: next
  meta.writeUInt32LE(WRITE_FLAGS.commit | WRITE_FLAGS.blockCrcs, 28);
  meta.writeUInt32LE(payloadChecksum, 32); // the blocks' combination
  meta.writeUInt32LE(0, 36); // chunkSizeBytes: default
  crcs.forEach((c, i) => meta.writeUInt32LE(c, 64 + 4 * i));
  const header = encodeHeader({ opcode: OPCODE.write, requestId, metaBytes: meta.length, dataBytes: payload.length });
  return Buffer.concat([header, meta, payload]);
}

export function readRequest(requestId: bigint, inode: bigint, index: number, offset: number, length: number, flags = 0): Buffer {
  const meta = Buffer.alloc(24);
  chunkIdBytes(inode, index).copy(meta, 0);
  meta.writeUInt32LE(offset, 12);
  meta.writeUInt32LE(length, 16);
  meta.writeUInt32LE(flags, 20);
  return Buffer.concat([encodeHeader({ opcode: OPCODE.read, requestId, metaBytes: meta.length, dataBytes: 0 }), meta]);
}

/** The payload of the data-plane byte fixtures (test/fixtures/dataplane/). */
export function fixturePayload(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}
