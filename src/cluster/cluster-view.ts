/**
 * One JSON object describing the cluster (issue 17): what `millpond status --json` prints and
 * what the console serves and pushes. Health comes first: a list of checks, each naming what is
 * wrong. `viewOf` is pure (the parts mgmtd and meta gave, in; the view, out), so the rules are
 * read in one place; ClusterViewer gathers the parts over the admin's connections.
 *
 * Health rules (severity in brackets):
 *   CHAIN_UNAVAILABLE  [err]  a chain has no serving target: its data cannot be read or written
 *   META_DOWN          [err]  no meta server answers
 *   TARGET_DOWN        [warn] a target is offline (named, with its node and host)
 *   TARGET_RECOVERING  [warn] a target is syncing, waiting or lastsrv
 *   NODE_DEAD          [warn] a storage node missed its heartbeats
 *   CHAIN_DEGRADED     [warn] a chain has fewer serving replicas than its members (its factor)
 *   TARGET_FULL        [warn] a target has less free space than mgmtd's floor, or under
 *                             clusterViewLimits.nearlyFullFraction of its capacity
 *   MGMTD_DOWN         [warn] a configured mgmtd address does not answer (a standby is missing)
 *   META_SERVER_DOWN   [warn] a configured meta server does not answer (others do)
 * HEALTH_ERR when any err check holds, HEALTH_WARN when any warn check does, else HEALTH_OK.
 * A cluster configured with one mgmtd address has no standby to miss: that is shown under
 * services, not as a health check.
 */
import type { ClientAuth } from '../auth/credentials.js';
import { clusterViewLimits } from '../limits.js';
import { MetaClient } from '../meta/meta-client.js';
import { listExecutors, type ExecutorRecord } from './executors.js';
import { listJobs, type JobRecord } from './jobs.js';
import { MgmtdClient } from './mgmtd-client.js';
import type { MgmtdService } from './mgmtd-service.js';
import type { NodeRate } from './throughput.js';

export type HealthStatus = 'HEALTH_OK' | 'HEALTH_WARN' | 'HEALTH_ERR';

export interface HealthCheck {
  code: string;
  severity: 'warn' | 'err';
  message: string;
}

/** What mgmtd.adminView answers (mgmtd-service.ts). */
export type AdminView = ReturnType<MgmtdService['adminView']>;

export interface ViewParts {
  atMs: number;
  admin: AdminView;
  /** Each configured mgmtd address: its role, or why it did not answer. */
  mgmtd: Array<{ address: string; role: 'primary' | 'standby' | 'unreachable'; error?: string }>;
  meta: Array<{ address: string; up: boolean; error?: string }>;
  executors: ExecutorRecord[];
  jobs: JobRecord[];
}

/** The host part of "tcp://h:p" or "h:p" ("[v6]:p" too). */
export function hostOfAddress(address: string): string {
  const bare = address.replace(/^[a-z]+:\/\//, '');
  const m = /^\[([^\]]+)\]/.exec(bare);
  return m ? m[1]! : bare.replace(/:\d+$/, '');
}

const rateOf = (t: NodeRate | undefined) => ({ readBytesPerS: t?.readBytesPerS ?? 0, writeBytesPerS: t?.writeBytesPerS ?? 0 });

