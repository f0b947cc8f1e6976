// End to end over soft-RoCE: a storage server and clients writing and reading chunks with
// transport 'rdma', checksums verified, and the per-transport stats showing RDMA carried the
// bytes. Runs inside the VM of scripts/rxe-vm.sh (npm run test:rdma), where rxe0 sits on a
// dummy interface with address 10.11.0.1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { CapabilitySigner, RIGHT_READ, RIGHT_WRITE } from '../../src/auth/capability.js';
import { formatToken, mintToken } from '../../src/auth/keys.js';
import { ChunkClient, ChunkStore, DataServer, MillpondError, crc32c, rdmaProbe } from '../../src/index.js';
import { tempDir } from '../support/tmp.js';

const HOST = process.env.RXE_HOST ?? '10.11.0.1';

function pattern(bytes: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  let x = seed >>> 0;
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b.writeUInt32LE(x, i);
  }
  for (let i = bytes & ~3; i < bytes; i++) b[i] = i & 0xff;
  return b;
}

describe('RDMA data plane on soft-RoCE', () => {
  let tmp: { dir: string; cleanup: () => void };
  let store: ChunkStore;
  let server: DataServer;
  let client: ChunkClient;

  beforeAll(async () => {
    const probe = rdmaProbe();
    expect(probe.available, probe.detail).toBe(true);
    tmp = tempDir('rdma');
    store = await ChunkStore.open(tmp.dir, { directIo: false, syncWrites: false });
    server = await DataServer.start(store, { host: HOST, port: 0, transport: 'rdma' });
    client = new ChunkClient({ transport: 'rdma' });
  });

  afterAll(async () => {
    client?.close();
    await server?.stop();
    store?.close();
    tmp?.cleanup();
  });

  it('writes and reads chunks over RDMA with checksums verified', async () => {
    const sizes = [1, 4096, 100_000, 1 << 20, 4 << 20, (8 << 20) + 123];
    let bytes = 0;
    for (const [index, size] of sizes.entries()) {
      const data = pattern(size, index + 1);
      const chunk = { inode: 7n, index };
      const meta = await client.write(server.address, chunk, 0, data);
      expect(meta.length).toBe(size);
      expect(meta.checksum >>> 0).toBe(crc32c(data) >>> 0);
      const got = await client.read(server.address, chunk, 0, size);
      expect(got.data.length).toBe(size);
      expect(crc32c(got.data)).toBe(crc32c(data));
      expect(got.data.equals(data)).toBe(true);
      bytes += size;
    }
    const c = client.stats().transports;
    const s = server.stats().transports;
    console.log(`RDMA carried ${bytes} bytes each way: client rdma sent ${c.rdma?.bytesSent} ` +
      `received ${c.rdma?.bytesReceived}; server rdma received ${s.rdma?.bytesReceived} sent ${s.rdma?.bytesSent}; ` +
      `tcp client ${JSON.stringify(c.tcp ?? null)}`);
    expect(c.rdma!.bytesSent).toBeGreaterThanOrEqual(bytes);
    expect(c.rdma!.bytesReceived).toBeGreaterThanOrEqual(bytes);
    expect(s.rdma!.bytesReceived).toBeGreaterThanOrEqual(bytes);
    expect(s.rdma!.bytesSent).toBeGreaterThanOrEqual(bytes);
    expect(c.tcp?.bytesSent ?? 0).toBe(0);      // nothing went over TCP
    expect(s.tcp.bytesReceived).toBe(0);
  });

  it('keeps many requests in flight', async () => {
    const n = 48;
    const size = 512 * 1024 + 17;
    const datas = Array.from({ length: n }, (_, i) => pattern(size, 1000 + i));
    const t0 = performance.now();
    await Promise.all(datas.map((d, i) => client.write(server.address, { inode: 8n, index: i }, 0, d)));
    const t1 = performance.now();
    const reads = await Promise.all(datas.map((_, i) => client.read(server.address, { inode: 8n, index: i }, 0, size)));
    const t2 = performance.now();
    reads.forEach((r, i) => expect(r.data.equals(datas[i])).toBe(true));
    const mb = (n * size) / 1e6;
    console.log(`RDMA carried ${n} x ${size} B: writes ${(mb / ((t1 - t0) / 1000)).toFixed(1)} MB/s, ` +
      `reads ${(mb / ((t2 - t1) / 1000)).toFixed(1)} MB/s (qemu TCG)`);
  });

  it('reports server errors with their codes over RDMA', async () => {
    const err = await client.read(server.address, { inode: 99n, index: 0 }, 0, 10).catch((e) => e);
    expect(err).toBeInstanceOf(MillpondError);
    expect(err.code).toBe('ENOENT');
  });

  it('serves TCP and auto clients side by side', async () => {
    const tcp = new ChunkClient({ transport: 'tcp' });
    const auto = new ChunkClient({ transport: 'auto', localReads: false }); // this test is about RDMA
    try {
      const data = pattern(300_000, 42);
      await tcp.write(server.address, { inode: 9n, index: 0 }, 0, data);
      expect((await auto.read(server.address, { inode: 9n, index: 0 }, 0, data.length)).data.equals(data)).toBe(true);
      expect(tcp.stats().transports.tcp!.bytesSent).toBeGreaterThanOrEqual(data.length);
      expect(auto.stats().transports.rdma!.bytesReceived).toBeGreaterThanOrEqual(data.length);
    } finally {
      tcp.close();
      auto.close();
    }
  });

  it('a TCP-only server refuses rdma clients with ENODEV, and auto falls back to TCP', async () => {
    const other = await DataServer.start(store, { host: HOST, port: 0, transport: 'tcp' });
    const rdma = new ChunkClient({ transport: 'rdma' });
    const auto = new ChunkClient({ transport: 'auto', localReads: false }); // this test is about RDMA
    try {
      const err = await rdma.ping(other.address).catch((e) => e);
      expect(err).toBeInstanceOf(MillpondError);
      expect(err.code).toBe('ENODEV');
      await auto.ping(other.address);
      expect(auto.stats().transports.tcp!.messagesSent).toBeGreaterThan(0);
    } finally {
      rdma.close();
      auto.close();
      await other.stop();
    }
  });

  it('a server that goes away fails the waiting caller instead of hanging', async () => {
    const s2 = await DataServer.start(store, { host: HOST, port: 0, transport: 'rdma' });
    const c2 = new ChunkClient({ transport: 'rdma', timeoutMs: 60_000 });
    try {
      await c2.ping(s2.address);
      const pending = c2.read(s2.address, { inode: 7n, index: 4 }, 0, 4 << 20).then(() => null, (e) => e);
      await s2.stop();
      const err = await pending;
      // Either the read finished before the stop, or it failed with a connection error.
      if (err) expect(['ECONNRESET', 'ECLOSED', 'ECONNREFUSED']).toContain(err.code);
      const after = await c2.ping(s2.address).catch((e) => e);
      expect(after).toBeInstanceOf(MillpondError);
    } finally {
      c2.close();
    }
  });
});

