/**
 * `millpond admin ...`: chain tables that change while serving (design §9, after 3FS's
 * admin_cli). Every command calls one of mgmtd's admin methods (src/protocol/mgmtd.ts), which
 * need the admin's token (EAUTH without a valid one, EACCES for another user's).
 */
import type { AdminView } from '../cluster/cluster-view.js';
import { MgmtdClient } from '../cluster/mgmtd-client.js';
import { MillpondError } from '../errors.js';
import { adminLimits } from '../limits.js';
import { cliAuth, type CliConfig } from './config.js';
import { Progress } from './progress.js';

export const ADMIN_USAGE = `millpond admin list nodes|targets|chains|ops [--json]
       millpond admin create-chain-table [--table N] [--replicas 1..${adminLimits.replicasMax}] [--chains N]
       millpond admin add-targets [--table N] [--replicas N] [--chains N]   (grows table N, default 1, by new chains over the new targets)
       millpond admin rebalance [--rate-mib-s N] [--stop] [--wait]
       millpond admin replace-target OLD NEW [--wait] | drain NODE [--wait] | remove-node NODE [--force]`;
/** Flags of admin commands that take no value (main.ts's parser must know them). */
export const ADMIN_BARE_FLAGS = ['json', 'force', 'wait', 'stop'];

export type { AdminView } from '../cluster/cluster-view.js';

const WAIT_POLL_MS = 500;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function positiveInt(value: string | undefined, name: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new MillpondError('EINVAL', `${name} must be an integer 0..${max}, not ${value}`);
  return n;
}

function id(value: string | undefined, what: string): number {
  const n = positiveInt(value, what, 0xffffffff);
  if (n === undefined) throw new MillpondError('EINVAL', `${what} is required\n${ADMIN_USAGE}`);
  return n;
}

/** A rate in MiB/s: a number 0..max (fractions allowed: 0.5 is 512 KiB/s). */
function rate(value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > max) throw new MillpondError('EINVAL', `--rate-mib-s must be a number 0..${max}, not ${value}`);
  return n;
}

const mib = (bytes: number | undefined) => (bytes === undefined ? '-' : `${(bytes / (1 << 20)).toFixed(1)}MiB`);

function print(view: AdminView, what: string, json: boolean): void {
  if (what === 'nodes') {
    if (json) return void console.log(JSON.stringify(view.nodes));
    for (const n of view.nodes) {
      const drain = n.drain ? ` draining ${n.drain.moved}/${n.drain.total} moved (${mib(n.drain.bytes)}), ${n.drain.left} left` : '';
      console.log(`node ${n.nodeId} ${n.kind} ${n.alive ? 'alive' : 'dead'} targets ${n.targets.join(',') || '-'} replicas ${n.replicas} used ${mib(n.usedBytes)} free ${mib(n.freeBytes)} of ${mib(n.capacityBytes)}${drain}`);
    }
  } else if (what === 'targets') {
    if (json) return void console.log(JSON.stringify(view.targets));
    for (const t of view.targets) {
      console.log(`target ${t.targetId} node ${t.nodeId} ${t.state} replicas ${t.replicas} heads ${t.heads} used ${mib(t.usedBytes)} free ${mib(t.freeBytes)}${t.full ? ' FULL' : ''} ${t.dataAddress}`);
    }
  } else if (what === 'chains') {
    if (json) return void console.log(JSON.stringify({ chains: view.chains, chainTables: view.chainTables }));
    const state = new Map(view.targets.map((t) => [t.targetId, t.state]));
    for (const c of view.chains) console.log(`chain ${c.chainId} v${c.version}: ${c.targets.map((id) => `${id}(${state.get(id) ?? '?'})`).join(' -> ')}`);
    for (const k of view.chainTables) console.log(`table ${k.tableId} v${k.version}: chains ${k.chainIds.join(',')}${k.chainCounts ? ` (chains per version ${k.chainCounts.join(',')})` : ''}`);
  } else if (what === 'ops') {
    if (json) return void console.log(JSON.stringify({ ops: view.ops, spread: view.spread }));
    const { ops, spread } = view;
    console.log(`rebalance ${ops.rebalance ? `on at ${mib(ops.rebalance.rateBytesPerS)}/s` : 'off'}; moved ${ops.moved.replicas} replicas (${mib(ops.moved.bytes)})`);
    for (const m of ops.moves) console.log(`move ${m.reason} chains ${m.chainIds.join(',')}: ${m.from} -> ${m.to} ${m.joinedVersion === undefined ? 'waiting to join' : 'syncing'} (~${mib(m.bytes)})`);
    for (const l of ops.leaving) console.log(`node ${l.nodeId} ${l.force ? 'removing' : 'draining'}: ${l.moved}/${l.total} replicas moved (${mib(l.bytes)})`);
    for (const e of ops.errors) console.log(`error ${e.code} at ${new Date(e.atMs).toISOString()}: ${e.message}`);
    console.log(`spread: replicas per target max-min ${spread.replicasSkew}, heads per node max-min ${spread.headsSkew}, ${spread.balanced ? 'balanced' : 'not balanced'}`);
  } else {
    throw new MillpondError('EINVAL', `admin list nodes|targets|chains|ops, not ${what}`);
  }
}

