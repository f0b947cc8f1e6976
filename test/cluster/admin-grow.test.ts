// Growing the chain table in use (issue 13 item 3): `millpond admin add-targets` appends chains
// to table 1 at a new table version while a file writer and a reader run, against real processes
// on loopback (mgmtd, storage daemons, a meta server, the CLI). Files written before the grow
// keep their chains and read back byte-exact (through the TS client and through the native
// client inside DuckDB); files created afterwards record the new version and have chunks on the
// new chains; rebalance then moves replicas onto the new target at its bounded rate; no
// acknowledged write is lost.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import type { AdminView } from '../../src/cli/admin.js';
import { connect } from '../../src/fs/index.js';
import { fileChainsIn } from '../../src/fs/file-chains.js';
import { chainOfChunk } from '../../src/fs/layout.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import type { FileLayout } from '../../src/protocol/meta-types.js';
import { tempDir } from '../support/tmp.js';
import { Cluster } from './support/cluster.js';
import { FileWriter } from './support/file-writer.js';
import { freePort, startMeta, until, type Proc } from './support/processes.js';

const run = promisify(execFile);
const extension = fileURLToPath(new URL('../../build/duckdb-ext/millpond.duckdb_extension', import.meta.url));
const CHUNK = 64 * 1024;

describe('admin add-targets: the table in use grows in place', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  }, 120_000);

  it('grows table 1 while a writer runs: old files keep their chains and verify, new files use the new chains, rebalance moves replicas onto the new target', async () => {
    // Table 1: chains 1..4 of 3 replicas over targets 101..104. Three new nodes join and the new
    // chain lands on them alone, so a client that shuffled an old file over the grown table would
    // look for some of its chunks on a chain none of whose replicas has them, and read zeros.
    const cluster = await Cluster.start(1, 4);
    cleanups.push(() => cluster.stop());
    const tmp = tempDir('admin-grow');
    cleanups.push(() => tmp.cleanup());
    const metaEndpoint = `tcp://127.0.0.1:${await freePort()}`;
    const meta: Proc = await startMeta(join(tmp.dir, 'meta.db'), metaEndpoint, cluster.mgmtdEndpoints,
      ['--secret-file', cluster.keys.secretFile, '--admin-token-file', cluster.keys.adminTokenFile]);
    cleanups.push(() => meta.kill());
    const common = ['--mgmtd', cluster.mgmtdEndpoints.join(','), '--data-dir', tmp.dir, '--server-key', cluster.keys.admin.serverKey, '--token-file', cluster.keys.adminTokenFile];
    const adminCli = async (...args: string[]) => (await run(process.execPath, ['dist/cli/main.js', 'admin', ...args, ...common], { timeout: 240_000 })).stdout;
    await until(async () => (await adminCli('list', 'nodes', '--json').catch(() => '')).startsWith('['), 20_000, 'mgmtd admits the admin token');
    const view = () => cluster.admin.admin<AdminView>('adminView');
    const metaAdmin = new MetaClient(metaEndpoint, { auth: cluster.keys.admin, timeoutMs: 5_000 });
    cleanups.push(() => metaAdmin.disconnect());
    const layoutOf = async (path: string) => {
      const inode = await metaAdmin.stat(path);
      return { inode: inode.id, length: inode.length, layout: inode.layout as FileLayout };
    };

    const fs = await connect({ meta: metaEndpoint, mgmtd: cluster.mgmtdEndpoints, token: cluster.keys.admin.token, serverKey: cluster.keys.admin.serverKey, transport: 'tcp' });
    cleanups.push(() => fs.close());
    await fs.mkdir('/data', { recursive: true });
    await fs.setLayout('/data', { chunkSizeBytes: CHUNK, stripeSize: 4 });
    // Keeps every file (filesMax above what it writes here): all of them verify at the end.
    const files = new FileWriter(fs, 100_000, 30);
    files.start();
    cleanups.push(() => files.stop());
    await until(() => files.written >= 15, 60_000, 'files written before the grow');

    // A file of our own, cut after the grow (meta's trim finds the cut chunk's chain).
    const trimmed = Buffer.alloc(3 * CHUNK, 0x5a);
    await fs.writeFile('/data/trim-me', trimmed);
    // Before: one table version of 4 chains; every file records version 1.
    const before = [...files.files.keys()];
    for (const path of before) expect((await layoutOf(path)).layout.chainTableVersion, path).toBe(1);

    await Promise.all([5, 6, 7].map((n) => cluster.startNode(n)));
    await cluster.waitStates({ 105: 'serving', 106: 'serving', 107: 'serving' }, 30_000);
    const written = files.written;
    const grown = await adminCli('add-targets', '--table', '1', '--chains', '1');
    expect(grown).toMatch(/chain table 1 v2: 5 chains, new 5; new targets 105,106,107;/);
    expect(await adminCli('list', 'chains')).toMatch(/^table 1 v2: chains 1,2,3,4,5 \(chains per version 4,5\)$/m);
    let v = await view();
    expect(v.chainTables).toEqual([{ tableId: 1, version: 2, chainIds: [1, 2, 3, 4, 5], chainCounts: [4, 5] }]);
    // Placement puts the new chain (3 replicas, as the table's) on the empty targets.
    expect([...v.chains.find((c) => c.chainId === 5)!.targets].sort()).toEqual([105, 106, 107]);

    // Meta learns the new version from routing within its poll: new files record version 2.
    const fresh = await until(async () => {
      const path = `/data/new-${Date.now()}`;
      await fs.writeFile(path, Buffer.alloc(CHUNK));
      return (await layoutOf(path)).layout.chainTableVersion === 2 && path;
    }, 30_000, 'a new file at table version 2');
    expect(fresh).toBeTruthy();
    // Files of 4 chunks over 4 of the 5 chains: their chunks are on the chains their layout
    // names, and across them the new chains hold chunks (read from the chains' targets).
    const r = await cluster.routing();
    const client = new ChunkClient({ transport: 'tcp', credentials: cluster.dataCredentials });
    cleanups.push(() => client.close());
    /** Every chunk of `path` is on every target of the chain its layout names (in routing `r`). */
    const placedAsLaidOut = async (path: string, data: Buffer) => {
      const { inode, layout } = await layoutOf(path);
      const chains = fileChainsIn(r, layout)!;
      const used: number[] = [];
      for (let index = 0; index * CHUNK < data.length; index++) {
        const chainId = chainOfChunk(chains, index);
        const chain = r.chains.find((c) => c.chainId === chainId)!;
        for (const targetId of chain.targets) {
          const got = await client.read(r.targets.find((t) => t.targetId === targetId)!.dataAddress, { inode, index }, 0, CHUNK)
            .catch((err: Error) => ({ data: Buffer.from(err.message) }));
          expect(got.data.equals(data.subarray(index * CHUNK, (index + 1) * CHUNK)), `${path} chunk ${index} on chain ${chainId} target ${targetId}`).toBe(true);
        }
        used.push(chainId);
      }
      return used;
    };
    const chunksOnChain = new Map<number, number>();
    for (let i = 0; i < 12; i++) {
      const path = `/data/grown-${i}`;
      const data = Buffer.alloc(4 * CHUNK, i + 1);
      await fs.writeFile(path, data);
      expect((await layoutOf(path)).layout.chainTableVersion, path).toBe(2);
      for (const chainId of await placedAsLaidOut(path, data)) chunksOnChain.set(chainId, (chunksOnChain.get(chainId) ?? 0) + 1);
      expect((await fs.readFile(path)).equals(data), path).toBe(true);
    }
    expect(chunksOnChain.get(5) ?? 0, `chunks per chain ${[...chunksOnChain]}`).toBeGreaterThan(0);

    // Files written before the grow still name version 1 and read back byte-exact; the writer
    // went on during the grow without an error.
    for (const path of before) {
      expect((await layoutOf(path)).layout.chainTableVersion, path).toBe(1);
      for (const chainId of await placedAsLaidOut(path, files.files.get(path)!)) expect(chainId, path).toBeLessThanOrEqual(4);
    }
    expect(files.errors).toEqual([]);
    expect(files.written).toBeGreaterThan(written);
    // A shrink of a version-1 file cuts the chunk on its version-1 chain, on every replica.
    await fs.truncate('/data/trim-me', CHUNK + 100);
    expect((await fs.readFile('/data/trim-me')).equals(trimmed.subarray(0, CHUNK + 100))).toBe(true);
    expect(await placedAsLaidOut('/data/trim-me', trimmed.subarray(0, CHUNK + 100))).toHaveLength(2);
    await files.verifyAll();

    // The native client (inside DuckDB) reads a file of each version byte-exact too.
    // (Old files: chains of version 1; a client that shuffled over the grown table would look
    // for their chunks on chains whose targets lack them.)
    expect(existsSync(extension), `${extension} (built by npm install)`).toBe(true);
    {
      const db = await DuckDBInstance.create(':memory:', { allow_unsigned_extensions: 'true' });
      const conn = await db.connect();
      cleanups.push(() => conn.closeSync());
      for (const sql of [`LOAD '${extension}'`, `SET millpond_meta = '${metaEndpoint}'`, `SET millpond_mgmtd = '${cluster.mgmtdEndpoints.join(',')}'`,
        `SET millpond_token_file = '${cluster.keys.adminTokenFile}'`, `SET millpond_server_key = '${cluster.keys.admin.serverKey}'`]) await conn.run(sql);
      for (const path of [...before, '/data/grown-0', '/data/grown-11']) {
        const rows = (await conn.runAndReadAll(`SELECT content FROM read_blob('millpond://${path}')`)).getRows();
        const bytes = Buffer.from((rows[0]![0] as { bytes: Uint8Array }).bytes);
        const want = files.files.get(path) ?? (await fs.readFile(path));
        expect(bytes.equals(want), `native read of ${path}`).toBe(true);
      }
    }

    // Rebalance moves replicas of the old chains onto targets 105..107 (bounded rate); then every
    // file verifies again and the spread is balanced.
    expect(await adminCli('rebalance', '--rate-mib-s', '50', '--wait')).toMatch(/balanced/);
    v = await view();
    const counts = v.targets.map((t) => t.replicas);
    expect(Math.max(...counts) - Math.min(...counts), `replicas per target ${counts}`).toBeLessThanOrEqual(1);
    expect(v.ops.moved.replicas).toBeGreaterThan(0);
    await files.stop();
    expect(files.errors).toEqual([]);
    await files.verifyAll();
    for (let i = 0; i < 12; i++) expect((await fs.readFile(`/data/grown-${i}`)).equals(Buffer.alloc(4 * CHUNK, i + 1))).toBe(true);
    console.log(`admin-grow: ${files.written} files written, ${files.reads} reads, moved ${v.ops.moved.replicas} replicas`);
  }, 400_000);
});
