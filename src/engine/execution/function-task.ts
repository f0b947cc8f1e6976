/**
 * A JS function applied to one partition (filter/map/flatMap/mapBatches with a function): in the
 * driver for the local executor (parent-tasks.ts, where closures keep their values), in an
 * executor's worker for the cluster executor (run-task.ts, a shipped self-contained function).
 */
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { MillpondError } from '../../errors.js';
import type { ColumnDecl, JsOp } from '../plan/nodes.js';
import { columnsOfArrow, inferColumns, queryArrow, rowsOfArrow, stageRows } from './arrow-bridge.js';
import { SqlFailure, type TaskDb } from './duckdb.js';
import { relationSql } from './relations.js';
import type { InputRelation } from './task-spec.js';

/** The one column of an empty output whose columns are unknown (map/flatMap without rows or schema). */
export const kNoColumns = '__mp_no_columns';

export interface FunctionWork {
  op: JsOp;
  fn: (arg: unknown) => unknown;
  batchRows?: number;
  schema?: Record<string, string>;
}

/** Applies the function and returns a SELECT over its output. */
export async function applyFunction(db: TaskDb, spec: FunctionWork, input: InputRelation, staging: string): Promise<string> {
  const { fn } = spec;
  const call = async (arg: unknown, what: string): Promise<unknown> => {
    try {
      return await fn(arg);
    } catch (e) {
      const err = new SqlFailure(`${spec.op} function threw on ${what}: ${e instanceof Error ? e.message : String(e)}`, '', true);
      throw err;
    }
  };
  if (spec.op === 'filter') {
    // Keep rows by position, so the output keeps the input's exact types.
    await db.run(`CREATE TEMP TABLE __mp_rows AS SELECT row_number() OVER () AS __mp_row, * FROM (${relationSql(input)})`);
    const rows = (await db.conn.runAndReadAll('SELECT * EXCLUDE (__mp_row) FROM __mp_rows ORDER BY __mp_row')).getRowObjectsJS();
    const keep: Record<string, unknown>[] = [];
    for (const [i, row] of rows.entries()) if (await call(row, `row ${i}`)) keep.push({ r: i + 1 });
    if (keep.length === 0) return 'SELECT * EXCLUDE (__mp_row) FROM __mp_rows LIMIT 0';
    const kept = await stageRows(keep, [{ name: 'r', type: 'BIGINT' }], join(staging, 'keep.jsonl'));
    return `SELECT * EXCLUDE (__mp_row) FROM __mp_rows WHERE __mp_row IN (SELECT r FROM (${kept})) ORDER BY __mp_row`;
  }
  if (spec.op === 'map' || spec.op === 'flatMap') {
    const rows = (await db.conn.runAndReadAll(relationSql(input))).getRowObjectsJS();
    const out: Record<string, unknown>[] = [];
    for (const [i, row] of rows.entries()) {
      const r = await call(row, `row ${i}`);
      if (spec.op === 'map') out.push(checkRow(r, spec.op));
      else {
        if (!Array.isArray(r)) throw new MillpondError('EINVAL', `flatMap function must return an array of row objects, got ${typeof r}`);
        for (const x of r) out.push(checkRow(x, spec.op));
      }
    }
    const columns: ColumnDecl[] = spec.schema ? Object.entries(spec.schema).map(([name, type]) => ({ name, type })) : inferColumns(out);
    if (columns.length === 0) {
      // No rows and no schema: the columns are unknowable. Write an empty file with a
      // placeholder column; consumers skip empty files when a partition has non-empty ones,
      // so it only shows when every partition is empty (pass { schema } to avoid it).
      return `SELECT NULL::VARCHAR AS ${kNoColumns} LIMIT 0`;
    }
    return stageRows(out, columns, join(staging, 'out.jsonl'));
  }
  // mapBatches: the function sees Arrow Tables of at most batchRows rows; an empty partition
  // is one empty batch, so the function still decides the output's columns.
  const table = await queryArrow(db.conn, relationSql(input));
  const batchRows = spec.batchRows ?? 122_880;
  const outTables: arrow.Table[] = [];
  for (let start = 0; start === 0 || start < table.numRows; start += batchRows) {
    const r = await call(table.slice(start, start + batchRows), `rows ${start}..`);
    if (r instanceof arrow.Table) outTables.push(r);
    else if (r instanceof arrow.RecordBatch) outTables.push(new arrow.Table(r));
    else throw new MillpondError('EINVAL', 'mapBatches function must return an apache-arrow Table or RecordBatch');
  }
  const columns = columnsOfArrow(outTables[0]!);
  const rows = outTables.flatMap((t) => rowsOfArrow(t));
  return stageRows(rows, columns, join(staging, 'out.jsonl'));
}

function checkRow(r: unknown, op: string): Record<string, unknown> {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new MillpondError('EINVAL', `${op} function must return row objects, got ${Array.isArray(r) ? 'an array' : typeof r}`);
  return r as Record<string, unknown>;
}
