/**
 * The cluster view's health rules against a real cluster of processes (a primary mgmtd and a
 * standby, three storage daemons, a meta server): HEALTH_OK when all serve; a storage daemon
 * SIGKILLed → HEALTH_WARN naming its target and node; the standby SIGKILLed → MGMTD_DOWN; the
 * meta server SIGKILLed too → HEALTH_ERR (META_DOWN). Throughput comes from the storage daemons'
 * heartbeat counters, and a job reported to mgmtd is in the view.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { ClusterViewer, type ClusterView } from '../../src/cluster/cluster-view.js';
import { reportJob } from '../../src/cluster/jobs.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { statusLines } from '../../src/cli/status.js';
import { Cluster, Writer } from '../cluster/support/cluster.js';
import { freePort, startMeta, until, type Proc } from '../cluster/support/processes.js';
import { tempDir } from '../support/tmp.js';

describe('cluster view: health rules on a real cluster', () => {
  let cluster: Cluster;
  let meta: Proc;
  let viewer: ClusterViewer;
  const t = tempDir('view');

  beforeAll(async () => {
    cluster = await Cluster.start(2, 3);
    const metaEndpoint = `tcp://127.0.0.1:${await freePort()}`;
    meta = await startMeta(join(t.dir, 'meta.db'), metaEndpoint, cluster.mgmtdEndpoints, ['--secret-file', cluster.keys.secretFile, '--admin-token-file', cluster.keys.adminTokenFile]);
    viewer = new ClusterViewer(cluster.mgmtdEndpoints, [metaEndpoint], cluster.keys.admin);
  }, 60_000);

  afterAll(async () => {
    viewer?.close();
    await meta?.kill();
    await cluster?.stop();
    t.cleanup();
  });

  // The admin's token is admitted once meta has pushed its tokens to mgmtd (every 2 s).
  const viewWhere = (ok: (v: ClusterView) => boolean, what: string, timeoutMs = 20_000) =>
    until(async () => { const v = await viewer.gather(); return ok(v) && v; }, timeoutMs, what);

  it('HEALTH_OK with every target serving; services, hosts, chains and capacity filled in', async () => {
    const v = await viewWhere((x) => x.health.status === 'HEALTH_OK', 'HEALTH_OK');
    expect(v.health.checks).toEqual([]);
    expect(v.targets.map((x) => [x.targetId, x.state])).toEqual([[101, 'serving'], [102, 'serving'], [103, 'serving']]);
    expect(v.services.mgmtd.primary).toBe(cluster.mgmtdEndpoints[0]);
    expect(v.services.mgmtd.instances).toEqual([{ address: cluster.mgmtdEndpoints[0], role: 'primary' }, { address: cluster.mgmtdEndpoints[1], role: 'standby' }]);
    expect(v.services.meta).toEqual([expect.objectContaining({ up: true })]);
    expect(v.hosts).toEqual([expect.objectContaining({ host: '127.0.0.1', targets: [101, 102, 103] })]);
    expect(v.chains).toHaveLength(4);
    for (const c of v.chains) expect(c.servingReplicas).toBe(3);
    expect(v.capacity.replicas).toBe(3);
    const lines = statusLines(v);
    expect(lines.slice(0, 3)).toEqual(['cluster:', '  health: HEALTH_OK', 'services:']);
  }, 60_000);

  it('throughput: chunks written show as write rates (each process counted once)', async () => {
    const writer = new Writer(cluster, 12, 2);
    writer.start();
    try {
      const v = await viewWhere((x) => x.throughput.writeBytesPerS > 0, 'a write rate');
      expect(v.nodes.filter((n) => n.kind === 'storage' && n.writeBytesPerS > 0).length).toBeGreaterThan(0);
      // The sum is over processes: at most the sum of the three nodes' rates.
      expect(v.throughput.writeBytesPerS).toBeLessThanOrEqual(v.nodes.reduce((x, n) => x + n.writeBytesPerS, 0));
    } finally {
      await writer.stop();
      writer.close();
    }
    expect(writer.errors).toEqual([]);
  }, 60_000);

  it('a storage daemon SIGKILLed: HEALTH_WARN naming its target and node', async () => {
    await cluster.storage.get(2)!.kill();
    const v = await viewWhere((x) => x.health.checks.some((c) => c.code === 'TARGET_DOWN'), 'TARGET_DOWN');
    expect(v.health.status).toBe('HEALTH_WARN');
    const down = v.health.checks.find((c) => c.code === 'TARGET_DOWN')!;
    expect(down).toMatchObject({ severity: 'warn', message: '1 target(s) offline: target 102 (node 2 on 127.0.0.1)' });
    expect(v.health.checks.map((c) => c.code)).toEqual(expect.arrayContaining(['NODE_DEAD', 'CHAIN_DEGRADED']));
    expect(v.targets.find((x) => x.targetId === 102)!.state).toBe('offline');
    for (const c of v.chains) expect(c.head).not.toBe(102);
    expect(statusLines(v)[1]).toBe('  health: HEALTH_WARN');
    expect(statusLines(v)).toContain('    TARGET_DOWN: 1 target(s) offline: target 102 (node 2 on 127.0.0.1)');
  }, 60_000);

  it('a job reported to mgmtd is in the view with its tasks and where they ran', async () => {
    const client = new MgmtdClient(cluster.mgmtdEndpoints, { auth: cluster.keys.admin });
    try {
      await reportJob(client, {
        jobId: 'view-job', target: 'n2', state: 'running', startedMs: Date.now(), tasksTotal: 2,
        tasks: [{ key: 'n1/0', stage: 'n1', task: 0, state: 'done', attempts: 1, host: 'h1', executor: 'local', pid: 42, readBytes: 3 * 1024 * 1024, writtenBytes: 1536 },
          { key: 'n2/0', stage: 'n2', task: 0, state: 'running', attempts: 2 }],
      });
      await expect(reportJob(client, { jobId: 'bad', target: 'n', state: 'weird' as never, startedMs: 0, tasksTotal: 0, tasks: [] })).rejects.toMatchObject({ code: 'EPROTO' });
      await expect(reportJob(client, { jobId: 'bad', target: 'n', state: 'running', startedMs: 0, tasksTotal: 1, tasks: [{ key: 'n/0', stage: 'n', task: 0, state: 'done', attempts: 1, readBytes: -1 }] }))
        .rejects.toMatchObject({ code: 'EPROTO' });
    } finally {
      client.close();
    }
    const v = await viewer.gather();
    expect(v.jobs).toEqual([expect.objectContaining({ jobId: 'view-job', state: 'running', ownerUid: 0, tasks: [
      expect.objectContaining({ host: 'h1', pid: 42, state: 'done', readBytes: 3 * 1024 * 1024, writtenBytes: 1536 }), expect.objectContaining({ state: 'running', attempts: 2 })] })]);
    expect(statusLines(v)).toContain('  job view-job running: 1 of 2 tasks done, 1 running, read 3.0 MiB, wrote 1.5 KiB');
  }, 30_000);

  it('the mgmtd standby SIGKILLed: MGMTD_DOWN names it', async () => {
    await cluster.mgmtd[1]!.kill();
    const v = await viewWhere((x) => x.health.checks.some((c) => c.code === 'MGMTD_DOWN'), 'MGMTD_DOWN');
    expect(v.health.checks.find((c) => c.code === 'MGMTD_DOWN')!.message).toBe(`1 of 2 mgmtd(s) not answering: ${cluster.mgmtdEndpoints[1]}`);
    expect(v.services.mgmtd.primary).toBe(cluster.mgmtdEndpoints[0]);
  }, 60_000);

  it('the meta server SIGKILLed as well: HEALTH_ERR (META_DOWN)', async () => {
    await meta.kill();
    const v = await viewWhere((x) => x.health.status === 'HEALTH_ERR', 'HEALTH_ERR');
    expect(v.health.checks.find((c) => c.severity === 'err')).toMatchObject({ code: 'META_DOWN' });
    expect(v.health.checks.map((c) => c.code)).toContain('TARGET_DOWN');
  }, 60_000);
});
