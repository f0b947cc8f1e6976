/**
 * What a task read from and wrote to millpond: the millpond DuckDB extension's client counters
 * (`millpond_metrics()`, native/duckdb/millpond_extension.cc) read before and after the task.
 * The counters are the process's (its databases share the extension's clients), so their
 * difference is one task's only while the process runs one task at a time, as a worker does
 * (worker.ts).
 */
import type { TaskDb } from './duckdb.js';

export interface MillpondIo {
  readBytes: number;
  writtenBytes: number;
}

/** REQUIRES: `db` has the millpond extension loaded (DuckDbSettings.millpond). */
export async function millpondIo(db: TaskDb): Promise<MillpondIo> {
  const [row] = await db.run('SELECT read_bytes, written_bytes FROM millpond_metrics()');
  return { readBytes: Number(row![0]), writtenBytes: Number(row![1]) };
}
