/**
 * `millpond executor`: one host's share of the cluster executor. A BullMQ worker with N slots
 * takes tasks from the queue and runs each in one of N warm worker processes (a LocalExecutor
 * started up front: DuckDB and the millpond extension stay loaded between tasks). It keeps its
 * entry in the registry of live executors fresh, so the driver and `millpond status` see it.
 *
 * A task that fails comes back to the driver as a failed BullMQ job whose reason carries the
 * TaskFailure; if this process dies or is cut off, its tasks' locks lapse and BullMQ hands them
 * to another executor.
 */
import { engineOutputBytes, engineTaskAttempts, engineTaskReadBytes, engineTaskRetries, engineTasks, engineTasksRunning, engineTaskWrittenBytes } from '../../metrics/services.js';
import { hostname, loadavg, networkInterfaces } from 'node:os';
import type { ClientAuth } from '../../auth/credentials.js';
import { leaveExecutor, reportExecutor } from '../../cluster/executors.js';
import { MgmtdClient } from '../../cluster/mgmtd-client.js';
import { Worker, type Job } from 'bullmq';
import { clusterExecutorLimits } from '../../limits.js';
import { encodeFailure, hostQueueName, kDefaultQueue, kPrefix, redisConnection, registryKey, type ExecutorEntry, type TaskJobData } from './cluster-queue.js';
import { TaskAttemptError } from './executor.js';
import { LocalExecutor } from './local-executor.js';
import type { TaskResult } from './task-spec.js';
import { logger } from '../../log.js';

const log = logger('executor');

export interface ExecutorDaemonOptions {
  redis: string;
  slots: number;
  queue?: string;
  /** How this executor is named in the registry and in task placements (default: hostname). */
  host?: string;
  /**
   * mgmtd's addresses: the executor also reports itself there (host, slots, running tasks,
   * load), so `millpond status` lists it; `auth` is the token it reports with.
   */
  mgmtd?: string[];
  auth?: ClientAuth;
}

export class ExecutorDaemon {
  private running = 0;
  /**
   * Tasks taken from the queue wait here for a free slot (BullMQ takes prefetchedTasksPerSlot
   * more than the slots): a slot that finishes starts its next task at once, without waiting
   * for the round trip to Redis that completes the last one and fetches another.
   */
  private freeSlots: number;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly timer: NodeJS.Timeout;

  private constructor(
    readonly entry: ExecutorEntry,
    private readonly local: LocalExecutor,
    private readonly workers: Worker<TaskJobData, TaskResult>[],
    /** BullMQ does not close a connection it was handed: stop() does. */
    private readonly workerConnection: ReturnType<typeof redisConnection>,
    private readonly registry: ReturnType<typeof redisConnection>,
    private readonly queue: string,
    private readonly mgmtd: MgmtdClient | undefined,
  ) {
    this.timer = setInterval(() => void this.heartbeat(), clusterExecutorLimits.registryHeartbeatMs);
    this.freeSlots = entry.slots;
  }

  private async takeSlot(): Promise<void> {
    if (this.freeSlots > 0) {
      this.freeSlots--;
      return;
    }
    await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
  }

  /** Hands the slot straight to the next waiting task (synchronously: no tick in between). */
  private releaseSlot(): void {
    const next = this.slotWaiters.shift();
    if (next) next(); else this.freeSlots++;
  }

