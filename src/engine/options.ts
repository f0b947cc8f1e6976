/** init()'s options, validated once (TypeError for wrong types, RangeError for bad values). */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { engineLimits } from '../limits.js';
import type { ClusterExecutorOptions } from './execution/cluster-executor.js';
import type { DataRootSpec } from './partition/root.js';

/** Where tasks run: worker processes on this machine (default), or executors on many hosts. */
export type ExecutorOption = { kind: 'local' } | ClusterExecutorOptions;

export interface InitOptions {
  /** Where job directories live: `{ kind: 'local', dir }` today. */
  root: DataRootSpec;
  /** Worker processes of the local executor (default: one per CPU). */
  workers?: number;
  /**
   * `{ kind: 'cluster', redis: 'redis://host:6379' }` runs tasks on `millpond executor`
   * processes on many hosts (BullMQ on Redis); default `{ kind: 'local' }`.
   */
  executor?: ExecutorOption;
  /** DuckDB threads per task (default 1). */
  threadsPerTask?: number;
  /** DuckDB memory limit per task: bytes, or a size like '512MB' / '2GiB' (default 1 GiB). */
  memoryLimitPerTask?: number | string;
  /** The job directory's name under the root; rerunning with the same id resumes (default: new id). */
  jobId?: string;
  /** Attempts per task before the job fails (default engineLimits.taskAttemptsMax). */
  taskAttemptsMax?: number;
  /** Progress line and summary on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  /**
   * Where the job's progress is reported (mgmtd.jobReport; the console and `millpond status`
   * show it): mgmtd addresses and the token (and server key) to present. Default: a millpond
   * root's mgmtd and token (else MILLPOND_TOKEN / MILLPOND_SERVER_KEY); false: not reported.
   * Reporting never slows or fails the job.
   */
  reportTo?: ReportTo | false;
}

export interface ReportTo {
  mgmtd: string | string[];
  token?: string;
  serverKey?: string;
}

export interface ResolvedOptions {
  root: DataRootSpec;
  executor: ExecutorOption;
  workers: number;
  threadsPerTask: number;
  memoryLimitPerTaskBytes: number;
  jobId: string;
  taskAttemptsMax: number;
  progress: boolean;
  reportTo?: ReportTo;
}

function intIn(name: string, v: unknown, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${name} must be an integer`);
  if (v < min || v > max) throw new RangeError(`${name} must be in [${min}, ${max}], got ${v}`);
  return v;
}

const kUnits: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4,
};

export function parseBytes(name: string, v: number | string): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a positive number of bytes`);
    return Math.floor(v);
  }
  if (typeof v !== 'string') throw new TypeError(`${name} must be bytes or a size string like '512MB'`);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(v);
  const unit = kUnits[(m?.[2] || 'b').toLowerCase()];
  if (!m || unit === undefined) throw new RangeError(`${name}: cannot parse size ${JSON.stringify(v)}`);
  return parseBytes(name, Number(m[1]) * unit);
}

export function resolveOptions(o: InitOptions): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw new TypeError('init() takes an options object with a root');
  if (o.jobId !== undefined && (typeof o.jobId !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(o.jobId) || o.jobId.startsWith('.'))) {
    throw new RangeError('jobId must be 1..128 characters of [A-Za-z0-9._-], not starting with a dot');
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  // `millpond run --cluster` passes the executor through the environment.
  const fromEnv: ExecutorOption | undefined = process.env.MILLPOND_EXECUTOR === 'cluster' && process.env.MILLPOND_REDIS
    ? { kind: 'cluster', redis: process.env.MILLPOND_REDIS } : undefined;
  const executor = o.executor ?? fromEnv ?? { kind: 'local' };
  if (executor === null || typeof executor !== 'object' || (executor.kind !== 'local' && executor.kind !== 'cluster')) {
    throw new TypeError("executor must be { kind: 'local' } or { kind: 'cluster', redis }");
  }
  if (executor.kind === 'cluster' && typeof executor.redis !== 'string') throw new TypeError('executor.redis must be a redis:// URL');
  if (o.reportTo !== undefined && o.reportTo !== false && (o.reportTo === null || typeof o.reportTo !== 'object' || !(typeof o.reportTo.mgmtd === 'string' || Array.isArray(o.reportTo.mgmtd)))) {
    throw new TypeError('reportTo must be false or { mgmtd, token?, serverKey? }');
  }
  const fromRoot: ReportTo | undefined = o.root?.kind === 'millpond'
    ? { mgmtd: o.root.mgmtd, token: o.root.token ?? process.env.MILLPOND_TOKEN, serverKey: o.root.serverKey ?? process.env.MILLPOND_SERVER_KEY } : undefined;
  const reportTo = o.reportTo === false ? undefined : o.reportTo ?? fromRoot;
  return {
    root: o.root,
    executor,
    workers: intIn('workers', o.workers, 1, engineLimits.workersMax, Math.max(1, cpus().length)),
    threadsPerTask: intIn('threadsPerTask', o.threadsPerTask, 1, engineLimits.threadsPerTaskMax, 1),
    memoryLimitPerTaskBytes: o.memoryLimitPerTask === undefined ? engineLimits.memoryLimitPerTaskBytesDefault : parseBytes('memoryLimitPerTask', o.memoryLimitPerTask),
    jobId: o.jobId ?? `${stamp}-${randomBytes(4).toString('hex')}`,
    taskAttemptsMax: intIn('taskAttemptsMax', o.taskAttemptsMax, 1, 100, engineLimits.taskAttemptsMax),
    progress: o.progress ?? Boolean(process.stderr.isTTY),
    ...(reportTo ? { reportTo } : {}),
  };
}
