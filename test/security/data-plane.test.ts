// The data plane of a cluster with a secret (design §10), attacked as issue 12 describes: real
// storage daemons (processes started with --secret-file), a meta server handing out
// capabilities, raw TCP, real clients with wrong keys and bad capabilities, and the local-read
// socket from another uid. Each attack fails with EAUTH or EACCES, is logged, changes nothing
// on disk, and the servers keep serving the cluster's real clients.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { CapabilitySigner, RIGHT_READ, RIGHT_WRITE, signCapability, decodeCapability } from '../../src/auth/capability.js';
import { SERVICE_NODE_ID } from '../../src/auth/data-plane.js';
import { capabilityKey, formatToken, mintToken } from '../../src/auth/keys.js';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import { RoutingClient } from '../../src/cluster/routing-client.js';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { fileChains, chainOfChunk } from '../../src/fs/layout.js';
import type { FileLayout } from '../../src/protocol/meta-types.js';
import { MetaClient, MetaServer, MetaService, SqliteKv } from '../../src/meta/index.js';
import { Cluster } from '../cluster/support/cluster.js';
import { until } from '../cluster/support/processes.js';
import { decodeHeader, HEADER_BYTES, statRequest } from '../support/frames.js';
import { RawConnection } from '../support/raw-socket.js';
import { tempDir } from '../support/tmp.js';
import { listAdmin } from '../support/auth.js';
import { errorCode } from '../support/error-code.js';

const CHUNK = 64 * 1024;
const EAUTH = 28;
const run = promisify(execFile);

const code = (p: Promise<unknown>) => errorCode(p, 'ok');

