// /metrics (design §14, issue 17): each daemon serves Prometheus text to the admin token only,
// and its counters move with the traffic: data-plane bytes and requests from the native core,
// meta creates, mgmtd and storage state. Scraped over real HTTP from a real cluster, parsed by
// a strict exposition parser.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbedded, type Embedded } from '../../src/cli/embedded.js';
import { formatToken, loadClusterSecret, mintToken } from '../../src/auth/keys.js';
import { connect, type FileSystem } from '../../src/fs/index.js';
import { freePort, run, type Proc } from '../cluster/support/processes.js';
import { testKeys, type TestKeys } from '../support/auth.js';
import { parsePrometheusText, sampleValue, type Family } from '../support/prom-text.js';
import { tempDir } from '../support/tmp.js';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { startS3, type S3Setup } from '../s3/support.js';

const MiB = 1024 * 1024;

async function scrape(url: string, token?: string): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

async function families(url: string, token: string): Promise<Map<string, Family>> {
  const r = await scrape(url, token);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(r.text);
}

describe('the exposition parser the tests rely on', () => {
  it('accepts well-formed text and refuses malformed text', () => {
    const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{op="r\\"x"} 3\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1.5\nh_count 2\n';
    const f = parsePrometheusText(ok);
    expect(sampleValue(f, 'a_total', { op: 'r"x' })).toBe(3);
    expect(sampleValue(f, 'h', {}, 'h_count')).toBe(2);
    for (const bad of [
      'a_total 1\n', // no TYPE
      '# TYPE a counter\na 1', // no final newline
      '# TYPE a counter\na{op="x} 1\n', // unterminated label
      '# TYPE a counter\na 1\na 2\n', // the same series twice
      '# TYPE a counter\nb 1\n', // outside its family
      '# TYPE a counter\na -1\n', // a counter below zero
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 1\n', // falling buckets
      '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 0\nh_count 3\n', // +Inf != count
    ]) expect(() => parsePrometheusText(bad), bad).toThrow();
  });
});

describe('metrics of the embedded cluster (millpond up)', () => {
  const t = tempDir('metrics');
  let cluster: Embedded;
  let fs: FileSystem;

  beforeAll(async () => {
    cluster = await startEmbedded({
      dataDir: join(t.dir, 'cluster'), mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
      host: '127.0.0.1', transport: 'tcp', chainCount: 3, syncWrites: false,
    });
    fs = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });
  }, 60_000);

  afterAll(async () => {
    fs?.close();
    await cluster?.stop();
    t.cleanup();
  });

  it('is on by default on a free 127.0.0.1 port and refuses every caller but the admin', async () => {
    expect(cluster.metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const none = await scrape(cluster.metrics);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(none.text).not.toMatch(/millpond_/);
    const secret = loadClusterSecret(join(t.dir, 'cluster', 'keys', 'cluster.secret'));
    const user = formatToken(mintToken(secret, 1000)); // a real token of this cluster, not uid 0
    const foreign = formatToken(mintToken(randomBytes(32), 0)); // uid 0 of another cluster
    for (const token of ['garbage', user, foreign, `${cluster.adminToken}x`]) {
      const r = await scrape(cluster.metrics, token);
      expect(r.status, token.slice(0, 12)).toBe(401);
      expect(r.text).not.toMatch(/millpond_/);
    }
    expect((await scrape(cluster.metrics.replace(/\/metrics$/, '/other'), cluster.adminToken)).status).toBe(404);
    const f = await families(cluster.metrics, cluster.adminToken);
    expect(f.get('millpond_data_requests_total')?.type).toBe('counter');
    expect(f.get('millpond_data_request_duration_seconds')?.type).toBe('histogram');
    expect(f.get('millpond_meta_ops_total')?.type).toBe('counter');
  });

  it('counts data-plane bytes and requests, chain forwards and meta creates as traffic flows', async () => {
    const before = await families(cluster.metrics, cluster.adminToken);
    const files = [randomBytes(5 * MiB), randomBytes(3 * MiB + 17), randomBytes(1 * MiB)];
    const total = files.reduce((a, b) => a + b.length, 0);
    for (const [i, data] of files.entries()) await fs.writeFile(`/m${i}`, data);
    for (const [i, data] of files.entries()) expect((await fs.readFile(`/m${i}`)).equals(data)).toBe(true);
    const after = await families(cluster.metrics, cluster.adminToken);
    const delta = (family: string, labels: Record<string, string> = {}, name = family) =>
      sampleValue(after, family, labels, name) - sampleValue(before, family, labels, name);

    expect(delta('millpond_data_read_bytes_total')).toBeGreaterThanOrEqual(total);
    expect(delta('millpond_data_written_bytes_total')).toBeGreaterThanOrEqual(3 * total); // chain length 3: every replica stores
    const reads = delta('millpond_data_requests_total', { op: 'read', transport: 'tcp' }) + delta('millpond_data_requests_total', { op: 'batch_read', transport: 'tcp' });
    expect(reads).toBeGreaterThanOrEqual(files.length);
    const writes = delta('millpond_data_requests_total', { op: 'write', transport: 'tcp' });
    expect(writes).toBeGreaterThanOrEqual(3 * 4); // 4 chunks at least (5 MiB spans 2), each at 3 replicas
    expect(delta('millpond_data_chain_forwards_total')).toBeGreaterThanOrEqual(2 * 4);
    // The latency histogram saw every write it counted.
    expect(delta('millpond_data_request_duration_seconds', { op: 'write' }, 'millpond_data_request_duration_seconds_count')).toBe(writes);
    expect(sampleValue(after, 'millpond_data_requests_in_flight')).toBeGreaterThanOrEqual(0);
    expect(after.has('millpond_data_requests_queued')).toBe(true);
    expect(sampleValue(after, 'millpond_data_crc_failures_total')).toBe(0);

    expect(delta('millpond_meta_ops_total', { method: 'create', outcome: 'ok' })).toBe(files.length);
    expect(delta('millpond_meta_op_duration_seconds', { method: 'create' }, 'millpond_meta_op_duration_seconds_count')).toBe(files.length);
    // A refused create counts under its error code.
    await expect(fs.writeFile('/no-such-dir/x', Buffer.from('x'))).rejects.toThrow();
    const last = await families(cluster.metrics, cluster.adminToken);
    expect(sampleValue(last, 'millpond_meta_ops_total', { method: 'create', outcome: 'ENOENT' }) - sampleValue(after, 'millpond_meta_ops_total', { method: 'create', outcome: 'ENOENT' })).toBe(1);
  }, 60_000);

  it('counts short-circuit local reads apart from bytes served over the network', async () => {
    const data = randomBytes(2 * MiB);
    await fs.writeFile('/local', data);
    // What applications get: transport 'auto', local reads of servers on this host.
    const local = await connect({ meta: cluster.meta, mgmtd: cluster.mgmtd, transport: 'auto', token: cluster.adminToken, serverKey: cluster.serverKey });
    try {
      const before = await families(cluster.metrics, cluster.adminToken);
      // The first read of a server may go over TCP while the client learns it is local; later
      // ones open the chunk's file through the local socket (and keep the descriptor).
      for (let i = 0; i < 4; i++) {
        expect((await local.readFile('/local')).equals(data)).toBe(true);
        await new Promise((r) => setTimeout(r, 100));
      }
      const after = await families(cluster.metrics, cluster.adminToken);
      const delta = (family: string, labels: Record<string, string> = {}) => sampleValue(after, family, labels) - sampleValue(before, family, labels);
      expect(delta('millpond_data_local_read_hits_total')).toBeGreaterThanOrEqual(1);
      expect(delta('millpond_data_requests_total', { op: 'open_local', transport: 'local' })).toBe(delta('millpond_data_local_read_hits_total'));
      expect(delta('millpond_data_read_bytes_total')).toBeLessThan(4 * data.length); // some bytes came from the files
    } finally {
      local.close();
    }
  }, 60_000);

  it('shows the routing, targets by state, heartbeats and each target\'s space', async () => {
    const first = await families(cluster.metrics, cluster.adminToken);
    expect(sampleValue(first, 'millpond_mgmtd_primary')).toBe(1);
    expect(sampleValue(first, 'millpond_mgmtd_routing_version')).toBeGreaterThan(0);
    expect(sampleValue(first, 'millpond_mgmtd_targets', { state: 'serving' })).toBe(3);
    expect(sampleValue(first, 'millpond_mgmtd_nodes', { alive: 'true' })).toBe(3);
    for (const target of ['101', '102', '103']) {
      const capacity = sampleValue(first, 'millpond_target_capacity_bytes', { target });
      const free = sampleValue(first, 'millpond_target_free_bytes', { target });
      expect(capacity).toBeGreaterThan(0);
      expect(free).toBeGreaterThan(0);
      expect(free).toBeLessThanOrEqual(capacity);
      expect(sampleValue(first, 'millpond_target_chunks', { target })).toBeGreaterThan(0); // the files above
    }
    const heartbeats = sampleValue(first, 'millpond_mgmtd_heartbeats_total');
    const deadline = Date.now() + 15_000; // three daemons beat once a second each
    let now = heartbeats;
    while (now < heartbeats + 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 300));
      now = sampleValue(await families(cluster.metrics, cluster.adminToken), 'millpond_mgmtd_heartbeats_total');
    }
    expect(now).toBeGreaterThanOrEqual(heartbeats + 3);
  }, 30_000);
});

