/**
 * chunkstore: 4 MiB chunk writes and reads through ChunkStore against dd with O_DIRECT on the
 * same disk, in the same run. The headline uses the store's defaults (directIo, syncWrites:
 * every chunk is fdatasynced with its directory); syncWrites:false is reported beside it, and
 * dd with oflag=direct,dsync is the baseline that also waits for the device per block.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { allocAligned, ChunkStore } from '../src/index.js';
import {
  dropPageCache, fmtGBps, gbPerSecond, GiB, intOption, machineNote, makeWorkDir, median, MiB, nowMs, printJson,
  printTable, round3, runDd, runWithDepth,
} from './lib.js';

const chunkBytes = 4 * MiB;

export async function chunkstoreBench(options: Map<string, string>): Promise<void> {
  const totalBytes = intOption(options, 'total-mib', 1024) * MiB;
  const depth = intOption(options, 'depth', 8);
  const rounds = intOption(options, 'rounds', 3);
  const chunkCount = Math.floor(totalBytes / chunkBytes);
  const { dir, cleanup } = await makeWorkDir('chunkstore');
  try {
    console.log(`chunkstore: ${chunkCount} chunks x 4 MiB (${(chunkCount * chunkBytes / GiB).toFixed(2)} GiB), ` +
      `${depth} operations in flight, median of ${rounds} rounds, scratch ${dir}`);
    console.log(machineNote());

    // Distinct random content per buffer: a zero page could flatter a compressing device.
    const buffers = Array.from({ length: depth }, () => {
      const b = allocAligned(chunkBytes, true);
      for (let i = 0; i < chunkBytes; i += 4) b.writeUInt32LE((Math.random() * 0x1_0000_0000) >>> 0, i);
      return b;
    });

    const targets = Array.from({ length: depth }, () => allocAligned(chunkBytes, true));
    const total = chunkCount * chunkBytes;
    const ddArgs = [`bs=4M`, `count=${chunkCount}`];
    const gbps = (durationMs: number) => gbPerSecond(total, durationMs);

    const writeStore = async (storeDir: string, syncWrites: boolean, inFlight: number): Promise<number> => {
      const store = await ChunkStore.open(storeDir, { directIo: true, syncWrites });
      if (!store.usage().directIo) console.log('note: the filesystem refused O_DIRECT; the store fell back to buffered I/O');
      const start = nowMs();
      await runWithDepth(chunkCount, inFlight, (i, slot) => store.write({ inode: 1n, index: i }, 0, buffers[slot]));
      const durationMs = nowMs() - start;
      store.close();
      return durationMs;
    };
    // Reads land in aligned targets, so the store takes its O_DIRECT path; the cache is
    // dropped anyway so a buffered fallback is measured cold too.
    const readStore = async (storeDir: string, inFlight: number): Promise<number> => {
      const store = await ChunkStore.open(storeDir, { directIo: true });
      await dropPageCache();
      const start = nowMs();
      await runWithDepth(chunkCount, inFlight, async (i, slot) => {
        const { data } = await store.read({ inode: 1n, index: i }, 0, chunkBytes, { target: targets[slot] });
        if (data.length !== chunkBytes) throw new Error(`chunk ${i}: read ${data.length} bytes`);
      });
      const durationMs = nowMs() - start;
      store.close();
      return durationMs;
    };

    // The virtio disk's speed drifts with the host's load by 2x within a minute, so each
    // figure is the median of rounds that interleave millpond and dd.
    const samples: Record<string, number[]> = {};
    const add = (key: string, value: number) => (samples[key] ??= []).push(value);
    for (let round = 0; round < rounds; round++) {
      const roundDir = join(dir, `round-${round}`);
      mkdirSync(roundDir);
      const ddFile = join(roundDir, 'dd.bin');
      await dropPageCache();
      add('dd_write_GBps', (await runDd(['if=/dev/zero', `of=${ddFile}`, ...ddArgs, 'oflag=direct'])).bytesPerSecond / 1e9);
      add('write_GBps', gbps(await writeStore(join(roundDir, 'store'), true, depth)));
      add('dd_write_dsync_GBps', (await runDd(['if=/dev/zero', `of=${join(roundDir, 'dd-dsync.bin')}`, ...ddArgs, 'oflag=direct,dsync'])).bytesPerSecond / 1e9);
      add('write_nosync_GBps', gbps(await writeStore(join(roundDir, 'store-nosync'), false, depth)));
      // One in flight, as dd does: shows how much of the lead is concurrency alone.
      add('write_depth1_GBps', gbps(await writeStore(join(roundDir, 'store-depth1'), true, 1)));
      await dropPageCache();
      add('dd_read_GBps', (await runDd([`if=${ddFile}`, 'of=/dev/null', ...ddArgs, 'iflag=direct'])).bytesPerSecond / 1e9);
      add('read_GBps', gbps(await readStore(join(roundDir, 'store'), depth)));
      add('read_depth1_GBps', gbps(await readStore(join(roundDir, 'store'), 1)));
      rmSync(roundDir, { recursive: true, force: true });
    }
    const middle = (key: string) => round3(median(samples[key]));
    const figures = {
      write_GBps: middle('write_GBps'),
      write_nosync_GBps: middle('write_nosync_GBps'),
      dd_write_GBps: middle('dd_write_GBps'),
      dd_write_dsync_GBps: middle('dd_write_dsync_GBps'),
      write_depth1_GBps: middle('write_depth1_GBps'),
      read_GBps: middle('read_GBps'),
      read_depth1_GBps: middle('read_depth1_GBps'),
      dd_read_GBps: middle('dd_read_GBps'),
    };
    console.log('\nrounds (GB/s):');
    for (const [key, values] of Object.entries(samples)) console.log(`  ${key.padEnd(20)} ${values.map((v) => v.toFixed(3)).join('  ')}`);
    const ratio = (a: number, b: number) => (a / b).toFixed(2);
    printTable('4 MiB chunks, O_DIRECT, medians (GB/s = 1e9 bytes/s)', [
      ['operation', 'millpond', 'dd', 'millpond/dd'],
      ['write (syncWrites, default)', fmtGBps(figures.write_GBps), fmtGBps(figures.dd_write_GBps), ratio(figures.write_GBps, figures.dd_write_GBps)],
      ['write (syncWrites:false)', fmtGBps(figures.write_nosync_GBps), fmtGBps(figures.dd_write_GBps), ratio(figures.write_nosync_GBps, figures.dd_write_GBps)],
      ['write vs dd oflag=direct,dsync', fmtGBps(figures.write_GBps), fmtGBps(figures.dd_write_dsync_GBps), ratio(figures.write_GBps, figures.dd_write_dsync_GBps)],
      ['write (syncWrites, 1 in flight)', fmtGBps(figures.write_depth1_GBps), fmtGBps(figures.dd_write_GBps), ratio(figures.write_depth1_GBps, figures.dd_write_GBps)],
      ['read (cold cache)', fmtGBps(figures.read_GBps), fmtGBps(figures.dd_read_GBps), ratio(figures.read_GBps, figures.dd_read_GBps)],
      ['read (cold cache, 1 in flight)', fmtGBps(figures.read_depth1_GBps), fmtGBps(figures.dd_read_GBps), ratio(figures.read_depth1_GBps, figures.dd_read_GBps)],
    ]);
    console.log(`\nmillpond: ${depth} in flight on libuv's pool; dd: one 4 MiB block at a time.`);
    printJson('chunkstore', { chunks: chunkCount, depth, rounds, ...figures });
  } finally {
    cleanup();
  }
}