/** How far a long admin operation is, from a view: units done of total (what the bar shows). */
type Measure = (v: AdminView) => { done: number; total: number };

/**
 * Polls until `done(view)`. On a terminal: a progress bar on stderr (done/total, rate, ETA) from
 * `bar.measure`; elsewhere: a plain line on stdout whenever `line` changes (scripts and tests read
 * it). Fails with the error of an operation that ended meanwhile and that `failed` picks (a move
 * that could not finish).
 */
async function waitFor(mgmtd: MgmtdClient, done: (v: AdminView) => boolean, line: (v: AdminView) => string,
  failed: (e: AdminView['ops']['errors'][number]) => boolean, bar?: { label: string; unitName: string; measure: Measure }): Promise<AdminView> {
  let last = '';
  const progress = bar && process.stderr.isTTY ? new Progress(bar.label, 0, { unit: 'count', unitName: bar.unitName }) : undefined;
  const sinceMs = (await mgmtd.admin<AdminView>('adminView')).ops.errors.at(-1)?.atMs ?? 0;
  for (;;) {
    const v = await mgmtd.admin<AdminView>('adminView');
    const error = v.ops.errors.find((e) => e.atMs > sinceMs && failed(e));
    if (error) {
      if (progress) process.stderr.write('\n');
      throw new MillpondError(error.code, error.message);
    }
    if (progress) {
      const m = bar!.measure(v);
      progress.update(m.done, m.total);
    } else {
      const text = line(v);
      if (text !== last) console.log((last = text));
    }
    if (done(v)) {
      progress?.finish();
      return v;
    }
    await sleep(WAIT_POLL_MS);
  }
}

/**
 * Replicas a rebalance still has to move, estimated from the view: the replicas each serving
 * target holds above the even share (the mean, rounded up).
 */
export function replicasAboveShare(v: AdminView): number {
  const serving = v.targets.filter((t) => t.state === 'serving');
  if (serving.length === 0) return 0;
  const share = Math.ceil(serving.reduce((a, t) => a + t.replicas, 0) / serving.length);
  return serving.reduce((a, t) => a + Math.max(0, t.replicas - share), 0);
}

