/**
 * Runs the plan up to a target node: nodes → tasks (one per partition, one per producer for
 * shuffles, none for scans and by-files repartitions, whose consumers read the files directly), dependencies, resume from completion markers, dispatch to the executor with at
 * most `slots` tasks in flight, retries, and the job's summary.
 *
 * Resume rule: a task is reused when its marker exists, its outputs exist with the recorded
 * sizes, and none of the tasks it depends on runs in this call (new inputs invalidate it).
 */
import { MillpondError } from '../../errors.js';
import type { PlanNode } from '../plan/nodes.js';
import type { JobLayout } from '../partition/layout.js';
import type { DataRoot } from '../partition/root.js';
import { TaskAttemptError, type LocalExecutor } from './local-executor.js';
import { producerKeys, relationOf, taskKey } from './partition-files.js';
import { runParentTask } from './parent-tasks.js';
import { Progress, type JobSummary } from './progress.js';
import type { DuckDbSettings, OutputSlot, TaskFailure, TaskResult, TaskSpec, TaskWork } from './task-spec.js';

export { taskKey };

export interface SchedulerContext {
  root: DataRoot;
  layout: JobLayout;
  executor: LocalExecutor;
  duckdb: DuckDbSettings;
  attemptsMax: number;
  progress: boolean;
  /** Files of each scan node, resolved before the run. */
  scanFiles: Map<string, string[]>;
  /** Results of completed tasks by key, kept across calls of one session. */
  results: Map<string, TaskResult>;
}

interface TaskState {
  key: string;
  node: PlanNode;
  task: number;
  deps: string[];
  attempt: number;
  run: boolean;
}

/** Nodes reachable from `target`, inputs before consumers, each once. */
export function nodesUpTo(target: PlanNode): PlanNode[] {
  const out: PlanNode[] = [];
  const seen = new Set<string>();
  const visit = (n: PlanNode) => {
    if (seen.has(n.id)) return;
    seen.add(n.id);
    for (const i of n.inputs) visit(i);
    out.push(n);
  };
  visit(target);
  return out;
}

function outputSlots(ctx: SchedulerContext, node: PlanNode, task: number): OutputSlot[] {
  const { spec } = node;
  if (spec.kind === 'shuffle') {
    return [...Array(spec.partitions).keys()].map((p) => ({ partition: p, location: ctx.layout.output(node.id, p, task) }));
  }
  if (spec.kind === 'write') return [{ partition: task, location: `${spec.path}/part-${task}.parquet` }];
  const p = node.taskCount === 1 ? 0 : task;
  return [{ partition: p, location: ctx.layout.output(node.id, p, task) }];
}

/** True when the node's files are its tasks' outputs in the job directory, not the user's files. */
function writtenByTasks(node: PlanNode): boolean {
  if (node.spec.kind === 'scan') return false;
  if (node.spec.kind === 'files') return writtenByTasks(node.inputs[0]!);
  return true;
}

function workOf(node: PlanNode, task: number): TaskWork {
  const { spec } = node;
  switch (spec.kind) {
    case 'sql': return { kind: 'sql', sql: spec.sql };
    case 'limit': return { kind: 'limit', rows: spec.rows };
    case 'write': return { kind: 'copy', link: writtenByTasks(node.inputs[0]!) };
    case 'shuffle': return {
      kind: 'shuffle', mode: spec.mode, partitions: spec.partitions, producer: task,
      ...(spec.keys ? { keys: spec.keys } : {}), ...(spec.by !== undefined ? { by: spec.by } : {}),
    };
    default: throw new Error(`assertion: ${spec.kind} has no worker task`);
  }
}

async function loadMarker(ctx: SchedulerContext, node: PlanNode, task: number): Promise<TaskResult | undefined> {
  const text = await ctx.root.readText(ctx.layout.marker(node.id, task));
  if (text === undefined) return undefined;
  let result: TaskResult;
  try {
    result = JSON.parse(text) as TaskResult;
  } catch {
    return undefined;
  }
  for (const o of result.outputs) {
    if ((await ctx.root.sizeBytes(o.location)) !== o.bytes) return undefined;
  }
  return result;
}

/** The MillpondError a task's last failure becomes: names the node, the partition and the SQL. */
function jobError(state: TaskState, failure: TaskFailure): MillpondError {
  const { node } = state;
  const where = `${node.spec.kind} node ${node.id}, partition ${state.task}`;
  const userSql = node.spec.kind === 'sql' ? node.spec.sql : undefined;
  const sql = userSql ?? failure.sql;
  const attempts = state.attempt > 1 ? ` after ${state.attempt} attempts` : '';
  const code = failure.code === 'EINVAL' ? 'EINVAL' : failure.sql ? 'ESQL' : (failure.code as MillpondError['code'] | undefined) ?? 'ETASK';
  const err = new MillpondError(code, `task failed${attempts} (${where}): ${failure.message}${sql ? `\n  SQL: ${sql}` : ''}`);
  return Object.assign(err, { sql, node: node.id, partition: state.task });
}

