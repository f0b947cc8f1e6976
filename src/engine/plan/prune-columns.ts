/**
 * Column pruning through shuffles (projection pushdown across an exchange): a shuffle moves
 * every column of its input, through three replicas and back, while DuckDB prunes the columns
 * a query does not read only within one task. So before a plan runs, a shuffle whose every
 * consumer in it is SQL that names its columns (sql-names.ts) becomes a shuffle of those
 * columns only, and DuckDB's scan under it reads no others.
 *
 * Contract: the rewritten plan gives `target` the same rows. A pruned shuffle is a new node
 * (its columns are in its spec, hence in its id and directory), so its output is never taken
 * for the whole shuffle's; its consumers keep their ids (withInputs: their results are the
 * same). Left whole: the target itself (its rows are the result), a shuffle already computed
 * (`computed`), and one with any consumer that is not SQL or that SQL may read unnamed
 * columns of (a star, a JS function, a limit, a write, another shuffle).
 */
import { nodesUpTo, PlanNode, readersIn, rebuildPlan, type PlanFacts } from './nodes.js';
import { namesIn } from './sql-names.js';

export async function pruneShuffleColumns(target: PlanNode, ctx: PlanFacts): Promise<PlanNode> {
  const nodes = nodesUpTo(target);
  const readers = readersIn(nodes);
  const kept = new Map<string, string[]>();
  for (const n of nodes) {
    if (n.spec.kind !== 'shuffle' || n.spec.columns || n === target || ctx.computed(n)) continue;
    const columns = await namesReadBy(readers.get(n.id) ?? [], ctx);
    if (columns) kept.set(n.id, columns);
  }
  if (kept.size === 0) return target;
  return rebuildPlan(target, (n, inputs) => {
    const columns = kept.get(n.id);
    return columns && n.spec.kind === 'shuffle' ? new PlanNode({ ...n.spec, columns }, inputs) : undefined;
  });
}

/** The union of the names `consumers` mention, sorted; undefined when one may read others. */
async function namesReadBy(consumers: PlanNode[], ctx: PlanFacts): Promise<string[] | undefined> {
  if (consumers.length === 0) return undefined;
  const all = new Set<string>();
  for (const c of consumers) {
    if (c.spec.kind !== 'sql') return undefined;
    const names = namesIn(await ctx.parse(c.spec.sql));
    if (!names) return undefined;
    for (const name of names) all.add(name);
  }
  return [...all].sort();
}