describe('metrics of a daemon process', () => {
  const metaMain = fileURLToPath(new URL('../../src/meta/main.ts', import.meta.url));
  const t = tempDir('metrics-proc');
  let keys: TestKeys;
  const procs: Proc[] = [];

  beforeAll(() => {
    keys = testKeys();
  });
  afterAll(async () => {
    for (const p of procs) await p.kill();
    keys?.cleanup();
    t.cleanup();
  });

  it('prints its bound /metrics address and serves it to the admin token only', async () => {
    const p = run(metaMain, ['--db', join(t.dir, 'meta.db'), '--secret-file', keys.secretFile, '--admin-token-file', keys.adminTokenFile, '--metrics-listen', '127.0.0.1:0']);
    procs.push(p);
    const [, url] = await p.waitFor(/^metrics (\S+)$/);
    await p.waitFor(/^listening /);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await scrape(url!)).status).toBe(401);
    const f = await families(url!, keys.adminToken);
    expect(f.get('millpond_meta_ops_total')?.type).toBe('counter');
    expect(f.has('millpond_process_cpu_seconds_total')).toBe(true);
  }, 30_000);

  it('serves mgmtd\'s and a storage daemon\'s own figures from their processes', async () => {
    const mgmtdMain = fileURLToPath(new URL('../../src/cluster/main.ts', import.meta.url));
    const storageMain = fileURLToPath(new URL('../../src/storage/main.ts', import.meta.url));
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const mgmtd = run(mgmtdMain, ['--db', join(t.dir, 'mgmtd.db'), '--listen', endpoint, '--secret-file', keys.secretFile, '--metrics-listen', '127.0.0.1:0']);
    procs.push(mgmtd);
    const [, mgmtdUrl] = await mgmtd.waitFor(/^metrics (\S+)$/);
    await mgmtd.waitFor(/^primary$/);
    const storage = run(storageMain, [
      '--node-id', '1', '--mgmtd', endpoint, '--transport', 'tcp', '--no-sync', '--heartbeat-ms', '150', '--secret-file', keys.secretFile,
      '--target', `7:${join(t.dir, 'target-7')}:${64 * MiB}`, '--metrics-listen', '127.0.0.1:0',
    ]);
    procs.push(storage);
    const [, storageUrl] = await storage.waitFor(/^metrics (\S+)$/);
    await storage.waitFor(/^listening /);
    expect((await scrape(storageUrl!)).status).toBe(401);
    const s = await families(storageUrl!, keys.adminToken);
    expect(sampleValue(s, 'millpond_target_capacity_bytes', { target: '7', node: '1' })).toBe(64 * MiB);
    expect(sampleValue(s, 'millpond_target_free_bytes', { target: '7', node: '1' })).toBe(64 * MiB);
    expect(s.get('millpond_data_read_bytes_total')?.type).toBe('counter'); // the native core's families
    expect(s.has('millpond_meta_ops_total')).toBe(true); // declared everywhere, counted only where meta runs
    expect(sampleValue(s, 'millpond_meta_ops_total')).toBe(0);
    const deadline = Date.now() + 20_000;
    let m = await families(mgmtdUrl!, keys.adminToken);
    while (sampleValue(m, 'millpond_mgmtd_heartbeats_total') < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      m = await families(mgmtdUrl!, keys.adminToken);
    }
    expect(sampleValue(m, 'millpond_mgmtd_primary')).toBe(1);
    expect(sampleValue(m, 'millpond_mgmtd_heartbeats_total')).toBeGreaterThanOrEqual(3);
    expect(sampleValue(m, 'millpond_mgmtd_nodes', { alive: 'true' })).toBe(1);
    expect(m.has('millpond_target_capacity_bytes')).toBe(false); // storage's, not mgmtd's
  }, 60_000);

  it('serves from the millpond mgmtd role of a cluster made by millpond init', async () => {
    const cliMain = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    const dir = join(t.dir, 'init');
    const init = run(cliMain, ['init', '--dir', dir]);
    procs.push(init);
    await new Promise((resolve) => init.child.once('exit', resolve));
    expect(init.child.exitCode).toBe(0);
    const p = run(cliMain, ['mgmtd', '--data-dir', dir, '--listen', '127.0.0.1:0', '--backend', 'sqlite', '--metrics-listen', '127.0.0.1:0']);
    procs.push(p);
    const [, url] = await p.waitFor(/^metrics (\S+)$/, 60_000);
    await p.waitFor(/^listening /, 60_000);
    expect((await scrape(url!)).status).toBe(401);
    const adminToken = readFileSync(join(dir, 'keys', 'admin.token'), 'utf8').trim();
    expect((await scrape(url!, keys.adminToken)).status).toBe(401); // another cluster's admin
    const f = await families(url!, adminToken);
    expect(f.get('millpond_mgmtd_heartbeats_total')?.type).toBe('counter');
  }, 90_000);

  it('refuses --metrics-listen without a cluster secret instead of serving metrics open', async () => {
    const p = run(metaMain, ['--db', join(t.dir, 'meta2.db'), '--metrics-listen', '127.0.0.1:0']);
    procs.push(p);
    const [code] = await new Promise<[number | null]>((resolve) => p.child.once('exit', (c) => resolve([c])));
    expect(code).toBe(2);
    expect(p.errLines.join('\n')).toMatch(/--metrics-listen needs authentication on/);
  }, 30_000);
});

