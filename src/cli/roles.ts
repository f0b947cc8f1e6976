/**
 * The server roles as `millpond` commands (design §9), for a cluster that spans hosts:
 *   millpond mgmtd   [--listen H:P] [--advertise H:P]
 *   millpond meta    [--listen H:P] [--advertise H:P]
 *   millpond storage --node-id N --target [ID:]DIR [--target ...] [--listen H[:P]] [--advertise H] [--data-port P]
 * Every host holds a copy of the directory `millpond init --dir DIR` made (cluster.json and
 * keys/); a role reads it with --data-dir DIR (or --config DIR/cluster.json): the mgmtd and meta
 * address lists, the backend ("backend": "postgres" | "sqlite") and its URL (pgUrlOf: the
 * environment keeps a password out of files), and the secret in keys/cluster.secret.
 * Nothing secret is ever in argv.
 *
 * --listen is what the process binds (0.0.0.0:P for every interface), --advertise what peers are
 * told (storage: its control and data-plane addresses; --data-port P puts the targets' data
 * servers on P, P+1, ..., else on free ports, which mgmtd's routing tells clients). mgmtd and meta default to the entry of their list in cluster.json whose host is an
 * address of this host: they listen on 0.0.0.0 at its port and advertise it. storage advertises
 * --advertise, else this host's one non-loopback IPv4 address.
 * Each prints "listening <advertised endpoint>" once it serves; SIGTERM/SIGINT stop it cleanly.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { ClusterAuth, KEYS_DIR, SECRET_FILE, ADMIN_TOKEN_FILE } from '../auth/credentials.js';
import { MillpondError } from '../errors.js';
import type { CliConfig } from './config.js';
import { intFlag } from './role-flags.js';
import { openKv, serveUntilSignal, startMetaRole, startMgmtdRole, startStorageRole, type KvChoice } from './role-services.js';

export const ROLES_USAGE = `millpond mgmtd [--listen H:P] [--advertise H:P] [--backend postgres|sqlite] [--db FILE]
       millpond meta [--listen H:P] [--advertise H:P] [--backend postgres|sqlite] [--db FILE] [--session-timeout-ms MS]
       millpond storage --node-id N --target [ID:]DIR [--target ...] [--listen H[:P]] [--advertise H] [--data-port P] [--no-sync]
  roles read --data-dir DIR (what millpond init made: cluster.json, keys/) or --config FILE and --secret-file FILE;
  mgmtd: --heartbeat-timeout-ms --lease-ms --lease-poll-ms --liveness-check-ms --move-step-timeout-ms --move-retry-window-ms; storage: --heartbeat-ms --routing-poll-ms;
  each: --metrics-listen H:P (Prometheus /metrics, admin token as bearer)`;

type Flags = Map<string, string>;

/** "H:P", "tcp://H:P", "[v6]:P" → "tcp://H:P" (port 0: any free port). */
export function tcpEndpoint(text: string, defaultPort?: number): string {
  const bare = text.replace(/^tcp:\/\//, '');
  const m = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(bare);
  const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
  if (!m || port === undefined || port > 65535) throw new TypeError(`${text} is not an address HOST:PORT`);
  return `tcp://${m[1]}:${port}`;
}

function hostOf(endpoint: string): string {
  return tcpEndpoint(endpoint, 0).slice('tcp://'.length).replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
}

function portOf(endpoint: string): number {
  return Number(/:(\d+)$/.exec(tcpEndpoint(endpoint, 0))![1]);
}

/** This host's addresses (of every interface, loopback included). */
function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/**
 * Where a role listens and what it advertises: the flags, else the entry of `list` (the role's
 * addresses in cluster.json) on this host, listened to on every interface.
 */
function listenAndAdvertise(role: string, flags: Flags, list: string[]): { listen: string; advertise?: string } {
  const listenFlag = flags.get('listen');
  const advertiseFlag = flags.get('advertise');
  if (listenFlag) return { listen: tcpEndpoint(listenFlag), advertise: advertiseFlag ? tcpEndpoint(advertiseFlag, portOf(tcpEndpoint(listenFlag))) : undefined };
  const local = localAddresses();
  const mine = advertiseFlag ? [tcpEndpoint(advertiseFlag)] : list.filter((e) => local.has(hostOf(e)));
  if (mine.length !== 1) {
    throw new TypeError(`millpond ${role}: give --listen HOST:PORT (${mine.length === 0 ? `no ${role} address of cluster.json (${list.join(', ')}) is on this host` : `several ${role} addresses are on this host: ${mine.join(', ')}`})`);
  }
  return { listen: `tcp://0.0.0.0:${portOf(mine[0]!)}`, advertise: mine[0] };
}

/** The cluster's deployment as cluster.json says (fields `millpond init` and the user wrote). */
interface Deployment {
  meta: string[];
  /** This host's entry of cluster.json "hosts" (found by its address), if any. */
  host?: HostEntry;
  backend?: string;
  pgUrl?: string;
  secretFile?: string;
}

/**
 * mgmtd and meta each need a database of their own (both keep one table `kv`): the role's URL
 * is MILLPOND_MGMTD_PG_URL / MILLPOND_META_PG_URL, else MILLPOND_PG_URL, else cluster.json's
 * "mgmtdPgUrl" / "metaPgUrl", else its "pgUrl".
 */
function pgUrlOf(role: string, raw: Record<string, unknown>): string | undefined {
  const fromFile = raw[`${role}PgUrl`] ?? raw.pgUrl;
  return process.env[`MILLPOND_${role.toUpperCase()}_PG_URL`] ?? process.env.MILLPOND_PG_URL ?? (typeof fromFile === 'string' ? fromFile : undefined);
}

/**
 * cluster.json may describe the deployment host by host:
 *   "hosts": { "a": { "address": "10.0.0.1", "roles": ["mgmtd", "meta", "storage"], "nodeId": 1,
 *                     "targets": ["/ssd0/millpond", "/ssd1/millpond"] }, ... }
 * A role finds its host's entry by this host's addresses: storage takes --node-id and --target
 * from it, and a role the entry does not list is refused (the wrong host, or a typo).
 */
interface HostEntry {
  name: string;
  address: string;
  roles: string[];
  nodeId?: number;
  targets?: string[];
}

function hostEntry(raw: Record<string, unknown>): HostEntry | undefined {
  if (raw.hosts === undefined) return undefined;
  if (typeof raw.hosts !== 'object' || raw.hosts === null || Array.isArray(raw.hosts)) throw new TypeError('cluster.json "hosts" must be an object of host entries');
  const local = localAddresses();
  const mine: HostEntry[] = [];
  for (const [name, e] of Object.entries(raw.hosts as Record<string, Record<string, unknown>>)) {
    const ok = typeof e?.address === 'string' && Array.isArray(e.roles) && e.roles.every((r) => typeof r === 'string')
      && (e.nodeId === undefined || Number.isSafeInteger(e.nodeId)) && (e.targets === undefined || (Array.isArray(e.targets) && e.targets.every((x) => typeof x === 'string')));
    if (!ok) throw new TypeError(`cluster.json hosts.${name}: needs "address" and "roles" (and optional "nodeId", "targets": [dirs])`);
    if (local.has(e.address as string)) mine.push({ name, address: e.address as string, roles: e.roles as string[], nodeId: e.nodeId as number | undefined, targets: e.targets as string[] | undefined });
  }
  if (mine.length > 1) throw new TypeError(`cluster.json: several hosts entries are on this host: ${mine.map((m) => m.name).join(', ')}`);
  return mine[0];
}

function deployment(role: string, config: CliConfig, flags: Flags): Deployment {
  const path = flags.get('config') ?? join(config.dataDir, 'cluster.json');
  const raw = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
  const secret = flags.get('secret-file') ?? join(config.dataDir, KEYS_DIR, SECRET_FILE);
  const d: Deployment = {
    meta: config.meta.split(',').filter(Boolean),
    backend: flags.get('backend') ?? (typeof raw.backend === 'string' ? raw.backend : undefined),
    pgUrl: pgUrlOf(role, raw),
    host: hostEntry(raw),
    secretFile: existsSync(secret) ? secret : undefined,
  };
  if (d.host && !d.host.roles.includes(role)) throw new TypeError(`millpond ${role}: cluster.json hosts.${d.host.name} (${d.host.address}, this host) has roles ${d.host.roles.join(', ')}, not ${role}`);
  return d;
}

function clusterAuth(role: string, d: Deployment, flags: Flags): ClusterAuth | undefined {
  if (d.secretFile) return ClusterAuth.load(d.secretFile);
  if (!flags.has('insecure')) throw new MillpondError('EAUTH', `millpond ${role}: no cluster secret (--data-dir DIR made by millpond init, or --secret-file FILE); --insecure runs without authentication`);
  return undefined;
}

function kvChoice(role: string, d: Deployment, config: CliConfig, flags: Flags): KvChoice {
  const backend = d.backend ?? (d.pgUrl ? 'postgres' : 'sqlite');
  if (backend === 'postgres') {
    if (!d.pgUrl) throw new TypeError(`millpond ${role}: backend postgres needs MILLPOND_${role.toUpperCase()}_PG_URL (or MILLPOND_PG_URL, or "${role}PgUrl" in cluster.json)`);
    return { backend, pgUrl: d.pgUrl };
  }
  if (backend !== 'sqlite') throw new TypeError(`millpond ${role}: --backend must be postgres or sqlite, not ${backend}`);
  const db = flags.get('db') ?? join(config.dataDir, `${role}.db`);
  mkdirSync(resolve(db, '..'), { recursive: true });
  return { backend, db };
}

function positiveInt(flags: Flags, name: string, min = 1): number | undefined {
  return intFlag(flags.get(name), name, min);
}

export async function runMgmtd(config: CliConfig, flags: Flags): Promise<void> {
  const d = deployment('mgmtd', config, flags);
  const { listen, advertise } = listenAndAdvertise('mgmtd', flags, config.mgmtd);
  const auth = clusterAuth('mgmtd', d, flags);
  const kv = await openKv(kvChoice('mgmtd', d, config, flags));
  await serveUntilSignal(await startMgmtdRole(kv, {
    listen, advertise, auth, metricsListen: flags.get('metrics-listen'),
    heartbeatTimeoutMs: positiveInt(flags, 'heartbeat-timeout-ms'),
    leaseMs: positiveInt(flags, 'lease-ms'),
    leasePollMs: positiveInt(flags, 'lease-poll-ms'),
    livenessCheckMs: positiveInt(flags, 'liveness-check-ms'),
    moveStepTimeoutMs: positiveInt(flags, 'move-step-timeout-ms'),
    moveRetryWindowMs: positiveInt(flags, 'move-retry-window-ms'),
  }));
}

export async function runMeta(config: CliConfig, flags: Flags): Promise<void> {
  const d = deployment('meta', config, flags);
  const { listen, advertise } = listenAndAdvertise('meta', flags, d.meta);
  const auth = clusterAuth('meta', d, flags);
  const kv = await openKv(kvChoice('meta', d, config, flags));
  // The admin token init made: listed as user admin's, so the CLI on any host acts as admin.
  const adminFile = flags.get('admin-token-file') ?? join(config.dataDir, KEYS_DIR, ADMIN_TOKEN_FILE);
  await serveUntilSignal(await startMetaRole(kv, {
    listen, advertise, auth, metricsListen: flags.get('metrics-listen'),
    adminTokenFile: auth && existsSync(adminFile) ? adminFile : undefined,
    sessionTimeoutMs: positiveInt(flags, 'session-timeout-ms'),
    mgmtd: config.mgmtd,
  }));
}

/** This host's one non-loopback IPv4 address (what a storage node advertises by default). */
function soleAddress(): string {
  const v4 = Object.values(networkInterfaces()).flatMap((l) => l ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address);
  if (v4.length !== 1) throw new TypeError(`millpond storage: give --advertise HOST (this host has ${v4.length === 0 ? 'no' : 'several'} non-loopback IPv4 addresses${v4.length ? `: ${v4.join(', ')}` : ''})`);
  return v4[0]!;
}

export async function runStorage(config: CliConfig, flags: Flags, targetSpecs: string[]): Promise<void> {
  const d = deployment('storage', config, flags);
  const nodeId = positiveInt(flags, 'node-id') ?? d.host?.nodeId;
  if (nodeId === undefined) throw new TypeError(`millpond storage needs --node-id N (unique in the cluster; or "nodeId" in this host's cluster.json entry)\n${ROLES_USAGE}`);
  if (nodeId < 1) throw new RangeError(`the node id must be an integer >= 1, not ${nodeId}`);
  if (targetSpecs.length === 0) targetSpecs = d.host?.targets ?? [];
  if (targetSpecs.length === 0) throw new TypeError(`millpond storage needs --target [ID:]DIR (one per disk)\n${ROLES_USAGE}`);
  const targets = targetSpecs.map((spec, i) => {
    // [ID:]DIR; without an ID, node N's targets are N*100+1, N*100+2, ... in flag order
    const m = /^(?:(\d+):)?(.+)$/.exec(spec)!;
    const targetId = m[1] !== undefined ? Number(m[1]) : nodeId * 100 + i + 1;
    if (!Number.isSafeInteger(targetId) || targetId < 1) throw new RangeError(`--target ${spec}: the target id must be a positive integer`);
    mkdirSync(m[2]!, { recursive: true, mode: 0o700 });
    return { targetId, dir: resolve(m[2]!) };
  });
  if (new Set(targets.map((t) => t.targetId)).size !== targets.length) throw new TypeError('millpond storage: target ids must differ');
  const listen = flags.get('listen') ?? '0.0.0.0';
  const bindHost = hostOf(listen);
  const advertiseHost = flags.get('advertise') ?? (bindHost === '0.0.0.0' || bindHost === '::' ? d.host?.address ?? soleAddress() : bindHost);
  await serveUntilSignal(await startStorageRole({
    nodeId,
    mgmtd: config.mgmtd,
    targets,
    host: bindHost,
    advertiseHost,
    controlListen: tcpEndpoint(listen, 0),
    dataPort: positiveInt(flags, 'data-port'),
    transport: config.transport,
    heartbeatIntervalMs: positiveInt(flags, 'heartbeat-ms'),
    routingPollMs: positiveInt(flags, 'routing-poll-ms'),
    mgmtdTimeoutMs: positiveInt(flags, 'mgmtd-timeout-ms'),
    syncWrites: config.syncWrites,
    auth: clusterAuth('storage', d, flags),
    encryptData: config.encryptData === true || flags.has('encrypt-data'),
    metricsListen: flags.get('metrics-listen'),
  }));
}
