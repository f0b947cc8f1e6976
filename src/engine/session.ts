/**
 * A session: the entry point (init), the sources of DataFrames, and the machinery a terminal
 * call uses — scan resolution, the scheduler, the local executor, reading results back.
 */
import * as arrow from 'apache-arrow';
import { MillpondError } from '../errors.js';
import { engineLimits } from '../limits.js';
import { DataFrame } from './dataframe.js';
import { columnsOfArrow, inferColumns, queryArrow, rowsOfArrow } from './execution/arrow-bridge.js';
import { openTaskDb, type TaskDb } from './execution/duckdb.js';
import { ClusterExecutor } from './execution/cluster-executor.js';
import type { Executor } from './execution/executor.js';
import { LocalExecutor } from './execution/local-executor.js';
import type { JobSummary } from './execution/progress.js';
import { relationSql, sqlString } from './execution/relations.js';
import { decodeWideInts } from './execution/wide-ints.js';
import { partitionFiles, relationOf } from './execution/partition-files.js';
import { runJob, taskKey, type SchedulerContext } from './execution/scheduler.js';
import type { TaskResult } from './execution/task-spec.js';
import { MgmtdClient } from '../cluster/mgmtd-client.js';
import { reportJob, type JobReport } from '../cluster/jobs.js';
import type { JobReporter } from './execution/job-reporter.js';
import { jobReportLimits } from '../limits.js';
import { resolveOptions, type InitOptions, type ResolvedOptions } from './options.js';
import { fuseSqlChains } from './plan/fuse-sql.js';
import { nodesUpTo, PlanNode, type PlanFacts, type ScanFormat, type ScanOptions } from './plan/nodes.js';
import { pruneShuffleColumns } from './plan/prune-columns.js';
import { checkPlaceholders, substitutePlaceholders } from './plan/placeholders.js';
import { JobLayout } from './partition/layout.js';
import { openDataRoot, type DataRoot } from './partition/root.js';

export async function init(options: InitOptions): Promise<Session> {
  const resolved = resolveOptions(options);
  const root = openDataRoot(resolved.root);
  await root.mkdirp(`${root.dir}/${resolved.jobId}`);
  const db = await openTaskDb(duckDbSettings(resolved));
  const executor = resolved.executor.kind === 'cluster' ? await ClusterExecutor.open(resolved.executor) : new LocalExecutor(resolved.workers);
  // Warm slots: every worker process starts now, all at once, and loads while the caller builds
  // its plan; the first task of each slot then waits for no process start (a worker's start is
  // a second or more of module and DuckDB loading, several on a loaded machine). Not awaited: a
  // worker that fails to start is replaced when a task needs its slot. Nor does it hold the
  // event loop: a script that runs no job ends at once.
  if (executor instanceof LocalExecutor) void executor.warmUp({ holdLoop: false });
  return new Session(resolved, root, db, executor);
}

/** The mgmtd client a session reports its jobs through (job-reporter.ts), if it reports. */
function reportClient(o: ResolvedOptions): MgmtdClient | undefined {
  const to = o.reportTo;
  if (!to) return undefined;
  const auth = to.token && to.serverKey ? { token: to.token, serverKey: to.serverKey } : undefined;
  const addresses = (Array.isArray(to.mgmtd) ? to.mgmtd : to.mgmtd.split(',')).filter(Boolean);
  return new MgmtdClient(addresses, { auth, timeoutMs: jobReportLimits.reportTimeoutMs, roundsMax: 1 });
}

/** Each task's DuckDB: the session's limits, and the millpond extension for a millpond root. */
function duckDbSettings(o: ResolvedOptions) {
  const millpond = o.root.kind === 'millpond' ? { meta: o.root.meta, mgmtd: o.root.mgmtd, token: o.root.token, serverKey: o.root.serverKey } : undefined;
  return { threads: o.threadsPerTask, memoryLimitBytes: o.memoryLimitPerTaskBytes, ...(millpond ? { millpond } : {}) };
}

function pathList(paths: string | string[]): string[] {
  const list = typeof paths === 'string' ? [paths] : paths;
  if (!Array.isArray(list) || list.length === 0 || !list.every((p) => typeof p === 'string' && p !== '')) {
    throw new TypeError('paths must be a non-empty string or array of strings');
  }
  return list;
}

export class Session {
  readonly jobId: string;
  /** The summary of the last job a terminal call ran. */
  lastSummary?: JobSummary;
  private readonly executor: Executor;
  private readonly layout: JobLayout;
  private readonly results = new Map<string, TaskResult>();
  private readonly scanFiles = new Map<string, string[]>();
  private readonly planned = new Map<string, PlanNode>();
  private closed = false;
  private queue: Promise<void> = Promise.resolve();
  private readonly reporter: MgmtdClient | undefined;
  private readonly reporters = new Set<JobReporter>();

