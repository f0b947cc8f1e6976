// The README's quick start runs `npm run demo`; so does this test, as it is (the default
// dataset, a few hundred MB), and checks what a user sees: exit code 0, each step said, the
// job's answer agreeing with plain DuckDB's (the demo fails otherwise), the figures line, and
// nothing left behind. No timing bound: the figures are printed, not asserted.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { DemoFigures } from '../../src/cli/demo.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));

describe('npm run demo', () => {
  it('runs the whole stack and ends with one figures line', async () => {
    const env = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith('MILLPOND_')) delete env[key];
    const { stdout, stderr } = await promisify(execFile)('npm', ['run', '--silent', 'demo'], { cwd: repo, env, timeout: 280_000, maxBuffer: 16 << 20 });
    for (let step = 1; step <= 6; step++) expect(stdout).toMatch(new RegExp(`^${step}/6 `, 'm'));
    expect(stdout).toMatch(/^\s+\(5 rows\)$/m);
    const lines = stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toMatch(/^figures \{.*\}$/);
    const figures = JSON.parse(lines.at(-1)!.slice('figures '.length)) as DemoFigures;
    expect(figures.datasetBytes).toBeGreaterThan(200e6);
    expect(figures.rows).toBeGreaterThan(1e6);
    for (const key of ['writeGBps', 'jobSeconds', 'jobRowsPerSec', 'jobGBps', 'duckdbSeconds', 'jobVsDuckdb', 'totalSeconds'] as const) {
      expect(figures[key]).toBeGreaterThan(0);
    }
    // jobSeconds is printed to the millisecond: the seconds the rate implies agree within half of one.
    expect(Math.abs(figures.rows / figures.jobRowsPerSec - figures.jobSeconds)).toBeLessThanOrEqual(0.0005 + 1e-6);
    // Everything it made is gone.
    const dir = /^1\/6 starting the embedded cluster under (\S+):/m.exec(stdout)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
    // Quiet by default: no transport line, nothing on stderr but the job's progress.
    expect(stderr).not.toMatch(/transport auto/);
    console.log(lines.at(-2));
  }, 300_000);
});
