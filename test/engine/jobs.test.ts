/**
 * Jobs as processes: a worker SIGKILLed mid-task (its task is retried, the result unchanged),
 * resume of a finished job (no work), recompute, and errors on bad input.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MillpondError } from '../../src/errors.js';
import { init } from '../../src/engine/index.js';
import { processAlive } from '../support/child.js';
import { tempDir } from '../support/tmp.js';
import { bag, plainDuckDb, writeInputs } from './support.js';

const run = promisify(execFile);
let tmp: ReturnType<typeof tempDir>;
let events: string;
let db: Awaited<ReturnType<typeof plainDuckDb>>;
const options = () => ({ root: { kind: 'local' as const, dir: `${tmp.dir}/root` }, workers: 2, progress: false });

beforeAll(async () => {
  tmp = tempDir('engine-jobs');
  await writeInputs(tmp.dir);
  events = `${tmp.dir}/events-*.parquet`;
  db = await plainDuckDb();
});

afterAll(() => {
  db?.close();
  tmp?.cleanup();
});

const pipeline = (sp: Awaited<ReturnType<typeof init>>) =>
  sp.partialSql('SELECT k, count(*) AS c, sum(id)::BIGINT AS s FROM {0} GROUP BY k', sp.readParquet(events).repartition(3, { hashBy: 'k' }));
const expected = () => db.rows(`SELECT k, count(*) AS c, sum(id)::BIGINT AS s FROM read_parquet('${events}') GROUP BY k`);

describe('retries and resume', () => {
  it('a worker killed mid-task: the task is retried and the result is unchanged', async () => {
    const stallFile = `${tmp.dir}/stalled-pid`;
    process.env.MILLPOND_ENGINE_TEST_STALL_FILE = stallFile;
    process.env.MILLPOND_ENGINE_TEST_STALL_MS = '20000';
    const sp = await init({ ...options(), jobId: 'killed' });
    try {
      const running = pipeline(sp).takeAll();
      while (!existsSync(stallFile) || readFileSync(stallFile, 'utf8') === '') await sleep(20);
      const pid = Number(readFileSync(stallFile, 'utf8'));
      expect(sp.workerPids()).toContain(pid);
      process.kill(pid, 'SIGKILL');
      expect(bag(await running)).toEqual(bag(await expected()));
      expect(sp.lastSummary!.retries).toBe(1);
      expect(sp.workerPids()).not.toContain(pid);
    } finally {
      delete process.env.MILLPOND_ENGINE_TEST_STALL_FILE;
      delete process.env.MILLPOND_ENGINE_TEST_STALL_MS;
      await sp.shutdown();
    }
  });

  it('a rerun of a finished job does no work; recompute() runs again', async () => {
    const first = await init({ ...options(), jobId: 'resume' });
    try {
      expect(bag(await pipeline(first).takeAll())).toEqual(bag(await expected()));
      expect(first.lastSummary).toMatchObject({ tasksTotal: 4, tasksRun: 4, tasksSkipped: 0 });
      // The same DataFrame again in the same session: nothing runs either.
      await pipeline(first).count();
      expect(first.lastSummary).toMatchObject({ tasksRun: 0, tasksSkipped: 4 });
    } finally {
      await first.shutdown();
    }
    const jobDir = `${tmp.dir}/root/resume`;
    const plan = JSON.parse(readFileSync(`${jobDir}/plan.json`, 'utf8')) as { nodes: { id: string }[] };
    expect(plan.nodes.length).toBeGreaterThanOrEqual(3);
    const shuffle = plan.nodes.find((n) => n.id.startsWith('shuffle-'))!;
    // One file per (partition, producer): 3 partitions from 1 producer.
    expect(readdirSync(`${jobDir}/${shuffle.id}`).filter((f) => f.endsWith('.parquet')).sort()).toEqual(['0-0.parquet', '1-0.parquet', '2-0.parquet']);

    const second = await init({ ...options(), jobId: 'resume' });
    try {
      expect(bag(await pipeline(second).takeAll())).toEqual(bag(await expected()));
      expect(second.lastSummary).toMatchObject({ tasksTotal: 4, tasksRun: 0, tasksSkipped: 4 });
      // recompute reruns the node it is called on (its inputs' results are reused).
      expect(bag(await pipeline(second).recompute().takeAll())).toEqual(bag(await expected()));
      expect(second.lastSummary).toMatchObject({ tasksRun: 3, tasksSkipped: 1 });
    } finally {
      await second.shutdown();
    }
  });

  it('recompute() reruns the node it is called on; a rerun input invalidates its consumers', async () => {
    const count = (sp: Awaited<ReturnType<typeof init>>, recompute = false) => {
      const base = sp.readParquet(events).repartition(2, { byRows: true });
      return sp.partialSql('SELECT count(*) AS c FROM {0}', recompute ? base.recompute() : base).count();
    };
    const sp = await init({ ...options(), jobId: 'chain' });
    try {
      await count(sp);
      expect(sp.lastSummary).toMatchObject({ tasksRun: 3 });
      // As smallpond: the flag passes to derived DataFrames, whose own node is recomputed.
      await count(sp, true);
      expect(sp.lastSummary).toMatchObject({ tasksRun: 2, tasksSkipped: 1 });
    } finally {
      await sp.shutdown();
    }
    // Lose the shuffle producer's marker: it reruns, and so does everything that read it.
    const jobDir = `${tmp.dir}/root/chain`;
    const shuffle = readdirSync(jobDir).find((d) => d.startsWith('shuffle-'))!;
    rmSync(`${jobDir}/${shuffle}/.completed/0.json`);
    const again = await init({ ...options(), jobId: 'chain' });
    try {
      await count(again);
      expect(again.lastSummary).toMatchObject({ tasksRun: 3, tasksSkipped: 0 });
    } finally {
      await again.shutdown();
    }
  });
});

describe('warm slots', () => {
  it('init() starts every worker before any task, and the first tasks run in them', async () => {
    const sp = await init({ ...options(), jobId: 'warm' });
    try {
      // No task has been asked for: the workers start because init() started them.
      const deadline = Date.now() + 60_000;
      while (sp.workerPids().length < 2 && Date.now() < deadline) await sleep(20);
      const warm = sp.workerPids();
      expect(warm).toHaveLength(2);
      expect(bag(await pipeline(sp).takeAll())).toEqual(bag(await expected()));
      const ranIn = new Set(Object.values(sp.lastSummary!.placements!).map((p) => p.pid));
      expect([...ranIn].every((pid) => warm.includes(pid))).toBe(true);
      expect(sp.workerPids()).toEqual(warm);
    } finally {
      await sp.shutdown();
    }
  });
});

describe('a driver that ends without shutdown(), or shuts down at once', () => {
  // A script ends when its work does, as a Ray driver ends without ray.shutdown(): idle
  // workers hold neither the driver's event loop nor their own lives past it.
  const runScript = async (name: string, body: string) => {
    const script = `${tmp.dir}/${name}.mts`;
    writeFileSync(script, `import { init } from ${JSON.stringify(fileURLToPath(new URL('../../src/engine/index.ts', import.meta.url)))};\n` +
      `const sp = await init(${JSON.stringify({ ...options(), jobId: name })});\n${body}\n` +
      'console.log(JSON.stringify(sp.workerPids()));\n');
    const started = Date.now();
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', script], { cwd: process.cwd(), timeout: 60_000 });
    const lines = stdout.trim().split('\n');
    return { pids: JSON.parse(lines.at(-1)!) as number[], lines, elapsedMs: Date.now() - started, stderr };
  };

  /** The workers exit within 10 s of their driver. */
  const expectGone = async (pids: number[]) => {
    const deadline = Date.now() + 10_000;
    while (pids.some(processAlive) && Date.now() < deadline) await sleep(50);
    expect(pids.filter(processAlive)).toEqual([]);
  };

  it('ends once its job is done, and its workers end with it', async () => {
    const { pids } = await runScript('no-shutdown', `const n = (await sp.readParquet(${JSON.stringify(events)}).repartition(2, { hashBy: 'k' }).takeAll()).length;\nif (n === 0) throw new Error('no rows');`);
    expect(pids).toHaveLength(2);
    await expectGone(pids);
  }, 90_000);

  it('shut down while its workers still start: they end quietly', async () => {
    // The workers (stderr inherited) get 'exit' before they listen, or find their driver gone
    // when they say they are ready; before the fix both failed inside Node's IPC with a stack.
    const { lines, stderr } = await runScript('early-shutdown', 'console.log(JSON.stringify(sp.workerPids()));\nawait sp.shutdown();');
    const pids = JSON.parse(lines[0]!) as number[];
    expect(pids).toHaveLength(2);
    await expectGone(pids);
    expect(stderr).toBe('');
  }, 90_000);

  it('ends at once when it ran no job, though init() started its workers', async () => {
    const { pids, elapsedMs } = await runScript('no-job', '');
    expect(pids).toHaveLength(2);
    expect(elapsedMs).toBeLessThan(30_000); // before the change it never ended: the timeout killed it
    await expectGone(pids);
  }, 90_000);
});

