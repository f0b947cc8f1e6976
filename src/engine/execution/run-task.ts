/**
 * Runs one task (sql, shuffle producer, limit, copy) on a fresh DuckDB connection: each
 * statement binds the inputs it reads (withInputs), each output is a COPY to a temporary name
 * that is renamed into place once written (a copy of one whole Parquet file copies its bytes).
 * Used by worker processes; the scheduler never runs DuckDB tasks itself.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDataRoot, type DataRoot } from '../partition/root.js';
import { temporaryName } from '../partition/layout.js';
import { inputName, substitutePlaceholders } from '../plan/placeholders.js';
import { openWarmTaskDb, SqlFailure, type TaskDb } from './duckdb.js';
import { sqlIdentifier, sqlString, withInputs } from './relations.js';
import { millpondIo } from './task-io.js';
import type { InputRelation, OutputRecord, TaskResult, TaskSpec } from './task-spec.js';
import { encodeWideInts, type WideColumns } from './wide-ints.js';

const kPartitionColumn = '__mp_partition';

/**
 * What a JS function task needs (Apache Arrow, a JS parser: ~150 ms of imports), loaded by
 * the first such task rather than by every worker as it starts: most workers run SQL only,
 * and a worker's start is on the critical path of a session's first job.
 */
const jsFunctionTasks = async () => {
  const [{ applyFunction }, { compileShipped }] = await Promise.all([import('./function-task.js'), import('./shipped-function.js')]);
  return { applyFunction, compileShipped };
};

/** An output written under a temporary name, renamed to its slot's location at the end. */
interface Written {
  slot: TaskSpec['outputs'][number];
  tmp: string;
  rows: number;
  /** The file's size, when the writer said (else it is looked up once in place). */
  bytes?: number;
  wide?: WideColumns;
}

/** A file a COPY wrote: its location in the root, rows and bytes (DuckDB's RETURN_STATS). */
interface CopiedFile {
  location: string;
  rows: number;
  bytes: number;
}

/**
 * `COPY (select) TO url (FORMAT parquet<options>)`, returning each file it wrote as DuckDB's
 * writer counted it (RETURN_STATS): for a partitioned write, no listing, footer read or stat of
 * its many files afterwards (on a millpond root each is a meta round trip or a read).
 */
async function copyTo(db: TaskDb, root: DataRoot, select: string, url: string, options = ''): Promise<CopiedFile[]> {
  const rows = await db.run(`COPY (${select}) TO ${sqlString(url)} (FORMAT parquet${options}, RETURN_STATS)`);
  return rows.map(([file, count, bytes]) => {
    const location = root.locationOf(String(file));
    if (location === undefined) throw new Error(`COPY wrote ${String(file)}, outside the data root`);
    return { location, rows: Number(count), bytes: Number(bytes) };
  });
}

/**
 * Writes the rows of `select` to output slot `slotIndex` (a temporary name until the end).
 * Wide integer columns are written as text and recorded (wide-ints.ts), unless `asIs` (a
 * user's output: DuckDB's own Parquet types) or `wide` says `select` already holds them so.
 */
type Copy = (select: string, slotIndex: number, options?: { asIs?: boolean; wide?: WideColumns }) => Promise<void>;

/** Rows of a Parquet file, from its footer. */
async function parquetRows(db: TaskDb, root: DataRoot, location: string): Promise<number> {
  const [meta] = await db.run(`SELECT num_rows FROM parquet_file_metadata(${sqlString(root.url(location))})`);
  return Number(meta?.[0] ?? 0);
}

