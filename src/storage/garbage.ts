/**
 * Background removal of the chunks of unlinked files (design §5): takes files from meta's
 * garbage queue, removes their chunks from every replica of the chains they striped over,
 * then acknowledges them. A replica that is down keeps its copies until it returns: resync
 * drops chunks that no serving source has.
 */
import type { RoutingClient } from '../cluster/routing-client.js';
import { MillpondError } from '../errors.js';
import { fileChains } from '../fs/layout.js';
import { clusterLimits } from '../limits.js';
import type { Garbage } from '../meta/types.js';

/** What the collector needs of the metadata service (a MetaClient or a MetaService). */
export interface GarbageSource {
  takeGarbage(limit: number): Promise<Garbage[]>;
  ackGarbage(inodes: bigint[]): Promise<void>;
}

export interface GarbageStats {
  files: number;
  chunksRemoved: number;
}

/** Removes the chunks of the files now in the queue (one pass); returns what it did. */
export async function collectGarbage(meta: GarbageSource, routing: RoutingClient): Promise<GarbageStats> {
  const stats: GarbageStats = { files: 0, chunksRemoved: 0 };
  const files = await meta.takeGarbage(clusterLimits.garbageBatch);
  if (files.length === 0) return stats;
  const { chainTables } = await routing.refresh();
  const done: bigint[] = [];
  for (const file of files) {
    const table = chainTables.find((t) => t.tableId === file.layout.chainTableId);
    if (!table) continue; // the table is gone: nothing of it to remove
    const chains = fileChains(table.chainIds, file.layout.stripeSize, file.layout.seed);
    const chunks = Math.ceil(file.length / file.layout.chunkSizeBytes);
    let complete = true;
    for (let index = 0; index < chunks; index++) {
      const { path } = await routing.route(chains[index % chains.length]!);
      for (const target of path) {
        try {
          await routing.chunks.remove(target.dataAddress, { inode: file.inode, index });
          stats.chunksRemoved++;
        } catch (err) {
          if (err instanceof MillpondError && err.code === 'ENOENT') continue; // a hole, or gone already
          complete = false; // try again on a later pass
        }
      }
    }
    if (complete) done.push(file.inode);
  }
  if (done.length > 0) await meta.ackGarbage(done);
  stats.files = done.length;
  return stats;
}

/** Runs collectGarbage every `intervalMs` until the returned stop() is called. */
export function startGarbageCollector(meta: GarbageSource, routing: RoutingClient,
  intervalMs: number = clusterLimits.garbageIntervalMsDefault): { stop(): Promise<void> } {
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(() => (stopped ? undefined : collectGarbage(meta, routing))).catch(() => {});
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}

