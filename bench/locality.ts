/**
 * locality: the cluster executor's data locality on and off (issue 14 item 5, design §11), in
 * the same run. N test hosts (network namespaces on a bridge; needs root), each a storage daemon
 * (two targets) and a `millpond executor` with --slots slots; mgmtd, meta, Redis and the driver
 * beside the bridge. The input: --files Parquet files of --file-size each, on a table of
 * single-replica chains with a stripe of one, so every file lives whole on one host. The job
 * reads each file in its own task (a by-files repartition: one file per task) and aggregates it
 * (count and a hash sum of every value: each byte is read and decoded).
 *
 * Rounds alternate locality on (the default: a task waits in the queue of the host holding its
 * file first) and off (every task on the shared queue: any executor), with the page cache
 * dropped before each job; each figure is the median over --rounds. Printed per side: the wall
 * time, the bytes tasks read from a storage daemon on their own host (short-circuit reads) and
 * from other hosts (over the bridge), and the hosts tasks ran on. locality_ratio = off time /
 * on time (> 1: locality pays). These hosts share this machine's cores and one disk, so a remote
 * read costs a TCP path through veth pairs rather than a real network: the ratio is a floor.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { init } from '../src/engine/index.js';
import { parseBytes } from '../src/engine/options.js';
import { connect, type FileSystem } from '../src/fs/index.js';
import { FAST, freePort, startMeta, startMgmtd, until, type Proc } from '../test/cluster/support/processes.js';
import { queueName, startExecutor, type ExecutorProc } from '../test/engine/cluster/executors.js';
import { hostsAvailable, TestHosts } from '../test/hosts/support/hosts.js';
import { testKeys } from '../test/support/auth.js';
import { dropPageCache, intOption, machineNote, makeWorkDir, median, MiB, nowMs, printJson, printTable, round3 } from './lib.js';

const run = promisify(execFile);
const storageMain = fileURLToPath(new URL('../src/storage/main.ts', import.meta.url));
const cliMain = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const redisStart = fileURLToPath(new URL('../scripts/redis-start.sh', import.meta.url));
const kSubnet = 217;
/** Bytes of one value: payloads of random bytes (incompressible, so a file's size is its bytes). */
const kValueBytes = 1000;

interface Side {
  ms: number[];
  localBytes: number[];
  remoteBytes: number[];
  hosts: string[][];
}

