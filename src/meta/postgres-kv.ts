/**
 * KvBackend on PostgreSQL (npm pg): several meta servers share one namespace. Table
 * `kv(k bytea PRIMARY KEY, v bytea)` (bytea orders bytewise). A pool of
 * metaLimits.postgresPoolConnectionsDefault connections per server (one transaction each).
 *
 * `transact` is SERIALIZABLE and is retried on serialization failure or deadlock (SQLSTATE
 * 40001, 40P01), at most metaLimits.transactionAttemptsMax attempts. `read` is REPEATABLE READ
 * READ ONLY: one snapshot, no predicate locks (so it never makes a writer retry), never retried.
 *
 * Round trips: every statement is prepared once per connection (named). Puts and deletes are
 * kept in the transaction (later reads in it see them) and written in one statement just before
 * COMMIT (or before a scan); getMany reads any number of keys in one statement.
 */
import { metaTxRetries } from '../metrics/services.js';
import pg from 'pg';
import { MillpondError } from '../errors.js';
import { metaLimits } from '../limits.js';
import { backoff, type KvBackend, type KvPair, type KvTx } from './kv.js';

export interface PostgresKvOptions {
  /** e.g. postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/millpond */
  connectionString: string;
  poolConnections?: number;
  /** Serializable transactions in flight at once (default metaLimits.postgresWritersMax). */
  writersMax?: number;
}

const RETRYABLE = new Set(['40001', '40P01']);
// Any constant: serialises schema creation between servers starting at once.
const SCHEMA_LOCK = 0x6d696c6c;

/** Named (prepared once per connection) statements. */
const SQL = {
  get: { name: 'kv_get', text: 'SELECT v FROM kv WHERE k = $1' },
  getMany: { name: 'kv_get_many', text: 'SELECT k, v FROM kv WHERE k = ANY($1::bytea[])' },
  insert: { name: 'kv_insert', text: 'INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING' },
  scan: { name: 'kv_scan', text: 'SELECT k, v FROM kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3' },
  // Deletes and puts of one transaction, written at once; their keys are disjoint.
  write: {
    name: 'kv_write',
    text: 'WITH d AS (DELETE FROM kv WHERE k = ANY($1::bytea[])) '
      + 'INSERT INTO kv (k, v) SELECT * FROM unnest($2::bytea[], $3::bytea[]) ON CONFLICT (k) DO UPDATE SET v = excluded.v',
  },
} as const;

export class PostgresKv implements KvBackend {
  readonly kind = 'postgres';
  private closed = false;
  /** Attempts that ended in a serialization failure or deadlock (profiling, tests). */
  conflicts = 0;

  private writers = 0;
  private readonly waitingWriters: Array<() => void> = [];

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
   * Waits for one of writersMax places: serializable transactions that overlap conflict more
   * the more of them there are (each reads index pages the others write), and a conflict
   * costs a whole attempt. Reads take no place.
   */
  async transact<T>(fn: (tx: KvTx) => Promise<T> | T): Promise<T> {
    if (this.writers >= this.writersMax) await new Promise<void>((resolve) => this.waitingWriters.push(resolve));
    else this.writers++;
    try {
      return await this.run(fn, false);
    } finally {
      const next = this.waitingWriters.shift();
      if (next) next(); // the place passes on
      else this.writers--;
    }
  }

  read<T>(fn: (tx: KvTx) => Promise<T> | T, options: { oneStatement?: boolean } = {}): Promise<T> {
    return options.oneStatement ? this.readOneStatement(fn) : this.run(fn, true);
  }

  /** fn's first statement alone (its own snapshot); a second one: fn again in a transaction. */
  private async readOneStatement<T>(fn: (tx: KvTx) => Promise<T> | T): Promise<T> {
    if (this.closed) throw new MillpondError('ECLOSED', 'kv backend is closed');
    const client = await this.pool.connect();
    const tx = new PgTx(client, true, true);
    try {
      const result = await fn(tx.api);
      if (!tx.needsTransaction) return result;
    } catch (err) {
      if (!tx.needsTransaction) throw err;
    } finally {
      tx.live = false;
      client.release();
    }
    return this.run(fn, true);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  private async run<T>(fn: (tx: KvTx) => Promise<T> | T, readOnly: boolean): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new MillpondError('ECLOSED', 'kv backend is closed');
      const client = await this.pool.connect();
      const tx = new PgTx(client, readOnly);
      try {
        await client.query(readOnly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN ISOLATION LEVEL SERIALIZABLE');
        const result = await fn(tx.api);
        await tx.flush();
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
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

/** One transaction's statements on one connection, with its not yet written puts and deletes. */
class PgTx {
  live = true;
  /** hex key -> value to put, or null: delete. */
  private readonly pending = new Map<string, { key: Buffer; value: Buffer | null }>();

  /** With `oneStatement`: a second statement was asked for, so the reads need a transaction. */
  needsTransaction = false;
  private statements = 0;

  constructor(private readonly client: pg.PoolClient, private readonly readOnly: boolean, private readonly oneStatement = false) {}

  private q(statement: { name: string; text: string }, values: unknown[]) {
    if (!this.live) throw new Error('KvTx used after its transaction ended');
    if (this.oneStatement && this.statements++ > 0) {
      this.needsTransaction = true;
      throw new Error('a one-statement read asked for a second statement');
    }
    return this.client.query({ ...statement, values, rowMode: 'array' });
  }

  private write(): void {
    if (!this.live) throw new Error('KvTx used after its transaction ended');
    if (this.readOnly) throw new MillpondError('EINVAL', 'a read-only KV transaction cannot write');
  }

  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const deletes: Buffer[] = [];
    const putKeys: Buffer[] = [];
    const putValues: Buffer[] = [];
    for (const { key, value } of this.pending.values()) {
      if (value === null) deletes.push(key);
      else {
        putKeys.push(key);
        putValues.push(value);
      }
    }
    await this.q(SQL.write, [deletes, putKeys, putValues]);
    this.pending.clear();
  }

  readonly api: KvTx = {
    get: async (key) => {
      const mine = this.pending.get(key.toString('hex'));
      if (mine) return mine.value ?? undefined;
      return (await this.q(SQL.get, [key])).rows[0]?.[0] as Buffer | undefined;
    },
    getMany: async (keys) => {
      if (keys.length > metaLimits.getManyKeysMax) throw new RangeError(`getMany reads at most ${metaLimits.getManyKeysMax} keys`);
      const hex = keys.map((k) => k.toString('hex'));
      const missing = keys.filter((_, i) => !this.pending.has(hex[i]!));
      const found = new Map<string, Buffer>();
      if (missing.length > 0) {
        for (const [k, v] of (await this.q(SQL.getMany, [missing])).rows as KvPair[]) found.set(k.toString('hex'), v);
      }
      return hex.map((h) => {
        const mine = this.pending.get(h);
        return mine ? mine.value ?? undefined : found.get(h);
      });
    },
    put: async (key, value) => {
      this.write();
      this.pending.set(key.toString('hex'), { key, value });
    },
    delete: async (key) => {
      this.write();
      this.pending.set(key.toString('hex'), { key, value: null });
    },
    insert: async (key, value) => {
      this.write();
      const h = key.toString('hex');
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
    scan: async (start, end, limit) => {
      await this.flush();
      return (await this.q(SQL.scan, [start, end, limit])).rows as KvPair[];
    },
  };
}

function redact(url: string): string {
  return url.replace(/:[^:@/]*@/, ':***@');
}
