/**
 * The web console (issue 17, design §14): a static page (web/console: HTML, one JS file, CSS)
 * and a JSON API over the cluster view (src/cluster/cluster-view.ts), over plain HTTP.
 *
 *   GET /                the page
 *   GET /console.js, /console.css
 *   GET /api/view        the last cluster view: { view } (200), or { view?, error: {code, message} } (503)
 *   GET /api/events      server-sent events: `event: view` with the same object, every
 *                        consoleLimits.viewIntervalMs
 *
 * Authentication (design §10): every request needs an admin token of the cluster (uid 0; the
 * one check of src/metrics/server.ts, adminTokenValid): `Authorization: Bearer <token>`, or the
 * HttpOnly SameSite=Strict cookie a browser gets by opening `/?token=<token>` once (answered with
 * a redirect to the clean URL, so the token leaves the address bar and history). Anything else
 * is 401 with code EAUTH (JSON for /api/*). Connections and live streams are bounded
 * (consoleLimits); one stream too many is 503 EBUSY.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterView } from '../cluster/cluster-view.js';
import { MillpondError } from '../errors.js';
import { consoleLimits } from '../limits.js';
import { adminTokenValid, bearerToken, parseListen } from '../metrics/server.js';
import { ViewFeed } from './feed.js';

const COOKIE = 'millpond_console';
const webDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web', 'console');
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export interface ConsoleServer {
  /** `http://host:port/` as bound. */
  url: string;
  close(): Promise<void>;
}

export interface ConsoleOptions {
  listen: string;
  /** The cluster secret: tokens are checked against it (EINVAL without: the console never serves open). */
  secret: Buffer | undefined;
  gather: () => Promise<ClusterView>;
}

function cookieToken(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

export async function startConsole(o: ConsoleOptions): Promise<ConsoleServer> {
  const secret = o.secret;
  if (!secret) throw new MillpondError('EINVAL', 'the console needs authentication on (the cluster secret): it answers only the admin token');
  const { host, port } = parseListen(o.listen, '--listen');
  const files = new Map(Object.entries(STATIC).map(([path, s]) => [path, { body: readFileSync(join(webDir, s.file)), type: s.type }]));
  const feed = new ViewFeed(o.gather);
  const server = createServer({ headersTimeout: consoleLimits.headersTimeoutMs, requestTimeout: consoleLimits.requestTimeoutMs }, (req, res) => {
    void answer(req, res).catch((err) => {
      if (!res.headersSent) json(res, 500, { code: 'EINTERNAL', message: (err as Error).message });
      else res.destroy();
    });
  });
  server.maxConnections = consoleLimits.connectionsMax;

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console');
    const api = url.pathname.startsWith('/api/');
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, api, 405, 'EINVAL', 'the console answers GET only', { allow: 'GET, HEAD' });
    const fromQuery = url.searchParams.get('token') ?? undefined;
    if (fromQuery !== undefined && !api && STATIC[url.pathname]) {
      if (!adminTokenValid(fromQuery, secret!)) return refuse(res, api, 401, 'EAUTH', 'the token is not an admin token of this cluster');
      res.writeHead(303, {
        ...SECURITY_HEADERS, location: url.pathname, 'cache-control': 'no-store',
        'set-cookie': `${COOKIE}=${encodeURIComponent(fromQuery)}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${consoleLimits.cookieMaxAgeS}`,
      });
      return void res.end();
    }
    if (!adminTokenValid(bearerToken(req) ?? cookieToken(req), secret!)) {
      return refuse(res, api, 401, 'EAUTH', 'the console needs an admin token: Authorization: Bearer <token>, or open /?token=<token> once', { 'www-authenticate': 'Bearer realm="millpond"' });
    }
    const file = files.get(url.pathname);
    if (file) {
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': file.type, 'cache-control': 'no-cache' });
      return void res.end(req.method === 'HEAD' ? undefined : file.body);
    }
    if (url.pathname === '/api/view') {
      const state = await feed.current();
      return json(res, state.error ? 503 : 200, state);
    }
    if (url.pathname === '/api/events') {
      try {
        feed.subscribe(res);
      } catch (err) {
        return refuse(res, true, 503, 'EBUSY', (err as Error).message);
      }
      return;
    }
    return refuse(res, api, 404, 'ENOENT', `no ${url.pathname} here`);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  feed.start();
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${shownHost}:${bound.port}/`,
    close: () => new Promise<void>((resolve) => {
      feed.stop();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** A refusal with a stable code: JSON { code, message } for the API, text for pages. */
function refuse(res: ServerResponse, api: boolean, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  if (api) {
    res.writeHead(status, { ...SECURITY_HEADERS, ...headers, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ code, message }));
    return;
  }
  res.writeHead(status, { ...SECURITY_HEADERS, ...headers, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`${code}: ${message}\n`);
}
