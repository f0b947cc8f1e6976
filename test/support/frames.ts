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

/** A list request (ListArgs): chunks strictly after `after` (all without it), at most `limit`. */
export function listRequest(requestId: bigint, limit: number, after?: { inode: bigint; index: number }): Buffer {
  const meta = Buffer.alloc(20);
  if (after) chunkIdBytes(after.inode, after.index).copy(meta, 0);
  meta.writeUInt32LE(after ? 1 : 0, 12);
  meta.writeUInt32LE(limit, 16);
  return Buffer.concat([encodeHeader({ opcode: OPCODE.list, requestId, metaBytes: meta.length, dataBytes: 0 }), meta]);
}

/** One entry of a list reply as the wire has it (frame.h ListEntry). */
export interface ListEntryWire {
  inode: bigint;
  index: number;
  commitVersion: bigint;
  updateVersion: bigint;
  length: number;
  checksum: number;
  corrupt: boolean;
  /** The chain the replica's version was written for; 0 untagged. */
  chainId: number;
}

/** ChunkId 12, ChunkMetaWire 24, flags u32, chainId u32. */
export const LIST_ENTRY_BYTES = 44;
const LIST_ENTRY_CORRUPT = 1;
export const FLAG_REPLY = 1;

/** A list reply's meta: count u32, then the entries. */
export function listReplyMeta(entries: ListEntryWire[]): Buffer {
  const meta = Buffer.alloc(4 + LIST_ENTRY_BYTES * entries.length);
  meta.writeUInt32LE(entries.length, 0);
  entries.forEach((e, i) => {
    const at = 4 + i * LIST_ENTRY_BYTES;
    chunkIdBytes(e.inode, e.index).copy(meta, at);
    meta.writeBigUInt64LE(e.commitVersion, at + 12);
    meta.writeBigUInt64LE(e.updateVersion, at + 20);
    meta.writeUInt32LE(e.length, at + 28);
    meta.writeUInt32LE(e.checksum, at + 32);
    meta.writeUInt32LE(e.corrupt ? LIST_ENTRY_CORRUPT : 0, at + 36);
    meta.writeUInt32LE(e.chainId, at + 40);
  });
  return meta;
}

/** A whole list reply frame (status ok), as a data server sends it. */
export function listReply(requestId: bigint, entries: ListEntryWire[]): Buffer {
  const meta = listReplyMeta(entries);
  return Buffer.concat([encodeHeader({ opcode: OPCODE.list, flags: FLAG_REPLY, requestId, metaBytes: meta.length, dataBytes: 0 }), meta]);
}

/** Decodes a list reply's meta; throws on a size that is not count entries exactly. */
export function decodeListReply(meta: Buffer): ListEntryWire[] {
  const count = meta.readUInt32LE(0);
  if (meta.length !== 4 + count * LIST_ENTRY_BYTES) throw new Error(`a list reply of ${count} entries has ${meta.length} bytes of meta`);
  return Array.from({ length: count }, (_, i) => {
    const at = 4 + i * LIST_ENTRY_BYTES;
    return {
      inode: meta.readBigUInt64BE(at),
      index: meta.readUInt32BE(at + 8),
      commitVersion: meta.readBigUInt64LE(at + 12),
      updateVersion: meta.readBigUInt64LE(at + 20),
      length: meta.readUInt32LE(at + 28),
      checksum: meta.readUInt32LE(at + 32),
      corrupt: (meta.readUInt32LE(at + 36) & LIST_ENTRY_CORRUPT) !== 0,
      chainId: meta.readUInt32LE(at + 40),
    };
  });
}

/** The entries of the list-reply byte fixture (test/fixtures/dataplane/list-reply.bin). */
export const LIST_REPLY_FIXTURE: ListEntryWire[] = [
  { inode: 0x0102030405060708n, index: 9, commitVersion: 5n, updateVersion: 6n, length: 5000, checksum: 0xa1b2c3d4, corrupt: false, chainId: 7 },
  { inode: 0x0102030405060708n, index: 10, commitVersion: 3n, updateVersion: 3n, length: 4096, checksum: 0x01020304, corrupt: false, chainId: 0 },
  { inode: 0x1112131415161718n, index: 0, commitVersion: 0n, updateVersion: 0n, length: 0, checksum: 0, corrupt: true, chainId: 0 },
];
