/**
 * Benchmark entry point: `npm run bench -- <name> [--option value ...]`. Each bench prints a
 * table and, last, one JSON line with its figures and the baseline measured in the same run.
 */
import { chunkstoreBench } from './chunkstore.js';
import { clusterIoBench } from './cluster-io.js';
import { dataplaneBench } from './dataplane.js';
import { duckdbScanBench } from './duckdb-scan.js';
import { engineOverheadBench } from './engine-overhead.js';
import { fsApiBench } from './fs-api.js';
import { fuseBench } from './fuse.js';
import { faultsBench } from './faults.js';
import { graysortBench } from './graysort.js';
import { hostsBench } from './hosts.js';
import { localityBench } from './locality.js';
import { memoryBench } from './memory.js';
import { metaBench } from './meta.js';
import { parseOptions } from './lib.js';
import { planRewritesBench } from './plan-rewrites.js';
import { randreadBench } from './randread.js';
import { s3Bench } from './s3.js';

const benches: Record<string, (options: Map<string, string>) => Promise<void>> = {
  chunkstore: chunkstoreBench,
  'cluster-io': clusterIoBench,
  dataplane: dataplaneBench,
  'duckdb-scan': duckdbScanBench,
  'engine-overhead': engineOverheadBench,
  'fs-api': fsApiBench,
  fuse: fuseBench,
  faults: faultsBench,
  graysort: graysortBench,
  hosts: hostsBench,
  locality: localityBench,
  memory: memoryBench,
  meta: metaBench,
  'plan-rewrites': planRewritesBench,
  randread: randreadBench,
  s3: s3Bench,
};

const [name, ...rest] = process.argv.slice(2);
const bench = name === undefined ? undefined : benches[name];
if (!bench) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [--option value ...]`);
  process.exit(2);
}
await bench(parseOptions(rest));
// Every bench should close what it opened, so the process ends when the bench returns (s3 and
// cluster-io did not while the ZAP handler outlived the servers: src/auth/zap.ts). One that leaves
// a handle open is named on stderr and the process ends after kLeakGraceMs anyway, so
// bench/record.sh's `after` line is not left waiting. The timer is unref'd: it never keeps a
// clean process alive.
const kLeakGraceMs = 10_000;
setTimeout(() => {
  // stdout and stderr are Sockets when piped (bench/record.sh tees them): not the bench's.
  const stdio = new Set<object>([process.stdin, process.stdout, process.stderr]);
  const handles = (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles().filter((h) => !stdio.has(h)).map((h) => h.constructor.name);
  const what = handles.length > 0 ? `handles still open: ${handles.join(', ')}` : 'no JS handle open (a native one, of the addon or zeromq, keeps the loop)';
  console.error(`bench ${name}: ${kLeakGraceMs} ms after it returned, ${what}; exiting`);
  process.exit(0);
}, kLeakGraceMs).unref();
