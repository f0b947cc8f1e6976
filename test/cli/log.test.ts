// Daemon logs (src/log.ts, native/common/log.*): real processes' stderr, parsed. JSON lines with
// time, level, component, host, pid and message when stderr is a pipe; one human line a event on
// a terminal (a pseudo-terminal from script(1)) or with MILLPOND_LOG_FORMAT=human; lines below
// MILLPOND_LOG_LEVEL dropped; secrets never written.
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { childLines, type ChildLines } from '../support/lines.js';
import { killHard } from '../support/child.js';
import { tempDir } from '../support/tmp.js';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const logModule = fileURLToPath(new URL('../../src/log.ts', import.meta.url));
const fuseBin = fileURLToPath(new URL('../../build/Release/millpond-fuse', import.meta.url));
const run = promisify(execFile);

interface LogLine { time: string; level: string; component: string; host: string; pid: number; message: string; [k: string]: unknown }

/** A port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('daemon logs', () => {
  const t = tempDir('log');
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) await killHard(c);
    t.cleanup();
  });
  // A storage daemon whose mgmtd is not there: it keeps logging its failed registrations.
  const storage = async (env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; out: ChildLines }> => {
    const port = await deadPort();
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'storage', '--insecure', '--node-id', '7', '--listen', '127.0.0.1',
      '--target', `701:${join(t.dir, `t${children.length}`)}`, '--mgmtd', `tcp://127.0.0.1:${port}`, '--mgmtd-timeout-ms', '300'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MILLPOND_LOG_FORMAT: '', MILLPOND_LOG_LEVEL: '', ...env } });
    children.push(child);
    return { child, out: childLines(child) };
  };

  it('a daemon writes JSON lines with time, level, component, host, pid, message and fields', async () => {
    const { child, out } = await storage({});
    await until(() => out.errLines.some((l) => l.includes('registering')), 60_000, 'registration warning');
    await killHard(child);
    const lines = out.errLines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as LogLine); // every line is JSON
    const warn = lines.find((l) => /^registering: /.test(l.message))!;
    expect(warn).toMatchObject({ level: 'warn', component: 'storage', host: hostname(), pid: child.pid, nodeId: 7 });
    expect(Date.now() - Date.parse(warn.time)).toBeLessThan(120_000);
    expect(warn.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }, 90_000);

  it('MILLPOND_LOG_FORMAT=human writes one readable line per event; MILLPOND_LOG_LEVEL=error drops warnings', async () => {
    const human = await storage({ MILLPOND_LOG_FORMAT: 'human' });
    await until(() => human.out.errLines.some((l) => l.includes('registering')), 60_000, 'registration warning');
    await killHard(human.child);
    expect(human.out.errLines.find((l) => l.includes('registering'))).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z WARN  storage: registering: .* nodeId=7$/);

    const quiet = await storage({ MILLPOND_LOG_LEVEL: 'error' });
    // It never registers; the pipe-format run above logged its first failure within this time.
    await new Promise((r) => setTimeout(r, 5_000));
    await killHard(quiet.child);
    expect(quiet.out.errLines.filter((l) => l.includes('registering'))).toEqual([]);
  }, 120_000);

  it('on a terminal (script(1)) the format is human without being asked', async () => {
    const code = `import('${logModule}').then((m) => m.logger('probe').warn('hello terminal', { n: 3 }))`;
    const { stdout } = await run('script', ['-qfec', `${process.execPath} --import tsx -e "${code}"`, '/dev/null'],
      { env: { ...process.env, MILLPOND_LOG_FORMAT: '', MILLPOND_LOG_LEVEL: '' }, timeout: 60_000 });
    expect(stdout).toMatch(/Z WARN  probe: hello terminal n=3\r?\n/);
    expect(stdout).not.toMatch(/"component"/);
  }, 90_000);

  it('secrets never reach the log: tokens, URL passwords, bearer credentials, secret-named fields', async () => {
    const token = 'mpt1.0.0123456789abcdef.c2VjcmV0LXBhcnQtb2YtdGhlLXRva2VuLXNob3VsZC1uZXZlci1zaG93';
    const code = `import('${logModule}').then((m) => m.logger('probe').error(` +
      `'login with ${token} to postgresql://millpond:hunter2pw@db/x failed; Authorization: Bearer ${token}', ` +
      `{ token: 'plain-token-value', secretKey: 'abc', url: 'redis://u:redispw@h:6379', peer: '10.0.0.1' }))`;
    const { stderr } = await run(process.execPath, ['--import', 'tsx', '-e', code], { env: { ...process.env, MILLPOND_LOG_FORMAT: 'json', MILLPOND_LOG_LEVEL: '' } });
    const line = JSON.parse(stderr.trim()) as LogLine;
    for (const secret of ['c2VjcmV0LXBhcnQ', 'hunter2pw', 'plain-token-value', 'redispw', '"abc"']) expect(stderr).not.toContain(secret);
    expect(line.message).toBe('login with mpt1.0.0123456789abcdef.*** to postgresql://millpond:***@db/x failed; Authorization: Bearer ***');
    expect(line).toMatchObject({ token: '[redacted]', secretKey: '[redacted]', url: 'redis://u:***@h:6379', peer: '10.0.0.1', level: 'error', component: 'probe' });
  }, 60_000);

  it('the native FUSE daemon logs in the same JSON shape', async () => {
    const failed = await run(fuseBin, [join(t.dir, 'mnt')], { env: { ...process.env, MILLPOND_LOG_FORMAT: '', MILLPOND_LOG_LEVEL: '' } }).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(failed?.code).toBe(2);
    const line = JSON.parse(failed!.stderr.trim()) as LogLine;
    expect(line).toMatchObject({ level: 'error', component: 'fuse', host: hostname() });
    expect(line.message).toMatch(/--meta and --mgmtd are required/);
    expect(typeof line.pid).toBe('number');
    expect(Date.parse(line.time)).toBeGreaterThan(Date.now() - 120_000);
  }, 60_000);
});
