/**
 * Shared helpers for the benchmarks: timing, units, tables, scratch directories and the
 * external baselines (dd, iperf3). Rates are decimal: 1 GB/s = 1e9 bytes per second, as dd
 * and iperf3 print them.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export const benchDir = dirname(fileURLToPath(import.meta.url));

export function nowMs(): number {
  return performance.now();
}

export function gbPerSecond(bytes: number, durationMs: number): number {
  return bytes / 1e9 / (durationMs / 1000);
}

/** The middle of `values` (the mean of the two middles for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Rounds for the JSON line: three significant decimals are more than the noise allows. */
export function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

export function fmtGBps(value: number): string {
  return `${value.toFixed(3)} GB/s`;
}

export function fmtCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Prints rows as an aligned text table; the first row is the header. */
export function printTable(title: string, rows: string[][]): void {
  const widths = rows[0].map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length)));
  const line = (r: string[]) => r.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]) : cell.padStart(widths[col]))).join('  ');
  console.log(`\n${title}`);
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
}

/** The machine's state, so a reader can judge the noise: cores are shared with other work. */
export function machineNote(): string {
  const [one, five] = loadavg();
  return `load average ${one.toFixed(2)} (1 min), ${five.toFixed(2)} (5 min)`;
}

/** The last line of every bench: one JSON object with its figures. */
export function printJson(name: string, figures: Record<string, number | string | boolean>): void {
  console.log(JSON.stringify({ bench: name, ...figures }));
}

/**
 * A scratch directory under bench/.work/ (gitignored, on the repo's disk so dd and the store
 * measure the same device). Removed by the returned cleanup, also on Ctrl-C.
 */
export async function makeWorkDir(prefix: string): Promise<{ dir: string; cleanup: () => void }> {
  const root = join(benchDir, '.work');
  mkdirSync(root, { recursive: true });
  const dir = await mkdtemp(join(root, `${prefix}-`));
  let done = false;
  const cleanup = () => {
    if (done) return;
    done = true;
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  return { dir, cleanup };
}

/** Writes back dirty pages and empties the page cache (needs root); false when not allowed. */
export async function dropPageCache(): Promise<boolean> {
  try {
    await execFileAsync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

export interface DdResult {
  bytes: number;
  durationMs: number;
  bytesPerSecond: number;
}

/** Runs dd and parses its summary ("N bytes ... copied, S s, ...") rather than its rounded rate. */
export async function runDd(args: string[]): Promise<DdResult> {
  const { stderr } = await execFileAsync('dd', args, { maxBuffer: 1 << 20 });
  const match = /(\d+) bytes .* copied, ([\d.]+) s/.exec(stderr);
  if (!match) throw new Error(`cannot parse dd output: ${stderr}`);
  const bytes = Number(match[1]);
  const durationMs = Number(match[2]) * 1000;
  return { bytes, durationMs, bytesPerSecond: bytes / (durationMs / 1000) };
}

/**
 * iperf3 single stream over loopback: the ceiling of what one TCP connection moves on this
 * machine. Returns received bytes per second.
 */
export async function runIperf3(port: number, seconds: number): Promise<number> {
  const server = spawn('iperf3', ['-s', '-1', '-p', String(port)], { stdio: 'ignore' });
  try {
    // The server needs a moment to listen; the client retries rather than guessing a delay.
    for (let attempt = 0; ; attempt++) {
      try {
        const { stdout } = await execFileAsync('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-J'],
          { maxBuffer: 16 << 20 });
        const report = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } };
        return report.end.sum_received.bits_per_second / 8;
      } catch (err) {
        if (attempt >= 20) throw err;
        await sleepMs(100);
      }
    }
  } finally {
    server.kill();
  }
}

export function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Parses `--key value` and `--key=value` options after the bench name. */
export function parseOptions(argv: string[]): Map<string, string> {
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument ${arg}`);
    const eq = arg.indexOf('=');
    if (eq > 0) options.set(arg.slice(2, eq), arg.slice(eq + 1));
    else options.set(arg.slice(2), argv[++i] ?? '');
  }
  return options;
}

export function intOption(options: Map<string, string>, key: string, fallback: number, min = 1): number {
  const raw = options.get(key);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${key} must be an integer >= ${min}, got ${raw}`);
  return value;
}

/**
 * Runs `count` operations with at most `depth` in flight; `op(i)` gets the operation number
 * and the slot (0..depth-1), so each slot can own a preallocated buffer.
 */
export async function runWithDepth(count: number, depth: number, op: (i: number, slot: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (slot: number) => {
    while (next < count) await op(next++, slot);
  };
  await Promise.all(Array.from({ length: Math.min(depth, count) }, (_, slot) => worker(slot)));
}

/** Like runWithDepth, but until `durationMs` has passed; returns operations done and time taken. */
export async function runForDuration(durationMs: number, depth: number,
  op: (i: number, slot: number) => Promise<unknown>): Promise<{ ops: number; elapsedMs: number }> {
  let next = 0;
  const start = nowMs();
  const deadline = start + durationMs;
  const worker = async (slot: number) => {
    while (nowMs() < deadline) await op(next++, slot);
  };
  await Promise.all(Array.from({ length: depth }, (_, slot) => worker(slot)));
  return { ops: next, elapsedMs: nowMs() - start };
}

/** A TCP port free on loopback right now (for iperf3 and test servers). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/**
 * The whole machine's CPU seconds so far, over all cores (/proc/stat; zeros elsewhere): `busy`
 * (user, nice, system, irq, softirq, steal) and `all` (busy plus idle and iowait). A phase's
 * busy / all is how much of the machine it kept busy, whichever processes did the work.
 */
export function machineCpuSeconds(): { busy: number; all: number } {
  const ticksPerS = 100; // USER_HZ on Linux
  try {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const busy = user! + nice! + system! + irq! + softirq! + steal!;
    return { busy: busy / ticksPerS, all: (busy + idle! + iowait!) / ticksPerS };
  } catch {
    return { busy: 0, all: 0 };
  }
}

/**
 * CPU seconds (user + system) so far of this process (`self`: the driver and whatever it runs
 * in-process, such as an embedded cluster) and of its live descendants (`children`: worker
 * processes), from /proc (Linux; zeros elsewhere). A child that exited is not counted, so
 * sample while the processes of interest live (a session's workers live until shutdown).
 */
export function cpuSecondsByTree(): { self: number; children: number } {
  const ticksPerS = 100; // USER_HZ on Linux
  const stats = new Map<number, { ppid: number; cpu: number }>();
  let names: string[];
  try {
    names = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return { self: 0, children: 0 };
  }
  for (const name of names) {
    try {
      const text = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the command (which may hold spaces) in parentheses: state ppid ... utime(14) stime(15).
      const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(name), { ppid: Number(rest[1]), cpu: (Number(rest[11]) + Number(rest[12])) / ticksPerS });
    } catch {
      // exited meanwhile
    }
  }
  const self = stats.get(process.pid)?.cpu ?? 0;
  let children = 0;
  const isDescendant = (pid: number): boolean => {
    for (let p = stats.get(pid)?.ppid; p !== undefined && p > 1; p = stats.get(p)?.ppid) if (p === process.pid) return true;
    return false;
  };
  for (const [pid, s] of stats) if (pid !== process.pid && isDescendant(pid)) children += s.cpu;
  return { self, children };
}
