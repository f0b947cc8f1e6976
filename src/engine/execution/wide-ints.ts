/**
 * Integers wider than 64 bits (HUGEINT, UHUGEINT: the type of sum(BIGINT)) through the job's
 * Parquet files. Parquet has no 128-bit integer and DuckDB writes them as DOUBLE, so values
 * past 2^53 would come back rounded. Intermediate files keep such columns as their decimal
 * text; the task's OutputRecord names them (`wide`) and readers cast them back, so a result
 * holds the exact value (a bigint in JS, as @duckdb/node-api gives it).
 */
import { DuckDBTypeId } from '@duckdb/node-api';
import type { TaskDb } from './duckdb.js';
import { sqlIdentifier } from './sql.js';
import type { WideColumns } from './task-spec.js';

export type { WideColumns };

/** `select` with its wide integer columns as text, and which they were (none: `select` as is). */
export async function encodeWideInts(db: TaskDb, select: string): Promise<{ select: string; wide?: WideColumns }> {
  const wide: WideColumns = {};
  for (const { name, typeId } of await db.columns(select)) {
    if (typeId === DuckDBTypeId.HUGEINT) wide[name] = 'HUGEINT';
    else if (typeId === DuckDBTypeId.UHUGEINT) wide[name] = 'UHUGEINT';
  }
  const names = Object.keys(wide);
  if (names.length === 0) return { select };
  const replace = names.map((n) => `CAST(${sqlIdentifier(n)} AS VARCHAR) AS ${sqlIdentifier(n)}`).join(', ');
  return { select: `SELECT * REPLACE (${replace}) FROM (${select})`, wide };
}

/** `select` (over files written by encodeWideInts) with the `wide` columns cast back. */
export function decodeWideInts(select: string, wide: WideColumns | undefined, only?: readonly string[]): string {
  const names = Object.keys(wide ?? {}).filter((n) => only === undefined || only.includes(n));
  if (names.length === 0) return select;
  const replace = names.map((n) => `CAST(${sqlIdentifier(n)} AS ${wide![n]}) AS ${sqlIdentifier(n)}`).join(', ');
  return `SELECT * REPLACE (${replace}) FROM (${select})`;
}