  /** @internal use init() */
  constructor(readonly options: ResolvedOptions, readonly root: DataRoot, private readonly db: TaskDb, executor: Executor) {
    this.jobId = options.jobId;
    this.layout = new JobLayout(root, options.jobId);
    this.executor = executor;
    this.reporter = reportClient(options);
  }

  /** The job directory (for inspection; its layout is in partition/layout.ts). */
  get jobDir(): string {
    return this.layout.jobDir;
  }

  /** Pids of the local executor's worker processes now running (none for a cluster executor). */
  workerPids(): number[] {
    return this.executor instanceof LocalExecutor ? this.executor.pids() : [];
  }

  private scan(format: ScanFormat, paths: string | string[], options: ScanOptions): DataFrame {
    const resolved = pathList(paths).map((p) => this.root.resolveUserPath(p));
    return new DataFrame(this, new PlanNode({ kind: 'scan', format, paths: resolved, options }, []));
  }

  readParquet(paths: string | string[], options: { columns?: string[]; unionByName?: boolean } = {}): DataFrame {
    return this.scan('parquet', paths, { ...(options.columns ? { columns: options.columns } : {}), ...(options.unionByName ? { unionByName: true } : {}) });
  }

  readCsv(paths: string | string[], options: { schema?: Record<string, string>; delim?: string } = {}): DataFrame {
    return this.scan('csv', paths, { ...options });
  }

  readJson(paths: string | string[], options: { schema?: Record<string, string> } = {}): DataFrame {
    return this.scan('json', paths, { ...options });
  }

  /** Rows of objects become columns; other values become one column `item` (as smallpond). */
  fromItems(items: unknown[]): DataFrame {
    if (!Array.isArray(items) || items.length === 0) throw new TypeError('fromItems takes a non-empty array');
    if (items.length > engineLimits.fromItemsRowsMax) throw new RangeError(`fromItems takes at most ${engineLimits.fromItemsRowsMax} items`);
    const isRow = (x: unknown) => x !== null && typeof x === 'object' && !Array.isArray(x) && !(x instanceof Date);
    const rows = isRow(items[0]) ? (items as Record<string, unknown>[]) : items.map((item) => ({ item }));
    return new DataFrame(this, new PlanNode({ kind: 'items', rows, columns: inferColumns(rows, true) }, []));
  }

  fromArrow(table: arrow.Table): DataFrame {
    if (!(table instanceof arrow.Table)) throw new TypeError('fromArrow takes an apache-arrow Table');
    return new DataFrame(this, new PlanNode({ kind: 'items', rows: rowsOfArrow(table), columns: columnsOfArrow(table) }, []));
  }

  /**
   * SQL run on each partition; `{0}`, `{1}`, ... name the inputs' partitions. Inputs must have
   * the same number of partitions (partition i of the result comes from partition i of each).
   */
  partialSql(sql: string, ...inputs: DataFrame[]): DataFrame {
    if (typeof sql !== 'string' || sql.trim() === '') throw new TypeError('partialSql takes SQL text');
    if (inputs.length === 0) throw new TypeError('partialSql takes at least one input DataFrame');
    for (const i of inputs) if (!(i instanceof DataFrame)) throw new TypeError('partialSql inputs must be DataFrames');
    checkPlaceholders(sql, inputs.length);
    const counts = inputs.map((i) => i.node.partitions);
    if (counts.some((c) => c !== counts[0])) {
      throw new MillpondError('EINVAL', `partialSql inputs must have the same number of partitions, got ${counts.join(', ')}: repartition them first`);
    }
    return new DataFrame(this, new PlanNode({ kind: 'sql', sql }, inputs.map((i) => i.node)), inputs.some((i) => i.needsRecompute));
  }

  // ---- used by DataFrame ---------------------------------------------------------------------

  private async resolveScans(target: PlanNode): Promise<void> {
    for (const node of nodesUpTo(target)) {
      if (node.spec.kind !== 'scan' || this.scanFiles.has(node.id)) continue;
      const files: string[] = [];
      for (const path of node.spec.paths) {
        const found = (await this.db.run(`SELECT file FROM glob(${sqlString(this.root.url(path))}) ORDER BY file`)).map((r) => String(r[0]));
        if (found.length === 0) {
          const err = new MillpondError('ENOENT', `no such file: ${path}${/[*?[]/.test(path) ? ' (the pattern matches nothing)' : ''}`);
          err.path = path;
          throw err;
        }
        files.push(...found);
      }
      this.scanFiles.set(node.id, files);
    }
  }

  /**
   * @internal Runs the plan up to `node` (reusing completed tasks) and returns the job summary.
   * Terminal calls of one session run one after another (they share the workers and results).
   */
  execute(node: PlanNode, recompute: boolean): Promise<JobSummary> {
    const run = this.queue.then(() => this.executeNow(node, recompute));
    this.queue = run.then(() => {}, () => {});
    return run;
  }

