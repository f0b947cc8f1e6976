// The package as a user gets it: `npm pack` of this checkout installed into an empty project
// on a PATH with no compiler (no cmake, g++, cc, make), and a system libzmq.so.5 that cannot
// load (a garbage file first on LD_LIBRARY_PATH). Then `npx millpond demo`, `npx millpond sql`
// against `npx millpond up`, and an engine script through `npx millpond run` must all work:
// the addon and the DuckDB extension come prebuilt in the tarball, libzmq comes from the
// `zeromq` package's addon, and nothing is compiled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { waitForLine } from '../support/child.js';
import { tempDir } from '../support/tmp.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const kToolchain = /^(cc|c\+\+|cpp|gcc|g\+\+|clang.*|cmake|make|gmake|ninja|ccache|ld|ld\..*|as|.*-(gcc|g\+\+|ld|as)(-\d+)?|(gcc|g\+\+)-\d+|c89.*|c99.*|node-gyp)$/;

describe('the packed tarball, installed with no toolchain', () => {
  const t = tempDir('package');
  const bin = join(t.dir, 'bin');
  const app = join(t.dir, 'app');
  const poison = join(t.dir, 'poison');
  let env: NodeJS.ProcessEnv;
  let up: ChildProcess | undefined;
  const npx = (args: string[], timeoutMs = 120_000) =>
    run('npx', ['--no-install', 'millpond', ...args], { cwd: app, env, timeout: timeoutMs, maxBuffer: 16 << 20 });

  beforeAll(async () => {
    // A PATH of everything on this machine but compilers and build tools.
    mkdirSync(bin);
    for (const dir of (process.env.PATH ?? '').split(':')) {
      if (!dir || !existsSync(dir)) continue;
      for (const name of readdirSync(dir)) {
        if (kToolchain.test(name) || existsSync(join(bin, name))) continue;
        symlinkSync(join(dir, name), join(bin, name));
      }
    }
    // A libzmq.so.5 that cannot load, found before the system's.
    mkdirSync(poison);
    writeFileSync(join(poison, 'libzmq.so.5'), 'not a library\n');
    env = { ...process.env, PATH: bin, LD_LIBRARY_PATH: poison, MILLPOND_LOG_LEVEL: '', MILLPOND_BUILD_FROM_SOURCE: '' };
    for (const key of Object.keys(env)) if (key.startsWith('MILLPOND_') && key !== 'MILLPOND_LOG_LEVEL') delete env[key];

    // better-sqlite3 (the embedded meta store) downloads its prebuilt binary from GitHub,
    // which CI cannot reach; a user's machine can. prebuild-install's documented local
    // mirror stands in for that download, with the binary this checkout's install made. It
    // is a third party's prebuild, not millpond's: millpond's own come from the tarball.
    const bsqVersion = JSON.parse(readFileSync(join(repo, 'node_modules/better-sqlite3/package.json'), 'utf8')).version as string;
    const bsq = join(t.dir, 'better-sqlite3');
    mkdirSync(join(bsq, 'build', 'Release'), { recursive: true });
    await run('cp', [join(repo, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'), join(bsq, 'build', 'Release')]);
    await run('tar', ['czf', `better-sqlite3-v${bsqVersion}-node-v${process.versions.modules}-linux-x64.tar.gz`, 'build'], { cwd: bsq });
    const installEnv = { ...env, npm_config_better_sqlite3_local_prebuilds: bsq };

    // npm pack runs prepack (scripts/prebuild.sh) and prepare (tsc).
    const { stdout } = await run('npm', ['pack', '--pack-destination', t.dir, '--json'], { cwd: repo, timeout: 300_000, maxBuffer: 16 << 20 });
    const packed = JSON.parse(stdout.slice(stdout.indexOf('[')))[0] as { filename: string; files: Array<{ path: string }> };
    const files = packed.files.map((f) => f.path);
    expect(files).toContain('prebuilds/linux-x64/node.napi.glibc.node');
    expect(files).toContain('prebuilds/linux-x64/millpond.duckdb_extension');
    expect(files).toContain('dist/cli/main.js');

    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(t.dir, packed.filename)],
      { cwd: app, env: installEnv, timeout: 300_000, maxBuffer: 16 << 20 });
  }, 600_000);

  afterAll(async () => {
    if (up && up.exitCode === null && up.signalCode === null) {
      // npx runs millpond in a shell below it: the whole process group goes.
      process.kill(-up.pid!, 'SIGKILL');
      await once(up, 'exit');
    }
    t.cleanup();
  });

  it('installed without compiling anything: no toolchain on PATH, no build directory', async () => {
    for (const tool of ['cc', 'g++', 'cmake', 'make']) {
      await expect(run('sh', ['-c', `command -v ${tool}`], { env })).rejects.toThrow();
    }
    const installed = join(app, 'node_modules', 'millpond');
    expect(existsSync(join(installed, 'build'))).toBe(false);
    expect(existsSync(join(installed, 'prebuilds', 'linux-x64', 'node.napi.glibc.node'))).toBe(true);
  });

  it('npx millpond demo runs the whole stack and ends with its figures line', async () => {
    const { stdout, stderr } = await npx(['demo', '--size-mib', '16'], 240_000);
    const line = stdout.split('\n').find((l) => l.startsWith('figures '));
    expect(line).toBeDefined();
    const figures = JSON.parse(line!.slice('figures '.length)) as Record<string, number>;
    expect(figures.rows).toBeGreaterThan(100_000);
    expect(figures.jobSeconds).toBeGreaterThan(0);
    expect(figures.duckdbSeconds).toBeGreaterThan(0);
    expect(stdout).toMatch(/^\s+\(5 rows\)$/m);
    // Quiet by default: the transport choice is a debug line.
    expect(stderr).not.toMatch(/transport auto/);
  }, 300_000);

  it('npx millpond sql and an engine script (npx millpond run) against npx millpond up', async () => {
    const dataDir = join(t.dir, 'data');
    up = spawn('npx', ['--no-install', 'millpond', 'up', '--data-dir', dataDir, '--no-sync', '--transport', 'tcp',
      '--mgmtd', 'tcp://127.0.0.1:0', '--meta', 'tcp://127.0.0.1:0'], { cwd: app, env, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    await waitForLine(up, /^millpond is up/, 90_000);

    await npx(['fs', 'mkdir', '-p', '/in', '--data-dir', dataDir]);
    await npx(['sql', `COPY (SELECT range AS i, range % 7 AS k FROM range(10000)) TO 'millpond:///in/data.parquet' (FORMAT parquet)`, '--data-dir', dataDir]);
    const { stdout, stderr } = await npx(['sql', `SELECT k, count(*) AS n FROM read_parquet('millpond:///in/*.parquet') GROUP BY k ORDER BY k`, '--data-dir', dataDir]);
    expect(stdout).toMatch(/^k +n$/m);
    expect(stdout).toMatch(/^0 +1429$/m);
    expect(stdout).toMatch(/^6 +1428$/m);
    expect(stdout).toMatch(/\n\n\(7 rows\)\n$/);
    expect(stderr).toBe('');

    // --verbose says which transport was chosen, once, though the addon and the extension
    // (two copies of the native core in one process) both choose.
    const verbose = await npx(['sql', `SELECT count(*) AS n FROM read_parquet('millpond:///in/*.parquet')`, '--data-dir', dataDir, '--transport', 'auto', '--verbose']);
    expect(verbose.stdout).toMatch(/^10000$/m);
    expect(verbose.stderr.match(/transport auto: .*using TCP/g) ?? []).toHaveLength(1);

    writeFileSync(join(app, 'job.mjs'), `import { init } from 'millpond';
const sp = await init({ root: { kind: 'millpond', dir: '/jobs', meta: process.env.MILLPOND_META, mgmtd: process.env.MILLPOND_MGMTD }, workers: 2, progress: false });
const byK = sp.partialSql('SELECT k, count(*) AS n, sum(i)::BIGINT AS s FROM {0} GROUP BY k', sp.readParquet('millpond:///in/*.parquet').repartition(3, { hashBy: 'k' }));
await byK.writeParquet('/out/by-k');
const rows = (await byK.takeAll()).sort((a, b) => Number(a.k) - Number(b.k));
console.log(JSON.stringify(rows, (_k, v) => (typeof v === 'bigint' ? Number(v) : v)));
await sp.shutdown();
`);
    const job = await npx(['run', 'job.mjs', '--data-dir', dataDir]);
    const rows = JSON.parse(job.stdout.trim().split('\n').at(-1)!) as Array<{ k: number; n: number; s: number }>;
    expect(rows).toHaveLength(7);
    expect(rows.reduce((a, r) => a + r.n, 0)).toBe(10000);
    expect(rows.reduce((a, r) => a + r.s, 0)).toBe((9999 * 10000) / 2);
    const listed = await npx(['fs', 'ls', '/out/by-k', '--data-dir', dataDir]);
    expect(listed.stdout.match(/\.parquet$/gm)).toHaveLength(3);
  }, 300_000);
});
