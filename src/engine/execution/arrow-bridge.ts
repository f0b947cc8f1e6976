/**
 * Moving data between DuckDB and JavaScript (apache-arrow Tables and plain row objects).
 *
 * DuckDB 1.4.4's node-api has no Arrow interface and the arrow extension is not bundled, so:
 *   DuckDB → Arrow: read a result's columns as JS values and build vectors of mapped types;
 *   JS → DuckDB: write rows as JSON lines and read them back with read_json and declared
 *   column types (exact for integers, strings, booleans, dates, lists and structs; timestamps
 *   keep millisecond precision).
 */
import { writeFile } from 'node:fs/promises';
import * as arrow from 'apache-arrow';
import { DuckDBTypeId, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
import { MillpondError } from '../../errors.js';
import type { ColumnDecl } from '../plan/nodes.js';
import { sqlString } from './relations.js';

// ---- DuckDB → Arrow ------------------------------------------------------------------------

function arrowTypeOf(t: DuckDBType): arrow.DataType {
  switch (t.typeId) {
    case DuckDBTypeId.BOOLEAN: return new arrow.Bool();
    case DuckDBTypeId.TINYINT: return new arrow.Int8();
    case DuckDBTypeId.SMALLINT: return new arrow.Int16();
    case DuckDBTypeId.INTEGER: return new arrow.Int32();
    case DuckDBTypeId.BIGINT: return new arrow.Int64();
    case DuckDBTypeId.UTINYINT: return new arrow.Uint8();
    case DuckDBTypeId.USMALLINT: return new arrow.Uint16();
    case DuckDBTypeId.UINTEGER: return new arrow.Uint32();
    case DuckDBTypeId.UBIGINT: return new arrow.Uint64();
    case DuckDBTypeId.FLOAT: return new arrow.Float32();
    case DuckDBTypeId.DOUBLE: case DuckDBTypeId.DECIMAL: return new arrow.Float64();
    case DuckDBTypeId.BLOB: return new arrow.Binary();
    case DuckDBTypeId.DATE: return new arrow.DateDay();
    case DuckDBTypeId.TIMESTAMP: case DuckDBTypeId.TIMESTAMP_S: case DuckDBTypeId.TIMESTAMP_MS:
    case DuckDBTypeId.TIMESTAMP_NS: case DuckDBTypeId.TIMESTAMP_TZ:
      return new arrow.TimestampMillisecond();
    case DuckDBTypeId.LIST: case DuckDBTypeId.ARRAY: {
      const child = (t as unknown as { valueType: DuckDBType }).valueType;
      return new arrow.List(new arrow.Field('item', arrowTypeOf(child), true));
    }
    case DuckDBTypeId.STRUCT: {
      const s = t as unknown as { entryNames: readonly string[]; entryTypes: readonly DuckDBType[] };
      return new arrow.Struct(s.entryNames.map((n, i) => new arrow.Field(n, arrowTypeOf(s.entryTypes[i]!), true)));
    }
    default: return new arrow.Utf8(); // VARCHAR, ENUM, UUID, and what has no Arrow mapping here (as text)
  }
}

function arrowValue(t: arrow.DataType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (arrow.DataType.isUtf8(t) && typeof v !== 'string') return typeof v === 'object' ? JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) : String(v);
  if (arrow.DataType.isFloat(t) && typeof v === 'bigint') return Number(v);
  if (arrow.DataType.isList(t)) return (v as unknown[]).map((x) => arrowValue(t.children[0]!.type, x));
  if (arrow.DataType.isStruct(t)) {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(t.children.map((f) => [f.name, arrowValue(f.type, o[f.name])]));
  }
  return v;
}

/** Runs `sql` and returns its result as an Arrow Table (column types mapped as above). */
export async function queryArrow(conn: DuckDBConnection, sql: string): Promise<arrow.Table> {
  const reader = await conn.runAndReadAll(sql);
  const names = reader.columnNames();
  const types = reader.columnTypes();
  const columns = reader.getColumnsJS();
  const vectors: Record<string, arrow.Vector> = {};
  names.forEach((name, i) => {
    const type = arrowTypeOf(types[i]!);
    vectors[name] = arrow.vectorFromArray((columns[i] ?? []).map((v) => arrowValue(type, v)), type);
  });
  if (names.length === 0) return new arrow.Table();
  return new arrow.Table(vectors);
}

// ---- Arrow / JS → DuckDB -------------------------------------------------------------------

function duckTypeOfArrow(t: arrow.DataType): string {
  if (arrow.DataType.isDictionary(t)) return duckTypeOfArrow(t.dictionary);
  if (arrow.DataType.isBool(t)) return 'BOOLEAN';
  if (arrow.DataType.isInt(t)) {
    const base = { 8: 'TINYINT', 16: 'SMALLINT', 32: 'INTEGER', 64: 'BIGINT' }[t.bitWidth]!;
    return t.isSigned ? base : `U${base}`;
  }
  if (arrow.DataType.isFloat(t)) return t.precision === arrow.Precision.DOUBLE ? 'DOUBLE' : 'FLOAT';
  if (arrow.DataType.isUtf8(t) || arrow.DataType.isLargeUtf8(t) || arrow.DataType.isNull(t)) return 'VARCHAR';
  if (arrow.DataType.isDate(t)) return 'DATE';
  if (arrow.DataType.isTimestamp(t)) return t.timezone ? 'TIMESTAMPTZ' : 'TIMESTAMP';
  if (arrow.DataType.isList(t)) return `${duckTypeOfArrow(t.children[0]!.type)}[]`;
  if (arrow.DataType.isStruct(t)) return `STRUCT(${t.children.map((f) => `"${f.name.replace(/"/g, '""')}" ${duckTypeOfArrow(f.type)}`).join(', ')})`;
  throw new MillpondError('ENOTSUP', `Arrow type ${t} has no mapping to DuckDB in millpond's engine`);
}

