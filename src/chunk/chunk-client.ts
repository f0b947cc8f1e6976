/**
 * ChunkClient: reads and writes chunks on many data servers in parallel. Buffers are used
 * in place (no copies); in-flight bytes are bounded (`inflightBytesMax`). readBatch() sends
 * many small reads in one message, like 3FS's USRBIO ring, for small random I/O. With
 * transport 'auto', reads of servers on this host skip the network (`localReads`).
 */
import { CAPABILITY_BYTES } from '../auth/capability.js';
import { nativeCredentials, type DataCredentials } from '../auth/data-plane.js';
import { limits } from '../limits.js';
import {
  addon, type ChunkId, type ChunkListEntry, type ChunkMeta, type NativeChunkClient, type TransportChoice,
} from '../native/binding.js';
import { nativeWriteOptions, type ChunkClientWriteOptions } from './chunk-store.js';
import { checkTransport } from './data-server.js';
import { checkAddress, checkBuffer, checkChunkId, checkRange, checkU32 } from './validate.js';

export interface ChunkClientOptions {
  transport?: TransportChoice;
  /** Bytes of requests and replies in flight at once, across servers (default 256 MiB). */
  inflightBytesMax?: number;
  /** Per request (default 30 s). */
  timeoutMs?: number;
  connectionsPerServer?: number;
  /**
   * With transport 'auto': read chunks of data servers on this host through descriptors of
   * their files (short-circuit local reads: no copies through TCP). Default true.
   */
  localReads?: boolean;
  /**
   * Presented to data servers with a cluster secret (src/auth/data-plane.ts): a user's token
   * (then reads and writes need the file's capability from meta), or a node's key.
   */
  credentials?: DataCredentials;
}

function checkCapability(c: Buffer | undefined, name = 'capability'): void {
  if (c !== undefined && (!Buffer.isBuffer(c) || c.length !== CAPABILITY_BYTES)) {
    throw new TypeError(`${name} must be a ${CAPABILITY_BYTES}-byte Buffer (from meta's open)`);
  }
}

export interface BatchRead {
  chunk: ChunkId;
  offset: number;
  length: number;
  /** Where in the target buffer this read lands. */
  bufferOffset: number;
}

export interface BatchReadResult {
  bytesRead: number;
  /** null when the read succeeded; else the error code (ENOENT, ECHUNK_CORRUPT, ...). */
  code: string | null;
}

export class ChunkClient {
  private readonly handle: NativeChunkClient;
  private nextToken = 1;

  constructor(options: ChunkClientOptions = {}) {
    const transport = options.transport ?? 'auto';
    checkTransport(transport);
    const inflightBytesMax = options.inflightBytesMax ?? limits.clientInflightBytesDefault;
    checkRange(inflightBytesMax, 1, limits.clientInflightBytesMax, 'inflightBytesMax');
    const timeoutMs = options.timeoutMs ?? limits.clientTimeoutMsDefault;
    checkRange(timeoutMs, 1, 3_600_000, 'timeoutMs');
    const connectionsPerServer = options.connectionsPerServer ?? 1;
    checkRange(connectionsPerServer, 1, limits.clientConnectionsPerServerMax, 'connectionsPerServer');
    const localReads = options.localReads ?? true;
    const credentials = nativeCredentials(options.credentials);
    this.handle = new addon.ChunkClientHandle({ transport, inflightBytesMax, timeoutMs, connectionsPerServer, localReads, credentials });
  }

  /**
   * Reads into `target` (or a new buffer). Aborting `signal` gives up on the request: it
   * rejects with ETIMEDOUT within a timer tick unless its answer is already arriving; until
   * the promise settles `target` may still be written. `capability`: the file's, from meta
   * (needed by servers with a secret, for token clients).
   */
  async read(address: string, chunk: ChunkId, offset: number, length: number,
    options: { uncommitted?: boolean; target?: Buffer; signal?: AbortSignal; capability?: Buffer } = {}): Promise<{ data: Buffer; meta: ChunkMeta }> {
    checkAddress(address);
    checkCapability(options.capability);
    checkChunkId(chunk);
    checkU32(offset, 'offset');
    checkRange(length, 0, limits.chunkSizeBytesMax, 'length');
    const target = options.target ?? Buffer.allocUnsafe(length);
    if (target.length < length) throw new RangeError('target is smaller than length');
    const view = target.length === length ? target : target.subarray(0, length);
    const abandon = this.abandonOn(options.signal);
    try {
      const { bytesRead, meta } = await this.handle.read(address, chunk, offset, view, options.uncommitted ?? false,
        options.capability ?? null, abandon.token);
      return { data: view.subarray(0, bytesRead), meta };
    } finally {
      abandon.release();
    }
  }

