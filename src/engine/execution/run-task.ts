/**
 * Runs one task (sql, shuffle producer, limit, copy) on a fresh DuckDB: inputs become views,
 * each output is a COPY to a temporary name that is renamed into place once written (a copy
 * of one whole Parquet file copies its bytes).
 * Used by worker processes; the scheduler never runs DuckDB tasks itself.
 */
import { openDataRoot, type DataRoot } from '../partition/root.js';
import { temporaryName } from '../partition/layout.js';
import { inputViewName, substitutePlaceholders } from '../plan/placeholders.js';
import { openTaskDb, SqlFailure, type TaskDb } from './duckdb.js';
import { relationSql, sqlIdentifier, sqlString } from './relations.js';
import type { InputRelation, OutputRecord, TaskResult, TaskSpec } from './task-spec.js';

const kPartitionColumn = '__mp_partition';

export async function runTask(spec: TaskSpec): Promise<TaskResult> {
  const started = Date.now();
  const root = openDataRoot(spec.root);
  const db = await openTaskDb(spec.duckdb);
  try {
    for (const [i, input] of spec.inputs.entries()) {
      await db.run(`CREATE VIEW ${inputViewName(i)} AS ${relationSql(input)}`);
    }
    const dirs = new Set(spec.outputs.map((o) => o.location.slice(0, o.location.lastIndexOf('/'))));
    for (const dir of dirs) await root.mkdirp(dir);

    const written: { slot: (typeof spec.outputs)[number]; tmp: string; rows: number }[] = [];
    const copy = async (select: string, slotIndex: number) => {
      const slot = spec.outputs[slotIndex]!;
      const tmp = temporaryName(slot.location, spec.attempt);
      const rows = await db.run(`COPY (${select}) TO ${sqlString(root.url(tmp))} (FORMAT parquet)`);
      written.push({ slot, tmp, rows: Number(rows[0]?.[0] ?? 0) });
    };

    const { work } = spec;
    switch (work.kind) {
      case 'sql':
        await copy(substitutePlaceholders(work.sql), 0);
        break;
      case 'limit':
        await copy(`SELECT * FROM ${inputViewName(0)} LIMIT ${work.rows}`, 0);
        break;
      case 'copy': {
        // One Parquet file of this root, read whole: its bytes are the output, so copy them
        // instead of decoding and encoding every row (writeParquet of a computed partition).
        const source = wholeParquetFileOf(spec.inputs[0]!, root);
        if (source === undefined) {
          await copy(`SELECT * FROM ${inputViewName(0)}`, 0);
          break;
        }
        const slot = spec.outputs[0]!;
        const tmp = temporaryName(slot.location, spec.attempt);
        await root.copyFile(source, tmp);
        const [meta] = await db.run(`SELECT num_rows FROM parquet_file_metadata(${sqlString(root.url(tmp))})`);
        written.push({ slot, tmp, rows: Number(meta?.[0] ?? 0) });
        break;
      }
      case 'shuffle':
        await shuffle(db, spec, copy);
        break;
    }

    const outputs: OutputRecord[] = [];
    for (const w of written) {
      await root.rename(w.tmp, w.slot.location);
      outputs.push({ ...w.slot, rows: w.rows, bytes: (await root.sizeBytes(w.slot.location)) ?? 0 });
    }
    return { outputs, elapsedMs: Date.now() - started };
  } finally {
    db.close();
  }
}

/** The location of the input's only file when it is a whole Parquet file of `root`. */
function wholeParquetFileOf(input: InputRelation, root: DataRoot): string | undefined {
  const { format, files, options, empty } = input;
  const plain = Object.values(options).every((v) => v === undefined);
  if (format !== 'parquet' || empty || files.length !== 1 || !plain || /[*?[]/.test(files[0]!)) return undefined;
  return root.locationOf(files[0]!);
}

/** The partition expression of a shuffle producer: a BIGINT in [0, n) per row. */
function partitionExpression(work: TaskSpec['work'] & { kind: 'shuffle' }): string {
  const n = work.partitions;
  switch (work.mode) {
    case 'hash':
      return `(hash(${work.keys!.map(sqlIdentifier).join(', ')}) % ${n})::BIGINT`;
    case 'by':
      return `(${work.by!})::BIGINT`;
    case 'random':
      return `least(floor(random() * ${n}), ${n - 1})::BIGINT`;
    case 'even':
      // Round-robin, offset by producer so many small producers do not all fill partition 0.
      return `((row_number() OVER () - 1 + ${work.producer}) % ${n})::BIGINT`;
  }
}

async function shuffle(db: TaskDb, spec: TaskSpec, copy: (select: string, slotIndex: number) => Promise<void>): Promise<void> {
  const work = spec.work as TaskSpec['work'] & { kind: 'shuffle' };
  await db.run(`CREATE TEMP TABLE __mp_shuffle AS SELECT *, ${partitionExpression(work)} AS ${kPartitionColumn} FROM ${inputViewName(0)}`);
  if (work.mode === 'by') {
    const check = `SELECT count(*) FILTER (WHERE ${kPartitionColumn} IS NULL), min(${kPartitionColumn}), max(${kPartitionColumn}) FROM __mp_shuffle`;
    const [nulls, min, max] = (await db.run(check))[0]! as [bigint | number, bigint | number | null, bigint | number | null];
    const bad = Number(nulls) > 0 ? 'NULL'
      : min !== null && Number(min) < 0 ? String(min)
      : max !== null && Number(max) >= work.partitions ? String(max) : undefined;
    if (bad !== undefined) {
      throw new SqlFailure(
        `repartition(${work.partitions}, { by: ${JSON.stringify(work.by)} }): value ${bad} is not a partition index in [0, ${work.partitions})`,
        check, true, 'EINVAL');
    }
  }
  // Every target partition gets a file, empty or not, so consumers read a fixed list.
  for (const [slotIndex, slot] of spec.outputs.entries()) {
    await copy(`SELECT * EXCLUDE (${kPartitionColumn}) FROM __mp_shuffle WHERE ${kPartitionColumn} = ${slot.partition}`, slotIndex);
  }
}
