/**
 * The logical plan: immutable nodes, each with a deterministic id (a hash of what it computes
 * and of its inputs' ids), so a rerun of the same program in the same job directory finds the
 * outputs of the first run and resumes from them.
 */
import { createHash } from 'node:crypto';

export type ScanFormat = 'parquet' | 'csv' | 'json';

export interface ScanOptions {
  /** Column name → DuckDB type; without it DuckDB detects the schema (csv, json). */
  schema?: Record<string, string>;
  /** CSV field delimiter (default ','). */
  delim?: string;
  /** Parquet: read only these columns. */
  columns?: string[];
  /** Parquet: unify files' columns by name. */
  unionByName?: boolean;
}

/** A DuckDB column declaration of in-memory rows (fromItems, fromArrow, JS functions). */
export interface ColumnDecl {
  name: string;
  type: string;
}

export type ShuffleMode = 'even' | 'hash' | 'by' | 'random';

export type JsOp = 'filter' | 'map' | 'flatMap' | 'mapBatches';

export type NodeSpec =
  | { kind: 'scan'; format: ScanFormat; paths: string[]; options: ScanOptions }
  | { kind: 'items'; rows: Record<string, unknown>[]; columns: ColumnDecl[] }
  | { kind: 'sql'; sql: string }
  /**
   * `columns`: the input columns the shuffle writes (lowercase names; all when absent), set only
   * by pruneShuffleColumns when every consumer is SQL that names no others.
   */
  | { kind: 'shuffle'; mode: ShuffleMode; partitions: number; keys?: string[]; by?: string; columns?: string[] }
  /**
   * repartition(n) by files (smallpond's default): the input's files split into n contiguous
   * groups, no task and no data movement; consumers read a group's files directly.
   */
  | { kind: 'files'; partitions: number }
  | { kind: 'limit'; rows: number }
  | { kind: 'js'; op: JsOp; fn: (...args: never[]) => unknown; batchRows?: number; schema?: Record<string, string> }
  | { kind: 'write'; path: string };

export class PlanNode {
  readonly id: string;
  /** Partitions this node's output has. */
  readonly partitions: number;

  /** `id` only from withInputs. */
  constructor(readonly spec: NodeSpec, readonly inputs: readonly PlanNode[], id?: string) {
    this.partitions = partitionCount(spec, inputs);
    this.id = id ?? `${spec.kind}-${identity(spec, inputs)}`;
  }

  /**
   * This node computed another way that gives the same rows (a plan rewrite's: over a shuffle
   * that writes only the columns it reads, or as one query with the SQL it reads): the same
   * results, so the same id, and a rerun finds them whichever form ran.
   */
  withInputs(inputs: readonly PlanNode[], spec: NodeSpec = this.spec): PlanNode {
    return new PlanNode(spec, inputs, this.id);
  }

  /**
   * Tasks that compute this node: 0 for a scan (its partition is the user's files) and for a
   * by-files repartition (its partitions are its input's files, complete when its input is).
   */
  get taskCount(): number {
    switch (this.spec.kind) {
      case 'scan': case 'files': return 0;
      case 'items': case 'limit': return 1;
      case 'shuffle': case 'write': return this.inputs[0]!.partitions;
      case 'sql': case 'js': return this.partitions;
    }
  }

  /** Partitions of input `i` that task `task` reads. */
  inputPartitionsOf(task: number): number[] {
    if (this.spec.kind === 'limit') return [...Array(this.inputs[0]!.partitions).keys()];
    return [task];
  }

  /** What plan.json says about this node. */
  describe(): Record<string, unknown> {
    const { spec } = this;
    const detail: Record<string, unknown> = { ...spec };
    if (spec.kind === 'items') detail.rows = spec.rows.length;
    if (spec.kind === 'js') detail.fn = spec.fn.toString().slice(0, 500);
    return { id: this.id, partitions: this.partitions, tasks: this.taskCount, inputs: this.inputs.map((n) => n.id), ...detail };
  }
}

/** What the plan rewrites (fuse-sql.ts, prune-columns.ts) ask of the session. */
export interface PlanFacts {
  /** `sql` (with its `{0}`.. placeholders) parsed by DuckDB: json_serialize_sql's JSON text. */
  parse(sql: string): Promise<string>;
  /** Whether every task of `node` has completed (its output exists: a rewrite keeps it as is). */
  computed(node: PlanNode): boolean;
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

/** For each node of `nodes`, the nodes among them that read it (each reader once). */
export function readersIn(nodes: readonly PlanNode[]): Map<string, PlanNode[]> {
  const readers = new Map<string, PlanNode[]>();
  for (const n of nodes) {
    for (const id of new Set(n.inputs.map((i) => i.id))) {
      const list = readers.get(id);
      if (list) list.push(n);
      else readers.set(id, [n]);
    }
  }
  return readers;
}

/**
 * The plan up to `target` with nodes replaced: `replace` gets each node, inputs first, with its
 * inputs as already rebuilt, and returns the node's replacement, or undefined to keep it (over
 * the rebuilt inputs, with its id). Parts that nothing changed stay the same objects.
 */
export async function rebuildPlan(target: PlanNode,
  replace: (node: PlanNode, inputs: readonly PlanNode[]) => Promise<PlanNode | undefined> | PlanNode | undefined): Promise<PlanNode> {
  const rebuilt = new Map<string, PlanNode>();
  for (const n of nodesUpTo(target)) {
    const inputs = n.inputs.map((i) => rebuilt.get(i.id)!);
    const same = inputs.every((x, k) => x === n.inputs[k]);
    rebuilt.set(n.id, (await replace(n, inputs)) ?? (same ? n : n.withInputs(inputs)));
  }
  return rebuilt.get(target.id)!;
}

function partitionCount(spec: NodeSpec, inputs: readonly PlanNode[]): number {
  switch (spec.kind) {
    case 'scan': case 'items': case 'limit': return 1;
    case 'shuffle': case 'files': return spec.partitions;
    case 'sql': case 'js': case 'write': return inputs[0]!.partitions;
  }
}

/** JSON with bigints and Dates, stable enough to hash. */
export function jsonWithBigints(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

function identity(spec: NodeSpec, inputs: readonly PlanNode[]): string {
  const h = createHash('sha256');
  // Functions are identified by their source text: a closure over different values with the
  // same source gets the same id, so resume across runs assumes the closure's values are too.
  const keyed = spec.kind === 'js' ? { ...spec, fn: spec.fn.toString() } : spec;
  h.update(jsonWithBigints(keyed));
  for (const input of inputs) h.update(`|${input.id}`);
  return h.digest('hex').slice(0, 16);
}
