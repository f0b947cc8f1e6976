/**
 * chunkstore: 4 MiB chunk writes and reads through ChunkStore against dd with O_DIRECT on the
 * same disk, in the same run. The headline uses the store's defaults (directIo, syncWrites:
 * every chunk is fdatasynced with its directory); syncWrites:false is reported beside it, and
 * dd with oflag=direct,dsync is the baseline that also waits for the device per block.
 */
import { join } from 'node:path';
import { allocAligned, ChunkStore } from '../src/index.js';
import {
  dropPageCache, fmtGBps, gbPerSecond, GiB, intOption, machineNote, MiB, makeWorkDir, nowMs, printJson,
  printTable, round3, runDd, runWithDepth,
} from './lib.js';

const chunkBytes = 4 * MiB;

export async function chunkstoreBench(options: Map<string, string>): Promise<void> {
  const totalBytes = intOption(options, 'total-mib', 2048) * MiB;
  const depth = intOption(options, 'depth', 8);
  const chunkCount = Math.floor(totalBytes / chunkBytes);
  const { dir, cleanup } = await makeWorkDir('chunkstore');
  try {
    console.log(`chunkstore: ${chunkCount} chunks x 4 MiB (${(chunkCount * chunkBytes / GiB).toFixed(2)} GiB), ` +
      `${depth} operations in flight, scratch ${dir}`);
    console.log(machineNote());

    // Distinct random content per buffer: a zero page could flatter a compressing device.
    const buffers = Array.from({ length: depth }, () => {
      const b = allocAligned(chunkBytes);
      for (let i = 0; i < chunkBytes; i += 4) b.writeUInt32LE((Math.random() * 0x1_0000_0000) >>> 0, i);
      return b;
    });

    const ddFile = join(dir, 'dd.bin');
    const ddArgs = [`bs=4M`, `count=${chunkCount}`];
    await dropPageCache();
    const ddWrite = await runDd(['if=/dev/zero', `of=${ddFile}`, ...ddArgs, 'oflag=direct']);
    const ddWriteDsync = await runDd(['if=/dev/zero', `of=${join(dir, 'dd-dsync.bin')}`, ...ddArgs, 'oflag=direct,dsync']);

    const writeStore = async (storeDir: string, syncWrites: boolean, inFlight: number) => {
      const store = await ChunkStore.open(storeDir, { directIo: true, syncWrites });
      const start = nowMs();
      await runWithDepth(chunkCount, inFlight, (i, slot) => store.write({ inode: 1n, index: i }, 0, buffers[slot]));
      return { store, durationMs: nowMs() - start };
    };
    // One in flight, as dd does: shows how much of the lead is concurrency alone.
    const serial = await writeStore(join(dir, 'store-serial'), true, 1);
    serial.store.close();
    const nosync = await writeStore(join(dir, 'store-nosync'), false, depth);
    nosync.store.close();
    const synced = await writeStore(join(dir, 'store'), true, depth);
    const store = synced.store;
    const usage = store.usage();
    if (!usage.directIo) console.log('note: the filesystem refused O_DIRECT; the store fell back to buffered I/O');

    // Reads land in aligned targets, so the store takes its O_DIRECT path; the cache is
    // dropped anyway so buffered fallbacks are measured cold too.
    await dropPageCache();
    const ddRead = await runDd([`if=${ddFile}`, 'of=/dev/null', ...ddArgs, 'iflag=direct']);
    const targets = Array.from({ length: depth }, () => allocAligned(chunkBytes));
    const readAll = async (inFlight: number): Promise<number> => {
      await dropPageCache();
      const start = nowMs();
      await runWithDepth(chunkCount, inFlight, async (i, slot) => {
        const { data } = await store.read({ inode: 1n, index: i }, 0, chunkBytes, { target: targets[slot] });
        if (data.length !== chunkBytes) throw new Error(`chunk ${i}: read ${data.length} bytes`);
      });
      return nowMs() - start;
    };
    const readMs = await readAll(depth);
    const readSerialMs = await readAll(1);
    store.close();

    const total = chunkCount * chunkBytes;
    const figures = {
      write_GBps: round3(gbPerSecond(total, synced.durationMs)),
      write_nosync_GBps: round3(gbPerSecond(total, nosync.durationMs)),
      dd_write_GBps: round3(ddWrite.bytesPerSecond / 1e9),
      dd_write_dsync_GBps: round3(ddWriteDsync.bytesPerSecond / 1e9),
      write_depth1_GBps: round3(gbPerSecond(total, serial.durationMs)),
      read_GBps: round3(gbPerSecond(total, readMs)),
      read_depth1_GBps: round3(gbPerSecond(total, readSerialMs)),
      dd_read_GBps: round3(ddRead.bytesPerSecond / 1e9),
    };
    const ratio = (a: number, b: number) => (a / b).toFixed(2);
    printTable('4 MiB chunks, O_DIRECT (GB/s = 1e9 bytes/s)', [
      ['operation', 'millpond', 'dd', 'millpond/dd'],
      ['write (syncWrites, default)', fmtGBps(figures.write_GBps), fmtGBps(figures.dd_write_GBps), ratio(figures.write_GBps, figures.dd_write_GBps)],
      ['write (syncWrites:false)', fmtGBps(figures.write_nosync_GBps), fmtGBps(figures.dd_write_GBps), ratio(figures.write_nosync_GBps, figures.dd_write_GBps)],
      ['write vs dd oflag=direct,dsync', fmtGBps(figures.write_GBps), fmtGBps(figures.dd_write_dsync_GBps), ratio(figures.write_GBps, figures.dd_write_dsync_GBps)],
      ['write (syncWrites, 1 in flight)', fmtGBps(figures.write_depth1_GBps), fmtGBps(figures.dd_write_GBps), ratio(figures.write_depth1_GBps, figures.dd_write_GBps)],
      ['read (cold cache)', fmtGBps(figures.read_GBps), fmtGBps(figures.dd_read_GBps), ratio(figures.read_GBps, figures.dd_read_GBps)],
      ['read (cold cache, 1 in flight)', fmtGBps(figures.read_depth1_GBps), fmtGBps(figures.dd_read_GBps), ratio(figures.read_depth1_GBps, figures.dd_read_GBps)],
    ]);
    console.log(`\nmillpond: ${depth} in flight on libuv's pool; dd: one 4 MiB block at a time.`);
    printJson('chunkstore', { chunks: chunkCount, depth, ...figures });
  } finally {
    cleanup();
  }
}
