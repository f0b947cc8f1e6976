/**
 * Stray chunks: a target that left a chain (a replica move of rebalance, drain or replace:
 * src/cluster/admin-ops.ts) keeps the chunks it held for that chain, each tagged with it
 * (chunk format 3). The storage daemon sweeps them away in bounded background passes.
 *
 * The rule, and why each part of it:
 *  - Only tagged chunks (chainId != 0): an untagged one (older format) may be of any chain.
 *  - Only chunks of a chain the routing has and the target is no member of (neither in its
 *    targets nor in its preferred order), without interruption, in every routing the daemon
 *    applied for `graceMs` (clusterLimits.strayChainGraceSecDefault). The clock starts at the
 *    first applied routing without the target in the chain (a daemon restart starts it again)
 *    and stops at any applied routing with it: a move back onto the target stops it, and clients
 *    on an older routing have long moved on before the copy goes.
 *  - Only while the target serves (routing state serving, localState uptodate) and no resync of
 *    it runs. The daemon's resync waits for a pass under way to end before it looks at a local
 *    chunk, so it never finds a chunk up to date that a pass then removes.
 *  - The rule is asked again right before each removal: a routing applied meanwhile counts.
 *  - Only the exact version listed (removeIfUnchanged, as resync's removal). A chain write or
 *    forward reaches the target only once its daemon placed it on the chain (the data server
 *    refuses them for chains it is not on, and placing stops the clock), and anything that
 *    changed the chunk since the listing makes the removal refuse. So a pending version on a
 *    stray chain is one its chain abandoned (a forward whose successor failed before the target
 *    left): it goes too, as does a damaged chunk whose tag is readable (scrub repairs only from
 *    replicas of the target's own chains, so nothing would ever repair it).
 */
import type { ChunkStore } from '../chunk/chunk-store.js';
import { clusterLimits } from '../limits.js';
import { strayBytesRemoved, strayChunksRemoved } from '../metrics/services.js';
import type { ChunkId } from '../native/binding.js';
import type { Routing } from '../protocol/mgmtd-types.js';
import { nextAfter, removeIfUnchanged } from './copy.js';

/** Since when each chain has been absent from each local target, over the routings applied. */
export class StrayChains {
  /** targetId -> chainId -> ms since which no applied routing had the target in the chain. */
  private readonly absentSinceMs = new Map<number, Map<number, number>>();

  constructor(readonly graceMs: number) {}

  /** Records a routing the daemon applied at `nowMs` for its targets `targetIds`. */
  applied(r: Routing, targetIds: Iterable<number>, nowMs: number): void {
    const registered = new Set(r.targets.map((t) => t.targetId));
    for (const id of targetIds) {
      const before = this.absentSinceMs.get(id);
      const now = new Map<number, number>();
      // A target the routing does not know (not registered yet, removed): nothing is stray.
      if (registered.has(id)) {
        for (const c of r.chains) {
          if (c.targets.includes(id) || c.preferred?.includes(id)) continue;
          now.set(c.chainId, before?.get(c.chainId) ?? nowMs);
        }
      }
      this.absentSinceMs.set(id, now);
    }
  }

  /** Whether chunks tagged `chainId` on `targetId` are stray at `nowMs` (never for untagged, 0). */
  stray(targetId: number, chainId: number, nowMs: number): boolean {
    const since = chainId === 0 ? undefined : this.absentSinceMs.get(targetId)?.get(chainId);
    return since !== undefined && nowMs - since >= this.graceMs;
  }

  /** Whether any chain is stray on `targetId` (a pass there can remove something). */
  any(targetId: number, nowMs: number): boolean {
    for (const since of this.absentSinceMs.get(targetId)?.values() ?? []) if (nowMs - since >= this.graceMs) return true;
    return false;
  }
}

export interface SweepStats {
  passes: number;
  /** Chunks the passes listed. */
  listed: number;
  removed: number;
  removedBytes: number;
  /** Stray chunks that changed (or went) between the listing and their removal: kept. */
  changed: number;
}

export const emptySweepStats = (): SweepStats => ({ passes: 0, listed: 0, removed: 0, removedBytes: 0, changed: 0 });

export interface SweepPassOptions {
  store: ChunkStore;
  /** The pass lists from after this chunk (where the previous pass stopped); absent: the start. */
  after?: ChunkId;
  /** The rule for a chunk tagged `chainId`, asked right before each removal (the daemon's answers at once). */
  stray(chainId: number): boolean | Promise<boolean>;
  stats: SweepStats;
  /** Chunks listed (so removed) at most (clusterLimits.straySweepListPage). */
  limit?: number;
}

/** One bounded pass over a target's store; returns where the next goes on (undefined: the start). */
export async function sweepPass(o: SweepPassOptions): Promise<ChunkId | undefined> {
  const limit = o.limit ?? clusterLimits.straySweepListPage;
  const page = await o.store.list({ after: o.after, limit });
  o.stats.passes++;
  o.stats.listed += page.length;
  for (const e of page) {
    if (e.chainId === 0 || !(await o.stray(e.chainId))) continue;
    if (await removeIfUnchanged(o.store, e)) {
      o.stats.removed++;
      o.stats.removedBytes += e.meta.length;
      strayChunksRemoved.inc();
      strayBytesRemoved.inc(e.meta.length);
    } else o.stats.changed++;
  }
  return nextAfter(page, limit);
}
