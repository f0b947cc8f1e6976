/**
 * graysort: smallpond's GraySort at this machine's scale. 100-byte records (a 10-byte random
 * key, a 90-byte payload; Parquet columns key BLOB, payload BLOB) are generated, put into
 * millpond, shuffled by key prefix into key-range partitions by the engine on a millpond root
 * (repartition(n, { by })), sorted per partition (partialSort('key')) and written back to
 * millpond (writeParquet). Validation follows valsort: every partition in order, each sorted,
 * partition i's max < partition i+1's min, record count, and a checksum (the sum of a 64-bit
 * hash of every record) equal to the input's. Beside it, in the same run: plain DuckDB
 * sorting the same records from local Parquet into a local Parquet file.
 *
 * What each side does (the comparison is not tilted toward the engine): plain DuckDB (no
 * extension, --duckdb-threads threads, the engine's total memory) reads the 8 generated Parquet
 * files from this machine's disk, cold (page cache dropped), and writes one sorted Parquet file
 * there, validated as the engine's output is. The engine reads the same bytes from millpond and
 * writes every intermediate and output file into millpond (3 replicas through the storage
 * daemons of the embedded cluster in this process, on the same disk), in two passes as
 * smallpond's GraySort (shuffle, then per-partition sort): more work than the baseline, not
 * less. A second baseline does what the engine does with storage: the same DuckDB (plus the
 * millpond extension) reads the millpond input and writes its sorted file into millpond;
 * `ratio` is against the local-disk baseline, `ratio_same_storage` against this one. A third
 * baseline runs smallpond's algorithm in plain DuckDB on local disk (the partitioned write, then
 * one sort per partition): `two_pass_ratio` (one ORDER BY over it) is what the algorithm itself
 * costs, the bound of `ratio` for any engine that shuffles and then sorts on this machine, and
 * `ratio_vs_two_pass` compares the engine with it. The CPU
 * seconds of each stage (driver and embedded cluster; task workers) and of the baselines are
 * printed: on a shared machine they say where the time goes when wall times are noise.
 *
 * The engine runs from dist/ (build it first: `npx tsc -p tsconfig.build.json`), as installed:
 * its worker processes load compiled JavaScript.
 *
 * `--executor cluster [--hosts N]` sorts the same input a second time on the cluster executor
 * (N test hosts, each a `millpond executor`; --hosts 0: executors on this host) with the same
 * slots in all, and prints `cluster_ratio` (local time / cluster time) and `cluster_valid`.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startEmbedded } from '../src/cli/embedded.js';
import { kMillpondExtension } from '../src/engine/execution/duckdb.js';
import { parseBytes } from '../src/engine/options.js';
import type { ExecutorOption } from '../src/engine/options.js';
import { connect } from '../src/fs/index.js';
import { queueName, startExecutor, type ExecutorProc } from '../test/engine/cluster/executors.js';
import { TestHosts } from '../test/hosts/support/hosts.js';
import { GiB, MiB, benchDir, cpuSecondsByTree, dropPageCache, intOption, machineNote, makeWorkDir, nowMs, printJson, printTable, round3 } from './lib.js';

const kRecordBytes = 100;
const sqlString = (text: string) => `'${text.replace(/'/g, "''")}'`;

/** smallpond's published GraySort: 110.5 TiB in 30 min 14 s on 50 compute nodes of 192 cores. */
const kSmallpond = { tib: 110.5, seconds: 30 * 60 + 14, nodes: 50, coresPerNode: 192 };
const kSmallpondGiBPerMin = (kSmallpond.tib * 1024) / (kSmallpond.seconds / 60);
const kSmallpondGiBPerMinPerCore = kSmallpondGiBPerMin / (kSmallpond.nodes * kSmallpond.coresPerNode);

/**
 * Records [lo, hi): the key is 10 bytes of md5(row), the payload 90 bytes of md5s of the row
 * with suffixes (incompressible, like gensort's keys; its payload is ASCII filler).
 */
