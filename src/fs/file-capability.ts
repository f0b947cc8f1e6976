/**
 * The data-plane capability of one open file (design §10): what FileData installs in the
 * native client for each chunk read and write. Meta's open hands it out with an expiry; past half its lifetime the
 * next use renews it first (long reads and writes never meet an expired one), and a server's
 * EAUTH "capability expired" (clocks disagree) renews at once. Renewing re-asks meta, which
 * checks permissions again: a user who lost access loses it on the data plane within one
 * lifetime.
 */
import { decodeCapability } from '../auth/capability.js';
import { MillpondError } from '../errors.js';

export class FileCapability {
  private wire: Buffer | undefined;
  private renewAtMs = Infinity;
  private renewing: Promise<void> | undefined;

  /** `renew` returns a fresh capability for the same inode (undefined: meta gives none). */
  constructor(wire: Buffer | undefined, private readonly renew: () => Promise<Buffer | undefined>) {
    this.install(wire);
  }

  /** The capability held now, as it is (undefined when meta gives none). */
  get current(): Buffer | undefined {
    return this.wire;
  }

  /** The capability to send now (undefined when meta gives none: authentication is off). */
  async get(): Promise<Buffer | undefined> {
    if (this.wire && Date.now() >= this.renewAtMs) await this.refresh();
    return this.wire;
  }

  /** Renews now; concurrent callers share one renewal. */
  refresh(): Promise<void> {
    this.renewing ??= this.renew().then((w) => this.install(w)).finally(() => { this.renewing = undefined; });
    return this.renewing;
  }

  /** Runs `io` with the capability; on a server's EAUTH for an expired one, renews and retries once. */
  async use<T>(io: (capability: Buffer | undefined) => Promise<T>): Promise<T> {
    const capability = await this.get();
    try {
      return await io(capability);
    } catch (err) {
      if (!capability || !(err instanceof MillpondError) || err.code !== 'EAUTH' || !/expired/.test(err.message)) throw err;
      await this.refresh();
      return io(this.wire);
    }
  }

  private install(wire: Buffer | undefined): void {
    this.wire = wire;
    if (!wire) {
      this.renewAtMs = Infinity;
      return;
    }
    const now = Date.now();
    this.renewAtMs = now + Math.max(0, decodeCapability(wire).expiresMs - now) / 2;
  }
}
