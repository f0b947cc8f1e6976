/**
 * The cluster executor (design §11) on a real Redis with real `millpond executor` processes:
 * the whole DataFrame suite, JS functions run on executors (and refused at plan time when they
 * need the driver's state), an executor SIGKILLed mid-job, a straggler (a slow task, and a
 * SIGSTOPped executor) overtaken, a killed driver's rerun resuming, and Redis restarted mid-job.
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/index.js';
import { MillpondError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { queueName, redisUrl, startExecutor, type ExecutorProc } from './cluster/executors.js';
import { dataframeSuite } from './dataframe-suite.js';
import { bag, plainDuckDb, writeInputs } from './support.js';

const driverTs = fileURLToPath(new URL('./cluster/driver.ts', import.meta.url));
const redisStartSh = fileURLToPath(new URL('../../scripts/redis-start.sh', import.meta.url));

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
        // 8 tasks of ~150 ms (2 ms of work per row): one executor holds at most 4 at once (2
        // slots, each with one task prefetched), so both run some however the queue wakes them.
        const df = sp.readParquet(events).repartition(8, { hashBy: 'id' }).map((r) => {
          for (const until = Date.now() + 2; Date.now() < until;) { /* a row's work */ }
          return { id: r.id, pid: process.pid };
        }, { schema: { id: 'BIGINT', pid: 'BIGINT' } });
        const rows = await df.takeAll();
        expect(rows.length).toBe(600);
        // The function ran in the executors' worker processes, not in this driver.
        const pids = new Set(rows.map((r) => Number(r.pid)));
        expect(pids.has(process.pid)).toBe(false);
        const placements = Object.values(sp.lastSummary!.placements!);
        expect(new Set(placements.map((p) => p.host))).toEqual(new Set(['exec-a', 'exec-b']));
        for (const p of pids) expect(placements.map((x) => x.pid)).toContain(p);

        // Rows of the wrong shape fail the job at once on an executor too: EINVAL, no retries
        // (no " after N attempts"), as the same rows give the same shape again.
        await expect(sp.readParquet(events).repartition(2).flatMap(() => 5 as never).count()).rejects.toMatchObject({
          code: 'EINVAL', message: expect.stringMatching(/^task failed \(js node [^)]*\): flatMap function must return an array of row objects/),
        });

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
      await until(() => existsSync(stallFile), 30_000);
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

  it('overtakes an executor that is SIGSTOPped mid-task (paused, not dead)', async () => {
    const queue = queueName('stop');
    const stallFile = `${tmp.dir}/stop.stall`;
    const a = startExecutor(redisUrl(), queue, 'exec-a', 2, { MILLPOND_ENGINE_TEST_STALL_FILE: stallFile, MILLPOND_ENGINE_TEST_STALL_MS: '3000', MILLPOND_ENGINE_TEST_STALL_KEY: '^sql-' });
    const b = startExecutor(redisUrl(), queue, 'exec-b', 2);
    await Promise.all([a.ready, b.ready]);
    const paused = [a.child.pid!];
    const sp = await init({ root: { kind: 'local', dir: `${tmp.dir}/stop` }, executor: { kind: 'cluster', redis: redisUrl(), queue }, progress: false });
    try {
      const started = Date.now();
      const result = job(sp).takeAll();
      await until(() => existsSync(stallFile), 120_000);
      // The executor and its worker processes stop where they are.
      paused.push(...execFileSync('pgrep', ['-P', String(a.child.pid)], { encoding: 'utf8' }).trim().split('\n').map(Number));
      for (const pid of paused) process.kill(pid, 'SIGSTOP');
      expect(bag(await result)).toEqual(reference);
      expect(Date.now() - started).toBeLessThan(90_000);
      // The paused worker stalled in its first SQL task (it may have run the shuffle before):
      // every SQL task finished elsewhere.
      const stalledPid = Number(readFileSync(stallFile, 'utf8'));
      const sqlPids = Object.entries(sp.lastSummary!.placements!).filter(([key]) => key.startsWith('sql-')).map(([, p]) => p.pid);
      expect(sqlPids.length).toBeGreaterThan(0);
      expect(sqlPids).not.toContain(stalledPid);
    } finally {
      for (const pid of paused) process.kill(pid, 'SIGCONT');
      await sp.shutdown();
      await Promise.all([a, b].map((e) => e.kill('SIGKILL')));
    }
  }, 180_000);

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

  it('a driver SIGKILLed mid-job, rerun with the same jobId, does not run completed tasks again', async () => {
    const queue = queueName('driver');
    const executor = startExecutor(redisUrl(), queue, 'exec-a', 2);
    await executor.ready;
    const root = `${tmp.dir}/driver-killed`;
    const jobId = 'driver-killed';
    try {
      const driver = spawn(process.execPath, ['--import', 'tsx', driverTs, root, events, redisUrl(), queue, jobId], { stdio: 'ignore' });
      // Kill it once a few SQL tasks have completed (their markers are written) but not all.
      let completed: string[] = [];
      await until(() => {
        completed = markers(root, jobId);
        return completed.length >= 3;
      }, 120_000);
      driver.kill('SIGKILL');
      await once(driver, 'exit');
      completed = markers(root, jobId);
      const sp = await init({ root: { kind: 'local', dir: root }, executor: { kind: 'cluster', redis: redisUrl(), queue }, progress: false, jobId });
      try {
        const rows = await sp.partialSql('SELECT k, count(*) AS n, sum(id)::BIGINT AS s FROM {0} GROUP BY k',
          sp.readParquet(events).repartition(12, { hashBy: 'k' })).takeAll();
        expect(bag(rows)).toEqual(reference);
        const s = sp.lastSummary!;
        expect(s.tasksSkipped).toBeGreaterThanOrEqual(completed.length);
        expect(s.tasksRun + s.tasksSkipped).toBe(s.tasksTotal);
        expect(s.tasksRun).toBeLessThan(s.tasksTotal);
      } finally {
        await sp.shutdown();
      }
    } finally {
      await executor.kill('SIGTERM');
    }
  }, 240_000);

  it('Redis restarted mid-job: the job finishes with the right result or fails clearly, never wrong', async () => {
    const port = 6394;
    const redis = execFileSync('bash', [redisStartSh, String(port)], { encoding: 'utf8' }).trim().split('\n').pop()!;
    const queue = queueName('restart');
    const executors = ['exec-a', 'exec-b'].map((host) => startExecutor(redis, queue, host, 2));
    await Promise.all(executors.map((e) => e.ready));
    const sp = await init({ root: { kind: 'local', dir: `${tmp.dir}/restart` }, executor: { kind: 'cluster', redis, queue }, progress: false });
    try {
      const result = sp.partialSql('SELECT k, count(*) AS n, sum(id)::BIGINT AS s FROM {0} GROUP BY k',
        sp.readParquet(events).repartition(12, { hashBy: 'k' })).takeAll().then((rows) => ({ rows }), (error: unknown) => ({ error }));
      await until(() => markers(`${tmp.dir}/restart`, sp.jobId).length >= 1, 120_000);
      // SHUTDOWN writes the append-only file; the restart reads it back (queue, locks, events).
      execFileSync('redis-cli', ['-p', String(port), 'shutdown'], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 1_000));
      execFileSync('bash', [redisStartSh, String(port)], { stdio: 'ignore' });
      const outcome = await result;
      if ('rows' in outcome) expect(bag(outcome.rows)).toEqual(reference);
      else expect(outcome.error).toBeInstanceOf(MillpondError);
    } finally {
      await sp.shutdown();
      await Promise.all(executors.map((e) => e.kill('SIGKILL')));
      try {
        execFileSync('redis-cli', ['-p', String(port), 'shutdown', 'nosave'], { stdio: 'ignore' });
      } catch {
        // gone
      }
    }
  }, 240_000);

  it('rejects an unreachable Redis with a clear error', async () => {
    await expect(init({ root: { kind: 'local', dir: `${tmp.dir}/none` }, executor: { kind: 'cluster', redis: 'redis://127.0.0.1:1' }, progress: false }))
      .rejects.toBeInstanceOf(MillpondError);
  });
});

/** Completion markers of the job's SQL stage. */
function markers(root: string, jobId: string): string[] {
  const dir = join(root, jobId);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.startsWith('sql-')).flatMap((n) => {
    const done = join(dir, n, '.completed');
    return existsSync(done) ? readdirSync(done).filter((f) => f.endsWith('.json')) : [];
  });
}


async function until(fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
