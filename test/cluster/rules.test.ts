// The target state rules alone (src/cluster/rules.ts), for cases the process tests don't reach:
// targets in several chains, a lastsrv that missed writes elsewhere, a chain lost entirely.
import { describe, expect, it } from 'vitest';
import { applyRules } from '../../src/cluster/rules.js';
import type { ChainRecord, TargetRecord, TargetState } from '../../src/protocol/mgmtd-types.js';

function world(states: Record<number, TargetState>, chains: Record<number, number[]>) {
  const targets = new Map<number, TargetRecord>(Object.entries(states).map(([id, state]) => [Number(id), {
    targetId: Number(id), nodeId: Number(id), dataAddress: `h:${id}`, state, localState: 'online', stateVersion: 0,
  }]));
  const chainMap = new Map<number, ChainRecord>(Object.entries(chains).map(([id, t]) => [Number(id), { chainId: Number(id), version: 1, targets: t }]));
  return { targets, chains: chainMap };
}

function run(w: ReturnType<typeof world>, alive: number[], extra: { restarted?: number[]; syncDone?: number[] } = {}) {
  const out = applyRules({
    ...w,
    isAlive: (t) => alive.includes(t.targetId),
    restarted: new Set(extra.restarted ?? []),
    syncDone: new Set(extra.syncDone ?? []),
  });
  return { out, states: Object.fromEntries([...w.targets.values()].map((t) => [t.targetId, t.state])) };
}

describe('target state rules', () => {
  it('a dead serving target is offline, or lastsrv where it was the last serving one', () => {
    const w = world({ 1: 'serving', 2: 'serving', 3: 'offline' }, { 10: [1, 2, 3] });
    expect(run(w, [2, 3]).states).toEqual({ 1: 'offline', 2: 'serving', 3: 'syncing' });
    const { out, states } = run(w, [3]);
    expect(states).toEqual({ 1: 'offline', 2: 'lastsrv', 3: 'waiting' });
    expect(w.chains.get(10)!.version).toBe(3);
    expect(out.changedChains).toEqual(new Set([10]));
  });

  it('a returning lastsrv serves at once unless it missed writes in another chain', () => {
    const alone = world({ 1: 'lastsrv', 2: 'offline' }, { 10: [2, 1] });
    expect(run(alone, [1]).states).toEqual({ 1: 'serving', 2: 'offline' });
    expect(alone.chains.get(10)!.targets).toEqual([1, 2]);
    const missed = world({ 1: 'lastsrv', 2: 'offline', 3: 'serving' }, { 10: [1, 2], 11: [3, 1] });
    expect(run(missed, [1, 3]).states).toEqual({ 1: 'syncing', 2: 'offline', 3: 'serving' });
    // Chain 10 has no serving target until 1 finished its resync from chain 11's source.
    expect(run(missed, [1, 3], { syncDone: [1] }).states).toEqual({ 1: 'serving', 2: 'offline', 3: 'serving' });
  });

  it('a restarted serving target resyncs only if every chain of it has another serving target', () => {
    const w = world({ 1: 'serving', 2: 'serving', 3: 'serving' }, { 10: [1, 2], 11: [1, 3] });
    expect(run(w, [1, 2, 3], { restarted: [1] }).states).toEqual({ 1: 'syncing', 2: 'serving', 3: 'serving' });
    expect(w.chains.get(10)!.targets).toEqual([2, 1]);
    const sole = world({ 1: 'serving', 2: 'offline' }, { 10: [1, 2] });
    expect(run(sole, [1], { restarted: [1] }).states).toEqual({ 1: 'serving', 2: 'offline' });
  });

  it('a target that serves again (synced) takes back its preferred place: heads spread again', () => {
    // Three chains over three targets, each headed by another target, as planChains makes them.
    const w = world({ 1: 'serving', 2: 'serving', 3: 'serving' }, { 10: [1, 2, 3], 11: [2, 3, 1], 12: [3, 1, 2] });
    for (const c of w.chains.values()) c.preferred = [...c.targets];
    const heads = () => [...w.chains.values()].map((c) => c.targets[0]);
    run(w, [2, 3]);                       // 1 dies
    run(w, [3]);                          // then 2
    expect(heads()).toEqual([3, 3, 3]);
    run(w, [1, 2, 3], { restarted: [1, 2] });
    expect(w.targets.get(1)!.state).toBe('syncing');
    // Syncing targets never move ahead of a serving one: they may lack committed writes.
    expect(heads()).toEqual([3, 3, 3]);
    const before = w.chains.get(10)!.version;
    run(w, [1, 2, 3], { syncDone: [1, 2] });
    expect([1, 2, 3].map((id) => w.targets.get(id)!.state)).toEqual(['serving', 'serving', 'serving']);
    expect([...w.chains.values()].map((c) => c.targets)).toEqual([[1, 2, 3], [2, 3, 1], [3, 1, 2]]);
    expect(w.chains.get(10)!.version).toBeGreaterThan(before);   // clients and daemons follow
    // A record without a preferred order keeps today's relative order.
    const old = world({ 1: 'syncing', 2: 'serving' }, { 10: [2, 1] });
    run(old, [1, 2], { syncDone: [1] });
    expect(old.chains.get(10)!.targets).toEqual([2, 1]);
  });

  it('nothing changes when nothing happened', () => {
    const w = world({ 1: 'serving', 2: 'serving' }, { 10: [1, 2] });
    const { out } = run(w, [1, 2]);
    expect(out.changedTargets.size + out.changedChains.size).toBe(0);
    expect(w.chains.get(10)!.version).toBe(1);
  });
});