// RDMA on a data server with a cluster secret (design §10): the queue pair is set up over a
// TCP socket that authenticated first, so a token client with a capability reads and writes
// over RDMA, and one with a wrong key never gets a queue pair. (In this file rather than its
// own: under qemu TCG each test file costs minutes of start-up.)
describe('authenticated RDMA data plane on soft-RoCE', () => {
  const secret = randomBytes(32);
  let tmp: { dir: string; cleanup: () => void };
  let store: ChunkStore;
  let server: DataServer;

  beforeAll(async () => {
    const probe = rdmaProbe();
    expect(probe.available, probe.detail).toBe(true);
    tmp = tempDir('rdma-auth');
    store = await ChunkStore.open(tmp.dir, { directIo: false, syncWrites: false });
    server = await DataServer.start(store, { host: HOST, port: 0, transport: 'rdma', clusterSecret: secret });
    server.setChain(1, { chainVersion: 1, head: true });
  });

  afterAll(async () => {
    await server?.stop();
    store?.close();
    tmp?.cleanup();
  });

  it('serves a token client with a capability over RDMA and refuses a wrong key', async () => {
    const client = new ChunkClient({ transport: 'rdma', credentials: { token: formatToken(mintToken(secret, 1000)) } });
    const wrong = new ChunkClient({ transport: 'rdma', credentials: { token: formatToken(mintToken(randomBytes(32), 1000)) } });
    try {
      const capability = new CapabilitySigner(secret).sign(9n, RIGHT_READ | RIGHT_WRITE);
      const data = randomBytes(1 << 20);
      const chain = { chainId: 1, chainVersion: 1, clientId: 5, requestId: 1 };
      await client.write(server.address, { inode: 9n, index: 0 }, 0, data, { chain, capability });
      const got = await client.read(server.address, { inode: 9n, index: 0 }, 0, data.length, { capability });
      expect(got.data.equals(data)).toBe(true);
      const err = await client.read(server.address, { inode: 9n, index: 0 }, 0, 10).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MillpondError);
      expect((err as MillpondError).code).toBe('EAUTH');
      expect(client.stats().transports.rdma?.bytesReceived ?? 0).toBeGreaterThan(data.length);
      const refused = await wrong.read(server.address, { inode: 9n, index: 0 }, 0, 10, { capability }).catch((e: unknown) => e);
      expect((refused as MillpondError).code).toBe('EAUTH');
      // The wrong key left mid-handshake: the server counts it when its handshake thread sees
      // the close, which may come after the client already returned EAUTH (slow under TCG).
      for (const deadlineMs = Date.now() + 10_000; server.stats().authFailures < 1 && Date.now() < deadlineMs;) await new Promise((r) => setTimeout(r, 20));
      expect(server.stats().authFailures).toBeGreaterThanOrEqual(1);
    } finally {
      client.close();
      wrong.close();
    }
  }, 120_000);

  it('serves RDMA from a server that encrypts its TCP connections (RDMA itself is not encrypted)', async () => {
    const dir = tempDir('rdma-enc');
    const encStore = await ChunkStore.open(dir.dir, { directIo: false, syncWrites: false });
    const enc = await DataServer.start(encStore, { host: HOST, port: 0, transport: 'rdma', clusterSecret: secret, encryptData: true });
    enc.setChain(1, { chainVersion: 1, head: true });
    const client = new ChunkClient({ transport: 'rdma', credentials: { token: formatToken(mintToken(secret, 1000)) } });
    try {
      const capability = new CapabilitySigner(secret).sign(9n, RIGHT_READ | RIGHT_WRITE);
      const data = randomBytes(1 << 20);
      await client.write(enc.address, { inode: 9n, index: 1 }, 0, data, { chain: { chainId: 1, chainVersion: 1, clientId: 6, requestId: 1 }, capability });
      expect((await client.read(enc.address, { inode: 9n, index: 1 }, 0, data.length, { capability })).data.equals(data)).toBe(true);
      expect(client.stats().transports.rdma?.bytesReceived ?? 0).toBeGreaterThan(data.length);
    } finally {
      client.close();
      await enc.stop();
      encStore.close();
      dir.cleanup();
    }
  }, 120_000);
});
