/**
 * Serves the process's registry (src/metrics/registry.ts) as Prometheus text on
 * `GET /metrics` over plain HTTP at `--metrics-listen HOST:PORT` (port 0: any free port).
 *
 * Authentication (design §10: every endpoint authenticates its caller): a scrape must carry
 * `Authorization: Bearer <admin token>`, a token of uid 0 minted from this cluster's secret
 * (<dataDir>/keys/admin.token; Prometheus: `authorization: { credentials_file: ... }`). Anything
 * else gets 401 and no figures. The token is checked against the cluster secret only, so a
 * daemon needs no meta connection for it. A daemon without a cluster secret (authentication
 * off) cannot serve metrics: startMetricsServer refuses with EINVAL rather than serve them open.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseToken, tokenValid } from '../auth/keys.js';
import { MillpondError } from '../errors.js';
import { metricsLimits } from '../limits.js';
import { registry } from './registry.js';

export interface MetricsServer {
  /** `http://host:port/metrics` as bound (the real port when 0 was asked for). */
  url: string;
  close(): Promise<void>;
}

/** Parses `HOST:PORT` (IPv6 as `[::1]:PORT`); EINVAL otherwise. `flag` names the option in the error. */
export function parseListen(text: string, flag = '--metrics-listen'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new MillpondError('EINVAL', `${flag} wants HOST:PORT (port 0: any free port), not ${JSON.stringify(text)}`);
  return { host: (m[1] ?? m[2])!, port };
}

/** The token of an `Authorization: Bearer <token>` header, if the request has one. */
export function bearerToken(req: IncomingMessage): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
}

/**
 * True when `text` is an admin token (uid 0) of the cluster with `secret`. The one check of the
 * HTTP endpoints (/metrics here, the console in src/console/server.ts).
 */
export function adminTokenValid(text: string | undefined, secret: Buffer): boolean {
  if (text === undefined) return false;
  try {
    const token = parseToken(text);
    return token.uid === 0 && tokenValid(secret, token);
  } catch {
    return false;
  }
}

/** True when the request carries a valid admin token of the cluster with `secret`. */
export function scrapeAllowed(req: IncomingMessage, secret: Buffer): boolean {
  return adminTokenValid(bearerToken(req), secret);
}

export async function startMetricsServer(listen: string, secret: Buffer | undefined): Promise<MetricsServer> {
  if (!secret) throw new MillpondError('EINVAL', '--metrics-listen needs authentication on (--secret-file): /metrics answers only the admin token');
  const { host, port } = parseListen(listen);
  const server = createServer({ headersTimeout: metricsLimits.headersTimeoutMs, requestTimeout: metricsLimits.requestTimeoutMs }, (req, res) => {
    void answer(req, res, secret);
  });
  server.maxConnections = metricsLimits.connectionsMax;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${shownHost}:${bound.port}/metrics`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function answer(req: IncomingMessage, res: ServerResponse, secret: Buffer): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/metrics') return plain(res, 404, 'not found: metrics are at /metrics\n');
  if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'GET /metrics\n', { allow: 'GET, HEAD' });
  if (!scrapeAllowed(req, secret)) {
    return plain(res, 401, 'EAUTH: /metrics needs Authorization: Bearer <admin token>\n', { 'www-authenticate': 'Bearer realm="millpond"' });
  }
  try {
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  } catch (err) {
    plain(res, 500, `EINTERNAL: ${(err as Error).message}\n`);
  }
}

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(text);
}

/**
 * A daemon main's `--metrics-listen HOST:PORT`: nothing when absent; else serves /metrics and
 * prints `metrics <url>` (before the daemon's `listening` line). EINVAL without a secret.
 */
export async function serveMetricsFlag(listen: string | undefined, secret: Buffer | undefined, print: (line: string) => void = console.log): Promise<MetricsServer | undefined> {
  if (listen === undefined) return undefined;
  const server = await startMetricsServer(listen, secret);
  print(`metrics ${server.url}`);
  return server;
}
