/**
 * A driver process for the cluster executor's tests: runs the test job on the given root and
 * queue with the given jobId, prints "done <rows>" and exits. Tests SIGKILL it mid-job.
 *   node --import tsx driver.ts <rootDir> <inputGlob> <redis> <queue> <jobId>
 */
import { init } from '../../../src/engine/index.js';

const [rootDir, input, redis, queue, jobId] = process.argv.slice(2) as [string, string, string, string, string];
const sp = await init({ root: { kind: 'local', dir: rootDir }, executor: { kind: 'cluster', redis, queue }, progress: false, jobId });
const rows = await sp.partialSql('SELECT k, count(*) AS n, sum(id)::BIGINT AS s FROM {0} GROUP BY k',
  sp.readParquet(input).repartition(12, { hashBy: 'k' })).takeAll();
console.log(`done ${rows.length}`);
await sp.shutdown();
