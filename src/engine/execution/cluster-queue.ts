/**
 * What the driver (cluster-executor.ts) and `millpond executor` (cluster-worker.ts) agree on in
 * Redis: the BullMQ queue of tasks, the shape of a job's data and result, how a failure crosses,
 * and the registry of live executors.
 *
 *   <prefix>:<queue>:*            BullMQ's keys for the task queue (default queue "tasks")
 *   <prefix>:<queue>:executors    hash: executor id -> ExecutorEntry (JSON), refreshed each
 *                                 registryHeartbeatMs; an entry older than registryEntryTtlMs is
 *                                 an executor that is gone
 */
import { Redis } from 'ioredis';
import { MillpondError } from '../../errors.js';
import { clusterExecutorLimits } from '../../limits.js';
import type { TaskFailure, TaskResult, TaskSpec } from './task-spec.js';

export const kPrefix = 'millpond';
export const kDefaultQueue = 'tasks';

export interface TaskJobData {
  spec: TaskSpec;
}

export interface ExecutorEntry {
  id: string;
  host: string;
  slots: number;
  running: number;
  pid: number;
  startedMs: number;
  lastSeenMs: number;
  /** The host's network addresses: the driver matches them with storage targets' (locality). */
  addresses?: string[];
}

/** The queue of the tasks that prefer `host` (data locality); its executors also take the shared queue's. */
export function hostQueueName(queue: string, host: string): string {
  return `${queue}@${host}`;
}

/** A TaskFailure crosses BullMQ as the failed job's reason: this prefix, then JSON. */
const kFailurePrefix = 'millpond-task-failure ';

export function encodeFailure(failure: TaskFailure): string {
  return kFailurePrefix + JSON.stringify(failure);
}

export function decodeFailure(reason: string | undefined): TaskFailure {
  if (reason?.startsWith(kFailurePrefix)) {
    try {
      return JSON.parse(reason.slice(kFailurePrefix.length)) as TaskFailure;
    } catch {
      // fall through: a reason we cannot read is a transient failure
    }
  }
  // BullMQ's own reasons (a lock lapsed too often: "job stalled more than allowable limit").
  return { message: reason ?? 'the task failed on an executor', deterministic: false };
}

/** A Redis connection for BullMQ: `redis://[:password@]host:port[/db]`. */
export function redisConnection(url: string, blocking: boolean): Redis {
  if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) throw new TypeError(`redis must be a redis:// URL, got ${String(url)}`);
  const redis = new Redis(url, {
    // Workers block on Redis (BullMQ requires no per-request retry limit there); the driver's
    // requests fail after a few retries so an unreachable Redis surfaces as an error.
    maxRetriesPerRequest: blocking ? null : 3,
    enableReadyCheck: true,
    lazyConnect: false,
  });
  // A lost connection is retried by ioredis; callers see failed requests, not this event.
  redis.on('error', () => {});
  return redis;
}

export function registryKey(queue: string): string {
  return `${kPrefix}:${queue}:executors`;
}

/** Live executors (entries refreshed within registryEntryTtlMs). */
export async function liveExecutors(redis: Redis, queue: string): Promise<ExecutorEntry[]> {
  const all = await redis.hgetall(registryKey(queue));
  const now = Date.now();
  const live: ExecutorEntry[] = [];
  for (const text of Object.values(all)) {
    try {
      const e = JSON.parse(text) as ExecutorEntry;
      if (now - e.lastSeenMs <= clusterExecutorLimits.registryEntryTtlMs) live.push(e);
    } catch {
      // a malformed entry is ignored
    }
  }
  return live.sort((a, b) => a.id.localeCompare(b.id));
}

export function redisUnreachable(url: string, ms: number): MillpondError {
  return new MillpondError('EIO', `redis at ${url.replace(/:[^:@/]*@/, ':***@')} unreachable for ${ms} ms: the cluster executor cannot go on`);
}

export type { TaskResult };
