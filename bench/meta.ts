/**
 * meta: creates, stats and readdir entries per second from one client (depth `--depth`
 * requests in flight) against a meta server process, on SQLite (synchronous=full: every
 * acknowledged create is on disk) and on PostgreSQL (serializable). Each backend runs twice in
 * the same run: authentication on (the default: CURVE, a token verified per request) and off
 * (plain ZeroMQ, the request's user trusted); `*_auth_ratio` is on / off (aim: >= 0.9).
 *   npm run bench -- meta [--files 5000] [--depth 32] [--backends sqlite,postgres]
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { ensureClusterKeys } from '../src/auth/cluster-files.js';
import type { ClientAuth } from '../src/auth/credentials.js';
import { MetaClient } from '../src/meta/meta-client.js';
import { fmtCount, intOption, machineNote, makeWorkDir, nowMs, printJson, printTable, runWithDepth } from './lib.js';

const mainTs = fileURLToPath(new URL('../src/meta/main.ts', import.meta.url));

function startServer(args: string[]): Promise<{ child: ChildProcess; endpoint: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', mainTs, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = line.match(/^listening (\S+)$/);
      if (m) resolve({ child, endpoint: m[1]! });
    });
    child.once('exit', (code) => reject(new Error(`meta server exited with ${code}`)));
  });
}

async function measure(endpoint: string, files: number, depth: number, auth: ClientAuth | undefined) {
  const client = new MetaClient(endpoint, { auth });
  try {
    await client.mkdir('/bench');
    let t = nowMs();
    await runWithDepth(files, depth, (i) => client.open(`/bench/f${i}`, { flags: { create: true, exclusive: true } }));
    const createPerS = files / ((nowMs() - t) / 1000);
    t = nowMs();
    await runWithDepth(files, depth, (i) => client.stat(`/bench/f${i}`));
    const statPerS = files / ((nowMs() - t) / 1000);
    t = nowMs();
    let entries = 0;
    let after: string | undefined;
    for (;;) {
      const page = await client.readdir('/bench', { after, limit: 1024 });
      entries += page.entries.length;
      after = page.entries.at(-1)?.name;
      if (!page.more) break;
    }
    const readdirPerS = entries / ((nowMs() - t) / 1000);
    if (entries !== files) throw new Error(`readdir saw ${entries} of ${files}`);
    return { createPerS, statPerS, readdirPerS };
  } finally {
    client.disconnect();
  }
}

export async function metaBench(options: Map<string, string>): Promise<void> {
  const files = intOption(options, 'files', 5000);
  const depth = intOption(options, 'depth', 32);
  const backends = (options.get('backends') ?? 'sqlite,postgres').split(',');
  const figures: Record<string, number> = {};
  const rows = [['backend', 'auth', 'create/s', 'stat/s', 'readdir entries/s']];
  const keysDir = await makeWorkDir('meta-keys');
  const keys = ensureClusterKeys(keysDir.dir);
  for (const backend of backends) for (const authOn of [false, true]) {
    let args: string[];
    let done = async () => {};
    if (backend === 'sqlite') {
      const work = await makeWorkDir('meta');
      args = ['--backend', 'sqlite', '--db', join(work.dir, 'meta.db')];
      done = async () => work.cleanup();
    } else if (backend === 'postgres') {
      const script = fileURLToPath(new URL('../scripts/pg-start.sh', import.meta.url));
      const server = process.env.MILLPOND_PG_URL ?? execFileSync('bash', [script], { encoding: 'utf8' }).trim().split('\n').pop()!;
      const name = `millpond_bench_${process.pid}`;
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
    const mode = authOn ? '' : '_noauth';
    const { child } = await startServer([...args, '--listen', 'tcp://127.0.0.1:0']).then(async (s) => {
      const r = await measure(s.endpoint, files, depth, auth);
      figures[`${backend}_create_per_s${mode}`] = Math.round(r.createPerS);
      figures[`${backend}_stat_per_s${mode}`] = Math.round(r.statPerS);
      figures[`${backend}_readdir_entries_per_s${mode}`] = Math.round(r.readdirPerS);
      rows.push([backend, authOn ? 'on' : 'off', fmtCount(r.createPerS), fmtCount(r.statPerS), fmtCount(r.readdirPerS)]);
      return s;
    });
    child.kill('SIGKILL');
    await done();
    if (authOn) {
      for (const op of ['create', 'stat'] as const) {
        figures[`${backend}_${op}_auth_ratio`] = Number((figures[`${backend}_${op}_per_s`]! / figures[`${backend}_${op}_per_s_noauth`]!).toFixed(3));
      }
      figures[`${backend}_readdir_auth_ratio`] = Number((figures[`${backend}_readdir_entries_per_s`]! / figures[`${backend}_readdir_entries_per_s_noauth`]!).toFixed(3));
    }
  }
  keysDir.cleanup();
  printTable(`meta: ${files} files, depth ${depth}, one client (${machineNote()})`, rows);
  printJson('meta', { files, depth, ...figures });
}
