/**
 * duckdb-scan: one DuckDB (the millpond extension loaded) runs the same aggregate query over
 * the same Parquet file read through millpond:// (the embedded default cluster in this
 * process: three storage targets, chains of three replicas) and read from a local file on
 * the same disk. Rounds rotate which side goes first; the page cache is dropped before
 * every run when the bench may (root), so both sides read cold. Medians are reported.
 *
 * The millpond side runs with the extension's default transport (auto: chunks of storage
 * targets on this host are read through descriptors of their files, short-circuiting the
 * network) and again with millpond_transport = 'tcp' (every byte through the TCP data plane),
 * so the figure of each path is visible.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { startEmbedded } from '../src/cli/embedded.js';
import { kMillpondExtension } from '../src/engine/execution/duckdb.js';
import { connect } from '../src/fs/index.js';
import { dropPageCache, intOption, machineNote, makeWorkDir, median, MiB, nowMs, printJson, printTable, round3 } from './lib.js';

const sqlString = (text: string) => `'${text.replace(/'/g, "''")}'`;

/** Mixed columns: integers, doubles, short strings and dates; values hashed from the row number. */
function tableSql(rows: number): string {
  return `SELECT range AS id,
      (hash(range, 1) % 1000)::INTEGER AS k,
      (hash(range, 2) % 100000000)::DOUBLE / 100 AS a,
      (hash(range, 3) % 1000000)::INTEGER AS b,
      (hash(range, 4) >> 1)::BIGINT AS c,
      'cat-' || (hash(range, 5) % 5000)::VARCHAR AS s,
      DATE '2020-01-01' + (hash(range, 6) % 2000)::INTEGER AS d
    FROM range(${rows})`;
}

/** A group-by with sums, counts, an average and min/max over several columns, folded to one row. */
function querySql(path: string): string {
  return `SELECT count(*) AS groups, sum(n) AS n, sum(sa) AS sa, sum(sb) AS sb, sum(ac) AS ac, max(ms) AS ms, min(md) AS md
    FROM (SELECT k, count(*) AS n, sum(a) AS sa, sum(b) AS sb, avg(c) AS ac, max(s) AS ms, min(d) AS md
          FROM read_parquet(${sqlString(path)}) WHERE b % 7 <> 0 GROUP BY k)`;
}

async function timed(conn: DuckDBConnection, sql: string): Promise<{ ms: number; rows: unknown[][] }> {
  const started = nowMs();
  const rows = (await conn.runAndReadAll(sql)).getRowsJS();
  return { ms: nowMs() - started, rows };
}

