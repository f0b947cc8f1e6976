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

/**
 * A key in one allocation: its tag byte, then each part in order: a number as u64 big-endian,
 * bytes as they are, text as utf-8.
 */
function key(tag: string, ...parts: Array<bigint | number | Buffer | string>): Buffer {
  let n = 1;
  for (const p of parts) n += typeof p === 'string' ? Buffer.byteLength(p, 'utf8') : Buffer.isBuffer(p) ? p.length : 8;
  const b = Buffer.allocUnsafe(n);
  b[0] = tag.charCodeAt(0);
  let at = 1;
  for (const p of parts) {
    if (typeof p === 'string') at += b.write(p, at, 'utf8');
    else if (Buffer.isBuffer(p)) at += p.copy(b, at);
    else at = b.writeBigUInt64BE(BigInt(p), at);
  }
  return b;
}

const NUL = Buffer.from([0]);

export const ROOT_INODE = 1n;

export const keys = {
  inode: (id: bigint) => key('I', id),
  dentry: (parent: bigint, name: string) => key('D', parent, name),
  /** [start, end) of the entries of `parent`. */
  dentryRange: (parent: bigint): [Buffer, Buffer] => [key('D', parent), key('D', parent + 1n)],
  /** The first key strictly after `name` in `parent` (names never contain NUL). */
  dentryAfter: (parent: bigint, name: string) => key('D', parent, name, NUL),
  nameOfDentry: (k: Buffer) => k.subarray(9).toString('utf8'),
  session: (inode: bigint, session: Buffer) => key('S', inode, session),
  sessionRange: (inode: bigint): [Buffer, Buffer] => [key('S', inode), key('S', inode + 1n)],
  sessionsAll: (): [Buffer, Buffer] => [key('S'), key('T')],
  /** The key just after `key` in bytewise order (a scan cursor). */
  after: (k: Buffer) => Buffer.concat([k, NUL]),
  inodeOfSession: (k: Buffer) => k.readBigUInt64BE(1),
  liveness: (clientId: Buffer) => key('L', clientId),
  livenessAll: (): [Buffer, Buffer] => [key('L'), key('M')],
  garbage: (inode: bigint) => key('G', inode),
  garbageRange: (): [Buffer, Buffer] => [key('G'), key('H')],
  inodeOfGarbage: (k: Buffer) => k.readBigUInt64BE(1),
  trim: (inode: bigint) => key('K', inode),
  trimRange: (): [Buffer, Buffer] => [key('K'), key('L')],
  accessKey: (id: string) => key('A', Buffer.from(id, 'latin1')),
  accessKeysAll: (): [Buffer, Buffer] => [key('A'), key('B')],
  counter: (name: string) => key('C', name),
  applied: (clientId: Buffer, requestId: number) => key('R', clientId, requestId),
  expiry: (atMs: number, clientId: Buffer, requestId: number) => key('T', atMs, clientId, requestId),
  expiryRangeBefore: (atMs: number): [Buffer, Buffer] => [key('T'), key('T', atMs)],
  /** The 'R' key an expiry key points at. */
  appliedOfExpiry: (k: Buffer) => key('R', k.subarray(9)),
};
