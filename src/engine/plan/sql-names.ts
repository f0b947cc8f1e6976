/**
 * The column names a SELECT mentions, from DuckDB's own parser (json_serialize_sql), for
 * column pruning through shuffles (prune-columns.ts).
 *
 * Contract: namesIn(ast) is every name that a column reference or a join's USING list holds,
 * lowercased (DuckDB matches names without regard to case), wherever it stands (select list,
 * WHERE, lambdas, subqueries, window clauses, struct fields): a superset of the input columns
 * the query reads by name. It is undefined when the query may read a column it does not name:
 *   - a star (`*`, `t.*`, `* EXCLUDE`, `COLUMNS(...)`, and FROM-first `FROM t`), but for a bare
 *     `*` that only passes rows on: the select list of a subquery in FROM that neither groups
 *     nor is DISTINCT (`FROM (SELECT * FROM t WHERE c)`, what a filter fused into the next step
 *     reads), whose columns the outer query reads by name like any table's;
 *   - a positional reference (`#1`) or positional column aliases (`FROM t AS x(a, b)`);
 *   - a NATURAL join (its columns are the ones both sides happen to share);
 *   - a PIVOT or UNPIVOT (a PIVOT groups by every column it does not name);
 *   - a table, subquery or CTE used as a value (`SELECT t FROM t`: the whole row as a struct);
 *   - text DuckDB does not serialize (not one SELECT, or a parse error, which the task reports).
 */
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The one statement of the parse tree `astJson` (json_serialize_sql's text), if it is one SELECT. */
function statementOf(astJson: string): Json | undefined {
  let ast: Json;
  try {
    ast = JSON.parse(astJson) as Json;
  } catch {
    return undefined;
  }
  if (!isObject(ast) || ast.error !== false || !Array.isArray(ast.statements) || ast.statements.length !== 1) return undefined;
  return ast.statements[0];
}

/**
 * Whether the SELECT of `astJson` orders its rows (an ORDER BY of the statement itself, not
 * of a subquery or a window); undefined when it is not one SELECT.
 */
export function ordersRows(astJson: string): boolean | undefined {
  const statement = statementOf(astJson);
  if (!isObject(statement) || !isObject(statement.node)) return undefined;
  const { modifiers } = statement.node;
  return Array.isArray(modifiers) && modifiers.some((m) => isObject(m) && m.type === 'ORDER_MODIFIER');
}

/** The names in the parse tree `astJson`; see the contract above. */
export function namesIn(astJson: string): Set<string> | undefined {
  const statement = statementOf(astJson);
  if (statement === undefined) return undefined;
  const names = new Set<string>();
  const relations = new Set<string>();  // tables, aliases and CTEs: names a whole row could be read by
  const bareRefs: string[] = [];        // one-part column references
  const passing = new Set<Json>();      // stars that only pass rows on
  let opaque = false;
  const visit = (v: Json): void => {
    if (opaque) return;
    if (Array.isArray(v)) {
      for (const x of v) visit(x);
      return;
    }
    if (!isObject(v)) return;
    if (v.type === 'SUBQUERY' && v.class === undefined && isObject(v.subquery)) {  // in FROM (an expression's has a class)
      const star = passingStar(v.subquery.node);
      if (star) passing.add(star);
    }
    if ((v.class === 'STAR' && !passing.has(v)) || v.class === 'POSITIONAL_REFERENCE' || v.type === 'PIVOT' || v.ref_type === 'NATURAL'
      || (Array.isArray(v.column_name_alias) && v.column_name_alias.length > 0)) {
      opaque = true;
      return;
    }
    if (typeof v.type === 'string' && kTableRefs.has(v.type)) {
      if (typeof v.alias === 'string' && v.alias !== '') relations.add(v.alias.toLowerCase());
      if (typeof v.table_name === 'string') relations.add(v.table_name.toLowerCase());
    }
    if (isObject(v.cte_map) && Array.isArray(v.cte_map.map)) {
      for (const cte of v.cte_map.map) if (isObject(cte) && typeof cte.key === 'string') relations.add(cte.key.toLowerCase());
    }
    const parts = [...strings(v.column_names), ...strings(v.using_columns)];
    for (const name of parts) names.add(name.toLowerCase());
    if (v.class === 'COLUMN_REF' && parts.length === 1) bareRefs.push(parts[0]!.toLowerCase());
    for (const x of Object.values(v)) visit(x);
  };
  visit(statement);
  if (opaque || bareRefs.some((r) => relations.has(r))) return undefined;
  return names;
}

/**
 * The star of a SELECT whose select list is a bare `*` (no COLUMNS, qualifier, EXCLUDE, REPLACE
 * or RENAME: each names input columns that must stay) and which neither groups (GROUP BY,
 * aggregates) nor is DISTINCT: its rows are its input's rows with every column, so dropping a
 * column nobody names changes nothing else.
 */
function passingStar(node: Json | undefined): Json | undefined {
  if (!isObject(node) || node.type !== 'SELECT_NODE' || !Array.isArray(node.select_list) || node.select_list.length !== 1) return undefined;
  const [star] = node.select_list;
  if (!isObject(star) || star.class !== 'STAR' || star.columns !== false || star.expr !== null || star.relation_name !== ''
    || ['exclude_list', 'qualified_exclude_list', 'replace_list', 'rename_list'].some((k) => !Array.isArray(star[k]) || star[k].length > 0)) return undefined;
  const grouped = (Array.isArray(node.group_expressions) && node.group_expressions.length > 0)
    || (Array.isArray(node.group_sets) && node.group_sets.length > 0) || node.aggregate_handling !== 'STANDARD_HANDLING' || node.having !== null;
  const distinct = Array.isArray(node.modifiers) && node.modifiers.some((m) => isObject(m) && m.type === 'DISTINCT_MODIFIER');
  return grouped || distinct ? undefined : star;
}

/** Parse-tree nodes that are relations (a FROM item): their aliases and table names. */
const kTableRefs = new Set(['BASE_TABLE', 'SUBQUERY', 'TABLE_FUNCTION', 'JOIN', 'EXPRESSION_LIST', 'PIVOT', 'SHOW_REF', 'COLUMN_DATA']);

function strings(v: Json | undefined): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
