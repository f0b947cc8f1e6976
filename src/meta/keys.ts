/**
 * The key schema (after 3FS). One byte of prefix, then big-endian fields so that bytewise
 * order is numeric order:
 *   'I' inode u64                         -> Inode
 *   'D' parent u64, name (utf-8)          -> { inode, type }   (a listing is a range scan)
 *   'S' inode u64, session (16 bytes)     -> { uid, openedMs, client? }
 *   'L' clientId                          -> { seenMs }        (liveness of clients with sessions)
 *   'G' inode u64                         -> Garbage           (unlinked files whose chunks go)
 *   'K' inode u64                         -> TrimIntent        (shrunk files whose chunks are cut)
 *   'C' name                              -> counters/config    (e.g. 'C' "inode-next")
 *   'R' clientId, requestId u64           -> { atMs, result }  (applied mutations, for retries)
 *   'T' atMs u64, clientId, requestId u64 -> ''                (expiry index of 'R')
 *   'A' accessKeyId (ascii)               -> AccessKey         (S3 access keys of users)
 */

function u64(value: bigint | number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(value));
  return b;
}

const tag = (c: string) => Buffer.from(c, 'latin1');

/** One allocation for a tag, a u64 and an optional utf-8 name: what every lookup builds. */
function tagged(c: number, id: bigint, name?: string): Buffer {
  const b = Buffer.allocUnsafe(9 + (name === undefined ? 0 : Buffer.byteLength(name, 'utf8')));
  b[0] = c;
  b.writeBigUInt64BE(BigInt(id), 1);
  if (name !== undefined) b.write(name, 9, 'utf8');
  return b;
}

const I = 0x49;
const D = 0x44;

export const ROOT_INODE = 1n;

export const keys = {
  inode: (id: bigint) => tagged(I, id),
  dentry: (parent: bigint, name: string) => tagged(D, parent, name),
  /** [start, end) of the entries of `parent`. */
  dentryRange: (parent: bigint): [Buffer, Buffer] => [Buffer.concat([tag('D'), u64(parent)]), Buffer.concat([tag('D'), u64(parent + 1n)])],
  /** The first key strictly after `name` in `parent` (names never contain NUL). */
  dentryAfter: (parent: bigint, name: string) => Buffer.concat([tag('D'), u64(parent), Buffer.from(name, 'utf8'), Buffer.from([0])]),
  nameOfDentry: (key: Buffer) => key.subarray(9).toString('utf8'),
  session: (inode: bigint, session: Buffer) => Buffer.concat([tag('S'), u64(inode), session]),
  sessionRange: (inode: bigint): [Buffer, Buffer] => [Buffer.concat([tag('S'), u64(inode)]), Buffer.concat([tag('S'), u64(inode + 1n)])],
  sessionsAll: (): [Buffer, Buffer] => [tag('S'), tag('T')],
  /** The key just after `key` in bytewise order (a scan cursor). */
  after: (key: Buffer) => Buffer.concat([key, Buffer.from([0])]),
  inodeOfSession: (key: Buffer) => key.readBigUInt64BE(1),
  liveness: (clientId: Buffer) => Buffer.concat([tag('L'), clientId]),
  livenessAll: (): [Buffer, Buffer] => [tag('L'), tag('M')],
  garbage: (inode: bigint) => Buffer.concat([tag('G'), u64(inode)]),
  garbageRange: (): [Buffer, Buffer] => [tag('G'), tag('H')],
  inodeOfGarbage: (key: Buffer) => key.readBigUInt64BE(1),
  trim: (inode: bigint) => Buffer.concat([tag('K'), u64(inode)]),
  trimRange: (): [Buffer, Buffer] => [tag('K'), tag('L')],
  accessKey: (id: string) => Buffer.concat([tag('A'), Buffer.from(id, 'latin1')]),
  accessKeysAll: (): [Buffer, Buffer] => [tag('A'), tag('B')],
  counter: (name: string) => Buffer.concat([tag('C'), Buffer.from(name, 'utf8')]),
  applied: (clientId: Buffer, requestId: number) => Buffer.concat([tag('R'), clientId, u64(requestId)]),
  expiry: (atMs: number, clientId: Buffer, requestId: number) => Buffer.concat([tag('T'), u64(atMs), clientId, u64(requestId)]),
  expiryRangeBefore: (atMs: number): [Buffer, Buffer] => [tag('T'), Buffer.concat([tag('T'), u64(atMs)])],
  /** The 'R' key an expiry key points at. */
  appliedOfExpiry: (key: Buffer) => Buffer.concat([tag('R'), key.subarray(9)]),
};
