// The fast paths of meta (src/kv/kv.ts getMany, insert, read; SQLite group commit;
// PostgreSQL write batching; path hints) keep the namespace's answers: on both backends
// (real SQLite file, real PostgreSQL).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MillpondError } from '../../src/errors.js';
import type { KvBackend } from '../../src/kv/kv.js';
import { MetaService } from '../../src/meta/meta-service.js';
import type { User } from '../../src/protocol/meta-types.js';
import { PostgresKv } from '../../src/kv/postgres-kv.js';
import { backends, type OpenedBackend } from './support/backends.js';
import { createTestDatabase, skipPg } from './support/pg.js';
import { errorCode } from '../support/error-code.js';

const root: User = { uid: 0, gid: 0 };
const b = (s: string) => Buffer.from(s);

const code = (p: Promise<unknown>) => errorCode(p, 'resolved');

for (const backend of backends) {
  describe.skipIf(backend.skip)(`meta fast paths on ${backend.name}`, () => {
    let opened: OpenedBackend;
    let kv: KvBackend;
    let meta: MetaService;
    let n = 0;
    const fresh = async () => {
      const dir = `/f${n++}`;
      await meta.mkdir(root, dir, { mode: 0o777 });
      return dir;
    };

    beforeAll(async () => {
      opened = await backend.open();
      kv = opened.kv;
      meta = await MetaService.open(kv, { pruneApplied: false, pruneSessions: false });
    });
    afterAll(async () => {
      meta?.stop();
      await opened?.cleanup();
    });

    it('kv: getMany in key order with absent keys and the transaction\'s own writes; insert keeps a present value; read refuses writes', async () => {
      await kv.transact(async (tx) => {
        await tx.put(b('ga'), b('1'));
        await tx.put(b('gb'), b('2'));
      });
      const seen = await kv.transact(async (tx) => {
        await tx.delete(b('ga'));
        await tx.put(b('gc'), b('3'));
        return tx.getMany([b('gb'), b('ga'), b('gz'), b('gc')]);
      });
      expect(seen.map((v) => v?.toString())).toEqual(['2', undefined, undefined, '3']);
      expect((await kv.transact((tx) => tx.insert(b('gb'), b('9'))))?.toString()).toBe('2');
      expect(await kv.transact((tx) => tx.insert(b('gd'), b('4')))).toBeUndefined();
      // Deleted earlier in the same transaction: the key is free.
      expect(await kv.transact(async (tx) => {
        await tx.delete(b('gd'));
        return tx.insert(b('gd'), b('5'));
      })).toBeUndefined();
      // A scan sees the transaction's own writes.
      const rows = await kv.transact(async (tx) => {
        await tx.put(b('ge'), b('6'));
        await tx.delete(b('gb'));
        return tx.scan(b('g'), b('h'), 10);
      });
      expect(rows.map(([k, v]) => `${k}=${v}`)).toEqual(['gc=3', 'gd=5', 'ge=6']);
      const after = await kv.read((tx) => tx.getMany([b('ga'), b('gb'), b('gc'), b('gd'), b('ge')]));
      expect(after.map((v) => v?.toString())).toEqual([undefined, undefined, '3', '5', '6']);
      expect(await code(kv.read((tx) => tx.put(b('gf'), b('7'))))).toBe('EINVAL');
      expect(await code(kv.read((tx) => tx.insert(b('gf'), b('7'))))).toBe('EINVAL');
      expect(await kv.read((tx) => tx.get(b('gf')))).toBeUndefined();
    });

    it('kv: of many transactions at once, one that throws rolls back alone; the others commit and survive a reopen', async () => {
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => code(kv.transact(async (tx) => {
        await tx.put(b(`m${String(i).padStart(3, '0')}`), b(String(i)));
        if (i % 10 === 7) throw new MillpondError('EIO', 'this one fails');
      }))));
      expect(results.filter((r) => r === 'EIO').length).toBe(10);
      const other = await opened.reopen();
      const rows = await other.read((tx) => tx.scan(b('m'), b('n'), 1000));
      expect(rows.length).toBe(90);
      expect(rows.some(([k]) => k.toString().endsWith('7'))).toBe(false);
    });

    it('many creates at once in one directory from two servers, with retried requests: nothing lost, no duplicate name, each request applied once', async () => {
      const dir = await fresh();
      const other = await MetaService.open(await opened.reopen(), { pruneApplied: false, pruneSessions: false });
      const clientId = Buffer.alloc(16, 9);
      const count = 200;
      // Every request is sent to both servers at once (a retry racing its original).
      const pairs = await Promise.all(Array.from({ length: count }, (_, i) => Promise.all([meta, other].map((s) =>
        s.open(root, `${dir}/c${i}`, { flags: { create: true, exclusive: true } }, { clientId, requestId: 10_000 + i })))));
      other.stop();
      for (const [a, c] of pairs) expect(a!.inode.id).toBe(c!.inode.id);
      const entries: string[] = [];
      for (let after: string | undefined; ;) {
        const page = await meta.readdir(root, dir, { after, limit: 64 });
        entries.push(...page.entries.map((e) => e.name));
        after = page.entries.at(-1)?.name;
        if (!page.more) break;
      }
      expect(entries.length).toBe(count);
      expect(new Set(entries).size).toBe(count);
      const inodes = await Promise.all(entries.map((name) => meta.stat(root, `${dir}/${name}`)));
      expect(new Set(inodes.map((i) => i.id)).size).toBe(count);
    });

    it('a stale path hint never gives a wrong answer: another server renames a directory and makes a new one of the same name', async () => {
      const dir = await fresh();
      const other = await MetaService.open(await opened.reopen(), { pruneApplied: false, pruneSessions: false });
      await meta.mkdir(root, `${dir}/d`);
      const file = await meta.open(root, `${dir}/d/f`, { flags: { create: true } });
      expect((await meta.stat(root, `${dir}/d/f`)).id).toBe(file.inode.id); // meta now hints d and f
      await other.rename(root, `${dir}/d`, `${dir}/e`);
      await other.mkdir(root, `${dir}/d`);
      await other.open(root, `${dir}/d/g`, { flags: { create: true } });
      other.stop();
      expect(await code(meta.stat(root, `${dir}/d/f`))).toBe('ENOENT');
      expect((await meta.stat(root, `${dir}/e/f`)).id).toBe(file.inode.id);
      expect((await meta.readdir(root, `${dir}/d`)).entries.map((e) => e.name)).toEqual(['g']);
      // A create through the stale hint lands in the new directory, not the renamed one.
      await meta.open(root, `${dir}/d/h`, { flags: { create: true, exclusive: true } });
      expect((await meta.readdir(root, `${dir}/e`)).entries.map((e) => e.name)).toEqual(['f']);
      expect((await meta.readdir(root, `${dir}/d`, { plus: true })).entries.map((e) => [e.name, e.attrs?.type])).toEqual([['g', 'file'], ['h', 'file']]);
    });

    it('stats and listings during renames see the old or the new state, never both or neither', async () => {
      const dir = await fresh();
      const other = await MetaService.open(await opened.reopen(), { pruneApplied: false, pruneSessions: false });
      await meta.mkdir(root, `${dir}/a`);
      await meta.open(root, `${dir}/a/f`, { flags: { create: true } });
      let renaming = true;
      const renames = (async () => {
        for (let i = 0; i < 30; i++) {
          await other.rename(root, i % 2 ? `${dir}/b` : `${dir}/a`, i % 2 ? `${dir}/a` : `${dir}/b`);
        }
        renaming = false;
      })();
      let checks = 0;
      while (renaming) {
        const names = (await meta.readdir(root, dir, { plus: true })).entries.map((e) => e.name);
        expect(names.length).toBe(1);
        expect(['a', 'b']).toContain(names[0]);
        const [fa, fb] = await Promise.all([code(meta.stat(root, `${dir}/a/f`)), code(meta.stat(root, `${dir}/b/f`))]);
        // Each stat is one snapshot: the file is under a or under b (two stats, two snapshots,
        // may both see it or both miss it only across a rename, so check each alone).
        expect(['resolved', 'ENOENT']).toContain(fa);
        expect(['resolved', 'ENOENT']).toContain(fb);
        checks++;
      }
      await renames;
      other.stop();
      expect(checks).toBeGreaterThan(0);
      expect((await meta.readdir(root, dir)).entries.map((e) => e.name)).toEqual(['a']);
      expect((await meta.stat(root, `${dir}/a/f`)).type).toBe('file');
    });
  });
}

