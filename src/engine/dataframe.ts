/**
 * A lazy, partitioned DataFrame after smallpond's: every method but the terminal ones
 * (count, take, takeAll, toArrow, writeParquet, compute) only extends the plan.
 */
import type * as arrow from 'apache-arrow';
import { engineLimits } from '../limits.js';
import type { JobSummary } from './execution/progress.js';
import { PlanNode, type JsOp, type NodeSpec } from './plan/nodes.js';

export type Row = Record<string, unknown>;

/**
 * What a DataFrame asks of the session that made it (Session implements it). Declared here so
 * that dataframe.ts does not import session.ts, which imports this file.
 */
export interface PlanRunner {
  readonly root: { resolveUserPath(path: string): string };
  /** Runs the plan up to `node` (reusing completed tasks). */
  execute(node: PlanNode, recompute: boolean): Promise<JobSummary>;
  countOf(node: PlanNode): Promise<number>;
  rowsOf(node: PlanNode, limit?: number): Promise<Row[]>;
  arrowOf(node: PlanNode): Promise<arrow.Table>;
}

function checkPartitions(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n)) throw new TypeError('the number of partitions must be an integer');
  if (n < 1 || n > engineLimits.partitionsMax) throw new RangeError(`the number of partitions must be in [1, ${engineLimits.partitionsMax}], got ${n}`);
  return n;
}

function columnList(name: string, v: unknown): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every((c) => typeof c === 'string' && c !== '')) {
    throw new TypeError(`${name} must be a column name or a non-empty array of them`);
  }
  return list as string[];
}

export class DataFrame {
  /** @internal */
  constructor(readonly session: PlanRunner, readonly node: PlanNode, public needsRecompute = false) {}

  private derive(spec: NodeSpec, inputs: PlanNode[] = [this.node]): DataFrame {
    return new DataFrame(this.session, new PlanNode(spec, inputs), this.needsRecompute);
  }

  /** Partitions of this DataFrame's output. */
  get partitions(): number {
    return this.node.partitions;
  }

  /**
   * n partitions (smallpond's semantics). Without keys, by files: the input's files (a scan's
   * resolved files, or every output file of the input node in partition order) are split into
   * n contiguous groups as evenly as possible — no task, no data moved; with fewer files than
   * n the last partitions are empty. `byRows` instead deals each producer's rows round-robin
   * (a shuffle). `hashBy` hashes the columns; `by` is an expression whose integer value is the
   * partition index (it must be in [0, n), or the job fails with EINVAL).
   */
  repartition(n: number, options: { hashBy?: string | string[]; by?: string; byRows?: boolean } = {}): DataFrame {
    checkPartitions(n);
    if (options.hashBy !== undefined && options.by !== undefined) throw new TypeError('repartition takes hashBy or by, not both');
    if (options.byRows !== undefined && typeof options.byRows !== 'boolean') throw new TypeError('byRows must be a boolean');
    if (options.byRows && (options.hashBy !== undefined || options.by !== undefined)) throw new TypeError('repartition takes byRows without hashBy or by');
    if (options.by !== undefined) {
      if (typeof options.by !== 'string' || options.by.trim() === '') throw new TypeError('by must be a SQL expression');
      return this.derive({ kind: 'shuffle', mode: 'by', partitions: n, by: options.by });
    }
    if (options.hashBy !== undefined) return this.derive({ kind: 'shuffle', mode: 'hash', partitions: n, keys: columnList('hashBy', options.hashBy) });
    if (options.byRows) return this.derive({ kind: 'shuffle', mode: 'even', partitions: n });
    return this.derive({ kind: 'files', partitions: n });
  }

  /** Every row to a random partition (same count), then a random order within each. */
  randomShuffle(): DataFrame {
    const shuffled = this.derive({ kind: 'shuffle', mode: 'random', partitions: this.node.partitions });
    return shuffled.derive({ kind: 'sql', sql: 'SELECT * FROM {0} ORDER BY random()' });
  }

