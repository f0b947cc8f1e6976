/**
 * Background removal of the chunks of unlinked files (design §5): takes files from meta's
 * garbage queue (leased to this collector, so the collectors of several meta servers share the
 * queue rather than repeat each other), removes their chunks from every replica of the chains
 * they striped over, then acknowledges them. A replica that is down keeps its copies until it returns: resync
 * drops chunks that no serving source has.
 */
import type { RoutingClient } from '../cluster/routing-client.js';
import { mapLimited } from '../concurrency.js';
import { MillpondError } from '../errors.js';
import { clusterLimits, limits } from '../limits.js';
import type { FileLayout, Garbage } from '../protocol/meta-types.js';
import { resolveFileChains } from '../fs/file-chains.js';
import { chainOfChunk } from '../fs/layout.js';

/** What the collector needs of the metadata service (a MetaClient or a MetaService). */
export interface GarbageSource {
  takeGarbage(limit: number): Promise<Garbage[]>;
  ackGarbage(inodes: bigint[]): Promise<void>;
}

export interface GarbageStats {
  files: number;
  chunksRemoved: number;
}

/**
 * Removes the chunks of the files now in the queue (one pass); returns what it did. Every
 * reachable target is asked for the inode's chunks, whatever the file's recorded length says:
 * a write that failed half-way or a shrink can leave chunks past it.
 */
export async function collectGarbage(meta: GarbageSource, routing: RoutingClient): Promise<GarbageStats> {
  const stats: GarbageStats = { files: 0, chunksRemoved: 0 };
  const files = await meta.takeGarbage(clusterLimits.garbageBatch);
  if (files.length === 0) return stats;
  const { targets } = await routing.refresh();
  const live = targets.filter((t) => t.state === 'serving' || t.state === 'syncing');
  const done: bigint[] = [];
  // Files and targets at once (clusterLimits.garbageFilesInFlight files): removals are independent.
  await mapLimited(files, clusterLimits.garbageFilesInFlight, async (file) => {
    const removed = await Promise.all(live.map((target) => removeInodeChunks(routing, target.dataAddress, file.inode).catch(() => undefined)));
    for (const n of removed) stats.chunksRemoved += n ?? 0;
    if (removed.every((n) => n !== undefined)) done.push(file.inode); // else again on a later pass
  });
  if (done.length > 0) await meta.ackGarbage(done);
  stats.files = done.length;
  return stats;
}

/**
 * Makes a file's chunks end at `length` (a shrink, design §5): removes every chunk of `inode`
 * from index ceil(length / chunkSize) on, from every reachable replica (a replica that is down
 * drops them at resync: no serving source has them), then cuts the chunk holding the new end
 * to its bytes before it with a chain write (every replica, in chain order). Afterwards a
 * write past the end or a truncate up reads zeros between, as POSIX says. Idempotent.
 */
export async function trimChunks(routing: RoutingClient, inode: bigint, layout: FileLayout, length: number): Promise<number> {
  const { chunkSizeBytes } = layout;
  const keep = length % chunkSizeBytes;
  const cutIndex = Math.floor(length / chunkSizeBytes);
  const firstGone = keep === 0 ? cutIndex : cutIndex + 1;
  const { targets } = await routing.refresh();
  let removed = 0;
  for (const target of targets.filter((t) => t.state === 'serving' || t.state === 'syncing')) {
    removed += await removeInodeChunks(routing, target.dataAddress, inode, firstGone);
  }
  if (keep === 0) return removed;
  const chain = chainOfChunk(await resolveFileChains(routing, inode, layout), cutIndex);
  const chunk = { inode, index: cutIndex };
  let head: Buffer;
  try {
    head = (await routing.readChunk(chain, chunk, 0, keep + 1)).data; // one byte more: is it longer?
  } catch (err) {
    if (err instanceof MillpondError && err.code === 'ENOENT') return removed; // a hole: nothing to cut
    throw err;
  }
  if (head.length > keep) await routing.writeChunk(chain, chunk, 0, Buffer.from(head.subarray(0, keep)), { replace: true, chunkSizeBytes });
  return removed;
}

/**
 * Removes every chunk of `inode` with index >= fromIndex on one target; returns how many.
 * A listing runs on past the inode's chunks into the next inodes' up to its limit, so pages
 * start small (clusterLimits.garbageListPageFirst) and double: a small file costs a short
 * listing, not a page of other files' chunks (which made each file cost a full page per target).
 */
async function removeInodeChunks(routing: RoutingClient, address: string, inode: bigint, fromIndex = 0): Promise<number> {
  let removed = 0;
  // Chunk ids sort by (inode, index): the inode's chunks follow the last id of inode - 1.
  let after = fromIndex === 0 ? { inode: inode - 1n, index: 0xffff_ffff } : { inode, index: fromIndex - 1 };
  let limit: number = clusterLimits.garbageListPageFirst;
  for (;; limit = Math.min(2 * limit, limits.listReplyEntriesMax)) {
    const page = await routing.chunks.list(address, { after, limit });
    const mine = page.filter((e) => e.chunk.inode === inode);
    for (const e of mine) {
      try {
        await routing.chunks.remove(address, e.chunk);
        removed++;
      } catch (err) {
        if (!(err instanceof MillpondError && err.code === 'ENOENT')) throw err;
      }
    }
    if (mine.length < page.length || page.length === 0) return removed;
    after = mine.at(-1)!.chunk;
  }
}

/**
 * Runs collectGarbage passes until the returned stop() is called: `intervalMs` after a pass
 * that found the queue short (or failed), and at once after a full batch, so the collector
 * keeps up with files unlinked faster than clusterLimits.garbageBatch per interval (a backlog
 * drains pass after pass instead of at one batch per interval).
 */
export function startGarbageCollector(meta: GarbageSource, routing: RoutingClient,
  intervalMs: number = clusterLimits.garbageIntervalMsDefault): { stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      running = collectGarbage(meta, routing).then(
        (stats) => stats.files === clusterLimits.garbageBatch,
        () => false,
      ).then((full) => { if (!stopped) schedule(full ? 0 : intervalMs); });
    }, delayMs);
    timer.unref();
  };
  schedule(intervalMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

