/**
 * A token bucket over bytes: what bounds a copy's bytes per second (a rebalance move's resync,
 * design §9). take(n) debits n at once and waits until the balance is back at zero, so n bytes
 * taken in total from an empty bucket take at least (n - burst) / rate seconds, whatever the
 * sizes of the pieces (a piece larger than the burst is allowed: it is paid for afterwards).
 * The rate may change meanwhile (routing updates a move's share); undefined means no bound.
 * Concurrent takers share the bucket (the parallel copies of one resync).
 */
import { adminLimits } from '../limits.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class TokenBucket {
  /** Bytes that may go now; negative: debt that takers wait off. Starts empty. */
  private tokens = 0;
  private lastMs = Date.now();

  /** `rate()`: the current bound in bytes per second, read at every take (undefined: none). */
  constructor(private readonly rate: () => number | undefined) {}

  private refill(bytesPerS: number): void {
    const now = Date.now();
    const burst = Math.max(1, (bytesPerS * adminLimits.resyncBurstMs) / 1000);
    this.tokens = Math.min(burst, this.tokens + ((now - this.lastMs) / 1000) * bytesPerS);
    this.lastMs = now;
  }

  /** Debits `bytes`; resolves once the bucket is out of debt (at once when unbounded). */
  async take(bytes: number, cancelled?: () => boolean): Promise<void> {
    let bytesPerS = this.rate();
    if (bytesPerS === undefined) {
      this.lastMs = Date.now();
      return;
    }
    this.refill(bytesPerS);
    this.tokens -= bytes;
    for (;;) {
      if (this.tokens >= 0 || cancelled?.()) return;
      // Wait off the debt in slices, so a rate change (or a cancel) is seen within a second.
      await sleep(Math.min(1_000, Math.ceil((-this.tokens / bytesPerS) * 1000)));
      bytesPerS = this.rate();
      if (bytesPerS === undefined) return;
      this.refill(bytesPerS);
    }
  }
}
