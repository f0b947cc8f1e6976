/** Messages between the scheduler and worker processes (child_process IPC, JSON). */
import type { TaskFailure, TaskResult, TaskSpec } from './task-spec.js';

export type ToWorker =
  | { type: 'run'; spec: TaskSpec }
  | { type: 'exit' };

export type FromWorker =
  | { type: 'ready'; pid: number }
  | { type: 'done'; key: string; attempt: number; result: TaskResult }
  | { type: 'failed'; key: string; attempt: number; failure: TaskFailure };
