// Meta servers as real processes: SIGKILL mid-stream on SQLite, two servers on one PostgreSQL;
// a client process SIGKILLed with write sessions open.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { MetaClient } from '../../src/meta/meta-client.js';
import { MetaServer } from '../../src/meta/meta-server.js';
import { MetaService } from '../../src/meta/meta-service.js';
import { SqliteKv } from '../../src/kv/sqlite-kv.js';
import { killHard, spawnScript, waitForLine } from '../support/child.js';
import { tempDir } from '../support/tmp.js';
import { listAdmin, testKeys } from '../support/auth.js';
import { startMetaProcess } from './support/meta-process.js';
import { createTestDatabase, skipPg } from './support/pg.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('meta server processes', () => {
  // Authentication on: the servers hold the secret, clients present the admin token.
  const keys = testKeys();
  const authArgs = ['--secret-file', keys.secretFile, '--admin-token-file', keys.adminTokenFile];
  const children: ChildProcess[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const child of children.splice(0)) await killHard(child);
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('SIGKILL mid-stream of creates: every acknowledged create survives; the restarted server serves on', async () => {
    const { dir, cleanup } = tempDir('meta-kill');
    cleanups.push(cleanup);
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const args = ['--backend', 'sqlite', '--db', join(dir, 'meta.db'), '--listen', endpoint, ...authArgs];
    let server = await startMetaProcess(args);
    children.push(server.child);
    const client = new MetaClient(endpoint, { timeoutMs: 1_000, attemptsMax: 30, auth: keys.admin });
    cleanups.push(() => client.disconnect());
    await client.mkdir('/w');

    const acked: string[] = [];
    const failures: string[] = [];
    let restarted = false;
    let afterRestart = 0;
    const worker = async (w: number) => {
      for (let i = 0; afterRestart < 200; i++) {
        const path = `/w/${w}-${i}`;
        try {
          // exclusive: a retried create that was applied before the kill must not turn into EEXIST
          await client.open(path, { flags: { create: true, exclusive: true } });
          acked.push(path);
          if (restarted) afterRestart++;
        } catch (err) {
          failures.push(`${path}: ${(err as Error).message}`);
          return;
        }
      }
    };
    const workers = Promise.all([0, 1, 2, 3].map(worker));
    while (acked.length < 150) await sleep(10);
    await killHard(server.child);
    const ackedAtKill = acked.length;
    await sleep(300);
    server = await startMetaProcess(args);
    children.push(server.child);
    restarted = true;
    await workers;

    expect(failures).toEqual([]);
    expect(ackedAtKill).toBeGreaterThanOrEqual(150);
    const names = new Set<string>();
    let after: string | undefined;
    for (;;) {
      const page = await client.readdir('/w', { after, limit: 1024 });
      for (const e of page.entries) names.add(e.name);
      after = page.entries.at(-1)?.name;
      if (!page.more) break;
    }
    const missing = acked.filter((p) => !names.has(p.slice(3)));
    expect(missing).toEqual([]);
    expect(names.size).toBe(acked.length); // nothing applied twice or without its acknowledgement
  });

  it('a client SIGKILLed with write sessions: they end after its heartbeats stop; its unlinked file is collected', async () => {
    const { dir, cleanup } = tempDir('meta-sessions');
    cleanups.push(cleanup);
    const kv = new SqliteKv(join(dir, 'meta.db'));
    await listAdmin(kv, keys);
    const service = await MetaService.open(kv, { sessionTimeoutMs: 1_000 });
    const server = await MetaServer.start(service, 'tcp://127.0.0.1:0', { auth: keys.cluster });
    cleanups.push(() => kv.close(), () => service.stop(), () => server.close());
    const holder = spawnScript('session-holder.ts', [server.endpoint, '100', '/scratch', '/kept'], undefined, { MILLPOND_TOKEN_FILE: keys.adminTokenFile, MILLPOND_SERVER_KEY: keys.admin.serverKey });
    children.push(holder);
    const inodes = [];
    for (let i = 0; i < 2; i++) inodes.push(BigInt((await waitForLine(holder, /^open (\d+)$/))[1]!));
    const [scratch, kept] = inodes as [bigint, bigint];
    await service.unlink({ uid: 0, gid: 0 }, '/scratch'); // as a job's retry removes a dead task's scratch
    const queued = async () => (await service.listGarbage(16)).map((g) => g.inode);
    await sleep(2_500); // over twice the timeout: the live holder's heartbeats keep its sessions
    expect(await queued()).not.toContain(scratch);

    await killHard(holder);
    const deadlineMs = Date.now() + 10_000;
    while (!(await queued()).includes(scratch) && Date.now() < deadlineMs) await sleep(100);
    expect(await queued()).toEqual([scratch]); // the linked file stays, now without a session
    expect((await service.stat({ uid: 0, gid: 0 }, '/kept')).id).toBe(kept);
    expect(await service.pruneSessions(Date.now() + 3_600_000)).toBe(0);
  });

  it.skipIf(skipPg)('two servers on one PostgreSQL database: concurrent creates, no lost or duplicate entries', async () => {
    const db = await createTestDatabase();
    cleanups.push(db.drop);
    const args = ['--backend', 'postgres', '--pg-url', db.url, '--listen', 'tcp://127.0.0.1:0', ...authArgs];
    const [a, b] = await Promise.all([startMetaProcess(args), startMetaProcess(args)]);
    children.push(a.child, b.child);
    const clientA = new MetaClient(a.endpoint, { timeoutMs: 10_000, auth: keys.admin });
    const clientB = new MetaClient(b.endpoint, { timeoutMs: 10_000, auth: keys.admin });
    cleanups.push(() => clientA.disconnect(), () => clientB.disconnect());
    await clientA.mkdir('/shared');
    const perClient = 150;
    const outcomes = await Promise.all(
      Array.from({ length: perClient * 2 }, (_, i) => {
        const client = i % 2 ? clientB : clientA;
        const name = i % 4 < 2 ? `both-${i >> 2}` : `one-${i}`; // half the names are raced for
        return client.open(`/shared/${name}`, { flags: { create: true, exclusive: true } }).then(
          () => 'created',
          (err: { code?: string }) => err.code ?? String(err),
        );
      }),
    );
    const created = outcomes.filter((o) => o === 'created').length;
    expect(outcomes.filter((o) => o !== 'created' && o !== 'EEXIST')).toEqual([]);
    expect(created).toBe(perClient * 2 - perClient / 2);
    const listA = (await clientA.readdir('/shared', { limit: 1024 })).entries;
    const listB = (await clientB.readdir('/shared', { limit: 1024 })).entries;
    expect(listB).toEqual(listA);
    expect(listA.length).toBe(created);
    expect(new Set(listA.map((e) => e.inode)).size).toBe(created);
  });

  it.skipIf(skipPg)('a client given both servers of one PostgreSQL fails over when its server is SIGKILLed: every acknowledged create once', async () => {
    const db = await createTestDatabase();
    cleanups.push(db.drop);
    const args = ['--backend', 'postgres', '--pg-url', db.url, '--listen', 'tcp://127.0.0.1:0', ...authArgs];
    const [a, b] = await Promise.all([startMetaProcess(args), startMetaProcess(args)]);
    children.push(a.child, b.child);
    // The first address is the one it uses until it dies; a comma list as MILLPOND_META gives it.
    const client = new MetaClient(`${a.endpoint},${b.endpoint}`, { timeoutMs: 1_000, auth: keys.admin });
    cleanups.push(() => client.disconnect());
    await client.mkdir('/f');
    const acked: string[] = [];
    const failures: string[] = [];
    let killed = false;
    let afterKill = 0;
    const worker = async (w: number) => {
      for (let i = 0; afterKill < 150; i++) {
        const path = `/f/${w}-${i}`;
        try {
          // exclusive: a create applied by the killed server and resent to the other under the
          // same requestId must come back as created, never EEXIST
          await client.open(path, { flags: { create: true, exclusive: true } });
          acked.push(path);
          if (killed) afterKill++;
        } catch (err) {
          failures.push(`${path}: ${(err as Error).message}`);
          return;
        }
      }
    };
    const workers = Promise.all([0, 1, 2, 3].map(worker));
    while (acked.length < 100) await sleep(10);
    await killHard(a.child);
    killed = true;
    await workers;
    expect(failures).toEqual([]);
    const names = new Set<string>();
    let after: string | undefined;
    for (;;) {
      const page = await client.readdir('/f', { after, limit: 1024 });
      for (const e of page.entries) names.add(e.name);
      after = page.entries.at(-1)?.name;
      if (!page.more) break;
    }
    expect(acked.filter((p) => !names.has(p.slice(3)))).toEqual([]);
    expect(names.size).toBe(acked.length);
    // The survivor answers on its own.
    const survivor = new MetaClient(b.endpoint, { timeoutMs: 5_000, auth: keys.admin });
    cleanups.push(() => survivor.disconnect());
    expect((await survivor.readdir('/f', { limit: 1 })).entries.length).toBe(1);
  });
});
