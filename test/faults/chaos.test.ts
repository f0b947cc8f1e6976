// Chaos: writers recording every acknowledged write, a seeded nemesis that SIGKILLs and
// SIGSTOPs real storage daemons, the meta server and mgmtd instances on a schedule, then every
// acknowledged byte is checked on every replica (each chunk read from each target directly).
//
// Writers: file writers through the FileSystem API (meta sessions, positioned writes that
// straddle chunks, overwrites of earlier ranges, close publishing the length), each write
// retried with the same bytes until acknowledged; and the chunk-level Writer of the cluster
// tests (whole-chunk replace writes by generation, straight to the chains).
//
// The seed is printed; MILLPOND_CHAOS_SEED=<n> replays a schedule (the nemesis's choices and
// timing, the writers' sizes and offsets; process timing still varies).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { RoutingClient } from '../../src/cluster/routing-client.js';
import { crc32c } from '../../src/index.js';
import { FileClient } from '../../src/fs/file-data.js';
import { FileSystem } from '../../src/fs/file-system.js';
import { chainOfChunk, fileChains } from '../../src/fs/layout.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import type { FileLayout } from '../../src/protocol/meta-types.js';
import { CHAINS, Cluster, Writer } from '../cluster/support/cluster.js';
import { freePort, sleep, startMeta, startMgmtd, until, type Proc } from '../cluster/support/processes.js';
import { chunkPattern } from '../support/pattern.js';
import { tempDir } from '../support/tmp.js';

const SEED = Number(process.env.MILLPOND_CHAOS_SEED ?? 20261201);
const CHUNK = 64 * 1024;
const NEMESIS_MS = 40_000;
const FILE_WORKERS = 3;
const WRITE_RETRY_MS = 30_000; // a file write is retried (same bytes) this long before it counts as lost

/** mulberry32: a small seeded PRNG, so a schedule replays from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface WrittenFile {
  path: string;
  /** Every acknowledged byte, in place (the writers never leave holes). */
  model: Buffer;
  /** The end of the furthest acknowledged write. */
  ackedEnd: number;
  closed: boolean;
}

