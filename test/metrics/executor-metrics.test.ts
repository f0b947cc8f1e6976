// A `millpond executor` process serves its task counters at --metrics-listen: after a job its
// attempts and successes match the tasks it ran, and its output bytes grew; on a millpond root,
// its per-task histograms of bytes read and written cover the input and outputs, and the job's
// report carries each task's bytes.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded } from '../../src/cli/embedded.js';
import { listJobs } from '../../src/cluster/jobs.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { init } from '../../src/engine/index.js';
import { connect } from '../../src/fs/index.js';
import { until } from '../cluster/support/processes.js';
import { queueName, redisUrl } from '../engine/cluster/executors.js';
import { plainDuckDb, writeInputs } from '../engine/support.js';
import { testKeys, type TestKeys } from '../support/auth.js';
import { parsePrometheusText, sampleValue } from '../support/prom-text.js';
import { tempDir } from '../support/tmp.js';

const mainTs = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

describe('metrics of a cluster executor', () => {
  const tmp = tempDir('metrics-exec');
  let keys: TestKeys;
  const queue = queueName('metrics');
  let child: ReturnType<typeof spawn>;
  let url: string;

  beforeAll(async () => {
    keys = testKeys();
    await writeInputs(tmp.dir);
    child = spawn(process.execPath, ['--import', 'tsx', mainTs, 'executor', '--redis', redisUrl(), '--queue', queue, '--slots', '2', '--host', 'exec-m',
      '--metrics-listen', '127.0.0.1:0', '--secret-file', keys.secretFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    url = await new Promise<string>((resolve, reject) => {
      let metrics = '';
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /^metrics (\S+)$/.exec(line);
        if (m) metrics = m[1]!;
        if (/^executor /.test(line)) resolve(metrics);
      });
      child.once('exit', () => reject(new Error('executor exited before it served')));
    });
  }, 60_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    keys?.cleanup();
    tmp.cleanup();
  });

  const scrape = async (token?: string) => fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('counts the task attempts it ran and their output bytes', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await scrape()).status).toBe(401);
    const sp = await init({ root: { kind: 'local', dir: `${tmp.dir}/out` }, executor: { kind: 'cluster', redis: redisUrl(), queue }, progress: false });
    try {
      const df = sp.readParquet(`${tmp.dir}/events-*.parquet`).repartition(4, { hashBy: 'id' });
      expect((await df.takeAll()).length).toBe(600);
      const tasks = Object.keys(sp.lastSummary!.placements!).length;
      expect(tasks).toBeGreaterThan(0);
      // A speculative copy of a straggler may still be finishing when the job is done.
      const deadline = Date.now() + 30_000;
      let f = parsePrometheusText(await (await scrape(keys.adminToken)).text());
      while (sampleValue(f, 'millpond_engine_tasks_running') > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        f = parsePrometheusText(await (await scrape(keys.adminToken)).text());
      }
      // At least one attempt per task (a speculative copy of a straggler is one more).
      const attempts = sampleValue(f, 'millpond_engine_task_attempts_total');
      expect(attempts).toBeGreaterThanOrEqual(tasks);
      expect(sampleValue(f, 'millpond_engine_tasks_total', { outcome: 'succeeded' })).toBeGreaterThanOrEqual(tasks);
      expect(sampleValue(f, 'millpond_engine_tasks_total')).toBe(attempts); // every attempt finished, counted once
      expect(sampleValue(f, 'millpond_engine_tasks_running')).toBe(0);
      expect(sampleValue(f, 'millpond_engine_output_bytes_total')).toBeGreaterThan(0);
    } finally {
      await sp.shutdown();
    }
  }, 120_000);

  it('observes the bytes each task read from and wrote to millpond, and the job report carries them', async () => {
    const cluster = await startEmbedded({
      dataDir: join(tmp.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
      host: '127.0.0.1', transport: 'tcp', chainCount: 6, syncWrites: false,
    });
    const auth = { token: cluster.adminToken, serverKey: cluster.serverKey };
    const fs = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'tcp', ...auth });
    const admin = new MgmtdClient([cluster.mgmtd], { auth });
    const sp = await init({
      root: { kind: 'millpond', dir: '/jobs', meta: cluster.meta, mgmtd: cluster.mgmtd, ...auth },
      executor: { kind: 'cluster', redis: redisUrl(), queue }, progress: false,
    });
    try {
      // One Parquet file of known size (several chunks), every column read by the job's one task.
      const local = join(tmp.dir, 'rows.parquet');
      const db = await plainDuckDb();
      try {
        await db.conn.run(`COPY (SELECT range AS id, range % 13 AS k, md5(range::VARCHAR) AS name FROM range(200000)) TO '${local}' (FORMAT parquet)`);
      } finally {
        db.close();
      }
      const input = readFileSync(local);
      const inputBytes = input.length;
      expect(inputBytes).toBeGreaterThan(2 * 1024 * 1024);
      await fs.mkdir('/input', { recursive: true });
      await fs.writeFile('/input/rows.parquet', input);
      const family = (f: Map<string, { type: string }>, name: string) => f.get(name)?.type;
      const before = parsePrometheusText(await (await scrape(keys.adminToken)).text());
      const sql = 'SELECT k, count(*) AS n, sum(id)::BIGINT AS s, max(name) AS m FROM {0} GROUP BY k';
      const sums = await sp.partialSql(sql, sp.readParquet('millpond:///input/rows.parquet')).takeAll();
      expect(sums.length).toBe(13);
      expect(sums.reduce((a, r) => a + Number(r.n), 0)).toBe(200_000);
      const tasks = Object.keys(sp.lastSummary!.placements!).length;
      expect(tasks).toBe(1);
      const deadline = Date.now() + 30_000;
      let after = parsePrometheusText(await (await scrape(keys.adminToken)).text());
      while (sampleValue(after, 'millpond_engine_tasks_running') > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        after = parsePrometheusText(await (await scrape(keys.adminToken)).text());
      }
      const delta = (name: string, sample = name) => sampleValue(after, name, {}, sample) - sampleValue(before, name, {}, sample);
      expect(family(after, 'millpond_engine_task_read_bytes')).toBe('histogram');
      expect(family(after, 'millpond_engine_task_written_bytes')).toBe('histogram');
      // One observation per succeeded attempt (a speculative twin may add one).
      const succeeded = delta('millpond_engine_tasks_total');
      expect(succeeded).toBeGreaterThanOrEqual(1);
      expect(delta('millpond_engine_task_read_bytes', 'millpond_engine_task_read_bytes_count')).toBe(succeeded);
      expect(delta('millpond_engine_task_written_bytes', 'millpond_engine_task_written_bytes_count')).toBe(succeeded);
      // The input read whole, per attempt, and not absurdly more (footers read again).
      const read = delta('millpond_engine_task_read_bytes', 'millpond_engine_task_read_bytes_sum');
      expect(read).toBeGreaterThanOrEqual(inputBytes * succeeded);
      expect(read).toBeLessThan(3 * inputBytes * succeeded);
      // Written: at least the outputs this executor recorded.
      const outputBytes = delta('millpond_engine_output_bytes_total');
      expect(outputBytes).toBeGreaterThan(0);
      const written = delta('millpond_engine_task_written_bytes', 'millpond_engine_task_written_bytes_sum');
      expect(written).toBeGreaterThanOrEqual(outputBytes);
      expect(written).toBeLessThan(3 * outputBytes + 1024 * 1024);
      // The driver's job report (to the root's mgmtd) carries the task's bytes.
      const job = await until(async () => (await listJobs(admin)).find((j) => j.jobId === sp.jobId && j.state === 'done'), 10_000, 'the job reported done');
      expect(job.tasks).toHaveLength(1);
      expect(job.tasks[0]!.readBytes).toBeGreaterThanOrEqual(inputBytes);
      expect(job.tasks[0]!.readBytes).toBeLessThan(3 * inputBytes);
      expect(job.tasks[0]!.writtenBytes).toBeGreaterThan(0);
    } finally {
      await sp.shutdown();
      admin.close();
      fs.close();
      await cluster.stop();
    }
  }, 120_000);
});