export function viewOf(p: ViewParts) {
  const a = p.admin;
  const nodeHost = new Map(a.nodes.map((n) => [n.nodeId, hostOfAddress(n.controlAddress) || `node-${n.nodeId}`]));
  const targetById = new Map(a.targets.map((t) => [t.targetId, t]));
  const serving = (id: number) => targetById.get(id)?.state === 'serving';

  const nodes = [...a.nodes].sort((x, y) => x.nodeId - y.nodeId).map((n) => ({
    nodeId: n.nodeId, kind: n.kind, controlAddress: n.controlAddress, host: nodeHost.get(n.nodeId)!, alive: n.alive,
    appliedVersion: n.appliedVersion, targets: n.targets, ...rateOf(n.throughput), pid: n.throughput?.pid,
  }));
  const targets = [...a.targets].sort((x, y) => x.targetId - y.targetId).map((t) => {
    const nearlyFull = t.capacityBytes !== undefined && t.freeBytes !== undefined && t.capacityBytes > 0
      && t.freeBytes < t.capacityBytes * clusterViewLimits.nearlyFullFraction;
    return {
      targetId: t.targetId, nodeId: t.nodeId, host: nodeHost.get(t.nodeId) ?? '?', state: t.state, localState: t.localState,
      dataAddress: t.dataAddress, capacityBytes: t.capacityBytes, usedBytes: t.usedBytes, freeBytes: t.freeBytes,
      full: t.full || nearlyFull, replicas: t.replicas, heads: t.heads, swept: t.swept,
    };
  });
  const chains = [...a.chains].sort((x, y) => x.chainId - y.chainId).map((c) => {
    const servingIds = c.targets.filter(serving);
    return {
      chainId: c.chainId, version: c.version, targets: c.targets, preferred: c.preferred,
      states: c.targets.map((id) => targetById.get(id)?.state ?? 'offline'),
      head: servingIds[0], servingReplicas: servingIds.length, replicas: c.targets.length,
    };
  });

  // Throughput: each process once (nodes of one process report the same counters).
  const seen = new Set<string>();
  let readBytesPerS = 0;
  let writeBytesPerS = 0;
  for (const n of nodes) {
    const key = n.pid ? `${n.host}/${n.pid}` : `node/${n.nodeId}`;
    if (seen.has(key)) continue;
    seen.add(key);
    readBytesPerS += n.readBytesPerS;
    writeBytesPerS += n.writeBytesPerS;
  }

  const hostNames = [...new Set(nodes.map((n) => n.host))].sort();
  const hosts = hostNames.map((host) => {
    const mine = targets.filter((t) => t.host === host);
    const sum = (f: (t: (typeof targets)[number]) => number | undefined) => mine.reduce((x, t) => x + (f(t) ?? 0), 0);
    return {
      host, nodes: nodes.filter((n) => n.host === host).map((n) => n.nodeId), targets: mine.map((t) => t.targetId),
      capacityBytes: sum((t) => t.capacityBytes), usedBytes: sum((t) => t.usedBytes), freeBytes: sum((t) => t.freeBytes),
      heads: chains.filter((c) => c.head !== undefined && targetById.get(c.head) && nodeHost.get(targetById.get(c.head)!.nodeId) === host).length,
      replicas: chains.reduce((x, c) => x + c.targets.filter((id) => serving(id) && targets.find((t) => t.targetId === id)?.host === host).length, 0),
    };
  });

  const replicas = Math.max(1, ...a.chainTables.flatMap((t) => t.chainIds.map((id) => chains.find((c) => c.chainId === id)?.replicas ?? 1)));
  const capacityBytes = targets.reduce((x, t) => x + (t.capacityBytes ?? 0), 0);
  const freeBytes = targets.reduce((x, t) => x + (t.freeBytes ?? 0), 0);

  // Recovery: resyncs (targets being brought up to date) and moves with their progress.
  const chainsOf = (id: number) => chains.filter((c) => c.targets.includes(id)).map((c) => c.chainId);
  // A resync lists every chunk of each of its sources once: its progress is the chunks listed
  // of the chunks its sources hold (as their last heartbeats said).
  const resyncs = targets.filter((t) => t.state === 'syncing' || t.state === 'waiting' || t.state === 'lastsrv').map((t) => {
    const r = targetById.get(t.targetId)?.resync;
    const sourceChunks = r?.sourceTargetIds.reduce((x, id) => x + (targetById.get(id)?.chunks ?? 0), 0) ?? 0;
    return {
      targetId: t.targetId, host: t.host, state: t.state, chains: chainsOf(t.targetId),
      ...(r ? {
        listedChunks: r.listedChunks, copiedChunks: r.copiedChunks, copiedBytes: r.copiedBytes, sourceChunks,
        progress: sourceChunks ? Math.min(1, r.listedChunks / sourceChunks) : undefined,
      } : {}),
    };
  });
  const moves = a.ops.moves.map((m) => {
    const done = m.chainIds.filter((id) => chains.find((c) => c.chainId === id)?.targets.includes(m.to) && serving(m.to)).length;
    return { ...m, chainsDone: done, progress: m.chainIds.length ? done / m.chainIds.length : 1 };
  });
  const drains = a.ops.leaving.map((l) => ({ ...l, progress: l.total ? l.moved / l.total : 1 }));

  const checks: HealthCheck[] = [];
  const err = (code: string, message: string) => checks.push({ code, severity: 'err', message });
  const warn = (code: string, message: string) => checks.push({ code, severity: 'warn', message });
  const unavailable = chains.filter((c) => c.servingReplicas === 0);
  if (unavailable.length) err('CHAIN_UNAVAILABLE', `${unavailable.length} chain(s) without a serving target: ${unavailable.map((c) => c.chainId).join(', ')}`);
  if (p.meta.length && p.meta.every((m) => !m.up)) err('META_DOWN', `no meta server answers (${p.meta.map((m) => m.address).join(', ')})`);
  const down = targets.filter((t) => t.state === 'offline');
  if (down.length) warn('TARGET_DOWN', `${down.length} target(s) offline: ${down.map((t) => `target ${t.targetId} (node ${t.nodeId} on ${t.host})`).join(', ')}`);
  if (resyncs.length) warn('TARGET_RECOVERING', `${resyncs.length} target(s) recovering: ${resyncs.map((t) => `target ${t.targetId} ${t.state}`).join(', ')}`);
  const dead = nodes.filter((n) => n.kind === 'storage' && !n.alive);
  if (dead.length) warn('NODE_DEAD', `${dead.length} storage node(s) dead: ${dead.map((n) => `node ${n.nodeId} on ${n.host}`).join(', ')}`);
  const short = chains.filter((c) => c.servingReplicas > 0 && c.servingReplicas < Math.max(c.replicas, replicas));
  if (short.length) warn('CHAIN_DEGRADED', `${short.length} of ${chains.length} chain(s) short of ${replicas} serving replicas`);
  const full = targets.filter((t) => t.full);
  if (full.length) warn('TARGET_FULL', `${full.length} target(s) (nearly) full: ${full.map((t) => `target ${t.targetId} free ${t.freeBytes ?? 0} of ${t.capacityBytes ?? 0} bytes`).join(', ')}`);
  const mgmtdDown = p.mgmtd.filter((m) => m.role === 'unreachable');
  if (mgmtdDown.length) warn('MGMTD_DOWN', `${mgmtdDown.length} of ${p.mgmtd.length} mgmtd(s) not answering: ${mgmtdDown.map((m) => m.address).join(', ')}`);
  const metaDown = p.meta.filter((m) => !m.up);
  if (metaDown.length && metaDown.length < p.meta.length) warn('META_SERVER_DOWN', `${metaDown.length} of ${p.meta.length} meta server(s) not answering: ${metaDown.map((m) => m.address).join(', ')}`);
  const status: HealthStatus = checks.some((c) => c.severity === 'err') ? 'HEALTH_ERR' : checks.length ? 'HEALTH_WARN' : 'HEALTH_OK';

  return {
    atMs: p.atMs,
    health: { status, checks },
    services: {
      mgmtd: { routingVersion: a.version, primary: p.mgmtd.find((m) => m.role === 'primary')?.address, instances: p.mgmtd },
      meta: p.meta,
      storage: { nodes: nodes.filter((n) => n.kind === 'storage').length, nodesAlive: nodes.filter((n) => n.kind === 'storage' && n.alive).length, targets: targets.length, targetsServing: targets.filter((t) => t.state === 'serving').length },
      executors: { live: p.executors.length, slots: p.executors.reduce((x, e) => x + e.slots, 0), running: p.executors.reduce((x, e) => x + e.running, 0) },
    },
    capacity: { capacityBytes, usedBytes: capacityBytes - freeBytes, freeBytes, replicas, usableFreeBytes: Math.floor(freeBytes / replicas) },
    throughput: { readBytesPerS, writeBytesPerS },
    recovery: { resyncs, moves, drains, rebalance: a.ops.rebalance, moved: a.ops.moved },
    hosts, nodes, targets, chains, chainTables: a.chainTables,
    executors: p.executors,
    jobs: p.jobs,
  };
}

