/**
 * `millpond executor --redis URL [--slots N] [--queue NAME] [--host NAME]`: this host's share of
 * the cluster executor (src/engine/execution/cluster-worker.ts) in the foreground; SIGTERM or
 * Ctrl-C lets running tasks finish, then stops.
 */
import { ClusterAuth } from '../auth/credentials.js';
import { serveMetricsFlag } from '../metrics/server.js';
import { cpus } from 'node:os';
import { kDefaultQueue, liveExecutors, redisConnection } from '../engine/execution/cluster-queue.js';
import { ExecutorDaemon } from '../engine/execution/cluster-worker.js';
import { cliAuth, loadConfig } from './config.js';

import { EXECUTOR_USAGE } from './executor-usage.js';

export { EXECUTOR_USAGE };

export async function runExecutor(flags: Map<string, string>): Promise<void> {
  const redis = flags.get('redis') ?? process.env.MILLPOND_REDIS;
  if (!redis) throw new TypeError(`millpond executor needs --redis redis://host:port (or MILLPOND_REDIS)\nusage: millpond ${EXECUTOR_USAGE}`);
  const slots = Number(flags.get('slots') ?? Math.max(1, cpus().length));
  // With --mgmtd (or MILLPOND_MGMTD) it reports itself to mgmtd with the CLI's token
  // (--token-file, MILLPOND_TOKEN, MILLPOND_TOKEN_FILE), so `millpond status` lists it.
  const mgmtdList = flags.get('mgmtd') ?? process.env.MILLPOND_MGMTD;
  const config = mgmtdList ? loadConfig(new Map([...flags].filter(([k]) => k !== 'host'))) : undefined;
  const auth = config ? cliAuth(config) : undefined;
  const metrics = await serveMetricsFlag(flags.get('metrics-listen'), flags.has('secret-file') ? ClusterAuth.load(flags.get('secret-file')!).secret : undefined);
  const daemon = await ExecutorDaemon.start({
    redis, slots, ...(flags.has('queue') ? { queue: flags.get('queue')! } : {}), ...(flags.has('host') ? { host: flags.get('host')! } : {}),
    ...(config ? { mgmtd: config.mgmtd } : {}), ...(auth ? { auth } : {}),
  });
  console.log(`executor ${daemon.entry.id}: ${slots} slots, tasks from ${redis.replace(/:[^:@/]*@/, ':***@')}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await daemon.stop();
  await metrics?.close();
}

/** `millpond status` with --redis (or MILLPOND_REDIS): the live executors of a queue. */
export async function printExecutors(redisUrl: string, queue = kDefaultQueue): Promise<void> {
  const redis = redisConnection(redisUrl, false);
  try {
    const live = await liveExecutors(redis, queue);
    const slots = live.reduce((a, e) => a + e.slots, 0);
    const running = live.reduce((a, e) => a + e.running, 0);
    console.log(`executors: ${live.length} live on queue ${queue}, ${slots} slots, ${running} tasks running`);
    for (const e of live) console.log(`executor ${e.id} host ${e.host} slots ${e.slots} running ${e.running} up ${Math.round((Date.now() - e.startedMs) / 1000)} s`);
  } finally {
    redis.disconnect();
  }
}
