/**
 * The web console in headless Chromium (Debian's chromium driven by playwright-core) against a
 * real cluster of processes (mgmtd, three storage daemons, meta): the page loads and shows the
 * targets serving; a storage daemon SIGKILLed shows its target offline within seconds; an engine
 * job (local executor) shows a task running and then every task done with the host it ran on.
 * A screenshot is kept under build/test-artifacts/. Requests without a valid token (page, API,
 * SSE) are refused with 401 and code EAUTH.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startConsoleFor } from '../../src/cli/console.js';
import { formatToken, mintToken } from '../../src/auth/keys.js';
import { consoleLimits } from '../../src/limits.js';
import { init } from '../../src/engine/index.js';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { reportJob } from '../../src/cluster/jobs.js';
import { Cluster } from '../cluster/support/cluster.js';
import { freePort, startMeta, type Proc } from '../cluster/support/processes.js';
import { writeInputs } from '../engine/support.js';
import { tempDir } from '../support/tmp.js';

const ARTIFACTS = join(process.cwd(), 'build', 'test-artifacts');
/** Generous: a 2-core CI box shared with the cluster's processes and Chromium. */
const DOM_WAIT_MS = 20_000;

describe('web console in headless Chromium', () => {
  let cluster: Cluster;
  let meta: Proc;
  let web: Awaited<ReturnType<typeof startConsoleFor>>;
  let browser: Browser;
  let page: Page;
  const t = tempDir('console');

  beforeAll(async () => {
    cluster = await Cluster.start(1, 3);
    const metaEndpoint = `tcp://127.0.0.1:${await freePort()}`;
    meta = await startMeta(join(t.dir, 'meta.db'), metaEndpoint, cluster.mgmtdEndpoints, ['--secret-file', cluster.keys.secretFile, '--admin-token-file', cluster.keys.adminTokenFile]);
    web = await startConsoleFor('127.0.0.1:0', cluster.mgmtdEndpoints, metaEndpoint, cluster.keys.admin, cluster.keys.cluster.secret);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await web?.close();
    await meta?.kill();
    await cluster?.stop();
    t.cleanup();
  });

  const targetState = (id: number) => page.locator(`tr.target[data-target-id="${id}"]`).getAttribute('data-state');

  it('refuses requests without a valid token: page, API and live stream get 401 EAUTH', async () => {
    const base = web.url;
    const other = formatToken(mintToken(Buffer.alloc(32, 7), 0)); // an admin token of another cluster
    const user = formatToken(mintToken(cluster.keys.cluster.secret, 1000)); // this cluster, not the admin
    for (const path of ['', 'console.js', 'api/view', 'api/events']) {
      for (const headers of [{}, { authorization: `Bearer ${other}` }, { authorization: `Bearer ${user}` }, { cookie: `millpond_console=${other}` }]) {
        const res = await fetch(base + path, { headers, redirect: 'manual' });
        expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(401);
        const body = await res.text();
        if (path.startsWith('api/')) expect(JSON.parse(body)).toMatchObject({ code: 'EAUTH' });
        else expect(body).toMatch(/^EAUTH: /);
      }
    }
    expect((await fetch(`${base}?token=${encodeURIComponent(other)}`, { redirect: 'manual' })).status).toBe(401);
    // The admin's token as a bearer opens the API.
    const ok = await fetch(`${base}api/view`, { headers: { authorization: `Bearer ${cluster.keys.adminToken}` } });
    expect([200, 503]).toContain(ok.status);
  }, 30_000);

  it('?token= sets an HttpOnly SameSite=Strict cookie and redirects to the clean URL; the page shows every target serving', async () => {
    const first = await fetch(`${web.url}?token=${encodeURIComponent(cluster.keys.adminToken)}`, { redirect: 'manual' });
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/');
    expect(first.headers.get('set-cookie')).toMatch(/^millpond_console=[^;]+; HttpOnly; SameSite=Strict; Path=\/; Max-Age=\d+$/);

    await page.goto(`${web.url}?token=${encodeURIComponent(cluster.keys.adminToken)}`);
    expect(page.url()).toBe(web.url);
    const cookies = await page.context().cookies();
    expect(cookies).toEqual([expect.objectContaining({ name: 'millpond_console', httpOnly: true, sameSite: 'Strict' })]);
    // Meta pushes the admin's token to mgmtd every 2 s: the first views may be refused.
    await page.waitForFunction(() => document.querySelectorAll('tr.target[data-state="serving"]').length === 3, undefined, { timeout: DOM_WAIT_MS });
    for (const id of [101, 102, 103]) expect(await targetState(id)).toBe('serving');
    await page.waitForFunction(() => document.getElementById('health')?.textContent === 'HEALTH_OK', undefined, { timeout: DOM_WAIT_MS });
    expect(await page.locator('#live').getAttribute('data-live')).toBe('yes');
    expect(await page.locator('[data-chain-id]').count()).toBe(4);
  }, 60_000);

  it('a storage daemon SIGKILLed: its target shows offline and health turns HEALTH_WARN naming it', async () => {
    const killedAt = Date.now();
    await cluster.storage.get(2)!.kill();
    await page.waitForFunction(() => document.querySelector('tr.target[data-target-id="102"]')?.getAttribute('data-state') === 'offline', undefined, { timeout: DOM_WAIT_MS });
    const tookMs = Date.now() - killedAt;
    expect(await page.locator('#health').textContent()).toBe('HEALTH_WARN');
    expect(await page.locator('#checks [data-code="TARGET_DOWN"]').textContent()).toContain('target 102');
    expect(await targetState(101)).toBe('serving');
    expect(await targetState(103)).toBe('serving');
    console.log(`console showed target 102 offline ${tookMs} ms after its daemon's SIGKILL`);
  }, 60_000);

  it('an engine job: the page shows a task running, then every task done and where it ran', async () => {
    await writeInputs(t.dir);
    const stallFile = join(t.dir, 'stalled-pid');
    process.env.MILLPOND_ENGINE_TEST_STALL_FILE = stallFile;
    process.env.MILLPOND_ENGINE_TEST_STALL_MS = '4000';
    const sp = await init({
      root: { kind: 'local', dir: join(t.dir, 'root') }, workers: 2, progress: false, jobId: 'console-job',
      reportTo: { mgmtd: cluster.mgmtdEndpoints, token: cluster.keys.adminToken, serverKey: cluster.keys.cluster.server.publicKey },
    });
    try {
      const running = sp.partialSql('SELECT k, count(*) AS c FROM {0} GROUP BY k', sp.readParquet(`${t.dir}/events-*.parquet`).repartition(3, { hashBy: 'k' })).takeAll();
      await page.waitForFunction(() => document.querySelector('[data-job-id="console-job"] .task[data-state="running"]') !== null, undefined, { timeout: DOM_WAIT_MS });
      await running;
      const tasks = sp.lastSummary!.tasksTotal;
      await page.waitForFunction((n) => {
        const job = document.querySelector('[data-job-id="console-job"]');
        return job?.getAttribute('data-state') === 'done' && job.querySelectorAll('.task[data-state="done"]').length === n;
      }, tasks, { timeout: DOM_WAIT_MS });
      const hosts = await page.locator('[data-job-id="console-job"] .task').evaluateAll((els) => els.map((e) => e.getAttribute('data-host')));
      expect(hosts).toEqual(Array(tasks).fill(hostname()));
      expect(await page.locator('[data-job-id="console-job"] .task').first().getAttribute('title')).toMatch(/done, \d attempt\(s\) on .+ \(local pid \d+\)$/);
    } finally {
      delete process.env.MILLPOND_ENGINE_TEST_STALL_FILE;
      delete process.env.MILLPOND_ENGINE_TEST_STALL_MS;
      await sp.shutdown();
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'console.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
  }, 90_000);

  it('a task\'s bytes read and written, as its job reported them, are in its title', async () => {
    const client = new MgmtdClient(cluster.mgmtdEndpoints, { auth: cluster.keys.admin });
    try {
      await reportJob(client, {
        jobId: 'bytes-job', target: 'n1', state: 'done', startedMs: Date.now(), tasksTotal: 1,
        tasks: [{ key: 'n1/0', stage: 'n1', task: 0, state: 'done', attempts: 1, host: 'h1', executor: 'h1/9', pid: 9, readBytes: 3 * 1024 * 1024, writtenBytes: 1536 }],
      });
    } finally {
      client.close();
    }
    const task = page.locator('[data-job-id="bytes-job"] .task[data-task-key="n1/0"]');
    await task.waitFor({ timeout: DOM_WAIT_MS });
    expect(await task.getAttribute('title')).toBe('n1/0: done, 1 attempt(s) on h1 (h1/9 pid 9), read 3.0 MiB, wrote 1.5 KiB');
  }, 60_000);

  it('bounds live streams: one more than sseClientsMax is refused with 503 EBUSY', async () => {
    const auth = { authorization: `Bearer ${cluster.keys.adminToken}` };
    const open: AbortController[] = [];
    try {
      // The page holds one stream already.
      for (let i = 0; i < consoleLimits.sseClientsMax - 1; i++) {
        const ac = new AbortController();
        open.push(ac);
        const res = await fetch(`${web.url}api/events`, { headers: auth, signal: ac.signal });
        expect(res.status).toBe(200);
      }
      const refused = await fetch(`${web.url}api/events`, { headers: auth });
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ code: 'EBUSY' });
    } finally {
      for (const ac of open) ac.abort();
    }
  }, 30_000);
});
