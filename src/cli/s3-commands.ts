/**
 * `millpond s3 --listen HOST:PORT` (the gateway as its own role), the gateway `millpond up`
 * starts, and `millpond user key add|list|remove` (S3 access keys of millpond users).
 *
 * `up` keeps the admin's access key in <data-dir>/s3-admin.json (mode 0600): made on the first
 * start, kept across restarts, made again if meta no longer has it.
 */
import { ClusterAuth } from '../auth/credentials.js';
import { serveMetricsFlag } from '../metrics/server.js';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MillpondError } from '../errors.js';
import { MetaClient } from '../meta/meta-client.js';
import type { User } from '../protocol/meta-types.js';
import { S3Gateway } from '../s3/index.js';
import type { ClientAuth } from '../auth/credentials.js';
import { cliAuth, type CliConfig } from './config.js';
import { logger } from '../log.js';

export const S3_ADMIN_FILE = 's3-admin.json';
export const S3_LISTEN_DEFAULT = '127.0.0.1:9000';
const USER_USAGE = 'millpond user key add --uid N --gid N [--gids a,b] | user key list [--uid N] | user key remove ACCESS_KEY_ID';

interface AdminKey {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The admin's access key for `up`: the one in the data directory if meta still has it, else a new one. */
export async function ensureAdminKey(metaEndpoint: string, dataDir: string, auth: ClientAuth | undefined): Promise<AdminKey> {
  const path = join(dataDir, S3_ADMIN_FILE);
  const meta = new MetaClient(metaEndpoint, { auth });
  try {
    if (existsSync(path)) {
      const kept = JSON.parse(readFileSync(path, 'utf8')) as AdminKey;
      try {
        const key = await meta.accessKeyGet(kept.accessKeyId);
        if (key.uid === 0 && key.secretAccessKey === kept.secretAccessKey) return kept;
      } catch (err) {
        if (!(err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'EINVAL'))) throw err;
      }
    }
    const key = await meta.accessKeyAdd({ uid: 0, gid: 0 });
    const admin = { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey };
    writeFileSync(path, `${JSON.stringify(admin, null, 2)}\n`, { mode: 0o600 });
    chmodSync(path, 0o600); // an existing file keeps its mode through writeFileSync
    return admin;
  } finally {
    meta.disconnect();
  }
}

export async function startGateway(config: CliConfig, listen: string, flags: Map<string, string>, auth = cliAuth(config)): Promise<S3Gateway> {
  return S3Gateway.start({
    auth,
    meta: config.meta,
    mgmtd: config.mgmtd,
    listen,
    transport: config.transport,
    region: flags.get('region'),
    domains: flags.has('s3-domain') ? flags.get('s3-domain')!.split(',') : undefined,
    log: logger('s3').error,
  });
}

/** `millpond s3`: serves until SIGINT/SIGTERM. */
export async function runS3(config: CliConfig, flags: Map<string, string>): Promise<void> {
  const metrics = await serveMetricsFlag(flags.get('metrics-listen'), flags.has('secret-file') ? ClusterAuth.load(flags.get('secret-file')!).secret : undefined);
  const gateway = await startGateway(config, flags.get('listen') ?? S3_LISTEN_DEFAULT, flags);
  console.log(`millpond s3 is up: ${gateway.endpoint} (meta ${config.meta})`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await gateway.close();
  await metrics?.close();
}

function intFlag(flags: Map<string, string>, name: string): number | undefined {
  const v = flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`--${name} must be an integer in [0, 2^32)`);
  return n;
}

/** `millpond user key ...` (admin: the CLI speaks to meta as uid 0). */
export async function runUser(config: CliConfig, rest: string[], flags: Map<string, string>, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const [what, command, arg] = rest;
  if (what !== 'key') throw new TypeError(`usage: ${USER_USAGE}`);
  const meta = new MetaClient(config.meta, { auth: cliAuth(config) });
  try {
    switch (command) {
      case 'add': {
        const uid = intFlag(flags, 'uid');
        const gid = intFlag(flags, 'gid') ?? uid;
        if (uid === undefined || gid === undefined) throw new TypeError(`user key add needs --uid\nusage: ${USER_USAGE}`);
        const gids = flags.has('gids') ? flags.get('gids')!.split(',').map((g) => Number(g)) : undefined;
        const owner: User = { uid, gid, ...(gids ? { gids } : {}) };
        const key = await meta.accessKeyAdd(owner);
        out.write(`access key ${key.accessKeyId}\nsecret     ${key.secretAccessKey}\nuser       uid ${key.uid} gid ${key.gid}${key.gids ? ` gids ${key.gids.join(',')}` : ''}\n`);
        return;
      }
      case 'list':
        for (const k of await meta.accessKeyList(intFlag(flags, 'uid'))) {
          out.write(`${k.accessKeyId}\tuid ${k.uid}\tgid ${k.gid}${k.gids ? `\tgids ${k.gids.join(',')}` : ''}\t${new Date(k.createdMs).toISOString()}\n`);
        }
        return;
      case 'remove':
        if (!arg) throw new TypeError(`user key remove needs an access key id\nusage: ${USER_USAGE}`);
        await meta.accessKeyRemove(arg);
        out.write(`removed ${arg}\n`);
        return;
      default:
        throw new TypeError(`usage: ${USER_USAGE}`);
    }
  } finally {
    meta.disconnect();
  }
}
