/**
 * cluster-io: the embedded default (`millpond up`'s cluster: mgmtd, meta on SQLite, three
 * storage targets, chains of three replicas) on this machine; one client writes a file
 * striped over the chains, then reads it back, through the FileSystem API. Beside it, in the
 * same run: iperf3 (one TCP stream) and dd with O_DIRECT on the same disk, writing and then
 * reading (page cache dropped): write_dd3_ratio = write / (dd write / 3), the ceiling of three
 * replicas on one disk, and read_dd_ratio = read / dd read. The dd of write_dd3_ratio writes
 * what the replicated write puts on the disk (3 x the file's bytes) right before each round's
 * write, and the ratio is the median of the rounds' (this VM's disk drifts from 1.0 to 2.3 GB/s
 * between minutes, and a dd of a third of the bytes runs faster: 1.1-1.6 GB/s for 512 MiB
 * against 0.98-1.4 for 1.5 GiB, alternating); the dd once after the rounds, of the file's
 * bytes, is write_dd3_once_ratio. The client uses millpond's default
 * transport (auto: on a host with the file's targets it reads their chunk files through
 * descriptors the storage daemon hands it, short-circuit, as HDFS does); read_tcp_GBps is the
 * same read with every byte through the TCP data plane (a client on another host), auth on.
 * Two more baselines, as the chunk store must use the disk: dd writes that reach the disk
 * before they return (oflag=direct,dsync; CHUNKS_AT_ONCE writers, as chunks are in flight at
 * once), since every chunk write is fdatasynced and plain dd's are not
 * (write_dd3_sync_ratio); and O_DIRECT reads of the chunk files of one target, a file per
 * chunk as the store keeps them, CHUNKS_AT_ONCE at a time (read_chunk_files_ratio).
 */
