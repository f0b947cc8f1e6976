// The data plane's optional encryption (cluster flag encryptData; design §10), seen from the
// wire: a recording TCP proxy between a real ChunkClient and a real data server keeps every
// byte each way. Without the flag the proxy reads the chunk's bytes; with it, neither the
// request's payload nor the reply's appears, the data still round-trips, a byte flipped on
// the way is refused with EAUTH (an integrity failure, not bad data), and a client that will
// not encrypt is refused with EENCRYPT.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { CapabilitySigner, RIGHT_READ, RIGHT_WRITE } from '../../src/auth/capability.js';
import { formatToken, mintToken } from '../../src/auth/keys.js';
import { ChunkClient, ChunkStore, DataServer, MillpondError } from '../../src/index.js';
import { tempDir } from '../support/tmp.js';

const CHUNK = 256 * 1024;
// Bytes of the handshake each way (hello 52 + proof 32; challenge 76 + verdict 8): a flip
// past them lands in the frames.
const HANDSHAKE_BYTES = 84;

/** A TCP proxy that records both directions and may flip one byte at an offset of either. */
class RecordingProxy {
  readonly toServer: Buffer[] = [];
  readonly toClient: Buffer[] = [];
  private readonly sockets: Socket[] = [];
  private constructor(private readonly server: Server, readonly address: string) {}

