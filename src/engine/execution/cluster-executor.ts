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
import { BoundedCache } from '../../bounded-cache.js';
import { MillpondError } from '../../errors.js';
import { clusterExecutorLimits } from '../../limits.js';
import { TaskAttemptError, type Executor } from './executor.js';
import {
  decodeFailure, hostQueueName, kDefaultQueue, kPrefix, liveExecutors, redisConnection, redisUnreachable,
  type ExecutorEntry, type TaskJobData,
} from './cluster-queue.js';
import { openDataRoot } from '../partition/root.js';
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
  /**
   * Data locality (default on): a task whose input bytes are mostly on one host's storage
   * targets waits first in that host's queue (its executors take it), and goes to the shared
   * queue after clusterExecutorLimits.localityWaitMs or when that host's executors are gone.
   */
  locality?: boolean;
  /** How long a host may start none of its tasks before they go to any executor (default clusterExecutorLimits.localityWaitMs). */
  localityWaitMs?: number;
}

type BulkJob = Parameters<Queue<TaskJobData>['addBulk']>[0][number];

/** One run() of a task: its BullMQ copies (a host queue's, then maybe the shared queue's). */
interface Waiter {
  resolve: (r: TaskResult) => void;
  reject: (e: TaskAttemptError) => void;
  /** BullMQ job id -> the queue it is on, for every copy not finished yet. */
  copies: Map<string, Queue<TaskJobData>>;
}

/** A copy waiting in a host's queue, until it starts there or moves to the shared queue. */
interface HostCopy {
  jobId: string;
  host: string;
  job: BulkJob;
  queuedMs: number;
  active: boolean;
}

