// The mount's /metrics (native/fuse/metrics_http.*, fuse_metrics.*): a real cluster, a real FUSE
// mount with --metrics-listen, scraped over HTTP and parsed by the strict exposition parser the
// daemons' metrics tests use. Reading a file through the mount grows the bytes-read counter by
// at least the file's size; a scrape without the admin token gets 401 and no figures.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatToken, loadClusterSecret, mintToken } from '../../src/auth/keys.js';
import { parsePrometheusText, sampleValue, type Family } from '../support/prom-text.js';
import { until } from '../cluster/support/processes.js';
import { FuseCluster, skipFuse } from './support.js';

const MiB = 1 << 20;

async function scrape(url: string, token?: string): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

describe.skipIf(skipFuse)('millpond mount --metrics-listen', () => {
  let c: FuseCluster;
  let mnt: string;
  let url: string;
  const families = async (): Promise<Map<string, Family>> => {
    const r = await scrape(url, c.adminToken);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return parsePrometheusText(r.text);
  };

  beforeAll(async () => {
    c = await FuseCluster.start(256 * MiB);
    // --direct-io: every read reaches the daemon (none is served from the kernel's page cache).
    const m = await c.tryMount('mnt', ['--direct-io', '--metrics-listen', '127.0.0.1:0', '--metrics-token-file', c.keys.adminTokenFile]);
    expect(m.code, m.out).toBe(0);
    mnt = m.dir;
    url = /^metrics (http:\/\/127\.0\.0\.1:\d+\/metrics)$/m.exec(m.out)![1]!;
  }, 120_000);

  afterAll(async () => {
    await c?.stop();
  }, 60_000);

  it('counts bytes and requests by operation: a file read through the mount grows the read bytes by its size', async () => {
    const data = randomBytes(5 * MiB + 777);
    const before = await families();
    writeFileSync(join(mnt, 'f.bin'), data);
    const mid = await families();
    expect(sampleValue(mid, 'millpond_fuse_written_bytes_total') - sampleValue(before, 'millpond_fuse_written_bytes_total')).toBeGreaterThanOrEqual(data.length);
    expect(sampleValue(mid, 'millpond_client_written_bytes_total') - sampleValue(before, 'millpond_client_written_bytes_total')).toBeGreaterThanOrEqual(data.length);
    expect(sampleValue(mid, 'millpond_fuse_requests_total', { op: 'write' })).toBeGreaterThan(sampleValue(before, 'millpond_fuse_requests_total', { op: 'write' }));
    expect(sampleValue(mid, 'millpond_fuse_requests_total', { op: 'create' })).toBeGreaterThan(sampleValue(before, 'millpond_fuse_requests_total', { op: 'create' }));

    expect(readFileSync(join(mnt, 'f.bin')).equals(data)).toBe(true);
    const after = await families();
    const readBytes = (f: Map<string, Family>) => sampleValue(f, 'millpond_fuse_read_bytes_total');
    expect(readBytes(after) - readBytes(mid)).toBeGreaterThanOrEqual(data.length);
    // The file client under the mount counts the same reads (direct I/O: no page cache between).
    const clientRead = (f: Map<string, Family>) => sampleValue(f, 'millpond_client_read_bytes_total');
    expect(clientRead(after) - clientRead(mid)).toBeGreaterThanOrEqual(data.length);
    expect(clientRead(after) - clientRead(mid)).toBeLessThan(3 * data.length);
    const reads = (f: Map<string, Family>) => sampleValue(f, 'millpond_fuse_request_duration_seconds', { op: 'read' }, 'millpond_fuse_request_duration_seconds_count');
    expect(reads(after)).toBeGreaterThan(reads(mid));
    // Every answered read is in both the counter and the histogram once its handler has returned
    // (the last read's counting may still be under way after the reader has its reply).
    const readRequests = (f: Map<string, Family>) => sampleValue(f, 'millpond_fuse_requests_total', { op: 'read' });
    await until(async () => { const f = await families(); return readRequests(f) === reads(f); }, 10_000, 'read requests and read latencies agree');
    expect(sampleValue(after, 'millpond_client_chunk_reads_total')).toBeGreaterThan(sampleValue(mid, 'millpond_client_chunk_reads_total'));
    expect(after.get('millpond_fuse_request_duration_seconds')!.type).toBe('histogram');
    expect(sampleValue(after, 'millpond_metrics_enabled')).toBe(1);

    // A failed request counts as an error of its operation.
    const errs = (f: Map<string, Family>) => sampleValue(f, 'millpond_fuse_request_errors_total', { op: 'lookup' });
    expect(() => readFileSync(join(mnt, 'no-such-file'))).toThrow(/ENOENT/);
    // (A request counts when its handler returns, just after its reply: the scrape may come first.)
    await until(async () => errs(await families()) > errs(after), 10_000, 'the failed lookup counted');
  }, 120_000);

  it('answers only the admin token: none, a user\'s or a wrong one get 401 and no figures; other paths 404', async () => {
    const none = await scrape(url);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(none.text).not.toMatch(/millpond_/);
    const secret = loadClusterSecret(c.keys.secretFile);
    expect((await scrape(url, formatToken(mintToken(secret, 1000)))).status).toBe(401); // a valid user token, not the admin's
    expect((await scrape(url, `${c.adminToken}x`)).status).toBe(401);
    expect((await scrape(url.replace('/metrics', '/other'), c.adminToken)).status).toBe(404);
    const post = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${c.adminToken}` } });
    expect(post.status).toBe(405);
    // Oversized headers are refused, and the responder still serves afterwards.
    expect((await fetch(url, { headers: { authorization: `Bearer ${c.adminToken}`, 'x-pad': 'a'.repeat(16_000) } })).status).toBe(431);
    expect((await scrape(url, c.adminToken)).status).toBe(200);
  }, 60_000);

  it('MILLPOND_METRICS=off (read at start) turns native counting off: reads through that mount count nothing', async () => {
    process.env.MILLPOND_METRICS = 'off';
    let m: Awaited<ReturnType<FuseCluster['tryMount']>>;
    try {
      m = await c.tryMount('quiet', ['--direct-io', '--metrics-listen', '127.0.0.1:0', '--metrics-token-file', c.keys.adminTokenFile]);
    } finally {
      delete process.env.MILLPOND_METRICS;
    }
    expect(m.code, m.out).toBe(0);
    const quietUrl = /^metrics (http:\/\/127\.0\.0\.1:\d+\/metrics)$/m.exec(m.out)![1]!;
    const data = randomBytes(2 * MiB);
    writeFileSync(join(m.dir, 'q.bin'), data);
    expect(readFileSync(join(m.dir, 'q.bin')).equals(data)).toBe(true);
    const f = parsePrometheusText((await scrape(quietUrl, c.adminToken)).text);
    expect(sampleValue(f, 'millpond_metrics_enabled')).toBe(0);
    expect(sampleValue(f, 'millpond_fuse_read_bytes_total')).toBe(0);
    expect(sampleValue(f, 'millpond_fuse_requests_total')).toBe(0);
  }, 60_000);

  it('refuses to start with a token file others can read, or without one', async () => {
    const loose = join(c.tmp.dir, 'loose.token');
    copyFileSync(c.keys.adminTokenFile, loose);
    chmodSync(loose, 0o644);
    const bad = await c.tryMount('loose', ['--metrics-listen', '127.0.0.1:0', '--metrics-token-file', loose]);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/EAUTH.*readable by its owner only \(chmod 600\)/);
    const half = await c.tryMount('half', ['--metrics-listen', '127.0.0.1:0']);
    expect(half.code).toBe(2);
    expect(half.out).toMatch(/--metrics-listen and --metrics-token-file .* go together/);
  }, 60_000);
});
