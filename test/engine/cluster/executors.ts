/**
 * Redis and `millpond executor` processes for the cluster executor's tests. Redis comes from
 * MILLPOND_REDIS_URL (.ci/run starts one with scripts/redis-start.sh), else that script is run
 * here. Every suite uses a queue of its own, so suites running at once never share tasks.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const mainTs = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
const redisStart = fileURLToPath(new URL('../../../scripts/redis-start.sh', import.meta.url));

export function redisUrl(): string {
  if (process.env.MILLPOND_REDIS_URL) return process.env.MILLPOND_REDIS_URL;
  const out = execFileSync('bash', [redisStart], { encoding: 'utf8' }).trim().split('\n');
  return (process.env.MILLPOND_REDIS_URL = out[out.length - 1]!);
}

export function queueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface ExecutorProc {
  child: ChildProcess;
  host: string;
  /** Resolves once it serves (its first line). */
  ready: Promise<void>;
  exited: Promise<unknown>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * `millpond executor` as a real process. `wrap` runs it under another command (a test host:
 * ['ip', 'netns', 'exec', ns]).
 */
export function startExecutor(redis: string, queue: string, host: string, slots: number, env: NodeJS.ProcessEnv = {}, wrap: string[] = []): ExecutorProc {
  const argv = [process.execPath, '--import', 'tsx', mainTs, 'executor', '--redis', redis, '--queue', queue, '--slots', String(slots), '--host', host];
  const child = spawn(wrap[0] ?? argv[0]!, [...wrap.slice(1), ...(wrap.length ? argv : argv.slice(1))], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const exited = once(child, 'exit');
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (/^executor /.test(line)) resolve();
    });
    exited.then(() => reject(new Error(`executor ${host} exited before it served`)), () => {});
  });
  ready.catch(() => {});
  createInterface({ input: child.stderr! }).on('line', (line) => {
    if (process.env.MILLPOND_TEST_VERBOSE) console.error(`[${host}] ${line}`);
  });
  return {
    child, host, ready, exited,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}
