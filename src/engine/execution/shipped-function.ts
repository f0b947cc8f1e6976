/**
 * JS functions that travel to executors on other hosts (filter/map/flatMap/mapBatches with a
 * function, under the cluster executor). A function crosses as its source text, so it must be
 * self-contained: it may use its parameters, its own locals, JavaScript's globals and `arrow`
 * (apache-arrow, for mapBatches), and nothing it closes over in the driver. That is checked when
 * the plan is made (`checkShippable`), so a function that needs driver state fails with a clear
 * EINVAL before any task runs, never with a wrong result on an executor.
 *
 * The check parses the source (acorn) and finds its free identifiers. Scopes are merged: a name
 * declared anywhere in the function counts as declared throughout, so a function that shadows
 * a name in one block and uses a driver variable of the same name in another passes the check
 * and then fails on the executor with a ReferenceError (a task error, still never a wrong row).
 */
import { parseExpressionAt, type Node } from 'acorn';
import { full } from 'acorn-walk';
import * as arrow from 'apache-arrow';
import { MillpondError } from '../../errors.js';

/** Names a shipped function may use without declaring them, besides JavaScript's globals. */
const kProvided = new Set(['arrow', 'arguments', 'undefined', 'NaN', 'Infinity', 'globalThis']);

type AnyNode = Node & Record<string, unknown>;

function patternNames(pattern: AnyNode | null | undefined, out: Set<string>): void {
  if (!pattern) return;
  switch (pattern.type) {
    case 'Identifier': out.add(pattern.name as string); break;
    case 'ObjectPattern':
      for (const p of pattern.properties as AnyNode[]) patternNames((p.type === 'RestElement' ? p.argument : p.value) as AnyNode, out);
      break;
    case 'ArrayPattern': for (const e of pattern.elements as AnyNode[]) patternNames(e, out); break;
    case 'AssignmentPattern': patternNames(pattern.left as AnyNode, out); break;
    case 'RestElement': patternNames(pattern.argument as AnyNode, out); break;
  }
}

/** The identifiers `source` (a function expression) uses without declaring them. */
export function freeIdentifiers(source: string): string[] {
  let ast: AnyNode;
  try {
    ast = parseExpressionAt(source, 0, { ecmaVersion: 'latest' }) as AnyNode;
  } catch (e) {
    throw new MillpondError('EINVAL', `cannot ship this function to executors: its source does not parse as a function expression (${(e as Error).message}); pass an arrow function or a function expression`);
  }
  if (ast.end !== source.length && source.slice(ast.end as number).trim() !== '') {
    throw new MillpondError('EINVAL', 'cannot ship this function to executors: its source is not one function expression');
  }
  if (!/^(Arrow)?FunctionExpression$/.test(ast.type)) {
    throw new MillpondError('EINVAL', `cannot ship this function to executors: its source is a ${ast.type}, not a function`);
  }
  const declared = new Set<string>();
  const used = new Set<string>();
  full(ast, (node, _state, type) => {
    const n = node as AnyNode;
    if (type === 'Identifier' || type === 'VariablePattern') used.add(n.name as string);
    else if (n.type === 'VariableDeclarator') patternNames(n.id as AnyNode, declared);
    else if (/Function/.test(n.type)) {
      patternNames(n.id as AnyNode, declared);
      for (const p of n.params as AnyNode[]) patternNames(p, declared);
    } else if (/^Class/.test(n.type)) patternNames(n.id as AnyNode, declared);
    else if (n.type === 'CatchClause') patternNames(n.param as AnyNode, declared);
  });
  return [...used].filter((name) => !declared.has(name) && !kProvided.has(name) && !(name in globalThis)).sort();
}

/** The source to ship for `fn`; EINVAL when it cannot run on another host. */
export function checkShippable(fn: (...args: never[]) => unknown, op: string): string {
  const source = fn.toString();
  if (/\{\s*\[native code\]\s*\}$/.test(source)) {
    throw new MillpondError('EINVAL', `${op}: a built-in or bound function cannot be shipped to executors; pass an arrow function`);
  }
  const free = freeIdentifiers(source);
  if (free.length > 0) {
    throw new MillpondError('EINVAL', `${op}: the function uses ${free.map((n) => `\`${n}\``).join(', ')} from the driver, which `
      + 'cannot travel to executors on other hosts; make it self-contained (only its arguments, its own locals, '
      + 'JavaScript globals and `arrow`), or use the local executor');
  }
  return source;
}

/** The function a shipped source defines, in this process (an executor's worker). */
export function compileShipped(source: string): (arg: unknown) => unknown {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const fn = new Function('arrow', `"use strict"; return (${source});`)(arrow) as unknown;
  if (typeof fn !== 'function') throw new MillpondError('EINVAL', 'a shipped function source did not define a function');
  return fn as (arg: unknown) => unknown;
}