export async function localityBench(options: Map<string, string>): Promise<void> {
  if (!hostsAvailable()) throw new Error('locality needs root and iproute2 (network namespaces)');
  const hostCount = intOption(options, 'hosts', 3, 2);
  const fileCount = intOption(options, 'files', 2 * hostCount);
  const fileBytes = parseBytes('--file-size', options.get('file-size') ?? '64MiB');
  const slots = intOption(options, 'slots', 1);
  const rounds = intOption(options, 'rounds', 3);

  const work = await makeWorkDir('locality');
  const hosts = TestHosts.create(hostCount, kSubnet);
  const keys = testKeys();
  const cleanups: Array<() => Promise<unknown> | unknown> = [() => work.cleanup(), () => hosts.destroy(), () => keys.cleanup()];
  try {
    const gw = hosts.gatewayIp;
    const mgmtdProc: Proc = await startMgmtd(join(work.dir, 'mgmtd.db'), `tcp://${gw}:0`, keys.secretFile, { heartbeatTimeoutMs: 4_000 });
    cleanups.push(() => mgmtdProc.kill());
    const mgmtd = (await mgmtdProc.waitFor(/^listening (\S+)$/))[1]!;
    const metaProc: Proc = await startMeta(join(work.dir, 'meta.db'), `tcp://${gw}:0`, [mgmtd], ['--secret-file', keys.secretFile, '--admin-token-file', keys.adminTokenFile]);
    cleanups.push(() => metaProc.kill());
    const meta = (await metaProc.waitFor(/^listening (\S+)$/))[1]!;
    for (let h = 1; h <= hostCount; h++) {
      const targets = [h * 10 + 1, h * 10 + 2].flatMap((id) => {
        const dir = join(work.dir, `t${id}`);
        mkdirSync(dir, { recursive: true });
        return ['--target', `${id}:${dir}`];
      });
      const p = hosts.spawn(h, process.execPath, ['--import', 'tsx', storageMain, '--secret-file', keys.secretFile, '--node-id', String(h), '--mgmtd', mgmtd,
        '--host', hosts.ip(h), '--transport', 'tcp', '--no-sync', '--heartbeat-ms', String(FAST.heartbeatMs), '--routing-poll-ms', String(FAST.pollMs),
        '--mgmtd-timeout-ms', '1000', ...targets]);
      await p.waitFor(/^listening /, 60_000);
    }
    const cli = async (...args: string[]) => (await run(process.execPath, [cliMain, 'admin', ...args, '--mgmtd', mgmtd, '--data-dir', work.dir,
      '--server-key', keys.admin.serverKey, '--token-file', keys.adminTokenFile], { timeout: 300_000 })).stdout;
    await until(async () => (await cli('list', 'nodes', '--json').catch(() => '')).startsWith('['), 60_000, 'mgmtd admits the admin token');
    const chains = 2 * hostCount;
    await until(async () => new RegExp(`chain table 1: ${chains} chains of 1`).test(await cli('create-chain-table', '--replicas', '1', '--chains', String(chains)).catch(() => '')),
      60_000, 'chain table');

    const redis = execFileSync('bash', [redisStart, String(await freePort()), gw], { encoding: 'utf8' }).trim().split('\n').pop()!;
    cleanups.push(() => {
      try {
        execFileSync('redis-cli', ['-u', redis, 'shutdown', 'nosave'], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    });

    // The input: one chain per file (stripe 1, single-replica chains), so each file is on one host.
    const fs: FileSystem = await connect({ meta, mgmtd: [mgmtd], token: keys.admin.token, serverKey: keys.admin.serverKey, transport: 'tcp' });
    cleanups.push(() => fs.close());
    await fs.mkdir('/input', { recursive: true });
    await fs.setLayout('/input', { chunkSizeBytes: 4 * MiB, stripeSize: 1 });
    const hostOfIp = new Map([...Array(hostCount).keys()].map((i) => [hosts.ip(i + 1), `h${i + 1}`]));
    const duck = await DuckDBInstance.create(':memory:', { threads: '2' });
    const conn = await duck.connect();
    const fileHost: string[] = [];
    const fileSize: number[] = [];
    const rows = Math.max(1, Math.floor(fileBytes / kValueBytes));
    let started = nowMs();
    try {
      for (let i = 0; i < fileCount; i++) {
        const local = join(work.dir, `f${i}.parquet`);
        // Random bytes per value (incompressible): the file is about rows * kValueBytes.
        await conn.run(`COPY (SELECT ${i}::BIGINT AS src, range AS x,
            unhex(${[...Array(Math.floor(kValueBytes / 16)).keys()].map(() => 'md5(random()::VARCHAR)').join(' || ')} || substr(md5(random()::VARCHAR), 1, ${2 * (kValueBytes % 16)})) AS payload
          FROM range(${rows})) TO '${local}' (FORMAT parquet)`);
        const path = `/input/f${String(i).padStart(3, '0')}.parquet`;
        const data = readFileSync(local);
        await fs.writeFile(path, data);
        rmSync(local);
        const where = await fs.dataHosts(path);
        const [address, bytes] = [...where.hosts].sort((a, b) => b[1] - a[1])[0]!;
        if (bytes * 2 <= where.bytes) throw new Error(`${path}: no host holds most of it`);
        fileHost.push(hostOfIp.get(address)!);
        fileSize.push(data.length);
      }
    } finally {
      conn.closeSync();
      duck.closeSync();
    }
    const setupMs = nowMs() - started;

    const queue = queueName('locality');
    const executors: ExecutorProc[] = [];
    for (let h = 1; h <= hostCount; h++) {
      const e = startExecutor(redis, queue, `h${h}`, slots, { MILLPOND_TRANSPORT: 'tcp' }, ['ip', 'netns', 'exec', `${hosts.prefix}-h${h}`]);
      executors.push(e);
      cleanups.push(() => e.kill('SIGTERM'));
    }
    await Promise.all(executors.map((e) => e.ready));

    const root = { kind: 'millpond' as const, dir: '/jobs', meta, mgmtd, token: keys.admin.token, serverKey: keys.admin.serverKey };
    const expected = fileHost.map((_, i) => i);
    const oneJob = async (locality: boolean, side: Side) => {
      const sp = await init({ root, executor: { kind: 'cluster', redis, queue, locality }, progress: false, threadsPerTask: 1 });
      try {
        await dropPageCache();
        const begun = nowMs();
        const out = await sp.partialSql('SELECT min(src) AS src, count(*)::BIGINT AS n, sum(hash(payload))::VARCHAR AS h FROM {0}',
          sp.readParquet('millpond:///input/f*.parquet').repartition(fileCount)).takeAll();
        side.ms.push(nowMs() - begun);
        const srcs = out.map((r) => Number(r.src)).sort((a, b) => a - b);
        if (JSON.stringify(srcs) !== JSON.stringify(expected) || out.some((r) => Number(r.n) !== rows)) {
          throw new Error(`locality ${locality}: wrong rows ${JSON.stringify(out.map((r) => [r.src, r.n]), (_, v) => typeof v === 'bigint' ? Number(v) : v)}`);
        }
        let local = 0;
        let remote = 0;
        const ranOn: string[] = [];
        for (const [key, p] of Object.entries(sp.lastSummary!.placements!)) {
          if (!key.startsWith('sql-')) continue;
          const i = Number(key.slice(key.indexOf('#') + 1));
          ranOn[i] = p.host;
          if (p.host === fileHost[i]) local += fileSize[i]!;
          else remote += fileSize[i]!;
        }
        side.localBytes.push(local);
        side.remoteBytes.push(remote);
        side.hosts.push(ranOn);
      } finally {
        await sp.shutdown();
      }
    };

    const on: Side = { ms: [], localBytes: [], remoteBytes: [], hosts: [] };
    const off: Side = { ms: [], localBytes: [], remoteBytes: [], hosts: [] };
    started = nowMs();
    await oneJob(true, { ms: [], localBytes: [], remoteBytes: [], hosts: [] }); // warm-up: executors' slots, DuckDB, routing
    const warmMs = nowMs() - started;
    for (let r = 0; r < rounds; r++) {
      // Alternating order, so a drift of the machine's load falls on both sides.
      if (r % 2 === 0) {
        await oneJob(true, on);
        await oneJob(false, off);
      } else {
        await oneJob(false, off);
        await oneJob(true, on);
      }
    }

    const totalBytes = fileSize.reduce((a, b) => a + b, 0);
    const figures = {
      hosts: hostCount,
      files: fileCount,
      file_MiB: round3(totalBytes / fileCount / MiB),
      slots_per_host: slots,
      rounds,
      on_s: round3(median(on.ms) / 1000),
      off_s: round3(median(off.ms) / 1000),
      on_local_MiB: round3(median(on.localBytes) / MiB),
      on_remote_MiB: round3(median(on.remoteBytes) / MiB),
      off_local_MiB: round3(median(off.localBytes) / MiB),
      off_remote_MiB: round3(median(off.remoteBytes) / MiB),
      locality_ratio: round3(median(off.ms) / median(on.ms)),
    };
    const mibps = (ms: number) => (totalBytes / MiB / (ms / 1000)).toFixed(0);
    printTable(`locality: ${fileCount} files of ${figures.file_MiB.toFixed(1)} MiB, each whole on one of ${hostCount} test hosts ` +
      `(files per host: ${[...Array(hostCount).keys()].map((h) => fileHost.filter((x) => x === `h${h + 1}`).length).join('/')}); ` +
      `one task per file; ${hostCount} executors x ${slots} slots; median of ${rounds} rounds (${machineNote()})`, [
      ['side', 's', 'MiB/s', 'read on own host MiB', 'read from other hosts MiB'],
      ['locality on (host queue first)', figures.on_s.toFixed(2), mibps(median(on.ms)), figures.on_local_MiB.toFixed(0), figures.on_remote_MiB.toFixed(0)],
      ['locality off (shared queue)', figures.off_s.toFixed(2), mibps(median(off.ms)), figures.off_local_MiB.toFixed(0), figures.off_remote_MiB.toFixed(0)],
    ]);
    console.log(`\nfile i is on: ${fileHost.join(' ')}`);
    for (const [r, ranOn] of on.hosts.entries()) console.log(`round ${r + 1} on:  tasks ran on ${ranOn.join(' ')} (${(on.ms[r]! / 1000).toFixed(2)} s)`);
    for (const [r, ranOn] of off.hosts.entries()) console.log(`round ${r + 1} off: tasks ran on ${ranOn.join(' ')} (${(off.ms[r]! / 1000).toFixed(2)} s)`);
    console.log(`Bytes on own host / other hosts: a task's file size counted by where the task ran and where the file is.`);
    console.log(`Setup, not timed: input ${(setupMs / 1000).toFixed(1)} s; warm-up job ${(warmMs / 1000).toFixed(1)} s. The page cache was dropped before each job.`);
    printJson('locality', figures);
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // best effort: the rest still runs
      }
    }
  }
}
