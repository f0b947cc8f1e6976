/**
 * KvBackend on PostgreSQL (npm pg): several meta servers share one namespace. Table
 * `kv(k bytea PRIMARY KEY, v bytea)` (bytea orders bytewise). A pool of
 * metaLimits.postgresPoolConnectionsDefault connections per server (one transaction each).
 *
 * `transact` is SERIALIZABLE and is retried on serialization failure or deadlock (SQLSTATE
 * 40001, 40P01), at most metaLimits.transactionAttemptsMax attempts. `read` is REPEATABLE READ
 * READ ONLY: one snapshot, no predicate locks (so it never makes a writer retry), never retried.
 *
 * Round trips: every statement is prepared once per connection (named), and statements that
 * need no answer in between share one round trip (a Pipeline): BEGIN goes with the
 * transaction's first statement; puts and deletes are kept in the transaction (later reads in
 * it see them) and written in one statement that goes with COMMIT (or with a scan); getMany
 * reads any number of keys in one statement. So a transaction whose fn waits for n answers
 * costs n + 1 round trips (the last carries its writes and COMMIT), and one that only writes
 * costs one. Round trips are what a meta server spends its CPU on: in a profile of creates on
 * a 2-core VM, the write(2) of each (which wakes the backend) was a third of its busy time.
 *
 * Transactions begun in one event-loop turn (a batch of requests' mutations) run together as
 * one group transaction (postgres-group.ts): one round trip per step of all of them, one
 * COMMIT, in one writer place. A group whose members touch one another's keys gives up, and
 * each member runs alone as above.
 *
 * One-statement reads (stats) made in one event-loop turn share one statement: each read's
 * first statement (get or getMany) only names its keys; then one SELECT on one connection
 * reads the keys of them all (one snapshot, which serves each of them as its own statement
 * would) and each read goes on with its values. A read that asks for a second statement runs
 * again from the start with the next turn's shared statement (at most
 * metaLimits.postgresOneStatementRoundsMax runs); after that, or for a scan, alone in a
 * snapshot transaction, as before. What those statements found is
 * kept while PostgreSQL's snapshot stays the same (postgres-snapshot-cache.ts): a statement then
 * reads only the keys not kept, and returns its snapshot, which must still be theirs.
 */
import { metaTxRetries } from '../metrics/services.js';
import pg from 'pg';
import { MillpondError } from '../errors.js';
import { metaLimits } from '../limits.js';
import { backoff, claimedKeyPresent, keyId, type KvBackend, type KvPair, type KvTx } from './kv.js';
import { Group, type Transaction } from './postgres-group.js';
import { SnapshotCache } from './postgres-snapshot-cache.js';
import { pipeline, RETRYABLE, SQL, writeStep, type PendingWrite, type Statement, type Step, type StepResult } from './postgres-wire.js';

// Any constant: serialises schema creation between servers starting at once.
const SCHEMA_LOCK = 0x6d696c6c;

export interface PostgresKvOptions {
  /** e.g. postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/millpond */
  connectionString: string;
  poolConnections?: number;
  /** Serializable transactions in flight at once (default metaLimits.postgresWritersMax). */
  writersMax?: number;
}

export class PostgresKv implements KvBackend {
  readonly kind = 'postgres';
  private closed = false;
  /** Attempts that ended in a serialization failure or deadlock (profiling, tests). */
  conflicts = 0;
  /** Groups of transactions that committed together, and that were abandoned (their members then ran alone). */
  groupsCommitted = 0;
  groupsAbandoned = 0;
  /** Transactions waiting for this turn's group. */
  private transactions: Transaction[] = [];

  private writers = 0;
  private readonly waitingWriters: Array<() => void> = [];
  /** Connections whose statements are prepared (see connect). */
  private readonly prepared = new WeakSet<pg.PoolClient>();
  /** What the shared one-statement reads found, while the snapshot holds. */
  readonly snapshotCache = new SnapshotCache(metaLimits.postgresReadCacheEntriesMax);
  /** One-statement reads waiting for the next shared statement. */
  private oneStatementReads: Array<{ fn: (tx: KvTx) => unknown; round: number; resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];

  private constructor(private readonly pool: pg.Pool, private readonly writersMax: number) {}