export async function runTask(spec: TaskSpec): Promise<TaskResult> {
  const started = Date.now();
  const root = openDataRoot(spec.root);
  const db = await openWarmTaskDb(spec.duckdb);
  const scratch: string[] = [];  // directories removed when the task ends, done or failed
  let staging: string | undefined;  // a local directory for JS functions' rows
  try {
    const ioBefore = spec.duckdb.millpond ? await millpondIo(db) : undefined;
    let copiedBytes = 0;  // of a whole file copied by the JS client: DuckDB's counters miss it
    // Each statement binds the inputs it reads (withInputs): nothing outlives the task in the
    // warm database.
    const bound = (select: string) => withInputs(spec.inputs, select);
    const dirs = new Set(spec.outputs.map((o) => o.location.slice(0, o.location.lastIndexOf('/'))));
    for (const dir of dirs) await root.mkdirp(dir);

    const written: Written[] = [];
    const copy: Copy = async (select, slotIndex, options = {}) => {
      const slot = spec.outputs[slotIndex]!;
      const tmp = temporaryName(slot.location, spec.attempt);
      const exact = options.asIs || options.wide ? { select: bound(select), wide: options.wide } : await encodeWideInts(db, bound(select));
      // Plain COPY (its count is the rows): RETURN_STATS costs ~0.6 ms of CPU per COPY, more
      // than the one stat of its file after the rename.
      const rows = await db.run(`COPY (${exact.select}) TO ${sqlString(root.url(tmp))} (FORMAT parquet)`);
      written.push({ slot, tmp, rows: Number(rows[0]?.[0] ?? 0), ...(exact.wide ? { wide: exact.wide } : {}) });
    };

    const { work } = spec;
    switch (work.kind) {
      case 'sql':
        await copy(substitutePlaceholders(work.sql), 0);
        break;
      case 'limit':
        await copy(`SELECT * FROM ${inputName(0)} LIMIT ${work.rows}`, 0);
        break;
      case 'copy': {
        // One Parquet file of this root, read whole: its bytes are the output, so link or copy
        // them instead of decoding and encoding every row (writeParquet of a computed partition).
        const source = wholeParquetFileOf(spec.inputs[0]!, root);
        if (source === undefined) {
          await copy(`SELECT * FROM ${inputName(0)}`, 0, { asIs: true });
          break;
        }
        const slot = spec.outputs[0]!;
        const tmp = temporaryName(slot.location, spec.attempt);
        await root.removeRecursive(tmp); // a failed earlier try of this attempt may have left it
        let bytes: number | undefined;  // of a copy; a link's is looked up in place
        if (!(work.link && await root.link(source, tmp))) {
          await root.copyFile(source, tmp);
          bytes = copiedBytes = (await root.sizeBytes(tmp)) ?? 0;
        }
        written.push({ slot, tmp, rows: await parquetRows(db, root, tmp), ...(bytes !== undefined ? { bytes } : {}) });
        break;
      }
      case 'shuffle':
        scratch.push(temporaryName(`${spec.outputs[0]!.location}.parts`, spec.attempt));
        await shuffle(db, spec, root, scratch[0]!, copy, written, bound);
        break;
      case 'js': {
        const { applyFunction, compileShipped } = await jsFunctionTasks();
        staging = await mkdtemp(join(tmpdir(), 'millpond-stage-'));
        await copy(await applyFunction(db, { ...work, fn: compileShipped(work.source) }, spec.inputs[0]!, staging), 0);
        break;
      }
    }

    // Several attempts of one task may finish (a speculative copy, an attempt whose executor
    // was presumed dead): the first to claim the task's outputs renames them into place; a
    // later one removes its own and reports that it lost, so every output of a task comes from
    // one attempt.
    if (spec.claim !== undefined && !(await root.claim(spec.claim, String(spec.attempt)))) {
      for (const w of written) await root.removeRecursive(w.tmp).catch(() => {});
      throw Object.assign(new Error(`attempt ${spec.attempt} of ${spec.key}: another attempt finished first`), { lost: true });
    }
    const outputs: OutputRecord[] = [];
    for (const w of written) {
      await root.rename(w.tmp, w.slot.location);
      const bytes = w.bytes ?? (await root.sizeBytes(w.slot.location)) ?? 0;
      outputs.push({ ...w.slot, rows: w.rows, bytes, ...(w.wide ? { wide: w.wide } : {}) });
    }

    const ioAfter = ioBefore && await millpondIo(db);
    const io = ioBefore && ioAfter ? {
      readBytes: ioAfter.readBytes - ioBefore.readBytes + copiedBytes,
      writtenBytes: ioAfter.writtenBytes - ioBefore.writtenBytes + copiedBytes,
    } : {};
    return { outputs, elapsedMs: Date.now() - started, ...io };
  } finally {
    db.close();
    if (staging) await rm(staging, { recursive: true, force: true });
    for (const dir of scratch) await root.removeRecursive(dir).catch(() => {});  // best effort: a retry uses another name
  }
}

