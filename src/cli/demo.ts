/**
 * `millpond demo`: the whole stack on this machine, saying what it does as it goes.
 *   1. starts the embedded cluster (mgmtd, meta on SQLite, 3 storage daemons, chains of 3);
 *   2. generates a Parquet dataset (plain DuckDB, local files) and writes it into millpond;
 *   3. runs a smallpond-style job on it (repartition by files, then with hashBy; partialSql;
 *      writeParquet),
 *      every task a DuckDB reading and writing millpond:// through the extension;
 *   4. runs `millpond sql` (a child process, the real command) over the job's output;
 *   5. runs the same query with plain DuckDB over the local files and checks the answers agree;
 *   6. prints the figures, last, as one line `figures {json}` (DemoFigures), and removes
 *      everything it made.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { init } from '../engine/index.js';
import { MillpondError } from '../errors.js';
import { connect, type FileSystem } from '../fs/index.js';
import type { CliConfig } from './config.js';
import { startEmbedded, type Embedded } from './embedded.js';
import { formatBytes } from './progress.js';

/** The line the demo ends with (`figures ` + this as JSON); test/cli/demo.test.ts reads it. */
export interface DemoFigures {
  datasetBytes: number;
  rows: number;
  files: number;
  /** Writing the dataset into millpond (3 replicas of every byte). */
  writeGBps: number;
  /** The job: wall-clock seconds of writeParquet, and input rows per second. */
  jobSeconds: number;
  jobRowsPerSec: number;
  /** Input bytes per second of the job. */
  jobGBps: number;
  /** The same query, plain DuckDB over the local files, writing its result to a local file. */
  duckdbSeconds: number;
  /** jobSeconds / duckdbSeconds. */
  jobVsDuckdb: number;
  workers: number;
  partitions: number;
  totalSeconds: number;
}

/** The dataset's size (~210 MB): enough for real figures, small enough for well under a minute. */
const DEFAULT_SIZE_MIB = 200;
const FILES = 8;
const PARTITIONS = 8;
// Parquet bytes per generated row (measured ~85 with these columns and DuckDB's defaults: the
// two random UUIDs of `session` are most of it); the real size is printed and used in figures.
const BYTES_PER_ROW_ESTIMATE = 85;
const USERS = 100_000;
const MIB = 1 << 20;

/** The demo's query, over `{0}` (a partition in the job; all files in plain DuckDB). */
const BY_USER = 'SELECT user_id, count(*) AS events, sum(cents)::BIGINT AS cents, max(ts) AS last_ts FROM {0} GROUP BY user_id';

const say = (line: string) => console.log(line);
const seconds = (fromMs: number) => (performance.now() - fromMs) / 1000;
const round = (x: number, digits: number) => Number(x.toFixed(digits));

