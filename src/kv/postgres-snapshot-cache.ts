/**
 * What PostgresKv's shared one-statement reads found, kept while PostgreSQL's snapshot stays
 * the same, so that a burst of stats reads the keys of its directories once.
 *
 * Every shared read's statement also returns its snapshot (pg_current_snapshot(): xmin, xmax
 * and the transactions in progress). Two statements with equal snapshots see the same rows:
 * a commit in between, by any server on the database, either moves xmax (PostgreSQL sets it
 * past the latest completed transaction) or takes its transaction out of the in-progress
 * list. A read-only statement takes no transaction id, so stats alone leave it as it is.
 *
 * Contract: every entry was read under `snapshot`. A read may use entries only if its own
 * statement then returns that same snapshot; otherwise what it took from here is dropped and
 * it reads all its keys again (PostgresKv.readKeys). The cache is used only once confirmed, by
 * a later statement that returned the same snapshot, and not after this server's own writes:
 * where reads and writes interleave the snapshot moves between most reads, and such a read
 * would pay that second statement each time.
 */
import { BoundedCache } from '../bounded-cache.js';
import { sharedValues } from './kv.js';

export interface KeptValues {
  /** The snapshot the values hold under. */
  snapshot: string;
  /** By keyId: a value, or null for a key known absent. */
  values: Map<string, Buffer | null>;
}

export class SnapshotCache {
  private snapshot: string | undefined;
  private confirmed = false;
  private readonly values: BoundedCache<string, Buffer | null>;
  /** Keys served from here, and reads that found the snapshot moved (profiling, tests). */
  keysServed = 0;
  stale = 0;

  constructor(entriesMax: number) {
    this.values = new BoundedCache(entriesMax);
  }

  /** The kept values among `ids`, or undefined when the cache is not in use now. */
  lookup(ids: Iterable<string>): KeptValues | undefined {
    if (!this.confirmed || this.snapshot === undefined) return undefined;
    const values = new Map<string, Buffer | null>();
    for (const id of ids) {
      const value = this.values.get(id);
      if (value === undefined) continue;
      // Handed out again from now on: readers may keep what they derive from it (kv.ts). Not
      // marked when first read, as most values (a new file's) are read once.
      if (value) sharedValues.add(value);
      values.set(id, value);
    }
    return { snapshot: this.snapshot, values };
  }

  /** A statement under `snapshot` read the keys `ids` and found `found` (a key absent from it: absent). */
  learn(snapshot: string, ids: Iterable<string>, found: Map<string, Buffer>): void {
    if (snapshot !== this.snapshot) {
      this.values.clear();
      this.snapshot = snapshot;
      this.confirmed = false;
    } else {
      this.confirmed = true;
    }
    for (const id of ids) this.values.set(id, found.get(id) ?? null);
  }

  /** This server wrote (or may have): the snapshot has moved, so the next read should not rely on the cache. */
  wrote(): void {
    this.confirmed = false;
  }
}
