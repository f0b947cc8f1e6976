/**
 * hosts: one client writes a file striped over chains of 3, then reads it back, on a cluster of
 * `millpond` role processes (authentication on, mgmtd and meta on SQLite, four storage nodes
 * with one target each) — first on four storage hosts (network namespaces on a bridge, the
 * client in the root namespace: every byte crosses veth pairs and the bridge), then the same
 * processes all on loopback, in the same run. netns_ratio = netns GB/s / loopback GB/s. These
 * hosts share the machine's cores, so the figure is the cost of the path, not scaling.
 * Needs root (network namespaces).
 */
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MgmtdClient } from '../src/cluster/mgmtd-client.js';
import { connect } from '../src/fs/index.js';
import { crc32c } from '../src/index.js';
import { childLines, type ChildLines } from '../test/support/lines.js';
import { TestHosts } from '../test/hosts/support/hosts.js';
import { MiB, dropPageCache, fmtGBps, gbPerSecond, intOption, machineNote, makeWorkDir, nowMs, printJson, printTable, round3, sleepMs } from './lib.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const STORAGE_NODES = 4;
const SUBNET = 209;

interface Proc extends ChildLines {
  kill(): void;
}

/** Starts `node dist/cli/main.js args` (inside namespace `ns` when given). */
function start(args: string[], ns?: string): Proc {
  const argv = [cli, ...args];
  const child = ns ? spawn('ip', ['netns', 'exec', ns, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  return { ...childLines(child), kill: () => child.kill('SIGKILL') };
}

interface Layout {
  /** The namespace of role host i (0: mgmtd and meta; 1..4: storage), or none for loopback. */
  ns(i: number): string | undefined;
  /** The address role host i listens on and advertises. */
  ip(i: number): string;
}

async function measure(name: string, layout: Layout, dir: string, sizeMiB: number, pieceMiB: number): Promise<{ writeGBps: number; readGBps: number }> {
  const initDir = join(dir, name);
  execFileSync(process.execPath, [cli, 'init', '--dir', initDir, '--transport', 'tcp'], { stdio: 'ignore' });
  const procs: Proc[] = [];
  try {
    const mgmtd = start(['mgmtd', '--data-dir', initDir, '--listen', `${layout.ip(0)}:0`], layout.ns(0));
    procs.push(mgmtd);
    const [, mgmtdEp] = await mgmtd.waitFor(/^listening (\S+)$/, 60_000);
    const meta = start(['meta', '--data-dir', initDir, '--mgmtd', mgmtdEp!, '--listen', `${layout.ip(0)}:0`], layout.ns(0));
    procs.push(meta);
    const [, metaEp] = await meta.waitFor(/^listening (\S+)$/, 60_000);
    for (let i = 1; i <= STORAGE_NODES; i++) {
      const p = start(['storage', '--data-dir', initDir, '--mgmtd', mgmtdEp!, '--node-id', String(i), '--target', join(initDir, `node-${i}`),
        '--listen', `${layout.ip(i)}:0`, '--no-sync'], layout.ns(i));
      procs.push(p);
      await p.waitFor(/^listening /, 60_000);
    }
    const token = execFileSync('cat', [join(initDir, 'keys', 'admin.token')], { encoding: 'utf8' }).trim();
    const serverKey = (JSON.parse(execFileSync('cat', [join(initDir, 'cluster.json')], { encoding: 'utf8' })) as { serverKey: string }).serverKey;
    const admin = new MgmtdClient([mgmtdEp!], { auth: { token, serverKey } });
    try {
      for (let i = 0; ; i++) {
        const r = await admin.getRouting();
        if ('targets' in r && r.targets.length === STORAGE_NODES && r.targets.every((t) => t.state === 'serving')) break;
        if (i > 600) throw new Error('storage targets did not serve within 60 s');
        await sleepMs(100);
      }
      await admin.createChainTable(1, { chainCount: 8, chainLength: 3 });
    } finally {
      admin.close();
    }
    const fs = await connect({ meta: metaEp!, mgmtd: [mgmtdEp!], transport: 'tcp', token, serverKey });
    try {
      const piece = Buffer.alloc(pieceMiB * MiB);
      for (let i = 0; i < piece.length; i += 4) piece.writeUInt32LE((i * 2654435761) >>> 0, i);
      const pieces = Math.ceil(sizeMiB / pieceMiB);
      const bytes = pieces * piece.length;
      const writer = await fs.open('/bench.bin', 'w');
      let started = nowMs();
      for (let i = 0; i < pieces; i++) await writer.write(piece);
      await writer.close();
      const writeMs = nowMs() - started;
      await dropPageCache();
      const reader = await fs.open('/bench.bin', 'r');
      const expected = crc32c(piece);
      started = nowMs();
      for (let i = 0; i < pieces; i++) {
        if (crc32c(await reader.readAt(i * piece.length, piece.length)) !== expected) throw new Error(`${name}: piece ${i} read back different bytes`);
      }
      const readMs = nowMs() - started;
      await reader.close();
      return { writeGBps: gbPerSecond(bytes, writeMs), readGBps: gbPerSecond(bytes, readMs) };
    } finally {
      fs.close();
    }
  } finally {
    for (const p of procs.reverse()) p.kill();
    await sleepMs(300);
  }
}

export async function hostsBench(options: Map<string, string>): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench hosts needs root (network namespaces)');
  const sizeMiB = intOption(options, 'size-mib', 1024);
  const pieceMiB = intOption(options, 'piece-mib', 64);
  const work = await makeWorkDir('hosts');
  const hosts = TestHosts.create(1 + STORAGE_NODES, SUBNET);
  try {
    const netns = await measure('netns', { ns: (i) => `${hosts.prefix}-h${i + 1}`, ip: (i) => hosts.ip(i + 1) }, work.dir, sizeMiB, pieceMiB);
    const loopback = await measure('loopback', { ns: () => undefined, ip: () => '127.0.0.1' }, work.dir, sizeMiB, pieceMiB);
    const figures = {
      size_MiB: Math.ceil(sizeMiB / pieceMiB) * pieceMiB,
      storage_hosts: STORAGE_NODES,
      replicas: 3,
      netns_write_GBps: round3(netns.writeGBps),
      netns_read_GBps: round3(netns.readGBps),
      loopback_write_GBps: round3(loopback.writeGBps),
      loopback_read_GBps: round3(loopback.readGBps),
      netns_ratio_write: round3(netns.writeGBps / loopback.writeGBps),
      netns_ratio_read: round3(netns.readGBps / loopback.readGBps),
    };
    printTable(`hosts: one client, a ${figures.size_MiB} MiB file over 8 chains of 3 on 4 storage nodes, no fdatasync (${machineNote()})`, [
      ['cluster', 'write', 'read'],
      ['4 storage hosts (netns, bridge), client in the root namespace', fmtGBps(figures.netns_write_GBps), fmtGBps(figures.netns_read_GBps)],
      ['the same processes on loopback', fmtGBps(figures.loopback_write_GBps), fmtGBps(figures.loopback_read_GBps)],
      ['netns_ratio (netns / loopback)', String(figures.netns_ratio_write), String(figures.netns_ratio_read)],
    ]);
    console.log('\nThe hosts share this machine\'s cores: the ratio is the cost of veth + bridge against loopback, not scaling.');
    printJson('hosts', figures);
  } finally {
    await hosts.destroy();
    work.cleanup();
  }
}
