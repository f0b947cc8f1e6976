/**
 * What the scheduler sends a worker: plain data only (it crosses a process boundary as JSON).
 */
import type { JsOp, ScanFormat, ScanOptions, ShuffleMode } from '../plan/nodes.js';
import type { DataRootSpec } from '../partition/root.js';

/** Column name -> its type, for the top-level HUGEINT and UHUGEINT columns of a file (wide-ints.ts). */
export type WideColumns = Record<string, 'HUGEINT' | 'UHUGEINT'>;

/** One input of a task: the files of one or more partitions of an input node. */
export interface InputRelation {
  format: ScanFormat;
  /** What DuckDB opens (paths or URLs); never empty. */
  files: string[];
  options: ScanOptions;
  /**
   * Read no rows: `files` is there for its schema only (a partition with no files of its own,
   * e.g. a by-files repartition into more partitions than its input has files).
   */
  empty?: boolean;
  /** Columns the files hold as text for exactness, cast back on read (wide-ints.ts). */
  wide?: WideColumns;
}

export type TaskWork =
  /** `sql` still holds its `{0}`.. placeholders. */
  | { kind: 'sql'; sql: string }
  /** `columns`: the input's columns to write, as lowercase names (all when absent; at least one). */
  | { kind: 'shuffle'; mode: ShuffleMode; partitions: number; producer: number; keys?: string[]; by?: string; columns?: string[] }
  | { kind: 'limit'; rows: number }
  /**
   * Copies input 0 to the single output. `link`: input 0 is this job's own output, which is
   * never changed in place, so the output may be another name of its file (a hard link).
   */
  | { kind: 'copy'; link: boolean }
  /** A self-contained JS function's source (shipped-function.ts), applied to input 0. */
  | { kind: 'js'; op: JsOp; source: string; batchRows?: number; schema?: Record<string, string> };

/** A final output location of a task and the partition it belongs to. */
export interface OutputSlot {
  partition: number;
  location: string;
}

export interface TaskSpec {
  /** `<nodeId>#<task>`: unique within a job. */
  key: string;
  nodeId: string;
  task: number;
  /** 1 for the first run; the worker writes temporary files per attempt. */
  attempt: number;
  inputs: InputRelation[];
  work: TaskWork;
  outputs: OutputSlot[];
  root: DataRootSpec;
  duckdb: DuckDbSettings;
  /**
   * Where the attempt that finishes first claims the task (DataRoot.claim) before it renames
   * its outputs into place; set when attempts of one task may overlap (cluster executor).
   */
  claim?: string;
}

export interface DuckDbSettings {
  threads: number;
  memoryLimitBytes: number;
  /** Where DuckDB spills; per worker. */
  tempDirectory?: string;
  /** A millpond data root: load the millpond:// extension and point it at this cluster. */
  /** token: the user's, for clusters with a secret (meta's and the data plane's credentials). */
  millpond?: { meta: string; mgmtd: string; token?: string; serverKey?: string };
}

export interface OutputRecord extends OutputSlot {
  rows: number;
  bytes: number;
  /** Columns this file holds as text for exactness (wide-ints.ts). */
  wide?: WideColumns;
}

export interface TaskResult {
  outputs: OutputRecord[];
  elapsedMs: number;
  /**
   * Bytes the attempt read from and wrote to millpond (task-io.ts); absent on a local root.
   */
  readBytes?: number;
  writtenBytes?: number;
  /** Where the attempt ran (cluster executor). */
  placement?: { host: string; executor: string; pid: number };
}

/** A task's failure as it crosses back from a worker. */
export interface TaskFailure {
  message: string;
  /** The statement that failed, when DuckDB failed. */
  sql?: string;
  /** The same input fails the same way again: no retry. */
  deterministic: boolean;
  code?: string;
  /** Another attempt of the same task finished first and owns the outputs (speculation). */
  lost?: boolean;
}
