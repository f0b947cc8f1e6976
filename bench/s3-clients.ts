/**
 * The client side of the s3 bench, in its own process (as clients run on their own hosts): the
 * cluster's processes and the gateway do not share an event loop with the clients' hashing
 * and copying, and both kinds of client, the AWS SDK's and the FileSystem API's, run here alike.
 * Reads its settings from the environment (S3C_*; secrets never on argv), runs the phases and
 * prints one JSON line of timings (ms).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Agent } from 'node:http';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { connect } from '../src/fs/index.js';
import { crc32c } from '../src/index.js';
import { cpuSecondsByTree, GiB, MiB, machineCpuSeconds, nowMs, runWithDepth } from './lib.js';

export interface S3ClientTimings {
  fsPut: number; fsGet: number; s3Put: number; s3Get: number;
  /** The whole machine's busy and total CPU seconds during the writeFile and readFile rounds kept. */
  fsPutBusyS: number; fsPutAllS: number; fsGetBusyS: number; fsGetAllS: number;
  /** CPU seconds per GiB, one core, of the hashing a signed PUT needs: MD5 + SHA-256 twice. */
  putHashSPerGiB: number;
  /** CPU seconds per GiB, one core, of the bench's own CRC check of what it read. */
  crcSPerGiB: number;
  /** CPU seconds (clients and server) of the same GETs from a plain HTTP server holding the bytes in memory. */
  plainGetCpuS: number;
  putMs: number; getMs: number; headMs: number; fsWriteMs: number; fsReadMs: number; fsStatMs: number;
  listMs: number; fsListMs: number;
}

const env = (name: string): string => {
  const v = process.env[`S3C_${name}`];
  if (v === undefined) throw new Error(`S3C_${name} is not set`);
  return v;
};
const clients = Number(env('CLIENTS'));
const objectMiB = Number(env('OBJECT_MIB'));
const smallOps = Number(env('SMALL_OPS'));
const rounds = Number(env('ROUNDS'));
const listKeys = Number(env('LIST_KEYS'));
const auth = { token: env('TOKEN'), serverKey: env('SERVER_KEY') };

const fs = await connect({ meta: env('META'), mgmtd: [env('MGMTD')], transport: 'tcp', ...auth });