describe.skipIf(skipPg)('PostgresKv writersMax', () => {
  it('at most writersMax serializable transactions overlap; snapshot reads go on while they are all taken', async () => {
    const db = await createTestDatabase();
    const kv = await PostgresKv.open({ connectionString: db.url, writersMax: 2 });
    try {
      let inside = 0;
      let most = 0;
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < 12; i++) {
        writes.push(kv.transact(async (tx) => {
          inside++;
          most = Math.max(most, inside);
          await tx.put(b(`w${i}`), b(String(i)));
          if (i < 2) await held; // the first two hold both places
          inside--;
        }));
        // Each in a turn of its own: a transaction alone, not a member of a group (one place for all).
        await new Promise((resolve) => setImmediate(resolve));
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(inside).toBe(2);
      // Both places are taken, yet a read completes.
      expect(await kv.read((tx) => tx.get(b('w5')))).toBeUndefined();
      release();
      await Promise.all(writes);
      expect(most).toBe(2);
      expect((await kv.read((tx) => tx.scan(b('w'), b('x'), 100))).length).toBe(12);
      await expect(PostgresKv.open({ connectionString: db.url, writersMax: 0 })).rejects.toThrow(RangeError);
    } finally {
      await kv.close();
      await db.drop();
    }
  });
});