import { open, readdir, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { startEmbedded } from '../src/cli/embedded.js';
import { connect, type FileSystem } from '../src/fs/index.js';
import { allocAligned, crc32c } from '../src/index.js';
import {
  dropPageCache, fmtGBps, freePort, gbPerSecond, GiB, intOption, machineNote, makeWorkDir, median, MiB, nowMs,
  printJson, printTable, round3, runDd, runIperf3,
} from './lib.js';

/** Chunk requests a client keeps in flight by default (kFileChunksInflightDefault). */
const CHUNKS_AT_ONCE = 8;

/** Every file under `dir` (the chunk files of one target). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

/** Reads `files` whole with O_DIRECT, `atOnce` at a time; bytes per second. */
async function readDirect(files: string[], atOnce: number): Promise<number> {
  let next = 0;
  let bytes = 0;
  const started = nowMs();
  await Promise.all(Array.from({ length: atOnce }, async () => {
    const buffer = allocAligned(8 * MiB, true);
    for (let i = next++; i < files.length; i = next++) {
      const fh = await open(files[i]!, constants.O_RDONLY | constants.O_DIRECT);
      try {
        for (;;) {
          const { bytesRead } = await fh.read(buffer, 0, buffer.length, null);
          bytes += bytesRead;
          if (bytesRead < buffer.length) break;
        }
      } finally {
        await fh.close();
      }
    }
  }));
  return bytes / ((nowMs() - started) / 1000);
}

/** `writers` dd processes at once, each writing `count` 4 MiB blocks that reach the disk before dd goes on. */
async function ddSyncWrites(dir: string, writers: number, count: number): Promise<number> {
  const started = nowMs();
  const results = await Promise.all(Array.from({ length: writers }, (_, i) =>
    runDd(['if=/dev/zero', `of=${join(dir, `dd-sync-${i}.bin`)}`, 'bs=4M', `count=${count}`, 'oflag=direct,dsync'])));
  return results.reduce((sum, r) => sum + r.bytes, 0) / ((nowMs() - started) / 1000);
}

export async function clusterIoBench(options: Map<string, string>): Promise<void> {
  const sizeMiB = intOption(options, 'size-mib', 2048);
  const pieceMiB = intOption(options, 'piece-mib', 64); // bytes handed to one write()/read() call
  const transport = (options.get('transport') ?? 'auto') as 'tcp' | 'rdma' | 'auto';
  const rounds = intOption(options, 'rounds', 3);
  const work = await makeWorkDir('cluster-io');
  try {
    // The same file written and read on a cluster with authentication (tokens, CURVE,
    // capabilities checked on every chunk request) and on an insecure one, in this run.
    const piece = Buffer.alloc(pieceMiB * MiB);
    // Reads land in two reused buffers, as dd's land in one: a fresh buffer per read measures
    // the machine's page faults (on this VM, first-touch memory fills at ~0.3 GB/s), not
    // millpond. Two, so the check of one piece overlaps the read of the next, as a reader
    // that processes what it reads would (dd checks nothing).
    const into = [allocAligned(pieceMiB * MiB, true), allocAligned(pieceMiB * MiB, true)];
    for (let i = 0; i < piece.length; i += 4) piece.writeUInt32LE((i * 2654435761) >>> 0, i);
    const pieces = Math.ceil(sizeMiB / pieceMiB);
    const bytes = pieces * piece.length;
    // Rounds alternate which goes first (the shared cores drift); each figure is the median.
    const timings = new Map<boolean, { writeMs: number[]; readMs: number[] }>([[true, { writeMs: [], readMs: [] }], [false, { writeMs: [], readMs: [] }]]);
    const tcpReadMs: number[] = [];
    /** Per auth-on round: dd's rate writing 3 x `bytes` just before that round's write. */
    const ddRoundBps: number[] = [];
    const ddReplicatedFile = join(work.dir, 'dd-replicated.bin');
    let chunkFilesDir = '';
    /** Reads the file back cold (page cache dropped), checking every piece; ms. */
    const readBack = async (fs: FileSystem): Promise<number> => {
      await dropPageCache();
      const reader = await fs.open('/bench.bin', 'r');
      const expected = crc32c(piece);
      const started = nowMs();
      let reading = reader.readInto(into[0]!, 0);
      for (let i = 0; i < pieces; i++) {
        await reading;
        if (i + 1 < pieces) reading = reader.readInto(into[(i + 1) % 2]!, (i + 1) * piece.length);
        if (crc32c(into[i % 2]!) !== expected) throw new Error(`piece ${i} read back different bytes`);
      }
      const ms = nowMs() - started;
      await reader.close();
      return ms;
    };
    for (let round = 0; round < rounds; round++) for (const auth of round % 2 === 0 ? [true, false] : [false, true]) {
      const dataDir = join(work.dir, `cluster-${round}-${auth ? 'auth' : 'noauth'}`);
      if (auth) {
        const dd = await runDd(['if=/dev/zero', `of=${ddReplicatedFile}`, 'bs=4M', `count=${Math.max(1, Math.floor((3 * bytes) / (4 * MiB)))}`, 'oflag=direct']);
        await rm(ddReplicatedFile, { force: true });
        ddRoundBps.push(dd.bytesPerSecond);
      }
      chunkFilesDir = dataDir;
      const cluster = await startEmbedded({
        dataDir, mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
        host: '127.0.0.1', transport, chainCount: 12, syncWrites: true, insecure: !auth,
      });
      const fs = await connect({
        meta: cluster.meta, mgmtd: [cluster.mgmtd], transport, ...(auth ? { token: cluster.adminToken, serverKey: cluster.serverKey } : {}),
      });
      try {
        const handle = await fs.open('/bench.bin', 'w');
        const started = nowMs();
        for (let i = 0; i < pieces; i++) await handle.write(piece);
        await handle.close();
        const writeMs = nowMs() - started;

        const readMs = await readBack(fs);
        if (auth && transport !== 'tcp') {
          const overTcp = await connect({ meta: cluster.meta, mgmtd: [cluster.mgmtd], transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
          try {
            tcpReadMs.push(await readBack(overTcp));
          } finally {
            overTcp.close();
          }
        }
        timings.get(auth)!.writeMs.push(writeMs);
        timings.get(auth)!.readMs.push(readMs);
      } finally {
        fs.close();
        await cluster.stop();
      }
    }
    const writeMs = median(timings.get(true)!.writeMs);
    const readMs = median(timings.get(true)!.readMs);
    const noauth = { writeMs: median(timings.get(false)!.writeMs), readMs: median(timings.get(false)!.readMs) };
    /** Each auth-on round's write against a third of its dd (the replicated bytes, that round). */
    const roundRatios = timings.get(true)!.writeMs.map((ms, i) => gbPerSecond(bytes, ms) / (ddRoundBps[i]! / 1e9 / 3));

    const iperf3 = (await runIperf3(await freePort(), 5)) / 1e9;
    const ddFile = join(work.dir, 'dd.bin');
    const ddCount = Math.max(1, Math.floor(Math.min(bytes, 2 * GiB) / (4 * MiB)));
    const dd = await runDd(['if=/dev/zero', `of=${ddFile}`, 'bs=4M', `count=${ddCount}`, 'oflag=direct']);
    await dropPageCache();
    const ddRead = await runDd([`if=${ddFile}`, 'of=/dev/null', 'bs=4M', 'iflag=direct']);
    const ddSync = await ddSyncWrites(work.dir, CHUNKS_AT_ONCE, Math.max(1, Math.floor(ddCount / CHUNKS_AT_ONCE)));
    // Every target of the last cluster holds every chunk (12 chains of 3 over 3 targets): one
    // target's chunk files are the file's bytes once, as the store keeps them.
    const targetDir = (await filesUnder(chunkFilesDir)).find((f) => /\/target-\d+\/chunks\//.test(f))?.replace(/(\/target-\d+\/chunks)\/.*$/, '$1');
    if (!targetDir) throw new Error(`no chunk files under ${chunkFilesDir}`);
    await dropPageCache();
    const chunkFilesRead = await readDirect(await filesUnder(targetDir), CHUNKS_AT_ONCE);

    const figures = {
      size_MiB: pieces * pieceMiB,
      rounds,
      replicas: 3,
      transport,
      write_GBps: round3(gbPerSecond(bytes, writeMs)),
      read_GBps: round3(gbPerSecond(bytes, readMs)),
      write_noauth_GBps: round3(gbPerSecond(bytes, noauth.writeMs)),
      read_noauth_GBps: round3(gbPerSecond(bytes, noauth.readMs)),
      ...(tcpReadMs.length > 0 ? { read_tcp_GBps: round3(gbPerSecond(bytes, median(tcpReadMs))) } : {}),
      write_auth_ratio: round3(noauth.writeMs / writeMs),
      read_auth_ratio: round3(noauth.readMs / readMs),
      iperf3_GBps: round3(iperf3),
      dd_write_GBps: round3(dd.bytesPerSecond / 1e9),
      dd_replicated_write_GBps: round3(median(ddRoundBps) / 1e9),
      dd_read_GBps: round3(ddRead.bytesPerSecond / 1e9),
      /**
       * The aims: a 3-replica write against a third of dd's writing the same bytes to the disk
       * that round (median of the rounds), a cold read against dd's O_DIRECT read.
       */
      write_dd3_ratio: round3(median(roundRatios)),
      write_dd3_once_ratio: round3(gbPerSecond(bytes, writeMs) / (dd.bytesPerSecond / 1e9 / 3)),
      read_dd_ratio: round3(gbPerSecond(bytes, readMs) / (ddRead.bytesPerSecond / 1e9)),
      dd_sync_write_GBps: round3(ddSync / 1e9),
      chunk_files_read_GBps: round3(chunkFilesRead / 1e9),
      /** The same against the disk as the chunk store must use it: synced writes, a file per chunk. */
      write_dd3_sync_ratio: round3(gbPerSecond(bytes, writeMs) / (ddSync / 1e9 / 3)),
      read_chunk_files_ratio: round3(gbPerSecond(bytes, readMs) / (chunkFilesRead / 1e9)),
      ...(tcpReadMs.length > 0 ? { read_tcp_dd_ratio: round3(gbPerSecond(bytes, median(tcpReadMs)) / (ddRead.bytesPerSecond / 1e9)) } : {}),
    };
    printTable(`cluster-io: one client, a ${figures.size_MiB} MiB file over 12 chains of 3 replicas, transport ${transport} (${machineNote()})`, [
      ['path', 'GB/s'],
      ['millpond write (3 replicas, fdatasync per chunk), auth on', fmtGBps(figures.write_GBps)],
      ['millpond write, auth off', fmtGBps(figures.write_noauth_GBps)],
      ['millpond read (page cache dropped, checksums verified), auth on', fmtGBps(figures.read_GBps)],
      ['millpond read, auth off', fmtGBps(figures.read_noauth_GBps)],
      ...(figures.read_tcp_GBps !== undefined ? [['millpond read over the TCP data plane (no short-circuit), auth on', fmtGBps(figures.read_tcp_GBps)]] : []),
      ['iperf3, one TCP stream', fmtGBps(figures.iperf3_GBps)],
      ['dd O_DIRECT write, 4 MiB blocks', fmtGBps(figures.dd_write_GBps)],
      ['dd O_DIRECT write of 3 x the file before each write, median', fmtGBps(figures.dd_replicated_write_GBps)],
      ['dd O_DIRECT read, 4 MiB blocks', fmtGBps(figures.dd_read_GBps)],
      [`dd O_DIRECT+dsync write, 4 MiB blocks, ${CHUNKS_AT_ONCE} writers`, fmtGBps(figures.dd_sync_write_GBps)],
      [`O_DIRECT read of one target's chunk files, ${CHUNKS_AT_ONCE} at once`, fmtGBps(figures.chunk_files_read_GBps)],
    ]);
    console.log('\nA write crosses loopback three times (client -> head -> middle -> tail) and lands on the one disk three times,');
    console.log('so on one machine its ceiling is about dd/3; reads come from one replica.');
    console.log(`auth on / off: write ${figures.write_auth_ratio}, read ${figures.read_auth_ratio}`);
    console.log(`write / (dd write of 3 x the file that round / 3), median of rounds: ${figures.write_dd3_ratio} ` +
      `(rounds: ${roundRatios.map((r) => r.toFixed(3)).join(' ')}); ` +
      `against the dd once after the rounds: ${figures.write_dd3_once_ratio}`);
    console.log(`read / dd read: ${figures.read_dd_ratio}`);
    console.log(`write / (dd dsync write / 3): ${figures.write_dd3_sync_ratio}; read / chunk files read: ${figures.read_chunk_files_ratio}`);
    if (figures.read_tcp_dd_ratio !== undefined) console.log(`read over TCP / dd read: ${figures.read_tcp_dd_ratio} (rounds: ${tcpReadMs.map((ms) => gbPerSecond(bytes, ms).toFixed(3)).join(' ')} GB/s)`);
    for (const auth of [true, false]) {
      const t = timings.get(auth)!;
      console.log(`  rounds, auth ${auth ? 'on ' : 'off'} (GB/s): write ${t.writeMs.map((ms) => gbPerSecond(bytes, ms).toFixed(3)).join(' ')}; ` +
        `read ${t.readMs.map((ms) => gbPerSecond(bytes, ms).toFixed(3)).join(' ')}`);
    }
    printJson('cluster-io', figures);
  } finally {
    work.cleanup();
  }
}
