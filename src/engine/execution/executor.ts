/**
 * Where tasks run. The scheduler hands an executor at most `slots` tasks at once and gets each
 * one's result or a TaskAttemptError. Two kinds: LocalExecutor (worker processes on this
 * machine, the default) and ClusterExecutor (BullMQ workers on many hosts, `millpond executor`).
 */
import type { TaskFailure, TaskResult, TaskSpec } from './task-spec.js';

export class TaskAttemptError extends Error {
  constructor(readonly failure: TaskFailure) {
    super(failure.message);
  }
}

/** Where an attempt ran, for the job's record (tests assert it; the console shows it). */
export interface TaskPlacement {
  host: string;
  executor: string;
  pid: number;
}

export interface Executor {
  /** Tasks it may be handed at once. */
  readonly slots: number;
  /** REQUIRES: fewer than `slots` runs in flight (the scheduler's bound). */
  run(spec: TaskSpec): Promise<TaskResult>;
  /** Whether JS functions (filter/map/... with a function) run as tasks here (else in the driver). */
  readonly runsFunctions: boolean;
  close(): Promise<void>;
}
