/** SQL text for reading inputs: table functions over explicit file lists. */
import { inputName } from '../plan/placeholders.js';
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

/** Leading blanks and comments, then the select's own WITH [RECURSIVE]. */
const kOwnWith = /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*with(\s+recursive)?\s/i;

/**
 * `select` with the task's inputs bound under the names its placeholders became
 * (inputName): `WITH __mp_input_0 AS NOT MATERIALIZED (relation), ... select`, the inputs
 * first in the select's own WITH list when it has one. NOT MATERIALIZED inlines each input
 * where it is read, as a view would be; unlike CREATE TEMP VIEW, which binds the relation in
 * a statement of its own (on a millpond root: every input file opened and its footer read
 * once more), a CTE is bound only by the statements that read it. A select that names no
 * input is returned as it is.
 */
export function withInputs(inputs: readonly InputRelation[], select: string): string {
  if (!inputs.some((_, i) => select.includes(inputName(i)))) return select;
  const ctes = inputs.map((input, i) => `${inputName(i)} AS NOT MATERIALIZED (${relationSql(input)})`).join(', ');
  const own = kOwnWith.exec(select);
  return own ? `WITH${own[1] ?? ''} ${ctes}, ${select.slice(own[0].length)}` : `WITH ${ctes} ${select}`;
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