function recordsSql(lo: number, hi: number): string {
  const md5 = (suffix: string) => `md5(range::VARCHAR || '${suffix}')`;
  return `SELECT unhex(substr(md5(range::VARCHAR), 1, 20)) AS key,
      unhex(${['a', 'b', 'c', 'd', 'e'].map(md5).join(' || ')} || substr(${md5('f')}, 1, 20)) AS payload
    FROM range(${lo}, ${hi})`;
}

/** Partition p of n holds keys whose first two bytes (0..65535) fall in [p, p+1) * 65536 / n. */
function keyRangeSql(partitions: number): string {
  return `(('0x' || substr(hex(key), 1, 4))::INTEGER * ${partitions}) // 65536`;
}

/** Count and checksum of records: the sum (as HUGEINT) of a 64-bit hash of each record. */
const kSumSql = 'count(*) AS n, sum(hash(key, payload))::VARCHAR AS checksum';

const rowsOf = async (conn: DuckDBConnection, sql: string) => (await conn.runAndReadAll(sql)).getRowsJS();

interface Validation {
  valid: boolean;
  records: number;
  checksum: string;
  problems: string[];
  ms: number;
}

/** valsort over the output partitions, in order. */
async function validate(conn: DuckDBConnection, files: string[], records: number, checksum: string): Promise<Validation> {
  const started = nowMs();
  const problems: string[] = [];
  let total = 0;
  let sum = 0n;
  let previousMax: string | undefined;
  for (const [i, file] of files.entries()) {
    const [row] = await rowsOf(conn, `SELECT count(*), hex(min(key)), hex(max(key)), sum(hash(key, payload))::VARCHAR,
        count(*) FILTER (WHERE prev > key)
      FROM (SELECT key, payload, lag(key) OVER (ORDER BY file_row_number) AS prev
            FROM read_parquet(${sqlString(file)}, file_row_number = true))`);
    const [n, min, max, partSum, unordered] = row as [bigint, string | null, string | null, string | null, bigint];
    total += Number(n);
    sum += BigInt(partSum ?? '0');
    if (Number(unordered) > 0) problems.push(`partition ${i}: ${unordered} records out of order`);
    if (min !== null && max !== null) {
      // Keys are 10 bytes, so their hex strings have one length and compare like the bytes.
      if (previousMax !== undefined && !(previousMax < min)) problems.push(`partition ${i}: min ${min} <= previous max ${previousMax}`);
      previousMax = max;
    }
  }
  if (total !== records) problems.push(`${total} records, expected ${records}`);
  if (sum.toString() !== checksum) problems.push(`checksum ${sum}, expected ${checksum}`);
  return { valid: problems.length === 0, records: total, checksum: sum.toString(), problems, ms: nowMs() - started };
}

/**
 * The engine as users run it: compiled JavaScript (dist/). From src/ (through tsx) each worker
 * process would transpile the engine as it starts: seconds of CPU no installed engine spends.
 */
async function engineInit(): Promise<typeof import('../dist/engine/index.js').init> {
  try {
    return (await import('../dist/engine/index.js')).init;
  } catch (e) {
    throw new Error(`graysort runs the engine from dist/: build it first (npx tsc -p tsconfig.build.json): ${(e as Error).message}`);
  }
}

