/**
 * faults: availability under gray failure (issue 9 items 7-8). The embedded default's
 * topology (mgmtd and meta on SQLite in this process, three storage daemons with one target
 * each, chains of three replicas, default heartbeat timeout and client timeouts), with the
 * storage daemons as their own processes so one can be paused. One reader (1 MiB reads at
 * random offsets of a file) and one writer (1 MiB writes over another file) run at steady
 * load, through the FileSystem API; first with no fault, then while one storage daemon is
 * SIGSTOPped for --pause-ms. Reported: read latency p50/p99/max and the longest write stall
 * (the longest wait of one write) in each phase, and whether the aims hold: read p99 under
 * 1,000 ms during the pause, longest write stall under the heartbeat timeout plus 2 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MgmtdClient } from '../src/cluster/mgmtd-client.js';
import { MgmtdServer } from '../src/cluster/mgmtd-server.js';
import { MgmtdService } from '../src/cluster/mgmtd-service.js';
import { connect } from '../src/fs/index.js';
import { clusterLimits } from '../src/limits.js';
import { MetaServer } from '../src/meta/meta-server.js';
import { MetaService } from '../src/meta/meta-service.js';
import { SqliteKv } from '../src/kv/sqlite-kv.js';
import { intOption, machineNote, makeWorkDir, MiB, nowMs, printJson, printTable, sleepMs } from './lib.js';

const storageMain = fileURLToPath(new URL('../dist/storage/main.js', import.meta.url));
const NODES = 3;
const CHAINS = 6;

interface Daemon { child: ChildProcess; exited: Promise<unknown> }

async function startDaemon(node: number, mgmtd: string, dir: string): Promise<Daemon> {
  const targetId = 100 + node;
  mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, [storageMain, '--node-id', String(node), '--mgmtd', mgmtd,
    '--target', `${targetId}:${dir}`, '--host', '127.0.0.1', '--transport', 'tcp'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => { if (line.startsWith('listening ')) resolve(); });
    exited.then(() => reject(new Error(`storage daemon ${node} exited before listening`)));
  });
  return { child, exited };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

interface Phase { reads: number[]; writes: number[] }

function summary(p: Phase) {
  const r = [...p.reads].sort((a, b) => a - b);
  return {
    reads: r.length,
    writes: p.writes.length,
    read_p50_ms: Math.round(percentile(r, 0.5)),
    read_p99_ms: Math.round(percentile(r, 0.99)),
    read_max_ms: Math.round(r.at(-1) ?? 0),
    write_stall_max_ms: Math.round(Math.max(0, ...p.writes)),
  };
}

export async function faultsBench(options: Map<string, string>): Promise<void> {
  const pauseMs = intOption(options, 'pause-ms', 15_000);
  const baselineMs = intOption(options, 'baseline-ms', 15_000);
  const fileMiB = intOption(options, 'file-mib', 64);
  const pausedNode = intOption(options, 'node', 2);
  const heartbeatTimeoutMs = clusterLimits.heartbeatTimeoutMsDefault;
  const work = await makeWorkDir('faults');
  const stops: Array<() => Promise<void> | void> = [];
  try {
    const mgmtdKv = new SqliteKv(join(work.dir, 'mgmtd.db'));
    stops.push(() => mgmtdKv.close());
    const mgmtd = await MgmtdServer.start('tcp://127.0.0.1:0', (address) => MgmtdService.start(mgmtdKv, { address }));
    stops.push(() => mgmtd.close());
    const metaKv = new SqliteKv(join(work.dir, 'meta.db'));
    stops.push(() => metaKv.close());
    const meta = await MetaServer.start(await MetaService.open(metaKv), 'tcp://127.0.0.1:0');
    stops.push(() => meta.close());
    const daemons: Daemon[] = [];
    stops.push(async () => {
      for (const d of daemons) {
        d.child.kill('SIGCONT');
        d.child.kill('SIGTERM');
        await d.exited;
      }
    });
    for (let node = 1; node <= NODES; node++) daemons.push(await startDaemon(node, mgmtd.endpoint, join(work.dir, `t${100 + node}`)));
    const admin = new MgmtdClient([mgmtd.endpoint]);
    stops.push(() => admin.close());
    for (let i = 0; !(await admin.status().catch(() => ({ primary: false }))).primary; i++) await sleepMs(100);
    await admin.createChainTable(1, { chainCount: CHAINS, chainLength: NODES });
    const allServing = async () => {
      const r = await admin.getRouting();
      return 'targets' in r && r.targets.length === NODES && r.targets.every((t) => t.state === 'serving');
    };
    while (!(await allServing())) await sleepMs(100);

    const fs = await connect({ meta: meta.endpoint, mgmtd: [mgmtd.endpoint], transport: 'tcp' });
    stops.push(() => fs.close());
    await fs.mkdir('/bench', { recursive: true });
    await fs.setLayout('/bench', { chunkSizeBytes: 4 * MiB, stripeSize: CHAINS });
    const piece = Buffer.alloc(MiB);
    for (let i = 0; i < piece.length; i += 4) piece.writeUInt32LE((i * 2654435761) >>> 0, i);
    const pieces = fileMiB;
    const setup = await fs.open('/bench/read.bin', 'w');
    for (let i = 0; i < pieces; i++) await setup.write(piece, i * MiB);
    await setup.close();

    const reader = await fs.open('/bench/read.bin', 'r');
    const writer = await fs.open('/bench/write.bin', 'w');
    let phase: Phase = { reads: [], writes: [] };
    let stop = false;
    const readLoop = (async () => {
      while (!stop) {
        const at = Math.floor(Math.random() * pieces) * MiB;
        const started = nowMs();
        const data = await reader.readAt(at, MiB);
        phase.reads.push(nowMs() - started);
        if (!data.equals(piece)) throw new Error(`read at ${at} returned other bytes`);
      }
    })();
    const writeLoop = (async () => {
      for (let i = 0; !stop; i++) {
        const started = nowMs();
        await writer.write(piece, (i % pieces) * MiB);
        phase.writes.push(nowMs() - started);
      }
    })();
    const loops = Promise.all([readLoop, writeLoop]);
    const failed = loops.then(() => undefined, (err: unknown) => err);

    await Promise.race([sleepMs(baselineMs), failed]);
    const baseline = summary(phase);
    phase = { reads: [], writes: [] };
    const paused = daemons[pausedNode - 1]!.child;
    paused.kill('SIGSTOP');
    const pausedAt = nowMs();
    let offlineAfterMs = -1;
    const watchOffline = (async () => {
      while (nowMs() - pausedAt < pauseMs) {
        const r = await admin.getRouting().catch(() => undefined);
        if (r && 'targets' in r && r.targets.find((t) => t.targetId === 100 + pausedNode)?.state === 'offline') {
          offlineAfterMs = Math.round(nowMs() - pausedAt);
          return;
        }
        await sleepMs(100);
      }
    })();
    await Promise.race([sleepMs(pauseMs), failed]);
    paused.kill('SIGCONT');
    await watchOffline;
    stop = true;
    // Requests that waited through the pause end now and count in the fault phase.
    const err = await failed;
    if (err) throw err;
    const fault = summary(phase);
    await reader.close();
    await writer.close();

    const aims = {
      read_p99_aim_ms: 1000,
      write_stall_aim_ms: heartbeatTimeoutMs + 2000,
    };
    const figures = {
      pause_ms: pauseMs,
      heartbeat_timeout_ms: heartbeatTimeoutMs,
      offline_after_ms: offlineAfterMs,
      read_p50_ms: fault.read_p50_ms,
      read_p99_ms: fault.read_p99_ms,
      read_max_ms: fault.read_max_ms,
      write_stall_max_ms: fault.write_stall_max_ms,
      reads: fault.reads,
      writes: fault.writes,
      baseline_read_p50_ms: baseline.read_p50_ms,
      baseline_read_p99_ms: baseline.read_p99_ms,
      baseline_read_max_ms: baseline.read_max_ms,
      baseline_write_stall_max_ms: baseline.write_stall_max_ms,
      baseline_reads: baseline.reads,
      baseline_writes: baseline.writes,
      read_p99_ratio: Math.round((fault.read_p99_ms / Math.max(1, baseline.read_p99_ms)) * 100) / 100,
      ...aims,
      read_p99_aim_met: fault.read_p99_ms < aims.read_p99_aim_ms,
      write_stall_aim_met: fault.write_stall_max_ms < aims.write_stall_aim_ms,
    };
    printTable(`faults: 1 reader + 1 writer (1 MiB each) over ${CHAINS} chains of ${NODES}; storage daemon ${pausedNode} SIGSTOPped for ${pauseMs} ms (${machineNote()})`, [
      ['phase', 'reads', 'read p50 ms', 'read p99 ms', 'read max ms', 'writes', 'longest write ms'],
      ['no fault', String(baseline.reads), String(baseline.read_p50_ms), String(baseline.read_p99_ms), String(baseline.read_max_ms), String(baseline.writes), String(baseline.write_stall_max_ms)],
      ['one replica paused', String(fault.reads), String(fault.read_p50_ms), String(fault.read_p99_ms), String(fault.read_max_ms), String(fault.writes), String(fault.write_stall_max_ms)],
    ]);
    console.log(`\nmgmtd marked the paused target offline after ${offlineAfterMs} ms (heartbeat timeout ${heartbeatTimeoutMs} ms).`);
    console.log(`aims: read p99 during the pause < ${aims.read_p99_aim_ms} ms: ${figures.read_p99_aim_met ? 'met' : 'NOT met'}; ` +
      `longest write stall < ${aims.write_stall_aim_ms} ms: ${figures.write_stall_aim_met ? 'met' : 'NOT met'}`);
    printJson('faults', figures);
  } finally {
    for (const s of stops.splice(0).reverse()) await s();
    work.cleanup();
  }
}
