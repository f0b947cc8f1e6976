/**
 * The data server the network benches talk to: in a child process (default: the client's
 * event loop and the server's threads then do not share a process, as in a deployment and as
 * iperf3 runs its two ends) or in this process. The store is buffered and unsynced, so the
 * benches measure the network path with chunks hot in the page cache.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { CapabilitySigner, RIGHT_READ, RIGHT_WRITE } from '../src/auth/capability.js';
import { formatToken, mintToken } from '../src/auth/keys.js';
import { ChunkClient, type ChunkClientOptions } from '../src/chunk/chunk-client.js';
import { authLimits } from '../src/limits.js';
import { ChunkStore, DataServer, type TransportChoice } from '../src/index.js';
import { benchDir } from './lib.js';

export type ServerMode = 'child' | 'inproc';

export function parseServerMode(raw: string | undefined): ServerMode {
  const mode = raw ?? 'child';
  if (mode !== 'child' && mode !== 'inproc') throw new Error('--server must be child or inproc');
  return mode;
}

export function parseTransport(raw: string | undefined): TransportChoice {
  const transport = raw ?? 'tcp';
  if (transport !== 'tcp' && transport !== 'rdma' && transport !== 'auto') throw new Error('--transport must be tcp, rdma or auto');
  return transport;
}

/**
 * With `secret` the server authenticates connections and checks capabilities (design §10);
 * with `encrypt` too, it encrypts every TCP connection (encryptData). `metrics` false: the
 * server process runs with MILLPOND_METRICS=off (native counting off; child servers only, since
 * the switch is per process).
 */
export function startServer(mode: ServerMode, storeDir: string, transport: TransportChoice, ioThreads: number,
  secret?: Buffer, encrypt = false, metrics = true): Promise<ServerHandle> {
  if (mode !== 'child' && !metrics) throw new Error('a server with metrics off needs --server child (MILLPOND_METRICS is per process)');
  return mode === 'child' ? startChildServer(storeDir, transport, ioThreads, secret, encrypt, metrics) : startInprocServer(storeDir, transport, ioThreads, secret, encrypt);
}

/** One side of an auth-on/auth-off comparison: a server, a client for it, what to send. */
export interface AuthSide {
  auth: boolean;
  /** The server encrypts (encryptData; auth on too). */
  encrypt: boolean;
  /** The server counts native metrics (MILLPOND_METRICS not off). */
  metrics: boolean;
  server: ServerHandle;
  client: ChunkClient;
  /** A capability for the bench's inode (auth on), else undefined. */
  capability: Buffer | undefined;
  /** Chain-write options for a write (both sides write through chain 1, as clients must with auth). */
  chain(): { chain: { chainId: number; chainVersion: number; clientId: number; requestId: number }; capability?: Buffer };
}

/**
 * Two servers, one with a cluster secret and one without, and a client for each (a user's
 * token for the first, with a capability for `inode`), so a bench can time the same work with
 * authentication on and off in one run; with `encrypted`, a third with the secret and
 * encryptData (`enc`); with `metricsOff` (child servers), one with the secret and native
 * metrics off (`moff`: metrics' cost is on / moff).
 */
export async function startAuthPair(mode: ServerMode, dir: string, transport: TransportChoice, ioThreads: number,
  client: ChunkClientOptions, inode: bigint, encrypted = false, metricsOff = false): Promise<{ on: AuthSide; off: AuthSide; enc?: AuthSide; moff?: AuthSide; close(): Promise<unknown[]> }> {
  const secret = randomBytes(32);
  const sides: AuthSide[] = [];
  const kinds: Array<{ auth: boolean; encrypt: boolean; metrics: boolean }> = [{ auth: true, encrypt: false, metrics: true }, { auth: false, encrypt: false, metrics: true }];
  if (encrypted) kinds.push({ auth: true, encrypt: true, metrics: true });
  if (metricsOff) kinds.push({ auth: true, encrypt: false, metrics: false });
  for (const { auth, encrypt, metrics } of kinds) {
    const server = await startServer(mode, join(dir, !metrics ? 'store-moff' : encrypt ? 'store-enc' : auth ? 'store-auth' : 'store-noauth'), transport, ioThreads,
      auth ? secret : undefined, encrypt, metrics);
    const c = new ChunkClient({ ...client, ...(auth ? { credentials: { token: formatToken(mintToken(secret, 1000)) } } : {}) });
    const capability = auth ? new CapabilitySigner(secret, authLimits.capabilityTtlMsMax).sign(inode, RIGHT_READ | RIGHT_WRITE) : undefined;
    let requestId = 1;
    sides.push({
      auth, encrypt, metrics, server, client: c, capability,
      chain: () => ({ chain: { chainId: 1, chainVersion: 1, clientId: auth ? 1 : 2, requestId: requestId++ }, ...(capability ? { capability } : {}) }),
    });
  }
  return {
    on: sides[0]!, off: sides[1]!, ...(encrypted ? { enc: sides[2]! } : {}), ...(metricsOff ? { moff: sides[sides.length - 1]! } : {}),
    async close() {
      const stats = [];
      for (const s of sides.splice(0)) {
        s.client.close();
        stats.push(await s.server.stop());
      }
      return stats;
    },
  };
}

export interface ServerHandle {
  address: string;
  /** Stops the server and returns its stats (the request counters and transports). */
  stop(): Promise<unknown>;
}

export async function startChildServer(storeDir: string, transport: TransportChoice, ioThreads: number, secret?: Buffer,
  encrypt = false, metrics = true): Promise<ServerHandle> {
  const env = { ...process.env };
  if (metrics) delete env.MILLPOND_METRICS;
  else env.MILLPOND_METRICS = 'off';
  if (secret) env.MILLPOND_BENCH_SECRET = secret.toString('hex');
  else delete env.MILLPOND_BENCH_SECRET;
  if (encrypt) env.MILLPOND_BENCH_ENCRYPT = '1';
  else delete env.MILLPOND_BENCH_ENCRYPT;
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(benchDir, 'server-process.ts'),
    storeDir, transport, String(ioThreads)], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.done) throw new Error('the data server process exited before it listened');
  const { address } = JSON.parse(first.value) as { address: string };
  return {
    address,
    async stop() {
      child.stdin!.end();
      const last = await lines.next();
      return last.done ? null : (JSON.parse(last.value) as { stats: unknown }).stats;
    },
  };
}

export async function startInprocServer(storeDir: string, transport: TransportChoice, ioThreads: number, secret?: Buffer,
  encrypt = false): Promise<ServerHandle> {
  const store = await ChunkStore.open(storeDir, { directIo: false, syncWrites: false });
  const server = await DataServer.start(store, { host: '127.0.0.1', transport, ioThreads, ...(secret ? { clusterSecret: secret } : {}), encryptData: encrypt });
  server.setChain(1, { chainVersion: 1, head: true });
  return {
    address: server.address,
    async stop() {
      const stats = server.stats();
      await server.stop();
      store.close();
      return stats;
    },
  };
}
