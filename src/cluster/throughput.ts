/**
 * Data-plane throughput per storage node, from the byte counters its heartbeats carry
 * (protocol.ts, mgmtd.heartbeat): the rate between a node's last two samples. Soft state on the
 * primary (a new primary has rates after two heartbeats). A counter that went backwards (the
 * process restarted) restarts the node's rate. Nodes of one process (same pid, as in
 * `millpond up`) report the same process counters: `of` returns the pid so a sum can count each
 * process once.
 */
import type { NodeDataCounters } from './mgmtd-client.js';

export interface NodeRate {
  readBytesPerS: number;
  writeBytesPerS: number;
  /** The process the counters are of (0 if unknown). */
  pid: number;
  /** Its counters' totals at the last sample. */
  dataReadBytes: number;
  dataWrittenBytes: number;
}

interface Sample { atMs: number; counters: NodeDataCounters }

export class NodeThroughput {
  private readonly last = new Map<number, Sample>();
  private readonly rates = new Map<number, NodeRate>();

  sample(nodeId: number, counters: NodeDataCounters, nowMs = Date.now()): void {
    const prev = this.last.get(nodeId);
    this.last.set(nodeId, { atMs: nowMs, counters });
    const base = { pid: counters.pid, dataReadBytes: counters.dataReadBytes, dataWrittenBytes: counters.dataWrittenBytes };
    if (!prev || prev.counters.pid !== counters.pid || nowMs <= prev.atMs
      || counters.dataReadBytes < prev.counters.dataReadBytes || counters.dataWrittenBytes < prev.counters.dataWrittenBytes) {
      this.rates.set(nodeId, { ...base, readBytesPerS: 0, writeBytesPerS: 0 });
      return;
    }
    const s = (nowMs - prev.atMs) / 1000;
    this.rates.set(nodeId, {
      ...base,
      readBytesPerS: Math.round((counters.dataReadBytes - prev.counters.dataReadBytes) / s),
      writeBytesPerS: Math.round((counters.dataWrittenBytes - prev.counters.dataWrittenBytes) / s),
    });
  }

  of(nodeId: number): NodeRate | undefined {
    return this.rates.get(nodeId);
  }
}