export class ClusterExecutor implements Executor {
  readonly runsFunctions = true;
  private readonly waiters = new Map<string, Waiter>();
  private readonly batches = new Map<Queue<TaskJobData>, { job: BulkJob; resolve: () => void; reject: (e: Error) => void }[]>();
  private readonly hostQueues = new Map<string, { queue: Queue<TaskJobData>; events: QueueEvents; connection: Redis }>();
  private readonly hostCopies = new Map<string, HostCopy>();
  private live: ExecutorEntry[] = [];
  /**
   * Where files' bytes are, by root and location (a job's files are written once; a file
   * rewritten in place only makes a stale preference, never a wrong result).
   */
  private readonly located = new BoundedCache<string, { bytes: number; hosts: Map<string, number> }>(clusterExecutorLimits.localityCacheEntriesMax);
  /** When a task last started in each host's queue (locality waits count from it). */
  private readonly hostStartedMs = new Map<string, number>();
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
    const waitMs = options.localityWaitMs;
    if (waitMs !== undefined && (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > clusterExecutorLimits.localityWaitMsMax)) {
      throw new RangeError(`executor.localityWaitMs must be an integer in [0, ${clusterExecutorLimits.localityWaitMsMax}]`);
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

  private get localityWaitMs(): number {
    return this.options.localityWaitMs ?? clusterExecutorLimits.localityWaitMs;
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
    const job: BulkJob = {
      name: spec.key,
      data: { spec },
      opts: {
        jobId,
        attempts: 1, // attempts are the scheduler's (each with its own temporary files)
        removeOnComplete: { age: clusterExecutorLimits.finishedJobsKeptSeconds },
        removeOnFail: { age: clusterExecutorLimits.finishedJobsKeptSeconds },
      },
    };
    // Locality is a preference: a file we cannot locate just goes to the shared queue.
    const host = this.options.locality === false ? undefined : await this.preferredHost(spec).catch(() => undefined);
    const queue = host === undefined ? this.queue : this.hostQueue(host).queue;
    const waiter = { copies: new Map([[jobId, queue]]) } as Waiter;
    const done = new Promise<TaskResult>((resolve, reject) => Object.assign(waiter, { resolve, reject }));
    this.waiters.set(jobId, waiter);
    if (host !== undefined) this.hostCopies.set(jobId, { jobId, host, job, queuedMs: Date.now(), active: false });
    try {
      await this.enqueue(queue, job);
    } catch (e) {
      this.waiters.delete(jobId);
      this.hostCopies.delete(jobId);
      throw new TaskAttemptError({ message: `cannot queue task ${spec.key}: ${(e as Error).message}`, deterministic: false });
    }
    return done;
  }

  /**
   * The executor host holding most (over half) of the task's input bytes, if one does and it
   * has live executors; undefined when unknown (a local root, a glob, an address that several
   * executor hosts share).
   */
  private async preferredHost(spec: TaskSpec): Promise<string | undefined> {
    if (spec.root.kind !== 'millpond' || spec.inputs.length === 0) return undefined;
    const root = openDataRoot(spec.root);
    if (!root.dataHosts) return undefined;
    const locations: string[] = [];
    for (const input of spec.inputs) {
      if (input.empty) continue;
      for (const file of input.files) {
        const location = /[*?[]/.test(file) ? undefined : root.locationOf(file);
        if (location === undefined) return undefined;
        locations.push(location);
      }
    }
    if (locations.length > clusterExecutorLimits.localityFilesMax) return undefined;
    let bytes = 0;
    const byAddress = new Map<string, number>();
    const located = await Promise.all(locations.map(async (l) => {
      const key = `${spec.root.kind === 'millpond' ? spec.root.meta : ''}|${l}`;
      let where = this.located.get(key);
      if (!where) {
        where = await root.dataHosts!(l);
        this.located.set(key, where);
      }
      return where;
    }));
    for (const where of located) {
      bytes += where.bytes;
      for (const [address, n] of where.hosts) byAddress.set(address, (byAddress.get(address) ?? 0) + n);
    }
    const best = [...byAddress].sort((a, b) => b[1] - a[1])[0];
    if (!best || best[1] * 2 <= bytes) return undefined;
    const hosts = new Set(this.live.filter((e) => e.addresses?.includes(best[0])).map((e) => e.host));
    return hosts.size === 1 ? [...hosts][0] : undefined;
  }

  private hostQueue(host: string): { queue: Queue<TaskJobData>; events: QueueEvents; connection: Redis } {
    let entry = this.hostQueues.get(host);
    if (!entry) {
      const name = hostQueueName(this.queue.name, host);
      const connection = redisConnection(this.options.redis, true);
      const queue = new Queue<TaskJobData>(name, { connection: this.connections[1]!, prefix: kPrefix });
      const events = new QueueEvents(name, { connection, prefix: kPrefix });
      queue.on('error', () => {});
      events.on('error', () => {});
      this.listen(events);
      events.on('active', ({ jobId }) => {
        this.hostStartedMs.set(host, Date.now());
        const copy = this.hostCopies.get(jobId);
        if (copy) copy.active = true;
      });
      this.hostQueues.set(host, (entry = { queue, events, connection }));
    }
    return entry;
  }

  /**
   * Host copies that waited localityWaitMs without starting while their host started none
   * either (a host busy with its own tasks keeps them, as Spark's locality wait does), or whose host's executors are
   * gone (a copy running there then never finishes: no executor of that queue checks its
   * lock), get a copy on the shared queue; a copy still waiting is taken off its host queue.
   * Two copies that both run are safe: the first to finish claims the task's outputs.
   */
  private async moveHostCopies(): Promise<void> {
    const now = Date.now();
    const liveHosts = new Set(this.live.map((e) => e.host));
    for (const copy of [...this.hostCopies.values()]) {
      const since = Math.max(copy.queuedMs, this.hostStartedMs.get(copy.host) ?? 0);
      const waited = !copy.active && now - since >= this.localityWaitMs;
      if (!waited && liveHosts.has(copy.host)) continue;
      this.hostCopies.delete(copy.jobId);
      const waiter = this.waiters.get(copy.jobId);
      if (!waiter) continue;
      const hostQueue = this.hostQueues.get(copy.host)!.queue;
      if (!copy.active) {
        const removed = await hostQueue.remove(copy.jobId).catch(() => 0);
        if (removed === 1) {
          waiter.copies.delete(copy.jobId);
          this.waiters.delete(copy.jobId);
        }
      }
      const jobId = `${copy.jobId}.shared`;
      waiter.copies.set(jobId, this.queue);
      this.waiters.set(jobId, waiter);
      try {
        await this.enqueue(this.queue, { ...copy.job, opts: { ...copy.job.opts, jobId } });
      } catch {
        waiter.copies.delete(jobId);
        this.waiters.delete(jobId);
        // the host copy (if still there) may yet run; else the poll's Redis check fails the job
      }
    }
  }

  /**
   * Tasks handed over in the same turn of the event loop go to Redis in one addBulk per queue
   * (one round trip for a stage's ready tasks instead of one each).
   */
  private enqueue(queue: Queue<TaskJobData>, job: BulkJob): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let batch = this.batches.get(queue);
      if (!batch) this.batches.set(queue, (batch = []));
      batch.push({ job, resolve, reject });
      if (batch.length === 1) setImmediate(() => void this.flush(queue));
    });
  }

  private async flush(queue: Queue<TaskJobData>): Promise<void> {
    const pending = this.batches.get(queue) ?? [];
    const batch = pending.splice(0, clusterExecutorLimits.enqueueBatchMax);
    if (pending.length > 0) setImmediate(() => void this.flush(queue));
    try {
      await queue.addBulk(batch.map((b) => b.job));
      for (const b of batch) b.resolve();
    } catch (e) {
      for (const b of batch) b.reject(e as Error);
    }
  }

  private listen(events: QueueEvents): void {
    events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, { ok: returnvalue }));
    events.on('failed', ({ jobId, failedReason }) => this.settle(jobId, { reason: failedReason }));
  }

  private start(): void {
    this.listen(this.events);
    const poll = setInterval(() => void this.poll(), clusterExecutorLimits.taskPollMs);
    const slots = setInterval(() => void this.refreshSlots(), clusterExecutorLimits.registryHeartbeatMs);
    const locality = setInterval(() => void this.moveHostCopies(), clusterExecutorLimits.localityCheckMs);
    for (const t of [poll, slots, locality]) {
      t.unref();
      this.timers.push(t);
    }
  }

  private settle(jobId: string, outcome: { ok?: unknown; reason?: string }): void {
    const waiter = this.waiters.get(jobId);
    if (!waiter) return;
    this.waiters.delete(jobId);
    this.hostCopies.delete(jobId);
    waiter.copies.delete(jobId);
    const ok = 'ok' in outcome && outcome.ok !== undefined;
    // A copy that failed while another may still finish (it lost the claim to it, or its host
    // was given up on): the other's outcome decides.
    if (!ok && waiter.copies.size > 0) return;
    for (const [other, queue] of waiter.copies) {
      this.waiters.delete(other);
      this.hostCopies.delete(other);
      void queue.remove(other).catch(() => {}); // a copy not started yet need not run
    }
    waiter.copies.clear();
    if (ok) {
      const value = typeof outcome.ok === 'string' ? JSON.parse(outcome.ok) as TaskResult : outcome.ok as TaskResult;
      waiter.resolve(value);
    } else {
      waiter.reject(new TaskAttemptError(decodeFailure(outcome.reason)));
    }
  }

  /** The safety net under the events: each waited-for job's state, read directly. */
  private async poll(): Promise<void> {
    try {
      for (const [jobId, waiter] of [...this.waiters]) {
        const queue = waiter.copies.get(jobId);
        if (!queue) continue;
        const job = await Job.fromId<TaskJobData, TaskResult>(queue, jobId);
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
    const waiters = new Set(this.waiters.values());
    this.waiters.clear();
    this.hostCopies.clear();
    for (const waiter of waiters) waiter.reject(new TaskAttemptError({ message: error.message, deterministic: true, code: error.code }));
  }

  private async refreshSlots(): Promise<void> {
    try {
      const live = await liveExecutors(this.redis, this.queue.name);
      this.live = live;
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
    const hosts = [...this.hostQueues.values()];
    await Promise.allSettled([this.events.close(), this.queue.close(), ...hosts.flatMap((h) => [h.events.close(), h.queue.close()])]);
    for (const c of [...this.connections, ...hosts.map((h) => h.connection)]) c.disconnect();
  }
}
