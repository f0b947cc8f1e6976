// The KV contract both backends keep (src/kv/kv.ts), on real SQLite and PostgreSQL: claims,
// a transaction's own writes seen by its later statements, and (PostgreSQL) pipelined
// statements whose failure leaves the pooled connection clean for the next transaction.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvBackend } from '../../src/kv/kv.js';
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
  });
}
