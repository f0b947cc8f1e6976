/**
 * ChunkStore: the chunks of one storage target directory. Copy-on-write versions, per-block
 * CRC32C verified on every read (a mismatch rejects with code ECHUNK_CORRUPT, never data).
 */
import { limits } from '../limits.js';
import {
  addon, type ChainWriteRoute, type ChunkId, type ChunkListEntry, type ChunkMeta, type NativeChunkStore,
} from '../native/binding.js';
import { checkBuffer, checkChunkId, checkRange, checkU32 } from './validate.js';

export interface ChunkStoreOptions {
  /** O_DIRECT for writes and large aligned reads where the filesystem allows it (default true). */
  directIo?: boolean;
  /** fdatasync each new version and its directory before it becomes visible (default true). */
  syncWrites?: boolean;
  /** Refuse writes (ENOSPC) beyond this many bytes on disk; 0 = the filesystem's limit. */
  capacityBytes?: number;
}

export interface ChunkWriteOptions {
  /** Version this write creates; default one above the newest. Must exceed commitVersion. */
  updateVersion?: number;
  /** Commit at once (default true); false leaves a pending version for commit(). */
  commit?: boolean;
  /** The data is the whole new content; offset must be 0. */
  replace?: boolean;
  /** The chunk's capacity: offset + length must fit. Default limits.chunkSizeBytesMax. */
  chunkSizeBytes?: number;
  /**
   * ChunkStore only (resync, scrub repair): `data` is a replica's committed copy at
   * `updateVersion`; it replaces a same-or-older or damaged copy in one step (ESTALE when an
   * intact newer version is here). Needs `replace` and `updateVersion`.
   */
  install?: boolean;
  /**
   * ChunkStore only: the chain the chunk belongs to, recorded in the new version file and
   * returned by list() (an install passes the source's tag). 0 or absent: the new version keeps
   * its base's tag (for an install, the committed version's here), or none.
   */
  chainId?: number;
}

/** A write through a data server that travels a CRAQ chain (ChunkClient.write only). */
export interface ChunkClientWriteOptions extends ChunkWriteOptions {
  chain?: ChainWriteRoute;
}

export function nativeWriteOptions(offset: number, length: number, o: ChunkClientWriteOptions) {
  const chunkSizeBytes = o.chunkSizeBytes ?? 0;
  if (chunkSizeBytes !== 0) checkRange(chunkSizeBytes, limits.chunkSizeBytesMin, limits.chunkSizeBytesMax, 'chunkSizeBytes');
  const capacity = chunkSizeBytes || limits.chunkSizeBytesMax;
  if (offset + length > capacity) {
    throw new RangeError(`write of ${length} bytes at ${offset} exceeds the chunk size ${capacity}`);
  }
  const updateVersion = o.updateVersion ?? 0;
  if (!Number.isSafeInteger(updateVersion) || updateVersion < 0) throw new RangeError('updateVersion must be a non-negative integer');
  if (o.replace && offset !== 0) throw new RangeError('a replacing write starts at offset 0');
  const chain = o.chain;
  if (chain !== undefined) {
    checkU32(chain.chainId, 'chain.chainId');
    checkU32(chain.chainVersion, 'chain.chainVersion');
    if (!Number.isSafeInteger(chain.clientId) || chain.clientId < 0) throw new RangeError('chain.clientId must be a non-negative integer');
    if (!Number.isSafeInteger(chain.requestId) || chain.requestId < 0) throw new RangeError('chain.requestId must be a non-negative integer');
    if (updateVersion !== 0) throw new RangeError('a chain write gets its version from the head');
  }
  if (o.install && (!o.replace || updateVersion === 0 || o.commit === false || chain)) {
    throw new RangeError('an install names its updateVersion, replaces and commits, and travels no chain');
  }
  const chainId = o.chainId ?? 0;
  checkU32(chainId, 'chainId');
  if (chainId !== 0 && chain) throw new RangeError('a chain write is tagged with its chain.chainId');
  return { updateVersion, commit: o.commit ?? true, replace: o.replace ?? false, chunkSizeBytes, chain, install: o.install ?? false, chainId };
}

export class ChunkStore {
  private constructor(
    /** The native handle; DataServer serves it directly. */
    readonly handle: NativeChunkStore,
    readonly dir: string,
  ) {}

  static async open(dir: string, options: ChunkStoreOptions = {}): Promise<ChunkStore> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('dir must be a non-empty string');
    const capacityBytes = options.capacityBytes ?? 0;
    if (!Number.isSafeInteger(capacityBytes) || capacityBytes < 0) throw new RangeError('capacityBytes must be a non-negative integer');
    const handle = await addon.openChunkStore(dir, {
      directIo: options.directIo ?? true,
      syncWrites: options.syncWrites ?? true,
      capacityBytes,
    });
    return new ChunkStore(handle, dir);
  }

  write(chunk: ChunkId, offset: number, data: Buffer, options: ChunkWriteOptions = {}): Promise<ChunkMeta> {
    checkChunkId(chunk);
    checkU32(offset, 'offset');
    checkBuffer(data, 'data');
    return this.handle.write(chunk, offset, data, nativeWriteOptions(offset, data.length, options));
  }

  /**
   * Reads up to `length` bytes at `offset` of the committed version (the pending one with
   * `uncommitted`). The returned buffer is shorter only past the chunk's end.
   */
  async read(chunk: ChunkId, offset: number, length: number, options: { uncommitted?: boolean; target?: Buffer } = {}) {
    checkChunkId(chunk);
    checkU32(offset, 'offset');
    checkRange(length, 0, limits.chunkSizeBytesMax, 'length');
    const target = options.target ?? Buffer.allocUnsafe(length);
    if (target.length < length) throw new RangeError('target is smaller than length');
    const view = target.length === length ? target : target.subarray(0, length);
    const { bytesRead, meta } = await this.handle.read(chunk, offset, view, options.uncommitted ?? false);
    return { data: view.subarray(0, bytesRead), meta };
  }

  commit(chunk: ChunkId, version: number): Promise<ChunkMeta> {
    checkChunkId(chunk);
    if (!Number.isSafeInteger(version) || version <= 0) throw new RangeError('version must be a positive integer');
    return this.handle.commit(chunk, version);
  }

  /**
   * Removes every version of the chunk (durably when syncWrites). With `ifMeta`, only if the
   * chunk's metadata is still exactly that; otherwise rejects with ESTALE and removes nothing.
   */
  remove(chunk: ChunkId, options: { ifMeta?: ChunkMeta } = {}): Promise<void> {
    checkChunkId(chunk);
    const m = options.ifMeta;
    if (m !== undefined) {
      for (const key of ['commitVersion', 'updateVersion', 'length', 'checksum'] as const) {
        if (!Number.isSafeInteger(m[key]) || m[key] < 0) throw new RangeError(`ifMeta.${key} must be a non-negative integer`);
      }
    }
    return this.handle.remove(chunk, m ?? null);
  }

  stat(chunk: ChunkId): Promise<ChunkMeta> {
    checkChunkId(chunk);
    return this.handle.stat(chunk);
  }

  /** Chunks in id order (chunks of one inode together), strictly after `after`. */
  list(options: { after?: ChunkId; limit?: number } = {}): Promise<ChunkListEntry[]> {
    if (options.after) checkChunkId(options.after, 'after');
    const limit = options.limit ?? 65536;
    checkRange(limit, 1, 65536, 'limit');
    return this.handle.list(options.after ?? null, limit);
  }

  usage() {
    return this.handle.usage();
  }

  /** Releases the store; it closes when data servers and operations using it finish. */
  close(): void {
    this.handle.close();
  }
}
