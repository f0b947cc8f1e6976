/**
 * Group transactions on PostgreSQL. The transactions PostgresKv.transact is handed in one
 * event-loop turn (the mutations of one batch of requests) run as the members of one
 * serializable transaction, in lockstep, and share its round trips and its COMMIT:
 * - a round starts once every member still running waits for a statement: the gets of all of
 *   them are one SELECT, their inserts one INSERT of many rows, each scan a statement of its
 *   own, all in one Pipeline (one round trip; BEGIN goes with the first round);
 * - puts, deletes and claims stay with their member until the end, when all members' go in one
 *   statement with COMMIT.
 * So n creates (a read of the path, the insert of the name, the writes) cost 3 round trips
 * instead of 3n, and PostgreSQL runs 4 statements for them instead of 5n.
 *
 * The outcome must be the members' one after another, in their order. So no member may see
 * another's effect: the run records the keys each reads (gets, inserts, claims, scanned
 * ranges) and writes, and a member that reads what another writes, or writes what another
 * read, abandons the group. So does a claimed key present at COMMIT, or any other failure
 * of PostgreSQL but one: an abandoned group rolls back, settles no one, and each member runs
 * again alone (KvBackend.transact's fn may run more than once). A serialization failure or
 * deadlock (with another server's or group's transaction) rolls the group back and it runs
 * again as a group, at most metaLimits.postgresGroupAttemptsMax times, then each alone. Writes of one key
 * by several members that none of them read are blind: the last member's value is written,
 * as in that order (the liveness record each open of one client puts).
 *
 * A member whose fn throws gets its error; its writes are dropped, and the rows its inserts
 * added (which no other member read) are deleted with the COMMIT.
 */
import type pg from 'pg';
import { metaLimits } from '../limits.js';
import { claimedKeyPresent, keyId, type KvPair, type KvTx } from './kv.js';
import { pipeline, RETRYABLE, SQL, writeStep, type PendingWrite, type Step } from './postgres-wire.js';

/** A transaction waiting for PostgresKv.transact: its fn, and how its promise is settled. */
export interface Transaction {
  fn: (tx: KvTx) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

interface Settle<T> { resolve: (value: T) => void; reject: (err: unknown) => void }

type Request =
  | { kind: 'get'; keys: Buffer[]; settle: Settle<Map<string, Buffer>> }
  | { kind: 'insert'; key: Buffer; value: Buffer; member: Member; settle: Settle<Buffer | undefined> }
  | { kind: 'scan'; start: Buffer; end: Buffer; startId: string; endId: string; limit: number; member: Member; settle: Settle<KvPair[]> };

/** What a member's statement fails with once its group is abandoned (the member runs again alone). */
class Abandoned extends Error {}

class Member {
  requests: Request[] = [];
  finished = false;
  outcome: { ok: true; value: unknown } | { ok: false; err: unknown } | undefined;
  /** This member's puts, deletes and claims by key id (sent with COMMIT). */
  readonly writes = new Map<string, PendingWrite>();
  /** Keys its inserts added: deleted at COMMIT if its fn throws. */
  readonly inserted: Buffer[] = [];

  constructor(readonly transaction: Transaction, private readonly group: Group) {}

