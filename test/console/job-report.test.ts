/**
 * Job reports never slow or fail a job: the reporter throttles (a burst of task events is one or
 * two sends, never two at once), its sends' failures are dropped, and a real job whose mgmtd does
 * not answer finishes with the right result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobReport } from '../../src/cluster/jobs.js';
import { init } from '../../src/engine/index.js';
import { JobReporter } from '../../src/engine/execution/job-reporter.js';
import { jobReportLimits } from '../../src/limits.js';
import { freePort } from '../cluster/support/processes.js';
import { bag, plainDuckDb, writeInputs } from '../engine/support.js';
import { testKeys } from '../support/auth.js';
import { tempDir } from '../support/tmp.js';

describe('job reporter', () => {
  const t = tempDir('job-report');
  beforeAll(() => writeInputs(t.dir));
  afterAll(() => t.cleanup());

  it('a burst of task events is sent at most once per interval, one send at a time, the final state last', async () => {
    const sent: JobReport[] = [];
    let inFlight = 0;
    let overlapped = false;
    const sink = async (r: JobReport) => {
      if (inFlight > 0) overlapped = true;
      inFlight++;
      sent.push(structuredClone(r));
      await new Promise((resolve) => setTimeout(resolve, 50));
      inFlight--;
    };
    const tasks = Array.from({ length: 200 }, (_, i) => ({ key: `s/${i}`, stage: 's', task: i, reused: i === 0 }));
    const reporter = new JobReporter(sink, 'burst', 's', tasks);
    const started = Date.now();
    for (let i = 1; i < 200; i++) {
      reporter.started(`s/${i}`, 1);
      reporter.done(`s/${i}`, { placement: { host: 'h', executor: 'local', pid: 7 } });
    }
    expect(Date.now() - started).toBeLessThan(jobReportLimits.reportIntervalMs); // the calls only touch memory
    reporter.finish('done');
    await reporter.settled();
    expect(overlapped).toBe(false);
    expect(sent.length).toBeLessThanOrEqual(3);
    const last = sent.at(-1)!;
    expect(last).toMatchObject({ jobId: 'burst', state: 'done', tasksTotal: 200 });
    expect(last.tasks.filter((x) => x.state === 'done')).toHaveLength(199);
    expect(last.tasks[0]).toMatchObject({ state: 'reused', attempts: 0 });
    expect(reporter.idle).toBe(true);
  });

  it('a failing sink is counted and dropped', async () => {
    const reporter = new JobReporter(() => Promise.reject(new Error('mgmtd down')), 'failing', 's', [{ key: 's/0', stage: 's', task: 0, reused: false }]);
    reporter.finish('failed', 'boom');
    await reporter.settled();
    expect(reporter.failures).toBeGreaterThanOrEqual(1);
  });

  it('a real job reporting to an mgmtd that does not answer finishes with the right result', async () => {
    const keys = testKeys();
    const db = await plainDuckDb();
    const sp = await init({
      root: { kind: 'local', dir: `${t.dir}/root` }, workers: 2, progress: false, jobId: 'unreported',
      reportTo: { mgmtd: `tcp://127.0.0.1:${await freePort()}`, token: keys.adminToken, serverKey: keys.cluster.server.publicKey },
    });
    try {
      const sql = 'SELECT k, count(*) AS c FROM {0} GROUP BY k';
      const rows = await sp.partialSql(sql, sp.readParquet(`${t.dir}/events-*.parquet`).repartition(3, { hashBy: 'k' })).takeAll();
      expect(bag(rows)).toEqual(bag(await db.rows(`SELECT k, count(*) AS c FROM read_parquet('${t.dir}/events-*.parquet') GROUP BY k`)));
      expect(sp.lastSummary).toMatchObject({ tasksRun: 4, retries: 0 });
    } finally {
      const closing = Date.now();
      await sp.shutdown();
      // The last report's wait is bounded by its timeout (plus the one before it, if in flight).
      expect(Date.now() - closing).toBeLessThan(3 * jobReportLimits.reportTimeoutMs + 5_000);
      db.close();
      keys.cleanup();
    }
  }, 60_000);
});
