/**
 * The cluster executor (design §11) on a real Redis with real `millpond executor` processes:
 * the whole DataFrame suite, JS functions run on executors (and refused at plan time when they
 * need the driver's state), an executor SIGKILLed mid-job, a straggler (SIGSTOPped executor)
 * overtaken, a killed driver's rerun resuming, and Redis restarted mid-job.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/index.js';
import { MillpondError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { queueName, redisUrl, startExecutor, type ExecutorProc } from './cluster/executors.js';
import { dataframeSuite } from './dataframe-suite.js';
import { bag, plainDuckDb, writeInputs } from './support.js';

describe('the DataFrame suite on two executors', () => {
  const queue = queueName('df');
  let executors: ExecutorProc[] = [];
  beforeAll(async () => {
    executors = ['exec-a', 'exec-b'].map((host) => startExecutor(redisUrl(), queue, host, 2));
    await Promise.all(executors.map((e) => e.ready));
  });
  afterAll(async () => {
    await Promise.all(executors.map((e) => e.kill('SIGTERM')));
  });
  dataframeSuite(async () => ({ executor: { kind: 'cluster', redis: redisUrl(), queue } }));
});

describe('cluster executor', () => {
  let tmp: ReturnType<typeof tempDir>;
  let events: string;
  let reference: string[];
  beforeAll(async () => {
    tmp = tempDir('engine-cluster');
    await writeInputs(tmp.dir);
    events = `${tmp.dir}/events-*.parquet`;
    const db = await plainDuckDb();
    reference = bag(await db.rows(`SELECT k, count(*) AS n, sum(id)::BIGINT AS s FROM read_parquet('${events}') GROUP BY k`));
    db.close();
  });
  afterAll(() => tmp?.cleanup());

  const job = (sp: Awaited<ReturnType<typeof init>>) => sp.partialSql(
    'SELECT k, count(*) AS n, sum(id)::BIGINT AS s FROM {0} GROUP BY k', sp.readParquet(events).repartition(6, { hashBy: 'k' }));

  it('runs JS functions on the executors, in parallel, and refuses a closure over driver state at plan time', async () => {
    const queue = queueName('js');
    const executors = ['exec-a', 'exec-b'].map((host) => startExecutor(redisUrl(), queue, host, 2));
    try {
      await Promise.all(executors.map((e) => e.ready));
      const sp = await init({ root: { kind: 'local', dir: `${tmp.dir}/js` }, executor: { kind: 'cluster', redis: redisUrl(), queue }, progress: false });
      try {
        const df = sp.readParquet(events).repartition(4, { hashBy: 'id' }).map((r) => ({ id: r.id, pid: process.pid }), { schema: { id: 'BIGINT', pid: 'BIGINT' } });
        const rows = await df.takeAll();
        expect(rows.length).toBe(600);
        // The function ran in the executors' worker processes, not in this driver.
        const pids = new Set(rows.map((r) => Number(r.pid)));
        expect(pids.has(process.pid)).toBe(false);
        const placements = Object.values(sp.lastSummary!.placements!);
        expect(new Set(placements.map((p) => p.host))).toEqual(new Set(['exec-a', 'exec-b']));
        for (const p of pids) expect(placements.map((x) => x.pid)).toContain(p);

        const limit = 10n;
        const closure = sp.readParquet(events).filter((r) => (r.id as bigint) < limit);
        await expect(closure.count()).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('`limit`') });
      } finally {
        await sp.shutdown();
      }
    } finally {
      await Promise.all(executors.map((e) => e.kill('SIGTERM')));
    }
  });

  it('finishes with the same result when an executor is SIGKILLed mid-job (its tasks run elsewhere)', async () => {
    const queue = queueName('kill');
    const stallFile = `${tmp.dir}/kill.stall`;
    // exec-a stalls in its first task, long enough to be killed there; exec-b is healthy.
    const a = startExecutor(redisUrl(), queue, 'exec-a', 2, { MILLPOND_ENGINE_TEST_STALL_FILE: stallFile, MILLPOND_ENGINE_TEST_STALL_MS: '60000' });
    await a.ready;
    const b = startExecutor(redisUrl(), queue, 'exec-b', 2);
    await b.ready;
    const sp = await init({ root: { kind: 'local', dir: `${tmp.dir}/kill` }, executor: { kind: 'cluster', redis: redisUrl(), queue }, progress: false });
    try {
      const result = job(sp).takeAll();
      await until(() => existsSyncSafe(stallFile), 30_000);
      await a.kill('SIGKILL'); // its worker processes end with it (their IPC channel closes)
      expect(bag(await result)).toEqual(reference);
      expect(new Set(Object.values(sp.lastSummary!.placements!).map((p) => p.host))).toContain('exec-b');
    } finally {
      await sp.shutdown();
      await Promise.all([a, b].map((e) => e.kill('SIGTERM')));
    }
  }, 180_000);

  it('runs a speculative copy of a straggler; the first finished attempt wins', async () => {
    const queue = queueName('spec');
    const stallFile = `${tmp.dir}/spec.stall`;
    // One executor whose first task of the SQL stage is slow (a straggler, alive: its lock
    // stays fresh, so only speculation helps).
    const e = startExecutor(redisUrl(), queue, 'exec-a', 3, {
      MILLPOND_ENGINE_TEST_STALL_FILE: stallFile, MILLPOND_ENGINE_TEST_STALL_MS: '60000', MILLPOND_ENGINE_TEST_STALL_KEY: '^sql-',
    });
    await e.ready;
    const sp = await init({ root: { kind: 'local', dir: `${tmp.dir}/spec` }, executor: { kind: 'cluster', redis: redisUrl(), queue }, progress: false });
    try {
      const started = Date.now();
      expect(bag(await job(sp).takeAll())).toEqual(reference);
      expect(Date.now() - started).toBeLessThan(45_000); // well before the 60 s stall ends
      expect(sp.lastSummary!.speculativeAttempts).toBeGreaterThanOrEqual(1);
      expect(sp.lastSummary!.speculativeWins).toBeGreaterThanOrEqual(1);
    } finally {
      await sp.shutdown();
      await e.kill('SIGKILL');
    }
  });

  it('a rerun with the same jobId after the driver died runs only the tasks that had not completed', async () => {
    const queue = queueName('resume');
    const executors = ['exec-a'].map((host) => startExecutor(redisUrl(), queue, host, 2));
    await Promise.all(executors.map((x) => x.ready));
    const options = { root: { kind: 'local' as const, dir: `${tmp.dir}/resume` }, executor: { kind: 'cluster' as const, redis: redisUrl(), queue }, progress: false, jobId: 'resume-1' };
    try {
      const first = await init(options);
      await job(first).count();
      const ran = first.lastSummary!.tasksRun;
      await first.shutdown();
      const again = await init(options);
      try {
        expect(bag(await job(again).takeAll())).toEqual(reference);
        expect(again.lastSummary!.tasksRun).toBe(0);
        expect(again.lastSummary!.tasksSkipped).toBe(ran);
      } finally {
        await again.shutdown();
      }
    } finally {
      await Promise.all(executors.map((x) => x.kill('SIGTERM')));
    }
  });

  it('rejects an unreachable Redis with a clear error', async () => {
    await expect(init({ root: { kind: 'local', dir: `${tmp.dir}/none` }, executor: { kind: 'cluster', redis: 'redis://127.0.0.1:1' }, progress: false }))
      .rejects.toBeInstanceOf(MillpondError);
  });
});

function existsSyncSafe(path: string): boolean {
  try {
    execFileSync('test', ['-e', path]);
    return true;
  } catch {
    return false;
  }
}

async function until(fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