/** The location of the input's only file when it is a whole Parquet file of `root`. */
function wholeParquetFileOf(input: InputRelation, root: DataRoot): string | undefined {
  const { format, files, options, empty, wide } = input;
  const plain = Object.values(options).every((v) => v === undefined);
  // A file holding wide integers as text is the job's own form: the user gets DuckDB's types.
  if (format !== 'parquet' || empty || wide || files.length !== 1 || !plain || /[*?[]/.test(files[0]!)) return undefined;
  return root.locationOf(files[0]!);
}

/**
 * The select list of the input's columns a shuffle writes: `*`, or those named in `keep`
 * (lowercase: DuckDB's names match without case), in the input's order; the first column when
 * none is named (a consumer of no column, as count(*): its rows still need a file to hold them).
 */
async function shuffledColumns(db: TaskDb, keep: string[] | undefined, bound: (select: string) => string): Promise<string> {
  if (keep === undefined) return '*';
  const all = (await db.columns(bound(`SELECT * FROM ${inputName(0)}`))).map((c) => c.name);
  const kept = all.filter((name) => keep.includes(name.toLowerCase()));
  if (kept.length === all.length) return '*';
  return (kept.length > 0 ? kept : all.slice(0, 1)).map(sqlIdentifier).join(', ');
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

/**
 * A shuffle producer: one pass over the input with DuckDB's partitioned write (a directory per
 * partition value under `dir`, beside the outputs), then each partition's file is renamed into
 * its slot.
 * Every target partition gets a file, empty or not, so consumers read a fixed list.
 */
async function shuffle(db: TaskDb, spec: TaskSpec, root: DataRoot, dir: string, copy: Copy,
  written: Written[], bound: (select: string) => string): Promise<void> {
  const work = spec.work as TaskSpec['work'] & { kind: 'shuffle' };
  const select = `SELECT ${await shuffledColumns(db, work.columns, bound)}, ${partitionExpression(work)} AS ${kPartitionColumn} FROM ${inputName(0)}`;
  const { select: exact, wide } = await encodeWideInts(db, bound(select));
  const copied = await copyTo(db, root, exact, root.url(dir),
    `, PARTITION_BY (${kPartitionColumn}), WRITE_PARTITION_COLUMNS false, OVERWRITE_OR_IGNORE true`);
  const parts = new Map<number, CopiedFile[]>();
  const prefix = `${kPartitionColumn}=`;
  // In name order, as a listing gives them: the first bad value reported and the order of a
  // partition's several files do not depend on which thread wrote first.
  copied.sort((a, b) => (a.location < b.location ? -1 : a.location > b.location ? 1 : 0));
  for (const file of copied) {
    // <dir>/__mp_partition=<value>/<name>.parquet
    const partitionDir = file.location.slice(0, file.location.lastIndexOf('/'));
    const name = partitionDir.slice(partitionDir.lastIndexOf('/') + 1);
    const value = name.startsWith(prefix) ? name.slice(prefix.length) : name;
    const partition = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(partition < work.partitions)) {
      throw new SqlFailure(
        `repartition(${work.partitions}, { by: ${JSON.stringify(work.by)} }): value ${value} is not a partition index in [0, ${work.partitions})`,
        select, true, 'EINVAL');
    }
    parts.set(partition, [...(parts.get(partition) ?? []), file]);
  }
  for (const [slotIndex, slot] of spec.outputs.entries()) {
    const files = parts.get(slot.partition) ?? [];
    if (files.length === 1) {
      const [file] = files;
      written.push({ slot, tmp: file!.location, rows: file!.rows, bytes: file!.bytes, ...(wide ? { wide } : {}) });
    } else if (files.length === 0) {
      // No rows (DuckDB writes no directory): an empty file with the input's schema.
      await copy(`SELECT * EXCLUDE (${kPartitionColumn}) FROM (${select} LIMIT 0)`, slotIndex);
    } else {
      // Several files (DuckDB split a large partition): one file of them all, as they hold it.
      await copy(`SELECT * FROM read_parquet([${files.map((f) => sqlString(root.url(f.location))).join(', ')}])`, slotIndex, { wide });
    }
  }
}
