// mgmtd alone, over real sockets: registration, heartbeats, target states and chain versions,
// routing, primary/standby on one KV, malformed messages.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Dealer } from 'zeromq';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { MgmtdServer } from '../../src/cluster/mgmtd-server.js';
import { MgmtdService, type MgmtdOptions } from '../../src/cluster/mgmtd-service.js';
import type { LocalState, Routing } from '../../src/protocol/mgmtd-types.js';
import { SqliteKv } from '../../src/kv/sqlite-kv.js';
import { pack } from '../../src/protocol/codec.js';
import { decodeReply, encodeRequest, type Reply } from '../../src/protocol/envelope.js';
import { testKeys } from '../support/auth.js';
import { tempDir } from '../support/tmp.js';
import { sleep, until } from './support/processes.js';

describe('mgmtd', () => {
  // Authentication on: clients here are cluster members (they hold the secret).
  const keys = testKeys();
  afterAll(() => keys.cleanup());
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function start(db: string, options: Partial<MgmtdOptions> = {}) {
    const kv = new SqliteKv(db);
    const server = await MgmtdServer.start('tcp://127.0.0.1:0', (address) => MgmtdService.start(kv, {
      address, heartbeatTimeoutMs: 600, livenessCheckMs: 50, leaseMs: 800, leasePollMs: 50, ...options,
    }), { auth: keys.cluster });
    const stop = async () => { await server.close(); await kv.close(); };
    cleanups.push(stop);
    return { server, kv, stop };
  }

  function tmpDb() {
    const t = tempDir('mgmtd');
    cleanups.push(t.cleanup);
    return join(t.dir, 'mgmtd.db');
  }

  async function routing(client: MgmtdClient): Promise<Routing> {
    const r = await client.getRouting();
    if ('unchanged' in r) throw new Error('unexpected unchanged');
    return r;
  }
  const stateOf = (r: Routing, targetId: number) => r.targets.find((t) => t.targetId === targetId)!.state;
  const chainOf = (r: Routing, chainId: number) => r.chains.find((c) => c.chainId === chainId)!;

  /** Fake storage nodes 1..3, one target each (101..103), heartbeating until stopped. */
  function nodes(client: MgmtdClient) {
    const alive = new Set([1, 2, 3]);
    const local = new Map<number, { localState: LocalState; syncedStateVersion?: number }>();
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        for (const n of alive) {
          const t = 100 + n;
          await client.heartbeat(n, 0, [{ targetId: t, ...(local.get(t) ?? { localState: 'uptodate' }) }]).catch(() => {});
        }
        await sleep(100);
      }
    })();
    cleanups.push(async () => { stopped = true; await loop; });
    return { alive, local };
  }

  it('registers nodes, serves routing, marks dead targets offline and brings them back through syncing', async () => {
    const { server } = await start(tmpDb());
    const client = new MgmtdClient([server.endpoint], { timeoutMs: 1000, cluster: keys.cluster });
    cleanups.push(() => client.close());
    await until(async () => (await client.status()).primary, 5_000, 'primary');
    for (const n of [1, 2, 3]) await client.registerNode(n, 'storage', '', [{ targetId: 100 + n, dataAddress: `127.0.0.1:${9000 + n}` }]);
    const { alive, local } = nodes(client);
    const table = await client.createChainTable(1, { chainCount: 2, chainLength: 3 });
    expect(table).toMatchObject({ tableId: 1, chainIds: [1, 2] });
    // Idempotent for retries; a different table under the same id is refused.
    expect(await client.createChainTable(1, { chainCount: 2, chainLength: 3 })).toEqual(table);
    await expect(client.createChainTable(1, { chains: [{ chainId: 1, targets: [101] }] })).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(client.createChainTable(2, { chains: [{ chainId: 9, targets: [101, 101] }] })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(client.createChainTable(2, { chains: [{ chainId: 9, targets: [999] }] })).rejects.toMatchObject({ code: 'ENOENT' });

    let r = await routing(client);
    expect(r.targets.map((t) => t.state)).toEqual(['serving', 'serving', 'serving']);
    expect(chainOf(r, 1).targets).toEqual([101, 102, 103]);
    expect(chainOf(r, 2).targets).toEqual([102, 103, 101]);
    const v1 = chainOf(r, 1).version;
    expect(await client.getRouting(r.version)).toEqual({ version: r.version, unchanged: true });

    // Node 2 stops heartbeating: offline, moved to the end of its chains, versions bumped.
    alive.delete(2);
    r = await until(async () => { const x = await routing(client); return stateOf(x, 102) === 'offline' && x; }, 5_000, 'offline');
    expect(chainOf(r, 1).targets).toEqual([101, 103, 102]);
    expect(chainOf(r, 2).targets).toEqual([103, 101, 102]);
    expect(chainOf(r, 1).version).toBeGreaterThan(v1);
    expect(r.nodes.find((n) => n.nodeId === 2)!.alive).toBe(false);

    // It comes back (registers again): syncing, placed after the serving targets.
    local.set(102, { localState: 'online' });
    await client.registerNode(2, 'storage', '', [{ targetId: 102, dataAddress: '127.0.0.1:9102' }]);
    alive.add(2);
    r = await routing(client);
    expect(stateOf(r, 102)).toBe('syncing');
    expect(chainOf(r, 1).targets).toEqual([101, 103, 102]);
    expect(r.targets.find((t) => t.targetId === 102)!.dataAddress).toBe('127.0.0.1:9102');
    // A report for another syncing round does not count; the right one makes it serving.
    const round = r.targets.find((t) => t.targetId === 102)!.stateVersion;
    local.set(102, { localState: 'syncing-done', syncedStateVersion: round - 1 });
    await sleep(300);
    expect(stateOf(await routing(client), 102)).toBe('syncing');
    local.set(102, { localState: 'syncing-done', syncedStateVersion: round });
    r = await until(async () => { const x = await routing(client); return stateOf(x, 102) === 'serving' && x; }, 5_000, 'serving');
    // A daemon that restarts before its heartbeats time out may have lost pending writes: syncing.
    await client.registerNode(2, 'storage', '', [{ targetId: 102, dataAddress: '127.0.0.1:9102' }]);
    r = await routing(client);
    expect(stateOf(r, 102)).toBe('syncing');
    local.set(102, { localState: 'syncing-done', syncedStateVersion: r.targets.find((t) => t.targetId === 102)!.stateVersion });
    await until(async () => stateOf(await routing(client), 102) === 'serving', 5_000, 'serving again');
    local.delete(102);

    // The whole chain dies one by one: the last serving target is lastsrv; a returning other
    // target waits for it; when the lastsrv returns it serves and the waiting one syncs.
    alive.delete(1);
    alive.delete(2);
    await until(async () => { const x = await routing(client); return stateOf(x, 101) === 'offline' && stateOf(x, 102) === 'offline'; }, 5_000, 'two offline');
    alive.delete(3);
    r = await until(async () => { const x = await routing(client); return stateOf(x, 103) === 'lastsrv' && x; }, 5_000, 'lastsrv');
    alive.add(1);
    await client.registerNode(1, 'storage', '', [{ targetId: 101, dataAddress: '127.0.0.1:9001' }]);
    expect(stateOf(await routing(client), 101)).toBe('waiting');
    alive.add(3);
    await client.registerNode(3, 'storage', '', [{ targetId: 103, dataAddress: '127.0.0.1:9003' }]);
    r = await routing(client);
    expect(stateOf(r, 103)).toBe('serving');
    expect(stateOf(r, 101)).toBe('syncing');
    expect(chainOf(r, 1).targets[0]).toBe(103);
    await expect(client.heartbeat(77, 0, [])).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a standby answers ENOTPRIMARY and takes over when the primary stops renewing', async () => {
    const db = tmpDb();
    const a = await start(db);
    const client = new MgmtdClient([a.server.endpoint], { timeoutMs: 1000, cluster: keys.cluster });
    cleanups.push(() => client.close());
    await until(async () => (await client.status()).primary, 5_000, 'a primary');
    await client.registerNode(1, 'storage', '', [{ targetId: 101, dataAddress: '127.0.0.1:9001' }]);
    await client.createChainTable(1, { chains: [{ chainId: 1, targets: [101] }] });
    const b = await start(db);
    const direct = new MgmtdClient([b.server.endpoint], { timeoutMs: 1000, roundsMax: 1, cluster: keys.cluster });
    cleanups.push(() => direct.close());
    await expect(direct.getRouting()).rejects.toMatchObject({ code: 'ETIMEDOUT', message: expect.stringContaining(a.server.endpoint) });
    expect(await direct.status()).toMatchObject({ primary: false, primaryAddress: a.server.endpoint });

    // A clean stop gives the lease up; the standby takes over with the persisted records.
    const both = new MgmtdClient([a.server.endpoint, b.server.endpoint], { timeoutMs: 300, cluster: keys.cluster });
    cleanups.push(() => both.close());
    await a.stop();
    const r = await until(async () => routing(both), 5_000, 'b serves routing');
    expect(r.chains).toEqual([{ chainId: 1, version: expect.any(Number), targets: [101] }]);
    expect(r.targets[0]).toMatchObject({ targetId: 101, dataAddress: '127.0.0.1:9001' });
    expect((await direct.status()).primary).toBe(true);
  });

  it('answers malformed messages with clear errors and serves on', async () => {
    const { server } = await start(tmpDb());
    const client = new MgmtdClient([server.endpoint], { timeoutMs: 1000, cluster: keys.cluster });
    cleanups.push(() => client.close());
    await until(async () => (await client.status()).primary, 5_000, 'primary');
    const { serverKey, publicKey, secretKey } = keys.cluster.memberCurve;
    const raw = new Dealer({ linger: 0, receiveTimeout: 3_000, curveServerKey: serverKey, curvePublicKey: publicKey, curveSecretKey: secretKey });
    cleanups.push(() => raw.close());
    raw.connect(server.endpoint);
    const exchange = async (frames: Buffer | Buffer[]): Promise<Reply> => {
      await raw.send(frames);
      const [frame] = await raw.receive();
      return decodeReply(frame!);
    };
    const error = (r: Reply) => (r.ok ? ['ok'] : [r.error.code, r.requestId]);
    expect(error(await exchange(Buffer.from('garbage')))).toEqual(['EPROTO', 0]);
    expect(error(await exchange(Buffer.alloc(0)))).toEqual(['EPROTO', 0]);
    expect(error(await exchange(pack([1, 5, 'mgmtd.nosuch', {}])))).toEqual(['EPROTO', 5]);
    expect(error(await exchange(pack([1, 6, 'mgmtd.registerNode', {}])))).toEqual(['EPROTO', 6]);
    expect(error(await exchange(pack([1, 7, 'mgmtd.registerNode', { nodeId: 1, kind: 'toaster' }])))).toEqual(['EPROTO', 7]);
    expect(error(await exchange(pack([1, 8, 'mgmtd.registerNode', { nodeId: -1, kind: 'storage' }])))).toEqual(['EPROTO', 8]);
    expect(error(await exchange(pack([1, 9, 'mgmtd.registerNode', { nodeId: 1, kind: 'storage', targets: [{ targetId: 'x' }] }])))).toEqual(['EPROTO', 9]);
    expect(error(await exchange(pack([1, 10, 'mgmtd.registerNode', { nodeId: 1, kind: 'storage', targets: 'nope' }])))).toEqual(['EPROTO', 10]);
    expect(error(await exchange(pack([1, 11, 'mgmtd.heartbeat', { nodeId: 1, appliedVersion: 0, targets: [{ targetId: 1, localState: 'dancing' }] }])))).toEqual(['EPROTO', 11]);
    expect(error(await exchange(pack([1, 12, 'mgmtd.getRouting', { knownVersion: 'x' }])))).toEqual(['EPROTO', 12]);
    expect(error(await exchange(pack([1, 13, 'mgmtd.createChainTable', { tableId: 1, chains: [{ chainId: 1, targets: [1.5] }] }])))).toEqual(['EPROTO', 13]);
    expect(error(await exchange(pack([1, 14, 'mgmtd.createChainTable', { tableId: 1, chains: 7 }])))).toEqual(['EPROTO', 14]);
    expect(error(await exchange(pack([1, 15, 'mgmtd.registerNode', { nodeId: 1, kind: 'storage', controlAddress: 'x'.repeat(1000) }])))).toEqual(['EPROTO', 15]);
    const good = encodeRequest({ requestId: 16, method: 'mgmtd.getRouting', params: {} });
    expect(error(await exchange([good, good]))).toEqual(['EPROTO', 0]);
    expect(error(await exchange(good))).toEqual(['ok']);
    expect(server.counters.malformed).toBeGreaterThanOrEqual(14);
    await client.registerNode(1, 'storage', '', [{ targetId: 101, dataAddress: '127.0.0.1:9001' }]);
    expect((await routing(client)).targets).toHaveLength(1);
  });
});
