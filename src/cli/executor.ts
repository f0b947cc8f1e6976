/**
 * `millpond executor --redis URL [--slots N] [--queue NAME] [--host NAME]`: this host's share of
 * the cluster executor (src/engine/execution/cluster-worker.ts) in the foreground; SIGTERM or
 * Ctrl-C lets running tasks finish, then stops.
 */
import { cpus } from 'node:os';
import { ExecutorDaemon } from '../engine/execution/cluster-worker.js';

export const EXECUTOR_USAGE = 'executor --redis redis://H:P [--slots N] [--queue NAME] [--host NAME]';

export async function runExecutor(flags: Map<string, string>): Promise<void> {
  const redis = flags.get('redis') ?? process.env.MILLPOND_REDIS;
  if (!redis) throw new TypeError(`millpond executor needs --redis redis://host:port (or MILLPOND_REDIS)\nusage: millpond ${EXECUTOR_USAGE}`);
  const slots = Number(flags.get('slots') ?? Math.max(1, cpus().length));
  const daemon = await ExecutorDaemon.start({
    redis, slots, ...(flags.has('queue') ? { queue: flags.get('queue')! } : {}), ...(flags.has('host') ? { host: flags.get('host')! } : {}),
  });
  console.log(`executor ${daemon.entry.id}: ${slots} slots, tasks from ${redis.replace(/:[^:@/]*@/, ':***@')}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await daemon.stop();
}
