/**
 * DataServer: serves a ChunkStore on the data plane (TCP, and RDMA when chosen and
 * available). Requests are answered on native threads; no request passes through JS.
 */
import { limits } from '../limits.js';
import {
  addon, type ChainPosition, type NativeDataServer, type NativeDataServerStats, type TransportChoice,
} from '../native/binding.js';
import type { ChunkStore } from './chunk-store.js';
import { checkRange } from './validate.js';

export interface DataServerOptions {
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  transport?: TransportChoice;
  ioThreads?: number;
  /** A frame that has started must arrive whole within this (default 30 s). */
  frameTimeoutMs?: number;
  /**
   * The cluster secret (32 bytes; design §10). With it every connection must authenticate
   * first, clients' requests need capabilities and only nodes may send chain-internal ones.
   * Without it nothing is checked (a trusted single host, tests).
   */
  clusterSecret?: Buffer;
  /**
   * The cluster's encryptData flag (needs clusterSecret): every TCP data connection is
   * encrypted and authenticated frame by frame (AES-256-GCM or ChaCha20-Poly1305, libsodium)
   * under keys the handshake derives; a client that will not encrypt gets EENCRYPT. RDMA is
   * not encrypted.
   */
  encryptData?: boolean;
  /** This server's storage node (its forwards to successors authenticate as it). */
  nodeId?: number;
  /** Directory of the local-read socket, made 0700 (default: <target dir>/run). */
  localSocketDir?: string;
}

export function checkTransport(transport: string): asserts transport is TransportChoice {
  if (transport !== 'auto' && transport !== 'tcp' && transport !== 'rdma') {
    throw new TypeError(`transport must be 'auto', 'tcp' or 'rdma', got ${JSON.stringify(transport)}`);
  }
}

export class DataServer {
  private constructor(
    private readonly handle: NativeDataServer,
    readonly host: string,
    readonly port: number,
  ) {}

  static async start(store: ChunkStore, options: DataServerOptions = {}): Promise<DataServer> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? 0;
    const transport = options.transport ?? 'auto';
    checkTransport(transport);
    checkRange(port, 0, 65535, 'port');
    const ioThreads = options.ioThreads ?? limits.serverIoThreadsDefault;
    checkRange(ioThreads, 1, limits.serverIoThreadsMax, 'ioThreads');
    const frameTimeoutMs = options.frameTimeoutMs ?? limits.serverFrameTimeoutMsDefault;
    checkRange(frameTimeoutMs, 1, 3_600_000, 'frameTimeoutMs');
    if (options.clusterSecret !== undefined && (!Buffer.isBuffer(options.clusterSecret) || options.clusterSecret.length !== 32)) {
      throw new TypeError('clusterSecret must be a 32-byte Buffer');
    }
    const nodeId = options.nodeId ?? 0;
    checkRange(nodeId, 0, 0xffff_ffff, 'nodeId');
    const handle = new addon.DataServerHandle(store.handle, {
      host, port, transport, ioThreads, frameTimeoutMs, nodeId,
      ...(options.clusterSecret ? { clusterSecret: options.clusterSecret } : {}),
      ...(options.encryptData ? { encryptData: true } : {}),
      ...(options.localSocketDir ? { localSocketDir: options.localSocketDir } : {}),
    });
    return new DataServer(handle, host, handle.port());
  }

  /** "host:port", what clients connect to. */
  get address(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  stats(): NativeDataServerStats {
    return this.handle.stats();
  }

  /** Places this server's target on a chain (from mgmtd's routing); replaces an earlier position. */
  setChain(chainId: number, position: ChainPosition): void {
    checkRange(chainId, 0, 0xffff_ffff, 'chainId');
    checkRange(position.chainVersion, 0, 0xffff_ffff, 'chainVersion');
    if (position.successor !== undefined && !/^.+:\d{1,5}$/.test(position.successor)) {
      throw new TypeError('successor must be "host:port"');
    }
    this.handle.setChain(chainId, position);
  }

  removeChain(chainId: number): void {
    checkRange(chainId, 0, 0xffff_ffff, 'chainId');
    this.handle.removeChain(chainId);
  }

  stop(): Promise<void> {
    return this.handle.stop();
  }
}
