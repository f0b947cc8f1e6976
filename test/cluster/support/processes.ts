/** mgmtd and storage daemons as real processes, so tests can SIGKILL them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { childLines, type ChildLines } from '../../support/lines.js';

const mgmtdMain = fileURLToPath(new URL('../../../src/cluster/main.ts', import.meta.url));
const storageMain = fileURLToPath(new URL('../../../src/storage/main.ts', import.meta.url));
const metaMain = fileURLToPath(new URL('../../../src/meta/main.ts', import.meta.url));

export interface Proc extends ChildLines {
  child: ChildProcess;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

export function run(main: string, args: string[]): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  const proc: Proc = {
    child,
    ...childLines(child),
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  return proc;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Short timeouts so failures are detected within a test's patience. */
export const FAST = { heartbeatTimeoutMs: 1_200, leaseMs: 1_500, heartbeatMs: 150, pollMs: 150, mgmtdTimeoutMs: 400 };

/** `db` is an SQLite file, or a postgresql:// URL; `secretFile` the cluster secret (auth on). */
export async function startMgmtd(db: string, endpoint: string, secretFile?: string, options: { heartbeatTimeoutMs?: number; extra?: string[] } = {}): Promise<Proc> {
  const p = run(mgmtdMain, [
    ...(secretFile ? ['--secret-file', secretFile] : []),
    ...(db.startsWith('postgresql://') ? ['--backend', 'postgres', '--pg-url', db] : ['--db', db]), '--listen', endpoint,
    '--heartbeat-timeout-ms', String(options.heartbeatTimeoutMs ?? FAST.heartbeatTimeoutMs), '--lease-ms', String(FAST.leaseMs),
    '--lease-poll-ms', '100', '--liveness-check-ms', '100', ...(options.extra ?? []),
  ]);
  await p.waitFor(/^listening /);
  return p;
}

/** `extra`: more flags. */
export async function startStorage(nodeId: number, mgmtd: string[], targets: Array<[number, string]>, secretFile?: string,
  extra: string[] = []): Promise<Proc & { data: Map<number, string> }> {
  const p = run(storageMain, [...extra,
    ...(secretFile ? ['--secret-file', secretFile] : []),
    '--node-id', String(nodeId), '--mgmtd', mgmtd.join(','), '--transport', 'tcp', '--no-sync',
    '--heartbeat-ms', String(FAST.heartbeatMs), '--routing-poll-ms', String(FAST.pollMs), '--mgmtd-timeout-ms', String(FAST.mgmtdTimeoutMs),
    ...targets.flatMap(([id, dir]) => ['--target', `${id}:${dir}`]),
  ]);
  await p.waitFor(/^listening /);
  const data = new Map<number, string>();
  for (const line of p.lines) {
    const m = /^target (\d+) (\S+)/.exec(line);
    if (m) data.set(Number(m[1]), m[2]!);
  }
  return Object.assign(p, { data });
}

/** A meta server on SQLite file `db` at `endpoint`, collecting garbage and cutting shrunk files through `mgmtd`. */
export async function startMeta(db: string, endpoint: string, mgmtd: string[], extra: string[] = []): Promise<Proc> {
  const p = run(metaMain, ['--backend', 'sqlite', '--db', db, '--synchronous', 'normal', '--listen', endpoint, '--mgmtd', mgmtd.join(','), ...extra]);
  await p.waitFor(/^listening /);
  return p;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes. */
export async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
}
