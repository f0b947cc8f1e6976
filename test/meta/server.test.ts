// MetaServer over real ZeroMQ sockets: the client end to end, malformed messages on the ROUTER.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Dealer } from 'zeromq';
import { MillpondError } from '../../src/errors.js';
import { protocolLimits } from '../../src/limits.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import { MetaServer } from '../../src/meta/meta-server.js';
import { MetaService } from '../../src/meta/meta-service.js';
import { SqliteKv } from '../../src/kv/sqlite-kv.js';
import { pack } from '../../src/protocol/codec.js';
import { decodeReply, encodeRequest, type Reply } from '../../src/protocol/envelope.js';
import { tempDir } from '../support/tmp.js';
import { listAdmin, testKeys } from '../support/auth.js';
import { tokenKeyPair } from '../../src/auth/curve.js';

describe('MetaServer over ZeroMQ', () => {
  const { dir, cleanup } = tempDir('meta-server');
  let kv: SqliteKv;
  let service: MetaService;
  let server: MetaServer;
  let client: MetaClient;
  const keys = testKeys();
  const T = { token: keys.adminToken };

  beforeAll(async () => {
    kv = new SqliteKv(join(dir, 'meta.db'), { synchronous: 'normal' });
    await listAdmin(kv, keys);
    service = await MetaService.open(kv);
    server = await MetaServer.start(service, 'tcp://127.0.0.1:0', { auth: keys.cluster, log: () => {} });
    client = new MetaClient(server.endpoint, { timeoutMs: 2_000, auth: keys.admin });
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.close();
    service?.stop();
    await kv?.close();
    cleanup();
    keys.cleanup();
  });

  it('serves every operation with errors as MillpondError codes', async () => {
    await client.mkdir('/home/alice', { recursive: true });
    await client.setattr('/home/alice', { uid: 1000, gid: 1000 });
    const alice = client.as({ uid: 1000, gid: 1000 });
    const { inode, session } = await alice.open('/home/alice/f', { flags: { write: true, create: true } });
    expect(typeof inode.id).toBe('bigint');
    expect((await alice.close(inode.id, session!, { length: 5 << 30 })).length).toBe(5 << 30);
    expect((await alice.stat('/home/alice/f')).length).toBe(5 << 30);
    expect((await alice.readdir('/home/alice')).entries).toEqual([{ name: 'f', inode: inode.id, type: 'file' }]);
    const bob = client.as({ uid: 1001, gid: 1001 });
    await expect(bob.unlink('/home/alice/f')).rejects.toMatchObject({ code: 'EACCES' });
    await expect(alice.open('/home/alice/a\0b', { flags: { create: true } })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(alice.open('/home', { flags: { write: true } })).rejects.toMatchObject({ code: 'EISDIR' });
    await alice.rename('/home/alice/f', '/home/alice/g');
    await alice.truncate('/home/alice/g', 10);
    await alice.setLayout('/home/alice', { stripeSize: 2 });
    expect((await alice.open('/home/alice/h', { flags: { create: true } })).inode.layout.stripeSize).toBe(2);
    await alice.unlink('/home/alice/g');
    const garbage = await client.takeGarbage(10);
    expect(garbage.map((g) => g.inode)).toEqual([inode.id]);
    await client.ackGarbage([inode.id]);
    expect(await client.takeGarbage(10)).toEqual([]);
    await client.mkdir('/home/alice/d');
    await client.rmdir('/home/alice/d');
    const err = await client.stat('/nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MillpondError);
    expect(err).toMatchObject({ code: 'ENOENT' });
  });

  it('pages readdir plus under the message limit however large the entries\' object attributes', async () => {
    // 300 files with near the largest object attributes (8 KiB packed): a page of them all
    // would be 2.4 MiB, past protocolLimits.messageBytesMax.
    await client.mkdir('/big-attrs');
    const object = { etag: '"0123456789abcdef0123456789abcdef"', meta: { pad: 'x'.repeat(8000) } };
    await Promise.all(Array.from({ length: 300 }, async (_, i) => {
      const { inode, session } = await client.open(`/big-attrs/f${String(i).padStart(3, '0')}`, { flags: { write: true, create: true } });
      await client.close(inode.id, session!, { length: 0, object });
    }));
    const names: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await client.readdir('/big-attrs', { after, plus: true });
      pages++;
      for (const e of page.entries) {
        expect(e.attrs?.object).toEqual(object);
        names.push(e.name);
      }
      if (!page.more) break;
      after = page.entries.at(-1)!.name;
    }
    expect(names).toEqual(Array.from({ length: 300 }, (_, i) => `f${String(i).padStart(3, '0')}`));
    expect(pages).toBeGreaterThan(2);
  });

  it('answers malformed messages with clear errors and serves on', async () => {
    const raw = new Dealer({ linger: 0, receiveTimeout: 3_000, curveServerKey: keys.admin.serverKey, ...Object.fromEntries(Object.entries(tokenKeyPair(keys.adminToken)).map(([k, v]) => [k === 'publicKey' ? 'curvePublicKey' : 'curveSecretKey', v])) });
    raw.connect(server.endpoint);
    const exchange = async (frames: Buffer | Buffer[]): Promise<Reply> => {
      await raw.send(frames);
      const [frame] = await raw.receive();
      return decodeReply(frame!);
    };
    const error = (r: Reply) => (r.ok ? ['ok'] : [r.error.code, r.requestId]);
    const good = encodeRequest({ requestId: 11, method: 'meta.stat', params: { ...T, path: '/' } });

    expect(error(await exchange(Buffer.from('garbage, not msgpack')))).toEqual(['EPROTO', 0]);
    expect(error(await exchange(Buffer.alloc(0)))).toEqual(['EPROTO', 0]);
    expect(error(await exchange(good.subarray(0, good.length - 4)))).toEqual(['EPROTO', 11]);
    expect(error(await exchange(pack([1, 12, 'meta.stat'])))).toEqual(['EPROTO', 12]);
    expect(error(await exchange(pack([9, 13, 'meta.stat', {}])))).toEqual(['EPROTO', 13]);
    expect(error(await exchange(pack([1, 14, 'meta.nosuch', {}])))).toEqual(['EPROTO', 14]);
    expect(error(await exchange(pack([1, 15, 'meta.stat', { user: { uid: 0, gid: 0 }, path: '/' }])))).toEqual(['EAUTH', 15]); // no token
    expect(error(await exchange(pack([1, 16, 'meta.stat', { ...T, actAs: { uid: -1, gid: 0 }, path: '/' }])))).toEqual(['EPROTO', 16]);
    expect(error(await exchange(pack([1, 17, 'meta.stat', { ...T, path: 42 }])))).toEqual(['EPROTO', 17]);
    expect(error(await exchange(pack([1, 18, 'meta.close', { ...T, inode: 'x', session: 's' }])))).toEqual(['EPROTO', 18]);
    expect(error(await exchange(pack([1, 19, 'meta.open', { ...T, path: '/x', clientId: Buffer.alloc(3) }])))).toEqual(['EPROTO', 19]);
    expect(error(await exchange(pack([1, 20, 'meta.close', { ...T, inode: 1, session: 'zz' }])))).toEqual(['EBADF', 20]);
    expect(error(await exchange([good, good]))).toEqual(['EPROTO', 0]); // two frames
    const oversized = encodeRequest({ requestId: 21, method: 'meta.stat', params: { ...T, path: 'x'.repeat(protocolLimits.messageBytesMax) } });
    expect(error(await exchange(oversized))).toEqual(['EMSGSIZE', 21]);
    expect(error(await exchange(good))).toEqual(['ok']);

    // Beyond the hard frame limit libzmq drops the sender's connection; the server serves on.
    await raw.send(Buffer.alloc(protocolLimits.frameBytesHardMax + 1024, 0x90));
    raw.close();
    expect((await client.stat('/')).type).toBe('dir');
    expect(server.counters.malformed).toBeGreaterThanOrEqual(12); // and one EAUTH (no token)
    await client.mkdir('/after-malformed');
    expect((await client.stat('/after-malformed')).type).toBe('dir');
  });

  it('runs many requests at once from one client', async () => {
    await client.mkdir('/many');
    const opened = await Promise.all(Array.from({ length: 300 }, (_, i) => client.open(`/many/f${i}`, { flags: { create: true } })));
    expect(new Set(opened.map((o) => o.inode.id)).size).toBe(300);
    let count = 0;
    let after: string | undefined;
    for (;;) {
      const page = await client.readdir('/many', { after, limit: 128 });
      count += page.entries.length;
      after = page.entries.at(-1)?.name;
      if (!page.more) break;
    }
    expect(count).toBe(300);
  });

  it('times out against a server that is not there', async () => {
    const lonely = new MetaClient('tcp://127.0.0.1:1', { timeoutMs: 200, attemptsMax: 2 });
    await expect(lonely.stat('/')).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    lonely.disconnect();
  });
});
