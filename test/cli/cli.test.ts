// The millpond command as a user runs it: `up` in the foreground, `status` and `fs` against
// it (found through the cluster file in the data directory), Ctrl-C stops it cleanly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { waitForLine } from '../support/child.js';
import { tempDir } from '../support/tmp.js';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const run = promisify(execFile);

describe('millpond CLI', () => {
  const t = tempDir('cli');
  const dataDir = join(t.dir, 'data');
  let up: ChildProcess;
  const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', main, ...args, '--data-dir', dataDir]);

  beforeAll(async () => {
    up = spawn(process.execPath, ['--import', 'tsx', main, 'up', '--data-dir', dataDir, '--no-sync',
      '--mgmtd', 'tcp://127.0.0.1:0', '--meta', 'tcp://127.0.0.1:0', '--transport', 'tcp', '--s3', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await waitForLine(up, /^s3: http:\/\/127\.0\.0\.1:\d+ access key MPAK/, 40_000);
  }, 60_000);

  afterAll(async () => {
    if (up.exitCode === null && up.signalCode === null) {
      up.kill('SIGKILL');
      await once(up, 'exit');
    }
    t.cleanup();
  });

  it('shows the embedded default: three serving targets, chains of three', async () => {
    const { stdout } = await cli('status');
    expect(stdout.match(/^target \d+ on node \d+ serving/gm)).toHaveLength(3);
    expect(stdout).toMatch(/^chain 1 v\d+: \d+\(serving\) -> \d+\(serving\) -> \d+\(serving\)$/m);
  });

  it('serves the web console by default (cluster.json names it): the admin token opens the API, nothing else does', async () => {
    const url = (JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as { console: string }).console;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const token = readFileSync(join(dataDir, 'keys', 'admin.token'), 'utf8').trim();
    expect((await fetch(`${url}api/view`)).status).toBe(401);
    let body: { view?: { health: { status: string }; targets: unknown[] } } = {};
    for (let i = 0; i < 50 && !body.view; i++) {
      body = await (await fetch(`${url}api/view`, { headers: { authorization: `Bearer ${token}` } })).json() as typeof body;
      if (!body.view) await new Promise((r) => setTimeout(r, 200));
    }
    expect(body.view!.targets).toHaveLength(3);
    expect(body.view!.health.status).toBe('HEALTH_OK');
    const { stdout } = await cli('status', '--json');
    expect((JSON.parse(stdout) as { health: { status: string } }).health.status).toBe('HEALTH_OK');
  }, 60_000);

  it('on a terminal, fs put and get draw a progress bar with rate and ETA (script(1) gives the pseudo-terminal)', async () => {
    const local = join(t.dir, 'big.bin');
    writeFileSync(local, randomBytes(16 << 20));
    const onTty = async (...args: string[]) => (await run('script', ['-qfec', [process.execPath, '--import', 'tsx', main, ...args, '--data-dir', dataDir].join(' '), '/dev/null'], { timeout: 120_000 })).stdout;
    const put = await onTty('fs', 'put', local, '/big.bin');
    expect(put).toMatch(/put \/big\.bin \[#{30}\] 100% 16\.0 MiB\/16\.0 MiB [\d.]+ [KMG]?i?B\/s ETA 0s/);
    expect(put).toMatch(/\r\x1b\[K/); // redrawn in place
    const get = await onTty('fs', 'get', '/big.bin', join(t.dir, 'big.out'));
    expect(get).toMatch(/get \/big\.bin \[#{30}\] 100% 16\.0 MiB\/16\.0 MiB [\d.]+ [KMG]?i?B\/s ETA 0s/);
    expect(statSync(join(t.dir, 'big.out')).size).toBe(16 << 20);
    // Not on a terminal: nothing on stderr.
    expect((await cli('fs', 'put', local, '/big2.bin')).stderr).toBe('');
  }, 300_000); // three CLI processes: minutes on a loaded 2-core machine

  it('copies files in and out and manages the namespace', async () => {
    const local = join(t.dir, 'in.bin');
    const data = randomBytes(3 * 1024 * 1024 + 5);
    writeFileSync(local, data);
    await cli('fs', 'mkdir', '-p', '/a/b');
    await cli('fs', 'put', local, '/a/b/in.bin');
    await cli('fs', 'cp', '/a/b/in.bin', '/a/copy.bin');
    await cli('fs', 'mv', '/a/copy.bin', '/a/moved.bin');
    await cli('fs', 'ln', '/a/moved.bin', '/a/b/linked.bin');
    expect(JSON.parse((await cli('fs', 'stat', '/a/b/linked.bin')).stdout)).toMatchObject({ size: data.length, nlink: 2 });
    await cli('fs', 'get', '/a/moved.bin', join(t.dir, 'out.bin'));
    expect(readFileSync(join(t.dir, 'out.bin')).equals(data)).toBe(true);
    const { stdout: ls } = await cli('fs', 'ls', '/a');
    expect(ls).toMatch(/^d +\d+ b\/$/m);
    expect(ls).toMatch(new RegExp(`^- +${data.length} moved\\.bin$`, 'm'));
    expect(JSON.parse((await cli('fs', 'stat', '/a/moved.bin')).stdout)).toMatchObject({ type: 'file', size: data.length });
    expect((await cli('fs', 'du', '/a')).stdout).toMatch(/^6\.0 MiB\t\/a$/m); // the linked file counts once
    await cli('fs', 'rm', '-r', '/a');
    const missing = await cli('fs', 'cat', '/a/moved.bin').then(() => null, (e: { code: number; stderr: string }) => e);
    expect(missing?.code).toBe(1);
    expect(missing?.stderr).toMatch(/ENOENT/);
  }, 120_000); // a dozen CLI processes: minutes on a loaded 2-core machine

  it('runs SQL over millpond:// and engine scripts against the cluster', async () => {
    await cli('sql', `COPY (SELECT range AS i FROM range(1000)) TO 'millpond:///q.parquet' (FORMAT parquet)`);
    const { stdout } = await cli('sql', `SELECT count(*) AS n, sum(i) AS s FROM read_parquet('millpond:///q.parquet')`);
    expect(stdout).toMatch(/^n +s$/m);
    expect(stdout).toMatch(/^1000 +499500$/m);
    expect(stdout).toMatch(/\(1 row\)/);
    const bad = await cli('sql', 'SELEKT 1').then(() => null, (e: { code: number; stderr: string }) => e);
    expect(bad?.code).toBe(1);
    expect(bad?.stderr).toMatch(/ESQL: Parser Error/);

    const job = join(t.dir, 'job.mts'); // an ES module: engine scripts use top-level await
    const index = new URL('../../src/index.ts', import.meta.url).href;
    writeFileSync(job, `import { init } from '${index}';
const sp = await init({ root: { kind: 'millpond', dir: '/jobs', meta: process.env.MILLPOND_META!, mgmtd: process.env.MILLPOND_MGMTD! }, workers: 1, progress: false });
const n = await sp.readParquet('millpond:///q.parquet').repartition(3, { hashBy: 'i' }).filter('i % 2 = 0').count();
console.log('even rows', n);
await sp.shutdown();
`);
    const { stdout: out } = await cli('run', job);
    expect(out).toMatch(/^even rows 500$/m);
  }, 120_000);

  it('keeps its keys private and manages users with the admin token it finds in the data directory', async () => {
    expect(statSync(join(dataDir, 'keys')).mode & 0o777).toBe(0o700);
    for (const f of ['cluster.secret', 'admin.token']) expect(statSync(join(dataDir, 'keys', f)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')).serverKey).toMatch(/^.{40}$/);
    const added = await cli('user', 'add', 'carol', '--uid', '1200', '--gid', '1200', '--groups', '10,11');
    const token = added.stdout.trim();
    expect(token).toMatch(/^mpt1\.1200\.[0-9a-f]{16}\./);
    const tokenFile = join(t.dir, 'carol.token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    expect((await cli('user', 'list')).stdout).toMatch(/^carol\tuid 1200\tgid 1200\tgroups 10,11\t-\ttokens [0-9a-f]{16}$/m);
    // carol's token: she may list / but not create there (root's 0755), nor manage users.
    expect((await cli('fs', 'ls', '/', '--token-file', tokenFile)).stdout).toBeDefined();
    const denied = await cli('fs', 'mkdir', '/carol', '--token-file', tokenFile).then(() => null, (e: { stderr: string }) => e);
    expect(denied?.stderr).toMatch(/EACCES/);
    const notAdmin = await cli('user', 'list', '--token-file', tokenFile).then(() => null, (e: { stderr: string }) => e);
    expect(notAdmin?.stderr).toMatch(/EACCES/);
    await cli('user', 'remove', 'carol');
    const removed = await cli('fs', 'ls', '/', '--token-file', tokenFile).then(() => null, (e: { stderr: string }) => e);
    expect(removed?.stderr).toMatch(/EAUTH/);
  }, 240_000);
  it('manages S3 access keys of users (admin only through meta)', async () => {
    const added = (await cli('user', 'key', 'add', '--uid', '1234', '--gid', '100', '--gids', '5,6')).stdout;
    const m = /^access key (MPAK[A-Z0-9]+)\nsecret +(\S+)\nuser +uid 1234 gid 100 gids 5,6$/m.exec(added);
    expect(m).not.toBeNull();
    const listed = (await cli('user', 'key', 'list', '--uid', '1234')).stdout;
    expect(listed).toMatch(new RegExp(`^${m![1]}\tuid 1234\tgid 100\tgids 5,6\t`, 'm'));
    expect(listed).not.toContain(m![2]); // secrets are shown once, at add
    // up's admin key is listed too (uid 0).
    expect((await cli('user', 'key', 'list')).stdout).toMatch(/^MPAK[A-Z0-9]+\tuid 0\t/m);
    await cli('user', 'key', 'remove', m![1]!);
    expect((await cli('user', 'key', 'list', '--uid', '1234')).stdout).toBe('');
    const again = await cli('user', 'key', 'remove', m![1]!).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(again?.stderr).toMatch(/ENOENT: no access key/);
  });

  it('serves S3 as its own role (millpond s3 --listen) with a user\'s key', async () => {
    const added = (await cli('user', 'key', 'add', '--uid', '0', '--gid', '0')).stdout;
    const [, id, secret] = /^access key (\S+)\nsecret +(\S+)$/m.exec(added)!;
    const gateway = spawn(process.execPath, ['--import', 'tsx', main, 's3', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--transport', 'tcp'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [, endpoint] = await waitForLine(gateway, /^millpond s3 is up: (http:\/\/127\.0\.0\.1:\d+)/, 40_000);
      const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: id!, secretAccessKey: secret! } });
      await cli('fs', 'mkdir', '/role');
      await s3.send(new PutObjectCommand({ Bucket: 'role', Key: 'dir/k', Body: 'through the role' }));
      expect((await cli('fs', 'cat', '/role/dir/k')).stdout).toBe('through the role');
      s3.destroy();
    } finally {
      gateway.kill('SIGTERM');
      await once(gateway, 'exit');
    }
  }, 90_000);

  it('stops cleanly on Ctrl-C', async () => {
    const stopped = waitForLine(up, /^stopped$/, 30_000);
    up.kill('SIGINT');
    await stopped;
    const [code] = await once(up, 'exit');
    expect(code).toBe(0);
  });
});
