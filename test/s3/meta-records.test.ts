// What the S3 gateway keeps in meta: access keys (admins only, secrets never listed) and the
// S3 attributes of a file's bytes (set by the close that wrote them, dropped by any later
// write open or truncate, carried by rename). Against the real MetaService on SQLite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { MetaService, SqliteKv } from '../../src/meta/index.js';
import { tempDir } from '../support/tmp.js';
import { errorCode } from '../support/error-code.js';

const root = { uid: 0, gid: 0 };
const alice = { uid: 1000, gid: 1000 };

const code = (p: Promise<unknown>) => errorCode(p, 'ok');

describe('meta records of the S3 gateway', () => {
  const t = tempDir('s3-meta');
  let kv: SqliteKv;
  let meta: MetaService;

  beforeAll(async () => {
    kv = new SqliteKv(join(t.dir, 'meta.db'));
    meta = await MetaService.open(kv, { pruneApplied: false, pruneSessions: false });
  });

  afterAll(async () => {
    meta.stop();
    await kv.close();
    t.cleanup();
  });

  it('keeps access keys for admins only', async () => {
    const key = await meta.accessKeyAdd(root, { uid: 1000, gid: 1000, gids: [5] });
    expect(key.accessKeyId).toMatch(/^MPAK[A-Z2-7]{16}$/);
    expect(key.secretAccessKey.length).toBe(40);
    expect(await meta.accessKeyGet(root, key.accessKeyId)).toEqual(key);
    const listed = await meta.accessKeyList(root, 1000);
    expect(listed).toEqual([{ accessKeyId: key.accessKeyId, uid: 1000, gid: 1000, gids: [5], createdMs: key.createdMs }]);
    expect(await code(meta.accessKeyAdd(alice, alice))).toBe('EPERM');
    expect(await code(meta.accessKeyGet(alice, key.accessKeyId))).toBe('EPERM');
    expect(await code(meta.accessKeyList(alice))).toBe('EPERM');
    expect(await code(meta.accessKeyRemove(alice, key.accessKeyId))).toBe('EPERM');
    expect(await code(meta.accessKeyGet(root, 'not a key'))).toBe('EINVAL');
    expect(await code(meta.accessKeyAdd(root, { uid: -1, gid: 0 }))).toBe('EINVAL');
    await meta.accessKeyRemove(root, key.accessKeyId);
    expect(await code(meta.accessKeyGet(root, key.accessKeyId))).toBe('ENOENT');
    expect(await code(meta.accessKeyRemove(root, key.accessKeyId))).toBe('ENOENT');
  });

  it('sets S3 attributes at close, keeps them through rename, drops them on a later write', async () => {
    const object = { etag: '"0123456789abcdef0123456789abcdef"', contentType: 'text/plain', meta: { a: 'b' }, headers: { 'cache-control': 'no-cache' } };
    const { inode, session } = await meta.open(root, '/obj', { flags: { write: true, create: true } });
    const closed = await meta.close(root, inode.id, session!, { length: 3, object });
    expect(closed.object).toEqual(object);
    await meta.rename(root, '/obj', '/renamed');
    expect((await meta.stat(root, '/renamed')).object).toEqual(object);
    // A read open keeps them; a write open (no truncate) drops them: the bytes may change.
    await meta.open(root, '/renamed', { flags: { read: true } });
    expect((await meta.stat(root, '/renamed')).object).toEqual(object);
    const w = await meta.open(root, '/renamed', { flags: { write: true } });
    expect((await meta.stat(root, '/renamed')).object).toBeUndefined();
    await meta.close(root, w.inode.id, w.session!, { length: 3, object });
    await meta.truncate(root, '/renamed', 1);
    expect((await meta.stat(root, '/renamed')).object).toBeUndefined();
    // Attributes are strings, bounded in size.
    const x = await meta.open(root, '/bad', { flags: { write: true, create: true } });
    expect(await code(meta.close(root, x.inode.id, x.session!, { object: { etag: 5 } as never }))).toBe('EINVAL');
    const y = await meta.open(root, '/big', { flags: { write: true, create: true } });
    expect(await code(meta.close(root, y.inode.id, y.session!, { object: { etag: '"x"', meta: { v: 'v'.repeat(9000) } } }))).toBe('EMSGSIZE');
  });
});
