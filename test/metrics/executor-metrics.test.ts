// A `millpond executor` process serves its task counters at --metrics-listen: after a job its
// attempts and successes match the tasks it ran, and its output bytes grew.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/index.js';
import { queueName, redisUrl } from '../engine/cluster/executors.js';
import { writeInputs } from '../engine/support.js';
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

  it('counts the task attempts it ran and their output bytes', async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const scrape = async (token?: string) => fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
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
});
