/**
 * SQL over SQL in one task (as smallpond's optimizer fuses consecutive SQL nodes): a SQL node
 * whose one input is another SQL node becomes one query, the input's SQL as a subquery in
 * place of `{0}`, over the input's own inputs. A chain like filter → map → partialSql then
 * runs as one wave of tasks instead of three, and no partition of the steps between is
 * written, replicated and read back.
 *
 * Contract: the fused node gives the same rows and keeps the consumer's id (withInputs). An
 * input is not fused when its rows are wanted by themselves or already there: the target, a
 * node computed (`computed`), a node another node of the plan also reads (it would run
 * twice); nor when the consumer reads `{0}` more than once (the subquery would run as often),
 * nor when the input orders its rows (ORDER BY: the order its file keeps is not promised
 * through a subquery), nor unless both queries, and the fused one, parse as SELECTs.
 */
import { nodesUpTo, readersIn, rebuildPlan, type PlanFacts, type PlanNode } from './nodes.js';
import { ordersRows } from './sql-names.js';

const kInput0 = /\{0\}/g;

export function fuseSqlChains(target: PlanNode, ctx: PlanFacts): Promise<PlanNode> {
  const readers = readersIn(nodesUpTo(target));
  return rebuildPlan(target, async (n, inputs) => {
    const input = n.inputs[0];
    if (n.spec.kind !== 'sql' || n.inputs.length !== 1 || input!.spec.kind !== 'sql'
      || readers.get(input!.id)!.length !== 1 || ctx.computed(input!) || (n.spec.sql.match(kInput0) ?? []).length !== 1) return undefined;
    const child = inputs[0]!;  // the input as rebuilt: itself fused with its own input, maybe
    const childSql = (child.spec as { sql: string }).sql;
    const sql = n.spec.sql.replace(kInput0, () => `(${childSql})`);
    // Each a SELECT DuckDB parses (not a PIVOT or DESCRIBE statement, which take no subquery
    // in every place they take a table), the input's unordered.
    if (ordersRows(await ctx.parse(childSql)) !== false || ordersRows(await ctx.parse(sql)) === undefined) return undefined;
    return n.withInputs(child.inputs, { kind: 'sql', sql });
  });
}
