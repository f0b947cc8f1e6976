/**
 * Tasks the scheduler runs in its own process: materialising in-memory rows (fromItems,
 * fromArrow) and, under the local executor, JS functions (filter/map/flatMap/mapBatches with a
 * function).
 *
 * Why JS functions run here under the local executor: a JS function is a closure, and a closure
 * cannot cross into another process (fn.toString() loses the values it closes over). Running it
 * in the parent keeps any closure working; the cost is one partition at a time on the parent's
 * thread. The cluster executor ships self-contained functions to its workers instead
 * (shipped-function.ts), where they run in parallel.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeSpec } from '../plan/nodes.js';
import { temporaryName } from '../partition/layout.js';
import type { DataRoot } from '../partition/root.js';
import { stageRows } from './arrow-bridge.js';
import { openTaskDb } from './duckdb.js';
import { encodeWideInts } from './wide-ints.js';
import { applyFunction } from './function-task.js';
import { sqlString } from './relations.js';
import type { DuckDbSettings, InputRelation, OutputSlot, TaskResult } from './task-spec.js';

export interface ParentTask {
  spec: NodeSpec & { kind: 'items' | 'js' };
  input?: InputRelation;
  output: OutputSlot;
  attempt: number;
}

export async function runParentTask(task: ParentTask, root: DataRoot, settings: DuckDbSettings): Promise<TaskResult> {
  const started = Date.now();
  const staging = await mkdtemp(join(tmpdir(), 'millpond-stage-'));
  const db = await openTaskDb(settings);
  try {
    const select = task.spec.kind === 'items'
      ? await stageRows(task.spec.rows, task.spec.columns, join(staging, 'rows.jsonl'))
      : await applyFunction(db, { ...task.spec, fn: task.spec.fn as unknown as (arg: unknown) => unknown }, task.input!, staging);
    await root.mkdirp(task.output.location.slice(0, task.output.location.lastIndexOf('/')));
    const tmp = temporaryName(task.output.location, task.attempt);
    const exact = await encodeWideInts(db, select);
    const rows = await db.run(`COPY (${exact.select}) TO ${sqlString(root.url(tmp))} (FORMAT parquet)`);
    await root.rename(tmp, task.output.location);
    const bytes = (await root.sizeBytes(task.output.location)) ?? 0;
    const output = { ...task.output, rows: Number(rows[0]?.[0] ?? 0), bytes, ...(exact.wide ? { wide: exact.wide } : {}) };
    return { outputs: [output], elapsedMs: Date.now() - started };
  } finally {
    db.close();
    await rm(staging, { recursive: true, force: true });
  }
}

