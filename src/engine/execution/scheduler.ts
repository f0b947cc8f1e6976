/**
 * Runs the plan up to a target node: nodes → tasks (one per partition, one per producer for
 * shuffles, none for scans and by-files repartitions, whose consumers read the files directly), dependencies, resume from completion markers, dispatch to the executor with at
 * most `slots` tasks in flight, retries, and the job's summary.
 *
 * Resume rule: a task is reused when its marker exists, its outputs exist with the recorded
 * sizes, and none of the tasks it depends on runs in this call (new inputs invalidate it).
 */
import { MillpondError } from '../../errors.js';
import { nodesUpTo, type PlanNode } from '../plan/nodes.js';
import type { JobLayout } from '../partition/layout.js';
import type { DataRoot } from '../partition/root.js';
import { clusterExecutorLimits } from '../../limits.js';
import { TaskAttemptError, type Executor } from './executor.js';
import { producerKeys, relationOf, taskKey } from './partition-files.js';
import { runParentTask } from './parent-tasks.js';
import { checkShippable } from './shipped-function.js';
import { Progress, type JobSummary } from './progress.js';
import { JobReporter, type JobReportSink } from './job-reporter.js';
import type { DuckDbSettings, OutputSlot, TaskFailure, TaskResult, TaskSpec, TaskWork } from './task-spec.js';

export { taskKey };

export interface SchedulerContext {
  root: DataRoot;
  layout: JobLayout;
  executor: Executor;
  duckdb: DuckDbSettings;
  attemptsMax: number;
  progress: boolean;
  /** Files of each scan node, resolved before the run. */
  scanFiles: Map<string, string[]>;
  /** Results of completed tasks by key, kept across calls of one session. */
  results: Map<string, TaskResult>;
  /**
   * Where the job's progress goes (mgmtd.jobReport; job-reporter.ts): fire-and-forget,
   * throttled. Each job's reporter is added to `reporters` (the session waits for their last
   * sends before it closes the connection).
   */
  jobReports?: { sink: JobReportSink; reporters: Set<JobReporter> };
}