export type ClusterView = ReturnType<typeof viewOf>;

/**
 * Gathers views over long-lived connections: one client over every mgmtd address (the admin's
 * calls go to the primary), one per address to learn its role, one per meta server. `close`
 * ends them.
 */
export class ClusterViewer {
  private readonly main: MgmtdClient;
  private readonly perMgmtd: Array<{ address: string; client: MgmtdClient }>;
  private readonly perMeta: Array<{ address: string; client: MetaClient }>;

  constructor(mgmtd: string[], meta: string[], auth: ClientAuth | undefined) {
    this.main = new MgmtdClient(mgmtd, { auth });
    const timeoutMs = clusterViewLimits.statusTimeoutMs;
    this.perMgmtd = mgmtd.map((address) => ({ address, client: new MgmtdClient([address], { auth, timeoutMs, roundsMax: 1 }) }));
    this.perMeta = meta.map((address) => ({ address, client: new MetaClient(address, { auth, timeoutMs, attemptsMax: 1 }) }));
  }

  async gather(): Promise<ClusterView> {
    const mgmtdRoles = Promise.all(this.perMgmtd.map(async ({ address, client }) => {
      try {
        const s = await client.status();
        return { address, role: s.primary ? 'primary' as const : 'standby' as const };
      } catch (e) {
        return { address, role: 'unreachable' as const, error: (e as Error).message };
      }
    }));
    const metaUp = Promise.all(this.perMeta.map(async ({ address, client }) => {
      try {
        await client.stat('/');
        return { address, up: true };
      } catch (e) {
        return { address, up: false, error: (e as Error).message };
      }
    }));
    const admin = await this.main.admin<AdminView>('adminView');
    const [executors, jobs, mgmtd, meta] = await Promise.all([listExecutors(this.main), listJobs(this.main), mgmtdRoles, metaUp]);
    return viewOf({ atMs: Date.now(), admin, mgmtd, meta, executors, jobs });
  }

  close(): void {
    this.main.close();
    for (const m of this.perMgmtd) m.client.close();
    for (const m of this.perMeta) m.client.disconnect();
  }
}
