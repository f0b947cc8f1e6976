/**
 * fuse: the FUSE mount against the FileSystem API on the same embedded cluster, in one run.
 *  - sequential write and read of one large file with 1 MiB blocks: dd through the mount vs
 *    FileHandle.write/readAt of 1 MiB through the API (write_ratio, read_ratio = mount / API);
 *    the page cache is dropped before each read; also the API's write stream
 *    (createWriteStream, several writes in flight: stream_write_ratio);
 *  - 4 KiB random reads per second: fio (psync, O_DIRECT, 4 jobs) through the mount vs the
 *    API's FileHandle.readBatch (4 batches of --batch-reads 4 KiB reads in flight);
 *  - metadata: create+close, stat and unlink of N empty files, one at a time, through the mount
 *    (a python loop of syscalls) vs the API (awaited calls).
 * Options: --size-mib (default 1024), --files (default 500), --seconds (fio, default 5).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { startEmbedded } from '../src/cli/embedded.js';
import { connect } from '../src/fs/index.js';
import {
  MiB, dropPageCache, fmtCount, fmtGBps, gbPerSecond, intOption, machineNote, makeWorkDir, nowMs, printJson, printTable,
  round3, runForDuration,
} from './lib.js';

const exec = promisify(execFile);
const sh = async (cmd: string) => (await exec('bash', ['-c', `set -euo pipefail; ${cmd}`], { maxBuffer: 64 << 20 })).stdout;

export async function fuseBench(options: Map<string, string>): Promise<void> {
  const sizeMiB = intOption(options, 'size-mib', 1024);
  const files = intOption(options, 'files', 500);
  const seconds = intOption(options, 'seconds', 5);
  const work = await makeWorkDir('fuse');
  const mnt = join(work.dir, 'mnt');
  mkdirSync(mnt);
  const cluster = await startEmbedded({
    dataDir: join(work.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
    host: '127.0.0.1', transport: 'tcp', chainCount: 12, syncWrites: true,
  });
  // Control-plane auth is on: the API and the mount present the embedded cluster's admin token
  // (the mount reads it from the key file the cluster made, never from argv).
  const fs = await connect({ meta: cluster.meta, mgmtd: [cluster.mgmtd], transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
  const bin = resolve('build/Release/millpond-fuse');
  const tokenFile = join(work.dir, 'cluster', 'keys', 'admin.token');
  let mounted = false;
  try {
    const child = spawn(bin, [mnt, '--meta', cluster.meta, '--mgmtd', cluster.mgmtd, '--transport', 'tcp', '--token-file', tokenFile, '--server-key', cluster.serverKey, '--log', join(work.dir, 'fuse.log')], { stdio: 'inherit' });
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    if (code !== 0) throw new Error(`millpond-fuse exited with ${code}`);
    mounted = true;
    console.log(`fuse: ${sizeMiB} MiB sequential, 4 KiB random reads for ${seconds} s, ${files} files of metadata ops (${machineNote()})`);

    // ---- sequential, 1 MiB blocks
    const block = Buffer.alloc(MiB);
    for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
    let t = nowMs();
    const w = await fs.open('/api.bin', 'w');
    for (let i = 0; i < sizeMiB; i++) await w.write(block);
    await w.close();
    const apiWriteMs = nowMs() - t;
    t = nowMs(); // the same bytes through a write stream: several writes in flight
    await pipeline(Readable.from((function* () { for (let i = 0; i < sizeMiB; i++) yield block; })()), fs.createWriteStream('/api-stream.bin'));
    const apiStreamWriteMs = nowMs() - t;
    t = nowMs();
    await sh(`dd if=/dev/zero of=${mnt}/mount.bin bs=1M count=${sizeMiB} status=none`); // returns after close(2): published
    const mountWriteMs = nowMs() - t;

    await dropPageCache();
    t = nowMs();
    const r = await fs.open('/api.bin', 'r');
    for (let i = 0; i < sizeMiB; i++) await r.readAt(i * MiB, MiB);
    await r.close();
    const apiReadMs = nowMs() - t;
    await dropPageCache();
    t = nowMs();
    await sh(`dd if=${mnt}/mount.bin of=/dev/null bs=1M status=none`);
    const mountReadMs = nowMs() - t;

    // ---- 4 KiB random reads over the file
    const fio = JSON.parse(await sh(`fio --name=rr --filename=${mnt}/mount.bin --rw=randread --bs=4k --direct=1 --ioengine=psync ` +
      `--numjobs=4 --group_reporting --time_based --runtime=${seconds} --output-format=json`)) as { jobs: Array<{ read: { iops: number } }> };
    const mountIops = fio.jobs[0]!.read.iops;
    const h = await fs.open('/api.bin', 'r');
    const blocks = (sizeMiB * MiB) / 4096;
    let reads = 0;
    const started = nowMs();
    // The API's batched reads (as the issue asks): 4 batches of batchReads 4 KiB reads in flight.
    const batchReads = intOption(options, 'batch-reads', 64);
    await runForDuration(seconds * 1000, 4, async () => {
      await h.readBatch(Array.from({ length: batchReads }, () => ({ position: Math.floor(Math.random() * blocks) * 4096, length: 4096 })));
      reads += batchReads;
    });
    const apiIops = reads / ((nowMs() - started) / 1000);
    await h.close();

    // ---- metadata, one op at a time
    const py = `
import os, sys, time
d = sys.argv[1]; n = int(sys.argv[2])
os.mkdir(d)
t = time.perf_counter()
for i in range(n): os.close(os.open(f'{d}/f{i}', os.O_CREAT | os.O_WRONLY, 0o644))
c = time.perf_counter() - t; t = time.perf_counter()
for i in range(n): os.stat(f'{d}/f{i}')
s = time.perf_counter() - t; t = time.perf_counter()
for i in range(n): os.unlink(f'{d}/f{i}')
u = time.perf_counter() - t
print(n / c, n / s, n / u)`;
    // stat right after create may hit the kernel's attribute cache: wait it out between phases? No:
    // each name is new to the kernel until created, and the cache only helps the mount.
    const [mCreate, mStat, mUnlink] = (await exec('python3', ['-c', py, `${mnt}/meta`, String(files)])).stdout.trim().split(' ').map(Number) as [number, number, number];
    await fs.mkdir('/meta-api');
    t = nowMs();
    for (let i = 0; i < files; i++) await (await fs.open(`/meta-api/f${i}`, 'w')).close();
    const aCreate = files / ((nowMs() - t) / 1000);
    t = nowMs();
    for (let i = 0; i < files; i++) await fs.stat(`/meta-api/f${i}`);
    const aStat = files / ((nowMs() - t) / 1000);
    t = nowMs();
    for (let i = 0; i < files; i++) await fs.unlink(`/meta-api/f${i}`);
    const aUnlink = files / ((nowMs() - t) / 1000);

    const figures = {
      size_MiB: sizeMiB,
      mount_write_GBps: round3(gbPerSecond(sizeMiB * MiB, mountWriteMs)),
      api_write_GBps: round3(gbPerSecond(sizeMiB * MiB, apiWriteMs)),
      write_ratio: round3(apiWriteMs / mountWriteMs),
      api_stream_write_GBps: round3(gbPerSecond(sizeMiB * MiB, apiStreamWriteMs)),
      stream_write_ratio: round3(apiStreamWriteMs / mountWriteMs),
      mount_read_GBps: round3(gbPerSecond(sizeMiB * MiB, mountReadMs)),
      api_read_GBps: round3(gbPerSecond(sizeMiB * MiB, apiReadMs)),
      read_ratio: round3(apiReadMs / mountReadMs),
      iops_4k_fuse: Math.round(mountIops),
      iops_4k_api: Math.round(apiIops),
      create_per_s_fuse: Math.round(mCreate),
      create_per_s_api: Math.round(aCreate),
      stat_per_s_fuse: Math.round(mStat),
      stat_per_s_api: Math.round(aStat),
      unlink_per_s_fuse: Math.round(mUnlink),
      unlink_per_s_api: Math.round(aUnlink),
    };
    printTable('fuse vs the FileSystem API, same cluster, same run', [
      ['', 'mount', 'API', 'mount/API'],
      ['sequential write, 1 MiB blocks', fmtGBps(figures.mount_write_GBps), fmtGBps(figures.api_write_GBps), String(figures.write_ratio)],
      ['sequential write, stream (createWriteStream)', fmtGBps(figures.mount_write_GBps), fmtGBps(figures.api_stream_write_GBps), String(figures.stream_write_ratio)],
      ['sequential read, 1 MiB blocks', fmtGBps(figures.mount_read_GBps), fmtGBps(figures.api_read_GBps), String(figures.read_ratio)],
      ['4 KiB random reads/s (fio 4 jobs | readBatch)', fmtCount(mountIops), fmtCount(apiIops), String(round3(mountIops / apiIops))],
      ['create+close/s (one at a time)', fmtCount(mCreate), fmtCount(aCreate), String(round3(mCreate / aCreate))],
      ['stat/s', fmtCount(mStat), fmtCount(aStat), String(round3(mStat / aStat))],
      ['unlink/s', fmtCount(mUnlink), fmtCount(aUnlink), String(round3(mUnlink / aUnlink))],
    ]);
    printJson('fuse', figures);
  } finally {
    if (mounted) await exec('fusermount3', ['-u', mnt]).catch(() => exec('fusermount3', ['-uz', mnt]));
    fs.close();
    await cluster.stop();
    work.cleanup();
  }
}
