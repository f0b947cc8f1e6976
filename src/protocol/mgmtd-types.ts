/**
 * The cluster's records (design §1–§3, after 3FS's mgmtd). mgmtd keeps them in its KV and
 * serves them to clients and daemons as one `Routing` snapshot with a version that bumps on
 * every change.
 */

/**
 * Public state of a target (decided by mgmtd):
 *   serving  reads and writes; up to date
 *   syncing  back after a failure: receives forwarded writes and is being resynced; no reads
 *   waiting  back, but a chain of it has no serving target; waits for that chain's lastsrv
 *   lastsrv  died while it was the last serving target of a chain: it holds the newest data
 *   offline  dead (missed heartbeats)
 */
export type TargetState = 'serving' | 'syncing' | 'waiting' | 'lastsrv' | 'offline';
export const TARGET_STATES: readonly TargetState[] = ['serving', 'syncing', 'waiting', 'lastsrv', 'offline'];

/**
 * What a storage daemon says about its target in heartbeats:
 *   online        running, not known to be up to date (just started, or resync in progress)
 *   syncing-done  a resync finished: every chunk of the sources is here
 *   uptodate      serving and running since mgmtd accepted it as serving
 */
export type LocalState = 'online' | 'syncing-done' | 'uptodate';
export const LOCAL_STATES: readonly LocalState[] = ['online', 'syncing-done', 'uptodate'];

export type NodeKind = 'storage' | 'meta' | 'client';
export const NODE_KINDS: readonly NodeKind[] = ['storage', 'meta', 'client'];

export interface NodeRecord {
  nodeId: number;
  kind: NodeKind;
  /** The node's control-plane endpoint (tcp://...), '' if it serves none. */
  controlAddress: string;
}

export interface TargetRecord {
  targetId: number;
  nodeId: number;
  /** Data-plane "host:port" of the node's DataServer for this target. */
  dataAddress: string;
  state: TargetState;
  /** The last local state the daemon reported. */
  localState: LocalState;
  /** The routing version at which the target entered its current state. */
  stateVersion: number;
}

export interface ChainRecord {
  chainId: number;
  /** Bumps on every change of membership, order or member state. */
  version: number;
  /** Ordered: serving targets first (the head is [0]), then syncing, then the rest. */
  targets: number[];
  /**
   * The order the chain was created with (the same members). Serving targets keep this
   * order among themselves, so a chain whose head failed gets it back as head once it is
   * serving again (synced): heads stay spread over the targets. Absent in records written
   * before it existed; mgmtd then takes `targets` at load.
   */
  preferred?: number[];
}

/**
 * A chain table. Its chain list only grows (admin growTable appends chains and bumps
 * `version`); a file layout records the version it was created at and spreads over the chains
 * the table had then (fs/layout.ts tableChainsAt), so growing never moves existing files.
 */
export interface ChainTableRecord {
  tableId: number;
  version: number;
  chainIds: number[];
  /**
   * chainCounts[v - 1]: how many chains (a prefix of chainIds) the table had at version v,
   * for v = 1..version. Absent: the table never grew (every version has all of chainIds;
   * tables made before growing existed have none).
   */
  chainCounts?: number[];
}

/** What getRouting serves: the whole picture at one version. */
export interface Routing {
  version: number;
  /** appliedVersion: the routing version the node last said it applied (heartbeats). */
  nodes: Array<NodeRecord & { alive: boolean; appliedVersion: number }>;
  targets: TargetRecord[];
  chains: ChainRecord[];
  chainTables: ChainTableRecord[];
  /**
   * Syncing targets whose copy is bounded (a rebalance move's share of `admin rebalance
   * --rate-mib-s`): bytes per second their resync may copy. Absent or unlisted: unbounded.
   */
  resyncRates?: Array<{ targetId: number; bytesPerS: number }>;
}

/** The data path of one chain: serving then syncing targets, in order. */
export function dataPath(chain: ChainRecord, targets: ReadonlyMap<number, TargetRecord>): TargetRecord[] {
  const members = chain.targets.map((id) => targets.get(id)).filter((t): t is TargetRecord => t !== undefined);
  return [...members.filter((t) => t.state === 'serving'), ...members.filter((t) => t.state === 'syncing')];
}

/** A resync's progress as its daemon reports it: chunks listed at the sources and copied so far. */
export interface ResyncProgress { listedChunks: number; copiedChunks: number; copiedBytes: number; sourceTargetIds: number[] }

/** What a storage daemon reports of one of its targets in each heartbeat. */
export interface HeartbeatTarget {
  targetId: number;
  localState: LocalState;
  syncedStateVersion?: number;
  capacityBytes?: number;
  freeBytes?: number;
  /** Chunks the target holds. */
  chunks?: number;
  resync?: ResyncProgress;
  /** What the target's stray sweep removed since its daemon started (chunks of chains it left). */
  swept?: SweptChunks;
}

/** Chunks and bytes a target's stray sweep removed, counted since its daemon started. */
export interface SweptChunks { removedChunks: number; removedBytes: number }
