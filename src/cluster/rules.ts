/**
 * The target state machine of mgmtd (after 3FS), as a pure function over the cluster's
 * records so it can be reasoned about and tested alone.
 *
 * A target may belong to several chains; its public state is one for all of them. Rules,
 * applied one target at a time until nothing changes:
 *   dead  serving          -> lastsrv if it is the last serving target of one of its chains,
 *                             else offline
 *   dead  syncing/waiting  -> offline
 *   alive serving          -> syncing if its daemon restarted and every chain of it keeps
 *                             another serving target (it may have lost pending writes)
 *   alive lastsrv          -> serving, or syncing if a chain of it has another serving target
 *   alive offline/waiting/syncing
 *                          -> waiting while a chain of it has no serving target but a lastsrv
 *                             (the lastsrv holds that chain's newest data)
 *                          -> syncing stays syncing until its daemon reports the resync done,
 *                             then serving (a former lastsrv syncs the chains where it missed
 *                             writes and meanwhile keeps the chains where it is the newest)
 *                          -> serving if a chain of it has neither (a new chain, or a lost one)
 *                          -> serving if it is in no chain
 *                          -> otherwise syncing
 * Then each chain is reordered: serving targets in the chain's preferred order (its order at
 * creation), then syncing, then the rest (relative order kept), and its version bumps if its
 * order or a member's state changed. So a target moves ahead only once it is serving, that
 * is, synced: a returning target enters at the end (syncing, fed every new write by its
 * predecessor), and when its resync is done it takes back its preferred place, the head of
 * the chains it headed. Without this every failure moved heads to the survivors for good, and
 * after a few failures every chain had the same head (issue 9, item 9).
 */
import type { ChainRecord, TargetRecord, TargetState } from '../protocol/mgmtd-types.js';

export interface RuleInput {
  targets: Map<number, TargetRecord>;
  chains: Map<number, ChainRecord>;
  /** Whether the node of each target is alive (heartbeat within the timeout). */
  isAlive: (target: TargetRecord) => boolean;
  /** Targets whose daemon (re)registered since the last evaluation. */
  restarted: ReadonlySet<number>;
  /** Targets whose daemon reported a finished resync for the current syncing round. */
  syncDone: ReadonlySet<number>;
}

export interface RuleOutput {
  /** targetId -> [before, after] */
  changedTargets: Map<number, [TargetState, TargetState]>;
  changedChains: Set<number>;
}

function chainsOf(chains: Map<number, ChainRecord>): Map<number, ChainRecord[]> {
  const out = new Map<number, ChainRecord[]>();
  for (const chain of chains.values()) {
    for (const t of chain.targets) {
      const list = out.get(t) ?? [];
      list.push(chain);
      out.set(t, list);
    }
  }
  return out;
}

function next(t: TargetRecord, mine: ChainRecord[], input: RuleInput): TargetState {
  const { targets } = input;
  const others = (chain: ChainRecord, state: TargetState) =>
    chain.targets.some((id) => id !== t.targetId && targets.get(id)?.state === state);
  if (!input.isAlive(t)) {
    if (t.state === 'serving') return mine.some((c) => !others(c, 'serving')) ? 'lastsrv' : 'offline';
    if (t.state === 'syncing' || t.state === 'waiting') return 'offline';
    return t.state;
  }
  if (mine.length === 0) return 'serving';
  if (t.state === 'serving') {
    return input.restarted.has(t.targetId) && mine.every((c) => others(c, 'serving')) ? 'syncing' : 'serving';
  }
  if (t.state === 'lastsrv') return mine.some((c) => others(c, 'serving')) ? 'syncing' : 'serving';
  if (mine.some((c) => !others(c, 'serving') && others(c, 'lastsrv'))) return 'waiting';
  if (t.state === 'syncing') return input.syncDone.has(t.targetId) ? 'serving' : 'syncing';
  if (mine.some((c) => !others(c, 'serving') && !others(c, 'lastsrv'))) return 'serving';
  return 'syncing';
}

const RANK: Record<TargetState, number> = { serving: 0, syncing: 1, waiting: 2, lastsrv: 2, offline: 2 };

/** Applies the rules to `input.targets` and `input.chains` in place. */
export function applyRules(input: RuleInput): RuleOutput {
  const changedTargets = new Map<number, [TargetState, TargetState]>();
  const byTarget = chainsOf(input.chains);
  // Each step changes one target; a target changes a bounded number of times per pass.
  const stepsMax = input.targets.size * 4 + 4;
  for (let step = 0; step < stepsMax; step++) {
    let changed = false;
    for (const t of input.targets.values()) {
      const state = next(t, byTarget.get(t.targetId) ?? [], input);
      if (state === t.state) continue;
      const before = changedTargets.get(t.targetId)?.[0] ?? t.state;
      changedTargets.set(t.targetId, [before, state]);
      t.state = state;
      changed = true;
      break;
    }
    if (!changed) break;
  }
  for (const [id, [before, after]] of changedTargets) if (before === after) changedTargets.delete(id);
  const changedChains = new Set<number>();
  for (const chain of input.chains.values()) {
    const membersChanged = chain.targets.some((id) => changedTargets.has(id));
    const rank = (id: number) => RANK[input.targets.get(id)?.state ?? 'offline'];
    const preferred = chain.preferred ?? [];
    // Members missing from `preferred` (it is absent, or from another membership) keep their
    // current relative order after the preferred ones.
    const place = (id: number) => {
      const i = preferred.indexOf(id);
      return i < 0 ? preferred.length + chain.targets.indexOf(id) : i;
    };
    const order = [...chain.targets].sort((a, b) =>
      rank(a) - rank(b) || (rank(a) === 0 ? place(a) - place(b) : chain.targets.indexOf(a) - chain.targets.indexOf(b)));
    const reordered = order.some((id, i) => id !== chain.targets[i]);
    if (membersChanged || reordered) {
      chain.targets = order;
      chain.version++;
      changedChains.add(chain.chainId);
    }
  }
  return { changedTargets, changedChains };
}
