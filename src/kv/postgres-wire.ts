/**
 * PostgresKv's wire: the named statements every connection prepares, and Pipeline, which
 * sends several of them in one round trip.
 */
import { createRequire } from 'node:module';
import pg from 'pg';

/** SQLSTATEs after which a transaction is run again: serialization failure, deadlock. */
export const RETRYABLE = new Set(['40001', '40P01']);

// pg's own conversion of a parameter to its wire text (arrays of bytea, numbers).
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as { prepareValue: (value: unknown) => unknown };

export interface Statement { name: string; text: string }

/** Named statements, prepared once per connection (all of them, at its first checkout). */
export const SQL = {
  beginWrite: { name: 'kv_begin_write', text: 'BEGIN ISOLATION LEVEL SERIALIZABLE' },
  beginRead: { name: 'kv_begin_read', text: 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' },
  commit: { name: 'kv_commit', text: 'COMMIT' },
  rollback: { name: 'kv_rollback', text: 'ROLLBACK' },
  get: { name: 'kv_get', text: 'SELECT v FROM kv WHERE k = $1' },
  getMany: { name: 'kv_get_many', text: 'SELECT k, v FROM kv WHERE k = ANY($1::bytea[])' },
  // getMany with the statement's snapshot (postgres-snapshot-cache.ts) in every row: at least one
  // row, whose k and v are null when no key is present.
  getManyAndSnapshot: {
    name: 'kv_get_many_and_snapshot',
    text: 'SELECT s.snapshot, kv.k, kv.v FROM (SELECT pg_current_snapshot()::text AS snapshot) s LEFT JOIN kv ON kv.k = ANY($1::bytea[])',
  },
  insert: { name: 'kv_insert', text: 'INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO NOTHING' },
  // The inserts of a group's members (postgres-group.ts): the keys it wrote come back.
  insertMany: { name: 'kv_insert_many', text: 'INSERT INTO kv (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) ON CONFLICT (k) DO NOTHING RETURNING k' },
  scan: { name: 'kv_scan', text: 'SELECT k, v FROM kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3' },
  // Deletes, puts and claims of one transaction, written at once; their keys are disjoint. A
  // claimed key that is present fails the statement with a unique violation (23505).
  write: {
    name: 'kv_write',
    text: 'WITH d AS (DELETE FROM kv WHERE k = ANY($1::bytea[])), '
      + 'c AS (INSERT INTO kv (k, v) SELECT * FROM unnest($4::bytea[], $5::bytea[])) '
      + 'INSERT INTO kv (k, v) SELECT * FROM unnest($2::bytea[], $3::bytea[]) ON CONFLICT (k) DO UPDATE SET v = excluded.v',
  },
} as const satisfies Record<string, Statement>;

/** One statement of a Pipeline: a prepared statement and its parameters. */
export interface Step { statement: Statement; values: unknown[] }

/** The parts of pg's connection (pg.Connection) a Pipeline writes to. */
interface WireConnection {
  stream: { cork?(): void; uncork?(): void };
  parsedStatements: Record<string, string>;
  parse(config: { name: string; text: string; types: [] }): void;
  bind(config: { statement: string; values: unknown[]; valueMapper: (value: unknown) => unknown }): void;
  describe(config: { type: 'P'; name: string }): void;
  execute(config: { portal: string }): void;
  sync(): void;
}

export interface StepResult { rows: unknown[][]; rowCount: number | null }

/**
 * Prepared statements sent in one write with one Sync, so they cost one round trip (the
 * extended protocol's pipelining; node-postgres sends a query only after the last one's
 * answer). The server runs them in order and, after an error, skips the rest up to the Sync:
 * the promise rejects with that error. Resolves with each statement's rows. `prepare`: parses
 * the statements instead and records them as prepared on the connection.
 */
export function pipeline(client: pg.PoolClient, steps: Step[], mode: 'run' | 'prepare' = 'run'): Promise<StepResult[]> {
  return new Promise((resolve, reject) => {
    let wire: WireConnection | undefined;
    const query = new pg.Query({ text: 'millpond kv pipeline', rowMode: 'array' } as pg.QueryConfig, (err, result) => {
      if (err) return reject(err);
      if (mode === 'prepare') for (const { statement } of steps) wire!.parsedStatements[statement.name] = statement.text;
      resolve((Array.isArray(result) ? result : [result]) as unknown as StepResult[]);
    });
    query.submit = (connection) => {
      wire = connection as unknown as WireConnection;
      wire.stream.cork?.();
      try {
        for (const { statement, values } of steps) {
          if (mode === 'prepare') {
            wire.parse({ name: statement.name, text: statement.text, types: [] });
            continue;
          }
          wire.bind({ statement: statement.name, values, valueMapper: prepareValue });
          wire.describe({ type: 'P', name: '' });
          wire.execute({ portal: '' });
        }
        wire.sync();
      } finally {
        wire.stream.uncork?.();
      }
    };
    void client.query(query);
  });
}

/** A transaction's write of one key not yet sent: a put (a claim: only if absent), or null: a delete. */
export interface PendingWrite { key: Buffer; value: Buffer | null; claim?: true }

/** `writes` (of distinct keys) as one SQL.write statement; undefined when there are none. */
export function writeStep(writes: Iterable<PendingWrite>): Step | undefined {
  const deletes: Buffer[] = [];
  const putKeys: Buffer[] = [];
  const putValues: Buffer[] = [];
  const claimKeys: Buffer[] = [];
  const claimValues: Buffer[] = [];
  for (const { key, value, claim } of writes) {
    if (value === null) deletes.push(key);
    else if (claim) {
      claimKeys.push(key);
      claimValues.push(value);
    } else {
      putKeys.push(key);
      putValues.push(value);
    }
  }
  if (deletes.length + putKeys.length + claimKeys.length === 0) return undefined;
  return { statement: SQL.write, values: [deletes, putKeys, putValues, claimKeys, claimValues] };
}