  private jsOrSql(op: JsOp, arg: unknown, sql: (text: string) => string, extra: { schema?: Record<string, string> } = {}): DataFrame {
    if (typeof arg === 'string') {
      if (arg.trim() === '') throw new TypeError(`${op} takes SQL text or a function`);
      return this.derive({ kind: 'sql', sql: sql(arg) });
    }
    if (typeof arg === 'function') return this.derive({ kind: 'js', op, fn: arg as never, ...(extra.schema ? { schema: extra.schema } : {}) });
    throw new TypeError(`${op} takes SQL text or a function`);
  }

  /** Rows where the SQL condition holds, or the (sync or async) predicate returns truthy. */
  filter(sqlOrFn: string | ((row: Row) => unknown)): DataFrame {
    return this.jsOrSql('filter', sqlOrFn, (c) => `SELECT * FROM {0} WHERE (${c})`);
  }

  /** A SQL select list ('a, b + 1 AS c') or a function from row to row. */
  map(sqlOrFn: string | ((row: Row) => Row | Promise<Row>), options: { schema?: Record<string, string> } = {}): DataFrame {
    return this.jsOrSql('map', sqlOrFn, (s) => `SELECT ${s} FROM {0}`, options);
  }

  /** A SQL select list that expands rows ('unnest(xs) AS x') or a function from row to rows. */
  flatMap(sqlOrFn: string | ((row: Row) => Row[] | Promise<Row[]>), options: { schema?: Record<string, string> } = {}): DataFrame {
    return this.jsOrSql('flatMap', sqlOrFn, (s) => `SELECT ${s} FROM {0}`, options);
  }

  /** A function over apache-arrow Tables of at most batchRows rows, returning a Table or RecordBatch. */
  mapBatches(fn: (batch: arrow.Table) => arrow.Table | arrow.RecordBatch | Promise<arrow.Table | arrow.RecordBatch>, options: { batchRows?: number } = {}): DataFrame {
    if (typeof fn !== 'function') throw new TypeError('mapBatches takes a function');
    if (options.batchRows !== undefined && (!Number.isInteger(options.batchRows) || options.batchRows < 1)) throw new RangeError('batchRows must be a positive integer');
    return this.derive({ kind: 'js', op: 'mapBatches', fn: fn as never, ...(options.batchRows ? { batchRows: options.batchRows } : {}) });
  }

  /** At most n rows in total (one partition). */
  limit(n: number): DataFrame {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new RangeError('limit takes a non-negative integer');
    return this.derive({ kind: 'limit', rows: n });
  }

  /** Sorts within each partition: by 'a', or ['a', 'b desc']. */
  partialSort(by: string | string[]): DataFrame {
    return this.derive({ kind: 'sql', sql: `SELECT * FROM {0} ORDER BY ${columnList('by', by).join(', ')}` });
  }

  /** Ignore completed results of this DataFrame's node at its next run (and of DataFrames derived from it). */
  recompute(): DataFrame {
    this.needsRecompute = true;
    return this;
  }

  /** Runs the plan; returns the job's summary. */
  async compute(): Promise<JobSummary> {
    const recompute = this.needsRecompute;
    const summary = await this.session.execute(this.node, recompute);
    this.needsRecompute = false;
    return summary;
  }

  /** Writes one Parquet file per partition into `path` (part-<i>.parquet). */
  async writeParquet(path: string): Promise<JobSummary> {
    if (typeof path !== 'string' || path === '') throw new TypeError('writeParquet takes a path');
    const sink = this.derive({ kind: 'write', path: this.session.root.resolveUserPath(path) });
    return sink.compute();
  }

  async count(): Promise<number> {
    await this.compute();
    return this.session.countOf(this.node);
  }

  /** Up to n rows (runs the plan with a limit; a scan is read directly). */
  async take(n: number): Promise<Row[]> {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new RangeError('take takes a non-negative integer');
    if (this.node.spec.kind === 'scan') {
      await this.compute();
      return this.session.rowsOf(this.node, n);
    }
    return this.limit(n).takeAll();
  }

  async takeAll(): Promise<Row[]> {
    await this.compute();
    return this.session.rowsOf(this.node);
  }

  async toArrow(): Promise<arrow.Table> {
    await this.compute();
    return this.session.arrowOf(this.node);
  }
}
