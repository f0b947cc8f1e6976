/**
 * A file's bytes on the chains, moved by the native FileClient (native/client/file_client.h,
 * the one implementation of routing, retries, hedged and batched reads, read-ahead and chunk
 * I/O that the DuckDB extension and the FUSE mount use too). This side keeps what the TS
 * FileSystem owns: the meta session and the file's capability, renewed here and handed to the
 * native client, which never renews one itself.
 */
import { clientCurve, type ClientAuth, type ClusterAuth } from '../auth/credentials.js';
import { nativeCredentials, type DataCredentials } from '../auth/data-plane.js';
import { MillpondError } from '../errors.js';
import { addon, type DataClientCounters, type NativeFileClient, type NativeFileHandle, type TransportChoice } from '../native/binding.js';
import type { FileLayout, Inode } from '../protocol/meta-types.js';
import type { FileCapability } from './file-capability.js';

/**
 * How the native client moves bytes (absent: native/common/limits.h defaults). Out of range:
 * EINVAL (the native client's bounds: kFileReadAheadBytesMax, kFileChunksInflightMax,
 * kClientConnectionsPerServerMax).
 */
export interface DataClientTuning {
  /** Per file: bytes of whole chunks prefetched ahead of a sequential reader; 0: none. */
  readAheadBytes?: number;
  /** Chunk reads or writes of one call in flight at once. */
  chunksInflight?: number;
  /** TCP connections to each data server; more let one client's requests overlap more. */
  connectionsPerServer?: number;
}

const TUNING_KEYS = ['readAheadBytes', 'chunksInflight', 'connectionsPerServer'] as const;

/** The given settings, each an integer the native side can take (its own bounds are checked there). */
function checkedTuning(tuning: DataClientTuning = {}): DataClientTuning {
  const out: DataClientTuning = {};
  for (const key of TUNING_KEYS) {
    const v = tuning[key];
    if (v === undefined) continue;
    const min = key === 'readAheadBytes' ? 0 : 1;
    if (!(Number.isSafeInteger(v) && v >= min && v <= 0xffffffff)) throw new MillpondError('EINVAL', `${key} must be an integer >= ${min}, got ${String(v)}`);
    out[key] = v;
  }
  return out;
}

export interface FileClientOptions {
  mgmtd: string | string[];
  /** The caller's token and the cluster's server key (absent: no authentication). */
  auth?: ClientAuth;
  /** A cluster daemon's keys: mgmtd admits it as a member (the token's user is not listed there). */
  cluster?: ClusterAuth;
  /** The data plane's credentials, when not the token's (a cluster daemon's node key). */
  credentials?: DataCredentials;
  transport?: TransportChoice;
  /** One chunk request; one mgmtd request. */
  timeoutMs?: number;
  mgmtdTimeoutMs?: number;
  /** How often routing is fetched again; how long a write is retried. */
  routingPollMs?: number;
  writeRetryMs?: number;
  io?: DataClientTuning;
}

export class FileClient {
  private readonly native: NativeFileClient;

  constructor(options: FileClientOptions) {
    const io = checkedTuning(options.io);
    const mgmtd = typeof options.mgmtd === 'string' ? options.mgmtd.split(',') : options.mgmtd;
    const mgmtdCurve = options.cluster ? options.cluster.memberCurve : options.auth ? clientCurve(options.auth) : undefined;
    const credentials = nativeCredentials(options.credentials ?? (options.auth ? { token: options.auth.token } : undefined));
    this.native = new addon.FileClientHandle({
      mgmtd: mgmtd.map((e) => e.trim()).filter((e) => e.length > 0),
      transport: options.transport ?? 'auto',
      ...(mgmtdCurve ? { mgmtdCurve } : {}),
      ...(credentials ? { credentials } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.mgmtdTimeoutMs !== undefined ? { mgmtdTimeoutMs: options.mgmtdTimeoutMs } : {}),
      ...(options.routingPollMs !== undefined ? { routingPollMs: options.routingPollMs } : {}),
      ...(options.writeRetryMs !== undefined ? { writeRetryMs: options.writeRetryMs } : {}),
      ...io,
    });
  }

  /** What the native client did since it started. */
  counters(): DataClientCounters {
    return this.native.counters();
  }

  /** The bytes of a file opened through meta; `capability` as meta's open handed it out. */
  attach(inode: Inode, path: string, writable: boolean, capability?: FileCapability): FileData {
    const layout = inode.layout as FileLayout;
    const handle = this.native.attach(
      { id: inode.id, length: inode.length, mtimeMs: inode.mtimeMs, layout },
      path, writable, capability?.current);
    return new FileData(this.native, handle, capability);
  }

  /** Lets the native client go once every attached file closed. */
  close(): void {
    this.native.close();
  }
}

export class FileData {
  /** The capability last handed to the native client, which keeps the latest of each right per file. */
  private installed: Buffer | undefined;

  constructor(
    private readonly client: NativeFileClient,
    private readonly handle: NativeFileHandle,
    /** The file's data-plane capability; absent where the cluster has no secret. */
    private readonly capability?: FileCapability,
  ) {
    this.installed = capability?.current; // attach() handed it over
  }

  /**
   * Runs `io` with a current capability installed (renewed past half its life, or when a
   * server says it expired): a native call only when the capability changed, not per I/O.
   */
  private io<T>(io: () => Promise<T>): Promise<T> {
    if (!this.capability) return io();
    return this.capability.use((wire) => {
      if (wire && wire !== this.installed) {
        this.client.installCapability(wire);
        this.installed = wire;
      }
      return io();
    });
  }

  /** Reads [position, position + target.length) into target; the caller bounds it by the file length. */
  async read(position: number, target: Buffer): Promise<void> {
    const n = await this.io(() => this.handle.read(position, target));
    if (n !== target.length) throw new MillpondError('EIO', `read ${n} of ${target.length} bytes at ${position}: the file is shorter than this handle knows`);
  }

  /**
   * Many small reads in few messages (3FS's batched reads, grouped by chain in native code).
   * `reads[i]` lands at target[offsets[i], offsets[i] + reads[i].length), the offsets being
   * the sums of the lengths before it. REQUIRES: every read lies within the file.
   */
  async readBatch(reads: Array<{ position: number; length: number }>, target: Buffer): Promise<void> {
    const positions = Float64Array.from(reads, (r) => r.position);
    const lengths = Uint32Array.from(reads, (r) => r.length);
    await this.io(() => this.handle.readBatch(positions, lengths, target));
  }

  /** Writes data at position; resolves when every replica of every touched chunk committed. */
  write(position: number, data: Buffer): Promise<void> {
    return this.io(() => this.handle.write(position, data));
  }

  /** Lets the native handle go (the meta session is the caller's to end). */
  close(): Promise<void> {
    return this.handle.close();
  }
}
