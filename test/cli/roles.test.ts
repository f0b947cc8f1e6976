// The server roles as millpond commands (src/cli/roles.ts): bad invocations fail at once with
// a clear message; a loopback cluster of role processes (mgmtd, meta, one storage node with two
// targets) serves, and `millpond status` reports it health first.
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { statusLines } from '../../src/cli/status.js';
import { tcpEndpoint } from '../../src/cli/roles.js';
import { viewOf, type AdminView, type ClusterView } from '../../src/cluster/cluster-view.js';
import { childLines, type ChildLines } from '../support/lines.js';
import { killHard } from '../support/child.js';
import { tempDir } from '../support/tmp.js';

const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const run = promisify(execFile);
const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', main, ...args]);
const failure = (...args: string[]) => cli(...args).then(() => null, (e: { code: number; stderr: string }) => e);

describe('millpond roles', () => {
  const t = tempDir('roles');
  const children: ChildProcess[] = [];
  afterAll(async () => {
    for (const c of children) await killHard(c);
    t.cleanup();
  });
  const role = (...args: string[]): ChildLines => {
    const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    return childLines(child);
  };

  it('refuses bad invocations with the reason', async () => {
    const dir = join(t.dir, 'bad');
    await cli('init', '--dir', dir);
    expect((await failure('storage', '--data-dir', dir, '--target', join(dir, 'x')))?.stderr).toMatch(/needs --node-id N/);
    expect((await failure('storage', '--data-dir', dir, '--node-id', '1'))?.stderr).toMatch(/needs --target \[ID:\]DIR/);
    expect((await failure('storage', '--data-dir', dir, '--node-id', '0', '--target', 'x'))?.stderr).toMatch(/--node-id must be an integer >= 1/);
    // A role finds its own entry of cluster.json by this host's addresses; a list without one is refused.
    const foreign = join(t.dir, 'foreign');
    await cli('init', '--dir', foreign, '--mgmtd', 'tcp://192.0.2.7:8600');
    expect((await failure('mgmtd', '--data-dir', foreign))?.stderr).toMatch(/give --listen HOST:PORT \(no mgmtd address of cluster.json \(tcp:\/\/192\.0\.2\.7:8600\) is on this host\)/);
    // Without the cluster secret: refused unless --insecure.
    expect((await failure('meta', '--data-dir', join(t.dir, 'nothing'), '--listen', '127.0.0.1:0'))?.stderr).toMatch(/EAUTH: millpond meta: no cluster secret/);
    expect((await failure('mgmtd', '--data-dir', dir, '--listen', '127.0.0.1:0', '--backend', 'mysql'))?.stderr).toMatch(/--backend must be postgres or sqlite/);
    // This host's entry of cluster.json "hosts" does not list the role: refused.
    const entry = join(t.dir, 'entry');
    await cli('init', '--dir', entry);
    writeFileSync(join(entry, 'cluster.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(entry, 'cluster.json'), 'utf8')), hosts: { h: { address: '127.0.0.1', roles: ['meta'] } } }));
    expect((await failure('storage', '--data-dir', entry, '--node-id', '1', '--target', join(entry, 'x')))?.stderr).toMatch(/cluster.json hosts\.h \(127\.0\.0\.1, this host\) has roles meta, not storage/);
    expect(() => tcpEndpoint('host')).toThrow(/not an address HOST:PORT/);
    expect(tcpEndpoint('0.0.0.0:8600')).toBe('tcp://0.0.0.0:8600');
    expect(tcpEndpoint('tcp://[::1]:1')).toBe('tcp://[::1]:1');
  }, 240_000); // seven CLI processes: a minute on a loaded 2-core machine

  it('a loopback cluster of role processes serves; status reports hosts, targets and chains, health first', async () => {
    const dir = join(t.dir, 'c');
    await cli('init', '--dir', dir, '--transport', 'tcp');
    // The deployment host by host: this host (127.0.0.1) runs all three; storage takes its node id
    // and targets from its entry.
    const file = join(dir, 'cluster.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), hosts: {
      here: { address: '127.0.0.1', roles: ['mgmtd', 'meta', 'storage'], nodeId: 7, targets: [join(dir, 'a'), join(dir, 'b')] },
      elsewhere: { address: '192.0.2.9', roles: ['storage'], nodeId: 8, targets: ['/ssd0'] },
    } }));
    const mgmtd = role('mgmtd', '--data-dir', dir, '--listen', '127.0.0.1:0', '--backend', 'sqlite');
    const [, mgmtdEp] = await mgmtd.waitFor(/^listening (tcp:\/\/127\.0\.0\.1:\d+)$/, 60_000);
    const meta = role('meta', '--data-dir', dir, '--mgmtd', mgmtdEp!, '--listen', '127.0.0.1:0', '--backend', 'sqlite');
    const [, metaEp] = await meta.waitFor(/^listening (tcp:\/\/127\.0\.0\.1:\d+)$/, 60_000);
    const storage = role('storage', '--data-dir', dir, '--mgmtd', mgmtdEp!, '--listen', '127.0.0.1', '--no-sync', '--heartbeat-ms', '200');
    await storage.waitFor(/^listening /, 60_000);
    expect(storage.lines).toEqual(expect.arrayContaining([expect.stringMatching(/^target 701 127\.0\.0\.1:\d+ /), expect.stringMatching(/^target 702 127\.0\.0\.1:\d+ /)]));
    const flags = ['--data-dir', dir, '--mgmtd', mgmtdEp!, '--meta', metaEp!];
    for (let i = 0; ; i++) {
      const made = await cli('admin', 'create-chain-table', '--chains', '4', '--replicas', '1', ...flags).then((r) => r.stdout, () => '');
      if (made.includes('chain table 1: 4 chains of 1')) break;
      if (i > 60) throw new Error('no chain table');
      await new Promise((r) => setTimeout(r, 500));
    }
    const local = join(t.dir, 'in.txt');
    await run('sh', ['-c', `printf 'hello hosts' > ${local}`]);
    await cli('fs', 'put', local, '/in.txt', ...flags);
    expect((await cli('fs', 'cat', '/in.txt', ...flags)).stdout).toBe('hello hosts');
    let out = '';
    for (let i = 0; i < 50 && !/used .* free /.test(out); i++) {
      out = (await cli('status', ...flags)).stdout;
      await new Promise((r) => setTimeout(r, 200));
    }
    const lines = out.split('\n');
    expect(lines.slice(0, 3)).toEqual(['cluster:', '  health: HEALTH_OK', 'services:']); // health first
    expect(out).toMatch(/^host 127\.0\.0\.1: storage node 7 alive; 2 targets, used [\d.]+ [MG]iB free [\d.]+ [MG]iB; chains: 4 heads, 4 replicas$/m);
    expect(out).toMatch(/^ {2}chains 4 of 1: heads per host: 127\.0\.0\.1 4; replicas per host: 127\.0\.0\.1 4$/m);
    const view = JSON.parse((await cli('status', '--json', ...flags)).stdout) as ClusterView;
    expect(view.health).toEqual({ status: 'HEALTH_OK', checks: [] });
    expect(view.targets.map((x) => x.state)).toEqual(['serving', 'serving']);
    expect(view.services.mgmtd.primary).toBe(mgmtdEp);
  }, 180_000);

  it('status: health first, naming what is wrong; heads and replicas per host count serving replicas only', () => {
    const target = (targetId: number, nodeId: number, state: string, space?: { capacityBytes: number; freeBytes: number }) => ({
      targetId, nodeId, dataAddress: `10.0.0.${nodeId}:9001`, state, localState: 'online', stateVersion: 1,
      capacityBytes: space?.capacityBytes, freeBytes: space?.freeBytes, usedBytes: space ? space.capacityBytes - space.freeBytes : undefined, full: false, replicas: 0, heads: 0,
    });
    const admin = {
      version: 9,
      nodes: [
        { nodeId: 1, kind: 'storage', controlAddress: 'tcp://10.0.0.1:7000', alive: true, appliedVersion: 9, targets: [101] },
        { nodeId: 2, kind: 'storage', controlAddress: 'tcp://10.0.0.2:7000', alive: false, appliedVersion: 8, targets: [201] },
      ],
      targets: [target(101, 1, 'serving', { capacityBytes: 4 * 2 ** 30, freeBytes: 3 * 2 ** 30 }), target(201, 2, 'offline')],
      chains: [{ chainId: 1, version: 3, targets: [101, 201] }, { chainId: 2, version: 3, targets: [101, 201] }, { chainId: 3, version: 3, targets: [201] }],
      chainTables: [{ tableId: 1, version: 1, chainIds: [1, 2, 3] }],
      ops: { leaving: [], moves: [], moved: { replicas: 0, bytes: 0 } },
    } as unknown as AdminView;
    const parts = { atMs: 0, admin, mgmtd: [{ address: 'tcp://10.0.0.9:8600', role: 'primary' as const }], meta: [{ address: 'tcp://10.0.0.9:8601', up: true }], executors: [], jobs: [] };
    const lines = statusLines(viewOf(parts));
    expect(lines.slice(0, 6)).toEqual([
      'cluster:', '  health: HEALTH_ERR',
      '    CHAIN_UNAVAILABLE: 1 chain(s) without a serving target: 3',
      '    TARGET_DOWN: 1 target(s) offline: target 201 (node 2 on 10.0.0.2)',
      '    NODE_DEAD: 1 storage node(s) dead: node 2 on 10.0.0.2',
      '    CHAIN_DEGRADED: 2 of 3 chain(s) short of 2 serving replicas',
    ]);
    expect(lines).toContain('host 10.0.0.1: storage node 1 alive; 1 targets, used 1.0 GiB free 3.0 GiB; chains: 2 heads, 2 replicas');
    expect(lines).toContain('  target 201 offline space not reported 10.0.0.2:9001');
    expect(lines).toContain('  chains 3 of 2: heads per host: 10.0.0.1 2; replicas per host: 10.0.0.1 2');
    admin.chains.pop();
    admin.chainTables[0]!.chainIds.pop();
    expect(statusLines(viewOf({ ...parts, meta: [...parts.meta, { address: 'tcp://10.0.0.8:8601', up: false }] })).slice(1, 6)).toEqual([
      '  health: HEALTH_WARN',
      '    TARGET_DOWN: 1 target(s) offline: target 201 (node 2 on 10.0.0.2)',
      '    NODE_DEAD: 1 storage node(s) dead: node 2 on 10.0.0.2',
      '    CHAIN_DEGRADED: 2 of 2 chain(s) short of 2 serving replicas',
      '    META_SERVER_DOWN: 1 of 2 meta server(s) not answering: tcp://10.0.0.8:8601',
    ]);
    // A resync's progress: the chunks it checked of those its sources hold.
    Object.assign(admin.targets[0]!, { chunks: 200 });
    Object.assign(admin.targets[1]!, { state: 'syncing', resync: { listedChunks: 50, copiedChunks: 10, copiedBytes: 10 * 2 ** 20, sourceTargetIds: [101] } });
    const recovering = viewOf(parts);
    expect(recovering.recovery.resyncs).toEqual([expect.objectContaining({ targetId: 201, listedChunks: 50, sourceChunks: 200, progress: 0.25 })]);
    expect(statusLines(recovering)).toContain('  resync: target 201 on 10.0.0.2 syncing (chains 1, 2): 50/200 chunks checked, 10 copied (10.0 MiB)');
  });
});