  static async start(target: { host: string; port: number }, tamper: { toServerAt?: number; toClientAt?: number } = {}): Promise<RecordingProxy> {
    let proxy!: RecordingProxy;
    const server = createServer((client) => {
      const upstream = createConnection(target.port, target.host);
      proxy.sockets.push(client, upstream);
      const pipe = (from: Socket, to: Socket, log: Buffer[], flipAt: number | undefined) => {
        let seen = 0;
        from.on('data', (data: Buffer) => {
          const chunk = Buffer.from(data);
          if (flipAt !== undefined && flipAt >= seen && flipAt < seen + chunk.length) chunk[flipAt - seen] ^= 0x01;
          seen += chunk.length;
          log.push(chunk);
          to.write(chunk);
        });
        from.on('close', () => to.destroy());
        from.on('error', () => to.destroy());
      };
      pipe(client, upstream, proxy.toServer, tamper.toServerAt);
      pipe(upstream, client, proxy.toClient, tamper.toClientAt);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    proxy = new RecordingProxy(server, `127.0.0.1:${port}`);
    return proxy;
  }

  /** Whether `needle` appears in what went either way. */
  saw(needle: Buffer): { toServer: boolean; toClient: boolean } {
    return { toServer: Buffer.concat(this.toServer).includes(needle), toClient: Buffer.concat(this.toClient).includes(needle) };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

async function failure(p: Promise<unknown>): Promise<MillpondError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(MillpondError);
  return err as MillpondError;
}

describe('encrypted data plane (encryptData)', () => {
  const secret = randomBytes(32);
  const token = formatToken(mintToken(secret, 1000));
  const capability = new CapabilitySigner(secret).sign(7n, RIGHT_READ | RIGHT_WRITE);
  const servers: Array<{ tmp: { cleanup: () => void }; store: ChunkStore; server: DataServer }> = [];
  const clients: ChunkClient[] = [];
  const proxies: RecordingProxy[] = [];
  let plain: DataServer;
  let encrypted: DataServer;
  let requestId = 1;

  async function server(encryptData: boolean): Promise<DataServer> {
    const tmp = tempDir(encryptData ? 'enc' : 'plain');
    const store = await ChunkStore.open(tmp.dir, { directIo: false, syncWrites: false });
    const s = await DataServer.start(store, { transport: 'tcp', clusterSecret: secret, encryptData });
    s.setChain(1, { chainVersion: 1, head: true });
    servers.push({ tmp, store, server: s });
    return s;
  }
  function client(options: { refuseEncryption?: boolean } = {}): ChunkClient {
    const c = new ChunkClient({ transport: 'tcp', credentials: { token, ...options } });
    clients.push(c);
    return c;
  }
  async function proxy(to: DataServer, tamper: { toServerAt?: number; toClientAt?: number } = {}): Promise<RecordingProxy> {
    const p = await RecordingProxy.start({ host: to.host, port: to.port }, tamper);
    proxies.push(p);
    return p;
  }
  const write = (c: ChunkClient, address: string, index: number, data: Buffer) =>
    c.write(address, { inode: 7n, index }, 0, data, { chain: { chainId: 1, chainVersion: 1, clientId: 9, requestId: requestId++ }, capability });
  const read = (c: ChunkClient, address: string, index: number) => c.read(address, { inode: 7n, index }, 0, CHUNK, { capability });

  beforeAll(async () => {
    plain = await server(false);
    encrypted = await server(true);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    for (const p of proxies) await p.close();
    for (const { server: s, store, tmp } of servers) {
      await s.stop();
      store.close();
      tmp.cleanup();
    }
  });

  it('without the flag a passive reader sees the chunk both ways; with it, neither way', async () => {
    for (const [target, expectSeen] of [[plain, true], [encrypted, false]] as const) {
      const data = randomBytes(CHUNK);
      const p = await proxy(target);
      const c = client();
      await write(c, p.address, 0, data);
      const got = await read(c, p.address, 0);
      expect(got.data.equals(data)).toBe(true);
      // Any 64 bytes of the chunk (the payload of the write, the data of the read's reply).
      const sample = data.subarray(100_000, 100_064);
      expect(p.saw(sample)).toEqual({ toServer: expectSeen, toClient: expectSeen });
      // The proxy carried the whole chunk each way, sealed or not.
      expect(Buffer.concat(p.toServer).length).toBeGreaterThan(CHUNK);
      expect(Buffer.concat(p.toClient).length).toBeGreaterThan(CHUNK);
    }
  }, 60_000);

  it('refuses a request altered on the way with EAUTH and stores nothing of it', async () => {
    const before = encrypted.stats().authFailures;
    const p = await proxy(encrypted, { toServerAt: HANDSHAKE_BYTES + 4096 }); // inside the write's payload
    const c = client();
    const err = await failure(write(c, p.address, 1, randomBytes(CHUNK)));
    expect(err.code).toBe('EAUTH');
    expect(err.message).toMatch(/integrity check/);
    expect(encrypted.stats().authFailures).toBe(before + 1);
    // Nothing was written: the chunk does not exist (a clean client over no proxy says so).
    const direct = client();
    expect((await failure(read(direct, encrypted.address, 1))).code).toBe('ENOENT');
  }, 60_000);

  it('refuses a reply altered on the way with EAUTH, never returning its bytes', async () => {
    const data = randomBytes(CHUNK);
    const direct = client();
    await write(direct, encrypted.address, 2, data);
    const p = await proxy(encrypted, { toClientAt: HANDSHAKE_BYTES + 4096 }); // inside the read's reply data
    const c = client();
    const err = await failure(read(c, p.address, 2));
    expect(err.code).toBe('EAUTH');
    expect(err.message).toMatch(/integrity check/);
    expect((await read(direct, encrypted.address, 2)).data.equals(data)).toBe(true); // the stored chunk is intact
  }, 60_000);

  it('refuses a client that will not encrypt with EENCRYPT, and serves it where encryption is off', async () => {
    const refusing = client({ refuseEncryption: true });
    const err = await failure(read(refusing, encrypted.address, 2));
    expect(err.code).toBe('EENCRYPT');
    expect(err.message).toMatch(/encrypts data connections/);
    const data = randomBytes(CHUNK);
    await write(refusing, plain.address, 3, data);
    expect((await read(refusing, plain.address, 3)).data.equals(data)).toBe(true);
  }, 60_000);
});
