import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { ChunkClient, ChunkStore, DataServer, MillpondError, crc32c } from '../../src/index.js';
import { killHard, spawnScript, waitForLine } from '../support/child.js';
import { tempDir } from '../support/tmp.js';

async function codeOf(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(MillpondError);
  return (e as MillpondError).code;
}

describe('ChunkClient against data servers', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function startServers(n: number): Promise<DataServer[]> {
    const servers: DataServer[] = [];
    for (let i = 0; i < n; i++) {
      const t = tempDir(`srv${i}`);
      const store = await ChunkStore.open(t.dir, { syncWrites: false });
      const server = await DataServer.start(store, { transport: 'tcp' });
      cleanups.push(async () => { await server.stop(); store.close(); t.cleanup(); });
      servers.push(server);
    }
    return servers;
  }

  function newClient(options = {}): ChunkClient {
    const client = new ChunkClient({ transport: 'tcp', ...options });
    cleanups.push(() => client.close());
    return client;
  }

  it('writes and reads chunks striped over several servers in parallel', async () => {
    const servers = await startServers(3);
    const client = newClient({ inflightBytesMax: 8 << 20 }); // forces queueing behind the budget
    const chunks = Array.from({ length: 24 }, (_, index) => {
      const data = Buffer.alloc(1 << 20 + (index % 3), index);
      data.writeUInt32LE(index * 7919, 100);
      return { index, data, server: servers[index % servers.length]! };
    });
    const metas = await Promise.all(chunks.map((c) => client.write(c.server.address, { inode: 9n, index: c.index }, 0, c.data)));
    metas.forEach((m, i) => expect(m.checksum).toBe(crc32c(chunks[i]!.data)));
    const reads = await Promise.all(chunks.map((c) => client.read(c.server.address, { inode: 9n, index: c.index }, 0, c.data.length)));
    reads.forEach((r, i) => expect(r.data.equals(chunks[i]!.data)).toBe(true));
    for (const s of servers) expect(s.stats().writes).toBe(8);
    expect(client.stats().transports.tcp!.connectionsOpened).toBe(3);
  });

  it('serves many small reads in one batch, each landing at its buffer offset', async () => {
    const [server] = await startServers(1);
    const client = newClient();
    const data = Buffer.alloc(256 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
    await client.write(server!.address, { inode: 3n, index: 0 }, 0, data);
    const reads = Array.from({ length: 64 }, (_, i) => ({
      chunk: { inode: 3n, index: 0 }, offset: ((i * 37) % 64) * 4096, length: 4096, bufferOffset: i * 4096,
    }));
    reads.push({ chunk: { inode: 3n, index: 99 }, offset: 0, length: 4096, bufferOffset: 64 * 4096 });
    const target = Buffer.alloc(65 * 4096, 0xee);
    const results = await client.readBatch(server!.address, reads, target);
    results.slice(0, 64).forEach((r, i) => {
      expect(r).toEqual({ bytesRead: 4096, code: null });
      const offset = reads[i]!.offset;
      expect(target.subarray(i * 4096, (i + 1) * 4096).equals(data.subarray(offset, offset + 4096))).toBe(true);
    });
    expect(results[64]).toEqual({ bytesRead: 0, code: 'ENOENT' });
    expect(server!.stats().batchReadEntries).toBe(65);
  });

  it('fails fast with ECONNREFUSED when no server listens', async () => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as { port: number }).port;
    probe.close();
    await once(probe, 'close');
    const client = newClient();
    expect(await codeOf(client.ping(`127.0.0.1:${port}`))).toBe('ECONNREFUSED');
  });

  it('times out a request to a server that never answers', async () => {
    const silent: Server = createServer((socket) => socket.on('data', () => {}));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    cleanups.push(() => new Promise<void>((r) => { silent.close(() => r()); }));
    const client = newClient({ timeoutMs: 300 });
    const started = Date.now();
    expect(await codeOf(client.ping(`127.0.0.1:${(silent.address() as { port: number }).port}`))).toBe('ETIMEDOUT');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('fails in-flight requests with ECONNRESET when the server process is SIGKILLed, then reconnects', async () => {
    const t = tempDir('killed');
    cleanups.push(t.cleanup);
    const child = spawnScript('serve.ts', [t.dir]);
    cleanups.push(() => killHard(child));
    const [, address] = await waitForLine(child, /^listening (\S+)$/);
    const client = newClient();
    const data = Buffer.alloc(4 << 20, 1);
    await client.write(address!, { inode: 1n, index: 0 }, 0, data);
    const inflight = Array.from({ length: 64 }, () => client.read(address!, { inode: 1n, index: 0 }, 0, data.length)
      .then(() => 'ok', (e: MillpondError) => e.code));
    await new Promise((r) => setTimeout(r, 20));
    await killHard(child);
    const outcomes = await Promise.all(inflight); // every promise settles: no hang
    expect(outcomes.every((o) => o === 'ok' || o === 'ECONNRESET')).toBe(true);
    expect(outcomes).toContain('ECONNRESET');
    const after = await client.ping(address!).then(() => 'ok', (e: MillpondError) => `${e.code} ${e.message}`);
    expect(after).toMatch(/^ECONNREFUSED/); // a new connection is tried

    const restarted = spawnScript('serve.ts', [t.dir]);
    cleanups.push(() => killHard(restarted));
    const [, again] = await waitForLine(restarted, /^listening (\S+)$/);
    const { data: back } = await client.read(again!, { inode: 1n, index: 0 }, 0, data.length);
    expect(back.equals(data)).toBe(true); // acknowledged data survived the kill
  });

  it('settles everything in flight with ECLOSED when closed', async () => {
    const [server] = await startServers(1);
    const client = new ChunkClient({ transport: 'tcp' });
    await client.write(server!.address, { inode: 2n, index: 0 }, 0, Buffer.alloc(4 << 20));
    const pending = Array.from({ length: 32 }, () => client.read(server!.address, { inode: 2n, index: 0 }, 0, 4 << 20)
      .then(() => 'ok', (e: MillpondError) => e.code));
    client.close();
    const outcomes = await Promise.all(pending);
    expect(outcomes.filter((o) => o !== 'ok' && o !== 'ECLOSED')).toEqual([]);
    expect(await codeOf(client.ping(server!.address))).toBe('ECLOSED');
  });

  it('reports that rdma is unavailable here with ENODEV, while auto falls back to TCP', async () => {
    const { rdmaProbe } = await import('../../src/index.js');
    if (rdmaProbe().available) return; // a machine with a real RDMA device: covered by test/rdma
    expect(() => new ChunkClient({ transport: 'rdma' })).toThrow(expect.objectContaining({ code: 'ENODEV' }));
    const t = tempDir('nordma');
    cleanups.push(t.cleanup);
    const store = await ChunkStore.open(t.dir);
    await expect(DataServer.start(store, { transport: 'rdma' })).rejects.toMatchObject({ code: 'ENODEV' });
    const server = await DataServer.start(store, { transport: 'auto' });
    cleanups.push(async () => { await server.stop(); store.close(); });
    const client = newClient({ transport: 'auto' });
    await client.write(server.address, { inode: 1n, index: 1 }, 0, Buffer.from('over tcp'));
    expect(client.stats().transports.rdma).toBeUndefined();
    expect(client.stats().transports.tcp!.bytesSent).toBeGreaterThan(0);
  });
});