export async function duckdbScanBench(options: Map<string, string>): Promise<void> {
  const rows = intOption(options, 'rows', 20_000_000);
  const rounds = intOption(options, 'rounds', 5);
  const threads = intOption(options, 'threads', 2);
  const rowGroupRows = intOption(options, 'row-group-rows', 1_000_000);
  const dropCache = options.get('drop-cache') !== 'false'; // --drop-cache false: both sides warm
  const work = await makeWorkDir('duckdb-scan');
  try {
    // Setup data is throwaway: the cluster skips fdatasync per chunk (reads are what is timed).
    const cluster = await startEmbedded({
      dataDir: join(work.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
      host: '127.0.0.1', transport: 'tcp', chainCount: 12, syncWrites: false,
    });
    const fs = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
    const instance = await DuckDBInstance.create(':memory:', { allow_unsigned_extensions: 'true', threads: String(threads) });
    const conn = await instance.connect();
    try {
      await conn.run(`LOAD ${sqlString(kMillpondExtension)}`);
      await conn.run(`SET millpond_meta = ${sqlString(cluster.meta)}`);
      await conn.run(`SET millpond_mgmtd = ${sqlString(cluster.mgmtd)}`);
      await conn.run(`SET millpond_token = ${sqlString(cluster.adminToken)}`);
      await conn.run(`SET millpond_server_key = ${sqlString(cluster.serverKey)}`);
      // Neither side may be served from DuckDB's own caches: every run reads the file.
      await conn.run('SET enable_external_file_cache = false');
      await conn.run('SET parquet_metadata_cache = false');

      const local = join(work.dir, 'scan.parquet');
      const remote = 'millpond:///bench/scan.parquet';
      let started = nowMs();
      await conn.run(`COPY (${tableSql(rows)}) TO ${sqlString(local)} (FORMAT parquet, ROW_GROUP_SIZE ${rowGroupRows})`);
      const generateMs = nowMs() - started;
      const bytes = statSync(local).size;
      started = nowMs();
      await fs.mkdir('/bench', { recursive: true });
      await fs.writeFile('/bench/scan.parquet', readFileSync(local));
      const copyMs = nowMs() - started;
      if ((await fs.stat('/bench/scan.parquet')).size !== bytes) throw new Error('the copy in millpond has another size');
      const rowGroups = Number((await conn.runAndReadAll(
        `SELECT count(DISTINCT row_group_id) FROM parquet_metadata(${sqlString(local)})`)).getRowsJS()[0]![0]);

      const sides = ['millpond', 'local', 'millpond_tcp'] as const;
      const times = { millpond: [] as number[], local: [] as number[], millpond_tcp: [] as number[] };
      let cold = true;
      let expected: string | undefined;
      for (let round = 0; round < rounds; round++) {
        const order = sides.map((_, i) => sides[(i + round) % sides.length]!);
        for (const side of order) {
          await conn.run(`SET millpond_transport = '${side === 'millpond_tcp' ? 'tcp' : 'auto'}'`);
          cold = dropCache && (await dropPageCache()) && cold;
          const r = await timed(conn, querySql(side === 'local' ? local : remote));
          // Sums of doubles differ in their last bits with the threads' order: compare 12 digits.
          const answer = JSON.stringify(r.rows, (_k, v: unknown) =>
            (typeof v === 'bigint' ? v.toString() : typeof v === 'number' ? v.toPrecision(12) : v));
          if (expected === undefined) expected = answer;
          else if (answer !== expected) throw new Error(`${side} answered ${answer}, expected ${expected}`);
          times[side].push(r.ms);
        }
      }

      const millpondS = median(times.millpond) / 1000;
      const localS = median(times.local) / 1000;
      const tcpS = median(times.millpond_tcp) / 1000;
      const figures = {
        rows,
        file_MiB: round3(bytes / MiB),
        row_groups: rowGroups,
        threads,
        rounds,
        cache: cold ? 'cold' : 'warm',
        millpond_s: round3(millpondS),
        local_s: round3(localS),
        ratio: round3(localS / millpondS),
        millpond_tcp_s: round3(tcpS),
        tcp_ratio: round3(localS / tcpS),
      };
      const fmt = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(' ');
      printTable(`duckdb-scan: ${rows.toLocaleString('en-US')} rows, ${figures.file_MiB} MiB of Parquet in ${rowGroups} row groups, ` +
        `DuckDB threads=${threads}, page cache ${cold ? 'dropped before every run (cold)' : 'NOT dropped (warm)'} (${machineNote()})`, [
        ['side', 'median s', 'MB/s of file', 'runs (s)'],
        ['read_parquet(millpond:///...)', millpondS.toFixed(3), (bytes / 1e6 / millpondS).toFixed(0), fmt(times.millpond)],
        ['read_parquet(local file)', localS.toFixed(3), (bytes / 1e6 / localS).toFixed(0), fmt(times.local)],
        ["millpond, millpond_transport='tcp'", tcpS.toFixed(3), (bytes / 1e6 / tcpS).toFixed(0), fmt(times.millpond_tcp)],
      ]);
      console.log(`\nSetup (not timed in the figures): generate locally ${(generateMs / 1000).toFixed(1)} s; copy into millpond through the`);
      console.log(`FileSystem API ${(copyMs / 1000).toFixed(1)} s (the embedded cluster with syncWrites: false, 3 replicas on this one disk).`);
      console.log('Both sides: the same DuckDB connection and settings, external file cache and Parquet metadata cache off,');
      console.log('answers checked equal. ratio = local_s / millpond_s (aim >= 0.9), with the default transport auto: the');
      console.log('storage targets are on this host, so chunks are read through descriptors of their files (short-circuit');
      console.log("local reads, O_DIRECT, every block's CRC checked). tcp_ratio: every byte through the TCP data plane instead.");
      console.log('Chunks are read with O_DIRECT, so the millpond side reads the disk whether or not the page cache was');
      console.log('dropped: cold against cold is the fair comparison (--drop-cache false leaves only the local file warm).');
      printJson('duckdb-scan', figures);
    } finally {
      conn.closeSync();
      instance.closeSync();
      fs.close();
      await cluster.stop();
    }
  } finally {
    work.cleanup();
  }
}
