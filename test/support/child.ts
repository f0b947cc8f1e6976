import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Runs a TS script from test/support in a child node with tsx; lines of stdout go to onLine. */
export function spawnScript(script: string, args: string[], onLine: (line: string) => void = () => {}, env?: NodeJS.ProcessEnv): ChildProcess {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', path, ...args], { stdio: ['ignore', 'pipe', 'inherit'], ...(env ? { env: { ...process.env, ...env } } : {}) });
  createInterface({ input: child.stdout! }).on('line', onLine);
  closed.set(child, once(child, 'close').then(() => undefined));
  return child;
}

// Resolves when the child exited and its stdout was read to the end (every line delivered).
const closed = new WeakMap<ChildProcess, Promise<void>>();

/** Resolves with the first stdout line matching `pattern`. */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms`)), timeoutMs);
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      const m = line.match(pattern);
      if (m) {
        clearTimeout(timer);
        rl.close();
        resolve(m);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited with ${code} before printing ${pattern}`));
    });
  });
}

/** SIGKILL, then wait until every line the child printed has been delivered. */
export async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await closed.get(child);
}

/** Whether a process with this pid exists (signal 0 checks without signalling). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
