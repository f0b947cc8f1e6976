// MetaService behaviour on both KV backends (real SQLite file, real PostgreSQL), same bodies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvBackend } from '../../src/kv/kv.js';
import { MetaService } from '../../src/meta/meta-service.js';
import type { FileLayout, User } from '../../src/protocol/meta-types.js';
import { backends, type OpenedBackend } from './support/backends.js';
import { errorCode } from '../support/error-code.js';

const root: User = { uid: 0, gid: 0 };
const alice: User = { uid: 1000, gid: 1000 };
const bob: User = { uid: 1001, gid: 1001, gids: [2000] };

const code = (p: Promise<unknown>) => errorCode(p, 'resolved');

for (const backend of backends) {
  describe.skipIf(backend.skip)(`MetaService on ${backend.name}`, () => {
    let opened: OpenedBackend;
    let kv: KvBackend;
    let meta: MetaService;
    let n = 0;
    // Each test works in its own directory of one namespace.
    const fresh = async (mode = 0o777) => {
      const dir = `/t${n++}`;
      await meta.mkdir(root, dir, { mode });
      return dir;
    };

    beforeAll(async () => {
      opened = await backend.open();
      kv = opened.kv;
      meta = await MetaService.open(kv);
    });
    afterAll(async () => {
      meta?.stop();
      await opened?.cleanup();
    });

    it('kv: ordered scans, rollback on error, serializable increments', async () => {
      const k = (s: string) => Buffer.from(`x${s}`);
      await kv.transact(async (tx) => {
        for (const s of ['b', 'a', 'c', 'a\xff']) await tx.put(k(s), Buffer.from(s));
      });
      const rows = await kv.transact((tx) => tx.scan(k(''), Buffer.from('y'), 10));
      expect(rows.map(([key]) => key.toString('latin1'))).toEqual(['xa', 'xa\xc3\xbf', 'xb', 'xc']);
      await expect(kv.transact(async (tx) => {
        await tx.delete(k('a'));
        throw new Error('abort');
      })).rejects.toThrow('abort');
      expect((await kv.transact((tx) => tx.get(k('a'))))?.toString()).toBe('a');
      // Two backends on one store increment one counter concurrently: no lost update.
      const other = await opened.reopen();
      const bump = (store: KvBackend) => store.transact(async (tx) => {
        const v = Number((await tx.get(k('n')))?.toString() ?? '0');
        await tx.put(k('n'), Buffer.from(String(v + 1)));
      });
      await Promise.all(Array.from({ length: 40 }, (_, i) => bump(i % 2 ? kv : other)));
      expect((await kv.transact((tx) => tx.get(k('n'))))?.toString()).toBe('40');
    });

    it('mkdir, create, stat, close with lengths, readdir pages', async () => {
      const dir = await fresh();
      const sub = await meta.mkdir(alice, `${dir}/a/b/c`, { recursive: true, mode: 0o750 });
      expect(sub).toMatchObject({ type: 'dir', mode: 0o750, uid: 1000, gid: 1000 });
      expect(await code(meta.mkdir(alice, `${dir}/a`))).toBe('EEXIST');
      expect(await code(meta.mkdir(alice, `${dir}/x/y`))).toBe('ENOENT');
      const { inode, session } = await meta.open(alice, `${dir}/a/f`, { flags: { write: true, create: true }, mode: 0o640 });
      expect(session).toMatch(/^[0-9a-f]{32}$/);
      expect(inode).toMatchObject({ type: 'file', length: 0, mode: 0o640, uid: 1000 });
      expect(inode.layout).toMatchObject({ chunkSizeBytes: 4 << 20, stripeSize: 3, chainTableId: 1 });
      expect(typeof (inode.layout as { seed: number }).seed).toBe('number');
      // A second writer; lengths are the max reported (3FS), sessions end once.
      const second = await meta.open(alice, `${dir}/a/f`, { flags: { write: true } });
      expect((await meta.close(alice, inode.id, session!, { length: 5000 })).length).toBe(5000);
      expect((await meta.close(alice, inode.id, second.session!, { length: 100 })).length).toBe(5000);
      expect(await code(meta.close(alice, inode.id, session!, { length: 1 }))).toBe('EBADF');
      expect((await meta.stat(alice, `${dir}/a/f`)).length).toBe(5000);
      expect(await code(meta.stat(bob, `${dir}/a/f`))).toBe("EACCES"); // a is 0o750
      expect(await code(meta.open(alice, `${dir}/a/f`, { flags: { create: true, exclusive: true } }))).toBe('EEXIST');
      expect(await code(meta.open(alice, `${dir}/a/nope`))).toBe('ENOENT');
      expect((await meta.open(alice, `${dir}/a/f`, { flags: { write: true, truncate: true } })).inode.length).toBe(0);

      for (let i = 0; i < 25; i++) await meta.open(alice, `${dir}/a/e${String(i).padStart(2, '0')}`, { flags: { create: true } });
      const names: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await meta.readdir(alice, `${dir}/a`, { after, limit: 7 });
        names.push(...page.entries.map((e) => e.name));
        after = page.entries.at(-1)?.name;
        if (!page.more) break;
      }
      expect(names).toEqual(['b', ...Array.from({ length: 25 }, (_, i) => `e${String(i).padStart(2, '0')}`), 'f']);
      const page = await meta.readdir(alice, `${dir}/a`, { limit: 1 });
      expect(page).toMatchObject({ entries: [{ name: 'b', type: 'dir' }], more: true });
      expect(await code(meta.readdir(alice, `${dir}/a/f`))).toBe('ENOTDIR');
      expect(await code(meta.readdir(alice, `${dir}/a`, { limit: 100_000 }))).toBe('EINVAL');
    });

    it('invalid names and paths', async () => {
      const dir = await fresh();
      const bad: Array<[string, string]> = [
        [`${dir}/a\0b`, 'EINVAL'], [`${dir}/..`, 'EINVAL'], [`${dir}/./x`, 'EINVAL'], ['relative', 'EINVAL'],
        [`${dir}/${'n'.repeat(256)}`, 'ENAMETOOLONG'], [`${dir}/${'é'.repeat(128)}`, 'ENAMETOOLONG'],
        [`/${'d/'.repeat(2100)}x`, 'ENAMETOOLONG'], [`${dir}/\ud800`, 'EINVAL'],
      ];
      for (const [path, want] of bad) expect(await code(meta.open(root, path, { flags: { create: true } })), path).toBe(want);
      expect(await code(meta.mkdir(root, `${dir}/${'n'.repeat(255)}`))).toBe('resolved');
      expect(await code(meta.rename(root, `${dir}/${'n'.repeat(255)}`, `${dir}/a/../b`))).toBe('EINVAL');
      expect((await meta.stat(root, `${dir}//${'n'.repeat(255)}/`)).type).toBe('dir');
    });

    it('permissions: search, read, write, owner-only chmod, root-only chown', async () => {
      const dir = await fresh(0o755);
      await meta.setattr(root, dir, { uid: alice.uid, gid: alice.gid });
      await meta.mkdir(alice, `${dir}/private`, { mode: 0o700 });
      await meta.open(alice, `${dir}/private/f`, { flags: { create: true } });
      expect(await code(meta.stat(bob, `${dir}/private/f`))).toBe('EACCES'); // no x on private
      expect(await code(meta.readdir(bob, `${dir}/private`))).toBe('EACCES');
      expect(await code(meta.open(bob, `${dir}/g`, { flags: { create: true } }))).toBe('EACCES'); // no w on dir
      expect(await code(meta.mkdir(bob, `${dir}/d`))).toBe('EACCES');
      expect(await code(meta.unlink(bob, `${dir}/private/f`))).toBe('EACCES');
      await meta.open(alice, `${dir}/shared`, { flags: { create: true }, mode: 0o640 });
      await meta.setattr(alice, `${dir}/shared`, { gid: 1000 });
      expect(await code(meta.open(bob, `${dir}/shared`))).toBe('EACCES'); // other: no r
      expect(await code(meta.setattr(alice, `${dir}/shared`, { gid: 2000 }))).toBe('EPERM'); // not her group
      await meta.setattr(root, `${dir}/shared`, { gid: 2000 });
      expect(await code(meta.open(bob, `${dir}/shared`))).toBe('resolved'); // via supplementary group 2000: r
      expect(await code(meta.open(bob, `${dir}/shared`, { flags: { write: true } }))).toBe('EACCES');
      expect(await code(meta.setattr(bob, `${dir}/shared`, { mode: 0o777 }))).toBe('EPERM');
      expect(await code(meta.setattr(alice, `${dir}/shared`, { uid: bob.uid }))).toBe('EPERM');
      expect((await meta.setattr(alice, `${dir}/shared`, { mode: 0o666 })).mode).toBe(0o666);
      const { session, inode } = await meta.open(bob, `${dir}/shared`, { flags: { write: true } });
      await meta.close(bob, inode.id, session!, { length: 1 });
      expect(await code(meta.setLayout(bob, dir, { stripeSize: 1 }))).toBe('EPERM');
      // root passes everything
      expect(await code(meta.open(root, `${dir}/private/f`, { flags: { write: true } }))).toBe('resolved');
    });

    it('directories refuse writes; unlink and rmdir check types and emptiness', async () => {
      const dir = await fresh();
      await meta.mkdir(root, `${dir}/d`);
      await meta.open(root, `${dir}/d/f`, { flags: { create: true } });
      expect(await code(meta.open(root, `${dir}/d`, { flags: { write: true } }))).toBe('EISDIR');
      expect(await code(meta.open(root, `${dir}/d`, { flags: { write: true, create: true } }))).toBe('EISDIR');
      expect(await code(meta.truncate(root, `${dir}/d`, 0))).toBe('EISDIR');
      expect(await code(meta.open(root, '/', { flags: { write: true } }))).toBe('EISDIR');
      expect(await code(meta.unlink(root, `${dir}/d`))).toBe('EISDIR');
      expect(await code(meta.rmdir(root, `${dir}/d/f`))).toBe('ENOTDIR');
      expect(await code(meta.rmdir(root, `${dir}/d`))).toBe('ENOTEMPTY');
      expect(await code(meta.open(root, `${dir}/d/f/g`, { flags: { create: true } }))).toBe('ENOTDIR');
      expect(await code(meta.rmdir(root, '/'))).toBe('EBUSY');
      await meta.unlink(root, `${dir}/d/f`);
      expect(await code(meta.unlink(root, `${dir}/d/f`))).toBe('ENOENT');
      await meta.rmdir(root, `${dir}/d`);
      expect(await code(meta.stat(root, `${dir}/d`))).toBe('ENOENT');
    });

    it('rename: atomic move, replace a file, refuse subtree moves and non-empty targets', async () => {
      const dir = await fresh();
      await meta.mkdir(root, `${dir}/a/b`, { recursive: true });
      const f = (await meta.open(root, `${dir}/a/f`, { flags: { create: true } })).inode;
      const g = (await meta.open(root, `${dir}/g`, { flags: { create: true } })).inode;
      await meta.rename(root, `${dir}/a/f`, `${dir}/g`); // replaces g
      expect((await meta.stat(root, `${dir}/g`)).id).toBe(f.id);
      expect(await code(meta.stat(root, `${dir}/a/f`))).toBe('ENOENT');
      expect((await meta.listGarbage(1024)).map((x) => x.inode)).toContain(g.id);
      expect(await code(meta.rename(root, `${dir}/a`, `${dir}/a/b/c`))).toBe('EINVAL');
      expect(await code(meta.rename(root, `${dir}/a`, `${dir}/a/b`))).toBe('EINVAL');
      await meta.mkdir(root, `${dir}/full/x`, { recursive: true });
      expect(await code(meta.rename(root, `${dir}/a`, `${dir}/full`))).toBe('ENOTEMPTY');
      expect(await code(meta.rename(root, `${dir}/a`, `${dir}/g`))).toBe('ENOTDIR');
      expect(await code(meta.rename(root, `${dir}/g`, `${dir}/full`))).toBe('EISDIR');
      expect(await code(meta.rename(root, `${dir}/missing`, `${dir}/z`))).toBe('ENOENT');
      expect(await code(meta.rename(root, '/', `${dir}/z`))).toBe('EBUSY');
      await meta.mkdir(root, `${dir}/empty`);
      await meta.rename(root, `${dir}/a`, `${dir}/empty`); // replaces the empty directory
      expect((await meta.readdir(root, `${dir}/empty`)).entries.map((e) => e.name)).toEqual(['b']);
      await meta.rename(root, `${dir}/empty/b`, `${dir}/full/x/b`); // a directory changes parent
      expect((await meta.stat(root, `${dir}/full/x/b`)).parent).toBe((await meta.stat(root, `${dir}/full/x`)).id);
      await meta.rename(root, `${dir}/g`, `${dir}/g`); // same file: nothing happens
      expect((await meta.stat(root, `${dir}/g`)).id).toBe(f.id);
    });

    it('link: one inode under two names; its chunks go with the last name, whichever goes last', async () => {
      const dir = await fresh();
      await meta.mkdir(root, `${dir}/out`);
      const { inode, session } = await meta.open(root, `${dir}/f`, { flags: { create: true, write: true } });
      await meta.close(root, inode.id, session!, { length: 777 });
      const linked = await meta.link(root, `${dir}/f`, `${dir}/out/g`);
      expect(linked).toMatchObject({ id: inode.id, nlink: 2, length: 777 });
      expect(await meta.stat(root, `${dir}/out/g`)).toMatchObject({ id: inode.id, nlink: 2 });
      expect((await meta.readdir(root, `${dir}/out`)).entries).toEqual([{ name: 'g', inode: inode.id, type: 'file' }]);
      // A write through one name is seen through the other: they are one file.
      const w = await meta.open(root, `${dir}/out/g`, { flags: { write: true } });
      await meta.close(root, inode.id, w.session!, { length: 1000 });
      expect((await meta.stat(root, `${dir}/f`)).length).toBe(1000);
      expect(await code(meta.link(root, `${dir}/f`, `${dir}/out/g`))).toBe('EEXIST');
      expect(await code(meta.link(root, `${dir}/out`, `${dir}/d2`))).toBe('EPERM');
      expect(await code(meta.link(root, `${dir}/missing`, `${dir}/h`))).toBe('ENOENT');
      expect(await code(meta.link(root, `${dir}/f`, `${dir}/nodir/h`))).toBe('ENOENT');
      await meta.mkdir(root, `${dir}/locked`, { mode: 0o555 });
      expect(await code(meta.link(alice, `${dir}/f`, `${dir}/locked/h`))).toBe('EACCES');
      // rename onto another name of the same file changes nothing (POSIX).
      await meta.rename(root, `${dir}/f`, `${dir}/out/g`);
      expect((await meta.stat(root, `${dir}/f`)).nlink).toBe(2);
      // The first unlink only drops a name; the second queues the chunks.
      const queuedIds = async () => (await meta.listGarbage(1024)).map((x) => x.inode);
      await meta.unlink(root, `${dir}/f`);
      expect(await meta.stat(root, `${dir}/out/g`)).toMatchObject({ id: inode.id, nlink: 1, length: 1000 });
      expect(await queuedIds()).not.toContain(inode.id);
      // Replacing the last name by rename is the last unlink too.
      const other = (await meta.open(root, `${dir}/other`, { flags: { create: true } })).inode;
      await meta.link(root, `${dir}/out/g`, `${dir}/g2`);
      await meta.rename(root, `${dir}/other`, `${dir}/out/g`);
      expect(await queuedIds()).not.toContain(inode.id);
      expect((await meta.stat(root, `${dir}/out/g`)).id).toBe(other.id);
      await meta.unlink(root, `${dir}/g2`);
      expect((await meta.listGarbage(1024)).find((x) => x.inode === inode.id)).toMatchObject({ length: 1000 });
      await meta.ackGarbage([inode.id]);
    });

    it('symlink: stores its target unresolved; readlink, unlink, rename and link treat it as a name', async () => {
      const dir = await fresh();
      const made = await meta.symlink(alice, '../elsewhere/x', `${dir}/l`);
      expect(made).toMatchObject({ type: 'symlink', target: '../elsewhere/x', length: 14, uid: alice.uid, gid: alice.gid });
      expect(await meta.readlink(bob, `${dir}/l`)).toBe('../elsewhere/x');
      expect(await meta.stat(root, `${dir}/l`)).toMatchObject({ id: made.id, type: 'symlink', target: '../elsewhere/x' });
      expect((await meta.readdir(root, dir)).entries).toEqual([{ name: 'l', inode: made.id, type: 'symlink' }]);
      expect(await code(meta.symlink(root, 'y', `${dir}/l`))).toBe('EEXIST');
      expect(await code(meta.symlink(root, '', `${dir}/m`))).toBe('EINVAL');
      expect(await code(meta.symlink(root, 'x'.repeat(5000), `${dir}/m`))).toBe('ENAMETOOLONG');
      expect(await code(meta.symlink(root, 'y', `${dir}/nodir/m`))).toBe('ENOENT');
      await meta.mkdir(root, `${dir}/locked`, { mode: 0o555 });
      expect(await code(meta.symlink(alice, 'y', `${dir}/locked/m`))).toBe('EACCES');
      // readdir plus: each entry with its inode, as stat gives it; none without x on the directory.
      const plus = (await meta.readdir(alice, dir, { plus: true })).entries;
      expect(plus.map((e) => [e.name, e.attrs?.type, e.attrs?.id])).toEqual([['l', 'symlink', made.id], ['locked', 'dir', (await meta.stat(root, `${dir}/locked`)).id]]);
      expect(plus[0]!.attrs).toEqual(await meta.stat(root, `${dir}/l`));
      await meta.setattr(root, dir, { mode: 0o774 });
      expect((await meta.readdir(alice, dir, { plus: true })).entries.map((e) => e.attrs)).toEqual([undefined, undefined]);
      await meta.setattr(root, dir, { mode: 0o777 });
      // meta never follows one: opening it or walking through it is refused.
      expect(await code(meta.readlink(root, dir))).toBe('EINVAL');
      expect(await code(meta.open(root, `${dir}/l`))).toBe('EINVAL');
      expect(await code(meta.stat(root, `${dir}/l/x`))).toBe('ENOTDIR');
      // A hard link to a symlink is a symlink; rename moves it; unlink leaves no garbage.
      const linked = await meta.link(root, `${dir}/l`, `${dir}/l2`);
      expect(linked).toMatchObject({ id: made.id, nlink: 2, type: 'symlink' });
      expect((await meta.readdir(root, dir)).entries.find((e) => e.name === 'l2')).toEqual({ name: 'l2', inode: made.id, type: 'symlink' });
      await meta.rename(root, `${dir}/l2`, `${dir}/l3`);
      await meta.unlink(root, `${dir}/l`);
      expect(await meta.readlink(root, `${dir}/l3`)).toBe('../elsewhere/x');
      await meta.unlink(root, `${dir}/l3`);
      expect(await code(meta.stat(root, `${dir}/l3`))).toBe('ENOENT');
      expect((await meta.listGarbage(1024)).map((x) => x.inode)).not.toContain(made.id);
    });

    it('setattr mtimeMs: the owner or root sets a file\'s time; others get EPERM', async () => {
      const dir = await fresh();
      const { inode, session } = await meta.open(alice, `${dir}/f`, { flags: { create: true, write: true }, mode: 0o666 });
      await meta.close(alice, inode.id, session!, { length: 3 });
      expect(await meta.setattr(alice, `${dir}/f`, { mtimeMs: 1_000_000 })).toMatchObject({ mtimeMs: 1_000_000, length: 3 });
      expect((await meta.stat(bob, `${dir}/f`)).mtimeMs).toBe(1_000_000);
      expect(await code(meta.setattr(bob, `${dir}/f`, { mtimeMs: 5 }))).toBe('EPERM');
      expect(await meta.setattr(root, `${dir}/f`, { mtimeMs: 7 })).toMatchObject({ mtimeMs: 7 });
      expect(await code(meta.setattr(root, `${dir}/f`, { mtimeMs: -1 }))).toBe('EINVAL');
    });

    it('sessions of a client gone quiet end; its unlinked files are collected; heartbeats keep sessions', async () => {
      const dir = await fresh();
      const quick = await MetaService.open(kv, { sessionTimeoutMs: 300, pruneApplied: false, pruneSessions: false });
      try {
        const live = Buffer.alloc(16, 'live');
        const dead = Buffer.alloc(16, 'dead');
        let requestId = 0;
        const open = (path: string, clientId?: Buffer) => quick.open(root, path, { flags: { create: true, write: true } },
          clientId ? { clientId, requestId: ++requestId } : undefined);
        const a = await open(`${dir}/a`, live);
        const d = await open(`${dir}/d`, dead);
        const local = await open(`${dir}/local`); // no clientId: nothing to watch
        for (const f of ['a', 'd', 'local']) await quick.unlink(root, `${dir}/${f}`);
        expect(await quick.pruneSessions()).toBe(0); // both clients were just heard from
        const queued = async () => (await quick.listGarbage(1024)).map((x) => x.inode);
        for (let i = 0; i < 4; i++) {
          await new Promise((r) => setTimeout(r, 100));
          await quick.heartbeat(live);
        }
        expect(await quick.pruneSessions()).toBe(1); // only the quiet client's
        expect(await queued()).toContain(d.inode.id);
        expect(await queued()).not.toContain(a.inode.id);
        expect(await code(quick.close(root, d.inode.id, d.session!))).toBe('EBADF');
        await quick.close(root, a.inode.id, a.session!); // the live client's session still works
        expect(await queued()).toContain(a.inode.id);
        expect(await quick.pruneSessions(Date.now() + 3_600_000)).toBe(0);
        expect(await queued()).not.toContain(local.inode.id);
        await quick.close(root, local.inode.id, local.session!);
        await quick.ackGarbage([a.inode.id, d.inode.id, local.inode.id]);
      } finally {
        quick.stop();
      }
    });

    it('unlink while open for write: garbage only after the last session closes; ack removes it', async () => {
      const dir = await fresh();
      const { inode, session } = await meta.open(root, `${dir}/f`, { flags: { create: true, write: true } });
      await meta.unlink(root, `${dir}/f`);
      expect((await meta.listGarbage(1024)).map((x) => x.inode)).not.toContain(inode.id);
      await meta.close(root, inode.id, session!, { length: 12345 });
      const queued = (await meta.listGarbage(1024)).find((x) => x.inode === inode.id);
      expect(queued).toMatchObject({ length: 12345, layout: inode.layout });
      await meta.ackGarbage([inode.id]);
      expect((await meta.listGarbage(1024)).map((x) => x.inode)).not.toContain(inode.id);
    });

    it('layouts: per directory, inherited, validated', async () => {
      const dir = await fresh();
      await meta.setLayout(root, dir, { chunkSizeBytes: 64 * 1024, stripeSize: 8, chainTableId: 2 });
      await meta.mkdir(root, `${dir}/sub`);
      const { inode } = await meta.open(root, `${dir}/sub/f`, { flags: { create: true } });
      expect(inode.layout).toMatchObject({ chunkSizeBytes: 64 * 1024, stripeSize: 8, chainTableId: 2 });
      expect(await code(meta.setLayout(root, dir, { chunkSizeBytes: 1000 }))).toBe('EINVAL');
      expect(await code(meta.setLayout(root, dir, { chunkSizeBytes: 128 << 20 }))).toBe('EINVAL');
      expect(await code(meta.setLayout(root, dir, { stripeSize: 0 }))).toBe('EINVAL');
      expect(await code(meta.setLayout(root, `${dir}/sub/f`, { stripeSize: 1 }))).toBe('ENOTDIR');
      expect((await meta.truncate(root, `${dir}/sub/f`, 777)).length).toBe(777);
    });

    it('a new file records its chain table\'s current version (from the routing meta holds); files made before keep theirs', async () => {
      const dir = await fresh();
      const own = await MetaService.open(kv, { pruneApplied: false, pruneSessions: false });
      try {
        // Without routing (or while the table is unknown to it): the directory's version.
        const before = (await own.open(root, `${dir}/before`, { flags: { create: true } })).inode;
        expect((before.layout as FileLayout).chainTableVersion).toBe(1);
        let version: number | undefined;
        own.attachChainTables({ current: (tableId) => (tableId === 1 ? version : undefined) });
        expect(((await own.open(root, `${dir}/unknown`, { flags: { create: true } })).inode.layout as FileLayout).chainTableVersion).toBe(1);
        version = 3; // the table grew twice
        const after = (await own.open(root, `${dir}/after`, { flags: { create: true } })).inode;
        expect((after.layout as FileLayout).chainTableVersion).toBe(3);
        // Fixed at create: opening, writing and stat of an existing file leave it as it was.
        expect(((await own.open(root, `${dir}/before`, { flags: { write: true } })).inode.layout as FileLayout).chainTableVersion).toBe(1);
        expect(((await own.stat(root, `${dir}/before`)).layout as FileLayout).chainTableVersion).toBe(1);
      } finally {
        own.stop();
      }
    });

    it('a retried mutation with the same (clientId, requestId) applies once', async () => {
      const dir = await fresh();
      const dedup = { clientId: Buffer.alloc(16, 7), requestId: 42 };
      const first = await meta.open(root, `${dir}/f`, { flags: { create: true, exclusive: true, write: true } }, dedup);
      const again = await meta.open(root, `${dir}/f`, { flags: { create: true, exclusive: true, write: true } }, dedup);
      expect(again).toEqual(first);
      await meta.rename(root, `${dir}/f`, `${dir}/g`, { ...dedup, requestId: 43 });
      await meta.rename(root, `${dir}/f`, `${dir}/g`, { ...dedup, requestId: 43 }); // no ENOENT
      expect(await meta.pruneApplied(Date.now() + 3_600_000)).toBeGreaterThanOrEqual(2);
      expect(await code(meta.rename(root, `${dir}/f`, `${dir}/g`, { ...dedup, requestId: 43 }))).toBe('ENOENT');
    });

    it('concurrent creates from two services on one store: no lost or duplicate entries', async () => {
      const dir = await fresh();
      const other = await MetaService.open(await opened.reopen(), { pruneApplied: false });
      const perSide = 60;
      const results = await Promise.all(
        Array.from({ length: perSide * 2 }, (_, i) => {
          const service = i % 2 ? other : meta;
          // Half the names collide: both sides race to create them exclusively.
          const name = i % 4 < 2 ? `shared${i >> 2}` : `own${i}`;
          return code(service.open(root, `${dir}/${name}`, { flags: { create: true, exclusive: true } }));
        }),
      );
      other.stop();
      const won = results.filter((r) => r === 'resolved').length;
      const lost = results.filter((r) => r === 'EEXIST').length;
      expect(won + lost).toBe(perSide * 2);
      const entries = (await meta.readdir(root, dir, { limit: 1024 })).entries;
      expect(entries.length).toBe(won);
      expect(new Set(entries.map((e) => e.name)).size).toBe(won);
      expect(new Set(entries.map((e) => e.inode)).size).toBe(won);
      expect(lost).toBe(perSide / 2);
    });

    it('garbage: two services on one store lease disjoint files; an unacked file returns after its lease', async () => {
      const store = await backend.open(); // a queue of its own
      const leaseMs = 1_500;
      const a = await MetaService.open(store.kv, { garbageLeaseMs: leaseMs, pruneApplied: false, pruneSessions: false });
      const b = await MetaService.open(await store.reopen(), { garbageLeaseMs: leaseMs, pruneApplied: false, pruneSessions: false });
      try {
        const ids: bigint[] = [];
        for (let i = 0; i < 12; i++) {
          ids.push((await a.open(root, `/g${i}`, { flags: { create: true } })).inode.id);
          await a.unlink(root, `/g${i}`);
        }
        const sorted = (xs: bigint[]) => [...xs].sort((x, y) => (x < y ? -1 : 1));
        // At once, as two meta servers' collectors: each file goes to one of them.
        const [takenA, takenB] = await Promise.all([a.takeGarbage(8), b.takeGarbage(8)]);
        const first = [...takenA, ...takenB].map((g) => g.inode);
        expect(first.length).toBe(12);
        expect(sorted(first)).toEqual(sorted(ids));
        expect(await a.takeGarbage(8)).toEqual([]); // all leased
        expect(await b.takeGarbage(8)).toEqual([]);
        expect((await b.listGarbage(100)).map((g) => g.inode)).toEqual(sorted(ids)); // still queued
        // A removes its files' chunks and acks them; B's taker "died" without acking.
        await a.ackGarbage(takenA.map((g) => g.inode));
        await new Promise((resolve) => setTimeout(resolve, leaseMs + 200));
        const again = await a.takeGarbage(16);
        expect(sorted(again.map((g) => g.inode))).toEqual(sorted(takenB.map((g) => g.inode)));
        expect(again[0]).toEqual(takenB.find((g) => g.inode === again[0]!.inode)); // as queued, no lease field
        await a.ackGarbage(again.map((g) => g.inode));
        expect(await b.listGarbage(100)).toEqual([]);
      } finally {
        a.stop();
        b.stop();
        await store.cleanup();
      }
    });
  });
}
