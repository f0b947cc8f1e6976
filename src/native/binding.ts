/**
 * Loads the addon (build/Release or a prebuild, via node-gyp-build) and declares what it
 * exports. Classes in src/chunk validate arguments before calling these.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MillpondError } from '../errors.js';
import { loadLibzmq } from './libzmq.js';

export interface ChunkId {
  inode: bigint | number;
  index: number;
}

export interface ChunkMeta {
  commitVersion: number;
  updateVersion: number;
  length: number;
  checksum: number;
}

export interface ChunkListEntry {
  chunk: { inode: bigint; index: number };
  meta: ChunkMeta;
  corrupt: boolean;
  /**
   * The chain the replica's version was written for (native/common/chunk_format.h, format 3);
   * 0 untagged: a version file of an older format, a write that named no chain, a damaged header.
   */
  chainId: number;
}

export interface TransportCounters {
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  connectionsOpened: number;
  protocolErrors: number;
}

export type TransportChoice = 'auto' | 'tcp' | 'rdma';

export interface ChainWriteRoute {
  chainId: number;
  chainVersion: number;
  /** (clientId, requestId) identify a write so a retry applies once; clientId 0 disables. */
  clientId: number;
  requestId: number;
}

export interface ChainPosition {
  chainVersion: number;
  head: boolean;
  /** Data-plane address of the next target; absent at the tail. */
  successor?: string;
  /** The successor is resyncing: forward whole chunk versions to it, not updates. */
  successorSyncing?: boolean;
}

export interface NativeWriteOptions {
  updateVersion: number;
  commit: boolean;
  replace: boolean;
  chunkSizeBytes: number;
  chain?: ChainWriteRoute;
  install?: boolean;
  /** ChunkStore only: the chain to tag the new version with (0: keep its base's tag). */
  chainId?: number;
  /** The file's capability (src/auth/capability.ts), for servers with a cluster secret. */
  capability?: Buffer;
}

export interface NativeChunkStore {
  write(chunk: ChunkId, offset: number, data: Buffer, options: NativeWriteOptions): Promise<ChunkMeta>;
  read(chunk: ChunkId, offset: number, target: Buffer, uncommitted: boolean): Promise<{ bytesRead: number; meta: ChunkMeta }>;
  commit(chunk: ChunkId, version: number): Promise<ChunkMeta>;
  remove(chunk: ChunkId, expected?: ChunkMeta | null): Promise<void>;
  stat(chunk: ChunkId): Promise<ChunkMeta>;
  list(after: ChunkId | null, limit: number): Promise<ChunkListEntry[]>;
  usage(): { chunks: number; bytes: number; capacityBytes: number; directIo: boolean };
  close(): void;
}

export interface NativeDataServerStats {
  reads: number;
  writes: number;
  batchReads: number;
  batchReadEntries: number;
  otherRequests: number;
  bytesRead: number;
  bytesWritten: number;
  errors: number;
  busyRejections: number;
  chainWrites: number;
  forwards: number;
  duplicateWrites: number;
  /** Version-file descriptors handed to short-circuit local readers on this host. */
  localOpens: number;
  /** Requests refused for want of a capability or a node's key (logged). */
  refusals: number;
  /** Connections that failed the authentication handshake (logged). */
  authFailures: number;
  /** The short-circuit local-read socket's path ('' when off). */
  localSocket: string;
  rdmaEnabled: boolean;
  transports: { tcp: TransportCounters; rdma?: TransportCounters };
}

export interface NativeDataServer {
  port(): number;
  stats(): NativeDataServerStats;
  setChain(chainId: number, position: ChainPosition): void;
  removeChain(chainId: number): void;
  stop(): Promise<void>;
}

/** What a data-plane client presents (native/transport/auth_handshake.h). */
export interface NativeCredentials {
  kind: 'node' | 'token';
  /** nodeId or uid */
  id: number;
  /** tokens: 16 hex digits */
  tokenId?: string;
  /** nodeKey(S, id), or the token's secret */
  key: Buffer;
  /** Never encrypt (a server with encryptData refuses with EENCRYPT). */
  refuseEncryption?: boolean;
}

export interface NativeBatchRead {
  chunk: ChunkId;
  offset: number;
  length: number;
  bufferOffset: number;
}

export interface NativeChunkClient {
  /** `token` (> 0): abandon(token) gives up on this read. */
  read(address: string, chunk: ChunkId, offset: number, target: Buffer, uncommitted: boolean, capability?: Buffer | null, token?: number): Promise<{ bytesRead: number; meta: ChunkMeta }>;
  write(address: string, chunk: ChunkId, offset: number, data: Buffer, options: NativeWriteOptions & { token?: number }): Promise<ChunkMeta>;
  /** Ends the read or write started with `token` with ETIMEDOUT within a timer tick, unless its answer is arriving. */
  abandon(token: number): void;
  batchRead(address: string, reads: NativeBatchRead[], target: Buffer, capabilities?: Buffer[]): Promise<Array<{ bytesRead: number; code: string | null }>>;
  stat(address: string, chunk: ChunkId, capability?: Buffer | null): Promise<ChunkMeta>;
  commit(address: string, chunk: ChunkId, version: number): Promise<ChunkMeta>;
  remove(address: string, chunk: ChunkId): Promise<void>;
  list(address: string, after: ChunkId | null, limit: number): Promise<ChunkListEntry[]>;
  ping(address: string): Promise<void>;
  stats(): {
    transports: { tcp?: TransportCounters; rdma?: TransportCounters };
    /** Short-circuit local reads (transport 'auto' only). */
    localReads?: { reads: number; bytes: number; fallbacks: number };
  };
  close(): void;
}

