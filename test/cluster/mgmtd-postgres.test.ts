// Two mgmtd processes on one PostgreSQL database: SIGKILL of the primary, the standby takes
// over with the persisted records.
import { afterEach, describe, expect, it } from 'vitest';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { testKeys } from '../support/auth.js';
import { createTestDatabase, skipPg } from '../meta/support/pg.js';
import { FAST, freePort, startMgmtd, until, type Proc } from './support/processes.js';

describe('mgmtd on PostgreSQL', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it.skipIf(skipPg)('primary and standby on one database: SIGKILL of the primary, the standby takes over', async () => {
    const db = await createTestDatabase();
    cleanups.push(db.drop);
    const keys = testKeys(); // authentication on
    cleanups.push(keys.cleanup);
    const endpoints = [`tcp://127.0.0.1:${await freePort()}`, `tcp://127.0.0.1:${await freePort()}`];
    const procs: Proc[] = [];
    for (const e of endpoints) {
      const p = await startMgmtd(db.url, e, keys.secretFile);
      procs.push(p);
      cleanups.push(() => p.kill());
    }
    const client = new MgmtdClient(endpoints, { timeoutMs: 400, cluster: keys.cluster });
    cleanups.push(() => client.close());
    const firstPrimary = await until(async () => procs.findIndex((p) => p.lines.includes('primary')) + 1, 10_000, 'a primary') - 1;
    for (const n of [1, 2, 3]) await client.registerNode(n, 'storage', '', [{ targetId: 100 + n, dataAddress: `127.0.0.1:${9000 + n}` }]);
    await client.createChainTable(1, { chainCount: 3, chainLength: 3 });
    const before = await client.getRouting();

    const killedAtMs = Date.now();
    await procs[firstPrimary]!.kill();
    await procs[1 - firstPrimary]!.waitFor(/^primary$/, 10_000);
    expect(Date.now() - killedAtMs).toBeLessThan(FAST.leaseMs + 2_000);
    const after = await client.getRouting();
    if ('unchanged' in before || 'unchanged' in after) throw new Error('unexpected unchanged');
    // (Membership only: without heartbeats, targets may go offline and chains reorder.)
    const members = (r: typeof after) => r.chains.map((c) => [c.chainId, [...c.targets].sort()]);
    expect(members(after)).toEqual(members(before));
    expect(after.version).toBeGreaterThanOrEqual(before.version);
    expect(after.chainTables).toEqual(before.chainTables);
    expect(after.targets.map((t) => [t.targetId, t.dataAddress])).toEqual(before.targets.map((t) => [t.targetId, t.dataAddress]));
  });
});
