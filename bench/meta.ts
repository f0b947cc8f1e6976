/**
 * meta: creates, stats and readdir entries per second from one client (depth `--depth`
 * requests in flight) against a meta server process, on SQLite (synchronous=full: every
 * acknowledged create is on disk) and on PostgreSQL (serializable). Each backend runs twice in
 * the same run: authentication on (the default: CURVE, a token verified per request) and off
 * (plain ZeroMQ, the request's user trusted); `*_auth_ratio` is on / off (aim: >= 0.9).
 * Aims (issue 13), from one client with 32 in flight: PostgreSQL >= 5,000 creates/s and
 * >= 20,000 stats/s, SQLite >= 10,000 / >= 50,000; `*_vs_aim` is the measured rate (auth on)
 * over the aim, for stats of files not stated before. `restat` stats the same files again (what
 * each backend's cache of its reads serves). On PostgreSQL a second meta server shares the
 * database, and `stat, 2nd server` stats the files once more through it (as a client whose
 * meta server did not create them, or restarted since: no path hints, nothing cached).
 * whoami/s is the RPC floor (no KV): what the protocol alone allows.
 * `--depth 1` gives the one-request-at-a-time figures. Each server first runs `--warmup`
 * untimed rounds of the same work (V8 compiles its hot paths, PostgreSQL caches its plans), as
 * a long-running meta server has: the figures are a warm server's. The servers run from
 * dist/, as installed (build it first: npm run build:ts).
 *   npm run bench -- meta [--files 5000] [--rounds 8] [--depth 32] [--warmup 1] [--backends sqlite,postgres]
 *     [--profile DIR]   (each meta server writes a V8 CPU profile into DIR)
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { ensureClusterKeys } from '../src/auth/cluster-files.js';
import type { ClientAuth } from '../src/auth/credentials.js';
import { MetaClient } from '../src/meta/meta-client.js';
import { fmtCount, intOption, machineNote, makeWorkDir, nowMs, printJson, printTable, runWithDepth } from './lib.js';

const AIMS: Record<string, { create: number; stat: number }> = {
  sqlite: { create: 10_000, stat: 50_000 },
  postgres: { create: 5_000, stat: 20_000 },
};

const READDIR_PASSES = 8;

/**
 * The meta server as installed: compiled JavaScript (dist/; build it first: npm run build:ts).
 * Through tsx (its loader, and esbuild's helpers around every function) the same server spends
 * ~15% more CPU per create.
 */
const metaMain = fileURLToPath(new URL('../dist/meta/main.js', import.meta.url));

/** `--profile DIR`: each meta server writes a V8 CPU profile there (stopped with SIGTERM). */
let profileDir: string | undefined;

function startServer(args: string[]): Promise<{ child: ChildProcess; endpoint: string }> {
  const prof = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  if (!existsSync(metaMain)) throw new Error(`the meta bench runs ${metaMain}: build it first (npm run build:ts)`);
  const child = spawn(process.execPath, [...prof, metaMain, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = line.match(/^listening (\S+)$/);
      if (m) resolve({ child, endpoint: m[1]! });
    });
    child.once('exit', (code) => reject(new Error(`meta server exited with ${code}`)));
  });
}

/** One meta server and its client: authentication on or off. */
interface Side {
  authOn: boolean;
  client: MetaClient;
  child: ChildProcess;
  done: () => Promise<void>;
  /** PostgreSQL: a second meta server on the same database, which did not create the files. */
  second?: { client: MetaClient; child: ChildProcess };
  createMs: number;
  statMs: number;
  restatMs: number;
  secondStatMs: number;
  readdirMs: number;
  nullMs: number;
  files: number;
  entries: number;
}

