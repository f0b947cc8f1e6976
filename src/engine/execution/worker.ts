/**
 * A worker process of the local executor: runs one task at a time, as the scheduler sends
 * them, and reports each result. It holds no state between tasks (each task opens its own
 * DuckDB), so killing it loses only the task it was running.
 *
 * Test hook: when MILLPOND_ENGINE_TEST_STALL_FILE is set and that file does not exist yet, the
 * first task to start (whose key matches MILLPOND_ENGINE_TEST_STALL_KEY, a regular expression,
 * when set) creates it with this process's pid and sleeps MILLPOND_ENGINE_TEST_STALL_MS before
 * running — a window for a test to SIGKILL a worker mid-task, or a straggler.
 */
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SqlFailure } from './duckdb.js';
import type { FromWorker, ToWorker } from './protocol.js';
import { runTask } from './run-task.js';
import type { TaskFailure } from './task-spec.js';

function send(message: FromWorker): void {
  // A scheduler already gone (its process ended while this one started) is no error here: the
  // 'disconnect' handler below ends this process.
  process.send!(message, (err: Error | null) => void err);
}

async function testStall(key: string): Promise<void> {
  const file = process.env.MILLPOND_ENGINE_TEST_STALL_FILE;
  if (!file) return;
  const only = process.env.MILLPOND_ENGINE_TEST_STALL_KEY;
  if (only && !new RegExp(only).test(key)) return;
  try {
    writeFileSync(file, String(process.pid), { flag: 'wx' });
  } catch {
    return; // someone stalled already
  }
  await sleep(Number(process.env.MILLPOND_ENGINE_TEST_STALL_MS ?? 10_000));
}

function failureOf(e: unknown): TaskFailure {
  if (e instanceof SqlFailure) return e.toFailure();
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown })?.code;
  const lost = (e as { lost?: unknown })?.lost === true;
  // EINVAL is bad input (rows of the wrong shape from a function): the same input fails again.
  return { message, deterministic: code === 'EINVAL', ...(typeof code === 'string' ? { code } : {}), ...(lost ? { lost } : {}) };
}

if (!process.send) {
  console.error('worker.ts runs as a child process of the millpond engine');
  process.exit(2);
}

process.on('message', (message: ToWorker) => {
  if (message.type === 'exit') {
    // Not synchronously: an 'exit' that came before this listener existed is delivered from
    // Node's loop over such early messages, which fails if the channel closes inside it.
    setImmediate(() => process.connected && process.disconnect());
    return;
  }
  const { spec } = message;
  void (async () => {
    try {
      await testStall(spec.key);
      const result = await runTask(spec);
      send({ type: 'done', key: spec.key, attempt: spec.attempt, result });
    } catch (e) {
      send({ type: 'failed', key: spec.key, attempt: spec.attempt, failure: failureOf(e) });
    }
  })();
});

// The scheduler going away (disconnect) ends the worker.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
