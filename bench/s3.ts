/**
 * s3: the S3 gateway (`millpond s3`, its own process, as it would run beside MinIO's clients)
 * against the FileSystem API on the same embedded cluster in the same run. 16 clients PUT
 * and then GET 64 MiB objects through the gateway with the AWS SDK (SigV4, payload signed:
 * the SDK hashes each body, the gateway checks the hash and computes the MD5 ETag), and 16
 * clients writeFile/readFile 64 MiB files through the FileSystem API: put_ratio and
 * get_ratio are gateway / FileSystem API. Then small objects: 4 KiB PUT, GET and HEAD ops/s
 * through the gateway, 16 in flight, beside writeFile, readFile and stat of 4 KiB files
 * through the FileSystem API at the same depth (the cluster's own cost of a small file).
 * --gateway-profile DIR runs the gateway under --cpu-prof (profiles written at its exit);
 * --rounds N (default 2) repeats the large transfers, keeping the best of each.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { startEmbedded } from '../src/cli/embedded.js';
import { connect } from '../src/fs/index.js';
import { crc32c } from '../src/index.js';
import { MetaClient } from '../src/meta/meta-client.js';
import { benchDir, fmtCount, fmtGBps, gbPerSecond, intOption, machineNote, MiB, makeWorkDir, nowMs, printJson, printTable, round3, runWithDepth } from './lib.js';

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

export async function s3Bench(options: Map<string, string>): Promise<void> {
  const clients = intOption(options, 'clients', 16);
  const objectMiB = intOption(options, 'object-mib', 64);
  const smallOps = intOption(options, 'small-ops', 3000);
  const rounds = intOption(options, 'rounds', 2);
  const work = await makeWorkDir('s3');
  const cluster = await startEmbedded({
    dataDir: join(work.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
    host: '127.0.0.1', transport: 'tcp', chainCount: 12, syncWrites: options.get('sync') !== 'false',
  });
  // Control-plane auth is on: the bench's clients and the gateway present the admin's token.
  const auth = { token: cluster.adminToken, serverKey: cluster.serverKey };
  const fs = await connect({ meta: cluster.meta, mgmtd: [cluster.mgmtd], transport: 'tcp', ...auth });
  const meta = new MetaClient(cluster.meta, { auth });
  const key = await meta.accessKeyAdd({ uid: 0, gid: 0 });
  const gateway = await startGatewayProcess(cluster.meta, cluster.mgmtd, auth, options.get('gateway-profile'));
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const s3 = new S3Client({
    endpoint: gateway.endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpAgent: agent }),
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
    await fs.mkdir('/fsapi');
    const bodies = Array.from({ length: clients }, (_, c) => {
      const b = Buffer.alloc(objectMiB * MiB);
      for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((i * 2654435761 + c) >>> 0, i);
      return b;
    });
    const sums = bodies.map((b) => crc32c(b));
    const bytes = clients * objectMiB * MiB;
    const timed = async (work: () => Promise<unknown>) => {
      const started = nowMs();
      await work();
      return nowMs() - started;
    };
    // The FileSystem API first, then the gateway, then each once more: the better of two runs
    // each, so neither side gains from going second on a warmed machine.
    const results = { fsPut: Infinity, fsGet: Infinity, s3Put: Infinity, s3Get: Infinity };
    for (let round = 0; round < rounds; round++) {
      results.fsPut = Math.min(results.fsPut, await timed(() => Promise.all(bodies.map((b, c) => fs.writeFile(`/fsapi/obj-${c}`, b)))));
      results.fsGet = Math.min(results.fsGet, await timed(() => Promise.all(bodies.map(async (_, c) => {
        if (crc32c(await fs.readFile(`/fsapi/obj-${c}`)) !== sums[c]) throw new Error(`fs read of ${c} differs`);
      }))));
      results.s3Put = Math.min(results.s3Put, await timed(() => Promise.all(bodies.map((b, c) => s3.send(new PutObjectCommand({ Bucket: 'bench', Key: `obj-${c}`, Body: b })))))) ;
      results.s3Get = Math.min(results.s3Get, await timed(() => Promise.all(bodies.map(async (_, c) => {
        // The body as it streams in (checksummed piece by piece), not gathered into one buffer
        // by the SDK: the client's copying is not the gateway's cost.
        const out = await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: `obj-${c}` }));
        let crc = 0;
        for await (const piece of out.Body as Readable) crc = crc32c(piece as Buffer, crc);
        if (crc !== sums[c]) throw new Error(`s3 read of ${c} differs`);
      }))));
    }
    const small = Buffer.alloc(4096, 7);
    const putMs = await timed(() => runWithDepth(smallOps, clients, (i) => s3.send(new PutObjectCommand({ Bucket: 'bench', Key: `small/${i % 1000}`, Body: small }))));
    const getMs = await timed(() => runWithDepth(smallOps, clients, async (i) => {
      const out = await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: `small/${i % 1000}` }));
      await out.Body!.transformToByteArray();
    }));
    const headMs = await timed(() => runWithDepth(smallOps, clients, (i) => s3.send(new HeadObjectCommand({ Bucket: 'bench', Key: `small/${i % 1000}` }))));
    // The same through the FileSystem API, same depth: what the cluster gives a small file
    // (open, one chunk write, close; open and read; stat), which the gateway's ops build on.
    await fs.mkdir('/fsapi/small');
    const fsWriteMs = await timed(() => runWithDepth(smallOps, clients, (i) => fs.writeFile(`/fsapi/small/${i % 1000}`, small)));
    const fsReadMs = await timed(() => runWithDepth(smallOps, clients, (i) => fs.readFile(`/fsapi/small/${i % 1000}`)));
    const fsStatMs = await timed(() => runWithDepth(smallOps, clients, (i) => fs.stat(`/fsapi/small/${i % 1000}`)));

    const figures = {
      clients,
      object_MiB: objectMiB,
      fs_put_GBps: round3(gbPerSecond(bytes, results.fsPut)),
      s3_put_GBps: round3(gbPerSecond(bytes, results.s3Put)),
      put_ratio: round3(results.fsPut / results.s3Put),
      fs_get_GBps: round3(gbPerSecond(bytes, results.fsGet)),
      s3_get_GBps: round3(gbPerSecond(bytes, results.s3Get)),
      get_ratio: round3(results.fsGet / results.s3Get),
      small_put_ops: Math.round(smallOps / (putMs / 1000)),
      small_get_ops: Math.round(smallOps / (getMs / 1000)),
      small_head_ops: Math.round(smallOps / (headMs / 1000)),
      small_fs_write_ops: Math.round(smallOps / (fsWriteMs / 1000)),
      small_fs_read_ops: Math.round(smallOps / (fsReadMs / 1000)),
      small_fs_stat_ops: Math.round(smallOps / (fsStatMs / 1000)),
    };
    printTable(`s3: ${clients} clients, ${objectMiB} MiB objects, embedded cluster, chains of 3 (${machineNote()})`, [
      ['path', 'PUT / write', 'GET / read'],
      ['FileSystem API writeFile/readFile', fmtGBps(figures.fs_put_GBps), fmtGBps(figures.fs_get_GBps)],
      ['S3 gateway, AWS SDK (SigV4, signed payload)', fmtGBps(figures.s3_put_GBps), fmtGBps(figures.s3_get_GBps)],
      ['ratio gateway / FileSystem API', String(figures.put_ratio), String(figures.get_ratio)],
    ]);
    printTable(`small objects: 4 KiB, ${clients} in flight, ${smallOps} ops each`, [
      ['operation', 'gateway ops/s', 'FileSystem API ops/s (baseline)'],
      ['PUT / writeFile', fmtCount(figures.small_put_ops), fmtCount(figures.small_fs_write_ops)],
      ['GET / readFile', fmtCount(figures.small_get_ops), fmtCount(figures.small_fs_read_ops)],
      ['HEAD / stat', fmtCount(figures.small_head_ops), fmtCount(figures.small_fs_stat_ops)],
    ]);
    printJson('s3', figures);
  } finally {
    s3.destroy();
    agent.destroy();
    gateway.child.kill('SIGTERM');
    await once(gateway.child, 'exit');
    meta.disconnect();
    fs.close();
    await cluster.stop();
    work.cleanup();
  }
}
