// The KV contract both backends keep (src/kv/kv.ts), on real SQLite and PostgreSQL: claims,
// a transaction's own writes seen by its later statements, and (PostgreSQL) pipelined
// statements whose failure leaves the pooled connection clean for the next transaction.
// Transactions begun in one turn share a commit on both (SQLite's group commit, PostgreSQL's
// group transactions): each must still see only its own writes, and fail alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MillpondError } from '../../src/errors.js';
import type { KvBackend } from '../../src/kv/kv.js';
import { PostgresKv } from '../../src/kv/postgres-kv.js';
import { metaLimits } from '../../src/limits.js';
import { backends, type OpenedBackend } from '../meta/support/backends.js';

const b = (text: string) => Buffer.from(text);

async function code(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

for (const backend of backends) {
  describe.skipIf(backend.skip)(`KV transactions on ${backend.name}`, () => {
    let opened: OpenedBackend;
    let kv: KvBackend;
    beforeAll(async () => {
      opened = await backend.open();
      kv = opened.kv;
    });
    afterAll(async () => opened?.cleanup());

    const value = (key: string) => kv.read((tx) => tx.get(b(key)));
    // A stat's kind of read: on PostgreSQL one statement shared with other reads (and its snapshot cache).
    const shared = (key: string) => kv.read((tx) => tx.get(b(key)), { oneStatement: true });
    // Both kinds of read, which must agree.
    const both = async (key: string) => {
      const [plain, one] = [await value(key), await shared(key)];
      expect(one).toEqual(plain);
      return plain;
    };

    it('a claim of an absent key commits with the transaction; of a present key it fails with EEXIST and nothing of the transaction commits', async () => {
      await kv.transact(async (tx) => {
        await tx.put(b('claim/other'), b('1'));
        await tx.claim(b('claim/a'), b('first'));
      });
      expect((await value('claim/a'))?.toString()).toBe('first');
      expect(await code(kv.transact(async (tx) => {
        await tx.put(b('claim/other'), b('2'));
        await tx.put(b('claim/new'), b('x'));
        await tx.claim(b('claim/a'), b('second'));
      }))).toBe('EEXIST');
      expect((await value('claim/a'))?.toString()).toBe('first');
      expect((await value('claim/other'))?.toString()).toBe('1');
      expect(await value('claim/new')).toBeUndefined();
      // Deleted earlier in the same transaction, the key is absent: the claim writes it.
      await kv.transact(async (tx) => {
        await tx.delete(b('claim/a'));
        await tx.claim(b('claim/a'), b('third'));
      });
      expect((await value('claim/a'))?.toString()).toBe('third');
    });

    it('of many transactions claiming one key at once, exactly one commits', async () => {
      const outcomes = await Promise.all(Array.from({ length: 16 }, (_, i) => code(kv.transact(async (tx) => {
        await tx.get(b('race/seen')); // a statement before the claim, as a mutation reads first
        await tx.claim(b('race/key'), b(String(i)));
        await tx.put(b(`race/by-${i}`), b('1'));
      }))));
      expect(outcomes.filter((c) => c === undefined)).toHaveLength(1);
      expect(outcomes.filter((c) => c !== undefined).every((c) => c === 'EEXIST')).toBe(true);
      const winner = Number((await value('race/key'))!.toString());
      expect(outcomes[winner]).toBeUndefined();
      const written = await kv.read((tx) => tx.scan(b('race/by-'), b('race/by.'), 100));
      expect(written.map(([k]) => k.toString())).toEqual([`race/by-${winner}`]);
    });

    it('later statements of a transaction see its writes; a transaction that fails midway leaves the next one clean', async () => {
      const seen = await kv.transact(async (tx) => {
        await tx.put(b('own/1'), b('a'));
        await tx.put(b('own/2'), b('b'));
        await tx.delete(b('own/1'));
        const scanned = await tx.scan(b('own/'), b('own0'), 10);
        return { scanned: scanned.map(([k, v]) => `${k}=${v}`), got: (await tx.get(b('own/2')))?.toString() };
      });
      expect(seen).toEqual({ scanned: ['own/2=b'], got: 'b' });
      // More failing transactions than the pool has connections, each after a statement, then
      // reads and writes on every connection again.
      for (let i = 0; i < 12; i++) {
        expect(await code(kv.transact(async (tx) => {
          await tx.getMany([b('own/2'), b('own/3')]);
          await tx.claim(b('own/2'), b('again'));
        }))).toBe('EEXIST');
      }
      await Promise.all(Array.from({ length: 12 }, (_, i) => kv.transact(async (tx) => {
        expect((await tx.get(b('own/2')))?.toString()).toBe('b');
        await tx.put(b(`own/after-${i}`), b(String(i)));
      })));
      const after = await kv.read((tx) => tx.scan(b('own/after-'), b('own/after.'), 100));
      expect(after).toHaveLength(12);
    });
    /** PostgreSQL's group counters since `before` (undefined on SQLite, which has none). */
    const groups = () => (kv instanceof PostgresKv ? { committed: kv.groupsCommitted, abandoned: kv.groupsAbandoned } : undefined);
    const since = (before: ReturnType<typeof groups>) => {
      const now = groups();
      return now && before ? { committed: now.committed - before.committed, abandoned: now.abandoned - before.abandoned } : undefined;
    };

    it('transactions begun in one turn each see only their own writes; one that throws leaves nothing, the others commit', async () => {
      await kv.transact(async (tx) => {
        await tx.put(b('turn/shared'), b('s'));
        await tx.put(b('turn/name-3'), b('old'));
      });
      const before = groups();
      const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => kv.transact(async (tx) => {
        const shared = (await tx.get(b('turn/shared')))?.toString(); // read by all, written by none
        const present = (await tx.insert(b(`turn/name-${i}`), b(`v${i}`)))?.toString();
        await tx.put(b(`turn/inode-${i}`), b(String(i)));
        if (i === 7) throw new MillpondError('EIO', 'the eighth fails after its insert and put');
        const own = await tx.getMany([b(`turn/inode-${i}`), b(`turn/name-${i}`)]);
        return [shared, present, ...own.map((v) => v?.toString())];
      })));
      outcomes.forEach((o, i) => {
        if (i === 7) {
          expect(o.status === 'rejected' && (o.reason as MillpondError).code).toBe('EIO');
          return;
        }
        const name = i === 3 ? 'old' : `v${i}`;
        expect(o.status === 'fulfilled' && o.value).toEqual(['s', i === 3 ? 'old' : undefined, String(i), name]);
      });
      const rows = await kv.read((tx) => tx.scan(b('turn/'), b('turn0'), 100));
      const names = rows.map(([k]) => k.toString());
      expect(names).not.toContain('turn/name-7');
      expect(names).not.toContain('turn/inode-7');
      expect(names.filter((n) => n.startsWith('turn/inode-'))).toHaveLength(19);
      expect((await value('turn/name-3'))?.toString()).toBe('old');
      expect(since(before) ?? { committed: 1, abandoned: 0 }).toEqual({ committed: 1, abandoned: 0 });
    });

    it('transactions of one turn that read what another writes: the outcome of each one after another', async () => {
      await kv.transact((tx) => tx.put(b('turn/counter'), b('0')));
      const before = groups();
      await Promise.all(Array.from({ length: 10 }, () => kv.transact(async (tx) => {
        const n = Number((await tx.get(b('turn/counter')))!.toString());
        await tx.put(b('turn/counter'), b(String(n + 1)));
      })));
      expect((await value('turn/counter'))?.toString()).toBe('10');
      // PostgreSQL: the group saw the overlap, gave up, and each ran alone.
      expect(since(before)?.abandoned ?? 1).toBeGreaterThanOrEqual(1);
    });

    it('writes of one key in one turn that no transaction reads: the last one begun wins', async () => {
      const before = groups();
      await Promise.all(Array.from({ length: 5 }, (_, i) => kv.transact(async (tx) => {
        await tx.put(b('turn/blind'), b(String(i)));
        await tx.put(b(`turn/blind-${i}`), b('1'));
      })));
      expect((await value('turn/blind'))?.toString()).toBe('4');
      expect((await kv.read((tx) => tx.scan(b('turn/blind-'), b('turn/blind.'), 10))).length).toBe(5);
      expect(since(before) ?? { committed: 1, abandoned: 0 }).toEqual({ committed: 1, abandoned: 0 });
    });

    it('a scan in a turn of many sees its own transaction\'s writes over the stored rows, up to its limit', async () => {
      await kv.transact(async (tx) => {
        for (const k of ['a', 'b', 'c', 'd']) await tx.put(b(`scan/${k}`), b(k.toUpperCase()));
      });
      const before = groups();
      const [scanned] = await Promise.all([
        kv.transact(async (tx) => {
          await tx.delete(b('scan/a'));
          await tx.delete(b('scan/b'));
          await tx.put(b('scan/bb'), b('new'));
          await tx.put(b('scan/c'), b('changed'));
          return (await tx.scan(b('scan/'), b('scan0'), 3)).map(([k, v]) => `${k}=${v}`);
        }),
        ...Array.from({ length: 3 }, (_, i) => kv.transact((tx) => tx.put(b(`elsewhere/${i}`), b('1')))),
      ]);
      expect(scanned).toEqual(['scan/bb=new', 'scan/c=changed', 'scan/d=D']);
      expect((await kv.read((tx) => tx.scan(b('scan/'), b('scan0'), 10))).map(([k]) => k.toString())).toEqual(['scan/bb', 'scan/c', 'scan/d']);
      expect(since(before) ?? { committed: 1, abandoned: 0 }).toEqual({ committed: 1, abandoned: 0 });
    });

    it('a claim of a key already stored, in a turn of many: that transaction fails with EEXIST, the others commit', async () => {
      await kv.transact((tx) => tx.put(b('dup/applied'), b('earlier')));
      const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => code(kv.transact(async (tx) => {
        await tx.get(b('dup/applied-seen'));
        await tx.put(b(`dup/done-${i}`), b('1'));
        await tx.claim(b(i === 2 ? 'dup/applied' : `dup/applied-${i}`), b('now'));
      }))));
      expect(outcomes).toEqual([undefined, undefined, 'EEXIST', undefined, undefined, undefined]);
      expect((await value('dup/applied'))?.toString()).toBe('earlier');
      expect(await value('dup/done-2')).toBeUndefined();
      expect((await kv.read((tx) => tx.scan(b('dup/done-'), b('dup/done.'), 10))).length).toBe(5);
    });
    it('a burst of reads is answered in groups: each read gets its own values; on SQLite the first group is answered before the next is read', async () => {
      await kv.transact(async (tx) => {
        for (let i = 0; i < 20; i++) await tx.put(b(`burst/${i}`), b(`v${i}`));
      });
      const events: string[] = [];
      const reads = Array.from({ length: 20 }, (_, i) => kv.read(async (tx) => {
        events.push(`read ${i}`);
        const [mine, next] = await tx.getMany([b(`burst/${i}`), b(`burst/${i + 1}`)]);
        // A second statement: this read runs again in a transaction of its own.
        const again = i % 7 === 3 ? await tx.get(b(`burst/${i}`)) : mine;
        return `${mine?.toString()} ${next?.toString()} ${again?.toString()}`;
      }, { oneStatement: true }).then((answer) => {
        events.push(`answered ${i}`);
        return answer;
      }));
      expect(await Promise.all(reads)).toEqual(Array.from({ length: 20 }, (_, i) => `v${i} ${i < 19 ? `v${i + 1}` : 'undefined'} v${i}`));
      // SQLite reads a group of metaLimits.sqliteReadGroupMembersMax, answers it, then reads the next
      // (PostgreSQL gathers every read's first statement, then runs its groups at once).
      if (backend.name === 'sqlite') {
        const firstAnswer = events.indexOf('answered 0');
        expect(events.slice(0, firstAnswer)).toEqual(Array.from({ length: metaLimits.sqliteReadGroupMembersMax }, (_, i) => `read ${i}`));
      }
    });

    it('a read that follows a pointer with a learned hint (a stat\'s walk) gets one snapshot\'s answer, though another server rewrites both keys between its statements', async () => {
      const other = await opened.reopen();
      await kv.transact(async (tx) => {
        await tx.put(b('walk/dir'), b('walk/old'));
        await tx.put(b('walk/old'), b('old'));
      });
      // On PostgreSQL, until the snapshot cache serves the pointer: the walk's first run then
      // takes it from there, and what it took must be dropped once the snapshot has moved.
      if (kv instanceof PostgresKv) {
        const served = kv.snapshotCache.keysServed;
        for (let attempt = 0; attempt < 50 && kv.snapshotCache.keysServed === served; attempt++) await shared('walk/dir');
      }
      // As PathHints: what the last run learned the pointer names, asked for with it next time.
      const hints = new Map<string, string>();
      let runs = 0;
      const answer = await kv.read(async (tx) => {
        runs++;
        const hinted = hints.get('walk/dir');
        const [dir, guessed] = await tx.getMany(hinted ? [b('walk/dir'), b(hinted)] : [b('walk/dir')]);
        const target = dir!.toString();
        hints.set('walk/dir', target);
        if (runs === 1) {
          // Between this run's statements: the pointer moves, and its old target changes.
          await other.transact(async (tx2) => {
            await tx2.put(b('walk/dir'), b('walk/new'));
            await tx2.put(b('walk/old'), b('changed'));
            await tx2.put(b('walk/new'), b('new'));
          });
        }
        const found = target === hinted ? guessed : await tx.get(b(target));
        return `${target} ${found?.toString()}`;
      }, { oneStatement: true });
      // SQLite's read holds its snapshot throughout; PostgreSQL's runs again with later statements.
      expect(answer).toBe(backend.name === 'sqlite' ? 'walk/old old' : 'walk/new new');
      if (backend.name === 'postgres') expect(runs).toBeLessThanOrEqual(metaLimits.postgresOneStatementRoundsMax);
    });

    it.skipIf(backend.name !== 'postgres')('groups on two servers that write-skew: PostgreSQL fails one, which runs again as a group and commits', async () => {
      const mine = kv as PostgresKv;
      const other = (await opened.reopen()) as PostgresKv;
      await kv.transact(async (tx) => {
        await tx.put(b('skew/x'), b('0'));
        await tx.put(b('skew/y'), b('0'));
      });
      const before = { conflicts: mine.conflicts + other.conflicts, committed: mine.groupsCommitted + other.groupsCommitted };
      let reads = 0;
      let bothRead!: () => void;
      const barrier = new Promise<void>((resolve) => (bothRead = resolve));
      // One group reads x and writes y, the other reads y and writes x, each beside a member
      // with a key of its own; first attempts wait until both have read, so they overlap.
      const group = (db: KvBackend, source: string, target: string, tag: string) => Promise.all([
        db.transact(async (tx) => {
          const n = Number((await tx.get(b(source)))!.toString());
          if (++reads === 2) bothRead();
          await Promise.race([barrier, new Promise((resolve) => setTimeout(resolve, 2_000))]);
          await tx.put(b(target), b(String(n + 1)));
        }),
        db.transact((tx) => tx.put(b(`skew/${tag}`), b('1'))),
      ]);
      await Promise.all([group(mine, 'skew/x', 'skew/y', 'a'), group(other, 'skew/y', 'skew/x', 'b')]);
      // Serializable: one ran after the other and read its write (1 + 2), never both from 0 (1 + 1).
      const sum = Number((await value('skew/x'))!.toString()) + Number((await value('skew/y'))!.toString());
      expect(sum).toBe(3);
      expect((await value('skew/a'))?.toString()).toBe('1');
      expect((await value('skew/b'))?.toString()).toBe('1');
      expect(mine.conflicts + other.conflicts - before.conflicts).toBeGreaterThanOrEqual(1);
      expect(mine.groupsCommitted + other.groupsCommitted - before.committed).toBe(2); // the failed group, again as a group
    });

    it('reads see every commit: their own backend\'s, and another connection\'s on the same database, after the values were read before', async () => {
      const other = await opened.reopen();
      const key = b('seen/a');
      await kv.transact((tx) => tx.put(key, b('1')));
      expect(await both('seen/a')).toEqual(b('1'));
      expect(await both('seen/a')).toEqual(b('1')); // read again (on SQLite, from its read cache)
      await other.transact((tx) => tx.put(key, b('2')));
      expect(await both('seen/a')).toEqual(b('2'));
      await kv.transact((tx) => tx.delete(key));
      expect(await both('seen/a')).toBeUndefined();
      await other.transact((tx) => tx.put(key, b('3')));
      expect(await both('seen/a')).toEqual(b('3'));
      // Transactions read what was last committed too, also by the other connection.
      expect(await kv.transact((tx) => tx.get(key))).toEqual(b('3'));
      await other.transact((tx) => tx.put(key, b('4')));
      expect(await kv.transact((tx) => tx.get(key))).toEqual(b('4'));
      // A transaction's own write, then its failure: the next read sees the value before it.
      const failed = kv.transact(async (tx) => {
        await tx.put(key, b('5'));
        expect(await tx.get(key)).toEqual(b('5'));
        throw new MillpondError('EINVAL', 'rolled back');
      });
      expect(await code(failed)).toBe('EINVAL');
      expect(await both('seen/a')).toEqual(b('4'));
      expect(await kv.transact((tx) => tx.get(key))).toEqual(b('4'));
      // In one turn (one SQLite group): one commits its writes, one fails after writing.
      const [kept, dropped] = await Promise.allSettled([
        kv.transact(async (tx) => {
          await tx.put(key, b('6'));
          await tx.put(b('seen/b'), b('kept'));
        }),
        kv.transact(async (tx) => {
          await tx.put(b('seen/c'), b('dropped'));
          await tx.delete(b('seen/b'));
          throw new MillpondError('EINVAL', 'rolled back');
        }),
      ]);
      expect([kept.status, dropped.status]).toEqual(['fulfilled', 'rejected']);
      for (const read of [value, shared, (k: string) => kv.transact((tx) => tx.get(b(k)))]) {
        expect(await read('seen/a')).toEqual(b('6'));
        expect(await read('seen/b')).toEqual(b('kept'));
        expect(await read('seen/c')).toBeUndefined();
      }
    });

    it.skipIf(backend.name !== 'postgres')('PostgreSQL\'s shared reads keep what they found while the snapshot holds, and see every server\'s commits', async () => {
      const mine = kv as PostgresKv;
      const other = await opened.reopen();
      const n = 8;
      await kv.transact(async (tx) => {
        for (let i = 0; i < n; i++) await tx.put(b(`cache/${i}`), b(`v${i}`));
      });
      // One burst: n stats' kind of reads, each of a present key and an absent one, in one statement.
      const burst = () => Promise.all(Array.from({ length: n }, (_, i) => kv.read(async (tx) => {
        const [present, absent] = await tx.getMany([b(`cache/${i}`), b(`cache/absent/${i}`)]);
        return `${present?.toString()} ${absent?.toString()}`;
      }, { oneStatement: true })));
      const expected = (changes: Record<number, string> = {}) => Array.from({ length: n }, (_, i) => changes[i] ?? `v${i} undefined`);
      // The first bursts read every key and confirm the snapshot; then bursts are served from
      // what was kept (other test files commit to other databases of this server meanwhile,
      // which moves the snapshot too: hence a few bursts at most).
      let served = 0;
      for (let attempt = 0; attempt < 50 && served === 0; attempt++) {
        const before = mine.snapshotCache.keysServed;
        expect(await burst()).toEqual(expected());
        served = mine.snapshotCache.keysServed - before;
      }
      expect(served).toBe(2 * n);
      // Another server changes a kept key and creates a key kept as absent: the next burst
      // finds the snapshot moved, drops what it took from the cache and sees both.
      await other.transact(async (tx) => {
        await tx.put(b('cache/3'), b('w3'));
        await tx.put(b('cache/absent/5'), b('now'));
      });
      const stale = mine.snapshotCache.stale;
      expect(await burst()).toEqual(expected({ 3: 'w3 undefined', 5: 'v5 now' }));
      expect(mine.snapshotCache.stale).toBe(stale + 1);
      // This server's own commits are seen at once too.
      await kv.transact((tx) => tx.delete(b('cache/4')));
      expect(await burst()).toEqual(expected({ 3: 'w3 undefined', 4: 'undefined undefined', 5: 'v5 now' }));
      await other.transact((tx) => tx.put(b('cache/4'), b('back')));
      expect(await burst()).toEqual(expected({ 3: 'w3 undefined', 4: 'back undefined', 5: 'v5 now' }));
    });

    it('a read that waits between its statements sees one snapshot, while a commit and later reads go on meanwhile', async () => {
      await kv.transact(async (tx) => {
        await tx.put(b('snap/1'), b('a1'));
        await tx.put(b('snap/2'), b('b1'));
      });
      expect(await value('snap/2')).toEqual(b('b1'));
      let release!: () => void;
      const paused = new Promise<void>((resolve) => (release = resolve));
      let reading!: () => void;
      const started = new Promise<void>((resolve) => (reading = resolve));
      const pair = kv.read(async (tx) => {
        const first = await tx.get(b('snap/1'));
        reading();
        await paused;
        return [first, await tx.get(b('snap/2'))].map(String);
      });
      await started;
      await kv.transact(async (tx) => {
        await tx.put(b('snap/1'), b('a2'));
        await tx.put(b('snap/2'), b('b2'));
      });
      // A transaction after the commit reads (and, on SQLite, caches) the new value.
      expect(await kv.transact((tx) => tx.get(b('snap/2')))).toEqual(b('b2'));
      release();
      expect([['a1', 'b1'], ['a2', 'b2']]).toContainEqual(await pair);
    });
  });
}
