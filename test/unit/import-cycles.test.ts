// The import graph of src/**/*.ts: no module imports itself through others (type-only imports
// count: a type cycle still ties the files together for a reader and for refactoring), and the
// shared layers (src/protocol, src/kv) import no service. Specifiers are read with the
// TypeScript compiler's own pre-processor, so multi-line, `import type`, `export ... from` and
// `import('...')` all count.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const srcDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** file -> the files of `root` it imports (relative specifiers only). */
function importGraph(root: string): Map<string, string[]> {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (path.endsWith('.ts') && !path.endsWith('.d.ts')) files.push(path);
    }
  };
  walk(root);
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = new Set<string>();
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const base = resolve(dirname(file), fileName);
      const candidates = [base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')];
      const target = candidates.find((c) => known.has(c));
      if (target) targets.add(target);
    }
    graph.set(file, [...targets]);
  }
  return graph;
}

/** Every cycle's files (one cycle per strongly connected component), as relative paths a -> b -> a. */
function cycles(graph: Map<string, string[]>, root: string): string[] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component = new Set<string>();
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.add(w);
    } while (w !== v);
    if (component.size === 1 && !(graph.get(v) ?? []).includes(v)) return;
    found.push(pathWithin(graph, component, v).map((f) => relative(root, f)).join(' -> '));
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** One cycle through `start` inside `component` (breadth-first back to start). */
function pathWithin(graph: Map<string, string[]>, component: Set<string>, start: string): string[] {
  const from = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = from.get(u)!) path.splice(1, 0, u);
        return [...path, start];
      }
      if (!from.has(w)) {
        from.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

describe('import graph of src', () => {
  it('finds a type-only cycle and prints it (the check itself)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'millpond-cycles-'));
    try {
      writeFileSync(join(dir, 'a.ts'), "import type { B } from './b.js';\nexport interface A { b: B }\n");
      writeFileSync(join(dir, 'b.ts'), "import {\n  x,\n} from './c.js';\nexport interface B { x: typeof x }\n");
      writeFileSync(join(dir, 'c.ts'), "export const x = 1;\nexport type { A } from './a.js';\n");
      writeFileSync(join(dir, 'd.ts'), "export async function f() { return import('./d.js'); }\n");
      writeFileSync(join(dir, 'e.ts'), "import { x } from './c.js';\nexport const y = x;\n");
      expect(cycles(importGraph(dir), dir).sort()).toEqual(['a.ts -> b.ts -> c.ts -> a.ts', 'd.ts -> d.ts']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has no import cycle', () => {
    const graph = importGraph(srcDir);
    expect(graph.size).toBeGreaterThan(100);
    expect(cycles(graph, srcDir)).toEqual([]);
  });

  it('src/protocol and src/kv import no service', () => {
    // The folders each shared layer may import besides itself and the top-level files
    // (errors.ts, limits.ts, log.ts): protocol's RPC server authenticates with auth/zap.ts;
    // PostgreSQL's retries are counted in metrics/services.ts.
    const allowed: Record<string, string[]> = { protocol: ['auth'], kv: ['metrics'] };
    const wrong: string[] = [];
    for (const [file, targets] of importGraph(srcDir)) {
      const [layer] = relative(srcDir, file).split('/');
      if (!(layer! in allowed)) continue;
      for (const target of targets) {
        const parts = relative(srcDir, target).split('/');
        if (parts.length === 1 || parts[0] === layer || allowed[layer!]!.includes(parts[0]!)) continue;
        wrong.push(`${relative(srcDir, file)} -> ${relative(srcDir, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
