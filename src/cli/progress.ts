/** A one-line progress bar on stderr for long copies (only when stderr is a terminal). */
export class Progress {
  private doneBytes = 0;
  private readonly startMs = Date.now();
  private lastDrawMs = 0;
  private readonly enabled: boolean;

  constructor(private readonly label: string, private readonly totalBytes: number) {
    this.enabled = process.stderr.isTTY === true && totalBytes >= 8 * 1024 * 1024;
  }

  add(bytes: number): void {
    this.doneBytes += bytes;
    const now = Date.now();
    if (this.enabled && now - this.lastDrawMs >= 100) {
      this.lastDrawMs = now;
      this.draw();
    }
  }

  finish(): void {
    if (this.enabled) {
      this.draw();
      process.stderr.write('\n');
    }
  }

  private draw(): void {
    const width = 30;
    const ratio = this.totalBytes > 0 ? Math.min(1, this.doneBytes / this.totalBytes) : 1;
    const filled = Math.round(ratio * width);
    const seconds = Math.max(0.001, (Date.now() - this.startMs) / 1000);
    const rate = this.doneBytes / seconds / 1e6;
    process.stderr.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
      `${(ratio * 100).toFixed(0).padStart(3)}% ${formatBytes(this.doneBytes)} ${rate.toFixed(1)} MB/s`);
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}
