/**
 * The small transactional key-value interface the meta service runs on (after 3FS over
 * FoundationDB). Keys and values are bytes; keys order bytewise (memcmp), so a prefix is a range.
 *
 * Contract: `transact(fn)` runs fn in one serializable transaction and commits it. If the
 * backend detects a conflict it rolls back and runs fn again (bounded by
 * metaLimits.transactionAttemptsMax, then EBUSY), so fn must have no effects outside the
 * transaction. An error thrown by fn rolls back and propagates unchanged.
 */
export type KvPair = [key: Buffer, value: Buffer];

export interface KvTx {
  get(key: Buffer): Promise<Buffer | undefined>;
  put(key: Buffer, value: Buffer): Promise<void>;
  delete(key: Buffer): Promise<void>;
  /** Pairs with start <= key < end in key order, at most `limit`. */
  scan(start: Buffer, end: Buffer, limit: number): Promise<KvPair[]>;
}

export interface KvBackend {
  /** 'sqlite' or 'postgres'. */
  readonly kind: string;
  transact<T>(fn: (tx: KvTx) => Promise<T> | T): Promise<T>;
  close(): Promise<void>;
}

/** Waits a random time below `ceilingMs`, growing with the attempt, so retries spread out. */
export function backoff(attempt: number, ceilingMs: number): Promise<void> {
  const ms = Math.random() * Math.min(ceilingMs, 2 ** Math.min(attempt, 10));
  return new Promise((resolve) => setTimeout(resolve, ms));
}