export function columnsOfArrow(table: arrow.Table): ColumnDecl[] {
  return table.schema.fields.map((f) => ({ name: f.name, type: duckTypeOfArrow(f.type) }));
}

/** Plain JS values of an Arrow row (vectors → arrays, struct rows → objects). */
function plain(v: unknown): unknown {
  if (v === null || v === undefined || typeof v !== 'object') return v;
  if (v instanceof Date) return v;
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<unknown>, plain);
  if (v instanceof arrow.Vector) return Array.from(v, plain);
  if (Array.isArray(v)) return v.map(plain);
  const o = typeof (v as { toJSON?: unknown }).toJSON === 'function' ? (v as { toJSON(): Record<string, unknown> }).toJSON() : (v as Record<string, unknown>);
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, plain(x)]));
}

export function rowsOfArrow(table: arrow.Table): Record<string, unknown>[] {
  const names = table.schema.fields.map((f) => f.name);
  const rows: Record<string, unknown>[] = [];
  for (const row of table) {
    const o: Record<string, unknown> = {};
    const r = row as unknown as Record<string, unknown>;
    for (const n of names) o[n] = plain(r[n]);
    rows.push(o);
  }
  return rows;
}

/**
 * The type of a column of bigints: BIGINT; with `allRows` (these are all of the column's
 * values, as in fromItems) the narrowest of BIGINT, HUGEINT and UHUGEINT that holds them.
 * Values it cannot hold are EINVAL here rather than a cast error inside the task.
 */
function integerType(column: string, values: readonly bigint[], allRows: boolean): string {
  let min = 0n;
  let max = 0n;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const fits = (bits: bigint) => min >= -(1n << (bits - 1n)) && max < 1n << (bits - 1n);
  if (fits(64n)) return 'BIGINT';
  if (!allRows) {
    throw new MillpondError('EINVAL', `column ${column}: integers from ${min} to ${max} do not fit BIGINT; pass a schema (HUGEINT or UHUGEINT)`);
  }
  if (fits(128n)) return 'HUGEINT';
  if (min >= 0n && max < 1n << 128n) return 'UHUGEINT';
  throw new MillpondError('EINVAL', `column ${column}: integers from ${min} to ${max} fit no 128-bit integer type`);
}

/**
 * DuckDB column types of plain JS rows (fromItems, map/flatMap functions), as apache-arrow
 * infers them: bigints are BIGINT and numbers DOUBLE (never guessed from the values, so every
 * partition of a map gets the same types), Dates TIMESTAMP; nested values follow arrow's
 * inference. A column that is null everywhere is VARCHAR; pass a schema to fix types.
 * `allRows`: `rows` are every row there is (fromItems), so bigints past BIGINT may widen the
 * column to HUGEINT or UHUGEINT without two partitions disagreeing.
 */
export function inferColumns(rows: readonly Record<string, unknown>[], allRows = false): ColumnDecl[] {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const row of rows) for (const k of Object.keys(row)) if (!seen.has(k)) { seen.add(k); names.push(k); }
  return names.map((name) => {
    const values = rows.map((r) => r[name]).filter((v) => v !== null && v !== undefined);
    let type = 'VARCHAR';
    if (values.length > 0) {
      if (values.every((v) => typeof v === 'bigint')) type = integerType(name, values as bigint[], allRows);
      else if (values.every((v) => typeof v === 'number')) type = 'DOUBLE';
      else if (values.every((v) => typeof v === 'string')) type = 'VARCHAR';
      else if (values.every((v) => typeof v === 'boolean')) type = 'BOOLEAN';
      else if (values.every((v) => v instanceof Date)) type = 'TIMESTAMP';
      else type = duckTypeOfArrow(arrow.vectorFromArray(values).type);
    }
    return { name, type };
  });
}

function jsonValue(type: string, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (type === 'DATE' && (typeof v === 'number' || v instanceof Date)) return new Date(v).toISOString().slice(0, 10);
  if (type.startsWith('TIMESTAMP') && (typeof v === 'number' || v instanceof Date)) return new Date(v).toISOString();
  return v;
}

function jsonLine(columns: readonly ColumnDecl[], row: Record<string, unknown>): string {
  const o: Record<string, unknown> = {};
  for (const c of columns) o[c.name] = jsonValue(c.type, row[c.name]);
  return JSON.stringify(o, (_k, x: unknown) => {
    if (typeof x === 'bigint') return x.toString();
    if (x instanceof Uint8Array) throw new MillpondError('ENOTSUP', 'binary values cannot pass through JS rows yet');
    return x;
  });
}

/**
 * Writes `rows` to `jsonlPath` and returns a SELECT that reads them with `columns`' types.
 * An empty row list still yields the columns (from a typed empty VALUES list).
 */
export async function stageRows(rows: readonly Record<string, unknown>[], columns: readonly ColumnDecl[], jsonlPath: string): Promise<string> {
  if (columns.length === 0) throw new MillpondError('EINVAL', 'rows have no columns');
  if (rows.length === 0) {
    const nulls = columns.map((c) => `NULL::${c.type} AS "${c.name.replace(/"/g, '""')}"`).join(', ');
    return `SELECT ${nulls} LIMIT 0`;
  }
  await writeFile(jsonlPath, rows.map((r) => jsonLine(columns, r)).join('\n') + '\n');
  const struct = `{${columns.map((c) => `${sqlString(c.name)}: ${sqlString(c.type)}`).join(', ')}}`;
  return `SELECT * FROM read_json(${sqlString(jsonlPath)}, format = 'newline_delimited', columns = ${struct})`;
}
