/**
 * s3: the S3 gateway (`millpond s3`, its own process, as it would run beside MinIO's clients)
 * against the FileSystem API on the same embedded cluster in the same run. 16 clients PUT
 * and then GET 64 MiB objects through the gateway with the AWS SDK (SigV4, payload signed:
 * the SDK hashes each body, the gateway checks the hash and computes the MD5 ETag), and 16
 * clients writeFile/readFile 64 MiB files through the FileSystem API: put_ratio and
 * get_ratio are gateway / FileSystem API. put_ratio_ceiling and get_ratio_ceiling bound them on
 * these cores, all measured in the same run: the machine's CPU seconds during the writeFile
 * (readFile) round, plus what a signed PUT must hash (what the SDK clients and a plain HTTP
 * server holding the bytes in memory spend on the same GETs), against the cores' time. Then
 * small objects: 4 KiB PUT, GET and HEAD ops/s through the gateway, 16 in flight, beside writeFile, readFile and stat of 4 KiB files
 * through the FileSystem API at the same depth (the cluster's own cost of a small file).
 * Last, listing: a bucket of --list-keys keys (default 20,000) in one directory, listed whole
 * in ListObjectsV2 pages of 1000, against one readdir of it (list_ratio).
 * The clients of both kinds run in one process of their own (bench/s3-clients.ts), as they
 * would on their own hosts: neither shares an event loop with the cluster or the gateway.
 * --gateway-profile DIR runs the gateway under --cpu-prof (profiles written at its exit);
 * --rounds N (default 2) repeats the large transfers, keeping the best of each.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startEmbedded } from '../src/cli/embedded.js';
import { MetaClient } from '../src/meta/meta-client.js';
import { benchDir, fmtCount, fmtGBps, gbPerSecond, GiB, intOption, machineNote, MiB, makeWorkDir, printJson, printTable, round3 } from './lib.js';
import type { S3ClientTimings } from './s3-clients.js';

/** The gateway as its own process, presenting the cluster's admin token (env, never argv). */
async function startGatewayProcess(meta: string, mgmtd: string, auth: { token: string; serverKey: string }, profileDir: string | undefined): Promise<{ child: ChildProcess; endpoint: string }> {
  const main = join(benchDir, '..', 'src', 'cli', 'main.ts');
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', main, 's3', '--listen', '127.0.0.1:0', '--meta', meta, '--mgmtd', mgmtd, '--transport', 'tcp'], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, MILLPOND_TOKEN: auth.token, MILLPOND_SERVER_KEY: auth.serverKey },
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const m = /^millpond s3 is up: (http:\/\/\S+)/.exec(line);
    if (m) return { child, endpoint: m[1]! };
  }
  throw new Error('millpond s3 exited before it was up');
}

/** Runs bench/s3-clients.ts in its own process with `settings` (S3C_*) and returns its timings. */
async function runClients(settings: Record<string, string>): Promise<S3ClientTimings> {
  const env = { ...process.env, ...Object.fromEntries(Object.entries(settings).map(([k, v]) => [`S3C_${k}`, v])) };
  const child = spawn(process.execPath, ['--import', 'tsx', join(benchDir, 's3-clients.ts')], { stdio: ['ignore', 'pipe', 'inherit'], env });
  let last = '';
  for await (const line of createInterface({ input: child.stdout! })) last = line;
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`the bench's client process exited with ${code}`);
  return JSON.parse(last) as S3ClientTimings;
}

