/**
 * KvBackend on SQLite (better-sqlite3, WAL): the embedded default. One table
 * `kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID`. better-sqlite3 is synchronous and this
 * process has one connection, so transactions run one at a time (a queue); each is
 * BEGIN IMMEDIATE, which also serialises against other processes on the same file
 * (SQLITE_BUSY is retried with asynchronous sleeps, never SQLite's busy wait, which would block
 * this event loop while the lock holder may be a transaction of this same process). `synchronous: 'full'` (default) makes an acknowledged commit
 * survive power loss; 'normal' survives a process crash only.
 */
import Database from 'better-sqlite3';
import { MillpondError } from '../errors.js';
import { metaLimits } from '../limits.js';
import { backoff, type KvBackend, type KvPair, type KvTx } from './kv.js';

export interface SqliteKvOptions {
  synchronous?: 'full' | 'normal';
  busyTimeoutMs?: number;
}

export class SqliteKv implements KvBackend {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly busyTimeoutMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(readonly path: string, options: SqliteKvOptions = {}) {
    if (typeof path !== 'string' || !path) throw new TypeError('path must be a non-empty string');
    const synchronous = options.synchronous ?? 'full';
    if (synchronous !== 'full' && synchronous !== 'normal') throw new RangeError("synchronous must be 'full' or 'normal'");
    this.busyTimeoutMs = options.busyTimeoutMs ?? 10_000;
    this.db = new Database(path, { timeout: 0 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${synchronous.toUpperCase()}`);
    this.db.exec('CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID');
    this.stmts = {
      begin: this.db.prepare('BEGIN IMMEDIATE'),
      commit: this.db.prepare('COMMIT'),
      rollback: this.db.prepare('ROLLBACK'),
      get: this.db.prepare<[Buffer], { v: Buffer }>('SELECT v FROM kv WHERE k = ?'),
      put: this.db.prepare<[Buffer, Buffer]>('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v'),
      del: this.db.prepare<[Buffer]>('DELETE FROM kv WHERE k = ?'),
      scan: this.db.prepare<[Buffer, Buffer, number], { k: Buffer; v: Buffer }>('SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?'),
    };
  }

  transact<T>(fn: (tx: KvTx) => Promise<T> | T): Promise<T> {
    const run = this.queue.then(() => this.runWithRetry(fn));
    this.queue = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.db.close();
  }

  private async runWithRetry<T>(fn: (tx: KvTx) => Promise<T> | T): Promise<T> {
    const deadlineMs = Date.now() + this.busyTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new MillpondError('ECLOSED', 'kv backend is closed');
      try {
        this.stmts.begin.run();
      } catch (err) {
        if (isBusy(err) && Date.now() < deadlineMs) {
          await backoff(attempt, metaLimits.transactionBackoffMsMax);
          continue;
        }
        throw isBusy(err) ? new MillpondError('EBUSY', `sqlite stayed busy for ${this.busyTimeoutMs} ms: ${(err as Error).message}`) : err;
      }
      let live = true;
      const tx = this.tx(() => live);
      try {
        const result = await fn(tx);
        this.stmts.commit.run();
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.stmts.rollback.run();
        throw err;
      } finally {
        live = false;
      }
    }
  }

  private tx(isLive: () => boolean): KvTx {
    const s = this.stmts;
    const check = () => {
      if (!isLive()) throw new Error('KvTx used after its transaction ended');
    };
    return {
      get: async (key) => (check(), s.get.get(key)?.v),
      put: async (key, value) => void (check(), s.put.run(key, value)),
      delete: async (key) => void (check(), s.del.run(key)),
      scan: async (start, end, limit): Promise<KvPair[]> => (check(), s.scan.all(start, end, limit).map((r) => [r.k, r.v])),
    };
  }
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}
