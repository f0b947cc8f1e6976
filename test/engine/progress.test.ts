import { afterEach, expect, it, vi } from 'vitest';
import { Progress, formatBytes } from '../../src/engine/execution/progress.js';

afterEach(() => vi.restoreAllMocks());

it('draws tasks done/total, bytes and rate, then a summary line', () => {
  const lines: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => { lines.push(String(chunk)); return true; });
  const p = new Progress(2, true);
  p.taskDone(3 * 1024 * 1024);
  p.finish({ jobId: 'j', target: 'sql-x', tasksTotal: 3, tasksRun: 2, tasksSkipped: 1, retries: 1, rowsWritten: 10, bytesWritten: 3 << 20, elapsedMs: 1500, bytesPerSec: 2 << 20 });
  expect(lines.join('')).toMatch(/tasks 1\/2 {2}3\.0 MiB {2}[\d.]+ [KMG]?i?B\/s/);
  expect(lines.join('')).toMatch(/job j: 2 tasks run, 1 reused, 1 retried; 10 rows, 3\.0 MiB in 1\.50 s \(2\.0 MiB\/s\)\n$/);
});

it('stays silent when disabled', () => {
  const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  const p = new Progress(1, false);
  p.taskDone(1);
  p.finish({ jobId: 'j', target: 't', tasksTotal: 1, tasksRun: 1, tasksSkipped: 0, retries: 0, rowsWritten: 1, bytesWritten: 1, elapsedMs: 1, bytesPerSec: 1 });
  expect(write).not.toHaveBeenCalled();
  expect(formatBytes(512)).toBe('512 B');
});
