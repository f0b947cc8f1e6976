/**
 * memory: what touching memory costs here, the figure behind the buffer policy of
 * native/common/buffer_pool.cc and src/fs/chunk-buffers.ts. Fills --mib MiB (default 256) of
 *  - fresh 4 KiB pages (Buffer.allocUnsafeSlow: glibc's plain mmap, one fault per page),
 *  - fresh memory from allocAligned(bytes, reused) (2 MiB aligned, MADV_HUGEPAGE: one fault per huge page
 *    where transparent huge pages are on for madvised ranges),
 *  - memory already touched (the same buffer filled again: what a pool gives),
 * best of --rounds (default 5) each, the buffer collected between rounds: the first touch of
 * memory the machine never used costs the host's faults too, once per page for the life of the
 * machine; what a running process gets back from the kernel is memory used before.
 * fresh_ratio and hugepage_ratio are those against warm.
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { allocAligned } from '../src/index.js';
import { fmtGBps, gbPerSecond, intOption, machineNote, MiB, nowMs, printJson, printTable, round3 } from './lib.js';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/** The fastest of `rounds` timed fills of a buffer `make` gives, in GB/s. */
async function bestFill(bytes: number, rounds: number, make: () => Buffer): Promise<number> {
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    let buffer: Buffer | undefined = make();
    const started = nowMs();
    buffer.fill(r + 1);
    best = Math.max(best, gbPerSecond(bytes, nowMs() - started));
    buffer = undefined;
    collect(); // its memory goes back to the kernel, for the next round to fault in again
    await new Promise((resolve) => setImmediate(resolve)); // the addon's finalizers run after the collection
  }
  return best;
}

export async function memoryBench(options: Map<string, string>): Promise<void> {
  const bytes = intOption(options, 'mib', 256) * MiB;
  const rounds = intOption(options, 'rounds', 5);
  const thp = (() => {
    try { return readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').trim(); } catch { return 'unknown'; }
  })();
  const fresh = await bestFill(bytes, rounds, () => Buffer.allocUnsafeSlow(bytes));
  const huge = await bestFill(bytes, rounds, () => allocAligned(bytes, true));
  const warmBuffer = Buffer.allocUnsafeSlow(bytes);
  warmBuffer.fill(0);
  const warm = await bestFill(bytes, rounds, () => warmBuffer);
  const figures = {
    mib: bytes / MiB,
    fresh_GBps: round3(fresh), hugepage_GBps: round3(huge), warm_GBps: round3(warm),
    fresh_ratio: round3(fresh / warm), hugepage_ratio: round3(huge / warm),
  };
  printTable(`memory: filling ${bytes / MiB} MiB, best of ${rounds} (transparent huge pages: ${thp}; ${machineNote()})`, [
    ['memory', 'fill'],
    ['fresh 4 KiB pages (Buffer.allocUnsafeSlow)', fmtGBps(figures.fresh_GBps)],
    ['fresh, huge-page advised (allocAligned)', fmtGBps(figures.hugepage_GBps)],
    ['already touched (reused)', fmtGBps(figures.warm_GBps)],
  ]);
  console.log(`fresh / warm: ${figures.fresh_ratio}; huge-page advised / warm: ${figures.hugepage_ratio}`);
  printJson('memory', figures);
}
