/**
 * The cluster executor (design §11): the driver keeps the plan and puts each ready task on a
 * BullMQ queue in Redis; `millpond executor` processes on many hosts take them (cluster-worker.ts)
 * and run them in warm worker processes. BullMQ gives the queue, locks and stalled-task
 * detection (a dead or cut-off executor's task goes back to the queue when its lock lapses);
 * the scheduler keeps retries across attempts, speculative copies and resume.
 *
 * A task's outcome reaches the driver through BullMQ's events, with a poll of the job's state as
 * a safety net (an event lost while Redis restarted must not leave the driver waiting forever).
 */
import { randomUUID } from 'node:crypto';
import { Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { MillpondError } from '../../errors.js';
import { clusterExecutorLimits } from '../../limits.js';
import { TaskAttemptError, type Executor } from './executor.js';
import {
  decodeFailure, kDefaultQueue, kPrefix, liveExecutors, redisConnection, redisUnreachable,
  type ExecutorEntry, type TaskJobData,
} from './cluster-queue.js';
import type { TaskResult, TaskSpec } from './task-spec.js';

export interface ClusterExecutorOptions {
  kind: 'cluster';
  /** redis://[:password@]host:port[/db] */
  redis: string;
  /** Queue name (default "tasks"): executors started with the same --queue take its tasks. */
  queue?: string;
  /**
   * Tasks in flight at once (default: queuedTasksPerSlot times the live executors' slots,
   * refreshed as they come and go).
   */
  slots?: number;
}

interface Waiter {
  resolve: (r: TaskResult) => void;
  reject: (e: TaskAttemptError) => void;
}

export class ClusterExecutor implements Executor {
  readonly runsFunctions = true;
  private readonly waiters = new Map<string, Waiter>();
  private executorSlots = 1;
  private redisDownSinceMs: number | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;

  private constructor(
    private readonly options: ClusterExecutorOptions,
    private readonly redis: Redis,
    private readonly queue: Queue<TaskJobData>,
    private readonly events: QueueEvents,
    /** BullMQ does not close a connection it was handed (a shared one): close() does. */
    private readonly connections: Redis[],
  ) {}

  static async open(options: ClusterExecutorOptions): Promise<ClusterExecutor> {
    if (options.slots !== undefined && (!Number.isInteger(options.slots) || options.slots < 1 || options.slots > clusterExecutorLimits.inFlightTasksMax)) {
      throw new RangeError(`executor.slots must be an integer in [1, ${clusterExecutorLimits.inFlightTasksMax}]`);
    }
    const name = options.queue ?? kDefaultQueue;
    const redis = redisConnection(options.redis, false);
    try {
      await redis.ping();
    } catch (e) {
      redis.disconnect();
      throw new MillpondError('ECONNREFUSED', `cluster executor: cannot reach redis at ${options.redis}: ${(e as Error).message}`);
    }
    const queueConnection = redisConnection(options.redis, false);
    const eventsConnection = redisConnection(options.redis, true);
    const queue = new Queue<TaskJobData>(name, { connection: queueConnection, prefix: kPrefix });
    const events = new QueueEvents(name, { connection: eventsConnection, prefix: kPrefix });
    queue.on('error', () => {});
    events.on('error', () => {});
    await events.waitUntilReady();
    const executor = new ClusterExecutor(options, redis, queue, events, [redis, queueConnection, eventsConnection]);
    await executor.refreshSlots();
    executor.start();
    return executor;
  }

  get slots(): number {
    return this.options.slots ?? this.executorSlots;
  }

  /** The live executors (host, slots, running tasks), from the registry in Redis. */
  async executors(): Promise<ExecutorEntry[]> {
    return liveExecutors(this.redis, this.queue.name);
  }

  async run(spec: TaskSpec): Promise<TaskResult> {
    if (this.closed) throw new TaskAttemptError({ message: 'executor is shut down', deterministic: true });
    // A job id of its own per run: a rerun of a job (same jobId, same attempt numbers) must
    // never be answered by an earlier run's finished BullMQ job.
    const jobId = `${spec.key}.${spec.attempt}.${randomUUID()}`.replace(/:/g, '_');
    const done = new Promise<TaskResult>((resolve, reject) => this.waiters.set(jobId, { resolve, reject }));
    try {
      await this.queue.add(spec.key, { spec }, {
        jobId,
        attempts: 1, // attempts are the scheduler's (each with its own temporary files)
        removeOnComplete: { age: clusterExecutorLimits.finishedJobsKeptSeconds },
        removeOnFail: { age: clusterExecutorLimits.finishedJobsKeptSeconds },
      });
    } catch (e) {
      this.waiters.delete(jobId);
      throw new TaskAttemptError({ message: `cannot queue task ${spec.key}: ${(e as Error).message}`, deterministic: false });
    }
    return done;
  }

  private start(): void {
    this.events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, { ok: returnvalue }));
    this.events.on('failed', ({ jobId, failedReason }) => this.settle(jobId, { reason: failedReason }));
    const poll = setInterval(() => void this.poll(), clusterExecutorLimits.taskPollMs);
    const slots = setInterval(() => void this.refreshSlots(), clusterExecutorLimits.registryHeartbeatMs);
    poll.unref();
    slots.unref();
    this.timers.push(poll, slots);
  }

  private settle(jobId: string, outcome: { ok?: unknown; reason?: string }): void {
    const waiter = this.waiters.get(jobId);
    if (!waiter) return;
    this.waiters.delete(jobId);
    if ('ok' in outcome && outcome.ok !== undefined) {
      const value = typeof outcome.ok === 'string' ? JSON.parse(outcome.ok) as TaskResult : outcome.ok as TaskResult;
      waiter.resolve(value);
    } else {
      waiter.reject(new TaskAttemptError(decodeFailure(outcome.reason)));
    }
  }

  /** The safety net under the events: each waited-for job's state, read directly. */
  private async poll(): Promise<void> {
    try {
      for (const jobId of [...this.waiters.keys()]) {
        const job = await Job.fromId<TaskJobData, TaskResult>(this.queue, jobId);
        if (!job) continue; // not visible yet (an add in flight)
        if (job.finishedOn && job.returnvalue !== undefined && job.returnvalue !== null) this.settle(jobId, { ok: job.returnvalue });
        else if (job.finishedOn && job.failedReason) this.settle(jobId, { reason: job.failedReason });
      }
      this.redisDownSinceMs = undefined;
    } catch {
      const now = Date.now();
      this.redisDownSinceMs ??= now;
      const downMs = now - this.redisDownSinceMs;
      if (downMs >= clusterExecutorLimits.redisUnreachableMsMax) this.failAll(redisUnreachable(this.options.redis, downMs));
    }
  }

  private failAll(error: MillpondError): void {
    for (const [jobId, waiter] of this.waiters) {
      this.waiters.delete(jobId);
      waiter.reject(new TaskAttemptError({ message: error.message, deterministic: true, code: error.code }));
    }
  }

  private async refreshSlots(): Promise<void> {
    try {
      const live = await liveExecutors(this.redis, this.queue.name);
      const slots = live.reduce((a, e) => a + e.slots, 0) * clusterExecutorLimits.queuedTasksPerSlot;
      this.executorSlots = Math.max(1, Math.min(clusterExecutorLimits.inFlightTasksMax, slots));
    } catch {
      // Redis away: keep the last figure; poll() decides when to give up
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.failAll(new MillpondError('ECLOSED', 'cluster executor closed'));
    await Promise.allSettled([this.events.close(), this.queue.close()]);
    for (const c of this.connections) c.disconnect();
  }
}