  private ask<T>(make: (settle: Settle<T>) => Request): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.requests.push(make({ resolve, reject }));
      this.group.poke();
    });
  }

  private write(key: Buffer, write: PendingWrite, alsoReads: boolean): void {
    const h = keyId(key);
    if (alsoReads) this.group.touch(this, h, false);
    this.group.touch(this, h, true);
    this.writes.set(h, write);
  }

  readonly api: KvTx = {
    get: async (key) => (await this.api.getMany([key]))[0],
    getMany: async (keys, given) => {
      if (keys.length > metaLimits.getManyKeysMax) throw new RangeError(`getMany reads at most ${metaLimits.getManyKeysMax} keys`);
      const ids = given ?? keys.map((k) => keyId(k));
      for (const h of ids) this.group.touch(this, h, false);
      const missing = keys.filter((_, i) => !this.writes.has(ids[i]!));
      const found = missing.length > 0 ? await this.ask<Map<string, Buffer>>((settle) => ({ kind: 'get', keys: missing, settle })) : undefined;
      return ids.map((h) => {
        const mine = this.writes.get(h);
        return mine ? mine.value ?? undefined : found!.get(h);
      });
    },
    put: async (key, value) => this.write(key, { key, value }, false),
    delete: async (key) => this.write(key, { key, value: null }, false),
    claim: async (key, value) => {
      const mine = this.writes.get(keyId(key));
      if (mine?.value) throw claimedKeyPresent();
      // Deleted earlier by this member: absent at the commit, so a plain put.
      this.write(key, mine ? { key, value } : { key, value, claim: true }, true);
    },
    insert: async (key, value) => {
      const h = keyId(key);
      const mine = this.writes.get(h);
      this.group.touch(this, h, false);
      if (mine?.value) return mine.value;
      if (mine) { // deleted earlier by this member: absent now
        this.write(key, { key, value }, false);
        return undefined;
      }
      this.group.touch(this, h, true);
      return this.ask<Buffer | undefined>((settle) => ({ kind: 'insert', key, value, member: this, settle }));
    },
    scan: async (start, end, limit) => {
      const startId = keyId(start);
      const endId = keyId(end);
      this.group.touchRange(this, startId, endId);
      return this.ask<KvPair[]>((settle) => ({ kind: 'scan', start, end, startId, endId, limit, member: this, settle }));
    },
  };

  /** `rows` (the first limit + n of the range, n this member's writes in it) with its own writes applied, cut to `limit`. */
  overlay(rows: KvPair[], start: string, end: string, limit: number): KvPair[] {
    const byId = new Map<string, KvPair>(rows.map((row) => [keyId(row[0]), row]));
    for (const [h, w] of this.writes) {
      if (h < start || h >= end) continue;
      if (w.value === null) byId.delete(h);
      else byId.set(h, [w.key, w.value]);
    }
    return [...byId.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).slice(0, limit).map(([, row]) => row);
  }

  ownWritesIn(start: string, end: string): number {
    let n = 0;
    for (const h of this.writes.keys()) if (h >= start && h < end) n++;
    return n;
  }
}

export class Group {
  private readonly members: Member[];
  private began = false;
  private abandoned = false;
  /** What PostgreSQL failed with, if it did. */
  private failure: unknown;
  private live = true;
  /** key id -> the members that read it / wrote it. */
  private readonly readers = new Map<string, Set<Member>>();
  private readonly writers = new Map<string, Set<Member>>();
  private readonly scanned: Array<{ member: Member; start: string; end: string }> = [];
  private wake: (() => void) | undefined;

  constructor(private readonly client: pg.PoolClient, transactions: Transaction[]) {
    this.members = transactions.map((t) => new Member(t, this));
  }

