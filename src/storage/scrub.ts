/**
 * Scrubbing: re-reads every committed chunk of a target (checksums are verified on every
 * read) at a bounded rate, and replaces a chunk that fails with a serving replica's copy.
 */
import type { ChunkClient } from '../chunk/chunk-client.js';
import type { ChunkStore } from '../chunk/chunk-store.js';
import { MillpondError } from '../errors.js';
import { clusterLimits } from '../limits.js';
import type { ChunkListEntry } from '../native/binding.js';
import { install, readWhole } from './copy.js';
import { logger } from '../log.js';

export interface ScrubStats {
  checked: number;
  corrupt: number;
  repaired: number;
  /** Corrupt chunks no replica could repair (yet). */
  unrepaired: number;
}

export interface ScrubOptions {
  store: ChunkStore;
  client: ChunkClient;
  /** Data addresses of serving replicas that may hold the chunk (asked in order). */
  replicas: () => string[];
  bytesPerSec?: number;
  cancelled?: () => boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function scrub(o: ScrubOptions): Promise<ScrubStats> {
  const stats: ScrubStats = { checked: 0, corrupt: 0, repaired: 0, unrepaired: 0 };
  const bytesPerSec = o.bytesPerSec ?? clusterLimits.scrubBytesPerSecDefault;
  const startedMs = Date.now();
  let bytes = 0;
  let after: ChunkListEntry['chunk'] | undefined;
  for (;;) {
    if (o.cancelled?.()) break;
    const page = await o.store.list({ after, limit: clusterLimits.scrubListPage });
    for (const e of page) {
      if (o.cancelled?.()) break;
      if (e.meta.commitVersion === 0 && !e.corrupt) continue; // only a pending version: a write in flight
      stats.checked++;
      let bad = e.corrupt;
      if (!bad) {
        try {
          await o.store.read(e.chunk, 0, e.meta.length);
          bytes += e.meta.length;
        } catch (err) {
          if (!(err instanceof MillpondError) || err.code !== 'ECHUNK_CORRUPT') continue; // removed or rewritten meanwhile
          bad = true;
        }
      }
      if (bad) {
        stats.corrupt++;
        if (await repair(o, e)) stats.repaired++;
        else stats.unrepaired++;
      }
      // Rate bound: never ahead of bytesPerSec since the start.
      const aheadMs = (bytes / bytesPerSec) * 1000 - (Date.now() - startedMs);
      if (aheadMs > 0) await sleep(aheadMs);
    }
    if (page.length < clusterLimits.scrubListPage) break;
    after = page.at(-1)!.chunk;
  }
  return stats;
}

async function repair(o: ScrubOptions, e: ChunkListEntry): Promise<boolean> {
  for (const address of o.replicas()) {
    try {
      const got = await readWhole(o.client, address, e.chunk, Math.max(e.meta.length, 1));
      // The local tag (0 when the header is damaged): a repair keeps the chunk's chain.
      await install(o.store, e.chunk, got.data, got.meta, { force: true, chainId: e.chainId });
      return true;
    } catch (err) {
      logger('storage').warn(`scrub: repairing chunk ${e.chunk.inode}:${e.chunk.index} from ${address}: ${(err as Error).message}`);
    }
  }
  return false;
}
