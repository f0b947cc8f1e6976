// Chain tables that change while serving, on separate network stacks (issue 13 items 3 and 5):
// storage daemons on netns hosts (two targets each), mgmtd, meta and the client beside the
// bridge. Grow from 4 to 5 storage hosts and rebalance; replace a dead host's targets by a new
// host's; drain a host and remove it. A writer and a reader run throughout; after each step
// every file verifies byte-exact and the spread of chains is balanced.
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { AdminView } from '../../src/cli/admin.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { testKeys } from '../support/auth.js';
import { tempDir } from '../support/tmp.js';
import { FileWriter } from '../cluster/support/file-writer.js';
import { FAST, startMeta, startMgmtd, until, type Proc } from '../cluster/support/processes.js';
import { hostsAvailable, TestHosts, type HostProc } from './support/hosts.js';

const run = promisify(execFile);
const storageMain = fileURLToPath(new URL('../../src/storage/main.ts', import.meta.url));

describe.skipIf(!hostsAvailable())('grow, replace, drain on netns hosts', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('grows 4 -> 5 storage hosts and rebalances, replaces a dead host\'s targets, drains and removes a host; files verify and the spread is balanced after each', async () => {
    const hosts = TestHosts.create(6, 214);
    cleanups.push(() => hosts.destroy());
    const tmp = tempDir('grow');
    cleanups.push(() => tmp.cleanup());
    const keys = testKeys();
    cleanups.push(() => keys.cleanup());
    const gw = hosts.gatewayIp;
    const mgmtdProc: Proc = await startMgmtd(join(tmp.dir, 'mgmtd.db'), `tcp://${gw}:0`, keys.secretFile, { heartbeatTimeoutMs: 2_000 });
    cleanups.push(() => mgmtdProc.kill());
    const mgmtd = (await mgmtdProc.waitFor(/^listening (\S+)$/))[1]!;
    const metaProc: Proc = await startMeta(join(tmp.dir, 'meta.db'), `tcp://${gw}:0`, [mgmtd], ['--secret-file', keys.secretFile, '--admin-token-file', keys.adminTokenFile]);
    cleanups.push(() => metaProc.kill());
    const meta = (await metaProc.waitFor(/^listening (\S+)$/))[1]!;

    const daemons = new Map<number, HostProc>();
    const startHost = async (h: number) => {
      const targets = [h * 10 + 1, h * 10 + 2].flatMap((id) => {
        const dir = join(tmp.dir, `t${id}`);
        mkdirSync(dir, { recursive: true });
        return ['--target', `${id}:${dir}`];
      });
      const p = hosts.spawn(h, process.execPath, ['--import', 'tsx', storageMain, '--secret-file', keys.secretFile, '--node-id', String(h), '--mgmtd', mgmtd,
        '--host', hosts.ip(h), '--transport', 'tcp', '--no-sync', '--heartbeat-ms', String(FAST.heartbeatMs), '--routing-poll-ms', String(FAST.pollMs),
        '--mgmtd-timeout-ms', '1000', ...targets]);
      daemons.set(h, p);
      await p.waitFor(/^listening /, 60_000);
    };
    const cli = async (...args: string[]) => (await run(process.execPath, ['dist/cli/main.js', 'admin', ...args, '--mgmtd', mgmtd, '--data-dir', tmp.dir,
      '--server-key', keys.admin.serverKey, '--token-file', keys.adminTokenFile], { timeout: 300_000 })).stdout;
    const admin = new MgmtdClient([mgmtd], { cluster: keys.cluster, timeoutMs: 2_000 });
    cleanups.push(() => admin.close());
    const view = () => admin.admin<AdminView>('adminView');
    const serving = (ids: number[]) => until(async () => {
      const v = await view();
      return ids.every((id) => v.targets.find((t) => t.targetId === id)?.state === 'serving');
    }, 60_000, `targets ${ids} serving`);

    for (const h of [1, 2, 3, 4]) await startHost(h);
    await serving([11, 12, 21, 22, 31, 32, 41, 42]);
    await until(async () => (await cli('list', 'nodes', '--json').catch(() => '')).startsWith('['), 30_000, 'mgmtd admits the admin token');
    expect(await cli('create-chain-table', '--replicas', '3', '--chains', '8')).toMatch(/chain table 1: 8 chains of 3 \(1,2,3,4,5,6,7,8\)/);

    const fs: FileSystem = await connect({ meta, mgmtd: [mgmtd], token: keys.admin.token, serverKey: keys.admin.serverKey, transport: 'tcp' });
    cleanups.push(() => fs.close());
    await fs.mkdir('/data', { recursive: true });
    await fs.setLayout('/data', { chunkSizeBytes: 64 * 1024, stripeSize: 8 });
    // Few, small files (every move resyncs its targets' data): what is checked stays the same.
    const files = new FileWriter(fs, 60, 50);
    files.start();
    cleanups.push(() => files.stop());
    await until(() => files.written >= 10, 60_000, 'files written');

    const check = async (what: string, nodes: number[], before: { written: number; reads: number }) => {
      expect(files.errors, what).toEqual([]);
      expect(files.written, `${what}: writes went on`).toBeGreaterThan(before.written);
      expect(files.reads, `${what}: reads went on`).toBeGreaterThan(before.reads);
      await files.verifyAll();
      const v = await view();
      const nodeOf = new Map(v.targets.map((t) => [t.targetId, t.nodeId]));
      for (const c of v.chains) {
        expect(c.targets.length, `${what}: chain ${c.chainId}`).toBe(3);
        expect(new Set(c.targets.map((id) => nodeOf.get(id))).size, `${what}: chain ${c.chainId} on distinct hosts`).toBe(3);
      }
      expect(v.nodes.filter((n) => n.kind === 'storage').map((n) => n.nodeId).sort(), what).toEqual(nodes);
      const counts = v.targets.map((t) => t.replicas);
      expect(Math.max(...counts) - Math.min(...counts), `${what}: replicas per target ${counts}`).toBeLessThanOrEqual(1);
      expect(v.spread.headsSkew, `${what}: heads per host`).toBeLessThanOrEqual(1);
      expect(v.spread.balanced, what).toBe(true);
      return v;
    };
    await check('created', [1, 2, 3, 4], { written: 0, reads: 0 });

    // Grow: host 5 joins and rebalance moves replicas onto its targets.
    let before = { written: files.written, reads: files.reads };
    await startHost(5);
    await serving([51, 52]);
    // Table 1 grows in place: new chains over the new host's targets at table version 2 (files
    // made before keep their chains); then replicas of existing chains move onto them.
    const added = await cli('add-targets', '--table', '1', '--chains', '2');
    expect(added).toMatch(/chain table 1 v2: 10 chains, new 9,10; new targets 51,52/);
    const grownView = await view();
    expect(grownView.chainTables.find((t) => t.tableId === 1)).toMatchObject({ version: 2, chainCounts: [8, 10] });
    const fresh = grownView.chains.filter((c) => c.chainId >= 9);
    expect(fresh.every((c) => c.targets.some((id) => id === 51 || id === 52))).toBe(true);
    const grown = await cli('rebalance', '--rate-mib-s', '1000', '--wait');
    expect(grown).toMatch(/balanced/);
    let v = await check('grow', [1, 2, 3, 4, 5], before);
    expect(v.targets.find((t) => t.targetId === 51)!.replicas).toBeGreaterThanOrEqual(2);

    // Replace: host 2 dies; host 6's targets replace its targets and resync from the chains.
    before = { written: files.written, reads: files.reads };
    await hosts.kill(2);
    await until(async () => (await view()).targets.filter((t) => t.nodeId === 2).every((t) => t.state === 'offline'), 30_000, 'host 2 offline');
    await startHost(6);
    await serving([61, 62]);
    await cli('replace-target', '21', '61', '--wait');
    await cli('replace-target', '22', '62', '--wait');
    expect(await cli('remove-node', '2')).toMatch(/node 2 removed/);
    await cli('rebalance', '--rate-mib-s', '1000', '--wait');
    v = await check('replace', [1, 3, 4, 5, 6], before);

    // Drain host 3 (progress shown), stop it, remove it.
    before = { written: files.written, reads: files.reads };
    const drained = await cli('drain', '3', '--wait');
    expect(drained).toMatch(/node 3: \d+\/\d+ replicas moved/);
    await hosts.kill(3);
    await until(async () => !(await view()).nodes.find((n) => n.nodeId === 3)!.alive, 30_000, 'host 3 stopped');
    expect(await cli('remove-node', '3')).toMatch(/node 3 removed/);
    await cli('rebalance', '--rate-mib-s', '1000', '--wait');
    v = await check('drain', [1, 4, 5, 6], before);
    console.log(`grow test: ${files.written} files, ${files.reads} reads; moved ${v.ops.moved.replicas} replicas`);
  }, 600_000);
});