  static async start(options: ExecutorDaemonOptions): Promise<ExecutorDaemon> {
    const { slots } = options;
    if (!Number.isInteger(slots) || slots < 1 || slots > clusterExecutorLimits.slotsMax) {
      throw new RangeError(`slots must be an integer in [1, ${clusterExecutorLimits.slotsMax}]`);
    }
    const host = options.host ?? hostname();
    const entry: ExecutorEntry = {
      id: `${host}/${process.pid}`, host, slots, running: 0, pid: process.pid, startedMs: Date.now(), lastSeenMs: Date.now(),
      addresses: Object.values(networkInterfaces()).flat().filter((a) => a && !a.internal).map((a) => a!.address),
    };
    const local = new LocalExecutor(slots);
    await local.warmUp();
    const registry = redisConnection(options.redis, false);
    let daemon: ExecutorDaemon | undefined;
    // Two BullMQ workers share the slots: the shared queue's and this host's own (tasks whose
    // input is mostly here wait there first: data locality).
    const queueName = options.queue ?? kDefaultQueue;
    const workerConnection = redisConnection(options.redis, true);
    const workerOptions = {
      connection: workerConnection,
      prefix: kPrefix,
      concurrency: slots * (1 + clusterExecutorLimits.prefetchedTasksPerSlot),
      lockDuration: clusterExecutorLimits.lockDurationMs,
      stalledInterval: clusterExecutorLimits.stalledCheckIntervalMs,
      maxStalledCount: clusterExecutorLimits.stalledCountMax,
      autorun: false,
    };
    const worker = new Worker<TaskJobData, TaskResult>(queueName, (job) => daemon!.process(job), workerOptions);
    const hostWorker = new Worker<TaskJobData, TaskResult>(hostQueueName(queueName, host), (job) => daemon!.process(job), workerOptions);
    hostWorker.on('error', () => {});
    worker.on('error', () => {}); // Redis away: BullMQ reconnects and resumes
    const mgmtd = options.mgmtd ? new MgmtdClient(options.mgmtd, {
      timeoutMs: clusterExecutorLimits.mgmtdReportTimeoutMs, roundsMax: 1, ...(options.auth ? { auth: options.auth } : {}),
    }) : undefined;
    daemon = new ExecutorDaemon(entry, local, [worker, hostWorker], workerConnection, registry, queueName, mgmtd);
    // The first report must go through: a wrong token or address is the operator's error now.
    if (mgmtd) await daemon.report().catch(async (e) => { await daemon!.stop(); throw e; });
    await daemon.heartbeat();
    for (const w of [worker, hostWorker]) void w.run();
    await Promise.all([worker.waitUntilReady(), hostWorker.waitUntilReady()]);
    return daemon;
  }

  private async process(job: Job<TaskJobData, TaskResult>): Promise<TaskResult> {
    await this.takeSlot();
    try {
      return await this.runTaken(job);
    } finally {
      this.releaseSlot();
    }
  }

  private async runTaken(job: Job<TaskJobData, TaskResult>): Promise<TaskResult> {
    this.running++;
    engineTasksRunning.inc();
    engineTaskAttempts.inc();
    if (job.attemptsMade > 0) engineTaskRetries.inc();
    let outcome = 'failed';
    try {
      const result = await this.local.run(job.data.spec);
      outcome = 'succeeded';
      engineOutputBytes.inc(result.outputs.reduce((a, o) => a + o.bytes, 0));
      if (result.readBytes !== undefined) engineTaskReadBytes.observe(result.readBytes);
      if (result.writtenBytes !== undefined) engineTaskWrittenBytes.observe(result.writtenBytes);
      return { ...result, placement: { ...result.placement!, host: this.entry.host, executor: this.entry.id } };
    } catch (e) {
      const failure = e instanceof TaskAttemptError ? e.failure : { message: (e as Error).message, deterministic: false };
      log.warn(`task attempt failed: ${failure.message}`, { job: job.id, attempt: job.attemptsMade + 1, deterministic: failure.deterministic });
      throw new Error(encodeFailure(failure));
    } finally {
      engineTasks.inc({ outcome });
      engineTasksRunning.dec();
      this.running--;
    }
  }

  private async heartbeat(): Promise<void> {
    this.entry.running = this.running;
    this.entry.lastSeenMs = Date.now();
    await Promise.all([
      this.registry.hset(registryKey(this.queue), this.entry.id, JSON.stringify(this.entry)).catch(() => {}),
      this.mgmtd ? this.report().catch(() => {}) : undefined, // mgmtd away: the next period retries
    ]);
  }

  private report(): Promise<void> {
    const { id, host, slots, pid, startedMs } = this.entry;
    return reportExecutor(this.mgmtd!, { id, host, slots, running: this.running, load1: loadavg()[0]!, pid, startedMs });
  }

  /** Stops taking tasks, lets running ones finish, leaves the registry. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.workers.map((w) => w.close()));
    this.workerConnection.disconnect();
    await this.registry.hdel(registryKey(this.queue), this.entry.id).catch(() => {});
    this.registry.disconnect();
    if (this.mgmtd) {
      await leaveExecutor(this.mgmtd, this.entry.id).catch(() => {}); // else its entry lapses
      this.mgmtd.close();
    }
    await this.local.close();
  }
}