describe('by-files repartition in a job', () => {
  // A shuffle (1 producer, 3 partitions), a by-files repartition into 2 (no task), 2 SQL tasks.
  const byFiles = (sp: Awaited<ReturnType<typeof init>>) =>
    sp.partialSql('SELECT k, count(*) AS c, sum(id)::BIGINT AS s FROM {0} GROUP BY k',
      sp.readParquet(events).repartition(3, { by: 'id % 3' }).repartition(2));
  const expectedByFiles = async () => {
    const rows = await db.rows(`SELECT id % 3 < 2 AS first, k, count(*) AS c, sum(id)::BIGINT AS s FROM read_parquet('${events}') GROUP BY ALL`);
    return rows.map(({ first: _, ...r }) => r);
  };

  it('resumes through a by-files node; a rerun input invalidates the consumers behind it', async () => {
    const first = await init({ ...options(), jobId: 'by-files' });
    try {
      expect(bag(await byFiles(first).takeAll())).toEqual(bag(await expectedByFiles()));
      expect(first.lastSummary).toMatchObject({ tasksTotal: 3, tasksRun: 3 });
    } finally {
      await first.shutdown();
    }
    const jobDir = `${tmp.dir}/root/by-files`;
    const plan = JSON.parse(readFileSync(`${jobDir}/plan.json`, 'utf8')) as { nodes: { id: string; tasks: number }[] };
    const filesNode = plan.nodes.find((n) => n.id.startsWith('files-'))!;
    expect(filesNode.tasks).toBe(0);
    expect(existsSync(`${jobDir}/${filesNode.id}`)).toBe(false);

    const second = await init({ ...options(), jobId: 'by-files' });
    try {
      expect(bag(await byFiles(second).takeAll())).toEqual(bag(await expectedByFiles()));
      expect(second.lastSummary).toMatchObject({ tasksTotal: 3, tasksRun: 0, tasksSkipped: 3 });
    } finally {
      await second.shutdown();
    }
    // Lose the shuffle's marker: it reruns, and so do the SQL tasks reading its files by groups.
    const shuffle = plan.nodes.find((n) => n.id.startsWith('shuffle-'))!;
    rmSync(`${jobDir}/${shuffle.id}/.completed/0.json`);
    const third = await init({ ...options(), jobId: 'by-files' });
    try {
      expect(bag(await byFiles(third).takeAll())).toEqual(bag(await expectedByFiles()));
      expect(third.lastSummary).toMatchObject({ tasksRun: 3, tasksSkipped: 0 });
    } finally {
      await third.shutdown();
    }
  });
});