interface TaskState {
  key: string;
  node: PlanNode;
  task: number;
  deps: string[];
  /** The highest attempt number started. */
  attempt: number;
  run: boolean;
  /** Attempts in flight now (2 while a speculative copy runs beside the first). */
  inFlight: number;
  /** When the oldest attempt in flight started. */
  startedMs: number;
  speculated: boolean;
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

function workOf(node: PlanNode, task: number, shipped: Map<string, string>): TaskWork {
  const { spec } = node;
  switch (spec.kind) {
    case 'js': return {
      kind: 'js', op: spec.op, source: shipped.get(node.id)!,
      ...(spec.batchRows ? { batchRows: spec.batchRows } : {}), ...(spec.schema ? { schema: spec.schema } : {}),
    };
    case 'sql': return { kind: 'sql', sql: spec.sql };
    case 'limit': return { kind: 'limit', rows: spec.rows };
    case 'write': return { kind: 'copy', link: writtenByTasks(node.inputs[0]!) };
    case 'shuffle': return {
      kind: 'shuffle', mode: spec.mode, partitions: spec.partitions, producer: task,
      ...(spec.keys ? { keys: spec.keys } : {}), ...(spec.by !== undefined ? { by: spec.by } : {}),
      ...(spec.columns ? { columns: spec.columns } : {}),
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

/**
 * Removes the claims an earlier run of this job left for the tasks about to run (they would
 * refuse the new attempts): one listing per node, not a removal per task.
 */
async function clearClaims(ctx: SchedulerContext, toRun: TaskState[]): Promise<void> {
  const byNode = new Map<string, Set<number>>();
  for (const s of toRun) {
    if (!byNode.has(s.node.id)) byNode.set(s.node.id, new Set());
    byNode.get(s.node.id)!.add(s.task);
  }
  for (const [nodeId, tasks] of byNode) {
    const dir = ctx.layout.claim(nodeId, 0).replace(/\/[^/]*$/, '');
    const names = await ctx.root.list(dir).catch(() => [] as string[]);
    for (const name of names) {
      const m = /^(\d+)\.claim$/.exec(name);
      if (m && tasks.has(Number(m[1]))) await ctx.root.removeRecursive(`${dir}/${name}`);
    }
  }
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

/** Median of `values` (REQUIRES: non-empty). */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function runJob(ctx: SchedulerContext, target: PlanNode): Promise<JobSummary> {
  const started = Date.now();
  const nodes = nodesUpTo(target);
  // JS functions that run on executors travel as source: check each can, before any task runs.
  const shipped = new Map<string, string>();
  if (ctx.executor.runsFunctions) {
    for (const node of nodes) if (node.spec.kind === 'js') shipped.set(node.id, checkShippable(node.spec.fn, node.spec.op));
  }
  // Attempts of one task may overlap on a cluster (speculative copies, an executor presumed
  // dead that was only slow): the first to finish claims the task's outputs.
  const claims = ctx.executor.runsFunctions;
  const states = new Map<string, TaskState>();
  const order: TaskState[] = [];
  for (const node of nodes) {
    for (let t = 0; t < node.taskCount; t++) {
      const deps: string[] = [];
      for (const input of node.inputs) deps.push(...producerKeys(input, node.inputPartitionsOf(t)));
      const state: TaskState = { key: taskKey(node, t), node, task: t, deps, attempt: 0, run: false, inFlight: 0, startedMs: 0, speculated: false };
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
  if (claims) await clearClaims(ctx, toRun);
  const summary: JobSummary = {
    jobId: ctx.layout.jobId, target: target.id, tasksTotal: order.length, tasksRun: toRun.length,
    tasksSkipped: order.length - toRun.length, retries: 0, speculativeAttempts: 0, rowsWritten: 0, bytesWritten: 0,
    elapsedMs: 0, bytesPerSec: 0, placements: {},
  };
  const progress = new Progress(toRun.length, ctx.progress);
  const report = ctx.jobReports
    ? new JobReporter(ctx.jobReports.sink, ctx.layout.jobId, target.id, order.map((s) => ({ key: s.key, stage: s.node.id, task: s.task, reused: !s.run })))
    : undefined;
  if (report) ctx.jobReports!.reporters.add(report);

  const pending = new Set(toRun.map((s) => s.key));
  const waiting = [...toRun];
  /** Finished tasks' run times by node, for speculation. */
  const elapsedByNode = new Map<string, number[]>();
  let inFlightWorkers = 0;
  let parentBusy = false;
  let failed: MillpondError | undefined;
  /** Attempts in flight, with their task. */
  const running = new Map<Promise<void>, TaskState>();

  const ready = (s: TaskState) => s.deps.every((d) => !pending.has(d));
  const isParent = (s: TaskState) => s.node.spec.kind === 'items' || (s.node.spec.kind === 'js' && !ctx.executor.runsFunctions);

  const attempt = async (s: TaskState, speculative: boolean): Promise<void> => {
    s.attempt++;
    const attemptNo = s.attempt;
    report?.started(s.key, attemptNo);
    if (s.inFlight === 0) s.startedMs = Date.now();
    s.inFlight++;
    const slots = outputSlots(ctx, s.node, s.task);
    const inputs = s.node.inputs.map((input) => relationOf(ctx, input, s.node.inputPartitionsOf(s.task)));
    let result: TaskResult;
    try {
      if (isParent(s)) {
        result = await runParentTask({ spec: s.node.spec as never, input: inputs[0], output: slots[0]!, attempt: attemptNo }, ctx.root, ctx.duckdb);
      } else {
        const claim = claims ? ctx.layout.claim(s.node.id, s.task) : undefined;
        // A claim left by an attempt that failed would refuse every new one: a retry starts
        // from none (an earlier run's claims went at the job's start: clearClaims).
        if (claim !== undefined && s.inFlight === 1 && attemptNo > 1) await ctx.root.removeRecursive(claim);
        const spec: TaskSpec = {
          key: s.key, nodeId: s.node.id, task: s.task, attempt: attemptNo, inputs, work: workOf(s.node, s.task, shipped),
          outputs: slots, root: ctx.root.spec, duckdb: ctx.duckdb, ...(claim !== undefined ? { claim } : {}),
        };
        result = await ctx.executor.run(spec);
      }
    } catch (e) {
      s.inFlight--;
      if (!pending.has(s.key)) return; // another attempt finished the task
      const failure: TaskFailure = e instanceof TaskAttemptError ? e.failure
        : (e as { toFailure?: () => TaskFailure }).toFailure?.()
        ?? { message: e instanceof Error ? e.message : String(e), deterministic: e instanceof MillpondError, ...(e instanceof MillpondError ? { code: e.code } : {}) };
      if (s.inFlight > 0 && !failure.deterministic) return; // its twin is still running
      if (!failure.deterministic && s.attempt < ctx.attemptsMax + (s.speculated ? 1 : 0) && !failed) {
        summary.retries++;
        waiting.unshift(s);
        report?.attemptFailed(s.key, false);
      } else {
        failed ??= jobError(s, failure);
        report?.attemptFailed(s.key, true);
      }
      return;
    }
    s.inFlight--;
    if (!pending.has(s.key)) return; // the twin won; this one's outputs were never renamed in
    if (speculative) summary.speculativeWins = (summary.speculativeWins ?? 0) + 1;
    await ctx.root.writeFileAtomic(ctx.layout.marker(s.node.id, s.task), JSON.stringify(result));
    ctx.results.set(s.key, result);
    pending.delete(s.key);
    if (result.placement) summary.placements![s.key] = result.placement;
    report?.done(s.key, result);
    const times = elapsedByNode.get(s.node.id) ?? [];
    times.push(Date.now() - s.startedMs);
    elapsedByNode.set(s.node.id, times);
    for (const o of result.outputs) {
      summary.rowsWritten += o.rows;
      summary.bytesWritten += o.bytes;
    }
    progress.taskDone(result.outputs.reduce((a, o) => a + o.bytes, 0));
  };

  const launch = (s: TaskState, speculative: boolean) => {
    const parent = isParent(s);
    if (parent) parentBusy = true; else inFlightWorkers++;
    const p: Promise<void> = attempt(s, speculative).finally(() => {
      if (parent) parentBusy = false; else inFlightWorkers--;
      running.delete(p);
    });
    running.set(p, s);
  };

  /**
   * A straggler gets a second attempt beside the first (smallpond's speculative execution):
   * when it has run speculationMedianFactor times its node's median, and a slot is free.
   */
  const speculate = () => {
    if (!claims) return;
    const now = Date.now();
    for (const s of toRun) {
      if (inFlightWorkers >= ctx.executor.slots) return;
      if (!pending.has(s.key) || s.inFlight !== 1 || s.speculated || isParent(s)) continue;
      const times = elapsedByNode.get(s.node.id);
      if (!times || times.length === 0) continue;
      const boundMs = Math.max(clusterExecutorLimits.speculationMinMs, clusterExecutorLimits.speculationMedianFactor * median(times));
      if (now - s.startedMs < boundMs) continue;
      s.speculated = true;
      summary.speculativeAttempts++;
      launch(s, true);
    }
  };

  while (pending.size > 0 && !failed) {
    // Hand out every ready task there is room for.
    for (let i = 0; i < waiting.length && !failed;) {
      const s = waiting[i]!;
      const parent = isParent(s);
      if (!ready(s) || (parent ? parentBusy : inFlightWorkers >= ctx.executor.slots)) { i++; continue; }
      waiting.splice(i, 1);
      launch(s, false);
    }
    speculate();
    if (running.size === 0) {
      if (!failed) throw new Error('assertion: no task runnable but tasks pending (cycle?)');
      break;
    }
    const tick = claims ? new Promise((resolve) => setTimeout(resolve, 250).unref()) : undefined;
    await Promise.race(tick ? [...running.keys(), tick] : running.keys());
  }
  // Let attempts in flight settle before reporting, so no task writes after we return; the
  // losers of finished tasks are not waited for (their outputs never go in: claims).
  await Promise.all([...running].filter(([, s]) => pending.has(s.key)).map(([p]) => p));
  summary.elapsedMs = Date.now() - started;
  summary.bytesPerSec = summary.elapsedMs > 0 ? Math.round(summary.bytesWritten / (summary.elapsedMs / 1000)) : 0;
  report?.finish(failed ? 'failed' : 'done', failed?.message);
  if (failed) throw failed;
  progress.finish(summary);
  return summary;
}
