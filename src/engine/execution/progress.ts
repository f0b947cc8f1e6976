/** The progress line of a running job (stderr, TTY only) and the summary at its end. */
import { engineLimits } from '../../limits.js';

export interface JobSummary {
  jobId: string;
  /** The node the terminal call asked for. */
  target: string;
  /** Tasks of the plan up to the target. */
  tasksTotal: number;
  /** Tasks that ran in this call (each counted once, however many attempts). */
  tasksRun: number;
  /** Tasks whose completed outputs were reused (an earlier call or an earlier run of the job). */
  tasksSkipped: number;
  /** Attempts that failed and were retried. */
  retries: number;
  /** Second attempts started beside stragglers (cluster executor). */
  speculativeAttempts: number;
  /** Of those, the ones that finished first. */
  speculativeWins?: number;
  /** Where each task that ran in this call ran (task key -> host, executor, pid). */
  placements?: Record<string, { host: string; executor: string; pid: number }>;
  rowsWritten: number;
  bytesWritten: number;
  elapsedMs: number;
  bytesPerSec: number;
}

export class Progress {
  private done = 0;
  private bytes = 0;
  private lastDrawMs = 0;
  private readonly startedMs = Date.now();
  private drawn = false;

  constructor(private readonly total: number, private readonly enabled: boolean) {}

  taskDone(bytes: number): void {
    this.done++;
    this.bytes += bytes;
    this.draw(false);
  }

  private draw(force: boolean): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastDrawMs < engineLimits.progressIntervalMs) return;
    this.lastDrawMs = now;
    const seconds = Math.max((now - this.startedMs) / 1000, 1e-3);
    process.stderr.write(`\r\x1b[Ktasks ${this.done}/${this.total}  ${formatBytes(this.bytes)}  ${formatBytes(this.bytes / seconds)}/s  ${seconds.toFixed(1)} s`);
    this.drawn = true;
  }

  finish(summary: JobSummary): void {
    if (!this.enabled) return;
    if (this.drawn) process.stderr.write('\r\x1b[K');
    process.stderr.write(
      `job ${summary.jobId}: ${summary.tasksRun} tasks run, ${summary.tasksSkipped} reused, ${summary.retries} retried; ` +
      `${summary.rowsWritten} rows, ${formatBytes(summary.bytesWritten)} in ${(summary.elapsedMs / 1000).toFixed(2)} s ` +
      `(${formatBytes(summary.bytesPerSec)}/s)\n`);
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
