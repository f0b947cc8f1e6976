/**
 * The local executor: N worker processes on this machine (child_process.fork), one task in
 * flight per worker. A worker that dies fails its task (the scheduler retries it) and is
 * replaced on the next run. An idle worker does not keep the driver alive (a Ray driver ends
 * without ray.shutdown() too): its process and IPC channel are referenced only while it holds
 * a task; when the driver ends, the channel closes and the worker exits on 'disconnect'.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { engineLimits } from '../../limits.js';
import { TaskAttemptError, type Executor } from './executor.js';
import type { FromWorker, ToWorker } from './protocol.js';
import type { TaskFailure, TaskResult, TaskSpec } from './task-spec.js';

export { TaskAttemptError };

interface Worker {
  child: ChildProcess;
  ready: Promise<void>;
  busy?: { key: string; resolve: (r: TaskResult) => void; reject: (e: TaskAttemptError) => void };
  dead: boolean;
}

/** Whether `child` keeps this process's event loop alive: only while it holds a task. */
function holdLoop(child: ChildProcess, busy: boolean): void {
  if (busy) {
    child.ref();
    child.channel?.ref();
  } else {
    child.unref();
    child.channel?.unref();
  }
}

function workerEntry(): { path: string; execArgv: string[] } {
  const self = fileURLToPath(import.meta.url);
  // From source (tests, tsx) the worker is TypeScript and needs tsx's loader in the child.
  if (self.endsWith('.ts')) return { path: self.replace(/local-executor\.ts$/, 'worker.ts'), execArgv: ['--import', 'tsx'] };
  return { path: self.replace(/local-executor\.js$/, 'worker.js'), execArgv: [] };
}

export class LocalExecutor implements Executor {
  /** JS functions are closures: on this machine they run in the driver, where their values are. */
  readonly runsFunctions = false;
  private readonly workers: Worker[] = [];
  private closed = false;

  constructor(readonly slots: number) {}

  /**
   * Starts every slot's worker now and waits until they are ready or failed (warm slots); a
   * worker that failed to start is replaced when a task needs its slot. `holdLoop`: the
   * starting workers keep this process alive until they are ready (a caller that awaits this
   * and has nothing else running needs it; init(), which does not await it, passes false).
   */
  async warmUp(options: { holdLoop?: boolean } = {}): Promise<void> {
    while (this.workers.filter((w) => !w.dead).length < this.slots) this.spawn();
    const starting = this.workers.filter((w) => !w.dead && !w.busy);
    if (options.holdLoop ?? true) for (const w of starting) holdLoop(w.child, true);
    await Promise.allSettled(this.workers.map((w) => w.ready));
    for (const w of starting) if (!w.busy) holdLoop(w.child, false);
  }

  /** Pids of live workers (tests kill them). */
  pids(): number[] {
    return this.workers.filter((w) => !w.dead).map((w) => w.child.pid!);
  }

  /** REQUIRES: fewer than `slots` runs in flight (the scheduler's bound). */
  async run(spec: TaskSpec): Promise<TaskResult> {
    if (this.closed) throw new TaskAttemptError({ message: 'executor is shut down', deterministic: true });
    const worker = this.idleWorker();
    const pending = new Promise<TaskResult>((resolve, reject) => {
      worker.busy = { key: spec.key, resolve, reject };
    });
    holdLoop(worker.child, true);
    pending.catch(() => {}); // observed below; a worker dying before ready must not go unhandled
    try {
      await worker.ready;
    } catch (e) {
      worker.busy = undefined;
      throw e;
    }
    if (worker.dead) {
      // The exit handler has already rejected `pending`.
      return pending;
    }
    const message: ToWorker = { type: 'run', spec };
    worker.child.send(message);
    return pending;
  }

  private idleWorker(): Worker {
    for (let i = this.workers.length - 1; i >= 0; i--) if (this.workers[i]!.dead) this.workers.splice(i, 1);
    const idle = this.workers.find((w) => !w.busy);
    if (idle) return idle;
    if (this.workers.length >= this.slots) throw new Error('LocalExecutor: more runs in flight than slots');
    return this.spawn();
  }

  private spawn(): Worker {
    const entry = workerEntry();
    const child = fork(entry.path, [], { execArgv: entry.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    let readyResolve!: () => void;
    let readyReject!: (e: TaskAttemptError) => void;
    const worker: Worker = {
      child,
      dead: false,
      ready: new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; }),
    };
    worker.ready.catch(() => {});
    const startTimer = setTimeout(() => {
      readyReject(new TaskAttemptError({ message: `worker pid ${child.pid} did not start within ${engineLimits.workerStartTimeoutMs} ms`, deterministic: false }));
      child.kill('SIGKILL');
    }, engineLimits.workerStartTimeoutMs);
    startTimer.unref(); // a task waiting for this worker holds the loop through its channel
    holdLoop(child, false);
    child.on('message', (message: FromWorker) => {
      if (message.type === 'ready') {
        clearTimeout(startTimer);
        readyResolve();
        return;
      }
      const busy = worker.busy;
      if (!busy || busy.key !== message.key) return;
      worker.busy = undefined;
      holdLoop(child, false);
      if (message.type === 'done') busy.resolve({ ...message.result, placement: { host: hostname(), executor: 'local', pid: child.pid! } });
      else busy.reject(new TaskAttemptError(message.failure));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(startTimer);
      worker.dead = true;
      const failure: TaskFailure = { message: `worker pid ${child.pid} died (${signal ?? `exit code ${code}`})`, deterministic: false };
      readyReject(new TaskAttemptError(failure));
      const busy = worker.busy;
      worker.busy = undefined;
      busy?.reject(new TaskAttemptError(failure));
    });
    child.on('error', () => {}); // 'exit' follows and reports
    this.workers.push(worker);
    return worker;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map(async (w) => {
      if (w.dead) return;
      const exited = new Promise<void>((res) => w.child.once('exit', () => res()));
      try {
        w.child.send({ type: 'exit' } satisfies ToWorker);
      } catch {
        w.child.kill('SIGKILL');
      }
      const timer = setTimeout(() => w.child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }));
    this.workers.length = 0;
  }
}
