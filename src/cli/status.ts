/**
 * `millpond status`: the cluster view (src/cluster/cluster-view.ts) in the shape of `ceph -s`:
 * health first (HEALTH_OK / HEALTH_WARN / HEALTH_ERR and a line per check), then services,
 * data (chains, capacity), io (throughput), recovery and jobs; then each host with its targets'
 * state and space, the executors, and last every node, target and chain as mgmtd has them.
 * `--json` prints the view itself (for scripts; the console serves the same object).
 */
import { ClusterViewer, type ClusterView } from '../cluster/cluster-view.js';
import { executorStatusLines } from '../cluster/executors.js';
import { formatBytes } from '../engine/execution/progress.js';
import { cliAuth, type CliConfig } from './config.js';

const size = (bytes: number | undefined) => formatBytes(bytes ?? 0);

/** The report's lines (pure, so a test can read what a user reads). */
export function statusLines(v: ClusterView, nowMs = Date.now()): string[] {
  const out: string[] = ['cluster:', `  health: ${v.health.status}`];
  for (const c of v.health.checks) out.push(`    ${c.code}: ${c.message}`);

  const s = v.services;
  const standbys = s.mgmtd.instances.filter((m) => m.role === 'standby').length;
  out.push('services:');
  out.push(`  mgmtd: primary ${s.mgmtd.primary ?? 'none'}, ${standbys} standby(s)${s.mgmtd.instances.length === 1 ? ' (one configured)' : ''}, routing version ${s.mgmtd.routingVersion}`);
  out.push(`  meta: ${s.meta.filter((m) => m.up).length} of ${s.meta.length} up${s.meta.length ? ` (${s.meta.map((m) => `${m.address} ${m.up ? 'up' : 'down'}`).join(', ')})` : ''}`);
  out.push(`  storage: ${s.storage.nodesAlive} of ${s.storage.nodes} nodes alive, ${s.storage.targetsServing} of ${s.storage.targets} targets serving`);
  out.push(`  executors: ${s.executors.live} live, ${s.executors.slots} slots, ${s.executors.running} running`);

  const c = v.capacity;
  out.push('data:');
  const spread = (pick: (h: ClusterView['hosts'][number]) => number) => v.hosts.filter((h) => h.heads || h.replicas).map((h) => `${h.host} ${pick(h)}`).join(', ');
  if (v.chains.length) out.push(`  chains ${v.chains.length} of ${c.replicas}: heads per host: ${spread((h) => h.heads)}; replicas per host: ${spread((h) => h.replicas)}`);
  out.push(`  usage: ${size(c.usedBytes)} used, ${size(c.freeBytes)} free of ${size(c.capacityBytes)} (${size(c.usableFreeBytes)} usable at ${c.replicas} replicas)`);
  out.push('io:');
  out.push(`  client: ${size(v.throughput.readBytesPerS)}/s rd, ${size(v.throughput.writeBytesPerS)}/s wr`);

  const r = v.recovery;
  out.push('recovery:');
  if (!r.resyncs.length && !r.moves.length && !r.drains.length && !r.rebalance) out.push('  none');
  for (const t of r.resyncs) {
    const done = t.listedChunks === undefined ? '' : `: ${t.listedChunks}${t.sourceChunks ? `/${t.sourceChunks}` : ''} chunks checked, ${t.copiedChunks} copied (${formatBytes(t.copiedBytes ?? 0)})`;
    out.push(`  resync: target ${t.targetId} on ${t.host} ${t.state} (chains ${t.chains.join(', ')})${done}`);
  }
  for (const m of r.moves) out.push(`  move: target ${m.from} -> ${m.to} (${m.reason}): ${m.chainsDone} of ${m.chainIds.length} chains, ~${size(m.bytes)}`);
  for (const d of r.drains) out.push(`  drain: node ${d.nodeId}: ${d.moved} of ${d.total} replicas moved (${Math.round(d.progress * 100)}%)`);
  if (r.rebalance) out.push(`  rebalance: at ${size(r.rebalance.rateBytesPerS)}/s`);

  if (v.jobs.length) {
    out.push('jobs:');
    for (const j of v.jobs) {
      const done = j.tasks.filter((t) => t.state === 'done' || t.state === 'reused').length;
      const running = j.tasks.filter((t) => t.state === 'running').length;
      const measured = j.tasks.filter((t) => t.readBytes !== undefined);
      const io = measured.length ? `, read ${size(measured.reduce((a, t) => a + t.readBytes!, 0))}, wrote ${size(measured.reduce((a, t) => a + (t.writtenBytes ?? 0), 0))}` : '';
      out.push(`  job ${j.jobId} ${j.state}: ${done} of ${j.tasksTotal} tasks done, ${running} running${io}${j.error ? `: ${j.error}` : ''}`);
    }
  }

  for (const h of v.hosts) {
    const nodes = v.nodes.filter((n) => n.host === h.host);
    const targets = v.targets.filter((t) => t.host === h.host);
    out.push(`host ${h.host}: ${nodes.map((n) => `${n.kind} node ${n.nodeId} ${n.alive ? 'alive' : 'dead'}`).join(', ')}`
      + (targets.length ? `; ${targets.length} targets, used ${gib(h.usedBytes)} free ${gib(h.freeBytes)}; chains: ${h.heads} heads, ${h.replicas} replicas` : ''));
    for (const t of targets) {
      const swept = t.swept?.removedChunks ? `, swept ${t.swept.removedChunks} chunks of chains it left (${gib(t.swept.removedBytes)})` : '';
      out.push(`  target ${t.targetId} ${t.state} ${t.freeBytes !== undefined ? `used ${gib(t.usedBytes ?? 0)} free ${gib(t.freeBytes)}` : 'space not reported'} ${t.dataAddress}${swept}`);
    }
  }
  out.push(...executorStatusLines(v.executors, nowMs));
  for (const n of v.nodes) out.push(`node ${n.nodeId} ${n.kind} ${n.alive ? 'alive' : 'dead'} ${n.controlAddress}`);
  for (const t of v.targets) out.push(`target ${t.targetId} on node ${t.nodeId} ${t.state} ${t.dataAddress}`);
  for (const ch of v.chains) out.push(`chain ${ch.chainId} v${ch.version}: ${ch.targets.map((id, i) => `${id}(${ch.states[i]})`).join(' -> ')}`);
  return out;
}

function gib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export async function status(config: CliConfig, json = false): Promise<void> {
  const viewer = new ClusterViewer(config.mgmtd, config.meta.split(',').filter(Boolean), cliAuth(config));
  try {
    const view = await viewer.gather();
    if (json) console.log(JSON.stringify(view, null, 2));
    else for (const line of statusLines(view)) console.log(line);
  } finally {
    viewer.close();
  }
}
