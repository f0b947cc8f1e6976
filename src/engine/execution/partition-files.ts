/**
 * Where a node's partitions are: the files its tasks wrote (from their results), a scan's
 * resolved files, or a by-files repartition's groups of its input's files; which tasks a
 * reader waits for; and what a reader opens (InputRelation).
 */
import type { PlanNode } from '../plan/nodes.js';
import type { DataRoot } from '../partition/root.js';
import { splitEvenly } from './file-groups.js';
import type { InputRelation, OutputRecord, TaskResult } from './task-spec.js';

/** What the functions here read of a job (scheduler.ts SchedulerContext has it all). */
export interface OutputsContext {
  root: DataRoot;
  /** Files of each scan node, resolved before the run. */
  scanFiles: Map<string, string[]>;
  /** Results of completed tasks by key. */
  results: Map<string, TaskResult>;
}

export function taskKey(node: PlanNode, task: number): string {
  return `${node.id}#${task}`;
}

/** Indices of `node`'s own tasks whose outputs hold `partitions` of it (none for scans and by-files nodes). */
function producersOf(node: PlanNode, partitions: number[]): number[] {
  if (node.spec.kind === 'scan' || node.spec.kind === 'files') return [];
  if (node.spec.kind === 'shuffle') return [...Array(node.taskCount).keys()];
  if (node.taskCount === 1) return [0];
  return partitions;
}

const allPartitions = (node: PlanNode): number[] => [...Array(node.partitions).keys()];

/**
 * Keys of the tasks a reader of `partitions` of `node` waits for. A by-files node has no tasks:
 * its partitions are complete when every producer of its input is (its groups span them all).
 */
export function producerKeys(node: PlanNode, partitions: number[]): string[] {
  if (node.spec.kind === 'files') return producerKeys(node.inputs[0]!, allPartitions(node.inputs[0]!));
  return producersOf(node, partitions).map((t) => taskKey(node, t));
}

/**
 * The files of `partitions` of `node`, in partition then producer order (REQUIRES: its producers
 * completed). A scan's files have rows and bytes -1 (unknown); a by-files node's are its input's
 * files, all of them in that order, split into `node.partitions` contiguous groups.
 */
export function partitionFiles(ctx: OutputsContext, node: PlanNode, partitions: number[]): OutputRecord[] {
  if (node.spec.kind === 'scan') {
    return ctx.scanFiles.get(node.id)!.map((location) => ({ partition: 0, location, rows: -1, bytes: -1 }));
  }
  if (node.spec.kind === 'files') {
    const input = node.inputs[0]!;
    const groups = splitEvenly(partitionFiles(ctx, input, allPartitions(input)), node.partitions);
    return partitions.flatMap((p) => groups[p]!.map((o) => ({ ...o, partition: p })));
  }
  const wanted = new Set(partitions);
  const records: OutputRecord[] = [];
  for (const t of producersOf(node, partitions)) {
    const result = ctx.results.get(taskKey(node, t));
    if (!result) throw new Error(`assertion: ${taskKey(node, t)} has no result`);
    for (const o of result.outputs) if (wanted.has(o.partition)) records.push(o);
  }
  records.sort((a, b) => a.partition - b.partition);
  return records;
}

/** How `node`'s files are read: a scan's format and options, through by-files nodes; else Parquet. */
function formatOf(node: PlanNode): Pick<InputRelation, 'format' | 'options'> {
  if (node.spec.kind === 'scan') return { format: node.spec.format, options: node.spec.options };
  if (node.spec.kind === 'files') return formatOf(node.inputs[0]!);
  return { format: 'parquet', options: {} };
}

/**
 * What a task reading `partitions` of `node` opens (REQUIRES: its producers completed). Empty
 * files only matter for their schema: they are dropped when others remain, one is kept when all
 * are empty, and partitions with no files at all read the node's first file with no rows.
 */
export function relationOf(ctx: OutputsContext, node: PlanNode, partitions: number[]): InputRelation {
  const { format, options } = formatOf(node);
  if (node.spec.kind === 'scan') {
    return { format, files: ctx.scanFiles.get(node.id)!.map((f) => ctx.root.url(f)), options };
  }
  const all = partitionFiles(ctx, node, partitions);
  // The files of one node share their columns, and so which of them are held as text.
  const wide = (records: OutputRecord[]) => (records[0]?.wide ? { wide: records[0].wide } : {});
  const nonEmpty = all.filter((o) => o.rows !== 0);
  if (nonEmpty.length > 0) return { format, files: nonEmpty.map((o) => ctx.root.url(o.location)), options, ...wide(nonEmpty) };
  if (all.length > 0) return { format, files: [ctx.root.url(all[0]!.location)], options, ...wide(all) };
  // Every node has at least one file (a scan matches one or fails; every task writes one).
  const every = partitionFiles(ctx, node, allPartitions(node));
  const schema = every.find((o) => o.rows !== 0) ?? every[0]!;
  return { format, files: [ctx.root.url(schema.location)], options, empty: true, ...wide([schema]) };
}

