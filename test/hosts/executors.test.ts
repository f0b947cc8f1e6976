/**
 * The cluster executor across hosts (design §11): four executor hosts (network namespaces),
 * the millpond cluster and Redis reachable over the bridge, a job's data in millpond. Its tasks
 * spread over the hosts and its result equals plain DuckDB's; a host SIGKILLed mid-job leaves
 * the result unchanged (its tasks' locks lapse and they run on the others).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from '../../src/cli/embedded.js';
import { init } from '../../src/engine/index.js';
import { connect } from '../../src/fs/index.js';
import { queueName, startExecutor, type ExecutorProc } from '../engine/cluster/executors.js';
import { sleep } from '../cluster/support/processes.js';
import { bag, plainDuckDb, writeInputs } from '../engine/support.js';
import { tempDir } from '../support/tmp.js';
import { hostsAvailable, TestHosts } from './support/hosts.js';

const redisStart = fileURLToPath(new URL('../../scripts/redis-start.sh', import.meta.url));
const REDIS_PORT = 6392;

describe.skipIf(!hostsAvailable())('executors on four hosts', () => {
  const t = tempDir('hosts-exec');
  let hosts: TestHosts;
  let cluster: Embedded;
  let redis: string;
  let executors: ExecutorProc[] = [];
  let reference: string[];
  const queue = queueName('hosts');

  beforeAll(async () => {
    hosts = TestHosts.create(4, 202);
    const gw = hosts.gatewayIp;
    redis = execFileSync('bash', [redisStart, String(REDIS_PORT), gw], { encoding: 'utf8' }).trim().split('\n').pop()!;
    cluster = await startEmbedded({
      dataDir: join(t.dir, 'cluster'), mgmtdListen: `tcp://${gw}:0`, metaListen: `tcp://${gw}:0`,
      host: gw, transport: 'tcp', chainCount: 6, syncWrites: false,
    });
    await writeInputs(t.dir);
    const fs = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
    await fs.mkdir('/input', { recursive: true });
    for (let i = 0; i < 3; i++) await fs.writeFile(`/input/events-${i}.parquet`, readFileSync(join(t.dir, `events-${i}.parquet`)));
    fs.close();
    const db = await plainDuckDb();
    reference = bag(await db.rows(`SELECT k, count(*) AS n, sum(id)::BIGINT AS s FROM read_parquet('${t.dir}/events-*.parquet') GROUP BY k`));
    db.close();
    executors = [1, 2, 3, 4].map((h) => startExecutor(redis, queue, `h${h}`, 2,
      { MILLPOND_TRANSPORT: 'tcp' }, ['ip', 'netns', 'exec', `${hosts.prefix}-h${h}`]));
    await Promise.all(executors.map((e) => e.ready));
  }, 180_000);

  afterAll(async () => {
    await Promise.all(executors.map((e) => e.kill('SIGKILL')));
    // Redis listens on the bridge's address: stop it before the bridge goes.
    try {
      if (redis) execFileSync('redis-cli', ['-u', redis, 'shutdown', 'nosave'], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    await hosts?.destroy();
    await cluster?.stop();
    t.cleanup();
  });

  const session = (jobId: string) => init({
    root: { kind: 'millpond', dir: '/jobs', meta: cluster.meta, mgmtd: cluster.mgmtd, token: cluster.adminToken, serverKey: cluster.serverKey },
    executor: { kind: 'cluster', redis, queue }, progress: false, jobId,
  });
  // 16 SQL tasks: each executor's shared-queue worker takes up to 2 x slots = 4 at once, so
  // they reach every host (with 8, two hosts could take them all).
  const job = (sp: Awaited<ReturnType<typeof init>>) => sp.partialSql(
    'SELECT k, count(*) AS n, sum(id)::BIGINT AS s FROM {0} GROUP BY k',
    sp.readParquet('millpond:///input/events-*.parquet').repartition(16, { hashBy: 'k' }));

  it('spreads tasks (and JS functions) over the hosts; the result equals plain DuckDB', async () => {
    const sp = await session('spread');
    try {
      expect(bag(await job(sp).takeAll())).toEqual(reference);
      const hostsUsed = new Set(Object.values(sp.lastSummary!.placements!).map((p) => p.host));
      expect(hostsUsed.size).toBeGreaterThanOrEqual(3);
      const mapped = await sp.readParquet('millpond:///input/events-*.parquet').repartition(8, { hashBy: 'id' })
        .map((r) => ({ id: r.id, twice: (r.id as bigint) * 2n }), { schema: { id: 'BIGINT', twice: 'BIGINT' } }).takeAll();
      expect(mapped.length).toBe(600);
      expect(mapped.every((r) => r.twice === (r.id as bigint) * 2n)).toBe(true);
      const jsHosts = new Set(Object.entries(sp.lastSummary!.placements!).filter(([k]) => k.startsWith('js-')).map(([, p]) => p.host));
      expect([...jsHosts].every((h) => /^h[1-4]$/.test(h))).toBe(true);
      expect(jsHosts.size).toBeGreaterThanOrEqual(2);
    } finally {
      await sp.shutdown();
    }
  });

  it('finishes with the same result when a host is SIGKILLed mid-job', async () => {
    // Host 1's executor again, now stalling in its first SQL task: the host dies there.
    const stallFile = join(t.dir, 'h1.stall');
    await executors[0]!.kill('SIGTERM');
    executors[0] = startExecutor(redis, queue, 'h1', 2, {
      MILLPOND_TRANSPORT: 'tcp', MILLPOND_ENGINE_TEST_STALL_FILE: stallFile, MILLPOND_ENGINE_TEST_STALL_MS: '120000', MILLPOND_ENGINE_TEST_STALL_KEY: '^sql-',
    }, ['ip', 'netns', 'exec', `${hosts.prefix}-h1`]);
    await executors[0].ready;
    // Host 1 must hold an SQL task when it dies: should the other hosts still take them all
    // (a loaded machine), the job finishes and runs again under a new id.
    let sp: Awaited<ReturnType<typeof init>>;
    let result: ReturnType<ReturnType<typeof job>['takeAll']>;
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      sp = await session(`host-killed-${attempt}`);
      result = job(sp).takeAll();
      const finished = result.then(() => true, () => true);
      while (!existsSync(stallFile) && !(await Promise.race([finished, sleep(20).then(() => false)]))) {
        if (Date.now() - started > 90_000) {
          await sp.shutdown();
          throw new Error('host 1 never started an SQL task');
        }
      }
      if (existsSync(stallFile)) break;
      await sp.shutdown();
      if (attempt === 5) throw new Error('host 1 took no SQL task in 5 jobs');
    }
    try {
      const stalledPid = Number(readFileSync(stallFile, 'utf8'));
      await hosts.kill(1);
      expect(bag(await result)).toEqual(reference);
      // The task host 1 held ran again elsewhere, long before its stall would have ended.
      expect(Date.now() - started).toBeLessThan(120_000);
      // It stalled in its first SQL task (it may have run a shuffle before): every SQL task
      // finished on another host.
      const sqlPids = Object.entries(sp.lastSummary!.placements!).filter(([key]) => key.startsWith('sql-')).map(([, p]) => p.pid);
      expect(sqlPids.length).toBeGreaterThan(0);
      expect(sqlPids).not.toContain(stalledPid);
    } finally {
      await sp.shutdown();
    }
  }, 240_000);
});
