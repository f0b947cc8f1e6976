// Chain tables that change while serving (issue 13 item 3): `millpond admin` against real
// processes on loopback (two mgmtd on one SQLite file, storage daemons, a meta server), with a
// file writer, a chunk writer and a reader running throughout. After each operation every
// file reads back byte-exact, every replica of every acknowledged chunk is the same, and the
// spread of chains is balanced.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkClient } from '../../src/chunk/chunk-client.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { connect } from '../../src/fs/index.js';
import { MetaClient } from '../../src/meta/meta-client.js';
import type { AdminView } from '../../src/cli/admin.js';
import { generationOf } from '../support/pattern.js';
import { tempDir } from '../support/tmp.js';
import { testKeys } from '../support/auth.js';
import { Cluster, Writer } from './support/cluster.js';
import { FileWriter } from './support/file-writer.js';
import { freePort, startMeta, until, type Proc } from './support/processes.js';

const run = promisify(execFile);

describe('admin: chain tables that change while serving', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) {
      const startedMs = Date.now();
      await c();
      if (Date.now() - startedMs > 5_000) console.error(`cleanup took ${Date.now() - startedMs} ms: ${c.toString()}`);
    }
  }, 180_000);

  it('grow + rebalance across an mgmtd failover, replace a dead target, drain + remove a node, remove a dead node: no acknowledged write lost, I/O goes on, the spread is balanced', async () => {
    const cluster = await Cluster.start(2, 3);
    cleanups.push(() => cluster.stop());
    const tmp = tempDir('admin');
    cleanups.push(() => tmp.cleanup());
    const metaEndpoint = `tcp://127.0.0.1:${await freePort()}`;
    const meta: Proc = await startMeta(join(tmp.dir, 'meta.db'), metaEndpoint, cluster.mgmtdEndpoints,
      ['--secret-file', cluster.keys.secretFile, '--admin-token-file', cluster.keys.adminTokenFile]);
    cleanups.push(() => meta.kill());

    // The CLI with the admin's token; and alice, a plain user.
    const cliBase = ['dist/cli/main.js', 'admin'];
    const common = ['--mgmtd', cluster.mgmtdEndpoints.join(','), '--data-dir', tmp.dir, '--server-key', cluster.keys.admin.serverKey];
    const adminCli = async (...args: string[]) => (await run(process.execPath, [...cliBase, ...args, ...common, '--token-file', cluster.keys.adminTokenFile], { timeout: 240_000 })).stdout;
    const metaAdmin = new MetaClient(metaEndpoint, { auth: cluster.keys.admin, timeoutMs: 5_000 });
    cleanups.push(() => metaAdmin.disconnect());
    const aliceFile = join(tmp.dir, 'alice.token');
    writeFileSync(aliceFile, (await metaAdmin.userAdd({ name: 'alice', uid: 1000, gid: 1000 })).token, { mode: 0o600 });
    // mgmtd admits the admin once meta pushed its tokens.
    await until(async () => (await adminCli('list', 'nodes', '--json').catch(() => '')).startsWith('['), 20_000, 'mgmtd admits the admin token');

    // Every operation is refused to alice (EACCES) and to a caller with no valid token (EAUTH).
    const refusal = async (file: string | undefined, ...args: string[]) => {
      const err = await run(process.execPath, [...cliBase, ...args, ...common, ...(file ? ['--token-file', file] : [])], { timeout: 60_000 }).then(() => undefined, (e: { stderr: string }) => e.stderr);
      return /millpond: (E[A-Z]+)/.exec(err ?? '')?.[1];
    };
    // (The CLI processes run at once: each is a node start-up, seconds on a loaded 2-core CI.)
    const refused = [['list', 'nodes'], ['create-chain-table', '--table', '9'], ['rebalance'], ['replace-target', '101', '102'], ['drain', '1'], ['remove-node', '1', '--force']];
    const codes = await Promise.all(refused.map((args) => refusal(aliceFile, ...args)));
    refused.forEach((args, i) => expect(codes[i], args.join(' ')).toBe('EACCES'));
    // Another cluster's admin token: not listed here.
    const other = testKeys();
    cleanups.push(() => other.cleanup());
    expect(await refusal(other.adminTokenFile, 'drain', '1')).toBe('EAUTH');
    const memberless = new MgmtdClient(cluster.mgmtdEndpoints, { auth: { token: (await metaAdmin.userAdd({ name: 'bob', uid: 1001, gid: 1001 })).token, serverKey: cluster.keys.admin.serverKey }, timeoutMs: 1_000, roundsMax: 1 });
    cleanups.push(() => memberless.close());
    await until(async () => (await memberless.admin('adminView').then(() => 'ok', (e: { code: string }) => e.code)) === 'EACCES', 10_000, 'bob refused with EACCES');

    const view = () => cluster.admin.admin<AdminView>('adminView');
    const fs = await connect({ meta: metaEndpoint, mgmtd: cluster.mgmtdEndpoints, token: cluster.keys.admin.token, serverKey: cluster.keys.admin.serverKey, transport: 'tcp' });
    cleanups.push(() => fs.close());
    await fs.mkdir('/data', { recursive: true });
    await fs.setLayout('/data', { chunkSizeBytes: 64 * 1024, stripeSize: 4 });
    // Few, small files (every move resyncs its targets' data): what is checked stays the same.
    const files = new FileWriter(fs, 60, 50);
    files.start();
    cleanups.push(() => files.stop());
    const chunks = new Writer(cluster, 24, 3, true);
    cleanups.push(() => chunks.close());
    cleanups.push(() => chunks.stop());
    chunks.start();
    await chunks.waitAcks(30, 20_000);
    await until(() => files.written >= 10, 30_000, 'some files written');

    const startedMs = Date.now();
    const phase = (what: string) => console.log(`admin test: ${what} at ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
    /** I/O went on during the operation, nothing failed; everything verifies; the spread is balanced. */
    const check = async (what: string, acksBefore: number, filesBefore: number, readsBefore: number, nodes: number[], final = false) => {
      expect(chunks.errors, what).toEqual([]);
      expect(files.errors, what).toEqual([]);
      expect(chunks.acks, `${what}: chunk writes went on`).toBeGreaterThan(acksBefore);
      expect(files.written, `${what}: file writes went on`).toBeGreaterThan(filesBefore);
      expect(files.reads, `${what}: file reads went on`).toBeGreaterThan(readsBefore);
      await files.verifyAll();
      const v = await view();
      const r = await cluster.routing();
      const client = new ChunkClient({ transport: 'tcp', credentials: cluster.dataCredentials });
      try {
        for (const [index, generation] of chunks.acked) {
          const chain = r.chains.find((c) => c.chainId === Writer.chainOf(index))!;
          expect(chain.targets.length, `${what}: chain ${chain.chainId} length`).toBe(3);
          const copies = await Promise.all(chain.targets.map((id) => client.read(r.targets.find((t) => t.targetId === id)!.dataAddress, { inode: 1n, index }, 0, 1 << 20)));
          // Writes go on meanwhile, so replicas may be a write apart; each must hold the
          // acknowledged generation or a later one (and, once writers stop, agree exactly).
          for (const c of copies) {
            if (final) expect(c.data.equals(copies[0]!.data), `${what}: chunk ${index} replicas agree`).toBe(true);
            if (!chunks.isPartial(index)) {
              expect(generationOf(index, c.data), `${what}: chunk ${index} on every replica`).toBeGreaterThanOrEqual(generation);
            } else {
              const block = (generation % 16) * 4096;
              expect(c.data.length, `${what}: chunk ${index} length`).toBeGreaterThanOrEqual(block + 8);
              const g = c.data.readUInt32LE(block + 4);
              expect(g >= generation && g % 16 === generation % 16, `${what}: partial chunk ${index} holds generation ${generation} (has ${g})`).toBe(true);
            }
          }
        }
      } finally {
        client.close();
      }
      const nodeOf = new Map(v.targets.map((t) => [t.targetId, t.nodeId]));
      for (const c of v.chains) expect(new Set(c.targets.map((id) => nodeOf.get(id))).size, `${what}: chain ${c.chainId} on distinct nodes`).toBe(c.targets.length);
      expect(v.nodes.filter((n) => n.kind === 'storage').map((n) => n.nodeId).sort(), what).toEqual(nodes);
      const counts = v.targets.filter((t) => t.state === 'serving').map((t) => t.replicas);
      expect(Math.max(...counts) - Math.min(...counts), `${what}: replicas per target ${counts}`).toBeLessThanOrEqual(1);
      expect(v.spread.balanced, `${what}: balanced`).toBe(true);
      return v;
    };
    const mark = () => [chunks.acks, files.written, files.reads] as const;

    // 1. Grow: node 4 joins; rebalance moves replicas onto it; the mgmtd primary dies midway
    //    and the standby continues the rebalance from the KV.
    let m = mark();
    await cluster.startNode(4);
    await cluster.waitStates({ 104: 'serving' }, 10_000);
    expect((await view()).targets.find((t) => t.targetId === 104)!.replicas).toBe(0);
    expect(await adminCli('rebalance', '--rate-mib-s', '1000')).toMatch(/rebalance on at 1000 MiB\/s/);
    await until(async () => (await view()).ops.moved.replicas >= 1, 60_000, 'a first replica moved');
    await cluster.mgmtd[0]!.kill();
    await cluster.mgmtd[1]!.waitFor(/^primary$/, 20_000);
    await until(async () => (await view()).spread.balanced, 120_000, 'balanced after grow');
    phase('grown');
    let v = await check('grow', ...m, [1, 2, 3, 4]);
    phase('grow: checked');
    expect(v.targets.find((t) => t.targetId === 104)!.replicas).toBe(3);
    expect(v.ops.rebalance).toBeUndefined(); // it stops once balanced
    const table = await adminCli('list', 'chains');
    expect(table).toMatch(/chain 1 v\d+: /);

    // 2. Replace a dead target: node 2 dies; target 105 (node 5) replaces 102 and resyncs.
    m = mark();
    phase('replace: start');
    await cluster.storage.get(2)!.kill();
    await cluster.waitStates({ 102: 'offline' }, 10_000);
    await cluster.startNode(5);
    await cluster.waitStates({ 105: 'serving' }, 10_000);
    phase('replace: 105 serving');
    const replaced = await adminCli('replace-target', '102', '105', '--wait');
    phase('replace: done');
    expect(replaced).toMatch(/chains still with 102: 0/);
    expect(await adminCli('remove-node', '2')).toMatch(/node 2 removed/);
    phase('replaced');
    v = await check('replace', ...m, [1, 3, 4, 5]);
    expect(v.targets.some((t) => t.targetId === 102)).toBe(false);

    // 3. Drain node 3 (progress shown), stop it, remove it.
    m = mark();
    await cluster.startNode(6);
    await cluster.waitStates({ 106: 'serving' }, 10_000);
    phase('drain: 106 serving');
    const drained = await adminCli('drain', '3', '--wait');
    phase('drain: done');
    expect(drained).toMatch(/node 3: \d+\/3 replicas moved/);
    expect(drained).toMatch(/node 3 drained/);
    expect(await refusal(cluster.keys.adminTokenFile, 'remove-node', '3')).toBe('EBUSY'); // still running
    await cluster.storage.get(3)!.kill();
    await until(async () => !(await view()).nodes.find((n) => n.nodeId === 3)!.alive, 10_000, 'node 3 dead');
    expect(await adminCli('remove-node', '3')).toMatch(/node 3 removed/);
    phase('drain: removed');
    await adminCli('rebalance', '--rate-mib-s', '1000', '--wait');
    phase('drained');

    // On a terminal (script(1) gives the CLI one) the wait is a progress bar with a rate and an ETA.
    const quoted = [process.execPath, ...cliBase, 'rebalance', '--rate-mib-s', '1000', '--wait', ...common, '--token-file', cluster.keys.adminTokenFile].map((w) => `'${w.replace(/'/g, `'\\''`)}'`);
    const onTty = (await run('script', ['-qfec', quoted.join(' '), '/dev/null'], { timeout: 240_000 })).stdout;
    expect(onTty).toMatch(/\r\x1b\[Krebalance \[#{30}\] 100% \d+\/\d+ replicas [\d.]+ replicas\/s ETA 0s\r?\n/);
    expect(onTty).toMatch(/^balanced\r?$/m);
    v = await check('drain', ...m, [1, 4, 5, 6]);

    // 4. A dead node removed for good: its replicas are replaced from the survivors.
    m = mark();
    await cluster.storage.get(6)!.kill();
    await cluster.waitStates({ 106: 'offline' }, 10_000);
    expect(await refusal(cluster.keys.adminTokenFile, 'remove-node', '6')).toBe('EBUSY'); // holds replicas: --force
    expect(await adminCli('remove-node', '6', '--force')).toMatch(/replaced from the survivors/);
    phase('remove: asked');
    await until(async () => !(await view()).nodes.some((n) => n.nodeId === 6), 120_000, 'node 6 removed');
    phase('remove: node 6 gone');
    await until(async () => (await view()).targets.every((t) => t.state === 'serving'), 30_000, 'all serving');
    phase('removed');
    v = await check('remove --force', ...m, [1, 4, 5]);
    expect(v.chains.every((c) => c.targets.length === 3)).toBe(true);

    // Writers stopped: every replica of every acknowledged chunk is the same.
    m = mark();
    await files.stop();
    await chunks.stop();
    await check('final', m[0] - 1, m[1] - 1, m[2] - 1, [1, 4, 5], true);
    phase('done');
  }, 600_000);
});