  static async open(options: PostgresKvOptions): Promise<PostgresKv> {
    if (typeof options?.connectionString !== 'string') throw new TypeError('connectionString must be a string');
    if (options.writersMax !== undefined && (!Number.isSafeInteger(options.writersMax) || options.writersMax < 1)) throw new RangeError('writersMax must be a positive integer');
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolConnections ?? metaLimits.postgresPoolConnectionsDefault,
      // The table is only read by key or key range. A sequential scan (which the planner
      // picks for getMany's `k = ANY($1)` on a small table) takes a predicate lock on the
      // whole relation under SERIALIZABLE, so every concurrent writer would conflict with it.
      options: '-c enable_seqscan=off',
    });
    pool.on('error', () => {}); // an idle connection lost; the next checkout reconnects
    try {
      const client = await pool.connect();
      try {
        await client.query('SELECT pg_advisory_lock($1)', [SCHEMA_LOCK]);
        await client.query('CREATE TABLE IF NOT EXISTS kv (k bytea PRIMARY KEY, v bytea NOT NULL)');
        await client.query('SELECT pg_advisory_unlock($1)', [SCHEMA_LOCK]);
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end().catch(() => {});
      throw new MillpondError('ECONNREFUSED', `postgres at ${redact(options.connectionString)}: ${(err as Error).message}`);
    }
    return new PostgresKv(pool, options.writersMax ?? metaLimits.postgresWritersMax);
  }

  /**
   * Queues fn for this turn's group (postgres-group.ts): the transactions begun in one turn
   * run as one, at most metaLimits.postgresGroupMembersMax together.
   */
  transact<T>(fn: (tx: KvTx) => Promise<T> | T): Promise<T> {
    if (this.closed) return Promise.reject(new MillpondError('ECLOSED', 'kv backend is closed'));
    return new Promise<T>((resolve, reject) => {
      this.transactions.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (this.transactions.length === 1) setImmediate(() => this.startGroups());
    });
  }

  private startGroups(): void {
    const queued = this.transactions.splice(0);
    const max = metaLimits.postgresGroupMembersMax;
    for (let i = 0; i < queued.length; i += max) void this.runGroup(queued.slice(i, i + max));
  }

  /**
   * `members` as one group in a writer place, again after a conflict (a retry, as run's), and
   * each alone in a place of its own when it is one, or when the group gave up.
   */
  private async runGroup(members: Transaction[]): Promise<void> {
    for (let attempt = 1; members.length > 1; attempt++) {
      const verdict = await this.tryGroup(members);
      if (verdict === 'committed') {
        this.groupsCommitted++;
        return;
      }
      if (verdict === 'conflicted') {
        this.conflicts++;
        metaTxRetries.inc();
      }
      if (verdict !== 'conflicted' || attempt >= metaLimits.postgresGroupAttemptsMax) {
        this.groupsAbandoned++;
        break;
      }
      await backoff(attempt, metaLimits.transactionBackoffMsMax);
    }
    await Promise.all(members.map((m) => this.inWriterPlace(() => this.run(m.fn, false)).then(m.resolve, m.reject)));
  }

  private async tryGroup(members: Transaction[]): Promise<'committed' | 'conflicted' | 'abandoned'> {
    return this.inWriterPlace(async () => {
      if (this.closed) return 'abandoned';
      const client = await this.connect();
      try {
        return await new Group(client, members).run();
      } finally {
        client.release();
      }
    }).catch(() => 'abandoned' as const); // no connection: each member alone reports it
  }

  /**
   * Runs fn in one of writersMax places, waiting for one: serializable transactions that
   * overlap conflict more the more of them there are (each reads index pages the others
   * write), and a conflict costs a whole attempt. Reads take no place.
   */
  private async inWriterPlace<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writers >= this.writersMax) await new Promise<void>((resolve) => this.waitingWriters.push(resolve));
    else this.writers++;
    try {
      return await fn();
    } finally {
      this.snapshotCache.wrote();
      const next = this.waitingWriters.shift();
      if (next) next(); // the place passes on
      else this.writers--;
    }
  }

  read<T>(fn: (tx: KvTx) => Promise<T> | T, options: { oneStatement?: boolean } = {}): Promise<T> {
    return options.oneStatement ? this.readOneStatement(fn) : this.run(fn, true);
  }

  /**
   * fn's first statement shared with this turn's other reads. Should fn need a second one, it
   * runs again from the start with the next turn's shared statement (`round` counts these
   * runs): its first run taught the path hints what to ask for, and the snapshot cache serves
   * what the first statement found if the snapshot still holds. After
   * metaLimits.postgresOneStatementRoundsMax runs, or for a scan: fn again in a transaction.
   */
  private readOneStatement<T>(fn: (tx: KvTx) => Promise<T> | T, round = 1): Promise<T> {
    if (this.closed) return Promise.reject(new MillpondError('ECLOSED', 'kv backend is closed'));
    return new Promise<T>((resolve, reject) => {
      this.oneStatementReads.push({ fn, round, resolve: resolve as (v: unknown) => void, reject });
      if (this.oneStatementReads.length === 1) setImmediate(() => void this.runOneStatementReads());
    });
  }

  /**
   * Starts every queued read with a gathering transaction, waits one turn (each has then
   * finished or named the keys of its first statement), and reads those keys in statements of
   * at most metaLimits.postgresReadGroupMembersMax reads and metaLimits.getManyKeysMax keys, all in
   * flight at once. Each part's reads are answered as its statement returns, so the first
   * answers leave while later parts are read; those that needed more than one statement run
   * again (readOneStatement).
   */
  private async runOneStatementReads(): Promise<void> {
    const queued = this.oneStatementReads;
    this.oneStatementReads = [];
    const members = queued.map((m) => {
      const tx = new GatherTx();
      const outcome = Promise.resolve().then(() => m.fn(tx.api)).then(
        (value) => ({ ok: true as const, value }),
        (err: unknown) => ({ ok: false as const, err }),
      );
      return { ...m, tx, outcome };
    });
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const m of members) m.tx.started = true; // a first statement asked for from now on is a late one
    const settle = async (m: (typeof members)[number]): Promise<void> => {
      const outcome = await m.outcome;
      m.tx.live = false;
      if (m.tx.needs === undefined) {
        if (outcome.ok) m.resolve(outcome.value);
        else m.reject(outcome.err);
        return;
      }
      if (m.tx.needs === 'statement' && m.round < metaLimits.postgresOneStatementRoundsMax) {
        this.readOneStatement(m.fn, m.round + 1).then(m.resolve, m.reject);
        return;
      }
      try {
        m.resolve(await this.run(m.fn, true));
      } catch (err) {
        m.reject(err);
      }
    };
    const parts: Array<typeof members> = [];
    for (let i = 0; i < members.length;) {
      const part: typeof members = [];
      let keyCount = 0;
      for (; i < members.length && part.length < metaLimits.postgresReadGroupMembersMax; i++) {
        const asked = members[i]!.tx.keys?.length ?? 0;
        if (part.length > 0 && keyCount + asked > metaLimits.getManyKeysMax) break;
        part.push(members[i]!);
        keyCount += asked;
      }
      parts.push(part);
    }
    await Promise.all(parts.map(async (part) => {
      await this.readShared(part.map((m) => m.tx));
      await Promise.all(part.map(settle));
    }));
  }

  /** One statement for the keys the gathering transactions asked for (none: no statement). */
  private async readShared(txs: GatherTx[]): Promise<void> {
    const asking = txs.filter((t) => t.keys !== undefined);
    if (asking.length === 0) return;
    const byId = new Map<string, Buffer>();
    for (const t of asking) t.keys!.forEach((k, i) => byId.set(t.ids[i]!, k));
    try {
      const found = await this.readKeys(byId);
      for (const t of asking) t.answer(found);
    } catch (err) {
      for (const t of asking) t.fail(err);
    }
  }

  /**
   * The values of `wanted` (keyId -> key) as of one snapshot: those the snapshot cache keeps,
   * if the statement that reads the rest returns their snapshot; else all of them read again.
   */
  private async readKeys(wanted: Map<string, Buffer>): Promise<Map<string, Buffer>> {
    const kept = this.snapshotCache.lookup(wanted.keys());
    const unkept = kept ? [...wanted].filter(([id]) => !kept.values.has(id)) : [...wanted];
    let read = await this.readWithSnapshot(unkept.map(([, key]) => key));
    if (kept && kept.values.size > 0) {
      if (read.snapshot === kept.snapshot) {
        this.snapshotCache.keysServed += kept.values.size;
        this.snapshotCache.learn(read.snapshot, unkept.map(([id]) => id), read.found);
        for (const [id, value] of kept.values) if (value) read.found.set(id, value);
        return read.found;
      }
      this.snapshotCache.stale++;
      read = await this.readWithSnapshot([...wanted.values()]);
    }
    this.snapshotCache.learn(read.snapshot, wanted.keys(), read.found);
    return read.found;
  }

  /** One statement: the present ones of `keys` by keyId, and its snapshot. */
  private async readWithSnapshot(keys: Buffer[]): Promise<{ snapshot: string; found: Map<string, Buffer> }> {
    if (this.closed) throw new MillpondError('ECLOSED', 'kv backend is closed');
    const client = await this.connect();
    let rows: Array<[string, Buffer | null, Buffer | null]>;
    try {
      rows = (await client.query({ ...SQL.getManyAndSnapshot, values: [keys], rowMode: 'array' })).rows as typeof rows;
    } finally {
      client.release();
    }
    const found = new Map<string, Buffer>();
    for (const [, k, v] of rows) if (k !== null) found.set(keyId(k), v!);
    return { snapshot: rows[0]![0], found };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  /** A pooled connection with every statement of SQL prepared (one round trip, at its first checkout). */
  private async connect(): Promise<pg.PoolClient> {
    const client = await this.pool.connect();
    if (this.prepared.has(client)) return client;
    try {
      await pipeline(client, Object.values(SQL).map((statement) => ({ statement, values: [] })), 'prepare');
    } catch (err) {
      client.release(err as Error); // not returned to the pool: its statements are unknown
      throw err;
    }
    this.prepared.add(client);
    return client;
  }

  private async run<T>(fn: (tx: KvTx) => Promise<T> | T, readOnly: boolean): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new MillpondError('ECLOSED', 'kv backend is closed');
      const client = await this.connect();
      const tx = new PgTx(client, readOnly);
      try {
        const result = await fn(tx.api);
        await tx.commit();
        return result;
      } catch (err) {
        if (tx.began) await client.query({ ...SQL.rollback, values: [] }).catch(() => {});
        const code = (err as { code?: string })?.code;
        if (code !== undefined && RETRYABLE.has(code)) {
          this.conflicts++;
          metaTxRetries.inc();
          if (attempt < metaLimits.transactionAttemptsMax) {
            await backoff(attempt, metaLimits.transactionBackoffMsMax);
            continue;
          }
          throw new MillpondError('EBUSY', `transaction conflicted ${attempt} times`);
        }
        throw err;
      } finally {
        tx.live = false;
        client.release();
      }
    }
  }
}

