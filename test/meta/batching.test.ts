// The batched paths of meta: batch frames on the control plane (envelope.ts, rpc-server.ts,
// rpc-client.ts), SQLite reads on their own connection, PostgreSQL stats sharing one statement.
// Real ZeroMQ with CURVE, real SQLite files, real PostgreSQL; both backends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Dealer } from 'zeromq';
import { tokenKeyPair } from '../../src/auth/curve.js';
import { authLimits, protocolLimits } from '../../src/limits.js';
import type { KvBackend } from '../../src/kv/kv.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import { MetaServer } from '../../src/meta/meta-server.js';
import { MetaService } from '../../src/meta/meta-service.js';
import { pack } from '../../src/protocol/codec.js';
import { decodeReplies, decodeRequests, encodeBatch, encodeRequest, ProtocolError, type Reply } from '../../src/protocol/envelope.js';
import { listAdmin, testKeys } from '../support/auth.js';
import { errorCode } from '../support/error-code.js';
import { backends, type OpenedBackend } from './support/backends.js';

describe('batch frames', () => {
  it('decode into their requests; a bad element is an error in its place, a bad batch an error of the frame', () => {
    const a = encodeRequest({ requestId: 5, method: 'meta.stat', params: { path: '/a' } });
    const bad = pack([1, 6, 42, {}]);
    const c = encodeRequest({ requestId: 7, method: 'meta.whoami', params: {} });
    const { batch, requests } = decodeRequests(encodeBatch([a, bad, c]));
    expect(batch).toBe(true);
    expect(requests[0]).toMatchObject({ requestId: 5, method: 'meta.stat', params: { path: '/a' } });
    expect(requests[1]).toBeInstanceOf(ProtocolError);
    expect(requests[1]).toMatchObject({ code: 'EPROTO', requestId: 6 });
    expect(requests[2]).toMatchObject({ requestId: 7, method: 'meta.whoami' });
    expect(decodeRequests(a)).toMatchObject({ batch: false, requests: [{ requestId: 5 }] });
    const tooMany = Array.from({ length: protocolLimits.batchMessagesMax + 1 }, () => c);
    expect(() => decodeRequests(encodeBatch(tooMany))).toThrow(/batch holds/);
    expect(() => decodeRequests(pack([1, 0, 'rpc.batch', []]))).toThrow(/batch holds/);
    // 17 elements: the 16-bit array header.
    expect(decodeReplies(encodeBatch(Array.from({ length: 17 }, (_, i) => pack([1, i + 1, true, i]))))).toHaveLength(17);
  });
});

for (const backend of backends) {
  describe.skipIf(backend.skip)(`batched meta paths on ${backend.name}`, () => {
    let opened: OpenedBackend;
    let kv: KvBackend;
    let service: MetaService;
    let server: MetaServer;
    let client: MetaClient;
    const keys = testKeys();

    beforeAll(async () => {
      opened = await backend.open();
      kv = opened.kv;
      await listAdmin(kv, keys);
      service = await MetaService.open(kv, { pruneApplied: false, pruneSessions: false });
      server = await MetaServer.start(service, 'tcp://127.0.0.1:0', { auth: keys.cluster, log: () => {} });
      client = new MetaClient(server.endpoint, { timeoutMs: 20_000, auth: keys.admin });
      await client.mkdir('/d', { recursive: true });
    });
    afterAll(async () => {
      client?.disconnect();
      await server?.close();
      service?.stop();
      await opened?.cleanup();
      keys.cleanup();
    });

    it('a raw batch frame is answered in batch frames: each request once, a malformed one with EPROTO under its own id', async () => {
      const curve = tokenKeyPair(keys.adminToken);
      const raw = new Dealer({ linger: 0, receiveTimeout: 10_000, curveServerKey: keys.admin.serverKey, curvePublicKey: curve.publicKey, curveSecretKey: curve.secretKey });
      raw.connect(server.endpoint);
      try {
        const token = keys.adminToken;
        const frames = [
          ...Array.from({ length: 40 }, (_, i) => encodeRequest({ requestId: 100 + i, method: 'meta.whoami', params: { token } })),
          encodeRequest({ requestId: 200, method: 'meta.stat', params: { token, path: '/d' } }),
          encodeRequest({ requestId: 201, method: 'meta.stat', params: { token, path: '/nothing' } }),
          encodeRequest({ requestId: 202, method: 'meta.whoami', params: {} }), // no token
          pack([1, 203, 'meta.stat', [1, 2]]),
        ];
        await raw.send(encodeBatch(frames));
        const replies = new Map<number, Reply>();
        let batchFrames = 0;
        while (replies.size < frames.length) {
          const [frame] = (await raw.receive()) as Buffer[];
          const got = decodeReplies(frame!);
          if (got.length > 1) batchFrames++;
          for (const r of got) {
            expect(replies.has(r.requestId)).toBe(false);
            replies.set(r.requestId, r);
          }
        }
        expect(batchFrames).toBeGreaterThan(0);
        for (let i = 0; i < 40; i++) expect(replies.get(100 + i)).toMatchObject({ ok: true, result: { uid: 0, admin: true } });
        expect(replies.get(200)).toMatchObject({ ok: true, result: { type: 'dir' } });
        expect(replies.get(201)).toMatchObject({ ok: false, error: { code: 'ENOENT' } });
        expect(replies.get(202)).toMatchObject({ ok: false, error: { code: 'EAUTH' } });
        expect(replies.get(203)).toMatchObject({ ok: false, error: { code: 'EPROTO' } });
      } finally {
        raw.close();
      }
    });

    it('many creates of one name in flight at once: exactly one wins, the others EEXIST; distinct names all land', async () => {
      const results = await Promise.all(Array.from({ length: 96 }, () => errorCode(client.open('/d/same', { flags: { create: true, exclusive: true } }), 'ok')));
      expect(results.filter((r) => r === 'ok')).toHaveLength(1);
      expect(results.filter((r) => r === 'EEXIST')).toHaveLength(95);
      const names = Array.from({ length: 300 }, (_, i) => `n${i}`);
      const created = await Promise.all(names.map((n) => client.open(`/d/${n}`, { flags: { create: true, exclusive: true } })));
      expect(new Set(created.map((c) => c.inode.id)).size).toBe(300);
      const listed: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await client.readdir('/d', { after, limit: 128 });
        listed.push(...page.entries.map((e) => e.name));
        after = page.entries.at(-1)?.name;
        if (!page.more) break;
      }
      expect(listed.sort()).toEqual([...names, 'same'].sort());
    });

    it('a stat after an acknowledged create sees it, while other creates and stats are in flight', async () => {
      await client.mkdir('/e');
      const seen = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const { inode } = await client.open(`/e/f${i}`, { flags: { create: true, exclusive: true } });
        const [stat, missing] = await Promise.all([client.stat(`/e/f${i}`), errorCode(client.stat(`/e/none${i}`), 'found')]);
        return stat.id === inode.id && missing === 'ENOENT';
      }));
      expect(seen.every(Boolean)).toBe(true);
    });

    it('stats of one turn that need one statement, more than one (deep paths past the hints), or fail, each get their own answer', async () => {
      await client.mkdir('/g/h/i/j', { recursive: true });
      await client.open('/g/h/i/j/leaf', { flags: { create: true } });
      // A second server on the same store: no path hints, so its walks need more statements.
      const other = await MetaService.open(await opened.reopen(), { pruneApplied: false, pruneSessions: false });
      try {
        const root = { uid: 0, gid: 0 };
        const paths = ['/g/h/i/j/leaf', '/g/h/i/j', '/g/nope', '/d/same', '/g/h/i/j/leaf/under', '/'];
        const want = ['file', 'dir', 'ENOENT', 'file', 'ENOTDIR', 'dir'];
        const outcome = async (path: string) => {
          let type = '';
          const code = await errorCode(other.stat(root, path).then((s) => (type = s.type)), 'ok');
          return code === 'ok' ? type : code;
        };
        for (let round = 0; round < 2; round++) { // the second round with the hints the first left
          const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => outcome(paths[i % paths.length]!)));
          expect(answers).toEqual(Array.from({ length: 60 }, (_, i) => want[i % want.length]));
        }
      } finally {
        other.stop();
      }
    });
  });
}

