/**
 * The building blocks of resync, scrub repair and the stray sweep: installing a replica's
 * committed copy of a chunk into a local store, removing a listed chunk only if it is still
 * the version listed, and paging through listings.
 */
import type { ChunkClient } from '../chunk/chunk-client.js';
import type { ChunkStore } from '../chunk/chunk-store.js';
import { MillpondError } from '../errors.js';
import type { ChunkId, ChunkListEntry, ChunkMeta } from '../native/binding.js';

export async function localMeta(store: ChunkStore, chunk: ChunkId): Promise<ChunkMeta | undefined> {
  try {
    return await store.stat(chunk);
  } catch (err) {
    if (err instanceof MillpondError && err.code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The committed content of `chunk` at `address`, whole (re-read if it grew meanwhile). */
export async function readWhole(client: ChunkClient, address: string, chunk: ChunkId, lengthHint: number): Promise<{ data: Buffer; meta: ChunkMeta }> {
  let length = lengthHint;
  for (let attempt = 0; attempt < 4; attempt++) {
    const got = await client.read(address, chunk, 0, length);
    if (got.meta.length <= got.data.length) return { data: got.data.subarray(0, got.meta.length), meta: got.meta };
    length = got.meta.length;
  }
  throw new MillpondError('EBUSY', `chunk keeps growing at ${address}`);
}

export type InstallResult = 'installed' | 'newer-here';

/**
 * Installs `data` as committed version `meta.commitVersion` of `chunk`, in one step in the
 * store, unless the local copy is already newer (a write forwarded by the chain overtook the
 * copy) or identical. `force` (a copy that fails its checksums) removes the local copy first.
 * `chainId`: the chain the source's copy is tagged with (its list entry's), kept here; 0
 * (untagged) keeps the local copy's tag, if any.
 */
export async function install(store: ChunkStore, chunk: ChunkId, data: Buffer, meta: ChunkMeta,
  options: { force?: boolean; chainId?: number } = {}): Promise<InstallResult> {
  const force = options.force ?? false;
  const local = await localMeta(store, chunk);
  if (local && !force && local.commitVersion === meta.commitVersion && local.checksum === meta.checksum &&
      local.length === meta.length) return 'newer-here';
  if (local && force) await store.remove(chunk).catch(() => {});
  try {
    await store.write(chunk, 0, data, {
      replace: true, updateVersion: meta.commitVersion, commit: true, install: true, chainId: options.chainId ?? 0,
    });
    return 'installed';
  } catch (err) {
    if (err instanceof MillpondError && err.code === 'ESTALE') return 'newer-here';
    throw err;
  }
}

export const chunkKey = (chunk: { inode: bigint | number; index: number }) => `${chunk.inode}:${chunk.index}`;

/**
 * Removes a chunk as `entry` (an earlier listing or stat) saw it: only if its metadata is still
 * exactly that version, so a write that landed since the caller decided (a forwarded chain
 * write, a resync's install) is never removed. Returns false, removing nothing, when the chunk
 * changed (ESTALE) or is gone already (ENOENT).
 */
export async function removeIfUnchanged(store: ChunkStore, entry: Pick<ChunkListEntry, 'chunk' | 'meta'>): Promise<boolean> {
  try {
    await store.remove(entry.chunk, { ifMeta: entry.meta });
    return true;
  } catch (err) {
    if (err instanceof MillpondError && (err.code === 'ESTALE' || err.code === 'ENOENT')) return false;
    throw err;
  }
}

/** Where the listing after `page` (asked for `limit` entries) goes on: undefined when it was the last. */
export const nextAfter = (page: readonly ChunkListEntry[], limit: number): ChunkListEntry['chunk'] | undefined =>
  page.length < limit ? undefined : page.at(-1)!.chunk;
