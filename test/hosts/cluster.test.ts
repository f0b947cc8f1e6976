/**
 * A cluster on six hosts (network namespaces, design §9), every process started as a user would
 * (`millpond init`, then `millpond mgmtd | meta | storage` with the init directory), authentication
 * on, mgmtd and meta state in PostgreSQL: mgmtd on h1 with a standby on h2, meta on h1 and h2,
 * storage on h3..h6 with two targets each, chains of 3; DuckDB (the native client) on h7. The
 * test process is the main client, in the root namespace (10.X.0.254), as in the other hosts
 * suites. PostgreSQL is the test server, reached on its unix socket (a path works from every
 * namespace). Faults: a storage host killed under a writer, a storage host silently
 * partitioned, the meta host the client uses killed, the mgmtd primary's host killed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import type { Routing } from '../../src/protocol/mgmtd-types.js';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { createTestDatabase, skipPg } from '../meta/support/pg.js';
import { tempDir } from '../support/tmp.js';
import { hostsAvailable, TestHosts, type HostProc } from './support/hosts.js';

const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const extension = fileURLToPath(new URL('../../build/duckdb-ext/millpond.duckdb_extension', import.meta.url));
const minorityWriter = fileURLToPath(new URL('./support/minority-writer.mjs', import.meta.url));
const duckdbClient = fileURLToPath(new URL('./support/duckdb-client.mjs', import.meta.url));
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const SUBNET = 203;
const MGMTD_PORT = 8600;
const META_PORT = 8601;
const CONTROL_PORT = 7000; // a storage node's; its two targets' data servers on 7100 and 7101
const DATA_PORT = 7100;
// Short for the test, with room for a loaded 2-core machine: a host is declared dead after 4 s
// without heartbeats; a lease lasts 5 s.
const MGMTD_TIMING = ['--heartbeat-timeout-ms', '4000', '--liveness-check-ms', '200', '--lease-ms', '5000', '--lease-poll-ms', '300'];
const STORAGE_TIMING = ['--heartbeat-ms', '400', '--routing-poll-ms', '300', '--no-sync'];
const STORAGE_HOSTS = [3, 4, 5, 6];

describe.skipIf(!hostsAvailable() || skipPg)('a cluster on six hosts', () => {
  const t = tempDir('hosts-cluster');
  const initDir = join(t.dir, 'cluster');
  let hosts: TestHosts;
  let drops: Array<() => Promise<void>> = [];
  let env: { mgmtd: NodeJS.ProcessEnv; meta: NodeJS.ProcessEnv; client: NodeJS.ProcessEnv };
  let mgmtdList: string[];
  let metaList: string[];
  let serverKey: string;
  let token: string;
  let fs: FileSystem;
  let admin: MgmtdClient;
  /** Every file written and acknowledged: path → sha256. */
  const written = new Map<string, string>();

  const ip = (h: number) => hosts.ip(h);
  const role = (h: number, args: string[], e: NodeJS.ProcessEnv): HostProc =>
    hosts.spawn(h, process.execPath, [cli, ...args, '--data-dir', initDir], e);
  const startMgmtd = (h: number) => role(h, ['mgmtd', ...MGMTD_TIMING], env.mgmtd);
  const startMeta = (h: number) => role(h, ['meta'], env.meta);
  const startStorage = (h: number) => role(h, ['storage', '--node-id', String(h),
    '--target', join(t.dir, `h${h}`, 'ssd0'), '--target', join(t.dir, `h${h}`, 'ssd1'), '--listen', `0.0.0.0:${CONTROL_PORT}`, '--data-port', String(DATA_PORT),
    ...STORAGE_TIMING], env.mgmtd);

  async function routing(): Promise<Routing> {
    const r = await admin.getRouting();
    if (!('targets' in r)) throw new Error('routing unchanged without a known version');
    return r;
  }
  const targetsOf = (r: Routing, h: number) => r.targets.filter((x) => x.nodeId === h);
  async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        if (await check()) return;
      } catch (err) {
        last = err;
      }
      await sleep(200);
    }
    const r = await routing().then((x) => x.targets.map((t) => `${t.targetId} ${t.state}/${t.localState}`).join(', '), (e: Error) => e.message);
    throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''} (targets: ${r})`);
  }
  const allServing = async () => (await routing()).targets.length === 8 && (await routing()).targets.every((x) => x.state === 'serving');

  /** proc.waitFor, with the process's stderr in the error when it fails. */
  async function lineOf(proc: HostProc, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    try {
      return await proc.waitFor(pattern, timeoutMs);
    } catch (err) {
      throw new Error(`${(err as Error).message}; stderr: ${proc.errLines.slice(-20).join('\n')}`);
    }
  }

  async function verifyAll(): Promise<void> {
    for (const [path, digest] of written) expect(sha(await fs.readFile(path)), path).toBe(digest);
  }

  beforeAll(async () => {
    hosts = TestHosts.create(7, SUBNET);
    const [mgmtdDb, metaDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    drops = [mgmtdDb.drop, metaDb.drop];
    mgmtdList = [1, 2].map((h) => `tcp://${ip(h)}:${MGMTD_PORT}`);
    // The client's meta list starts with h2's: the host killed first is the one it uses.
    metaList = [2, 1].map((h) => `tcp://${ip(h)}:${META_PORT}`);
    await run(process.execPath, [cli, 'init', '--dir', initDir, '--mgmtd', mgmtdList.join(','), '--meta', metaList.join(','),
      '--backend', 'postgres', '--transport', 'tcp']);
    const clusterJson = JSON.parse(readFileSync(join(initDir, 'cluster.json'), 'utf8')) as { serverKey: string; meta: string[]; backend: string };
    expect(clusterJson.meta).toEqual(metaList);
    expect(clusterJson.backend).toBe('postgres');
    serverKey = clusterJson.serverKey;
    token = readFileSync(join(initDir, 'keys', 'admin.token'), 'utf8').trim();
    env = {
      mgmtd: { MILLPOND_MGMTD_PG_URL: mgmtdDb.url },
      meta: { MILLPOND_META_PG_URL: metaDb.url },
      client: { MILLPOND_TOKEN_FILE: join(initDir, 'keys', 'admin.token'), MILLPOND_SERVER_KEY: serverKey },
    };
    const m1 = startMgmtd(1);
    await m1.waitFor(/^primary$/, 30_000);
    const m2 = startMgmtd(2);
    await m2.waitFor(/^listening tcp:\/\/10\.203\.0\.2:8600$/, 30_000); // advertised, not the 0.0.0.0 bound
    await Promise.all([startMeta(1), startMeta(2)].map((p) => p.waitFor(/^listening /, 30_000)));
    const storage = STORAGE_HOSTS.map(startStorage);
    for (const [i, p] of storage.entries()) {
      // Advertised on the host's own address, never the 0.0.0.0 it binds.
      const [, addr] = await p.waitFor(/^listening (\S+)$/, 30_000);
      const h = STORAGE_HOSTS[i]!;
      expect(addr).toBe(`tcp://${ip(h)}:${CONTROL_PORT}`);
      expect(p.lines).toContain(`target ${h}01 ${ip(h)}:${DATA_PORT} ${join(t.dir, `h${h}`, 'ssd0')}`);
      expect(p.lines).toContain(`target ${h}02 ${ip(h)}:${DATA_PORT + 1} ${join(t.dir, `h${h}`, 'ssd1')}`);
    }
    admin = new MgmtdClient(mgmtdList, { auth: { token, serverKey }, timeoutMs: 1_000 });
    await until('8 targets serving', allServing);
    // The chain table, as a user makes it: the CLI on the client host.
    const made = hosts.spawn(7, process.execPath, [cli, 'admin', 'create-chain-table', '--chains', '8', '--replicas', '3', '--data-dir', initDir]);
    await made.waitFor(/^chain table 1: 8 chains of 3 /, 60_000);
    await until('chains serving', async () => (await routing()).chains.length === 8);
    fs = await connect({ meta: metaList.join(','), mgmtd: mgmtdList, transport: 'tcp', token, serverKey });
  }, 240_000);

  afterAll(async () => {
    fs?.close();
    admin?.close();
    await hosts?.destroy();
    for (const drop of drops) await drop().catch(() => {});
    t.cleanup();
  }, 60_000);

  it('serves files of many sizes; status shows hosts, space per target and chains spread over hosts', async () => {
    await fs.mkdir('/sizes', { recursive: true });
    await fs.setLayout('/sizes', { chunkSizeBytes: 1 << 20, stripeSize: 4 });
    for (const size of [0, 1, 4095, 65_536, (1 << 20) + 3, 4 << 20, (9 << 20) + 7]) {
      const data = randomBytes(size);
      await fs.writeFile(`/sizes/f-${size}`, data);
      written.set(`/sizes/f-${size}`, sha(data));
    }
    await verifyAll();
    // Every chain's replicas are on three distinct hosts.
    const r = await routing();
    for (const c of r.chains) expect(new Set(c.targets.map((id) => r.targets.find((x) => x.targetId === id)!.nodeId)).size).toBe(3);

    const status = hosts.spawn(7, process.execPath, [cli, 'status', '--data-dir', initDir]);
    await status.exited;
    const out = status.lines.join('\n');
    expect(status.lines.slice(0, 3)).toEqual(['cluster:', '  health: HEALTH_OK', 'services:']); // health first
    for (const h of STORAGE_HOSTS) {
      expect(out).toMatch(new RegExp(`^host ${ip(h).replace(/\./g, '\\.')}: storage node ${h} alive; 2 targets, used [\\d.]+ [MG]iB free [\\d.]+ [MG]iB; chains: \\d+ heads, 6 replicas$`, 'm'));
    }
    expect(out.match(/^ {2}target \d+ serving used [\d.]+ [MG]iB free [\d.]+ [MG]iB /gm)).toHaveLength(8);
    expect(out).toMatch(/^ {2}chains 8 of 3: heads per host: .+; replicas per host: .+ 6, .+ 6, .+ 6, .+ 6$/m);
  }, 120_000);

  it('a storage host killed under a writer: every acknowledged write survives, reads go on, it returns and resyncs', async () => {
    await fs.mkdir('/killed', { recursive: true });
    let stop = false;
    const failures: string[] = [];
    let acked = 0;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const data = randomBytes(256 * 1024 + i);
        try {
          await fs.writeFile(`/killed/w-${i}`, data);
          written.set(`/killed/w-${i}`, sha(data));
          acked++;
        } catch (err) {
          // The first failure ends the writer (asserted below); a loop of writes that fail at
          // once would never give the event loop back.
          failures.push(`w-${i}: ${(err as Error).message}`);
          stop = true;
        }
      }
    })();
    await until('10 writes', async () => acked >= 10 || failures.length > 0);
    expect(failures).toEqual([]);
    await hosts.kill(3);
    await until('host 3 declared offline', async () => targetsOf(await routing(), 3).every((x) => x.state === 'offline'), 30_000);
    const atOffline = acked;
    // Reads go on while it is down: every file written so far.
    await verifyAll();
    await until('10 more writes with host 3 down', async () => acked >= atOffline + 10 || failures.length > 0, 60_000);
    stop = true;
    await writer;
    expect(failures).toEqual([]);
    // Chains without host 3 are three serving, the others two.
    const down = await routing();
    for (const c of down.chains) {
      const serving = c.targets.filter((id) => down.targets.find((x) => x.targetId === id)!.state === 'serving');
      expect(serving.length).toBe(c.targets.some((id) => targetsOf(down, 3).some((x) => x.targetId === id)) ? 2 : 3);
    }

    startStorage(3);
    await until('host 3 resynced and serving', allServing, 90_000);
    await verifyAll();
  }, 240_000);

  it('a storage host partitioned by silent drops: declared offline, chains shorten, its writer acknowledges nothing; it resyncs after healing', async () => {
    const minority = hosts.spawn(4, process.execPath, [minorityWriter, metaList.join(','), mgmtdList.join(','), '/minority'], env.client);
    await minority.waitFor(/^acked 3 /, 60_000);
    hosts.partition(4, 'drop');
    await until('host 4 declared offline', async () => targetsOf(await routing(), 4).every((x) => x.state === 'offline'), 30_000);
    // Seconds after the drop began: a reply that arrived before it has long been printed.
    const ackedAtOffline = minority.lines.filter((l) => l.startsWith('acked ')).length;
    const r = await routing();
    for (const c of r.chains) {
      const serving = c.targets.filter((id) => r.targets.find((x) => x.targetId === id)!.state === 'serving');
      expect(serving.every((id) => r.targets.find((x) => x.targetId === id)!.nodeId !== 4)).toBe(true);
      if (c.targets.some((id) => targetsOf(r, 4).some((x) => x.targetId === id))) expect(serving.length).toBe(2);
    }
    // The majority side writes on meanwhile.
    for (let i = 0; i < 8; i++) {
      const data = randomBytes(300_000 + i);
      await fs.writeFile(`/killed/p-${i}`, data);
      written.set(`/killed/p-${i}`, sha(data));
    }
    await sleep(1_000);
    const ackedLines = minority.lines.filter((l) => l.startsWith('acked '));
    // The writer inside the partition acknowledged nothing while cut off.
    expect(ackedLines.slice(ackedAtOffline)).toEqual([]);
    const before = ackedLines.map((l) => Number(l.split(' ')[1]));
    hosts.heal(4);
    await until('host 4 resynced and serving', allServing, 90_000);
    // What it acknowledged before the partition is there, whole.
    for (const i of before) expect((await fs.readFile(`/minority/m-${i}`)).equals(Buffer.alloc(64 * 1024, i & 0xff))).toBe(true);
    minority.child.kill('SIGKILL');
    await minority.exited;
    await verifyAll();
  }, 240_000);

  it('the meta host the client uses is killed: the TS client and DuckDB (native client) fail over to the other meta server', async () => {
    await fs.mkdir('/duck', { recursive: true });
    // h2 holds the first meta of the client's list (and the standby mgmtd).
    await hosts.kill(2);
    const data = randomBytes(2 << 20);
    await fs.writeFile('/after-meta-kill.bin', data);
    written.set('/after-meta-kill.bin', sha(data));
    await verifyAll();
    const duck = hosts.spawn(7, process.execPath, [duckdbClient, extension, metaList.join(','), mgmtdList.join(','), '/duck/rows.parquet'], env.client);
    const [, n, s] = await lineOf(duck, /^rows (\d+) (\d+)$/, 120_000);
    expect([n, s]).toEqual(['100000', String((100_000 * 99_999) / 2)]);
    // h2 comes back: its meta and the standby mgmtd.
    await startMgmtd(2).waitFor(/^listening /, 30_000);
    await startMeta(2).waitFor(/^listening /, 30_000);
  }, 240_000);

  it('the mgmtd primary\'s host is killed: the standby takes over and the cluster keeps serving', async () => {
    await hosts.kill(1);
    const standby = new MgmtdClient([mgmtdList[1]!], { auth: { token, serverKey }, timeoutMs: 1_000 });
    try {
      await until('h2 mgmtd primary', async () => (await standby.status()).primary, 30_000);
    } finally {
      standby.close();
    }
    // Storage heartbeats reach the new primary: every target serves on.
    await until('targets serving under the new primary', allServing, 120_000);
    const data = randomBytes(3 << 20);
    await fs.writeFile('/after-mgmtd-kill.bin', data);
    written.set('/after-mgmtd-kill.bin', sha(data));
    await verifyAll();
    const duck = hosts.spawn(7, process.execPath, [duckdbClient, extension, metaList.join(','), mgmtdList.join(','), '/duck/after-primary.parquet'], env.client);
    await lineOf(duck, /^rows 100000 4999950000$/, 120_000);
  }, 240_000);
});