  private async executeNow(target: PlanNode, recompute: boolean): Promise<JobSummary> {
    if (this.closed) throw new MillpondError('ECLOSED', 'session is shut down');
    await this.resolveScans(target);
    const node = await this.optimize(target);
    if (recompute) {
      await this.root.removeRecursive(this.layout.nodeDir(node.id));
      for (let t = 0; t < node.taskCount; t++) this.results.delete(taskKey(node, t));
    }
    for (const n of nodesUpTo(node)) this.planned.set(n.id, n);
    await this.root.writeFileAtomic(this.layout.planFile(), JSON.stringify({ jobId: this.jobId, nodes: [...this.planned.values()].map((n) => n.describe()) }, null, 2));
    for (const r of this.reporters) if (r.idle) this.reporters.delete(r);
    const ctx: SchedulerContext = {
      root: this.root, layout: this.layout, executor: this.executor,
      duckdb: duckDbSettings(this.options),
      attemptsMax: this.options.taskAttemptsMax, progress: this.options.progress,
      scanFiles: this.scanFiles, results: this.results,
      ...(this.reporter ? { jobReports: { sink: (r: JobReport) => reportJob(this.reporter!, r), reporters: this.reporters } } : {}),
    };
    const summary = await runJob(ctx, node);
    this.lastSummary = summary;
    return summary;
  }

  /** The plan up to `target` as it runs: SQL chains fused, shuffles pruned to the columns read. */
  private async optimize(target: PlanNode): Promise<PlanNode> {
    const trees = new Map<string, Promise<string>>();
    const facts: PlanFacts = {
      parse: (sql) => {
        let tree = trees.get(sql);
        if (!tree) {
          tree = this.db.run(`SELECT json_serialize_sql(${sqlString(substitutePlaceholders(sql))})`).then((rows) => String(rows[0]?.[0]));
          trees.set(sql, tree);
        }
        return tree;
      },
      computed: (n) => [...Array(n.taskCount).keys()].every((t) => this.results.has(taskKey(n, t))),
    };
    return pruneShuffleColumns(await fuseSqlChains(target, facts), facts);
  }

  /**
   * @internal SELECTs over `node`'s output in partition order (REQUIRES: executed): one per file
   * of a task-computed node; one per partition of a scan or by-files node (its files are read in
   * their format, an empty partition as no rows).
   */
  partitionSelects(node: PlanNode): string[] {
    const ctx = this.readContext();
    if (node.spec.kind === 'scan' || node.spec.kind === 'files') {
      return [...Array(node.partitions).keys()].map((p) => relationSql(relationOf(ctx, node, [p])));
    }
    const records = partitionFiles(ctx, node, [...Array(node.partitions).keys()]);
    return records.map((r) => decodeWideInts(`SELECT * FROM read_parquet(${sqlString(this.root.url(r.location))})`, r.wide));
  }

  private readContext(): SchedulerContext {
    return { root: this.root, scanFiles: this.scanFiles, results: this.results } as SchedulerContext;
  }

  /** @internal Rows of `node` (REQUIRES: executed), at most `limit`. */
  async rowsOf(node: PlanNode, limit?: number): Promise<Record<string, unknown>[]> {
    const rows: Record<string, unknown>[] = [];
    for (const select of this.partitionSelects(node)) {
      if (limit !== undefined && rows.length >= limit) break;
      const sql = limit !== undefined ? `${select} LIMIT ${limit - rows.length}` : select;
      rows.push(...(await this.db.conn.runAndReadAll(sql)).getRowObjectsJS());
    }
    return rows;
  }

  /** @internal The row count of `node` (REQUIRES: executed). */
  async countOf(node: PlanNode): Promise<number> {
    const records = partitionFiles(this.readContext(), node, [...Array(node.partitions).keys()]);
    // Task outputs record their rows; a scan's files (also behind a by-files node) are counted.
    if (records.every((r) => r.rows >= 0)) return records.reduce((a, r) => a + r.rows, 0);
    let n = 0;
    for (const select of this.partitionSelects(node)) n += Number((await this.db.run(`SELECT count(*) FROM (${select})`))[0]![0]);
    return n;
  }

  /** @internal `node` as one Arrow Table (REQUIRES: executed). */
  async arrowOf(node: PlanNode): Promise<arrow.Table> {
    const tables: arrow.Table[] = [];
    for (const select of this.partitionSelects(node)) tables.push(await queryArrow(this.db.conn, select));
    const nonEmpty = tables.filter((t) => t.numRows > 0);
    if (nonEmpty.length === 0) return tables[0] ?? new arrow.Table();
    return nonEmpty[0]!.concat(...nonEmpty.slice(1));
  }

  /** Waits for running terminal calls, then stops the workers. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    await this.executor.close();
    // The jobs' last reports (each send is bounded by its timeout; a job's outcome never waits on them).
    await Promise.all([...this.reporters].map((r) => r.settled()));
    this.reporter?.close();
    this.db.close();
    this.root.close?.();
  }
}
