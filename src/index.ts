export { MillpondError, ERROR_CODES, type ErrorCode } from './errors.js';
export { limits } from './limits.js';
export { ChunkStore, type ChunkStoreOptions, type ChunkWriteOptions, type ChunkClientWriteOptions } from './chunk/chunk-store.js';
export { DataServer, type DataServerOptions } from './chunk/data-server.js';
export { ChunkClient, type ChunkClientOptions, type BatchRead, type BatchReadResult } from './chunk/chunk-client.js';
export type {
  ChainPosition, ChainWriteRoute, ChunkId, ChunkMeta, ChunkListEntry, TransportChoice, TransportCounters,
} from './native/binding.js';
export { connect, FileSystem, FileHandle, Stats, Dirent, type ConnectOptions, type OpenMode, type DataClientTuning, type DataClientCounters } from './fs/index.js';
import { addon } from './native/binding.js';

/**
 * A Buffer on 4 KiB-aligned memory: chunk writes from it skip a copy under O_DIRECT.
 * `reused`: the caller fills it many times, so from 2 MiB it is advised to use huge pages.
 */
export const allocAligned = (bytes: number, reused = false): Buffer => addon.allocAligned(bytes, reused);
/** CRC32C (Castagnoli), the checksum of chunks and frames. */
export const crc32c = (data: Buffer, seed = 0): number => addon.crc32c(data, seed);
/** Whether an RDMA device is usable here, and why not. */
export const rdmaProbe = () => addon.rdmaProbe();
export { init, Session, DataFrame, type Row, type InitOptions, type DataRootSpec, type JobSummary } from './engine/index.js';