describe('metrics of the S3 gateway', () => {
  let s3: S3Setup;
  beforeAll(async () => {
    s3 = await startS3();
  }, 60_000);
  afterAll(async () => {
    await s3?.stop();
  });

  it('counts requests by operation and status, and body bytes both ways', async () => {
    const url = s3.cluster.metrics;
    const token = s3.cluster.adminToken;
    const before = await families(url, token);
    const client = s3.client();
    const body = randomBytes(300_000);
    await client.send(new CreateBucketCommand({ Bucket: 'metrics' }));
    await client.send(new PutObjectCommand({ Bucket: 'metrics', Key: 'a', Body: body }));
    const got = await client.send(new GetObjectCommand({ Bucket: 'metrics', Key: 'a' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
    await expect(client.send(new GetObjectCommand({ Bucket: 'metrics', Key: 'missing' }))).rejects.toThrow();
    const after = await families(url, token);
    const delta = (family: string, labels: Record<string, string> = {}) => sampleValue(after, family, labels) - sampleValue(before, family, labels);
    expect(delta('millpond_s3_requests_total', { operation: 'PUTBucket', status: '200' })).toBe(1);
    expect(delta('millpond_s3_requests_total', { operation: 'PUTObject', status: '200' })).toBe(1);
    expect(delta('millpond_s3_requests_total', { operation: 'GETObject', status: '200' })).toBe(1);
    expect(delta('millpond_s3_requests_total', { operation: 'GETObject', status: '404' })).toBe(1);
    expect(delta('millpond_s3_bytes_total', { direction: 'in' })).toBeGreaterThanOrEqual(body.length);
    expect(delta('millpond_s3_bytes_total', { direction: 'out' })).toBeGreaterThanOrEqual(body.length);
  }, 60_000);
});
