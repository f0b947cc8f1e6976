/**
 * Tells mgmtd about a running job (mgmtd.jobReport, src/cluster/jobs.ts) so the console and
 * `millpond status` show its tasks: state, attempts, where each ran and the bytes it read and
 * wrote through millpond.
 *
 * Contract: reporting never slows or fails the job. The scheduler's calls only change an
 * in-memory table and return; a send goes out at most once per jobReportLimits.reportIntervalMs
 * and never two at once (a change during a send is sent after it); a send's failure is counted
 * and dropped. The job's final state is sent once the last send in flight ends (`finish`
 * returns at once; `settled` is for tests and shutdown, which may wait on it).
 */
import { jobReportLimits } from '../../limits.js';
import type { JobReport, JobState, JobTaskReport } from '../../cluster/jobs.js';
import type { TaskResult } from './task-spec.js';

export type JobReportSink = (report: JobReport) => Promise<void>;

export class JobReporter {
  private readonly tasks = new Map<string, JobTaskReport>();
  private readonly startedMs = Date.now();
  private state: JobState = 'running';
  private error: string | undefined;
  private sending: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastSentMs = 0;
  private dirty = false;
  /** Sends that failed (mgmtd unreachable, refused): dropped, never retried beyond the next change. */
  failures = 0;
  sends = 0;

  /** `tasks`: every task of the job in plan order; `reused` ones are done from an earlier run. */
  constructor(private readonly sink: JobReportSink, private readonly jobId: string, private readonly target: string,
    tasks: Array<{ key: string; stage: string; task: number; reused: boolean }>) {
    for (const t of tasks) this.tasks.set(t.key, { key: t.key, stage: t.stage, task: t.task, state: t.reused ? 'reused' : 'pending', attempts: 0 });
    this.changed();
  }

  started(key: string, attempt: number): void {
    this.update(key, { state: 'running', attempts: attempt });
  }

  /** An attempt failed; `final` when the task will not be tried again. */
  attemptFailed(key: string, final: boolean): void {
    this.update(key, { state: final ? 'failed' : 'pending' });
  }

  done(key: string, result: Pick<TaskResult, 'placement' | 'readBytes' | 'writtenBytes'>): void {
    const { placement, readBytes, writtenBytes } = result;
    this.update(key, {
      state: 'done', ...(placement ? { host: placement.host, executor: placement.executor, pid: placement.pid } : {}),
      ...(readBytes !== undefined ? { readBytes } : {}), ...(writtenBytes !== undefined ? { writtenBytes } : {}),
    });
  }

  finish(state: 'done' | 'failed', error?: string): void {
    this.state = state;
    this.error = error;
    this.changed(true);
  }

  /** True once the job ended and its last report went out (or failed). */
  get idle(): boolean {
    return this.state !== 'running' && !this.sending && !this.timer;
  }

  /** Resolves when no send is in flight or due. */
  async settled(): Promise<void> {
    while (this.sending || this.timer) await (this.sending ?? new Promise((r) => setTimeout(r, 10)));
  }

  private update(key: string, change: Partial<JobTaskReport>): void {
    const t = this.tasks.get(key);
    if (!t) return;
    Object.assign(t, change);
    this.changed();
  }

  private changed(now = false): void {
    this.dirty = true;
    if (this.sending || this.timer) return;
    const waitMs = now ? 0 : Math.max(0, this.lastSentMs + jobReportLimits.reportIntervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.send();
    }, waitMs);
    // A running job's reports must not keep the process alive; the final one may (briefly, bounded by its timeout).
    if (this.state === 'running') this.timer.unref();
  }

  private send(): void {
    this.dirty = false;
    this.lastSentMs = Date.now();
    const all = [...this.tasks.values()];
    const report: JobReport = {
      jobId: this.jobId, target: this.target, state: this.state, startedMs: this.startedMs, tasksTotal: all.length,
      tasks: all.slice(0, jobReportLimits.tasksPerReportMax).map((t) => ({ ...t })),
      ...(this.error !== undefined ? { error: this.error.slice(0, 1024) } : {}),
    };
    this.sends++;
    this.sending = this.sink(report).catch(() => { this.failures++; }).finally(() => {
      this.sending = undefined;
      if (this.dirty) this.changed(this.state !== 'running');
    });
  }
}

