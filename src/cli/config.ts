/**
 * Where the CLI finds the cluster: flags, then environment (MILLPOND_*), then a config file
 * (--config, else ./millpond.json, else the cluster file `millpond up` writes in its data
 * directory), then the embedded defaults.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findClientAuth, type ClientAuth } from '../auth/credentials.js';
import type { TransportChoice } from '../native/binding.js';

export interface CliConfig {
  dataDir: string;
  mgmtd: string[];
  /** Meta servers, comma-separated (clients fail over between them). */
  meta: string;
  host: string;
  transport: TransportChoice;
  chainCount: number;
  syncWrites: boolean;
  /** The cluster's CURVE server public key (cluster.json "serverKey", MILLPOND_SERVER_KEY, --server-key). */
  serverKey?: string;
  /** A token file (--token-file); else MILLPOND_TOKEN, MILLPOND_TOKEN_FILE, <dataDir>/keys/admin.token. */
  tokenFile?: string;
  /** The cluster's encryptData flag (cluster.json, made by `init --encrypt-data`): storage daemons encrypt every TCP data connection. */
  encryptData?: boolean;
}

export const DEFAULTS: CliConfig = {
  dataDir: 'millpond-data',
  mgmtd: ['tcp://127.0.0.1:8600'],
  meta: 'tcp://127.0.0.1:8601',
  host: '127.0.0.1',
  transport: 'auto',
  chainCount: 12,
  syncWrites: true,
};

export const CLUSTER_FILE = 'cluster.json';

function fromFile(path: string): Partial<CliConfig> {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const out: Partial<CliConfig> = {};
  if (typeof raw.dataDir === 'string') out.dataDir = raw.dataDir;
  if (typeof raw.mgmtd === 'string') out.mgmtd = raw.mgmtd.split(',');
  if (Array.isArray(raw.mgmtd)) out.mgmtd = raw.mgmtd.map(String);
  if (typeof raw.meta === 'string') out.meta = raw.meta;
  if (Array.isArray(raw.meta)) out.meta = raw.meta.map(String).join(',');
  if (typeof raw.host === 'string') out.host = raw.host;
  if (raw.transport === 'auto' || raw.transport === 'tcp' || raw.transport === 'rdma') out.transport = raw.transport;
  if (typeof raw.chainCount === 'number') out.chainCount = raw.chainCount;
  if (typeof raw.syncWrites === 'boolean') out.syncWrites = raw.syncWrites;
  if (typeof raw.serverKey === 'string') out.serverKey = raw.serverKey;
  if (raw.encryptData === true) out.encryptData = true;
  return out;
}

function fromEnv(env: NodeJS.ProcessEnv): Partial<CliConfig> {
  const out: Partial<CliConfig> = {};
  if (env.MILLPOND_DATA_DIR) out.dataDir = env.MILLPOND_DATA_DIR;
  if (env.MILLPOND_MGMTD) out.mgmtd = env.MILLPOND_MGMTD.split(',');
  if (env.MILLPOND_META) out.meta = env.MILLPOND_META;
  if (env.MILLPOND_HOST) out.host = env.MILLPOND_HOST;
  const t = env.MILLPOND_TRANSPORT;
  if (t === 'auto' || t === 'tcp' || t === 'rdma') out.transport = t;
  if (env.MILLPOND_SERVER_KEY) out.serverKey = env.MILLPOND_SERVER_KEY;
  return out;
}

export function loadConfig(flags: Map<string, string>, env: NodeJS.ProcessEnv = process.env): CliConfig {
  const fromFlags: Partial<CliConfig> = {};
  if (flags.has('data-dir')) fromFlags.dataDir = flags.get('data-dir')!;
  if (flags.has('mgmtd')) fromFlags.mgmtd = flags.get('mgmtd')!.split(',');
  if (flags.has('meta')) fromFlags.meta = flags.get('meta')!;
  if (flags.has('host')) fromFlags.host = flags.get('host')!;
  const t = flags.get('transport');
  if (t !== undefined) {
    if (t !== 'auto' && t !== 'tcp' && t !== 'rdma') throw new TypeError(`--transport must be auto, tcp or rdma, not ${t}`);
    fromFlags.transport = t;
  }
  if (flags.has('no-sync')) fromFlags.syncWrites = false;
  if (flags.has('server-key')) fromFlags.serverKey = flags.get('server-key')!;
  if (flags.has('token-file')) fromFlags.tokenFile = flags.get('token-file')!;
  const dataDir = resolve(fromFlags.dataDir ?? fromEnv(env).dataDir ?? DEFAULTS.dataDir);
  const configPath = flags.get('config') ?? (existsSync('millpond.json') ? 'millpond.json'
    : existsSync(join(dataDir, CLUSTER_FILE)) ? join(dataDir, CLUSTER_FILE) : undefined);
  const file = configPath ? fromFile(configPath) : {};
  return { ...DEFAULTS, ...file, ...fromEnv(env), ...fromFlags, dataDir };
}

/**
 * The credentials the CLI presents: --token-file, MILLPOND_TOKEN, MILLPOND_TOKEN_FILE, then the
 * admin token `millpond up` wrote in the data directory, so its quick start needs no setting.
 */
export function cliAuth(config: CliConfig, env: NodeJS.ProcessEnv = process.env): ClientAuth | undefined {
  return findClientAuth({ tokenFile: config.tokenFile, serverKey: config.serverKey, dataDir: config.dataDir, env });
}