/** The bench's SDK clients against `endpoint`, `sockets` connections at most. */
function sdkClient(endpoint: string, sockets: number): { s3: S3Client; agent: Agent } {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  const s3 = new S3Client({
    endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: env('KEY_ID'), secretAccessKey: env('SECRET') },
    requestHandler: new NodeHttpHandler({ httpAgent: agent }),
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return { s3, agent };
}

/**
 * The CRC32C of object `key`, taken as its body streams in (checksummed piece by piece), not
 * gathered into one buffer by the SDK: the client's copying is not the server's cost.
 */
async function crcOfObject(client: S3Client, key: string): Promise<number> {
  const out = await client.send(new GetObjectCommand({ Bucket: 'bench', Key: key }));
  let crc = 0;
  for await (const piece of out.Body as Readable) crc = crc32c(piece as Buffer, crc);
  return crc;
}

const { s3, agent } = sdkClient(env('ENDPOINT'), clients);
/**
 * The least CPU any gateway's GETs can add to reading the bytes from the cluster: the same SDK
 * clients fetching `count` objects of `bytes` at once from a plain node:http server that holds
 * them in memory (no signature check, no cluster) and answers every GET with them, consumed as
 * the gateway's GETs are. CPU seconds of the clients (this process) and that server, the best
 * of `rounds`.
 */
async function plainHttpGetCpuS(count: number, bytes: number, rounds: number): Promise<number> {
  const server = spawn(process.execPath, ['-e', `
    const body = Buffer.alloc(${bytes}, 5);
    const server = require('node:http').createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream', etag: '"plain"', 'last-modified': new Date(0).toUTCString() });
      res.end(body);
    });
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));`], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [port] = await once(createInterface({ input: server.stdout! }), 'line') as [string];
    const plain = sdkClient(`http://127.0.0.1:${port}`, count);
    let best = Infinity;
    for (let round = 0; round < rounds; round++) {
      const before = cpuSecondsByTree();
      await Promise.all(Array.from({ length: count }, (_, c) => crcOfObject(plain.s3, `obj-${c}`)));
      const after = cpuSecondsByTree();
      best = Math.min(best, after.self + after.children - before.self - before.children);
    }
    plain.s3.destroy();
    plain.agent.destroy();
    return best;
  } finally {
    server.kill();
  }
}

try {
  await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
  await fs.mkdir('/fsapi');
  const bodies = Array.from({ length: clients }, (_, c) => {
    const b = Buffer.alloc(objectMiB * MiB);
    for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((i * 2654435761 + c) >>> 0, i);
    return b;
  });
  const sums = bodies.map((b) => crc32c(b));
  const timed = async (work: () => Promise<unknown>) => {
    const started = nowMs();
    await work();
    return nowMs() - started;
  };
  /** `work`'s wall time and the whole machine's CPU seconds meanwhile. */
  const timedWithCpu = async (work: () => Promise<unknown>) => {
    const before = machineCpuSeconds();
    const ms = await timed(work);
    const after = machineCpuSeconds();
    return { ms, busyS: after.busy - before.busy, allS: after.all - before.all };
  };
  const perGiB = (work: () => void) => {
    const started = nowMs();
    work();
    return (nowMs() - started) / 1000 / (bodies[0]!.length / GiB);
  };
  // What a signed PUT must hash beyond a writeFile, per byte: the SDK's SHA-256 of the body,
  // the gateway's check of it and its MD5 for the ETag (node:crypto, OpenSSL, as both use).
  const putHashSPerGiB = perGiB(() => {
    for (const name of ['md5', 'sha256', 'sha256']) createHash(name).update(bodies[0]!).digest();
  });
  const crcSPerGiB = perGiB(() => crc32c(bodies[0]!));
  // The FileSystem API first, then the gateway, then each once more: the better of the runs
  // each, so neither side gains from going second on a warmed machine.
  const t: S3ClientTimings = {
    fsPut: Infinity, fsGet: Infinity, s3Put: Infinity, s3Get: Infinity, fsPutBusyS: 0, fsPutAllS: 0, fsGetBusyS: 0, fsGetAllS: 0,
    putHashSPerGiB, crcSPerGiB, plainGetCpuS: Infinity, putMs: 0, getMs: 0, headMs: 0, fsWriteMs: 0, fsReadMs: 0, fsStatMs: 0, listMs: 0, fsListMs: 0,
  };
  for (let round = 0; round < rounds; round++) {
    const put = await timedWithCpu(() => Promise.all(bodies.map((b, c) => fs.writeFile(`/fsapi/obj-${c}`, b))));
    if (put.ms < t.fsPut) Object.assign(t, { fsPut: put.ms, fsPutBusyS: put.busyS, fsPutAllS: put.allS });
    const get = await timedWithCpu(() => Promise.all(bodies.map(async (_, c) => {
      if (crc32c(await fs.readFile(`/fsapi/obj-${c}`)) !== sums[c]) throw new Error(`fs read of ${c} differs`);
    })));
    if (get.ms < t.fsGet) Object.assign(t, { fsGet: get.ms, fsGetBusyS: get.busyS, fsGetAllS: get.allS });
    t.s3Put = Math.min(t.s3Put, await timed(() => Promise.all(bodies.map((b, c) => s3.send(new PutObjectCommand({ Bucket: 'bench', Key: `obj-${c}`, Body: b }))))));
    t.s3Get = Math.min(t.s3Get, await timed(() => Promise.all(bodies.map(async (_, c) => {
      if (await crcOfObject(s3, `obj-${c}`) !== sums[c]) throw new Error(`s3 read of ${c} differs`);
    }))));
  }
  t.plainGetCpuS = await plainHttpGetCpuS(bodies.length, bodies[0]!.length, rounds);
  const small = Buffer.alloc(4096, 7);
  t.putMs = await timed(() => runWithDepth(smallOps, clients, (i) => s3.send(new PutObjectCommand({ Bucket: 'bench', Key: `small/${i % 1000}`, Body: small }))));
  t.getMs = await timed(() => runWithDepth(smallOps, clients, async (i) => {
    const out = await s3.send(new GetObjectCommand({ Bucket: 'bench', Key: `small/${i % 1000}` }));
    await out.Body!.transformToByteArray();
  }));
  t.headMs = await timed(() => runWithDepth(smallOps, clients, (i) => s3.send(new HeadObjectCommand({ Bucket: 'bench', Key: `small/${i % 1000}` }))));
  // The same through the FileSystem API, same depth: what the cluster gives a small file
  // (open, one chunk write, close; open and read; stat), which the gateway's ops build on.
  await fs.mkdir('/fsapi/small');
  t.fsWriteMs = await timed(() => runWithDepth(smallOps, clients, (i) => fs.writeFile(`/fsapi/small/${i % 1000}`, small)));
  t.fsReadMs = await timed(() => runWithDepth(smallOps, clients, (i) => fs.readFile(`/fsapi/small/${i % 1000}`)));
  t.fsStatMs = await timed(() => runWithDepth(smallOps, clients, (i) => fs.stat(`/fsapi/small/${i % 1000}`)));
  // Listing: a bucket of listKeys empty objects in one directory (made through the FileSystem
  // API), listed whole in ListObjectsV2 pages of 1000 keys, against one readdir of it.
  await s3.send(new CreateBucketCommand({ Bucket: 'listing' }));
  await runWithDepth(listKeys, clients, (i) => fs.writeFile(`/listing/key-${String(i).padStart(8, '0')}`, ''));
  t.listMs = await timed(async () => {
    let listed = 0;
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: 'listing', ContinuationToken: token }));
      listed += page.KeyCount ?? 0;
      token = page.NextContinuationToken;
    } while (token);
    if (listed !== listKeys) throw new Error(`listed ${listed} keys of ${listKeys}`);
  });
  t.fsListMs = await timed(async () => {
    const names = await fs.readdir('/listing');
    if (names.length !== listKeys) throw new Error(`readdir gave ${names.length} names of ${listKeys}`);
  });
  console.log(JSON.stringify(t));
} finally {
  s3.destroy();
  agent.destroy();
  fs.close();
}