describe('authenticated data plane', () => {
  const t = tempDir('sec');
  let secret: Buffer; // the cluster's (Cluster makes it; every daemon holds it)
  let secretFile: string;
  let token: string; // user 1000's, listed in meta's users table
  let cluster: Cluster;
  let service: MetaService;
  let meta: MetaServer;
  let fs: FileSystem;
  let node: ChunkClient; // the cluster's own view: a node's key, no capabilities needed
  let attacker: ChunkClient; // a user's valid token, but sending what meta did not allow
  let inode: bigint;
  let layout: FileLayout;
  let content: Buffer;

  /** Data addresses of the chunk's chain, and what each replica holds (via a node's key). */
  async function replicas(index: number): Promise<Array<{ address: string; data: Buffer; version: number }>> {
    const routing = await cluster.routing();
    const table = routing.chainTables.find((x) => x.tableId === layout.chainTableId)!;
    const chainId = chainOfChunk(fileChains(table.chainIds, layout.stripeSize, layout.seed), index);
    const chain = routing.chains.find((c) => c.chainId === chainId)!;
    const out = [];
    for (const id of chain.targets) {
      const address = routing.targets.find((x) => x.targetId === id)!.dataAddress;
      const { data, meta: m } = await node.read(address, { inode, index }, 0, CHUNK);
      out.push({ address, data: Buffer.from(data), version: m.commitVersion });
    }
    return out;
  }

  beforeAll(async () => {
    cluster = await Cluster.start(1, 3);
    secret = cluster.keys.cluster.secret;
    secretFile = cluster.keys.secretFile;
    const kv = new SqliteKv(join(t.dir, 'meta.db'));
    await listAdmin(kv, cluster.keys);
    service = await MetaService.open(kv, { clusterSecret: secret, capabilityTtlMs: 3_000 });
    meta = await MetaServer.start(service, 'tcp://127.0.0.1:0', { auth: cluster.keys.cluster, mgmtd: cluster.mgmtdEndpoints });
    const admin = new MetaClient(meta.endpoint, { auth: cluster.keys.admin });
    try {
      token = (await admin.userAdd({ name: 'u1000', uid: 1000, gid: 1000 })).token;
      await admin.mkdir('/d');
      await admin.setattr('/d', { uid: 1000, gid: 1000 });
    } finally {
      admin.disconnect();
    }
    fs = await connect({ meta: meta.endpoint, mgmtd: cluster.mgmtdEndpoints, token, serverKey: cluster.keys.admin.serverKey });
    await fs.setLayout('/d', { chunkSizeBytes: CHUNK, stripeSize: 2 });
    content = randomBytes(3 * CHUNK + 100);
    await fs.writeFile('/d/f', content);
    const st = await service.stat({ uid: 0, gid: 0 }, '/d/f');
    inode = st.id;
    layout = st.layout as FileLayout;
    node = new ChunkClient({ transport: 'tcp', credentials: { nodeId: SERVICE_NODE_ID, clusterSecret: secret } });
    attacker = new ChunkClient({ transport: 'tcp', credentials: { token } });
  }, 90_000);

  afterAll(async () => {
    fs?.close();
    node?.close();
    attacker?.close();
    await meta?.close();
    service?.stop();
    await cluster?.stop();
    t.cleanup();
  });

  it('serves a token client with the capabilities meta handed out, renewing them past their lifetime', async () => {
    expect((await fs.readFile('/d/f')).equals(content)).toBe(true);
    const h = await fs.open('/d/f', 'r+');
    try {
      await new Promise((r) => setTimeout(r, 3_500)); // the open's capability (3 s) has expired
      const more = randomBytes(CHUNK);
      await h.write(more, CHUNK); // renewed before use: no EAUTH
      expect((await h.readAt(CHUNK, CHUNK)).equals(more)).toBe(true);
      more.copy(content, CHUNK);
    } finally {
      await h.close();
    }
    expect((await fs.readFile('/d/f')).equals(content)).toBe(true);
  }, 30_000);

  it('sends a token client\'s batched reads with the file\'s capability, so none is refused and read one by one', async () => {
    const batchRefusals = () => [...cluster.storage.values()].flatMap((p) => p.errLines).filter((l) => /refused batchRead/.test(l));
    const before = batchRefusals().length;
    const h = await fs.open('/d/f', 'r');
    try {
      const reads = [0, CHUNK - 10, 2 * CHUNK + 7, 3 * CHUNK].map((position) => ({ position, length: 100 }));
      const got = await h.readBatch(reads);
      expect(got.equals(Buffer.concat(reads.map((r) => content.subarray(r.position, r.position + r.length))))).toBe(true);
    } finally {
      await h.close();
    }
    // A refusal is logged at once, but its line reaches the test through a pipe: give it a moment.
    await new Promise((r) => setTimeout(r, 500));
    expect(batchRefusals().slice(before)).toEqual([]);
  });

  it('answers a raw request without the handshake with EAUTH, closes, logs it and keeps serving', async () => {
    const [address] = (await replicas(0)).map((r) => r.address);
    const raw = await RawConnection.open(address!);
    raw.send(statRequest(7n, inode, 0));
    const reply = decodeHeader(await raw.take(HEADER_BYTES));
    expect(reply.status).toBe(EAUTH);
    expect(reply.requestId).toBe(7n);
    expect(await raw.waitClosed()).toBe(true);
    raw.destroy();
    // Not even a read of a chunk's bytes: a connection that only sends garbage gets nothing.
    const junk = await RawConnection.open(address!);
    junk.send(Buffer.alloc(64, 0x41));
    expect(await junk.waitClosed()).toBe(true);
    expect((await junk.take(1, 100).catch(() => Buffer.alloc(0))).length).toBe(0);
    junk.destroy();
    const logged = () => [...cluster.storage.values()].some((p) => p.errLines.some((l) => /refused a connection from 127\.0\.0\.1:\d+: EAUTH/.test(l)));
    await until(logged, 5_000, 'the refusal in a storage log');
    expect((await fs.readFile('/d/f')).equals(content)).toBe(true); // still serving
  }, 30_000);

  it('refuses a node key or a token made from another secret, and servers without a secret refuse credentials', async () => {
    const [address] = (await replicas(0)).map((r) => r.address);
    const wrong = randomBytes(32);
    const fakeNode = new ChunkClient({ transport: 'tcp', credentials: { nodeId: 1, clusterSecret: wrong } });
    const fakeUser = new ChunkClient({ transport: 'tcp', credentials: { token: formatToken(mintToken(wrong, 0)) } });
    const anonymous = new ChunkClient({ transport: 'tcp' });
    try {
      expect(await code(fakeNode.remove(address!, { inode, index: 0 }))).toBe('EAUTH');
      expect(await code(fakeUser.read(address!, { inode, index: 0 }, 0, 10))).toBe('EAUTH');
      expect(await code(anonymous.remove(address!, { inode, index: 0 }))).toBe('EAUTH');
      // With another key, the server's proof does not check out either: the client stops there.
      await expect(fakeNode.ping(address!)).rejects.toThrow(/failed to prove it holds the cluster secret/);
    } finally {
      fakeNode.close();
      fakeUser.close();
      anonymous.close();
    }
    for (const r of await replicas(0)) expect(r.data.equals(content.subarray(0, CHUNK))).toBe(true);
  }, 30_000);

  it('refuses reads and writes with no, forged, expired or another inode\'s capability, and writes with a read one', async () => {
    const reps = await replicas(1);
    const head = reps[0]!.address;
    const chunk = { inode, index: 1 };
    const key = capabilityKey(secret);
    const good = new CapabilitySigner(secret).sign(inode, RIGHT_READ | RIGHT_WRITE);
    const forged = Buffer.from(good);
    forged[30]! ^= 1;
    const widened = signCapability(randomBytes(32), { inode, rights: RIGHT_READ | RIGHT_WRITE, expiresMs: Date.now() + 60_000 });
    const expired = signCapability(key, { inode, rights: RIGHT_READ | RIGHT_WRITE, expiresMs: Date.now() - 1 });
    const other = signCapability(key, { inode: inode + 1n, rights: RIGHT_READ | RIGHT_WRITE, expiresMs: Date.now() + 60_000 });
    const readOnly = signCapability(key, { inode, rights: RIGHT_READ, expiresMs: Date.now() + 60_000 });
    expect(decodeCapability(readOnly).rights).toBe(RIGHT_READ);

    for (const address of reps.map((r) => r.address)) {
      expect(await code(attacker.read(address, chunk, 0, 100))).toBe('EAUTH');
      for (const capability of [forged, widened, expired, other]) {
        expect(await code(attacker.read(address, chunk, 0, 100, { capability }))).toBe('EAUTH');
      }
      expect(await code(attacker.stat(address, chunk))).toBe('EAUTH');
      expect(await code(attacker.readBatch(address, [{ chunk, offset: 0, length: 10, bufferOffset: 0 }], Buffer.alloc(10)))).toBe('EAUTH');
      expect(await code(attacker.readBatch(address, [{ chunk, offset: 0, length: 10, bufferOffset: 0 }], Buffer.alloc(10), [other]))).toBe('EAUTH');
    }
    const routing = await cluster.routing();
    const chainOf = routing.chains.find((c) => routing.targets.find((x) => x.targetId === c.targets[0])!.dataAddress === head)!;
    const chain = { chainId: chainOf.chainId, chainVersion: chainOf.version, clientId: 99, requestId: 1 };
    const evil = Buffer.alloc(CHUNK, 0xee);
    expect(await code(attacker.write(head, chunk, 0, evil, { chain }))).toBe('EAUTH');
    for (const capability of [forged, expired, other]) {
      expect(await code(attacker.write(head, chunk, 0, evil, { chain, capability }))).toBe('EAUTH');
    }
    expect(await code(attacker.write(head, chunk, 0, evil, { chain, capability: readOnly }))).toBe('EACCES');
    // A good capability does not let a client skip the chain or pose as a predecessor.
    expect(await code(attacker.write(head, chunk, 0, evil, { commit: true, capability: good }))).toBe('EACCES');
    expect(await code(attacker.write(reps[1]!.address, chunk, 0, evil, { updateVersion: 99, capability: good }))).toBe('EACCES');

    const after = await replicas(1);
    for (const r of after) expect(r.data.equals(content.subarray(CHUNK, 2 * CHUNK))).toBe(true);
    expect(after.map((r) => r.version)).toEqual(reps.map((r) => r.version));
    // The same client with the capability meta gives reads fine.
    const { data } = await attacker.read(head, chunk, 0, 100, { capability: good });
    expect(data.equals(content.subarray(CHUNK, CHUNK + 100))).toBe(true);
  }, 30_000);

  it('lets no client remove, commit or list chunks, whatever capability it holds', async () => {
    const before = await replicas(2);
    const good = new CapabilitySigner(secret).sign(inode, RIGHT_READ | RIGHT_WRITE);
    await new Promise((r) => setTimeout(r, 1_100)); // refusals are logged at most once a second
    for (const { address, version } of before) {
      expect(await code(attacker.remove(address, { inode, index: 2 }))).toBe('EACCES');
      expect(await code(attacker.commit(address, { inode, index: 2 }, version + 1))).toBe('EACCES');
      expect(await code(attacker.list(address))).toBe('EACCES');
      expect(await code(attacker.stat(address, { inode, index: 2 }, good))).toBe('ok');
    }
    const after = await replicas(2);
    for (const r of after) expect(r.data.equals(content.subarray(2 * CHUNK, 3 * CHUNK))).toBe(true);
    expect(after.map((r) => r.version)).toEqual(before.map((r) => r.version));
    const refusals = [...cluster.storage.values()].flatMap((p) => p.errLines).filter((l) => /refused (remove|commit|list) from uid 1000/.test(l));
    expect(refusals.length).toBeGreaterThan(0); // logged (at most once a second per server)
    expect((await fs.readFile('/d/f')).equals(content)).toBe(true);
  }, 30_000);

  it('reads through the local socket only with a capability; other uids cannot use it', async () => {
    const local = new ChunkClient({ transport: 'auto', credentials: { token } });
    const reps = await replicas(0);
    const address = reps[0]!.address;
    const chunk = { inode, index: 0 };
    const good = new CapabilitySigner(secret).sign(inode, RIGHT_READ);
    try {
      // Warm the route: the first read probes the server's local socket.
      await local.read(address, chunk, 0, 100, { capability: good });
      await until(async () => {
        await local.read(address, chunk, 0, 100, { capability: good });
        return (local.stats().localReads?.reads ?? 0) > 0;
      }, 10_000, 'a short-circuit local read');
      expect(await code(local.read(address, chunk, 0, 100))).toBe('EAUTH');
      const expired = signCapability(capabilityKey(secret), { inode, rights: RIGHT_READ, expiresMs: 1 });
      expect(await code(local.read(address, chunk, 0, 100, { capability: expired }))).toBe('EAUTH');
    } finally {
      local.close();
    }

    const targetDir = cluster.targetDir(101);
    const runDir = join(targetDir, 'run');
    const socket = join(runDir, readdirSync(runDir).find((n) => n.endsWith('.sock'))!);
    expect(statSync(runDir).mode & 0o777).toBe(0o700);
    const probe = `const s=require('net').connect(${JSON.stringify(socket)});` +
      `s.on('connect',()=>{s.write(Buffer.alloc(56));s.on('data',()=>{console.log('answered');process.exit(0)});` +
      `s.on('close',()=>{console.log('closed');process.exit(0)})});s.on('error',e=>{console.log(e.code);process.exit(0)})`;
    const asNobody = () => run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '-e', probe], { cwd: '/' });
    expect((await asNobody()).stdout.trim()).toBe('EACCES'); // the 0700 directory
    // With every directory on the way opened up, the server's own check (SO_PEERCRED) still refuses.
    const opened: Array<[string, number]> = [];
    for (let d = runDir; d !== '/' && d !== dirname(d); d = dirname(d)) opened.push([d, statSync(d).mode & 0o7777]);
    opened.push([socket, statSync(socket).mode & 0o7777]);
    try {
      for (const [p] of opened) chmodSync(p, p === socket ? 0o777 : 0o755);
      // Connected, then closed by the server with no answer (the write may meet the close: EPIPE).
      expect(['closed', 'EPIPE', 'ECONNRESET']).toContain((await asNobody()).stdout.trim());
    } finally {
      for (const [p, mode] of opened) chmodSync(p, mode);
    }
    expect(cluster.storage.get(1)!.errLines.some((l) => /local read server: refused a connection from uid 65534/.test(l))).toBe(true);
  }, 60_000);

  it('keeps chunk files 0600 in 0700 directories, and meta.db 0600', () => {
    const dir = cluster.targetDir(101);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    let files = 0;
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          expect([p, statSync(p).mode & 0o777]).toEqual([p, 0o700]);
          walk(p);
        } else if (!e.name.endsWith('.sock')) {
          expect([p, statSync(p).mode & 0o777]).toEqual([p, 0o600]);
          files++;
        }
      }
    };
    walk(dir);
    expect(files).toBeGreaterThan(1);
    expect(statSync(join(t.dir, 'meta.db')).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(secretFile)).mode & 0o777).toBe(0o700);
  });

  it('lets the cluster\'s garbage collector remove an unlinked file\'s chunks with a node key', async () => {
    await fs.writeFile('/d/gone', randomBytes(CHUNK));
    const gone = (await service.stat({ uid: 0, gid: 0 }, '/d/gone')).id;
    await fs.unlink('/d/gone');
    const { collectGarbage } = await import('../../src/storage/garbage.js');
    const routing = new RoutingClient({ mgmtd: cluster.mgmtdEndpoints, chunkClient: node, cluster: cluster.keys.cluster });
    try {
      const stats = await collectGarbage(service, routing);
      expect(stats.chunksRemoved).toBeGreaterThan(0);
    } finally {
      routing.close();
    }
    const r = await cluster.routing();
    for (const target of r.targets) {
      const left = (await node.list(target.dataAddress)).filter((e) => e.chunk.inode === gone);
      expect(left).toEqual([]);
    }
  }, 30_000);
});
