/**
 * `millpond status`: health first, then the hosts (each node under the host of its advertised
 * address, with its targets' state and used/free space), the spread of chains (heads and
 * replicas per host), and last every node, target and chain as mgmtd has them.
 */
import { executorStatusLines } from '../cluster/executors.js';
import { MgmtdClient } from '../cluster/mgmtd-client.js';
import type { Routing } from '../cluster/types.js';
import { MillpondError } from '../errors.js';
import { cliAuth, type CliConfig } from './config.js';

type Space = { capacityBytes: number; freeBytes: number };

/** The host part of "tcp://h:p" or "h:p" ("[v6]:p" too). */
export function hostOfAddress(address: string): string {
  const bare = address.replace(/^[a-z]+:\/\//, '');
  const m = /^\[([^\]]+)\]/.exec(bare);
  return m ? m[1]! : bare.replace(/:\d+$/, '');
}

function gib(bytes: number): string {
  return bytes >= 1 << 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** The report's lines (pure, so a test can read what a user reads). */
export function statusLines(primary: string, r: Routing, space: Map<number, Space>): string[] {
  const out: string[] = [];
  const targetState = new Map(r.targets.map((t) => [t.targetId, t]));
  const nodeHost = new Map(r.nodes.map((n) => [n.nodeId, hostOfAddress(n.controlAddress) || `node-${n.nodeId}`]));
  const hostOfTarget = (id: number) => nodeHost.get(targetState.get(id)?.nodeId ?? -1) ?? '?';
  const notServing = r.targets.filter((t) => t.state !== 'serving');
  const deadNodes = r.nodes.filter((n) => n.kind === 'storage' && !n.alive);
  const replicas = r.chains.length ? Math.max(...r.chains.map((c) => c.targets.length)) : 0;
  const short = r.chains.filter((c) => c.targets.filter((id) => targetState.get(id)?.state === 'serving').length < replicas);
  const noHead = r.chains.filter((c) => !c.targets.some((id) => targetState.get(id)?.state === 'serving'));
  const health = noHead.length ? 'unavailable' : notServing.length || deadNodes.length || short.length ? 'degraded' : 'ok';
  const why = [
    deadNodes.length ? `${deadNodes.length} storage node(s) dead` : '',
    notServing.length ? `${notServing.length} target(s) not serving: ${notServing.map((t) => `${t.targetId} ${t.state}`).join(', ')}` : '',
    short.length ? `${short.length} of ${r.chains.length} chains short of ${replicas} serving replicas` : '',
    noHead.length ? `${noHead.length} chains without a serving head` : '',
  ].filter(Boolean);
  out.push(`health ${health}${why.length ? `: ${why.join('; ')}` : ''}`);
  out.push(`mgmtd ${primary} (routing version ${r.version})`);

  // Heads and replicas per host: only serving replicas count; the head is a chain's first.
  const heads = new Map<string, number>();
  const reps = new Map<string, number>();
  for (const c of r.chains) {
    const serving = c.targets.filter((id) => targetState.get(id)?.state === 'serving');
    if (serving[0] !== undefined) heads.set(hostOfTarget(serving[0]), (heads.get(hostOfTarget(serving[0])) ?? 0) + 1);
    for (const id of serving) reps.set(hostOfTarget(id), (reps.get(hostOfTarget(id)) ?? 0) + 1);
  }
  const hosts = [...new Set(r.nodes.map((n) => nodeHost.get(n.nodeId)!))].sort();
  for (const host of hosts) {
    const nodes = r.nodes.filter((n) => nodeHost.get(n.nodeId) === host);
    const targets = r.targets.filter((t) => nodes.some((n) => n.nodeId === t.nodeId));
    const used = targets.reduce((a, t) => a + (space.has(t.targetId) ? space.get(t.targetId)!.capacityBytes - space.get(t.targetId)!.freeBytes : 0), 0);
    const free = targets.reduce((a, t) => a + (space.get(t.targetId)?.freeBytes ?? 0), 0);
    out.push(`host ${host}: ${nodes.map((n) => `${n.kind} node ${n.nodeId} ${n.alive ? 'alive' : 'dead'}`).join(', ')}`
      + (targets.length ? `; ${targets.length} targets, used ${gib(used)} free ${gib(free)}; chains: ${heads.get(host) ?? 0} heads, ${reps.get(host) ?? 0} replicas` : ''));
    for (const t of targets) {
      const s = space.get(t.targetId);
      out.push(`  target ${t.targetId} ${t.state} ${s ? `used ${gib(s.capacityBytes - s.freeBytes)} free ${gib(s.freeBytes)}` : 'space not reported'} ${t.dataAddress}`);
    }
  }
  if (r.chains.length) {
    const spread = (m: Map<string, number>) => hosts.filter((h) => reps.has(h) || heads.has(h)).map((h) => `${h} ${m.get(h) ?? 0}`).join(', ');
    out.push(`chains ${r.chains.length} of ${replicas}: heads per host: ${spread(heads)}; replicas per host: ${spread(reps)}`);
  }
  for (const n of r.nodes) out.push(`node ${n.nodeId} ${n.kind} ${n.alive ? 'alive' : 'dead'} ${n.controlAddress}`);
  for (const t of r.targets) out.push(`target ${t.targetId} on node ${t.nodeId} ${t.state} ${t.dataAddress}`);
  for (const c of r.chains) out.push(`chain ${c.chainId} v${c.version}: ${c.targets.map((id) => `${id}(${targetState.get(id)?.state ?? '?'})`).join(' -> ')}`);
  return out;
}

export async function status(config: CliConfig): Promise<void> {
  const client = new MgmtdClient(config.mgmtd, { auth: cliAuth(config) });
  try {
    const s = await client.status();
    const r = s.routing;
    if (!r) throw new MillpondError('EIO', 'mgmtd answered without routing');
    const capacity = await client.capacity();
    const space = new Map((capacity.targets ?? []).map((t) => [t.targetId, t]));
    for (const line of statusLines(s.primaryAddress ?? config.mgmtd.join(','), r, space)) console.log(line);
    for (const line of await executorStatusLines(client)) console.log(line);
  } finally {
    client.close();
  }
}