/**
 * The transaction a one-statement read sees while gathering: its first get or getMany names its
 * keys and waits for the shared statement; anything more marks what it needs (and throws,
 * ending this run of it): another statement, or for a scan a transaction of its own.
 */
class GatherTx {
  live = true;
  /** Set once the shared statement's keys are fixed: a first statement after it is too late. */
  started = false;
  needs: 'statement' | 'transaction' | undefined;
  keys: Buffer[] | undefined;
  /** keyId of each of `keys`. */
  ids: string[] = [];
  private waiter: { resolve: (found: Map<string, Buffer>) => void; reject: (err: unknown) => void } | undefined;

  answer(found: Map<string, Buffer>): void {
    this.waiter?.resolve(found);
  }

  fail(err: unknown): void {
    this.waiter?.reject(err);
  }

  private ask(keys: Buffer[], ids?: string[]): Promise<Map<string, Buffer>> {
    if (!this.live) throw new Error('KvTx used after its transaction ended');
    if (this.keys !== undefined || this.started) {
      this.needs = 'statement';
      throw new Error('a one-statement read asked for a second statement');
    }
    this.keys = keys;
    this.ids = ids ?? keys.map(keyId);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  private more(): never {
    this.needs = 'transaction';
    throw new Error('a one-statement read asked for a scan');
  }

  private write(): never {
    if (!this.live) throw new Error('KvTx used after its transaction ended');
    throw new MillpondError('EINVAL', 'a read-only KV transaction cannot write');
  }

  readonly api: KvTx = {
    get: async (key) => (await this.ask([key])).get(this.ids[0]!),
    getMany: async (keys, ids) => {
      if (keys.length > metaLimits.getManyKeysMax) throw new RangeError(`getMany reads at most ${metaLimits.getManyKeysMax} keys`);
      const found = await this.ask(keys, ids);
      return this.ids.map((id) => found.get(id));
    },
    put: async () => this.write(),
    insert: async () => this.write(),
    claim: async () => this.write(),
    delete: async () => this.write(),
    scan: async () => this.more(),
  };
}

/**
 * One transaction's statements on one connection, with its not yet written puts and deletes.
 * BEGIN is not sent on its own: it waits in `ahead` for the first statement (or the commit).
 */
class PgTx {
  live = true;
  /** BEGIN has been sent: on failure the connection needs a ROLLBACK. */
  began = false;
  /** Statements that go ahead of the next one, in its round trip (BEGIN; a scan's write). */
  private ahead: Step[];
  /** keyId -> value to put (claim: only if absent), or null: delete. */
  private readonly pending = new Map<string, PendingWrite>();