export async function graysortBench(options: Map<string, string>): Promise<void> {
  const init = await engineInit();
  const sizeBytes = parseBytes('--size', options.get('size') ?? '1GiB');
  const records = Math.floor(sizeBytes / kRecordBytes);
  const inputFiles = intOption(options, 'files', 8);
  const partitions = intOption(options, 'partitions', 16);
  const workers = intOption(options, 'workers', 2);
  const threadsPerTask = intOption(options, 'threads-per-task', 2);
  const memoryPerTask = options.get('memory-per-task') ?? '3GiB';
  const memoryPerTaskBytes = parseBytes('--memory-per-task', memoryPerTask);
  const syncWrites = options.get('sync-writes') === 'true';
  const duckdbThreads = intOption(options, 'duckdb-threads', 2);
  // --executor cluster: the same sort also on the cluster executor (BullMQ on Redis), with
  // --hosts N executors on test hosts (network namespaces) or, with --hosts 0, on this host.
  const executorKind = options.get('executor') ?? 'local';
  if (executorKind !== 'local' && executorKind !== 'cluster') throw new RangeError('--executor must be local or cluster');
  const hostCount = intOption(options, 'hosts', 4, 0); // 0: the executors on this host
  const inputGiB = (records * kRecordBytes) / GiB;

  const work = await makeWorkDir('graysort');
  const hosts = executorKind === 'cluster' && hostCount > 0 ? TestHosts.create(hostCount, 203) : undefined;
  const executors: ExecutorProc[] = [];
  let benchRedis: string | undefined;  // a Redis this bench started (on the test hosts' bridge)
  try {
    const listenIp = hosts?.gatewayIp ?? '127.0.0.1';
    const cluster = await startEmbedded({
      dataDir: join(work.dir, 'cluster'), mgmtdListen: `tcp://${listenIp}:0`, metaListen: `tcp://${listenIp}:0`,
      host: listenIp, transport: 'tcp', chainCount: 12, syncWrites,
    });
    const fs = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
    const instance = await DuckDBInstance.create(':memory:', {
      allow_unsigned_extensions: 'true', threads: '2', temp_directory: join(work.dir, 'duckdb-tmp'),
    });
    const conn = await instance.connect();
    try {
      await conn.run(`LOAD ${sqlString(kMillpondExtension)}`);
      await conn.run(`SET millpond_meta = ${sqlString(cluster.meta)}`);
      await conn.run(`SET millpond_mgmtd = ${sqlString(cluster.mgmtd)}`);
      await conn.run(`SET millpond_token = ${sqlString(cluster.adminToken)}`);
      await conn.run(`SET millpond_server_key = ${sqlString(cluster.serverKey)}`);

      // Generate locally, then put the same bytes into millpond: both sorts read identical records.
      const localInput = join(work.dir, 'input');
      mkdirSync(localInput);
      let started = nowMs();
      for (let f = 0; f < inputFiles; f++) {
        const lo = Math.floor((records * f) / inputFiles);
        const hi = Math.floor((records * (f + 1)) / inputFiles);
        await conn.run(`COPY (${recordsSql(lo, hi)}) TO ${sqlString(join(localInput, `part-${f}.parquet`))} (FORMAT parquet)`);
      }
      const generateMs = nowMs() - started;
      started = nowMs();
      await fs.mkdir('/graysort/input', { recursive: true });
      let parquetBytes = 0;
      for (const name of readdirSync(localInput).sort()) {
        const data = readFileSync(join(localInput, name));
        parquetBytes += data.length;
        await fs.writeFile(`/graysort/input/${name}`, data);
      }
      const copyMs = nowMs() - started;
      const [input] = await rowsOf(conn, `SELECT ${kSumSql} FROM read_parquet(${sqlString(join(localInput, '*.parquet'))})`);
      const inputChecksum = String(input![1]);
      if (Number(input![0]) !== records) throw new Error(`generated ${input![0]} records, expected ${records}`);

      // The key ranges the engine's shuffle and the two-pass baseline partition by.
      const by = keyRangeSql(partitions);
      // The sort job: input from millpond, shuffle files and output in millpond.
      const sortOnce = async (executor: ExecutorOption, jobs: string, output: string) => {
        const sp = await init({
          root: { kind: 'millpond', dir: jobs, meta: cluster.meta, mgmtd: cluster.mgmtd, token: cluster.adminToken, serverKey: cluster.serverKey },
          workers, threadsPerTask, memoryLimitPerTask: memoryPerTask, progress: false, executor,
        });
        const stageMs: number[] = [];
        // CPU seconds per stage: this process (driver, embedded cluster: meta, storage) and its
        // descendants (the task workers, or the executors). Where the time goes on 2 cores.
        const stageCpu: Array<{ self: number; children: number }> = [];
        let cpuMark = cpuSecondsByTree();
        const cpuLap = () => {
          const now = cpuSecondsByTree();
          stageCpu.push({ self: now.self - cpuMark.self, children: now.children - cpuMark.children });
          cpuMark = now;
        };
        try {
          await dropPageCache();
          cpuMark = cpuSecondsByTree();
          const begun = nowMs();
          // One plan; each stage is computed in turn (later calls reuse the earlier stages' outputs)
          // so the time splits by stage. The sum is the whole job's.
          // smallpond's GraySort splits the input by files first (repartition(files), one shuffle
          // producer per file). On this 2-core machine that measured no faster (shuffle 8.9-10.2 s
          // with 8 producers vs 7.5-7.6 s with one of 2 threads, which fills both cores), so the
          // shuffle reads the scan directly; with more cores and workers, split by files first.
          const shuffled = sp.readParquet('millpond:///graysort/input/*.parquet').repartition(partitions, { by });
          const sorted = shuffled.partialSort('key');
          const summaries = [await shuffled.compute()];
          stageMs.push(nowMs() - begun);
          cpuLap();
          summaries.push(await sorted.compute());
          stageMs.push(nowMs() - begun - stageMs[0]!);
          cpuLap();
          summaries.push(await sorted.writeParquet(output));
          const totalMs = nowMs() - begun;
          stageMs.push(totalMs - stageMs[0]! - stageMs[1]!);
          cpuLap();
          const tasks = summaries.reduce((a, x) => a + x.tasksRun, 0);
          const retries = summaries.reduce((a, x) => a + x.retries, 0);
          const note = `${tasks} tasks, ${retries} retries; shuffle ${(stageMs[0]! / 1000).toFixed(1)} s (1 producer task: ` +
            `a scan is one partition), sort ${(stageMs[1]! / 1000).toFixed(1)} s (${partitions} tasks), ` +
            `write ${(stageMs[2]! / 1000).toFixed(1)} s (${partitions} tasks that hard-link the sorted files into the output)`;
          const hostsUsed = new Set(summaries.flatMap((x) => Object.values(x.placements ?? {}).map((pl) => pl.host))).size;
          const cpuNote = ['shuffle', 'sort', 'write'].map((name, i) =>
            `${name} ${stageCpu[i]!.self.toFixed(1)} + ${stageCpu[i]!.children.toFixed(1)}`).join(', ');
          return { totalMs, stageMs, note, hostsUsed, stageCpu, cpuNote };
        } finally {
          await sp.shutdown();
        }
      };
      const localSort = await sortOnce({ kind: 'local' }, '/graysort/jobs', '/graysort/output');
      const sortMs = localSort.totalMs;
      const stageMs = localSort.stageMs;
      const summaryNote = localSort.note;
      let clusterSort: Awaited<ReturnType<typeof sortOnce>> | undefined;
      let clusterValidation: Validation | undefined;
      if (executorKind === 'cluster') {
        const redis = process.env.MILLPOND_REDIS_URL && !hosts ? process.env.MILLPOND_REDIS_URL
          : (benchRedis = execFileSync('bash', [join(benchDir, '..', 'scripts', 'redis-start.sh'), '6395', listenIp], { encoding: 'utf8' }).trim().split('\n').pop()!);
        const queue = queueName('graysort');
        const count = hosts ? hostCount : 2;
        // The same slots in all as the local run: `workers` spread over the executors.
        for (let h = 1; h <= count; h++) {
          const slots = Math.max(1, Math.round(workers / count));
          executors.push(startExecutor(redis, queue, hosts ? `h${h}` : `exec-${h}`, slots, { MILLPOND_TRANSPORT: 'tcp' },
            hosts ? ['ip', 'netns', 'exec', `${hosts.prefix}-h${h}`] : []));
        }
        await Promise.all(executors.map((e) => e.ready));
        clusterSort = await sortOnce({ kind: 'cluster', redis, queue, slots: workers }, '/graysort/jobs-cluster', '/graysort/output-cluster');
        clusterValidation = await validate(conn, [...Array(partitions).keys()].map((p) => `millpond:///graysort/output-cluster/part-${p}.parquet`), records, inputChecksum);
      }
      const outputs = [...Array(partitions).keys()].map((p) => `millpond:///graysort/output/part-${p}.parquet`);
      const validation = await validate(conn, outputs, records, inputChecksum);

      // Baseline: plain DuckDB (no extension), all of this machine's cores, the engine's total memory.
      const plain = await DuckDBInstance.create(':memory:', {
        threads: String(duckdbThreads),
        memory_limit: `${Math.floor((workers * memoryPerTaskBytes) / MiB)}MB`,
        temp_directory: join(work.dir, 'plain-tmp'),
      });
      const plainConn = await plain.connect();
      const localOutput = join(work.dir, 'sorted.parquet');
      let duckdbMs: number;
      let duckdbValid: boolean;
      let duckdbCpuS = 0;  // in this process (the embedded cluster idles meanwhile)
      let twoPassMs: number;
      let twoPassValid: boolean;
      let twoPassCpuS = 0;
      try {
        await dropPageCache();
        const cpuBefore = cpuSecondsByTree();
        started = nowMs();
        await plainConn.run(`COPY (SELECT * FROM read_parquet(${sqlString(join(localInput, '*.parquet'))}) ORDER BY key)
          TO ${sqlString(localOutput)} (FORMAT parquet)`);
        duckdbMs = nowMs() - started;
        duckdbCpuS = cpuSecondsByTree().self - cpuBefore.self;
        const check = await validate(plainConn, [localOutput], records, inputChecksum);
        duckdbValid = check.valid;

        // The same DuckDB running smallpond's two passes itself, on local disk: one partitioned
        // write by the engine's key-range expression, then each partition read back, sorted and
        // written. No engine, no replication: what the algorithm alone costs against one ORDER BY,
        // so `two_pass_ratio` bounds `ratio` for any engine that shuffles, then sorts.
        const shuffled = join(work.dir, 'two-pass-shuffled');
        await dropPageCache();
        const twoPassBefore = cpuSecondsByTree();
        started = nowMs();
        await plainConn.run(`COPY (SELECT *, ${by} AS p FROM read_parquet(${sqlString(join(localInput, '*.parquet'))}))
          TO ${sqlString(shuffled)} (FORMAT parquet, PARTITION_BY (p), WRITE_PARTITION_COLUMNS false)`);
        const twoPassOutputs = [...Array(partitions).keys()].map((p) => join(work.dir, `two-pass-${p}.parquet`));
        for (const [p, output] of twoPassOutputs.entries()) {
          await plainConn.run(`COPY (SELECT * FROM read_parquet(${sqlString(join(shuffled, `p=${p}`, '*.parquet'))}) ORDER BY key)
            TO ${sqlString(output)} (FORMAT parquet)`);
        }
        twoPassMs = nowMs() - started;
        twoPassCpuS = cpuSecondsByTree().self - twoPassBefore.self;
        twoPassValid = (await validate(plainConn, twoPassOutputs, records, inputChecksum)).valid;
      } finally {
        plainConn.closeSync();
        plain.closeSync();
      }

      // Second baseline, on the engine's storage: the same DuckDB settings plus the millpond
      // extension, reading the millpond input and writing one sorted file into millpond (3
      // replicas). ratio_same_storage compares the engine with it: the engine's own cost without
      // what millpond's replication costs both.
      const onMillpond = await DuckDBInstance.create(':memory:', {
        threads: String(duckdbThreads),
        memory_limit: `${Math.floor((workers * memoryPerTaskBytes) / MiB)}MB`,
        temp_directory: join(work.dir, 'plain-mp-tmp'),
        allow_unsigned_extensions: 'true',
      });
      const mpConn = await onMillpond.connect();
      const mpOutput = 'millpond:///graysort/duckdb-sorted.parquet';
      let duckdbMpMs: number;
      let duckdbMpValid: boolean;
      let duckdbMpCpuS = 0;  // this process: DuckDB and the embedded cluster's storage daemons
      try {
        await mpConn.run(`LOAD ${sqlString(kMillpondExtension)}`);
        await mpConn.run(`SET millpond_meta = ${sqlString(cluster.meta)}`);
        await mpConn.run(`SET millpond_mgmtd = ${sqlString(cluster.mgmtd)}`);
        await mpConn.run(`SET millpond_token = ${sqlString(cluster.adminToken)}`);
        await mpConn.run(`SET millpond_server_key = ${sqlString(cluster.serverKey)}`);
        await dropPageCache();
        const cpuBefore = cpuSecondsByTree();
        started = nowMs();
        await mpConn.run(`COPY (SELECT * FROM read_parquet('millpond:///graysort/input/*.parquet') ORDER BY key)
          TO ${sqlString(mpOutput)} (FORMAT parquet)`);
        duckdbMpMs = nowMs() - started;
        duckdbMpCpuS = cpuSecondsByTree().self - cpuBefore.self;
        duckdbMpValid = (await validate(conn, [mpOutput], records, inputChecksum)).valid;
      } finally {
        mpConn.closeSync();
        onMillpond.closeSync();
      }

      const gibPerMin = inputGiB / (sortMs / 60_000);
      const duckdbMpGibPerMin = inputGiB / (duckdbMpMs / 60_000);
      const duckdbGibPerMin = inputGiB / (duckdbMs / 60_000);
      const cores = 2;
      const figures = {
        size_GiB: round3(inputGiB),
        records,
        input_files: inputFiles,
        partitions,
        workers,
        threads_per_task: threadsPerTask,
        sync_writes: syncWrites,
        sort_s: round3(sortMs / 1000),
        shuffle_stage_s: round3(stageMs[0]! / 1000),
        sort_stage_s: round3(stageMs[1]! / 1000),
        write_stage_s: round3(stageMs[2]! / 1000),
        GiB_per_min: round3(gibPerMin),
        GiB_per_min_per_core: round3(gibPerMin / cores),
        valid: validation.valid,
        duckdb_s: round3(duckdbMs / 1000),
        duckdb_GiB_per_min: round3(duckdbGibPerMin),
        duckdb_valid: duckdbValid,
        ratio: round3(gibPerMin / duckdbGibPerMin),
        duckdb_two_pass_s: round3(twoPassMs / 1000),
        duckdb_two_pass_valid: twoPassValid,
        two_pass_ratio: round3(duckdbMs / twoPassMs),
        ratio_vs_two_pass: round3(twoPassMs / sortMs),
        duckdb_millpond_s: round3(duckdbMpMs / 1000),
        duckdb_millpond_valid: duckdbMpValid,
        ratio_same_storage: round3(gibPerMin / duckdbMpGibPerMin),
        ...(clusterSort ? {
          executor_hosts: hosts ? hostCount : 0,
          cluster_hosts_used: clusterSort.hostsUsed,
          cluster_sort_s: round3(clusterSort.totalMs / 1000),
          cluster_valid: clusterValidation!.valid,
          cluster_ratio: round3(sortMs / clusterSort.totalMs),
        } : {}),
        smallpond_GiB_per_min_per_core: round3(kSmallpondGiBPerMinPerCore),
      };
      printTable(`graysort: ${records.toLocaleString('en-US')} records of 100 bytes (${figures.size_GiB} GiB; ${(parquetBytes / MiB).toFixed(0)} MiB ` +
        `of Parquet in ${inputFiles} files), ${partitions} key-range partitions (${machineNote()})`, [
        ['sort', 's', 'GiB/min', 'GiB/min/core', 'valid'],
        [`millpond engine: ${workers} workers x ${threadsPerTask} threads, millpond root`, figures.sort_s.toFixed(1),
          gibPerMin.toFixed(3), (gibPerMin / cores).toFixed(3), String(validation.valid)],
        ...(clusterSort ? [[`millpond engine, cluster executor: ${hosts ? `${hostCount} test hosts` : 'this host'}, ${workers} slots in all`,
          (clusterSort.totalMs / 1000).toFixed(1), (inputGiB / (clusterSort.totalMs / 60_000)).toFixed(3),
          (inputGiB / (clusterSort.totalMs / 60_000) / cores).toFixed(3), String(clusterValidation!.valid)]] : []),
        ['plain DuckDB: local Parquet ORDER BY key to local Parquet', figures.duckdb_s.toFixed(1),
          duckdbGibPerMin.toFixed(3), (duckdbGibPerMin / cores).toFixed(3), String(duckdbValid)],
        [`plain DuckDB, smallpond's two passes: partitioned write, then ${partitions} sorts, local disk`, figures.duckdb_two_pass_s.toFixed(1),
          (inputGiB / (twoPassMs / 60_000)).toFixed(3), (inputGiB / (twoPassMs / 60_000) / cores).toFixed(3), String(twoPassValid)],
        ['plain DuckDB + millpond extension: millpond Parquet ORDER BY key to millpond', figures.duckdb_millpond_s.toFixed(1),
          duckdbMpGibPerMin.toFixed(3), (duckdbMpGibPerMin / cores).toFixed(3), String(duckdbMpValid)],
        [`smallpond published: ${kSmallpond.tib} TiB in 30 min 14 s, ${kSmallpond.nodes} x ${kSmallpond.coresPerNode} cores`,
          kSmallpond.seconds.toFixed(0), kSmallpondGiBPerMin.toFixed(1), kSmallpondGiBPerMinPerCore.toFixed(3), '-'],
      ]);
      console.log(`\nThe engine's time is the whole job: ${summaryNote}.`);
      console.log(`CPU seconds by stage, this process (driver and the embedded cluster: meta, storage) + task workers: ${localSort.cpuNote}` +
        `${clusterSort ? `; cluster executor: ${clusterSort.cpuNote}` : ''}; plain DuckDB ${duckdbCpuS.toFixed(1)}; ` +
        `plain DuckDB in two passes ${twoPassCpuS.toFixed(1)}; plain DuckDB on millpond ${duckdbMpCpuS.toFixed(1)} (with the storage daemons' share).`);
      console.log('ratio: engine vs plain DuckDB on local disk (no replication); ratio_same_storage: vs plain DuckDB reading and');
      console.log('writing millpond as the engine does (the same 3 replicas), i.e. the engine\'s own cost. two_pass_ratio: plain');
      console.log('DuckDB\'s one ORDER BY vs the same DuckDB doing smallpond\'s shuffle-then-sort itself on local disk, the most');
      console.log('that `ratio` can reach for an engine running those two passes on this machine; ratio_vs_two_pass: that vs the engine.');
      console.log('It includes reading the input from millpond, the shuffle by key prefix (one partitioned write, files read back');
      console.log('from millpond), the per-partition sort (written to the job directory in millpond), the hard links of the sorted');
      console.log('partitions into the output directory (writeParquet is its own pass, linked as smallpond links its sink)');
      console.log('and worker start-up. The page cache was dropped before each sort when allowed (the baseline reads its');
      console.log('local input cold too).');
      console.log(`The cluster ran with syncWrites: ${syncWrites} (3 replicas on this one disk). Setup, not timed: generate`);
      console.log(`${(generateMs / 1000).toFixed(1)} s, copy into millpond ${(copyMs / 1000).toFixed(1)} s; validation ${(validation.ms / 1000).toFixed(1)} s.`);
      console.log(`Per core: this machine has ${cores} cores; smallpond's rate is per core of its ${kSmallpond.nodes * kSmallpond.coresPerNode}.`);
      console.log(`input checksum ${inputChecksum}, output ${validation.checksum}; ${validation.records} records`);
      for (const p of validation.problems) console.log(`INVALID: ${p}`);
      printJson('graysort', figures);
    } finally {
      conn.closeSync();
      instance.closeSync();
      fs.close();
      await Promise.all(executors.map((e) => e.kill('SIGTERM')));
      await cluster.stop();
    }
  } finally {
    if (benchRedis) {
      try {
        execFileSync('redis-cli', ['-u', benchRedis, 'shutdown', 'nosave'], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    await hosts?.destroy();
    work.cleanup();
  }
}
