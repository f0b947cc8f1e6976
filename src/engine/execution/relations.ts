/** SQL text for reading inputs: table functions over explicit file lists. */
import type { InputRelation } from './task-spec.js';
import { sqlIdentifier, sqlString } from './sql.js';
import { decodeWideInts } from './wide-ints.js';

export { sqlIdentifier, sqlString } from './sql.js';

function fileList(files: readonly string[]): string {
  return `[${files.map(sqlString).join(', ')}]`;
}

function columnsStruct(schema: Record<string, string>): string {
  return `{${Object.entries(schema).map(([k, v]) => `${sqlString(k)}: ${sqlString(v)}`).join(', ')}}`;
}

/**
 * A SELECT over the relation's files (no rows but their columns when `empty`); it takes a
 * `LIMIT` appended. REQUIRES: files non-empty.
 */
export function relationSql(input: InputRelation): string {
  const select = readSql(input);
  return input.empty ? `${select} WHERE false` : select;
}

function readSql(input: InputRelation): string {
  const { files, options } = input;
  switch (input.format) {
    case 'parquet': {
      const args = [fileList(files)];
      if (options.unionByName) args.push('union_by_name = true');
      const cols = options.columns?.map(sqlIdentifier).join(', ') ?? '*';
      return decodeWideInts(`SELECT ${cols} FROM read_parquet(${args.join(', ')})`, input.wide, options.columns);
    }
    case 'csv': {
      const args = [fileList(files), 'header = true'];
      if (options.delim !== undefined) args.push(`delim = ${sqlString(options.delim)}`);
      if (options.schema) args.push(`columns = ${columnsStruct(options.schema)}`);
      return `SELECT * FROM read_csv(${args.join(', ')})`;
    }
    case 'json': {
      const args = [fileList(files)];
      if (options.schema) args.push(`columns = ${columnsStruct(options.schema)}`);
      return `SELECT * FROM read_json(${args.join(', ')})`;
    }
  }
}