export async function runJob(ctx: SchedulerContext, target: PlanNode): Promise<JobSummary> {
  const started = Date.now();
  const nodes = nodesUpTo(target);
  const states = new Map<string, TaskState>();
  const order: TaskState[] = [];
  for (const node of nodes) {
    for (let t = 0; t < node.taskCount; t++) {
      const deps: string[] = [];
      for (const input of node.inputs) deps.push(...producerKeys(input, node.inputPartitionsOf(t)));
      const state: TaskState = { key: taskKey(node, t), node, task: t, deps, attempt: 0, run: false };
      states.set(state.key, state);
      order.push(state);
    }
  }

  // Decide what runs, inputs first (order is topological).
  for (const s of order) {
    const depRuns = s.deps.some((d) => states.get(d)!.run);
    if (!depRuns && !ctx.results.has(s.key)) {
      const loaded = await loadMarker(ctx, s.node, s.task);
      if (loaded) ctx.results.set(s.key, loaded);
    }
    if (depRuns || !ctx.results.has(s.key)) {
      s.run = true;
      ctx.results.delete(s.key);
    }
  }
  const toRun = order.filter((s) => s.run);
  const summary: JobSummary = {
    jobId: ctx.layout.jobId, target: target.id, tasksTotal: order.length, tasksRun: toRun.length,
    tasksSkipped: order.length - toRun.length, retries: 0, rowsWritten: 0, bytesWritten: 0, elapsedMs: 0, bytesPerSec: 0,
  };
  const progress = new Progress(toRun.length, ctx.progress);

  const pending = new Set(toRun.map((s) => s.key));
  const waiting = [...toRun];
  let inFlightWorkers = 0;
  let parentBusy = false;
  let failed: MillpondError | undefined;
  const running = new Set<Promise<void>>();

  const ready = (s: TaskState) => s.deps.every((d) => !pending.has(d));
  const isParent = (s: TaskState) => s.node.spec.kind === 'items' || s.node.spec.kind === 'js';

  const attempt = async (s: TaskState): Promise<void> => {
    s.attempt++;
    const slots = outputSlots(ctx, s.node, s.task);
    const inputs = s.node.inputs.map((input) => relationOf(ctx, input, s.node.inputPartitionsOf(s.task)));
    let result: TaskResult;
    try {
      if (isParent(s)) {
        result = await runParentTask({ spec: s.node.spec as never, input: inputs[0], output: slots[0]!, attempt: s.attempt }, ctx.root, ctx.duckdb);
      } else {
        const spec: TaskSpec = {
          key: s.key, nodeId: s.node.id, task: s.task, attempt: s.attempt, inputs, work: workOf(s.node, s.task),
          outputs: slots, root: ctx.root.spec, duckdb: ctx.duckdb,
        };
        result = await ctx.executor.run(spec);
      }
    } catch (e) {
      const failure: TaskFailure = e instanceof TaskAttemptError ? e.failure
        : (e as { toFailure?: () => TaskFailure }).toFailure?.()
        ?? { message: e instanceof Error ? e.message : String(e), deterministic: e instanceof MillpondError, ...(e instanceof MillpondError ? { code: e.code } : {}) };
      if (!failure.deterministic && s.attempt < ctx.attemptsMax && !failed) {
        summary.retries++;
        waiting.unshift(s);
      } else {
        failed ??= jobError(s, failure);
      }
      return;
    }
    await ctx.root.writeFileAtomic(ctx.layout.marker(s.node.id, s.task), JSON.stringify(result));
    ctx.results.set(s.key, result);
    pending.delete(s.key);
    for (const o of result.outputs) {
      summary.rowsWritten += o.rows;
      summary.bytesWritten += o.bytes;
    }
    progress.taskDone(result.outputs.reduce((a, o) => a + o.bytes, 0));
  };

  while (pending.size > 0 && !failed) {
    // Hand out every ready task there is room for.
    for (let i = 0; i < waiting.length && !failed;) {
      const s = waiting[i]!;
      const parent = isParent(s);
      if (!ready(s) || (parent ? parentBusy : inFlightWorkers >= ctx.executor.slots)) { i++; continue; }
      waiting.splice(i, 1);
      if (parent) parentBusy = true; else inFlightWorkers++;
      const p: Promise<void> = attempt(s).finally(() => {
        if (parent) parentBusy = false; else inFlightWorkers--;
        running.delete(p);
      });
      running.add(p);
    }
    if (running.size === 0) {
      if (!failed) throw new Error('assertion: no task runnable but tasks pending (cycle?)');
      break;
    }
    await Promise.race(running);
  }
  // Let attempts in flight settle before reporting, so no task writes after we return.
  await Promise.all(running);
  summary.elapsedMs = Date.now() - started;
  summary.bytesPerSec = summary.elapsedMs > 0 ? Math.round(summary.bytesWritten / (summary.elapsedMs / 1000)) : 0;
  if (failed) throw failed;
  progress.finish(summary);
  return summary;
}
