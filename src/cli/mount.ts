/**
 * `millpond mount DIR` and `millpond umount DIR`: the FUSE daemon (native/fuse, the
 * `millpond-fuse` binary built beside the addon) over the cluster the CLI is configured for.
 *
 *   millpond mount DIR [--token-file FILE] [--foreground] [--allow-other] [--direct-io]
 *                      [--attr-timeout-ms N] [--entry-timeout-ms N] [--threads N]
 *                      [--as-user UID:GID] [--log FILE] [--metrics-listen HOST:PORT [--metrics-token-file FILE]]
 *   millpond umount DIR [--lazy]
 *
 * Credentials: those of every CLI command (config.ts cliAuth: --token-file, MILLPOND_TOKEN /
 * MILLPOND_TOKEN_FILE with MILLPOND_SERVER_KEY, else the data directory's admin token and
 * cluster.json serverKey). The token never goes in the daemon's argv (any local user can read
 * it): the daemon reads it from a pipe at fd 3 (`--token-fd 3`) that this process writes and
 * closes; the public server key is an argument. A proxy user's or the admin's token acts for
 * each caller; a plain user's token only as that user (native/fuse/fuse_main.cc).
 *
 * Without --foreground the daemon detaches once the mount is up (its pid is printed). In the
 * foreground, SIGINT/SIGTERM unmount cleanly. A daemon that died leaves the mount point "not
 * connected": `millpond umount DIR` (or `umount -l DIR`) clears it.
 *
 * --metrics-listen HOST:PORT: the daemon serves Prometheus text at http://HOST:PORT/metrics
 * (FUSE requests by operation with latencies, bytes through the mount, the file client's
 * counters) to scrapes presenting the admin token as bearer, the token of
 * --metrics-token-file (a 0600 file; default: the data directory's keys/admin.token). It prints
 * "metrics <url>" after its pid.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MillpondError } from '../errors.js';
import { ADMIN_TOKEN_FILE, KEYS_DIR, type ClientAuth } from '../auth/credentials.js';
import { cliAuth, type CliConfig } from './config.js';

export const MOUNT_USAGE = `mount DIR [--token-file FILE] [--foreground] [--allow-other] [--direct-io] [--attr-timeout-ms N] [--entry-timeout-ms N] [--threads N] [--as-user UID:GID] [--log FILE]
             [--metrics-listen HOST:PORT [--metrics-token-file FILE]]
  umount DIR [--lazy]`;

/** Flags of mount/umount that take no value. */
export const MOUNT_BARE_FLAGS = ['foreground', 'allow-other', 'direct-io', 'lazy'];

const VALUE_FLAGS = ['attr-timeout-ms', 'entry-timeout-ms', 'threads', 'as-user', 'log', 'write-behind-bytes'];

/** The daemon binary: MILLPOND_FUSE_BIN, else build/Release/millpond-fuse of this package. */
export function fuseBinary(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MILLPOND_FUSE_BIN) return env.MILLPOND_FUSE_BIN;
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const path = join(root, 'build', 'Release', 'millpond-fuse');
  if (!existsSync(path)) throw new MillpondError('ENOTSUP', `${path} is missing: install libfuse3-dev and rebuild (npm run build:native)`);
  return path;
}

/** The descriptor the daemon reads the token from (a pipe this process writes). */
const TOKEN_FD = 3;

/**
 * The daemon's argument list for mounting `dir` (exported for tests). With `auth`, the token
 * is to be written to fd 3; it is never in the list.
 */
export function fuseArgs(config: CliConfig, dir: string, flags: Map<string, string>, auth?: ClientAuth): string[] {
  if (flags.has('token')) {
    throw new MillpondError('EAUTH', '--token: a token is never an argument (others can read argv); use --token-file FILE or MILLPOND_TOKEN_FILE');
  }
  const args = [resolve(dir), '--meta', config.meta, '--mgmtd', config.mgmtd.join(','), '--transport', config.transport];
  if (auth) args.push('--token-fd', String(TOKEN_FD), '--server-key', auth.serverKey);
  for (const bare of MOUNT_BARE_FLAGS) if (flags.has(bare) && bare !== 'lazy') args.push(`--${bare}`);
  for (const name of VALUE_FLAGS) if (flags.has(name)) args.push(`--${name}`, flags.get(name)!);
  if (flags.has('metrics-listen')) {
    const tokenFile = flags.get('metrics-token-file') ?? join(config.dataDir, KEYS_DIR, ADMIN_TOKEN_FILE);
    if (!existsSync(tokenFile)) throw new MillpondError('EINVAL', `--metrics-listen needs the admin token scrapes present: --metrics-token-file FILE (${tokenFile} does not exist)`);
    args.push('--metrics-listen', flags.get('metrics-listen')!, '--metrics-token-file', resolve(tokenFile));
  }
  return args;
}

export async function mount(config: CliConfig, dir: string | undefined, flags: Map<string, string>): Promise<void> {
  if (!dir) throw new TypeError(`millpond mount needs a directory\nusage: millpond ${MOUNT_USAGE}`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new MillpondError('ENOTDIR', `not a directory: ${dir}`);
  const auth = cliAuth(config);
  const args = fuseArgs(config, dir, flags, auth);
  const child = spawn(fuseBinary(), args, { stdio: auth ? ['inherit', 'inherit', 'inherit', 'pipe'] : 'inherit' });
  if (auth) {
    // The daemon reads to EOF; an early exit (bad arguments) closes the pipe: ignore EPIPE.
    const pipe = child.stdio[TOKEN_FD] as NodeJS.WritableStream & { on(e: 'error', f: () => void): void };
    pipe.on('error', () => {});
    pipe.end(`${auth.token}\n`);
  }
  if (flags.has('foreground')) {
    // The daemon unmounts on these itself; pass them on and wait.
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
  }
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  // The daemon printed its reason (EAUTH: ... for refused credentials) on stderr.
  if (code !== 0) throw new MillpondError('EIO', `millpond-fuse exited with ${code ?? signal}`);
}

export async function umount(dir: string | undefined, flags: Map<string, string>): Promise<void> {
  if (!dir) throw new TypeError(`millpond umount needs a directory\nusage: millpond ${MOUNT_USAGE}`);
  const target = resolve(dir);
  const lazy = flags.has('lazy') || !daemonAlive(target);
  const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });
  let r = run('fusermount3', [lazy ? '-uz' : '-u', target]);
  if (r.error || r.status !== 0) r = run('umount', lazy ? ['-l', target] : [target]);
  if (r.error || r.status !== 0) {
    throw new MillpondError('EBUSY', `cannot unmount ${target}: ${(r.stderr || r.error?.message || '').trim()} (files open? --lazy detaches it now)`);
  }
}

/** Whether the mount's daemon still answers (a dead one gives ENOTCONN). */
function daemonAlive(target: string): boolean {
  try {
    statSync(target);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOTCONN';
  }
}