  constructor(private readonly client: pg.PoolClient, private readonly readOnly: boolean) {
    this.ahead = [{ statement: readOnly ? SQL.beginRead : SQL.beginWrite, values: [] }];
  }

  private async q(statement: Statement, values: unknown[]): Promise<StepResult> {
    if (!this.live) throw new Error('KvTx used after its transaction ended');
    const steps = [...this.ahead, { statement, values }];
    this.ahead = [];
    this.began = true;
    return (await pipeline(this.client, steps)).at(-1)!;
  }

  private write(): void {
    if (!this.live) throw new Error('KvTx used after its transaction ended');
    if (this.readOnly) throw new MillpondError('EINVAL', 'a read-only KV transaction cannot write');
  }

  /** The pending puts and deletes as one statement (undefined: none), and forgets them. */
  private takeWrites(): Step | undefined {
    const step = writeStep(this.pending.values());
    this.pending.clear();
    return step;
  }

  /** q, with a claim's unique violation (by the write that goes ahead of it) as EEXIST. */
  private async qAfterWrites(statement: Statement, values: unknown[]): Promise<StepResult> {
    const writes = this.takeWrites();
    if (writes) this.ahead.push(writes);
    try {
      return await this.q(statement, values);
    } catch (err) {
      if ((err as { code?: string })?.code === '23505') throw claimedKeyPresent();
      throw err;
    }
  }

