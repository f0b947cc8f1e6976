/**
 * mgmtd's registry of live `millpond executor`s (design §11): soft state on the primary, each
 * entry refreshed by its executor's report every registryHeartbeatMs and gone once it is older
 * than registryEntryTtlMs (a SIGKILLed executor disappears within that). A new primary starts
 * empty and is full again after one report period; nothing is persisted.
 *
 *   method                   params                                        result
 *   mgmtd.executorReport     id, host, slots, running, load1 (x100), pid,  null
 *                            startedMs
 *   mgmtd.executorLeave      id                                            null
 *   mgmtd.executors          -                                             { executors: ExecutorRecord[] }
 *
 * Auth: a report or leave carries a token (the executor's own, or the admin's); the uid that
 * first reported an id owns it, and only that uid or the admin (uid 0) may refresh or remove it
 * (EACCES). Listing is open to any admitted caller. Standbys answer ENOTPRIMARY.
 */
import { MillpondError } from '../errors.js';
import { clusterExecutorLimits } from '../limits.js';
import { ProtocolError, type Params } from '../protocol/envelope.js';
import { str, uint } from '../protocol/fields.js';
import type { MgmtdClient } from './mgmtd-client.js';

export interface ExecutorReport {
  id: string;
  host: string;
  slots: number;
  running: number;
  /** The host's 1-minute load average. */
  load1: number;
  pid: number;
  startedMs: number;
}

export interface ExecutorRecord extends ExecutorReport {
  ownerUid: number;
  /** How long ago its last report arrived. */
  ageMs: number;
}

export const EXECUTOR_METHODS = ['mgmtd.executorReport', 'mgmtd.executorLeave', 'mgmtd.executors'] as const;

function name(p: Params, field: string): string {
  const v = str(p, field);
  if (v === '' || Buffer.byteLength(v) > clusterExecutorLimits.executorNameBytesMax) {
    throw new ProtocolError('EPROTO', `param ${field} must be 1..${clusterExecutorLimits.executorNameBytesMax} bytes`);
  }
  return v;
}

export function decodeExecutorReport(p: Params): ExecutorReport {
  return {
    id: name(p, 'id'), host: name(p, 'host'),
    slots: uint(p, 'slots', clusterExecutorLimits.slotsMax), running: uint(p, 'running', clusterExecutorLimits.slotsMax),
    load1: uint(p, 'load1', 1_000_000) / 100, pid: uint(p, 'pid', 0xffffffff), startedMs: uint(p, 'startedMs'),
  };
}

export class ExecutorRegistry {
  private readonly entries = new Map<string, { report: ExecutorReport; ownerUid: number; seenMs: number }>();

  constructor(private readonly ttlMs: number = clusterExecutorLimits.registryEntryTtlMs) {}

  private sweep(now: number): void {
    for (const [id, e] of this.entries) if (now - e.seenMs > this.ttlMs) this.entries.delete(id);
  }

  private checkOwner(uid: number, id: string): void {
    const e = this.entries.get(id);
    if (e && e.ownerUid !== uid && uid !== 0) throw new MillpondError('EACCES', `executor ${id} belongs to uid ${e.ownerUid}; uid ${uid} may not change it`);
  }

  report(uid: number, report: ExecutorReport): void {
    const now = Date.now();
    this.sweep(now);
    this.checkOwner(uid, report.id);
    const old = this.entries.get(report.id);
    if (!old && this.entries.size >= clusterExecutorLimits.mgmtdExecutorsMax) throw new MillpondError('ENOSPC', `mgmtd holds at most ${clusterExecutorLimits.mgmtdExecutorsMax} executors`);
    this.entries.set(report.id, { report, ownerUid: old?.ownerUid ?? uid, seenMs: now });
  }

  leave(uid: number, id: string): void {
    this.checkOwner(uid, id);
    this.entries.delete(id);
  }

  list(): ExecutorRecord[] {
    const now = Date.now();
    this.sweep(now);
    return [...this.entries.values()].map((e) => ({ ...e.report, ownerUid: e.ownerUid, ageMs: now - e.seenMs }))
      .sort((a, b) => a.host.localeCompare(b.host) || a.id.localeCompare(b.id));
  }
}

/**
 * The registry's handlers for mgmtd-server.ts. `uidOf` is the caller's uid from its token
 * (EAUTH without a valid one; 0 on an mgmtd without authentication).
 */
export function executorHandlers(service: { requirePrimary(): void }, registry: ExecutorRegistry, uidOf: (p: Params) => number): Record<(typeof EXECUTOR_METHODS)[number], (p: Params) => unknown> {
  return {
    'mgmtd.executorReport': (p) => {
      service.requirePrimary();
      const report = decodeExecutorReport(p);
      registry.report(uidOf(p), report);
      return null;
    },
    'mgmtd.executorLeave': (p) => {
      service.requirePrimary();
      registry.leave(uidOf(p), name(p, 'id'));
      return null;
    },
    'mgmtd.executors': () => {
      service.requirePrimary();
      return { executors: registry.list() };
    },
  };
}

/** Client side: an executor's report (its token rides with every call of `client`). */
export async function reportExecutor(client: MgmtdClient, report: ExecutorReport): Promise<void> {
  await client.call('mgmtd.executorReport', { ...report, load1: Math.round(report.load1 * 100) });
}

export async function leaveExecutor(client: MgmtdClient, id: string): Promise<void> {
  await client.call('mgmtd.executorLeave', { id });
}

export async function listExecutors(client: MgmtdClient): Promise<ExecutorRecord[]> {
  const r = await client.call('mgmtd.executors', {}) as { executors: ExecutorRecord[] };
  return r.executors;
}

/** `millpond status`'s executors section: one summary line, then one line per executor. */
export function executorStatusLines(live: ExecutorRecord[], nowMs = Date.now()): string[] {
  const slots = live.reduce((a, e) => a + e.slots, 0);
  const running = live.reduce((a, e) => a + e.running, 0);
  return [
    `executors: ${live.length} live, ${slots} slots, ${running} tasks running`,
    ...live.map((e) => `executor ${e.id} host ${e.host} slots ${e.slots} running ${e.running} load ${e.load1.toFixed(2)} up ${Math.round((nowMs - e.startedMs) / 1000)} s`),
  ];
}
