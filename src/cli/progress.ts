/**
 * Progress of a long CLI operation (fs put/get/cp, admin drain/rebalance) on stderr.
 *
 * Only on a terminal: one line redrawn in place, at most every kRedrawMs:
 *   put /data/x [##########....................]  33% 96.0 MiB/288.0 MiB 41.2 MiB/s ETA 5s
 * Elsewhere (a pipe, a log file) it draws nothing: a caller that reports there prints its own
 * plain lines (admin.ts prints one per change).
 *
 * The rate is over the last kRateWindowMs (samples kept at most every kSampleMs, so the window
 * holds a bounded number), so it follows a transfer that speeds up or stalls; the ETA is what is
 * left at that rate ("-" until something moved).
 */
import { formatBytes } from '../engine/execution/progress.js';

export { formatBytes };

const kRedrawMs = 100;
const kRateWindowMs = 5_000;
const kSampleMs = 250;
const kBarWidth = 30;

export interface ProgressOptions {
  /** 'bytes' shows sizes (MiB) and MiB/s; 'count' shows n/total and `<unit>/s`. */
  unit?: 'bytes' | 'count';
  /** For 'count': what is counted ("replicas"). */
  unitName?: string;
  /** Draw nothing on a terminal below this total (a small copy needs no bar). */
  minTotal?: number;
  /** Defaults to process.stderr; tests give a stream of their own. */
  out?: { isTTY?: boolean; write(text: string): unknown };
}

export class Progress {
  private doneUnits = 0;
  private drawnMs = 0;
  private readonly samples: Array<{ atMs: number; done: number }> = [];
  private readonly tty: boolean;
  private readonly out: NonNullable<ProgressOptions['out']>;

  constructor(private readonly label: string, private totalUnits: number, private readonly options: ProgressOptions = {}) {
    this.out = options.out ?? process.stderr;
    this.tty = this.out.isTTY === true;
  }

  /** Whether it draws: on a terminal, for a total worth a bar. */
  get enabled(): boolean {
    return this.tty && this.totalUnits >= (this.options.minTotal ?? 0);
  }

  add(units: number): void {
    this.update(this.doneUnits + units);
  }

  /** Sets how much is done (and the total, when it changed: a rebalance's estimate moves). */
  update(doneUnits: number, totalUnits = this.totalUnits): void {
    this.doneUnits = doneUnits;
    this.totalUnits = totalUnits;
    const now = Date.now();
    const last = this.samples[this.samples.length - 1];
    if (!last || now - last.atMs >= kSampleMs) this.samples.push({ atMs: now, done: doneUnits });
    while (this.samples.length > 2 && now - this.samples[1]!.atMs > kRateWindowMs) this.samples.shift();
    if (!this.enabled) return;
    if (now - this.drawnMs >= kRedrawMs) this.draw(now);
  }

  finish(): void {
    if (!this.enabled) return;
    this.draw(Date.now());
    this.out.write('\n');
  }

  /** Units a second over the window; 0 before two samples. */
  rate(nowMs = Date.now()): number {
    const first = this.samples[0];
    if (!first) return 0;
    const seconds = (nowMs - first.atMs) / 1000;
    return seconds > 0.05 ? Math.max(0, (this.doneUnits - first.done) / seconds) : 0;
  }

  /** The line as drawn (without the terminal's carriage return). */
  text(nowMs = Date.now()): string {
    const bytes = this.options.unit !== 'count';
    const total = this.totalUnits;
    const ratio = total > 0 ? Math.min(1, this.doneUnits / total) : 1;
    const filled = Math.round(ratio * kBarWidth);
    const rate = this.rate(nowMs);
    const left = Math.max(0, total - this.doneUnits);
    const eta = left === 0 ? '0s' : rate > 0 ? formatSeconds(left / rate) : '-';
    const amount = bytes ? `${formatBytes(this.doneUnits)}/${formatBytes(total)}` : `${this.doneUnits}/${total} ${this.options.unitName ?? ''}`.trimEnd();
    const speed = bytes ? `${formatBytes(rate)}/s` : `${rate.toFixed(rate < 10 ? 2 : 1)} ${this.options.unitName ?? ''}/s`.replace(' /s', '/s');
    return `${this.label} [${'#'.repeat(filled)}${'.'.repeat(kBarWidth - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}% ${amount} ${speed} ETA ${eta}`;
  }

  private draw(nowMs: number): void {
    this.drawnMs = nowMs;
    this.out.write(`\r\x1b[K${this.text(nowMs)}`);
  }
}

/** 42s, 3m05s, 2h07m. */
export function formatSeconds(s: number): string {
  const t = Math.ceil(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}