  /**
   * Runs the members to the end. 'committed': each member is settled with its outcome.
   * Otherwise rolled back and nobody settled: 'conflicted' when PostgreSQL found a
   * serialization failure or deadlock (the group may run again), 'abandoned' for anything else
   * (each member is to run alone).
   */
  async run(): Promise<'committed' | 'conflicted' | 'abandoned'> {
    for (const m of this.members) {
      void Promise.resolve().then(() => m.transaction.fn(m.api)).then(
        (value) => { m.outcome = { ok: true, value }; },
        (err: unknown) => { m.outcome = { ok: false, err }; },
      ).finally(() => {
        m.finished = true;
        this.poke();
      });
    }
    try {
      for (;;) {
        // Every member has now either finished or asked for its next statement, unless it
        // awaits something else: the round goes without it, and it joins a later one.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const asking = this.members.filter((m) => m.requests.length > 0);
        if (asking.length > 0) {
          await this.round(asking.flatMap((m) => m.requests.splice(0)));
          continue;
        }
        if (this.members.every((m) => m.finished)) break;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
      if (!this.abandoned) {
        await this.commit();
        for (const m of this.members) {
          const outcome = m.outcome!;
          if (outcome.ok) m.transaction.resolve(outcome.value);
          else m.transaction.reject(outcome.err);
        }
        return 'committed';
      }
    } catch (err) {
      this.failure = err; // the COMMIT failed (a serialization failure, a claimed key present)
    } finally {
      this.live = false;
    }
    if (this.began) await this.client.query({ ...SQL.rollback, values: [] }).catch(() => {});
    const code = (this.failure as { code?: string } | undefined)?.code;
    return code !== undefined && RETRYABLE.has(code) ? 'conflicted' : 'abandoned';
  }

  /** A member asked for a statement or finished. */
  poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Records that `m` reads (or writes) key `h`; abandons the group when another member wrote (or read) it. */
  touch(m: Member, h: string, write: boolean): void {
    this.check();
    const others = (set: Set<Member> | undefined) => set !== undefined && (set.size > 1 || !set.has(m));
    if (write ? others(this.readers.get(h)) || this.scanned.some((s) => s.member !== m && h >= s.start && h < s.end) : others(this.writers.get(h))) {
      throw this.abandon();
    }
    const map = write ? this.writers : this.readers;
    let set = map.get(h);
    if (!set) map.set(h, (set = new Set()));
    set.add(m);
  }

  /** Records that `m` scans [start, end); abandons the group when another member wrote a key in it. */
  touchRange(m: Member, start: string, end: string): void {
    this.check();
    for (const [h, set] of this.writers) {
      if (h >= start && h < end && (set.size > 1 || !set.has(m))) throw this.abandon();
    }
    this.scanned.push({ member: m, start, end });
  }

  private check(): void {
    if (!this.live) throw new Error('KvTx used after its transaction ended');
    if (this.abandoned) throw new Abandoned('the group transaction was abandoned');
  }

  private abandon(): Abandoned {
    this.abandoned = true;
    return new Abandoned('the group transaction was abandoned');
  }

  /** One round trip for `requests`: their gets in one SELECT, their inserts in one INSERT, each scan its own statement. */
  private async round(requests: Request[]): Promise<void> {
    if (this.abandoned) {
      for (const r of requests) r.settle.reject(new Abandoned('the group transaction was abandoned'));
      return;
    }
    const steps: Step[] = this.began ? [] : [{ statement: SQL.beginWrite, values: [] }];
    const firstOwn = steps.length;
    const gets = requests.filter((r) => r.kind === 'get');
    const inserts = requests.filter((r) => r.kind === 'insert');
    const scans = requests.filter((r) => r.kind === 'scan');
    const keys = [...new Map(gets.flatMap((g) => g.keys.map((k) => [keyId(k), k] as const))).values()];
    for (let i = 0; i < keys.length; i += metaLimits.getManyKeysMax) {
      steps.push({ statement: SQL.getMany, values: [keys.slice(i, i + metaLimits.getManyKeysMax)] });
    }
    const getSteps = steps.length - firstOwn;
    if (inserts.length > 0) steps.push({ statement: SQL.insertMany, values: [inserts.map((r) => r.key), inserts.map((r) => r.value)] });
    for (const s of scans) {
      const extra = s.member.ownWritesIn(s.startId, s.endId);
      steps.push({ statement: SQL.scan, values: [s.start, s.end, s.limit + extra] });
    }
    try {
      const results = await pipeline(this.client, steps);
      this.began = true;
      const found = new Map<string, Buffer>();
      for (const result of results.slice(firstOwn, firstOwn + getSteps)) {
        for (const [k, v] of result.rows as KvPair[]) found.set(keyId(k), v);
      }
      for (const g of gets) g.settle.resolve(found);
      let next = firstOwn + getSteps;
      if (inserts.length > 0) await this.answerInserts(inserts, results[next++]!.rows as Array<[Buffer]>);
      for (const s of scans) s.settle.resolve(s.member.overlay(results[next++]!.rows as KvPair[], s.startId, s.endId, s.limit));
    } catch (err) {
      this.began = true; // BEGIN may have run: ROLLBACK
      this.abandoned = true;
      this.failure = err;
      for (const r of requests) r.settle.reject(new Abandoned('the group transaction was abandoned'));
    }
  }

  /** Inserts that added their row answer undefined; the others the value present (one more statement). */
  private async answerInserts(inserts: Array<Extract<Request, { kind: 'insert' }>>, added: Array<[Buffer]>): Promise<void> {
    const addedIds = new Set(added.map(([k]) => keyId(k)));
    const present = inserts.filter((r) => !addedIds.has(keyId(r.key)));
    const values = new Map<string, Buffer>();
    if (present.length > 0) {
      const [result] = await pipeline(this.client, [{ statement: SQL.getMany, values: [present.map((r) => r.key)] }]);
      for (const [k, v] of result!.rows as KvPair[]) values.set(keyId(k), v);
    }
    for (const r of inserts) {
      const h = keyId(r.key);
      if (addedIds.has(h)) {
        r.member.inserted.push(r.key);
        r.settle.resolve(undefined);
      } else {
        r.settle.resolve(values.get(h));
      }
    }
  }

  /** Every finished member's writes (and the undoing of a failed one's inserts) with COMMIT, one round trip. */
  private async commit(): Promise<void> {
    const writes = new Map<string, PendingWrite>();
    for (const m of this.members) {
      if (m.outcome!.ok) for (const [h, w] of m.writes) writes.set(h, w); // a later member's blind write wins
      else for (const key of m.inserted) writes.set(keyId(key), { key, value: null });
    }
    const write = writeStep(writes.values());
    if (!this.began && !write) return;
    const steps: Step[] = this.began ? [] : [{ statement: SQL.beginWrite, values: [] }];
    if (write) steps.push(write);
    steps.push({ statement: SQL.commit, values: [] });
    this.began = true;
    await pipeline(this.client, steps);
  }
}
