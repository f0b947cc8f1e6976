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

const TWO_32 = 2 ** 32;
const ASCII = /^[\x00-\x7f]*$/;

/** A u64 as key bytes (big-endian), each byte one latin1 char. */
function u64Latin1(value: bigint): string {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < 0n) {
    const bytes = Buffer.allocUnsafe(8);
    bytes.writeBigUInt64BE(value); // RangeError outside u64, as keys.inode
    return bytes.toString('latin1');
  }
  const n = Number(value);
  const hi = Math.floor(n / TWO_32);
  const lo = n >>> 0;
  return String.fromCharCode(hi >>> 24, (hi >>> 16) & 255, (hi >>> 8) & 255, hi & 255, lo >>> 24, (lo >>> 16) & 255, (lo >>> 8) & 255, lo & 255);
}

/** Text as key bytes (utf-8), each byte one latin1 char. */
function utf8Latin1(text: string): string {
  return ASCII.test(text) ? text : Buffer.from(text, 'utf8').toString('latin1');
}

/**
 * keyId (kv.ts) of inode and entry keys, made without building the key (a sixth of the time):
 * what a walk looks up the values it read by. Contract: keyIds.inode(id) ===
 * keyId(keys.inode(id)), and the same for dentry (test/meta/keys.test.ts).
 */
export const keyIds = {
  inode: (id: bigint) => 'I' + u64Latin1(id),
  dentry: (parent: bigint, name: string) => 'D' + u64Latin1(parent) + utf8Latin1(name),
};

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
