/**
 * Data locality of the cluster executor (design §11, issue 14 item 5), on netns hosts: storage
 * daemons on h1 and h2 (chains of one replica, files of one chunk: each file lives on one
 * host), `millpond executor` on h1, h2 and h3 (no storage), mgmtd, meta, Redis and the driver
 * beside the bridge. A task reading one file runs on the executor of the host holding it; with
 * that executor stopped (SIGSTOP: still registered, taking nothing), its tasks run on another
 * host after the locality wait.
 */
import { execFileSync, execFile } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { init } from '../../src/engine/index.js';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { clusterExecutorLimits } from '../../src/limits.js';
import { FAST, freePort, startMeta, startMgmtd, until, type Proc } from '../cluster/support/processes.js';
import { queueName, startExecutor, type ExecutorProc } from '../engine/cluster/executors.js';
import { testKeys, type TestKeys } from '../support/auth.js';
import { tempDir } from '../support/tmp.js';
import { hostsAvailable, TestHosts } from './support/hosts.js';

const run = promisify(execFile);
const storageMain = fileURLToPath(new URL('../../src/storage/main.ts', import.meta.url));
const redisStart = fileURLToPath(new URL('../../scripts/redis-start.sh', import.meta.url));
const FILES = 8;

describe.skipIf(!hostsAvailable())('data locality on netns hosts', () => {
  const t = tempDir('hosts-locality');
  const cleanups: Array<() => Promise<void> | void> = [];
  let hosts: TestHosts;
  let keys: TestKeys;
  let mgmtd: string;
  let meta: string;
  let redis: string;
  let fs: FileSystem;
  const executors = new Map<string, ExecutorProc>();
  const queue = queueName('locality');
  /** Input file (sorted order = task index of a by-files repartition) -> the host holding it. */
  const fileHost: string[] = [];

  beforeAll(async () => {
    hosts = TestHosts.create(3, 219);
    cleanups.push(() => hosts.destroy());
    keys = testKeys();
    cleanups.push(() => keys.cleanup());
    const gw = hosts.gatewayIp;
    const mgmtdProc: Proc = await startMgmtd(join(t.dir, 'mgmtd.db'), `tcp://${gw}:0`, keys.secretFile, { heartbeatTimeoutMs: 4_000 });
    cleanups.push(() => mgmtdProc.kill());
    mgmtd = (await mgmtdProc.waitFor(/^listening (\S+)$/))[1]!;
    const metaProc: Proc = await startMeta(join(t.dir, 'meta.db'), `tcp://${gw}:0`, [mgmtd], ['--secret-file', keys.secretFile, '--admin-token-file', keys.adminTokenFile]);
    cleanups.push(() => metaProc.kill());
    meta = (await metaProc.waitFor(/^listening (\S+)$/))[1]!;
    for (const h of [1, 2]) {
      const targets = [h * 10 + 1, h * 10 + 2].flatMap((id) => {
        const dir = join(t.dir, `t${id}`);
        mkdirSync(dir, { recursive: true });
        return ['--target', `${id}:${dir}`];
      });
      const p = hosts.spawn(h, process.execPath, ['--import', 'tsx', storageMain, '--secret-file', keys.secretFile, '--node-id', String(h), '--mgmtd', mgmtd,
        '--host', hosts.ip(h), '--transport', 'tcp', '--no-sync', '--heartbeat-ms', String(FAST.heartbeatMs), '--routing-poll-ms', String(FAST.pollMs),
        '--mgmtd-timeout-ms', '1000', ...targets]);
      cleanups.push(() => hosts.kill(h));
      await p.waitFor(/^listening /, 60_000);
    }
    const cli = async (...args: string[]) => (await run(process.execPath, ['dist/cli/main.js', 'admin', ...args, '--mgmtd', mgmtd, '--data-dir', t.dir,
      '--server-key', keys.admin.serverKey, '--token-file', keys.adminTokenFile], { timeout: 300_000 })).stdout;
    await until(async () => (await cli('list', 'nodes', '--json').catch(() => '')).startsWith('['), 60_000, 'mgmtd admits the admin token');
    await until(async () => /chain table 1: 4 chains of 1/.test(await cli('create-chain-table', '--replicas', '1', '--chains', '4').catch(() => '')), 60_000, 'chain table');

    redis = execFileSync('bash', [redisStart, String(await freePort()), gw], { encoding: 'utf8' }).trim().split('\n').pop()!;
    cleanups.push(() => {
      try {
        execFileSync('redis-cli', ['-u', redis, 'shutdown', 'nosave'], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    });

    // Files of one chunk on a table of single-replica chains: each lives on one host.
    fs = await connect({ meta, mgmtd: [mgmtd], token: keys.admin.token, serverKey: keys.admin.serverKey, transport: 'tcp' });
    cleanups.push(() => fs.close());
    await fs.mkdir('/input', { recursive: true });
    await fs.setLayout('/input', { chunkSizeBytes: 4 << 20, stripeSize: 1 });
    const duck = await DuckDBInstance.create(':memory:');
    const conn = await duck.connect();
    const hostOfIp = new Map([[hosts.ip(1), 'h1'], [hosts.ip(2), 'h2']]);
    for (let i = 0; i < FILES || new Set(fileHost).size < 2; i++) {
      const local = join(t.dir, `f${i}.parquet`);
      await conn.run(`COPY (SELECT ${i}::BIGINT AS src, range AS x FROM range(1000)) TO '${local}' (FORMAT parquet)`);
      const path = `/input/f${String(i).padStart(3, '0')}.parquet`;
      await fs.writeFile(path, readFileSync(local));
      const where = await fs.dataHosts(path);
      expect([...where.hosts.values()]).toEqual([where.bytes]); // one replica, one host
      fileHost.push(hostOfIp.get([...where.hosts.keys()][0]!)!);
    }
    conn.closeSync();
    duck.closeSync();

    for (const h of [1, 2, 3]) {
      const e = startExecutor(redis, queue, `h${h}`, 2, { MILLPOND_TRANSPORT: 'tcp' }, ['ip', 'netns', 'exec', `${hosts.prefix}-h${h}`]);
      executors.set(`h${h}`, e);
      cleanups.push(() => e.kill('SIGKILL'));
    }
    await Promise.all([...executors.values()].map((e) => e.ready));
  }, 240_000);

  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    t.cleanup();
  });

  /** Runs one task per input file; returns the host that ran each file's task, and the rows. */
  async function perFileJob(jobId: string, localityWaitMs?: number): Promise<{ ranOn: string[]; srcs: number[]; elapsedMs: number }> {
    const sp = await init({
      root: { kind: 'millpond', dir: '/jobs', meta, mgmtd, token: keys.admin.token, serverKey: keys.admin.serverKey },
      executor: { kind: 'cluster', redis, queue, ...(localityWaitMs !== undefined ? { localityWaitMs } : {}) }, progress: false, jobId,
    });
    try {
      const started = Date.now();
      const rows = await sp.partialSql('SELECT min(src) AS src, count(*)::BIGINT AS n FROM {0}',
        sp.readParquet('millpond:///input/f*.parquet').repartition(fileHost.length)).takeAll();
      const elapsedMs = Date.now() - started;
      expect(rows.every((r) => r.n === 1000n)).toBe(true);
      const placements = Object.entries(sp.lastSummary!.placements!).filter(([k]) => k.startsWith('sql-'));
      expect(placements.length).toBe(fileHost.length);
      const ranOn: string[] = [];
      for (const [key, p] of placements) ranOn[Number(key.slice(key.indexOf('#') + 1))] = p.host;
      return { ranOn, srcs: rows.map((r) => Number(r.src)).sort((a, b) => a - b), elapsedMs };
    } finally {
      await sp.shutdown();
    }
  }

  it('runs each task on the executor of the host that holds its input file', async () => {
    // A long wait: a loaded machine may keep a host from starting a task for seconds.
    const { ranOn, srcs } = await perFileJob('local-reads', 60_000);
    expect(srcs).toEqual(fileHost.map((_, i) => i));
    expect(ranOn).toEqual(fileHost);
    expect(new Set(ranOn).size).toBe(2); // both storage hosts ran tasks; h3 (no storage) none
  }, 180_000);

  it('without locality, tasks go to any executor (h3, which holds no data, runs some)', async () => {
    const sp = await init({
      root: { kind: 'millpond', dir: '/jobs', meta, mgmtd, token: keys.admin.token, serverKey: keys.admin.serverKey },
      executor: { kind: 'cluster', redis, queue, locality: false }, progress: false, jobId: 'no-locality',
    });
    try {
      // Enough tasks that every executor takes some from the shared queue.
      const frame = sp.partialSql('SELECT min(src) AS src FROM {0}', sp.readParquet('millpond:///input/f*.parquet').repartition(fileHost.length));
      for (let round = 0; round < 5; round++) {
        await frame.recompute().takeAll();
        const hostsUsed = new Set(Object.values(sp.lastSummary!.placements!).map((p) => p.host));
        if (hostsUsed.has('h3')) return;
      }
      throw new Error('h3 never ran a task of the shared queue in 5 jobs');
    } finally {
      await sp.shutdown();
    }
  }, 180_000);

  it('runs the tasks of a stopped host\'s files elsewhere after the locality wait', async () => {
    const stopped = executors.get('h1')!;
    stopped.child.kill('SIGSTOP');
    try {
      const { ranOn, srcs, elapsedMs } = await perFileJob('h1-stopped');
      expect(srcs).toEqual(fileHost.map((_, i) => i));
      for (const [i, host] of ranOn.entries()) {
        if (fileHost[i] === 'h1') expect(host, `file ${i}`).not.toBe('h1');
        else expect(host, `file ${i}`).toBe(fileHost[i]);
      }
      // They waited for h1 first (its registry entry was still fresh when the job began).
      expect(elapsedMs).toBeGreaterThanOrEqual(clusterExecutorLimits.localityWaitMs);
    } finally {
      stopped.child.kill('SIGCONT');
    }
  }, 180_000);
});