export async function runAdmin(config: CliConfig, rest: string[], flags: Map<string, string>): Promise<void> {
  const [sub, a, b] = rest;
  const mgmtd = new MgmtdClient(config.mgmtd, { auth: cliAuth(config) });
  const json = flags.has('json');
  const wait = flags.has('wait');
  try {
    switch (sub) {
      case 'list':
        return print(await mgmtd.admin<AdminView>('adminView'), a ?? 'nodes', json);
      case 'create-chain-table': {
        const tableId = positiveInt(flags.get('table'), '--table', 0xffffffff) ?? 1;
        const replicas = positiveInt(flags.get('replicas'), '--replicas', adminLimits.replicasMax) ?? adminLimits.replicasDefault;
        const chainCount = positiveInt(flags.get('chains'), '--chains', 1 << 16);
        const table = await mgmtd.admin<{ tableId: number; chainIds: number[] }>('adminCreateTable', { tableId, replicas, chainCount });
        console.log(`chain table ${table.tableId}: ${table.chainIds.length} chains of ${replicas} (${table.chainIds.join(',')})`);
        return;
      }
      case 'add-targets': {
        // Grows the table in use in place: new chains appended at a new table version. Files
        // keep their chains (their layouts record the version they were made at); new files
        // spread over the grown table; existing data moves with `admin rebalance`.
        const tableId = positiveInt(flags.get('table'), '--table', 0xffffffff) ?? 1;
        const view = await mgmtd.admin<AdminView>('adminView');
        const fresh = view.targets.filter((t) => t.replicas === 0 && t.state === 'serving');
        if (fresh.length === 0) throw new MillpondError('EINVAL', 'no serving target is in no chain: start the new node\'s storage daemon first');
        const replicas = positiveInt(flags.get('replicas'), '--replicas', adminLimits.replicasMax);
        const chainCount = positiveInt(flags.get('chains'), '--chains', 1 << 16);
        const before = view.chainTables.find((t) => t.tableId === tableId)?.chainIds.length ?? 0;
        const table = await mgmtd.admin<{ tableId: number; version: number; chainIds: number[] }>('adminGrowTable', { tableId, replicas, chainCount });
        const added = table.chainIds.slice(before);
        console.log(`chain table ${table.tableId} v${table.version}: ${table.chainIds.length} chains, new ${added.join(',')}; new targets ${fresh.map((t) => t.targetId).sort((x, y) => x - y).join(',')}; `
          + 'new files use the new chains, existing data moves onto the new targets with `millpond admin rebalance`');
        return;
      }
      case 'rebalance': {
        const rateMiBs = flags.has('stop') ? 0 : rate(flags.get('rate-mib-s'), adminLimits.rebalanceRateMiBsMax) ?? adminLimits.rebalanceRateMiBsDefault;
        await mgmtd.admin('adminRebalance', { rateMiBs });
        console.log(rateMiBs === 0 ? 'rebalance stopped' : `rebalance on at ${rateMiBs} MiB/s`);
        if (wait && rateMiBs > 0) {
          const startMoved = (await mgmtd.admin<AdminView>('adminView')).ops.moved.replicas;
          await waitFor(mgmtd, (v) => v.spread.balanced, (v) => `moved ${v.ops.moved.replicas} replicas (${mib(v.ops.moved.bytes)}), ${v.ops.moves.length} moving; replicas per target max-min ${v.spread.replicasSkew}, heads per node max-min ${v.spread.headsSkew}`,
            (e) => e.reason === 'rebalance',
            { label: 'rebalance', unitName: 'replicas', measure: (v) => {
              const moved = v.ops.moved.replicas - startMoved;
              return { done: moved, total: moved + (v.spread.balanced ? 0 : Math.max(replicasAboveShare(v), v.ops.moves.length)) };
            } });
          console.log('balanced');
        }
        return;
      }
      case 'replace-target': {
        const oldId = id(a, 'OLD (target id)');
        const newId = id(b, 'NEW (target id)');
        await mgmtd.admin('adminReplace', { oldTargetId: oldId, newTargetId: newId });
        console.log(`target ${newId} replaces ${oldId}: it joins ${oldId}'s chains and resyncs`);
        if (wait) {
          const chainsOf = (v: AdminView) => v.chains.filter((c) => c.targets.includes(oldId)).length;
          const total = chainsOf(await mgmtd.admin<AdminView>('adminView'));
          await waitFor(mgmtd, (v) => chainsOf(v) === 0,
            (v) => `target ${newId} ${v.targets.find((t) => t.targetId === newId)?.state ?? '?'}; chains still with ${oldId}: ${chainsOf(v)}`,
            (e) => e.reason === 'replace' && e.from === oldId,
            { label: `replace ${oldId} -> ${newId}`, unitName: 'chains', measure: (v) => ({ done: Math.max(0, total - chainsOf(v)), total }) });
        }
        return;
      }
      case 'drain': {
        const nodeId = id(a, 'NODE (node id)');
        const l = await mgmtd.admin<{ total: number }>('adminDrain', { nodeId });
        console.log(`node ${nodeId} drains: ${l.total} replicas to move`);
        if (wait) {
          await waitFor(mgmtd, (v) => v.nodes.find((n) => n.nodeId === nodeId)?.replicas === 0, (v) => {
            const d = v.nodes.find((n) => n.nodeId === nodeId)?.drain;
            return d ? `node ${nodeId}: ${d.moved}/${d.total} replicas moved (${mib(d.bytes)}), ${d.left} left` : `node ${nodeId}: no drain under way`;
          }, (e) => e.reason === 'drain' && e.nodeId === nodeId, { label: `drain node ${nodeId}`, unitName: 'replicas', measure: (v) => {
            const n = v.nodes.find((x) => x.nodeId === nodeId);
            return n?.drain ? { done: n.drain.total - n.drain.left, total: n.drain.total } : { done: l.total - (n?.replicas ?? 0), total: l.total };
          } });
          console.log(`node ${nodeId} drained: stop its daemon, then \`millpond admin remove-node ${nodeId}\``);
        }
        return;
      }
      case 'remove-node': {
        const nodeId = id(a, 'NODE (node id)');
        const r = await mgmtd.admin<{ removed: boolean; replicasLeft: number }>('adminRemoveNode', { nodeId, force: flags.has('force') });
        console.log(r.removed ? `node ${nodeId} removed` : `node ${nodeId} is dead: its ${r.replicasLeft} replicas are replaced from the survivors, then it is removed`);
        return;
      }
      default:
        throw new MillpondError('EINVAL', `unknown admin command ${sub ?? ''}\n${ADMIN_USAGE}`);
    }
  } finally {
    mgmtd.close();
  }
}