export async function demo(config: CliConfig, flags: Map<string, string>): Promise<void> {
  const sizeMiB = Number(flags.get('size-mib') ?? DEFAULT_SIZE_MIB);
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || sizeMiB > 65536) throw new RangeError('--size-mib must be 1..65536');
  const workers = Math.max(1, Math.min(4, cpus().length));
  const startedAll = performance.now();
  const keep = flags.has('data-dir');
  const dataDir = keep ? config.dataDir : mkdtempSync(join(tmpdir(), 'millpond-demo-'));
  const localDir = join(dataDir, 'local');
  mkdirSync(localDir, { recursive: true });

  say(`1/6 starting the embedded cluster under ${dataDir}: mgmtd, meta (SQLite), 3 storage daemons, chains of 3 replicas`);
  let cluster: Embedded | undefined;
  let fs: FileSystem | undefined;
  let plain: DuckDBInstance | undefined;
  let figures: DemoFigures;
  try {
    cluster = await startEmbedded({ ...config, dataDir: join(dataDir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0' });
    fs = await connect({ meta: cluster.meta, mgmtd: [cluster.mgmtd], transport: config.transport, token: cluster.adminToken, serverKey: cluster.serverKey });
    // As many threads as the job has workers (each task a one-thread DuckDB): the same CPUs.
    plain = await DuckDBInstance.create(':memory:', { threads: String(workers) });
    const conn = await plain.connect();
    say(`    mgmtd ${cluster.mgmtd}, meta ${cluster.meta} (${seconds(startedAll).toFixed(1)} s)`);

    const generating = performance.now();
    const rowsPerFile = Math.max(1000, Math.round((sizeMiB * MIB) / BYTES_PER_ROW_ESTIMATE / FILES));
    say(`2/6 generating ${FILES} Parquet files (${(rowsPerFile * FILES).toLocaleString('en-US')} rows of events: user_id, ts, cents, kind, session) with DuckDB, and writing them into millpond:/demo/events`);
    for (let f = 0; f < FILES; f++) {
      const first = f * rowsPerFile;
      await conn.run(`COPY (SELECT (hash(i) % ${USERS})::BIGINT AS user_id, (1700000000000 + i * 7)::BIGINT AS ts,
          (hash(i * 31) % 100000)::BIGINT AS cents, ['view', 'click', 'buy', 'share'][(i % 4)::INT + 1] AS kind,
          gen_random_uuid()::VARCHAR || gen_random_uuid()::VARCHAR AS session
        FROM range(${first}, ${first + rowsPerFile}) t(i)) TO '${join(localDir, `events-${f}.parquet`)}' (FORMAT parquet)`);
    }
    const localFiles = readdirSync(localDir).filter((n) => n.endsWith('.parquet')).sort();
    const datasetBytes = localFiles.reduce((a, n) => a + statSync(join(localDir, n)).size, 0);
    const rows = rowsPerFile * FILES;
    say(`    ${formatBytes(datasetBytes)} of Parquet generated in ${seconds(generating).toFixed(1)} s`);
    await fs.mkdir('/demo/events', { recursive: true });
    const contents = localFiles.map((n) => readFileSync(join(localDir, n)));  // read before the clock starts
    let started = performance.now();
    const into = fs;
    await Promise.all(contents.map((data, i) => into.writeFile(`/demo/events/${localFiles[i]}`, data)));
    const writeSeconds = seconds(started);
    const writeGBps = datasetBytes / writeSeconds / 1e9;
    say(`    ${formatBytes(datasetBytes)} written (3 replicas each) in ${writeSeconds.toFixed(2)} s: ${writeGBps.toFixed(2)} GB/s`);

    say(`3/6 the job, on ${workers} worker processes: readParquet('millpond:///demo/events/*.parquet').repartition(${workers})` +
      `.repartition(${PARTITIONS}, { hashBy: 'user_id' }), partialSql(per user: events, cents, last ts), writeParquet('/demo/by-user')`);
    const sp = await init({
      root: { kind: 'millpond', dir: '/demo/jobs', meta: cluster.meta, mgmtd: cluster.mgmtd, token: cluster.adminToken, serverKey: cluster.serverKey },
      workers, memoryLimitPerTask: '512MB',
    });
    let jobSeconds: number;
    try {
      // Every column: the shuffle moves only the three BY_USER names (the engine prunes the
      // rest, as plain DuckDB's scan does). `session` is most of the bytes; this job took
      // 5.4-6.5 s with it shuffled, 3.7 s without (measured in one sitting).
      const events = sp.readParquet('millpond:///demo/events/*.parquet');
      // By files first (no data moves), one group of files per worker, so the shuffle's
      // producers run in parallel (one per file was slower here: a task's fixed cost, and 64
      // small files); then by user, one file per (producer, partition).
      const byUser = sp.partialSql(BY_USER, events.repartition(workers).repartition(PARTITIONS, { hashBy: 'user_id' }));
      started = performance.now();
      await byUser.writeParquet('/demo/by-user');
      jobSeconds = seconds(started);
    } finally {
      await sp.shutdown();
    }
    const outputs = await fs.glob('/demo/by-user/*.parquet');
    say(`    done in ${jobSeconds.toFixed(2)} s: ${(rows / jobSeconds / 1e6).toFixed(2)} M rows/s; ${outputs.length} Parquet files in /demo/by-user`);

    const top = `SELECT user_id, events, cents FROM read_parquet('millpond:///demo/by-user/*.parquet') ORDER BY cents DESC, user_id LIMIT 5`;
    say(`4/6 millpond sql "${top}"`);
    const sqlOut = await runSql(config, cluster, top);
    process.stdout.write(sqlOut.replace(/^(?=.)/gm, '    '));

    say('5/6 the same query with plain DuckDB over the local files (result to a local Parquet file), and the answers compared');
    const duckdbOut = join(localDir, 'by-user.parquet');
    started = performance.now();
    await conn.run(`COPY (${BY_USER.replace('{0}', `read_parquet('${localDir}/events-*.parquet')`)}) TO '${duckdbOut}' (FORMAT parquet)`);
    const duckdbSeconds = seconds(started);
    const summary = (from: string) => `SELECT count(*)::BIGINT AS users, sum(events)::BIGINT AS events, sum(cents)::BIGINT AS cents, max(last_ts)::BIGINT AS last FROM ${from}`;
    const expected = (await conn.runAndReadAll(summary(`read_parquet('${duckdbOut}')`))).getRowObjectsJS()[0]!;
    const fromJob = await runSql(config, cluster, summary(`read_parquet('millpond:///demo/by-user/*.parquet')`));
    const expectedRow = `${expected.users}  ${expected.events}  ${expected.cents}  ${expected.last}`;
    const jobRow = fromJob.split('\n')[2]?.trim().replace(/ +/g, '  ');
    if (jobRow !== expectedRow) {
      throw new MillpondError('EIO', `the job's output differs from plain DuckDB's: ${jobRow} (job) vs ${expectedRow} (DuckDB)`);
    }
    say(`    plain DuckDB: ${duckdbSeconds.toFixed(2)} s; both: ${expected.users} users, ${expected.events} events, ${expected.cents} cents`);

    figures = {
      datasetBytes, rows, files: FILES, writeGBps: round(writeGBps, 3),
      jobSeconds: round(jobSeconds, 3), jobRowsPerSec: Math.round(rows / jobSeconds), jobGBps: round(datasetBytes / jobSeconds / 1e9, 3),
      duckdbSeconds: round(duckdbSeconds, 3), jobVsDuckdb: round(jobSeconds / duckdbSeconds, 2),
      workers, partitions: PARTITIONS, totalSeconds: 0,
    };
    say('6/6 stopping the cluster and removing its files');
  } finally {
    // After a failure too: nothing is left running or on disk.
    plain?.closeSync();
    fs?.close();
    await cluster?.stop();
    if (!keep) rmSync(dataDir, { recursive: true, force: true });
  }
  figures.totalSeconds = round(seconds(startedAll), 2);
  say(`job ${figures.jobSeconds.toFixed(2)} s vs plain DuckDB ${figures.duckdbSeconds.toFixed(2)} s (${figures.jobVsDuckdb}x) ` +
    `on ${formatBytes(figures.datasetBytes)}, ${figures.rows.toLocaleString('en-US')} rows; the whole demo ${figures.totalSeconds} s`);
  say(`figures ${JSON.stringify(figures)}`);
}

/** `millpond sql QUERY` against the demo's cluster, as a child process; returns its stdout. */
async function runSql(config: CliConfig, cluster: { meta: string; mgmtd: string; adminToken: string; serverKey: string }, query: string): Promise<string> {
  const self = fileURLToPath(import.meta.url);
  const fromSource = self.endsWith('.ts');  // under tsx (tests); dist/ is JavaScript
  const entry = join(dirname(self), fromSource ? 'main.ts' : 'main.js');
  const execArgv = fromSource ? ['--import', 'tsx'] : [];
  const { stdout } = await promisify(execFile)(process.execPath,
    [...execArgv, entry, 'sql', query, '--meta', cluster.meta, '--mgmtd', cluster.mgmtd, '--transport', config.transport],
    // The admin's token goes in the environment, never in argv (design §10).
    { maxBuffer: 1 << 20, env: { ...process.env, MILLPOND_TOKEN: cluster.adminToken, MILLPOND_SERVER_KEY: cluster.serverKey } });
  return stdout;
}
