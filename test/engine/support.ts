import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

/** Plain DuckDB, the reference every engine result is compared with. */
export async function plainDuckDb(): Promise<{ conn: DuckDBConnection; rows(sql: string): Promise<Record<string, unknown>[]>; close(): void }> {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const conn = await instance.connect();
  return {
    conn,
    rows: async (sql) => (await conn.runAndReadAll(sql)).getRowObjectsJS(),
    close: () => { conn.closeSync(); instance.closeSync(); },
  };
}

const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x instanceof Date ? x.toISOString() : x));

/** Rows as a sorted list of canonical strings: equal multisets compare equal. */
export function bag(rows: readonly Record<string, unknown>[]): string[] {
  return rows.map((r) => json(Object.fromEntries(Object.keys(r).sort().map((k) => [k, r[k]])))).sort();
}

/**
 * Input files: `events` in 3 Parquet files (600 rows; key `k` skewed: half the rows have k = 0,
 * so hash and `by` partitions come out uneven and some empty), the same rows as CSV and JSON,
 * and `users` (20 rows) for joins.
 */
export async function writeInputs(dir: string): Promise<void> {
  const db = await plainDuckDb();
  await db.conn.run(`CREATE TABLE events AS SELECT i::BIGINT AS id, (CASE WHEN i % 2 = 0 THEN 0 ELSE i % 11 END)::BIGINT AS k,
    'name-' || (i % 20) AS name, (i * 1.5)::DOUBLE AS v, [i, i + 1]::BIGINT[] AS xs FROM range(600) t(i)`);
  for (let f = 0; f < 3; f++) {
    await db.conn.run(`COPY (SELECT * FROM events WHERE id % 3 = ${f} ORDER BY id) TO '${dir}/events-${f}.parquet' (FORMAT parquet)`);
  }
  await db.conn.run(`COPY (SELECT id, k, name, v FROM events ORDER BY id) TO '${dir}/events.csv' (FORMAT csv, HEADER)`);
  await db.conn.run(`COPY (SELECT id, k, name, v FROM events ORDER BY id) TO '${dir}/events.json' (FORMAT json)`);
  await db.conn.run(`COPY (SELECT 'name-' || i AS name, (i * 10)::BIGINT AS score FROM range(20) t(i)) TO '${dir}/users.parquet' (FORMAT parquet)`);
  db.close();
}
