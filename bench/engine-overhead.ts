/**
 * engine-overhead: what the engine's machinery costs per task, beside plain DuckDB.
 *   npm run bench -- engine-overhead [--tasks 64] [--workers 2] [--redis redis://127.0.0.1:6390]
 * A job of `tasks` trivial tasks (count(*) of one tiny Parquet file each) through the local
 * executor and through the cluster executor (two `millpond executor` processes on this machine,
 * BullMQ on Redis): tasks per second (`task_dispatch_per_s`, `cluster_task_dispatch_per_s`); and
 * the wall time of a one-task job on a warm session (`tiny_job_ms`, `cluster_tiny_job_ms`)
 * against the same query in plain DuckDB (`duckdb_tiny_ms`). Executors and sessions start before
 * the clock; each figure is the best of 3 runs (the first run warms the slots).
 * Each task writes its output and its marker as files of the job's root, so the job runs twice
 * per executor: with the root in the bench's work directory (the headline figures) and, where
 * /dev/shm is a tmpfs, with the root there (`*_tmpfs`): the difference is what the disk's
 * filesystem costs per task (file creates, renames and unlinks), not the engine's dispatch.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { init } from '../src/engine/index.js';
import { queueName, startExecutor } from '../test/engine/cluster/executors.js';
import { intOption, machineNote, makeWorkDir, nowMs, printJson, printTable, round3 } from './lib.js';

async function timeJob(run: () => Promise<unknown>, rounds = 3): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < rounds; i++) {
    const started = nowMs();
    await run();
    best = Math.min(best, nowMs() - started);
  }
  return best;
}

/** A fresh directory under /dev/shm when that is a tmpfs; undefined elsewhere. */
function tmpfsWorkDir(): string | undefined {
  const kTmpfsMagic = 0x01021994;
  try {
    return statfsSync('/dev/shm').type === kTmpfsMagic ? mkdtempSync('/dev/shm/millpond-engine-overhead-') : undefined;
  } catch {
    return undefined;
  }
}

export async function engineOverheadBench(options: Map<string, string>): Promise<void> {
  const tasks = intOption(options, 'tasks', 64);
  const workers = intOption(options, 'workers', 2);
  const redis = options.get('redis') ?? process.env.MILLPOND_REDIS_URL
    ?? execFileSync('bash', [join(import.meta.dirname, '..', 'scripts', 'redis-start.sh')], { encoding: 'utf8' }).trim().split('\n').pop()!;
  const work = await makeWorkDir('engine-overhead');
  const shm = tmpfsWorkDir();
  try {
    const duck = await DuckDBInstance.create(':memory:', { threads: '1' });
    const conn = await duck.connect();
    for (let i = 0; i < tasks; i++) {
      await conn.run(`COPY (SELECT ${i} * 100 + range AS x FROM range(100)) TO '${work.dir}/in-${String(i).padStart(4, '0')}.parquet' (FORMAT parquet)`);
    }
    const one = `${work.dir}/in-0000.parquet`;
    const duckdbTinyMs = await timeJob(() => conn.runAndReadAll(`SELECT count(*) FROM read_parquet('${one}')`));
    conn.closeSync();
    duck.closeSync();

    const measure = async (executor: Parameters<typeof init>[0]['executor'], rootDir: string) => {
      const sp = await init({ root: { kind: 'local', dir: rootDir }, workers, executor, progress: false });
      try {
        // recompute: every round runs its tasks (no reuse of completed ones).
        const many = sp.partialSql('SELECT count(*) AS n FROM {0}', sp.readParquet(`${work.dir}/in-*.parquet`).repartition(tasks));
        const manyMs = await timeJob(async () => {
          await many.recompute().count();
          if (sp.lastSummary!.tasksRun !== tasks) throw new Error(`expected ${tasks} tasks, ran ${sp.lastSummary!.tasksRun}`);
        });
        const tiny = sp.partialSql('SELECT count(*) AS n FROM {0}', sp.readParquet(one));
        const tinyMs = await timeJob(() => tiny.recompute().takeAll());
        return { perSecond: tasks / (manyMs / 1000), tinyMs };
      } finally {
        await sp.shutdown();
      }
    };

    const diskRoot = join(work.dir, 'root');
    const shmRoot = shm && join(shm, 'root');
    const local = await measure({ kind: 'local' }, diskRoot);
    const localTmpfs = shmRoot ? await measure({ kind: 'local' }, shmRoot) : undefined;
    const queue = queueName('bench');
    const executors = ['bench-a', 'bench-b'].map((host) => startExecutor(redis, queue, host, Math.max(1, workers / 2 | 0) || 1));
    let cluster: { perSecond: number; tinyMs: number };
    let clusterTmpfs: { perSecond: number; tinyMs: number } | undefined;
    try {
      await Promise.all(executors.map((e) => e.ready));
      cluster = await measure({ kind: 'cluster', redis, queue }, diskRoot);
      if (shmRoot) clusterTmpfs = await measure({ kind: 'cluster', redis, queue }, shmRoot);
    } finally {
      await Promise.all(executors.map((e) => e.kill('SIGTERM')));
    }

    const figures = {
      tasks,
      workers,
      task_dispatch_per_s: round3(local.perSecond),
      cluster_task_dispatch_per_s: round3(cluster.perSecond),
      tiny_job_ms: round3(local.tinyMs),
      cluster_tiny_job_ms: round3(cluster.tinyMs),
      duckdb_tiny_ms: round3(duckdbTinyMs),
      tiny_ratio: round3(duckdbTinyMs / local.tinyMs),
      ...(localTmpfs && clusterTmpfs ? {
        task_dispatch_per_s_tmpfs: round3(localTmpfs.perSecond),
        cluster_task_dispatch_per_s_tmpfs: round3(clusterTmpfs.perSecond),
      } : {}),
    };
    printTable(`engine-overhead: ${tasks} trivial tasks, ${workers} slots (${machineNote()})`, [
      ['executor', 'tasks/s', 'one-task job ms'],
      [`local (${workers} warm worker processes)`, local.perSecond.toFixed(1), local.tinyMs.toFixed(1)],
      ['cluster (2 executors, BullMQ on Redis)', cluster.perSecond.toFixed(1), cluster.tinyMs.toFixed(1)],
      ...(localTmpfs && clusterTmpfs ? [
        ['local, the job root on tmpfs', localTmpfs.perSecond.toFixed(1), localTmpfs.tinyMs.toFixed(1)],
        ['cluster, the job root on tmpfs', clusterTmpfs.perSecond.toFixed(1), clusterTmpfs.tinyMs.toFixed(1)],
      ] : []),
      ['plain DuckDB (the query alone)', '-', duckdbTinyMs.toFixed(1)],
    ]);
    printJson('engine-overhead', figures);
  } finally {
    if (shm) rmSync(shm, { recursive: true, force: true });
    work.cleanup();
  }
}
