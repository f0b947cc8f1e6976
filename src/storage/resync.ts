/**
 * Resync of a returning target (design §3, after 3FS): while its predecessors already forward
 * new writes to it, compare its chunk metadata with each source (the last serving target of
 * each of its chains) and copy what is missing or stale; then remove chunks no source has.
 *
 * REQUIRES: every source forwards writes to this target (its node applied the routing in which
 * this target is syncing) before resync starts; otherwise a write committed at a source after
 * the listing could be missed.
 *
 * A target in several chains gets chunks from sources of all of them. A source is often in
 * chains this target is not in (chain tables place many chains on few targets): each chunk's
 * version file is tagged with the chain it was written for (chunk_format.h, format 3), and only
 * chunks tagged with one of `chains` are copied, their tag kept here. Untagged chunks (version
 * files of older formats) are copied as before, whatever chain they belong to. Removal happens
 * only when `removeAllowed` (every chain of the target had a source), only for chunks absent at
 * every source, and only if the chunk is still the version that was checked (a write may land
 * meanwhile); a chunk of another chain that a source holds is never removed here.
 */
import { resyncBytesCopied, resyncChunksCopied } from '../metrics/services.js';
import type { ChunkClient } from '../chunk/chunk-client.js';
import type { ChunkStore } from '../chunk/chunk-store.js';
import { MillpondError } from '../errors.js';
import { clusterLimits } from '../limits.js';
import type { ChunkListEntry } from '../native/binding.js';
import { chunkKey, install, localMeta, nextAfter, readWhole, removeIfUnchanged } from './copy.js';
import type { TokenBucket } from './token-bucket.js';

export interface ResyncStats {
  /** Chunks listed at the sources so far (each source's chunks, once per source). */
  listed: number;
  copied: number;
  copiedBytes: number;
  removed: number;
  skipped: number;
  /** Listed chunks tagged with a chain not being resynced: not copied. */
  foreign: number;
}

export interface ResyncOptions {
  store: ChunkStore;
  client: ChunkClient;
  /** Data addresses of the sources. */
  sources: string[];
  /** The chains being resynced (the target's): only chunks tagged with one (or untagged) are copied. */
  chains: ReadonlySet<number>;
  removeAllowed: boolean;
  /** Checked between chunks: resync stops (throws ECLOSED) once it returns true. */
  cancelled?: () => boolean;
  /**
   * Bounds the bytes copied per second (a rebalance move's share of its rate): every chunk
   * copied takes its length from the bucket before it is read. Shared by the parallel copies.
   */
  bucket?: TokenBucket;
  /** Filled in as the resync goes (its progress, which the daemon's heartbeats report). */
  stats?: ResyncStats;
}

export async function resync(o: ResyncOptions): Promise<ResyncStats> {
  const stats: ResyncStats = o.stats ?? emptyResyncStats();
  const seen = new Set<string>();
  const check = () => {
    if (o.cancelled?.()) throw new MillpondError('ECLOSED', 'resync cancelled');
  };
  for (const source of o.sources) {
    let after: ListedChunk | undefined;
    for (;;) {
      check();
      const page: ChunkListEntry[] = await o.client.list(source, { after, limit: clusterLimits.resyncListPage });
      stats.listed += page.length;
      // Bounded parallel copies within a page.
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < page.length; i = next++) {
          check();
          await syncOne(o, source, page[i]!, stats);
        }
      };
      await Promise.all(Array.from({ length: Math.min(clusterLimits.resyncCopiesInflightMax, page.length) }, worker));
      for (const e of page) seen.add(chunkKey(e.chunk));
      after = nextAfter(page, clusterLimits.resyncListPage);
      if (!after) break;
    }
  }
  if (o.removeAllowed) await removeUnknown(o, seen, stats, check);
  return stats;
}

export const emptyResyncStats = (): ResyncStats => ({ listed: 0, copied: 0, copiedBytes: 0, removed: 0, skipped: 0, foreign: 0 });

type ListedChunk = ChunkListEntry['chunk'];

/** Whether a source's chunk belongs on a target in `chains`: tagged with one of them, or untagged. */
export const belongs = (entry: ChunkListEntry, chains: ReadonlySet<number>): boolean =>
  entry.chainId === 0 || chains.has(entry.chainId);

async function syncOne(o: ResyncOptions, source: string, entry: ChunkListEntry, stats: ResyncStats): Promise<void> {
  const src = entry.meta;
  // Only a pending version at the source: its write is in flight and reaches us by forwarding.
  if (src.commitVersion === 0 || entry.corrupt) return void stats.skipped++;
  if (!belongs(entry, o.chains)) return void stats.foreign++;
  const local = await localMeta(o.store, entry.chunk);
  if (local && (local.commitVersion > src.commitVersion
    || (local.commitVersion === src.commitVersion && local.checksum === src.checksum && local.length === src.length))) return;
  await o.bucket?.take(src.length, o.cancelled);
  // take() returns at a cancel too: a resync cancelled meanwhile (its move undone) copies no more.
  if (o.cancelled?.()) throw new MillpondError('ECLOSED', 'resync cancelled');
  let got;
  try {
    got = await readWhole(o.client, source, entry.chunk, src.length);
  } catch (err) {
    // Removed at the source since the listing, or only pending there now.
    if (err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'ENOTCOMMITTED')) return void stats.skipped++;
    throw err;
  }
  if ((await install(o.store, entry.chunk, got.data, got.meta, { chainId: entry.chainId })) === 'installed') {
    stats.copied++;
    stats.copiedBytes += got.data.length;
    resyncChunksCopied.inc();
    resyncBytesCopied.inc(got.data.length);
  }
  else stats.skipped++;
}

async function removeUnknown(o: ResyncOptions, seen: Set<string>, stats: ResyncStats, check: () => void): Promise<void> {
  let after: ListedChunk | undefined;
  for (;;) {
    check();
    const page = await o.store.list({ after, limit: clusterLimits.resyncListPage });
    for (const e of page) {
      if (seen.has(chunkKey(e.chunk))) continue;
      // Created since the listing? Ask the sources again before removing.
      let known = false;
      for (const source of o.sources) {
        try {
          await o.client.stat(source, e.chunk);
          known = true;
          break;
        } catch (err) {
          if (!(err instanceof MillpondError) || err.code !== 'ENOENT') throw err;
        }
      }
      if (known) continue;
      // Only the version checked above: a forwarded write that landed since (it created or
      // updated the chunk here after the sources were asked) is kept, never removed.
      if (await removeIfUnchanged(o.store, e)) stats.removed++;
      else stats.skipped++;
    }
    after = nextAfter(page, clusterLimits.resyncListPage);
    if (!after) break;
  }
}
