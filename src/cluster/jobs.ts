/**
 * mgmtd's registry of engine jobs (issue 17): soft state on the primary, as executors.ts keeps
 * executors. A job's driver reports the whole job (its stages' tasks, each task's state, attempts
 * and where it ran) at most every jobReportLimits.reportIntervalMs while it runs and once at its
 * end; an entry lives entryTtlMs after its last report, so a finished job stays visible a while
 * and a driver that died disappears. Nothing is persisted; a new primary knows the jobs that
 * report after it took over.
 *
 *   method              params                                               result
 *   mgmtd.jobReport     jobId, target, state, startedMs, tasksTotal,         null
 *                       tasks: [{key, stage, task, state, attempts, host?,
 *                                executor?, pid?, readBytes?, writtenBytes?}],
 *                       error?
 *   mgmtd.jobs          -                                                    { jobs: JobRecord[] }
 *
 * Auth as executors.ts: a report carries a token; the uid that first reported a job owns it and
 * only it or the admin may refresh it (EACCES). Listing is open to any admitted caller (the
 * console asks with the admin's token). Standbys answer ENOTPRIMARY.
 */
import { MillpondError } from '../errors.js';
import { jobReportLimits } from '../limits.js';
import { ProtocolError, type Params } from '../protocol/envelope.js';
import { list, map, optStr, optUint, str, uint } from '../protocol/fields.js';
import type { MgmtdClient } from './mgmtd-client.js';

export const JOB_STATES = ['running', 'done', 'failed'] as const;
export type JobState = (typeof JOB_STATES)[number];
/** pending: not started; running: an attempt in flight; done; failed (its last attempt); reused: an earlier run's output. */
export const TASK_STATES = ['pending', 'running', 'done', 'failed', 'reused'] as const;
export type JobTaskState = (typeof TASK_STATES)[number];

export interface JobTaskReport {
  /** The scheduler's task key (stage and partition). */
  key: string;
  /** The plan node the task belongs to. */
  stage: string;
  task: number;
  state: JobTaskState;
  attempts: number;
  /** Where its finished attempt ran (absent until then, and for reused tasks). */
  host?: string;
  executor?: string;
  pid?: number;
  /** Bytes its finished attempt read from and wrote to millpond (absent when not measured). */
  readBytes?: number;
  writtenBytes?: number;
}

export interface JobReport {
  jobId: string;
  /** The plan node the terminal call asked for. */
  target: string;
  state: JobState;
  startedMs: number;
  /** Tasks of the job; `tasks` may hold fewer (tasksPerReportMax). */
  tasksTotal: number;
  tasks: JobTaskReport[];
  /** The failure's message, when state is failed. */
  error?: string;
}

export interface JobRecord extends JobReport {
  ownerUid: number;
  /** How long ago its last report arrived. */
  ageMs: number;
}

export const JOB_METHODS = ['mgmtd.jobReport', 'mgmtd.jobs'] as const;

function name(p: Params, field: string): string {
  const v = str(p, field);
  if (v === '' || Buffer.byteLength(v) > jobReportLimits.nameBytesMax) throw new ProtocolError('EPROTO', `param ${field} must be 1..${jobReportLimits.nameBytesMax} bytes`);
  return v;
}

function optName(p: Params, field: string): string | undefined {
  return optStr(p, field) === undefined ? undefined : name(p, field);
}

function oneOf<T extends string>(p: Params, field: string, allowed: readonly T[]): T {
  const v = str(p, field);
  if (!(allowed as readonly string[]).includes(v)) throw new ProtocolError('EPROTO', `param ${field} must be one of ${allowed.join(', ')}`);
  return v as T;
}

export function decodeJobReport(p: Params): JobReport {
  const tasks = list(p, 'tasks', jobReportLimits.tasksPerReportMax).map((item, i) => {
    try {
      const t = map({ item }, 'item');
      const host = optName(t, 'host');
      const executor = optName(t, 'executor');
      const pid = optUint(t, 'pid', 0xffffffff);
      const readBytes = optUint(t, 'readBytes');
      const writtenBytes = optUint(t, 'writtenBytes');
      return {
        key: name(t, 'key'), stage: name(t, 'stage'), task: uint(t, 'task', 0xffffffff), state: oneOf(t, 'state', TASK_STATES),
        attempts: uint(t, 'attempts', 0xffff), ...(host ? { host } : {}), ...(executor ? { executor } : {}), ...(pid !== undefined ? { pid } : {}),
        ...(readBytes !== undefined ? { readBytes } : {}), ...(writtenBytes !== undefined ? { writtenBytes } : {}),
      };
    } catch (err) {
      throw new ProtocolError('EPROTO', `tasks[${i}]: ${(err as Error).message}`);
    }
  });
  const error = optStr(p, 'error');
  return {
    jobId: name(p, 'jobId'), target: name(p, 'target'), state: oneOf(p, 'state', JOB_STATES), startedMs: uint(p, 'startedMs'),
    tasksTotal: uint(p, 'tasksTotal', 0xffffffff), tasks, ...(error !== undefined ? { error: error.slice(0, jobReportLimits.nameBytesMax * 4) } : {}),
  };
}

export class JobRegistry {
  private readonly entries = new Map<string, { report: JobReport; ownerUid: number; seenMs: number }>();

  constructor(private readonly ttlMs: number = jobReportLimits.entryTtlMs) {}

  private sweep(now: number): void {
    for (const [id, e] of this.entries) if (now - e.seenMs > this.ttlMs) this.entries.delete(id);
  }

  report(uid: number, report: JobReport): void {
    const now = Date.now();
    this.sweep(now);
    const old = this.entries.get(report.jobId);
    if (old && old.ownerUid !== uid && uid !== 0) throw new MillpondError('EACCES', `job ${report.jobId} belongs to uid ${old.ownerUid}; uid ${uid} may not report it`);
    if (!old && this.entries.size >= jobReportLimits.mgmtdJobsMax) throw new MillpondError('ENOSPC', `mgmtd holds at most ${jobReportLimits.mgmtdJobsMax} jobs`);
    this.entries.set(report.jobId, { report, ownerUid: old?.ownerUid ?? uid, seenMs: now });
  }

  /** Newest first. */
  list(): JobRecord[] {
    const now = Date.now();
    this.sweep(now);
    return [...this.entries.values()].map((e) => ({ ...e.report, ownerUid: e.ownerUid, ageMs: now - e.seenMs }))
      .sort((a, b) => b.startedMs - a.startedMs || a.jobId.localeCompare(b.jobId));
  }
}

/** The registry's handlers for mgmtd-server.ts (`uidOf` as executorHandlers has it). */
export function jobHandlers(service: { requirePrimary(): void }, registry: JobRegistry, uidOf: (p: Params) => number): Record<(typeof JOB_METHODS)[number], (p: Params) => unknown> {
  return {
    'mgmtd.jobReport': (p) => {
      service.requirePrimary();
      const report = decodeJobReport(p);
      registry.report(uidOf(p), report);
      return null;
    },
    'mgmtd.jobs': () => {
      service.requirePrimary();
      return { jobs: registry.list() };
    },
  };
}

export async function reportJob(client: MgmtdClient, report: JobReport): Promise<void> {
  await client.call('mgmtd.jobReport', { ...report });
}

export async function listJobs(client: MgmtdClient): Promise<JobRecord[]> {
  const r = await client.call('mgmtd.jobs', {}) as { jobs: JobRecord[] };
  return r.jobs;
}