/** The inode fields FileClientHandle.attach reads (a regular file's, as meta returned them). */
export interface NativeFileInode {
  id: bigint;
  length: number;
  mtimeMs: number;
  layout: { chunkSizeBytes: number; stripeSize: number; chainTableId: number; chainTableVersion: number; seed: number };
}

/** One file TS opened, attached to the native client: its bytes move in native code. */
export interface NativeFileHandle {
  /** Reads into target from position, clipped to the file's length; resolves with the bytes read. */
  read(position: number, target: Buffer): Promise<number>;
  /** Read i lands in target after reads 0..i-1. REQUIRES: every read lies within the file. */
  readBatch(positions: Float64Array, lengths: Uint32Array, target: Buffer): Promise<void>;
  /** Resolves once every replica of every touched chunk committed. */
  write(position: number, data: Buffer): Promise<void>;
  close(): Promise<void>;
}

export interface NativeFileClient {
  attach(inode: NativeFileInode, path: string, writable: boolean, capability?: Buffer): NativeFileHandle;
  installCapability(capability: Buffer): void;
  counters(): DataClientCounters;
  close(): void;
}

/** What a native FileClient did since it started (native/client/file_client_counters.h, which names them). */
export interface DataClientCounters {
  /** Chunk reads and writes sent, retries included. */
  chunkReads: number;
  chunkWrites: number;
  /** Reads sent again to another replica or round; writes sent again with the same ids. */
  readRetries: number;
  writeRetries: number;
  /** Chunk reads the tail answered "no such chunk" (zeros). */
  holes: number;
  /** Whole-chunk reads started ahead of a sequential reader, and pieces served from them. */
  prefetches: number;
  prefetchHits: number;
  /** Batches write-behind flushed in the background (0 here: TS writes go through). */
  writeBehindBatches: number;
  /** Reads sent to a second replica because the first was slow. */
  hedgedReads: number;
  /** Requests given up because their target left the route. */
  abandonedRequests: number;
  /** Pieces of batched reads read again one by one. */
  batchMisses: number;
  bytesRead: number;
  bytesWritten: number;
}

export interface Addon {
  openChunkStore(dir: string, options: { directIo: boolean; syncWrites: boolean; capacityBytes: number }): Promise<NativeChunkStore>;
  DataServerHandle: new (store: NativeChunkStore, options: {
    host: string; port: number; transport: TransportChoice; ioThreads: number; frameTimeoutMs: number;
    clusterSecret?: Buffer; nodeId?: number; localSocketDir?: string; encryptData?: boolean;
  }) => NativeDataServer;
  ChunkClientHandle: new (options: {
    transport: TransportChoice; inflightBytesMax: number; timeoutMs: number; connectionsPerServer: number;
    localReads: boolean; credentials?: NativeCredentials;
  }) => NativeChunkClient;
  FileClientHandle: new (options: {
    mgmtd: string[]; mgmtdCurve?: { serverKey: string; publicKey: string; secretKey: string }; credentials?: NativeCredentials; transport: TransportChoice;
    timeoutMs?: number; mgmtdTimeoutMs?: number; routingPollMs?: number; writeRetryMs?: number; readAheadBytes?: number;
    chunksInflight?: number; connectionsPerServer?: number;
  }) => NativeFileClient;
  setErrorClass(ctor: typeof MillpondError): void;
  allocAligned(bytes: number, reused?: boolean): Buffer;
  crc32c(data: Buffer, seed?: number): number;
  rdmaProbe(): { available: boolean; detail: string };
  crc32cHardware: boolean;
  metricsSnapshot(): NativeMetricsSnapshot;
}

/** native/common/metrics.h, as native/addon/metrics_wrap.cc hands it over. */
export interface NativeMetricsSnapshot {
  ops: string[];
  transports: string[];
  latencyBucketsUs: number[];
  /** [op][transport] */
  requests: number[][];
  errors: number[][];
  /** Per op: bucket counts (not cumulative; the last is +Inf) and the sum. */
  latency: Array<{ buckets: number[]; sumUs: number }>;
  bytesRead: number;
  bytesWritten: number;
  inFlight: number;
  queued: number;
  busyRejections: number;
  crcFailures: number;
  chainForwards: number;
  localReadHits: number;
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(import.meta.url);
const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;

loadLibzmq();
export const addon = nodeGypBuild(packageRoot) as Addon;
addon.setErrorClass(MillpondError);