describe('errors', () => {
  it('an SQL error carries the SQL and the partition, and is not retried', async () => {
    const sp = await init({ ...options(), jobId: 'bad-sql' });
    try {
      const bad = sp.partialSql('SELECT no_such_column FROM {0}', sp.readParquet(events).repartition(3));
      const err = await bad.count().then(() => undefined, (e: unknown) => e) as MillpondError & { sql: string; partition: number };
      expect(err).toBeInstanceOf(MillpondError);
      expect(err.code).toBe('ESQL');
      expect(err.sql).toBe('SELECT no_such_column FROM {0}');
      expect([0, 1, 2]).toContain(err.partition);
      expect(err.message).toMatch(/partition \d/);
      expect(err.message).toContain('no_such_column');
      expect(err.message).not.toMatch(/attempts/);
    } finally {
      await sp.shutdown();
    }
  });

  it('a missing path, a wrong placeholder and an out-of-range by value', async () => {
    const sp = await init({ ...options(), jobId: 'bad-input' });
    try {
      const missing = await sp.readParquet(`${tmp.dir}/nope.parquet`).count().then(() => undefined, (e: unknown) => e) as MillpondError;
      expect(missing.code).toBe('ENOENT');
      expect(missing.message).toContain(`${tmp.dir}/nope.parquet`);
      const noMatch = await sp.readParquet(`${tmp.dir}/nope-*.parquet`).count().then(() => undefined, (e: unknown) => e) as MillpondError;
      expect(noMatch.code).toBe('ENOENT');

      const df = sp.readParquet(events);
      expect(() => sp.partialSql('SELECT * FROM {0} JOIN {1} USING (id)', df)).toThrow(/placeholder \{1\}.*1 input was given/);
      expect(() => sp.partialSql('SELECT * FROM {0} JOIN {1} USING (id)', df.repartition(2), df.repartition(3)))
        .toThrow(/same number of partitions, got 2, 3/);

      const outOfRange = await df.repartition(4, { by: 'k' }).count().then(() => undefined, (e: unknown) => e) as MillpondError;
      expect(outOfRange.code).toBe('EINVAL');
      expect(outOfRange.message).toMatch(/by: "k".*value 10 is not a partition index in \[0, 4\)/);

      expect(() => df.repartition(0)).toThrow(RangeError);
      expect(() => df.repartition(2, { hashBy: 'k', by: 'k' })).toThrow(TypeError);
      expect(() => df.repartition(2, { hashBy: 'k', byRows: true })).toThrow(TypeError);
      await expect(init({ ...options(), workers: 0 })).rejects.toThrow(RangeError);
      await expect(init({ root: { kind: 'millpond', dir: '/x', meta: '', mgmtd: '' } })).rejects.toThrow(/root.meta must be a non-empty string/);
      await expect(init({ root: { kind: 'millpond', dir: 'x', meta: 'tcp://127.0.0.1:1', mgmtd: 'tcp://127.0.0.1:1' } })).rejects.toThrow(/absolute path/);
    } finally {
      await sp.shutdown();
    }
  });

  it('a JS function that throws fails the job with its message', async () => {
    const sp = await init({ ...options(), jobId: 'bad-fn' });
    try {
      const df = sp.readParquet(events).repartition(2).map(() => { throw new Error('boom'); });
      await expect(df.count()).rejects.toThrow(/map function threw on row 0: boom/);
    } finally {
      await sp.shutdown();
    }
  });

  it('a JS function that returns the wrong shape fails the job at once (EINVAL, no retries)', async () => {
    const sp = await init({ ...options(), jobId: 'bad-shape' });
    try {
      const input = sp.readParquet(events).repartition(2);
      // No " after N attempts": the same rows give the same wrong shape, so no attempt is retried.
      await expect(input.flatMap(() => 5 as never).count()).rejects.toMatchObject({
        code: 'EINVAL', message: expect.stringMatching(/^task failed \(js node [^)]*\): flatMap function must return an array of row objects, got number/),
      });
      await expect(input.map(() => [1, 2] as never).count()).rejects.toMatchObject({
        code: 'EINVAL', message: expect.stringMatching(/^task failed \(js node [^)]*\): map function must return row objects, got an array/),
      });
    } finally {
      await sp.shutdown();
    }
  });
});