/** One round on one side: creates `count` files in a fresh directory, stats them, lists them. */
async function round(side: Side, r: number | string, count: number, depth: number): Promise<void> {
  const dir = `/bench/r${r}`;
  await side.client.mkdir(dir, { recursive: true });
  let t = nowMs();
  await runWithDepth(count, depth, (i) => side.client.open(`${dir}/f${i}`, { flags: { create: true, exclusive: true } }));
  side.createMs += nowMs() - t;
  t = nowMs();
  await runWithDepth(count, depth, (i) => side.client.stat(`${dir}/f${i}`));
  side.statMs += nowMs() - t;
  // The same files again, as `ls -l` twice or a query planner opening files it listed: what a
  // server keeps of its reads (SQLite's read cache, PostgreSQL's snapshot cache) serves them.
  t = nowMs();
  await runWithDepth(count, depth, (i) => side.client.stat(`${dir}/f${i}`));
  side.restatMs += nowMs() - t;
  // Through the second server: no path hints for these files, nothing of them in its caches.
  if (side.second) {
    const { client } = side.second;
    t = nowMs();
    await runWithDepth(count, depth, (i) => client.stat(`${dir}/f${i}`));
    side.secondStatMs += nowMs() - t;
  }
  // The RPC floor: meta.whoami touches no KV (ZeroMQ, CURVE when on, codec, token check).
  t = nowMs();
  await runWithDepth(count, depth, () => side.client.whoami());
  side.nullMs += nowMs() - t;
  // One listing of `count` entries is a few pages and a few milliseconds: list it
  // READDIR_PASSES times so one GC pause does not decide the figure.
  t = nowMs();
  let entries = 0;
  for (let pass = 0; pass < READDIR_PASSES; pass++) {
    let after: string | undefined;
    for (;;) {
      const page = await side.client.readdir(dir, { after, limit: 1024 });
      entries += page.entries.length;
      after = page.entries.at(-1)?.name;
      if (!page.more) break;
    }
  }
  side.readdirMs += nowMs() - t;
  if (entries !== count * READDIR_PASSES) throw new Error(`readdir saw ${entries} of ${count * READDIR_PASSES}`);
  side.files += count;
  side.entries += entries;
}

/** A side's measured times and counts before its first timed round. */
function noneMeasured() {
  return { createMs: 0, statMs: 0, restatMs: 0, secondStatMs: 0, readdirMs: 0, nullMs: 0, files: 0, entries: 0 };
}

async function startSide(backend: string, authOn: boolean, keys: ReturnType<typeof ensureClusterKeys>): Promise<Side> {
  let args: string[];
  let done = async () => {};
  if (backend === 'sqlite') {
    const work = await makeWorkDir('meta');
    args = ['--backend', 'sqlite', '--db', join(work.dir, 'meta.db')];
    done = async () => work.cleanup();
  } else if (backend === 'postgres') {
    const script = fileURLToPath(new URL('../scripts/pg-start.sh', import.meta.url));
    const server = process.env.MILLPOND_PG_URL ?? execFileSync('bash', [script], { encoding: 'utf8' }).trim().split('\n').pop()!;
    const name = `millpond_bench_${process.pid}_${authOn ? 'on' : 'off'}`;
    const admin = new pg.Client({ connectionString: server });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(server);
    url.pathname = `/${name}`;
    args = ['--backend', 'postgres', '--pg-url', url.toString()];
    done = async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    };
  } else {
    throw new Error(`unknown backend ${backend}`);
  }
  if (authOn) args.push('--secret-file', keys.secretFile, '--admin-token-file', keys.adminTokenFile);
  const auth = authOn ? { token: keys.adminToken, serverKey: keys.cluster.server.publicKey } : undefined;
  const serve = async () => {
    const { child, endpoint } = await startServer([...args, '--listen', 'tcp://127.0.0.1:0']);
    return { child, client: new MetaClient(endpoint, { auth }) };
  };
  const { child, client } = await serve();
  const second = backend === 'postgres' ? await serve() : undefined;
  return { authOn, client, child, second, done, ...noneMeasured() };
}