  /** The pending writes and COMMIT in one round trip (nothing at all if nothing was read or written). */
  async commit(): Promise<void> {
    if (this.began || this.pending.size > 0) await this.qAfterWrites(SQL.commit, []);
  }

  readonly api: KvTx = {
    get: async (key) => {
      const mine = this.pending.get(keyId(key));
      if (mine) return mine.value ?? undefined;
      return (await this.q(SQL.get, [key])).rows[0]?.[0] as Buffer | undefined;
    },
    getMany: async (keys, given) => {
      if (keys.length > metaLimits.getManyKeysMax) throw new RangeError(`getMany reads at most ${metaLimits.getManyKeysMax} keys`);
      const ids = given ?? keys.map((k) => keyId(k));
      const missing = keys.filter((_, i) => !this.pending.has(ids[i]!));
      const found = new Map<string, Buffer>();
      if (missing.length > 0) {
        for (const [k, v] of (await this.q(SQL.getMany, [missing])).rows as KvPair[]) found.set(keyId(k), v);
      }
      return ids.map((h) => {
        const mine = this.pending.get(h);
        return mine ? mine.value ?? undefined : found.get(h);
      });
    },
    put: async (key, value) => {
      this.write();
      this.pending.set(keyId(key), { key, value });
    },
    delete: async (key) => {
      this.write();
      this.pending.set(keyId(key), { key, value: null });
    },
    claim: async (key, value) => {
      this.write();
      const h = keyId(key);
      const mine = this.pending.get(h);
      if (mine?.value) throw claimedKeyPresent();
      // Deleted earlier in this transaction: absent at the commit, so a plain put.
      this.pending.set(h, mine ? { key, value } : { key, value, claim: true });
    },
    insert: async (key, value) => {
      this.write();
      const h = keyId(key);
      const mine = this.pending.get(h);
      if (mine?.value) return mine.value;
      if (mine) {
        this.pending.set(h, { key, value }); // deleted earlier in this transaction: absent now
        return undefined;
      }
      // No predicate lock: the unique index decides (a concurrent insert of the same key that
      // commits first makes this a serialization failure, and the retry sees its value).
      if ((await this.q(SQL.insert, [key, value])).rowCount === 1) return undefined;
      return (await this.q(SQL.get, [key])).rows[0]?.[0] as Buffer;
    },
    // A scan sees this transaction's writes: they go ahead of it.
    scan: async (start, end, limit) => (await this.qAfterWrites(SQL.scan, [start, end, limit])).rows as KvPair[],
  };
}

function redact(url: string): string {
  return url.replace(/:[^:@/]*@/, ':***@');
}
