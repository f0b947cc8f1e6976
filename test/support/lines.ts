/**
 * A child process's output, line by line, for tests: stdout lines kept for `waitFor`, stderr
 * lines kept (bounded) and echoed with MILLPOND_TEST_VERBOSE.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface ChildLines {
  lines: string[];
  /** stderr lines (logs, refusals among them), at most 10,000. */
  errLines: string[];
  /** Resolves with the first stdout line (already seen or to come) matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

export function childLines(child: ChildProcess, label = ''): ChildLines {
  const lines: string[] = [];
  const errLines: string[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of waiters.splice(0)) w();
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    if (errLines.length < 10_000) errLines.push(line);
    if (process.env.MILLPOND_TEST_VERBOSE) console.error(`${label}${line}`);
  });
  const waitFor = (pattern: RegExp, timeoutMs = 30_000) => new Promise<RegExpMatchArray>((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = () => {
      for (const line of lines) {
        const m = line.match(pattern);
        if (m) return resolve(m);
      }
      if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`${label}process exited before printing ${pattern}`));
      if (Date.now() > deadline) return reject(new Error(`${label}no line matching ${pattern} within ${timeoutMs} ms`));
      waiters.push(check);
      setTimeout(check, Math.max(0, Math.min(1000, deadline - Date.now()) + 1)).unref();
    };
    check();
  });
  return { lines, errLines, waitFor };
}