export async function metaBench(options: Map<string, string>): Promise<void> {
  const files = intOption(options, 'files', 5000);
  const depth = intOption(options, 'depth', 32);
  const rounds = intOption(options, 'rounds', 8);
  const warmup = options.has('warmup') ? Number(options.get('warmup')) : 1;
  if (!Number.isSafeInteger(warmup) || warmup < 0) throw new RangeError('--warmup must be a whole number of rounds');
  const backends = (options.get('backends') ?? 'sqlite,postgres').split(',');
  profileDir = options.get('profile');
  const figures: Record<string, number> = {};
  const rows = [['backend', 'auth', 'create/s', 'stat/s', 'stat again/s', 'stat, 2nd server/s', 'readdir entries/s', 'whoami/s (no KV)']];
  const keysDir = await makeWorkDir('meta-keys');
  const keys = ensureClusterKeys(keysDir.dir);
  const perRound = Math.max(1, Math.floor(files / rounds));
  for (const backend of backends) {
    // Both servers run at once and the rounds alternate between them (off first, then on
    // first), so the machine's load drifts over both alike.
    const sides = [await startSide(backend, false, keys), await startSide(backend, true, keys)];
    try {
      for (const side of sides) {
        for (let w = 0; w < warmup; w++) await round(side, `warmup${w}`, perRound, depth);
        Object.assign(side, noneMeasured());
      }
      for (let r = 0; r < rounds; r++) {
        for (const side of r % 2 === 0 ? sides : [...sides].reverse()) await round(side, r, perRound, depth);
      }
    } finally {
      for (const side of sides) {
        for (const server of side.second ? [side, side.second] : [side]) {
          server.client.disconnect();
          if (profileDir) {
            // A clean exit writes the profile.
            const exited = new Promise((resolve) => server.child.once('exit', resolve));
            server.child.kill('SIGTERM');
            await exited;
          } else server.child.kill('SIGKILL');
        }
        await side.done();
      }
    }
    for (const side of sides) {
      const mode = side.authOn ? '' : '_noauth';
      const create = side.files / (side.createMs / 1000);
      const stat = side.files / (side.statMs / 1000);
      const restat = side.files / (side.restatMs / 1000);
      const secondStat = side.second ? side.files / (side.secondStatMs / 1000) : undefined;
      if (secondStat !== undefined) figures[`${backend}_second_server_stat_per_s${mode}`] = Math.round(secondStat);
      const readdir = side.entries / (side.readdirMs / 1000);
      figures[`${backend}_create_per_s${mode}`] = Math.round(create);
      figures[`${backend}_stat_per_s${mode}`] = Math.round(stat);
      figures[`${backend}_restat_per_s${mode}`] = Math.round(restat);
      const rpc = side.files / (side.nullMs / 1000);
      figures[`${backend}_readdir_entries_per_s${mode}`] = Math.round(readdir);
      figures[`${backend}_whoami_per_s${mode}`] = Math.round(rpc);
      rows.push([backend, side.authOn ? 'on' : 'off', fmtCount(create), fmtCount(stat), fmtCount(restat), secondStat === undefined ? '' : fmtCount(secondStat), fmtCount(readdir), fmtCount(rpc)]);
    }
    const [off, on] = sides as [Side, Side];
    const aim = AIMS[backend]!;
    figures[`${backend}_create_vs_aim`] = Number((on.files / (on.createMs / 1000) / aim.create).toFixed(3));
    figures[`${backend}_stat_vs_aim`] = Number((on.files / (on.statMs / 1000) / aim.stat).toFixed(3));
    rows.push([backend, 'aim', fmtCount(aim.create), fmtCount(aim.stat), '', '', '', '']);
    // Ratios of rates: on / off (1 = authentication costs nothing).
    figures[`${backend}_create_auth_ratio`] = Number((off.createMs / on.createMs).toFixed(3));
    figures[`${backend}_stat_auth_ratio`] = Number((off.statMs / on.statMs).toFixed(3));
    figures[`${backend}_readdir_auth_ratio`] = Number((off.readdirMs / on.readdirMs).toFixed(3));
  }
  keysDir.cleanup();
  printTable(`meta: ${files} files in ${rounds} rounds alternating auth off/on after ${warmup} untimed, depth ${depth}, one client each (${machineNote()})`, rows);
  printJson('meta', { files, depth, rounds, warmup, ...figures });
}
