/**
 * The small transactional key-value interface the meta service runs on (after 3FS over
 * FoundationDB). Keys and values are bytes; keys order bytewise (memcmp), so a prefix is a range.
 *
 * Contract: `transact(fn)` runs fn in one serializable transaction and commits it. If the
 * backend detects a conflict it rolls back and runs fn again (bounded by
 * metaLimits.transactionAttemptsMax, then EBUSY), so fn must have no effects outside the
 * transaction. An error thrown by fn rolls back and propagates unchanged. Transactions begun
 * in one event-loop turn may share one backend transaction and its commit (SQLite's group
 * commit, PostgreSQL's group transactions): each still sees only its own writes, and fails
 * alone; should they touch one another's keys, each runs again on its own.
 *
 * `read(fn)` runs fn on one consistent snapshot with no writes (put, insert, claim and delete throw
 * EINVAL): what stat, lookup and readdir need. It never conflicts with writers, so it is never
 * retried, and it takes no locks that would make writers retry.
 */
import { MillpondError } from '../errors.js';

export type KvPair = [key: Buffer, value: Buffer];

/**
 * Values a backend hands out again, the same Buffer for the same stored bytes (SQLite's read
 * cache, PostgreSQL's snapshot cache): a reader may keep what it derives from one, by identity,
 * for as long as the Buffer lives. Every other value is fresh, and read once.
 */
export const sharedValues = new WeakSet<Buffer>();

/** A key as a Map key: latin1, one char a byte (cheaper to make than hex), so ids order as the keys do. */
export function keyId(key: Buffer): string {
  return key.toString('latin1');
}

export interface KvTx {
  /** A value read is the caller's to read, never to modify: reads of one snapshot may share it. */
  get(key: Buffer): Promise<Buffer | undefined>;
  /**
   * The values of `keys` (undefined: absent), in their order, read in one statement. `ids`:
   * keyId of each key, when the caller has them (the backend need not make them again).
   */
  getMany(keys: Buffer[], ids?: string[]): Promise<Array<Buffer | undefined>>;
  put(key: Buffer, value: Buffer): Promise<void>;
  /**
   * Writes `value` only if `key` is absent and returns undefined; otherwise writes nothing and
   * returns the present value. Unlike get-then-put it reads no absent key, so on PostgreSQL
   * concurrent inserts of different keys near each other do not conflict (serializable
   * reads lock index pages, and a create's get of its own new name would lock the page every
   * other create in that directory writes).
   */
  insert(key: Buffer, value: Buffer): Promise<Buffer | undefined>;
  /**
   * Writes `value` at `key`, which must still be absent when the transaction commits: if it is
   * present then, the transaction commits nothing and fails with EEXIST. Unlike insert it
   * needs no answer before the commit, so on PostgreSQL it costs no round trip of its own. For
   * keys that are rarely present, such as a request's applied record (a duplicate request is
   * found by that failure). A later put or delete of the key in the transaction replaces it.
   */
  claim(key: Buffer, value: Buffer): Promise<void>;
  delete(key: Buffer): Promise<void>;
  /** Pairs with start <= key < end in key order, at most `limit`. */
  scan(start: Buffer, end: Buffer, limit: number): Promise<KvPair[]>;
}

export interface KvBackend {
  /** 'sqlite' or 'postgres'. */
  readonly kind: string;
  transact<T>(fn: (tx: KvTx) => Promise<T> | T): Promise<T>;
  /**
   * `oneStatement`: fn usually reads with one statement (a stat whose path hints are right).
   * PostgreSQL then runs that statement alone, without BEGIN and COMMIT (one statement is
   * one snapshot), shared with other such reads; should fn need a second one, its work is
   * dropped and fn runs again, with the next shared statement (a few times at most) and then
   * in a snapshot transaction. So fn may run several times and must keep no state outside.
   */
  read<T>(fn: (tx: KvTx) => Promise<T> | T, options?: { oneStatement?: boolean }): Promise<T>;
  close(): Promise<void>;
}

/** Waits a random time below `ceilingMs`, growing with the attempt, so retries spread out. */
export function backoff(attempt: number, ceilingMs: number): Promise<void> {
  const ms = Math.random() * Math.min(ceilingMs, 2 ** Math.min(attempt, 10));
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** How a transaction fails whose claimed key is present (KvTx.claim), on every backend. */
export function claimedKeyPresent(): MillpondError {
  return new MillpondError('EEXIST', 'a claimed key is present');
}
