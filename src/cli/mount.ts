/**
 * `millpond mount DIR` and `millpond umount DIR`: the FUSE daemon (native/fuse, the
 * `millpond-fuse` binary built beside the addon) over the cluster the CLI is configured for.
 *
 *   millpond mount DIR [--foreground] [--allow-other] [--direct-io] [--attr-timeout-ms N]
 *                      [--entry-timeout-ms N] [--threads N] [--as-user UID:GID] [--log FILE]
 *   millpond umount DIR [--lazy]
 *
 * Without --foreground the daemon detaches once the mount is up (its pid is printed). In the
 * foreground, SIGINT/SIGTERM unmount cleanly. A daemon that died leaves the mount point "not
 * connected": `millpond umount DIR` (or `umount -l DIR`) clears it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MillpondError } from '../errors.js';
import type { CliConfig } from './config.js';

export const MOUNT_USAGE = `mount DIR [--foreground] [--allow-other] [--direct-io] [--attr-timeout-ms N] [--entry-timeout-ms N] [--threads N] [--as-user UID:GID] [--log FILE]
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

/** The daemon's argument list for mounting `dir` (exported for tests). */
export function fuseArgs(config: CliConfig, dir: string, flags: Map<string, string>): string[] {
  if (flags.has('token')) {
    throw new MillpondError('ENOTSUP', '--token: this cluster has no token authentication yet; the mount acts as each caller (as root) or --as-user UID:GID');
  }
  const args = [resolve(dir), '--meta', config.meta, '--mgmtd', config.mgmtd.join(','), '--transport', config.transport];
  for (const bare of MOUNT_BARE_FLAGS) if (flags.has(bare) && bare !== 'lazy') args.push(`--${bare}`);
  for (const name of VALUE_FLAGS) if (flags.has(name)) args.push(`--${name}`, flags.get(name)!);
  return args;
}

export async function mount(config: CliConfig, dir: string | undefined, flags: Map<string, string>): Promise<void> {
  if (!dir) throw new TypeError(`millpond mount needs a directory\nusage: millpond ${MOUNT_USAGE}`);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new MillpondError('ENOTDIR', `not a directory: ${dir}`);
  const args = fuseArgs(config, dir, flags);
  const child = spawn(fuseBinary(), args, { stdio: 'inherit' });
  if (flags.has('foreground')) {
    // The daemon unmounts on these itself; pass them on and wait.
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
  }
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
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