describe('chaos', () => {
  const t = tempDir('chaos');
  const log: string[] = [];
  const say = (line: string) => {
    const stamped = `[chaos +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`;
    log.push(stamped);
    console.log(stamped);
  };
  let started = Date.now();
  let cluster: Cluster;
  let meta: Proc;
  let metaEndpoint: string;
  const stopped = new Set<Proc>();

  beforeAll(async () => {
    console.log(`chaos seed ${SEED} (replay: MILLPOND_CHAOS_SEED=${SEED})`);
    cluster = await Cluster.start(2);
    metaEndpoint = `tcp://127.0.0.1:${await freePort()}`;
    meta = await startMeta(join(t.dir, 'meta.db'), metaEndpoint, cluster.mgmtdEndpoints, ['--secret-file', cluster.keys.secretFile, '--admin-token-file', cluster.keys.adminTokenFile]);
  }, 60_000);

  afterAll(async () => {
    for (const p of stopped) p.child.kill('SIGCONT');
    await meta?.kill();
    await cluster?.stop();
    t.cleanup();
  });

  it(`keeps every acknowledged byte on every replica through kills and pauses (seed ${SEED})`, async () => {
    started = Date.now();
    const random = prng(SEED);
    const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));

    // ---- writers
    const metaClient = new MetaClient(metaEndpoint, { timeoutMs: 1_500, attemptsMax: 30, auth: cluster.keys.admin });
    const chunks = new ChunkClient({ transport: 'tcp', timeoutMs: 3_000, credentials: cluster.dataCredentials }); // verifies replicas
    const routing = new RoutingClient({ mgmtd: new MgmtdClient(cluster.mgmtdEndpoints, { timeoutMs: 500, auth: cluster.keys.admin }), chunkClient: chunks, pollMs: 200 });
    await routing.refresh();
    const fileClient = new FileClient({
      mgmtd: cluster.mgmtdEndpoints, auth: cluster.keys.admin, credentials: cluster.dataCredentials, transport: 'tcp',
      timeoutMs: 3_000, mgmtdTimeoutMs: 500, routingPollMs: 200, writeRetryMs: 20_000,
    });
    const fs = new FileSystem(metaClient, metaClient.as({ uid: 0, gid: 0 }), routing, fileClient);
    await fs.mkdir('/c');
    await fs.setLayout('/c', { chunkSizeBytes: CHUNK, stripeSize: CHAINS });
    const chunkWriter = new Writer(cluster, 12, 2);

    const files: WrittenFile[] = [];
    const lost: string[] = []; // writes or closes that never succeeded within their retry window
    let acks = 0;
    let stopWriters = false;

    const fileWorker = async (w: number, rand: () => number) => {
      for (let n = 0; !stopWriters; n++) {
        const size = CHUNK / 2 + Math.floor(rand() * 3 * CHUNK);
        const file: WrittenFile = { path: `/c/w${w}-${n}`, model: Buffer.alloc(size), ackedEnd: 0, closed: false };
        const handle = await retry(`open ${file.path}`, () => fs.open(file.path, 'w'));
        if (!handle) return;
        files.push(file);
        const write = async (position: number, data: Buffer) => {
          const ok = await retry(`write ${file.path} @${position}+${data.length}`, () => handle.write(data, position));
          if (ok === undefined) return false;
          data.copy(file.model, position);
          file.ackedEnd = Math.max(file.ackedEnd, position + data.length);
          acks++;
          return true;
        };
        for (let at = 0; at < size && !stopWriters;) {
          const length = Math.min(size - at, 1 + Math.floor(rand() * 40 * 1024));
          if (!(await write(at, piece(rand, length)))) return;
          at += length;
          if (rand() < 0.3) { // overwrite an acknowledged range with new bytes
            const from = Math.floor(rand() * at);
            if (!(await write(from, piece(rand, Math.min(at - from, 1 + Math.floor(rand() * 20 * 1024)))))) return;
          }
        }
        const closed = await retry(`close ${file.path}`, () => handle.close().then(() => true));
        if (!closed) return;
        file.closed = true;
      }
    };
    /** Runs `op` until it succeeds or WRITE_RETRY_MS pass (then records it as lost). */
    const retry = async <T>(what: string, op: () => Promise<T>): Promise<T | undefined> => {
      const deadline = Date.now() + WRITE_RETRY_MS;
      for (let attempt = 1; ; attempt++) {
        try {
          return await op();
        } catch (err) {
          if (Date.now() > deadline || what.startsWith('close')) { // a close is not retried: the handle is closed either way
            lost.push(`${what} after ${attempt} attempts: ${(err as Error).message}`);
            return undefined;
          }
          await sleep(200);
        }
      }
    };

    chunkWriter.start();
    const workers = Array.from({ length: FILE_WORKERS }, (_, w) => fileWorker(w, prng(SEED * 31 + w)));

    // ---- nemesis
    const storageFaults = ['kill-storage', 'stop-storage'] as const;
    const actions = [...storageFaults, ...storageFaults, 'kill-meta', 'stop-meta', 'kill-mgmtd', 'stop-mgmtd'] as const;
    const counts: Record<string, number> = {};
    const allServing = () => cluster.waitStates({ 101: 'serving', 102: 'serving', 103: 'serving' }, 10_000).then(() => true, () => false);
    while (Date.now() - started < NEMESIS_MS) {
      const action = actions[Math.floor(random() * actions.length)]!;
      const faultMs = between(800, 3_000);
      counts[action] = (counts[action] ?? 0) + 1;
      if (action === 'kill-storage' || action === 'stop-storage') {
        // One storage fault at a time: the chains (length 3) keep two replicas meanwhile.
        if (!(await allServing())) say('targets not all serving 10 s after the last fault; going on');
        const node = between(1, 3);
        const proc = cluster.storage.get(node)!;
        if (action === 'kill-storage') {
          say(`SIGKILL storage node ${node}; restart in ${faultMs} ms`);
          await proc.kill();
          await sleep(faultMs);
          await cluster.startNode(node);
        } else {
          say(`SIGSTOP storage node ${node} for ${faultMs} ms`);
          stopped.add(proc);
          proc.child.kill('SIGSTOP');
          await sleep(faultMs);
          proc.child.kill('SIGCONT');
          stopped.delete(proc);
        }
      } else if (action === 'kill-meta') {
        say(`SIGKILL meta; restart in ${faultMs} ms`);
        await meta.kill();
        await sleep(faultMs);
        meta = await startMeta(join(t.dir, 'meta.db'), metaEndpoint, cluster.mgmtdEndpoints, ['--secret-file', cluster.keys.secretFile, '--admin-token-file', cluster.keys.adminTokenFile]);
      } else if (action === 'stop-meta') {
        say(`SIGSTOP meta for ${faultMs} ms`);
        stopped.add(meta);
        meta.child.kill('SIGSTOP');
        await sleep(faultMs);
        meta.child.kill('SIGCONT');
        stopped.delete(meta);
      } else {
        const i = between(0, cluster.mgmtd.length - 1);
        const proc = cluster.mgmtd[i]!;
        if (action === 'kill-mgmtd') {
          say(`SIGKILL mgmtd ${i}; restart in ${faultMs} ms`);
          await proc.kill();
          await sleep(faultMs);
          cluster.mgmtd[i] = await startMgmtd(cluster.db, cluster.mgmtdEndpoints[i]!, cluster.keys.secretFile);
        } else {
          say(`SIGSTOP mgmtd ${i} for ${faultMs} ms`);
          stopped.add(proc);
          proc.child.kill('SIGSTOP');
          await sleep(faultMs);
          proc.child.kill('SIGCONT');
          stopped.delete(proc);
        }
      }
      await sleep(between(200, 800));
    }
    say(`nemesis done: ${JSON.stringify(counts)}; ${acks} file writes and ${chunkWriter.acks} chunk writes acknowledged`);
    expect(Object.keys(counts).length, 'the nemesis did several kinds of faults').toBeGreaterThanOrEqual(3);

    // ---- heal, stop the writers, let every target return
    stopWriters = true;
    await chunkWriter.stop();
    await Promise.all(workers);
    const healed = await cluster.waitStates({ 101: 'serving', 102: 'serving', 103: 'serving' }, 30_000);
    say(`healed: every target serving (routing version ${healed.version})`);

    // ---- verify every acknowledged byte on every replica
    const mismatches: string[] = [];
    const { targets, chains, chainTables } = await routing.refresh();
    const address = new Map(targets.map((x) => [x.targetId, x.dataAddress]));
    const replicasOf = (chainId: number) => chains.find((c) => c.chainId === chainId)!.targets;
    const compare = async (what: string, chainId: number, chunk: { inode: bigint; index: number }, expected: Buffer) => {
      for (const targetId of replicasOf(chainId)) {
        try {
          const { data } = await chunks.read(address.get(targetId)!, chunk, 0, Math.max(expected.length, CHUNK * 8));
          if (!data.equals(expected)) {
            mismatches.push(`${what} on target ${targetId}: ${data.length} bytes (crc ${crc32c(data)}), acknowledged ${expected.length} (crc ${crc32c(expected)})`);
          }
        } catch (err) {
          mismatches.push(`${what} on target ${targetId}: ${(err as Error).message}`);
        }
      }
    };
    for (const file of files) {
      const inode = await metaClient.stat(file.path);
      const layout = inode.layout as FileLayout;
      const table = chainTables.find((x) => x.tableId === layout.chainTableId)!;
      const fileChainIds = fileChains(table.chainIds, layout.stripeSize, layout.seed);
      const acked = file.model.subarray(0, file.ackedEnd);
      if (file.closed) {
        if (inode.length !== acked.length) mismatches.push(`${file.path}: length ${inode.length}, acknowledged ${acked.length}`);
        const back = await fs.readFile(file.path);
        if (!back.equals(acked)) mismatches.push(`${file.path}: read back differs from what was acknowledged`);
      }
      for (let index = 0; index * CHUNK < acked.length; index++) {
        await compare(`${file.path} chunk ${index}`, chainOfChunk(fileChainIds, index), { inode: inode.id, index },
          acked.subarray(index * CHUNK, Math.min(acked.length, (index + 1) * CHUNK)));
      }
    }
    for (const [index, generation] of chunkWriter.acked) {
      await compare(`chunk writer chunk ${index}`, Writer.chainOf(index), { inode: 1n, index }, chunkPattern(index, generation));
    }
    say(`verified ${files.length} files (${files.filter((f) => f.closed).length} closed) and ${chunkWriter.acked.size} chunks on every replica`);

    fs.close();
    chunkWriter.close();
    expect(chunkWriter.errors, 'chunk writes that failed for good').toEqual([]);
    expect(lost, 'file operations that failed for good').toEqual([]);
    expect(mismatches, `replicas that differ from what was acknowledged (seed ${SEED}; nemesis log above)`).toEqual([]);
    expect(acks).toBeGreaterThan(50);
  }, 110_000);
});

/** `length` bytes derived from the writer's PRNG (cheap, and replayable from the seed). */
function piece(rand: () => number, length: number): Buffer {
  const data = Buffer.alloc(length);
  let x = Math.floor(rand() * 0xffffffff) | 1;
  for (let i = 0; i + 4 <= length; i += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    data.writeInt32LE(x | 0, i);
  }
  for (let i = length - (length % 4); i < length; i++) data[i] = i & 0xff;
  return data;
}
