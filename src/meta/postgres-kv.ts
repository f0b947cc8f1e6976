/**
 * KvBackend on PostgreSQL (npm pg): several meta servers share one namespace. Table
 * `kv(k bytea PRIMARY KEY, v bytea)` (bytea orders bytewise). Every transaction is
 * SERIALIZABLE and is retried on serialization failure or deadlock (SQLSTATE 40001, 40P01).
 */
import pg from 'pg';
import { MillpondError } from '../errors.js';
import { metaLimits } from '../limits.js';
import { backoff, type KvBackend, type KvPair, type KvTx } from './kv.js';

export interface PostgresKvOptions {
  /** e.g. postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/millpond */
  connectionString: string;
  poolConnections?: number;
}

const RETRYABLE = new Set(['40001', '40P01']);
// Any constant: serialises schema creation between servers starting at once.
const SCHEMA_LOCK = 0x6d696c6c;

export class PostgresKv implements KvBackend {
  readonly kind = 'postgres';
  private closed = false;

  private constructor(private readonly pool: pg.Pool) {}

  static async open(options: PostgresKvOptions): Promise<PostgresKv> {
    if (typeof options?.connectionString !== 'string') throw new TypeError('connectionString must be a string');
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolConnections ?? metaLimits.postgresPoolConnectionsDefault,
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
    return new PostgresKv(pool);
  }

  async transact<T>(fn: (tx: KvTx) => Promise<T> | T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new MillpondError('ECLOSED', 'kv backend is closed');
      const client = await this.pool.connect();
      let live = true;
      try {
        await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
        const result = await fn(this.tx(client, () => live));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        const code = (err as { code?: string })?.code;
        if (code !== undefined && RETRYABLE.has(code)) {
          if (attempt < metaLimits.transactionAttemptsMax) {
            await backoff(attempt, metaLimits.transactionBackoffMsMax);
            continue;
          }
          throw new MillpondError('EBUSY', `transaction conflicted ${attempt} times`);
        }
        throw err;
      } finally {
        live = false;
        client.release();
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  private tx(client: pg.PoolClient, isLive: () => boolean): KvTx {
    const q = async (text: string, values: unknown[]) => {
      if (!isLive()) throw new Error('KvTx used after its transaction ended');
      return client.query({ text, values, rowMode: 'array' });
    };
    return {
      get: async (key) => (await q('SELECT v FROM kv WHERE k = $1', [key])).rows[0]?.[0] as Buffer | undefined,
      put: async (key, value) => void (await q('INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v', [key, value])),
      delete: async (key) => void (await q('DELETE FROM kv WHERE k = $1', [key])),
      scan: async (start, end, limit) =>
        (await q('SELECT k, v FROM kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3', [start, end, limit])).rows as KvPair[],
    };
  }
}

function redact(url: string): string {
  return url.replace(/:[^:@/]*@/, ':***@');
}
