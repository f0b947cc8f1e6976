/**
 * The data server the network benches talk to: in a child process (default: the client's
 * event loop and the server's threads then do not share a process, as in a deployment and as
 * iperf3 runs its two ends) or in this process. The store is buffered and unsynced, so the
 * benches measure the network path with chunks hot in the page cache.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
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

export function startServer(mode: ServerMode, storeDir: string, transport: TransportChoice, ioThreads: number): Promise<ServerHandle> {
  return mode === 'child' ? startChildServer(storeDir, transport, ioThreads) : startInprocServer(storeDir, transport, ioThreads);
}

export interface ServerHandle {
  address: string;
  /** Stops the server and returns its stats (the request counters and transports). */
  stop(): Promise<unknown>;
}

export async function startChildServer(storeDir: string, transport: TransportChoice, ioThreads: number): Promise<ServerHandle> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(benchDir, 'server-process.ts'),
    storeDir, transport, String(ioThreads)], { stdio: ['pipe', 'pipe', 'inherit'] });
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

export async function startInprocServer(storeDir: string, transport: TransportChoice, ioThreads: number): Promise<ServerHandle> {
  const store = await ChunkStore.open(storeDir, { directIo: false, syncWrites: false });
  const server = await DataServer.start(store, { host: '127.0.0.1', transport, ioThreads });
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
