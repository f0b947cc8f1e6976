/**
 * KvBackend on SQLite (better-sqlite3, WAL): the embedded default. One table
 * `kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID`. better-sqlite3 is synchronous and this
 * process has one connection, so transactions run one at a time (a queue).
 *
 * Group commit: the transactions queued while a commit is on its way to disk run together in
 * the next SQLite transaction (BEGIN IMMEDIATE, which also serialises against other processes
 * on the same file), each inside its own SAVEPOINT, and share its one COMMIT (one fsync), at
 * most metaLimits.sqliteGroupCommitMax at a time. A transaction whose fn throws rolls back to
 * its savepoint only; none is acknowledged before the shared COMMIT returned, so
 * `synchronous: 'full'` (default) still makes every acknowledged commit survive power loss
 * ('normal' survives a process crash only). SQLITE_BUSY is retried with asynchronous sleeps,
 * never SQLite's busy wait, which would block this event loop while the lock holder may be a
 * transaction of this same process.
 *
 * Reads (`read`) run on a second, read-only connection, never in the writers' queue: the reads
 * queued meanwhile share one deferred (snapshot) transaction there, so a stat neither takes
 * the write lock nor waits behind a group's fsync. WAL gives that connection the last
 * committed state at its first statement, so a read sees every write acknowledged before it
 * began. An in-memory database (one connection only) reads in the writers' queue.
 *
 * Read cache: what the read connection found (a value, or that a key is absent), and what this
 * process's write groups committed, is kept for later reads, by key
 * (metaLimits.sqliteReadCacheEntriesMax), so the directories every stat walks are read from
 * SQLite once, not once per group, and a stat after a create reads none. It always holds the
 * last committed state:
 *   - a write group puts what it committed there as it commits (and drops what it rolled
 *     back, and what it claimed: such keys are rarely read), synchronously, before anything
 *     else runs;
 *   - a commit by any other connection to the file (another process, another SqliteKv) empties
 *     it before the next group uses it (PRAGMA data_version of the write connection, which
 *     counts other connections' commits only);
 *   - a read group uses it only while no write group of this process ended after its snapshot
 *     began, so each group still reads one snapshot;
 *   - a write group reads it for the keys it has not written itself (they are as last
 *     committed: one writer at a time).
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, openSync } from 'node:fs';
import { BoundedCache } from '../bounded-cache.js';
import { MillpondError } from '../errors.js';
import { metaLimits } from '../limits.js';
import { backoff, claimedKeyPresent, keyId, sharedValues, type KvBackend, type KvPair, type KvTx } from './kv.js';

export interface SqliteKvOptions {
  synchronous?: 'full' | 'normal';
  busyTimeoutMs?: number;
}

interface Pending {
  fn: (tx: KvTx) => unknown;
  readOnly: boolean;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

export class SqliteKv implements KvBackend {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly busyTimeoutMs: number;
  private pending: Pending[] = [];
  private draining: Promise<void> | undefined;
  /** The read-only connection (undefined for ':memory:') and its queue. */
  private readonly reader: Database.Database | undefined;
  private readonly readStmts;
  private readPending: Pending[] = [];
  private readDraining: Promise<void> | undefined;
  private closed = false;
  /** The read cache: by keyId, a value or null (absent). */
  private readonly cache = new BoundedCache<string, Buffer | null>(metaLimits.sqliteReadCacheEntriesMax);
  /** Write groups this process ended (committed or rolled back): a read group's cache epoch. */
  private groupsEnded = 0;
  /** The write connection's data_version (other connections' commits) the cache is up to. */
  private othersVersion: unknown = undefined;

  constructor(readonly path: string, options: SqliteKvOptions = {}) {
    if (typeof path !== 'string' || !path) throw new TypeError('path must be a non-empty string');
    const synchronous = options.synchronous ?? 'full';
    if (synchronous !== 'full' && synchronous !== 'normal') throw new RangeError("synchronous must be 'full' or 'normal'");
    this.busyTimeoutMs = options.busyTimeoutMs ?? 10_000;
    // The namespace is users' data: the file is 0600 (SQLite gives its -wal and -shm files the
    // database file's mode), made so before SQLite creates it.
    if (path !== ':memory:') {
      closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
    }
    this.db = new Database(path, { timeout: 0 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${synchronous.toUpperCase()}`);
    this.db.exec('CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID');
    this.stmts = {
      begin: this.db.prepare('BEGIN IMMEDIATE'),
      commit: this.db.prepare('COMMIT'),
      rollback: this.db.prepare('ROLLBACK'),
      savepoint: this.db.prepare('SAVEPOINT one'),
      release: this.db.prepare('RELEASE one'),
      rollbackTo: this.db.prepare('ROLLBACK TO one'),
      get: this.db.prepare<[Buffer], { v: Buffer }>('SELECT v FROM kv WHERE k = ?'),
      put: this.db.prepare<[Buffer, Buffer]>('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v'),
      insert: this.db.prepare<[Buffer, Buffer]>('INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING'),
      del: this.db.prepare<[Buffer]>('DELETE FROM kv WHERE k = ?'),
      scan: this.db.prepare<[Buffer, Buffer, number], { k: Buffer; v: Buffer }>('SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?'),
      dataVersion: this.db.prepare('PRAGMA data_version').pluck(),
    };
    this.reader = path === ':memory:' ? undefined : new Database(path, { readonly: true, timeout: 0 });
    const r = this.reader ?? this.db;
    this.readStmts = {
      begin: r.prepare('BEGIN DEFERRED'),
      /** Any read: it takes the snapshot that BEGIN DEFERRED only announces. */
      snapshot: r.prepare('SELECT 1 FROM kv LIMIT 1'),
      commit: r.prepare('COMMIT'),
      get: r.prepare<[Buffer], { v: Buffer }>('SELECT v FROM kv WHERE k = ?'),
      scan: r.prepare<[Buffer, Buffer, number], { k: Buffer; v: Buffer }>('SELECT k, v FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?'),
    };
  }

  transact<T>(fn: (tx: KvTx) => Promise<T> | T): Promise<T> {
    return this.enqueue(fn, false);
  }

  /** One statement or many, a read is one member of a group (no BEGIN of its own to save). */
  read<T>(fn: (tx: KvTx) => Promise<T> | T, _options?: { oneStatement?: boolean }): Promise<T> {
    if (!this.reader) return this.enqueue(fn, true);
    if (this.closed) return Promise.reject(new MillpondError('ECLOSED', 'kv backend is closed'));
    return new Promise<T>((resolve, reject) => {
      this.readPending.push({ fn, readOnly: true, resolve: resolve as (v: unknown) => void, reject });
      this.readDraining ??= this.drainReads();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.splice(0)) p.reject(new MillpondError('ECLOSED', 'kv backend is closed'));
    for (const p of this.readPending.splice(0)) p.reject(new MillpondError('ECLOSED', 'kv backend is closed'));
    await this.draining;
    await this.readDraining;
    this.reader?.close();
    this.db.close();
  }

  /**
   * Runs the queued reads, each group (metaLimits.sqliteReadGroupMembersMax) in one snapshot of the
   * read connection. The first group begins on the next turn, so the reads of one burst of
   * requests are grouped. SQLITE_BUSY (a reader meets a WAL being recovered) retries the group:
   * reads have no effects.
   */
  private async drainReads(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (;;) {
      if (this.readPending.length === 0) {
        this.readDraining = undefined;
        return;
      }
      const group = this.readPending.splice(0, metaLimits.sqliteReadGroupMembersMax);
      const deadlineMs = Date.now() + this.busyTimeoutMs;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.runReads(group);
          break;
        } catch (err) {
          if (isBusy(err) && Date.now() < deadlineMs) {
            await backoff(attempt, metaLimits.transactionBackoffMsMax);
            continue;
          }
          const failure = isBusy(err) ? new MillpondError('EBUSY', `sqlite stayed busy for ${this.busyTimeoutMs} ms: ${(err as Error).message}`) : err;
          for (const p of group) p.reject(failure);
          break;
        }
      }
      // One turn for the answers to leave (the RPC server flushes replies per turn) and new
      // requests to arrive, before the next group is read.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** One snapshot for `group`; throws (settling nothing) when SQLite itself failed. */
  private async runReads(group: Pending[]): Promise<void> {
    const s = this.readStmts;
    const reader = this.reader!;
    const outcomes: Outcome[] = [];
    s.begin.run();
    try {
      // The cache holds what the snapshot sees only if no other connection committed between
      // the last check and the snapshot (else it is emptied first), nor while it was taken
      // (then this group reads without it, and the next group's check empties it).
      const before = this.dropCacheIfOthersCommitted();
      s.snapshot.get();
      const epoch = this.stmts.dataVersion.get() === before ? this.groupsEnded : -1;
      for (const p of group) {
        let live = true;
        try {
          outcomes.push({ ok: true, value: await p.fn(this.readTx(() => live, epoch)) });
        } catch (err) {
          if (isBusy(err)) throw err;
          outcomes.push({ ok: false, err });
        } finally {
          live = false;
        }
      }
    } finally {
      if (reader.inTransaction) s.commit.run();
    }
    group.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.err);
    });
  }

  /** A read group's view: its snapshot, and the cache while no write group ended after `epoch`. */
  private readTx(isLive: () => boolean, epoch: number): KvTx {
    const s = this.readStmts;
    const get = (key: Buffer, id = keyId(key)): Buffer | undefined => {
      const cached = this.groupsEnded === epoch;
      if (cached) {
        const hit = this.cache.get(id);
        if (hit !== undefined) return hit ?? undefined;
      }
      const value = s.get.get(key)?.v;
      if (cached) this.remember(id, value ?? null);
      return value;
    };
    const check = () => {
      if (!isLive()) throw new Error('KvTx used after its transaction ended');
    };
    const write = (): never => {
      check();
      throw new MillpondError('EINVAL', 'a read-only KV transaction cannot write');
    };
    return {
      get: async (key) => (check(), get(key)),
      getMany: async (keys, ids) => (check(), keys.map((key, i) => get(key, ids?.[i]))),
      put: async () => write(),
      insert: async () => write(),
      claim: async () => write(),
      delete: async () => write(),
      scan: async (start, end, limit): Promise<KvPair[]> => (check(), s.scan.all(start, end, limit).map((r) => [r.k, r.v])),
    };
  }

  /**
   * Empties the read cache if another connection committed since the last check; read groups
   * under way stop using it. Returns the write connection's data_version.
   */
  private dropCacheIfOthersCommitted(): unknown {
    const othersVersion = this.stmts.dataVersion.get();
    if (othersVersion !== this.othersVersion) {
      this.cache.clear();
      this.othersVersion = othersVersion;
      this.groupsEnded++;
    }
    return othersVersion;
  }

  private remember(id: string, value: Buffer | null): void {
    if (value) sharedValues.add(value);
    this.cache.set(id, value);
  }

  /**
   * A write group ended. Committed: what it wrote is what the cache holds now (a stat after a
   * create reads no SQLite); not committed, or a value its member's failure rolled back
   * (undefined): the key leaves the cache. Read groups begun before stop using the cache.
   */
  private groupEnded(writes: Map<string, Buffer | null | undefined>, committed: boolean): void {
    this.groupsEnded++;
    for (const [id, value] of writes) {
      if (!committed || value === undefined) this.cache.delete(id);
      // A copy of its own: a written value may be a view of a larger buffer (the codec's).
      else this.remember(id, value && Buffer.from(value.buffer.slice(value.byteOffset, value.byteOffset + value.length)));
    }
  }

  private enqueue<T>(fn: (tx: KvTx) => Promise<T> | T, readOnly: boolean): Promise<T> {
    if (this.closed) return Promise.reject(new MillpondError('ECLOSED', 'kv backend is closed'));
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, readOnly, resolve: resolve as (v: unknown) => void, reject });
      this.draining ??= this.drain();
    });
  }

  /**
   * Runs groups until none is queued; `draining` is cleared in the same step as the last check.
   * The first group begins on the next turn, so the transactions of one burst of requests (a
   * batch frame) share it and its one fsync, rather than the first one going alone.
   */
  private async drain(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (;;) {
      if (this.pending.length === 0) {
        this.draining = undefined;
        return;
      }
      await this.runGroup(this.pending.splice(0, metaLimits.sqliteGroupCommitMax));
    }
  }

  private async begin(): Promise<void> {
    const deadlineMs = Date.now() + this.busyTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        this.stmts.begin.run();
        return;
      } catch (err) {
        if (isBusy(err) && Date.now() < deadlineMs) {
          await backoff(attempt, metaLimits.transactionBackoffMsMax);
          continue;
        }
        throw isBusy(err) ? new MillpondError('EBUSY', `sqlite stayed busy for ${this.busyTimeoutMs} ms: ${(err as Error).message}`) : err;
      }
    }
  }

  /** Runs `group` in one SQLite transaction, one savepoint each; settles them after COMMIT. */
  private async runGroup(group: Pending[]): Promise<void> {
    try {
      await this.begin();
    } catch (err) {
      for (const p of group) p.reject(err);
      return;
    }
    this.dropCacheIfOthersCommitted(); // none can commit now: this group holds the write lock
    const outcomes: Outcome[] = [];
    // What the group's members wrote, by keyId (null: deleted; undefined: rolled back).
    const writes = new Map<string, Buffer | null | undefined>();
    for (let i = 0; i < group.length; i++) {
      const p = group[i]!;
      if (!p.readOnly) this.stmts.savepoint.run(); // a read has nothing to roll back
      let live = true;
      const mine = new Map<string, Buffer | null | undefined>();
      try {
        const value = await p.fn(this.tx(() => live, p.readOnly, writes, mine));
        if (!p.readOnly) this.stmts.release.run();
        for (const [id, v] of mine) writes.set(id, v);
        outcomes.push({ ok: true, value });
      } catch (err) {
        if (!p.readOnly && this.db.inTransaction) {
          this.stmts.rollbackTo.run();
          this.stmts.release.run();
        }
        for (const id of mine.keys()) writes.set(id, undefined);
        outcomes.push({ ok: false, err });
      } finally {
        live = false;
      }
      if (!this.db.inTransaction) {
        // SQLite ended the whole transaction (an I/O error, disk full): the earlier members'
        // writes are gone with it, and the later ones run in the next group.
        const lost = new MillpondError('EIO', 'sqlite aborted the group commit this transaction was part of');
        for (let j = 0; j < i; j++) if (outcomes[j]!.ok) outcomes[j] = { ok: false, err: lost };
        this.pending.unshift(...group.slice(i + 1));
        group = group.slice(0, i + 1);
        break;
      }
    }
    let committed = false; // not when SQLite ended the transaction itself (above)
    try {
      if (this.db.inTransaction) {
        this.stmts.commit.run();
        committed = true;
      }
    } catch (err) {
      if (this.db.inTransaction) this.stmts.rollback.run();
      this.groupEnded(writes, false);
      for (const p of group) p.reject(err);
      return;
    }
    this.groupEnded(writes, committed);
    group.forEach((p, i) => {
      const o = outcomes[i]!;
      if (o.ok) p.resolve(o.value);
      else p.reject(o.err);
    });
  }

  /**
   * A member's view of its group's transaction: what it writes goes into `mine` (undefined: not
   * for the cache), its group's earlier members' writes are in `writes`.
   */
  private tx(isLive: () => boolean, readOnly: boolean, writes: Map<string, unknown>, mine: Map<string, Buffer | null | undefined>): KvTx {
    const s = this.stmts;
    const check = () => {
      if (!isLive()) throw new Error('KvTx used after its transaction ended');
    };
    const writing = (key: Buffer): string => {
      check();
      if (readOnly) throw new MillpondError('EINVAL', 'a read-only KV transaction cannot write');
      return keyId(key);
    };
    // A key this group has not written is as last committed: the read cache has it right.
    const get = (key: Buffer, id = keyId(key)): Buffer | undefined => {
      if (mine.has(id) || writes.has(id)) return s.get.get(key)?.v;
      const hit = this.cache.get(id);
      if (hit !== undefined) return hit ?? undefined;
      const value = s.get.get(key)?.v;
      this.remember(id, value ?? null);
      return value;
    };
    return {
      get: async (key) => (check(), get(key)),
      getMany: async (keys, ids) => (check(), keys.map((key, i) => get(key, ids?.[i]))),
      put: async (key, value) => {
        const id = writing(key);
        s.put.run(key, value);
        mine.set(id, value);
      },
      insert: async (key, value) => {
        const id = writing(key);
        if (s.insert.run(key, value).changes !== 1) return s.get.get(key)!.v;
        mine.set(id, value);
        return undefined;
      },
      // One writer at a time: absent now is absent at the commit.
      claim: async (key, value) => {
        const id = writing(key);
        if (s.insert.run(key, value).changes !== 1) throw claimedKeyPresent();
        mine.set(id, undefined);
      },
      delete: async (key) => {
        const id = writing(key);
        s.del.run(key);
        mine.set(id, null);
      },
      scan: async (start, end, limit): Promise<KvPair[]> => (check(), s.scan.all(start, end, limit).map((r) => [r.k, r.v])),
    };
  }
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}