describe.skipIf(backends.find((b) => b.name === 'postgres')!.skip)('the verified-token cache across two meta servers on PostgreSQL', () => {
  it('a user removed on one server is refused by the other within authLimits.tokenCacheMs (its cached identity expires)', async () => {
    const opened = await backends.find((b) => b.name === 'postgres')!.open();
    const keys = testKeys();
    const stops: Array<() => Promise<void> | void> = [];
    try {
      await listAdmin(opened.kv, keys);
      const kvB = await opened.reopen();
      const serviceA = await MetaService.open(opened.kv, { pruneApplied: false, pruneSessions: false });
      const serviceB = await MetaService.open(kvB, { pruneApplied: false, pruneSessions: false });
      stops.push(() => serviceA.stop(), () => serviceB.stop());
      const a = await MetaServer.start(serviceA, 'tcp://127.0.0.1:0', { auth: keys.cluster, log: () => {} });
      const b = await MetaServer.start(serviceB, 'tcp://127.0.0.1:0', { auth: keys.cluster, log: () => {} });
      stops.push(() => a.close(), () => b.close());
      const admin = new MetaClient(a.endpoint, { auth: keys.admin, timeoutMs: 10_000 });
      stops.push(() => admin.disconnect());
      const { token } = await admin.userAdd({ name: 'carol', uid: 1003, gid: 1003 });
      // Server B admits carol's key once it has re-read the users table.
      // (a connection its ZAP handler refused stays refused: each try connects anew).
      const admittedBy = Date.now() + authLimits.usersRefreshMs + 10_000;
      let carol: MetaClient;
      for (;;) {
        const c = new MetaClient(b.endpoint, { auth: { token, serverKey: keys.admin.serverKey }, timeoutMs: 2_000, attemptsMax: 1 });
        stops.push(() => c.disconnect());
        if ((await errorCode(c.whoami(), 'ok')) === 'ok') {
          carol = c;
          break;
        }
        expect(Date.now()).toBeLessThan(admittedBy);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect((await carol.whoami()).uid).toBe(1003); // B has now verified and cached carol's token
      await admin.userRemove('carol');
      const removedMs = Date.now();
      // Requests on B's live connection, many in flight each round, until B refuses them all.
      let refusedMs = 0;
      while (Date.now() - removedMs < authLimits.tokenCacheMs + authLimits.usersRefreshMs + 10_000) {
        const codes = await Promise.all(Array.from({ length: 32 }, () => errorCode(carol.whoami(), 'ok')));
        if (codes.every((c) => c === 'EAUTH')) {
          refusedMs = Date.now() - removedMs;
          break;
        }
        expect(codes.every((c) => c === 'ok' || c === 'EAUTH')).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(refusedMs).toBeGreaterThan(0);
      // The bound, plus slack for a loaded 2-core machine.
      expect(refusedMs).toBeLessThan(authLimits.tokenCacheMs + 3_000);
    } finally {
      for (const stop of stops.reverse()) await stop();
      await opened.cleanup();
      keys.cleanup();
    }
  });
});