export async function s3Bench(options: Map<string, string>): Promise<void> {
  const clients = intOption(options, 'clients', 16);
  const objectMiB = intOption(options, 'object-mib', 64);
  const smallOps = intOption(options, 'small-ops', 3000);
  const rounds = intOption(options, 'rounds', 2);
  const listKeys = intOption(options, 'list-keys', 20_000);
  const work = await makeWorkDir('s3');
  const cluster = await startEmbedded({
    dataDir: join(work.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
    host: '127.0.0.1', transport: 'tcp', chainCount: 12, syncWrites: options.get('sync') !== 'false',
  });
  // Control-plane auth is on: the bench's clients and the gateway present the admin's token.
  const auth = { token: cluster.adminToken, serverKey: cluster.serverKey };
  const meta = new MetaClient(cluster.meta, { auth });
  const key = await meta.accessKeyAdd({ uid: 0, gid: 0 });
  const gateway = await startGatewayProcess(cluster.meta, cluster.mgmtd, auth, options.get('gateway-profile'));
  try {
    const t = await runClients({
      CLIENTS: String(clients), OBJECT_MIB: String(objectMiB), SMALL_OPS: String(smallOps), ROUNDS: String(rounds), LIST_KEYS: String(listKeys),
      META: cluster.meta, MGMTD: cluster.mgmtd, TOKEN: auth.token, SERVER_KEY: auth.serverKey,
      ENDPOINT: gateway.endpoint, KEY_ID: key.accessKeyId, SECRET: key.secretAccessKey,
    });
    const bytes = clients * objectMiB * MiB;
    // The most put_ratio can be on this machine: a PUT does a writeFile's work (the whole
    // machine's CPU seconds during the writeFile round: clients, cluster) plus the hashing
    // a signed PUT needs, on the same cores; HTTP and the SDK cost more still.
    const cores = availableParallelism();
    const gib = bytes / GiB;
    const putRatioCeiling = (cores * t.fsPut / 1000) / (t.fsPutBusyS + t.putHashSPerGiB * gib);
    // And a GET: a readFile's work (less the bench's CRC check of what readFile returned, which
    // the gateway does not do) plus what the SDK clients and a plain HTTP server spend on the
    // same bytes.
    const getRatioCeiling = (cores * t.fsGet / 1000) / (t.fsGetBusyS - t.crcSPerGiB * gib + t.plainGetCpuS);
    const figures = {
      clients,
      object_MiB: objectMiB,
      fs_put_GBps: round3(gbPerSecond(bytes, t.fsPut)),
      s3_put_GBps: round3(gbPerSecond(bytes, t.s3Put)),
      put_ratio: round3(t.fsPut / t.s3Put),
      fs_put_machine_busy: round3(t.fsPutBusyS / t.fsPutAllS),
      fs_put_cpu_s_per_GiB: round3(t.fsPutBusyS / gib),
      put_hash_cpu_s_per_GiB: round3(t.putHashSPerGiB),
      put_ratio_ceiling: round3(putRatioCeiling),
      fs_get_GBps: round3(gbPerSecond(bytes, t.fsGet)),
      s3_get_GBps: round3(gbPerSecond(bytes, t.s3Get)),
      get_ratio: round3(t.fsGet / t.s3Get),
      fs_get_machine_busy: round3(t.fsGetBusyS / t.fsGetAllS),
      fs_get_cpu_s_per_GiB: round3(t.fsGetBusyS / gib),
      plain_http_get_cpu_s_per_GiB: round3(t.plainGetCpuS / gib),
      get_ratio_ceiling: round3(getRatioCeiling),
      small_put_ops: Math.round(smallOps / (t.putMs / 1000)),
      small_get_ops: Math.round(smallOps / (t.getMs / 1000)),
      small_head_ops: Math.round(smallOps / (t.headMs / 1000)),
      small_fs_write_ops: Math.round(smallOps / (t.fsWriteMs / 1000)),
      small_fs_read_ops: Math.round(smallOps / (t.fsReadMs / 1000)),
      small_fs_stat_ops: Math.round(smallOps / (t.fsStatMs / 1000)),
      list_keys: listKeys,
      list_keys_per_s: Math.round(listKeys / (t.listMs / 1000)),
      fs_readdir_entries_per_s: Math.round(listKeys / (t.fsListMs / 1000)),
      list_ratio: round3(t.fsListMs / t.listMs),
    };
    printTable(`s3: ${clients} clients, ${objectMiB} MiB objects, embedded cluster, chains of 3 (${machineNote()})`, [
      ['path', 'PUT / write', 'GET / read'],
      ['FileSystem API writeFile/readFile', fmtGBps(figures.fs_put_GBps), fmtGBps(figures.fs_get_GBps)],
      ['S3 gateway, AWS SDK (SigV4, signed payload)', fmtGBps(figures.s3_put_GBps), fmtGBps(figures.s3_get_GBps)],
      ['ratio gateway / FileSystem API', String(figures.put_ratio), String(figures.get_ratio)],
      ['ratio ceiling on these cores (see below)', String(figures.put_ratio_ceiling), String(figures.get_ratio_ceiling)],
    ]);
    console.log(`Ceilings. The writeFile round kept ${(figures.fs_put_machine_busy * 100).toFixed(0)}% of the machine's ${cores} cores busy, ` +
      `${figures.fs_put_cpu_s_per_GiB} CPU-s per GiB (clients and cluster); a signed PUT hashes each byte three times more ` +
      `(SDK SHA-256, gateway SHA-256 and MD5), ${figures.put_hash_cpu_s_per_GiB} CPU-s per GiB here. The readFile round kept ` +
      `${(figures.fs_get_machine_busy * 100).toFixed(0)}% busy, ${figures.fs_get_cpu_s_per_GiB} CPU-s per GiB; the same SDK clients ` +
      `taking the same bytes from a plain HTTP server that holds them in memory spend (with that server) ` +
      `${figures.plain_http_get_cpu_s_per_GiB} CPU-s per GiB. On the same cores no gateway gets a PUT or a GET faster than ` +
      `its ceiling times the FileSystem API's.`);
    printTable(`small objects: 4 KiB, ${clients} in flight, ${smallOps} ops each`, [
      ['operation', 'gateway ops/s', 'FileSystem API ops/s (baseline)'],
      ['PUT / writeFile', fmtCount(figures.small_put_ops), fmtCount(figures.small_fs_write_ops)],
      ['GET / readFile', fmtCount(figures.small_get_ops), fmtCount(figures.small_fs_read_ops)],
      ['HEAD / stat', fmtCount(figures.small_head_ops), fmtCount(figures.small_fs_stat_ops)],
    ]);
    printTable(`listing: a bucket of ${fmtCount(listKeys)} keys in one directory, listed whole`, [
      ['path', 'keys/s'],
      ['ListObjectsV2, pages of 1000 (AWS SDK)', fmtCount(figures.list_keys_per_s)],
      ['FileSystem API readdir (baseline)', fmtCount(figures.fs_readdir_entries_per_s)],
      ['ratio gateway / FileSystem API', String(figures.list_ratio)],
    ]);
    printJson('s3', figures);
  } finally {
    gateway.child.kill('SIGTERM');
    await once(gateway.child, 'exit');
    meta.disconnect();
    await cluster.stop();
    work.cleanup();
  }
}