  /**
   * Writes at one data server; with `options.chain`, the server must be the chain's head and
   * the write travels the chain (CRAQ): the promise resolves once every replica committed.
   * Aborting `options.signal` gives up on the request as for read().
   */
  write(address: string, chunk: ChunkId, offset: number, data: Buffer,
    options: ChunkClientWriteOptions & { signal?: AbortSignal; capability?: Buffer } = {}): Promise<ChunkMeta> {
    checkAddress(address);      // bad arguments throw at once (not a rejected promise)
    checkChunkId(chunk);
    checkU32(offset, 'offset');
    checkBuffer(data, 'data');
    checkCapability(options.capability);
    const native = nativeWriteOptions(offset, data.length, options);
    const abandon = this.abandonOn(options.signal);
    return this.handle.write(address, chunk, offset, data,
      { ...native, token: abandon.token, ...(options.capability ? { capability: options.capability } : {}) })
      .finally(abandon.release);
  }

  /** A native abandon token tied to `signal` (0 without one). */
  private abandonOn(signal: AbortSignal | undefined): { token: number; release: () => void } {
    if (!signal) return { token: 0, release: () => {} };
    const token = this.nextToken++;
    // The token is registered when the request starts (synchronously, after this returns).
    const onAbort = () => this.handle.abandon(token);
    if (signal.aborted) queueMicrotask(onAbort);
    else signal.addEventListener('abort', onAbort, { once: true });
    return { token, release: () => signal.removeEventListener('abort', onAbort) };
  }

  /**
   * Many reads from one server in one message; each lands at its bufferOffset in target.
   * `capabilities`: one per inode the reads touch (servers with a secret, token clients).
   */
  readBatch(address: string, reads: BatchRead[], target: Buffer, capabilities?: Buffer[]): Promise<BatchReadResult[]> {
    checkAddress(address);
    if (capabilities !== undefined) {
      if (!Array.isArray(capabilities) || capabilities.length > limits.batchReadEntriesMax) throw new TypeError('capabilities must be an array of Buffers');
      capabilities.forEach((c, i) => checkCapability(c, `capabilities[${i}]`));
    }
    checkBuffer(target, 'target');
    if (!Array.isArray(reads)) throw new TypeError('reads must be an array');
    checkRange(reads.length, 1, limits.batchReadEntriesMax, 'reads.length');
    let total = 0;
    for (const r of reads) {
      checkChunkId(r.chunk, 'reads[].chunk');
      checkU32(r.offset, 'reads[].offset');
      checkRange(r.length, 0, limits.chunkSizeBytesMax, 'reads[].length');
      if (!Number.isInteger(r.bufferOffset) || r.bufferOffset < 0 || r.bufferOffset + r.length > target.length) {
        throw new RangeError(`a read of ${r.length} bytes at bufferOffset ${r.bufferOffset} does not fit the target`);
      }
      total += r.length;
    }
    if (total > limits.batchReadBytesMax) throw new RangeError(`a batch reads at most ${limits.batchReadBytesMax} bytes`);
    return this.handle.batchRead(address, reads, target, capabilities);
  }

  stat(address: string, chunk: ChunkId, capability?: Buffer): Promise<ChunkMeta> {
    checkAddress(address);
    checkChunkId(chunk);
    checkCapability(capability);
    return this.handle.stat(address, chunk, capability ?? null);
  }

  commit(address: string, chunk: ChunkId, version: number): Promise<ChunkMeta> {
    checkAddress(address);
    checkChunkId(chunk);
    if (!Number.isSafeInteger(version) || version <= 0) throw new RangeError('version must be a positive integer');
    return this.handle.commit(address, chunk, version);
  }

  remove(address: string, chunk: ChunkId): Promise<void> {
    checkAddress(address);
    checkChunkId(chunk);
    return this.handle.remove(address, chunk);
  }

  list(address: string, options: { after?: ChunkId; limit?: number } = {}): Promise<ChunkListEntry[]> {
    checkAddress(address);
    if (options.after) checkChunkId(options.after, 'after');
    const limit = options.limit ?? limits.listReplyEntriesMax;
    checkRange(limit, 1, limits.listReplyEntriesMax, 'limit');
    return this.handle.list(address, options.after ?? null, limit);
  }

  ping(address: string): Promise<void> {
    checkAddress(address);
    return this.handle.ping(address);
  }

  /** Bytes and messages per transport, so callers can see which path carried the data. */
  stats() {
    return this.handle.stats();
  }

  /** Fails requests in flight with ECLOSED and stops the client's threads. */
  close(): void {
    this.handle.close();
  }
}
