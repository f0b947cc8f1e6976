/**
 * Executors in mgmtd (design §11): real `millpond executor` processes report themselves to a
 * real, authenticated mgmtd with their own user's token; `millpond status` lists them; another
 * user may not touch their entries; one SIGKILLed disappears within the registry's TTL, one
 * stopped with SIGTERM leaves at once.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from '../../src/cli/embedded.js';
import { listExecutors, reportExecutor, type ExecutorRecord } from '../../src/cluster/executors.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { clusterExecutorLimits } from '../../src/limits.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import { tempDir } from '../support/tmp.js';
import { queueName, redisUrl, startExecutor, type ExecutorProc } from './cluster/executors.js';

const mainTs = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('executors registered with mgmtd', () => {
  const t = tempDir('executor-registry');
  let cluster: Embedded;
  let tokens: { alice: string; bob: string };
  const executors: ExecutorProc[] = [];
  const clients: MgmtdClient[] = [];
  const clientOf = (token: string) => {
    const c = new MgmtdClient(cluster.mgmtd, { auth: { token, serverKey: cluster.serverKey }, timeoutMs: 2_000 });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    cluster = await startEmbedded({
      dataDir: join(t.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
      host: '127.0.0.1', transport: 'tcp', chainCount: 3, syncWrites: false,
    });
    const admin = new MetaClient(cluster.meta, { auth: { token: cluster.adminToken, serverKey: cluster.serverKey } });
    try {
      tokens = {
        alice: (await admin.userAdd({ name: 'alice', uid: 1600, gid: 1600 })).token,
        bob: (await admin.userAdd({ name: 'bob', uid: 1601, gid: 1601 })).token,
      };
    } finally {
      admin.disconnect();
    }
    // meta pushes the new tokens to mgmtd: wait until mgmtd admits both.
    for (const token of Object.values(tokens)) {
      const c = clientOf(token);
      for (let i = 0; ; i++) {
        try {
          await listExecutors(c);
          break;
        } catch (e) {
          if (i > 60) throw e;
          await sleep(250);
        }
      }
    }
  }, 90_000);

  afterAll(async () => {
    await Promise.all(executors.map((e) => e.kill('SIGKILL')));
    for (const c of clients) c.close();
    await cluster?.stop();
    t.cleanup();
  });

  it('lists live executors in status, keeps them to their owner, and drops a SIGKILLed one within the TTL', async () => {
    const queue = queueName('registry');
    const env = { MILLPOND_MGMTD: cluster.mgmtd, MILLPOND_TOKEN: tokens.alice, MILLPOND_SERVER_KEY: cluster.serverKey };
    executors.push(startExecutor(redisUrl(), queue, 'reg-a', 1, env), startExecutor(redisUrl(), queue, 'reg-b', 2, env));
    await Promise.all(executors.map((e) => e.ready));
    const alice = clientOf(tokens.alice);
    const live = await listExecutors(alice);
    expect(live.map((e) => [e.host, e.slots, e.ownerUid])).toEqual([['reg-a', 1, 1600], ['reg-b', 2, 1600]]);
    const [a, b] = live as [ExecutorRecord, ExecutorRecord];
    expect(a.pid).toBe(executors[0]!.child.pid);
    expect(a.load1).toBeGreaterThanOrEqual(0);

    // `millpond status` (a real CLI process, the admin's token) shows the section.
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', mainTs, 'status', '--mgmtd', cluster.mgmtd, '--meta', cluster.meta], {
      env: { ...process.env, MILLPOND_TOKEN: cluster.adminToken, MILLPOND_SERVER_KEY: cluster.serverKey, MILLPOND_REDIS: '' },
    });
    expect(stdout).toMatch(/^executors: 2 live, 3 slots, 0 tasks running$/m);
    expect(stdout).toContain(`executor ${a.id} host reg-a slots 1 running 0 load `);
    expect(stdout).toContain(`executor ${b.id} host reg-b slots 2 running 0 load `);

    // Another user may not overwrite or remove alice's entries; the admin may.
    const bob = clientOf(tokens.bob);
    await expect(reportExecutor(bob, { ...a, slots: 9 })).rejects.toMatchObject({ code: 'EACCES' });
    await expect(bob.call('mgmtd.executorLeave', { id: a.id })).rejects.toMatchObject({ code: 'EACCES' });
    const adminClient = clientOf(cluster.adminToken);
    await reportExecutor(adminClient, { id: 'admin-made', host: 'elsewhere', slots: 1, running: 0, load1: 0.5, pid: 1, startedMs: Date.now() });
    await adminClient.call('mgmtd.executorLeave', { id: 'admin-made' });
    await expect(reportExecutor(bob, { ...a, id: 'x'.repeat(clusterExecutorLimits.executorNameBytesMax + 1) })).rejects.toMatchObject({ code: 'EPROTO' });

    // SIGKILL: no leave; the entry lapses within the TTL (plus a report period and slack).
    await executors[0]!.kill('SIGKILL');
    const killedMs = Date.now();
    let goneMs: number | undefined;
    while (Date.now() - killedMs < clusterExecutorLimits.registryEntryTtlMs + 10_000) {
      const ids = (await listExecutors(alice)).map((e) => e.id);
      expect(ids).toContain(b.id);
      if (!ids.includes(a.id)) {
        goneMs = Date.now() - killedMs;
        break;
      }
      await sleep(200);
    }
    expect(goneMs, 'the killed executor stayed listed').toBeDefined();
    expect(goneMs!).toBeLessThanOrEqual(clusterExecutorLimits.registryEntryTtlMs + clusterExecutorLimits.registryHeartbeatMs + 2_000);

    // SIGTERM: it leaves as it stops, long before the TTL would drop it.
    const stopped = Date.now();
    await executors[1]!.kill('SIGTERM');
    expect(await listExecutors(alice)).toEqual([]);
    expect(Date.now() - stopped).toBeLessThan(clusterExecutorLimits.registryEntryTtlMs);
  }, 120_000);
});
