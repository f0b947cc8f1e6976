/**
 * A cluster of real processes (mgmtd, meta, three storage daemons with capped targets) with
 * authentication on (design §10: a cluster secret, an admin token), and real FUSE mounts of it
 * (build/Release/millpond-fuse) presenting a token, for test/fuse. Needs root and /dev/fuse (CI
 * runs as root); skipped otherwise.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { MgmtdClient } from '../../src/cluster/mgmtd-client.js';
import { writePrivateFile } from '../../src/auth/keys.js';
import { testKeys, type TestKeys } from '../support/auth.js';
import { startMetaProcess } from '../meta/support/meta-process.js';
import { freePort, startMgmtd, startStorage, until, type Proc } from '../cluster/support/processes.js';
import { processAlive } from '../support/child.js';
import { tempDir } from '../support/tmp.js';
import type { ChildProcess } from 'node:child_process';

export const FUSE_BIN = resolve('build/Release/millpond-fuse');
export const skipFuse = process.getuid?.() !== 0 || !existsSync('/dev/fuse') || !existsSync(FUSE_BIN);

const exec = promisify(execFile);

/** Runs a bash command line; resolves with its output, rejects with its stderr on failure. */
export async function sh(command: string, options: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  const { stdout } = await exec('bash', ['-c', `set -euo pipefail; ${command}`], {
    cwd: options.cwd, maxBuffer: 64 << 20, timeout: options.timeoutMs ?? 60_000,
  });
  return stdout;
}

/** Like sh, but resolves with the exit code and stderr instead of rejecting. */
export async function shResult(command: string, options: { cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolveResult) => {
    execFile('bash', ['-c', command], { cwd: options.cwd, maxBuffer: 64 << 20, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolveResult({ code, stdout, stderr });
    });
  });
}

export function mounted(dir: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === dir);
}

export class FuseCluster {
  readonly tmp = tempDir('fuse');
  readonly mgmtd: string[] = [];
  meta = '';
  mgmtdProc?: Proc;
  metaProc?: ChildProcess;
  readonly storage = new Map<number, Proc>();
  readonly mounts: string[] = [];
  readonly pids = new Map<string, number>();
  readonly keys: TestKeys = testKeys();

  get adminToken(): string {
    return this.keys.adminToken;
  }

  get serverKey(): string {
    return this.keys.cluster.server.publicKey;
  }

  /** A 0600 file holding `token`, for --token-file. */
  tokenFile(name: string, token: string): string {
    const path = join(this.tmp.dir, 'tokens', `${name}.token`); // writePrivateFile makes its directory 0700
    writePrivateFile(path, `${token}\n`);
    return path;
  }

  /** capacityBytes: per target (each target holds every byte: chains of 3 over 3 nodes). */
  static async start(capacityBytes: number): Promise<FuseCluster> {
    const c = new FuseCluster();
    c.mgmtd.push(`tcp://127.0.0.1:${await freePort()}`);
    c.mgmtdProc = await startMgmtd(join(c.tmp.dir, 'mgmtd.db'), c.mgmtd[0]!, c.keys.secretFile);
    await c.mgmtdProc.waitFor(/^primary$/);
    for (const node of [1, 2, 3]) await c.startNode(node, capacityBytes);
    const admin = new MgmtdClient(c.mgmtd, { timeoutMs: 2000, cluster: c.keys.cluster });
    try {
      await admin.createChainTable(1, { chainCount: 4, chainLength: 3 });
      await until(async () => {
        const r = await admin.getRouting();
        return !('unchanged' in r) && r.targets.filter((t) => t.state === 'serving').length === 3;
      }, 20_000, 'three serving targets');
    } finally {
      admin.close();
    }
    const meta = await startMetaProcess(['--backend', 'sqlite', '--db', join(c.tmp.dir, 'meta.db'), '--listen', 'tcp://127.0.0.1:0',
      '--secret-file', c.keys.secretFile, '--admin-token-file', c.keys.adminTokenFile, '--mgmtd', c.mgmtd.join(',')]); // meta tells mgmtd which tokens to admit
    c.metaProc = meta.child;
    c.meta = meta.endpoint;
    return c;
  }

  async startNode(node: number, capacityBytes: number): Promise<void> {
    // The target spec is <id>:<dir>[:<capacityBytes>].
    const p = await startStorage(node, this.mgmtd, [[100 + node, `${join(this.tmp.dir, `t${100 + node}`)}:${capacityBytes}`]], this.keys.secretFile);
    this.storage.set(node, p);
  }

  /**
   * Mounts at a fresh directory (daemon mode); resolves once the mount is up. The mount
   * presents `token` (default: the admin's, which acts for each caller) through --token-file;
   * `token: null` presents none. `extra` may hold credential flags of its own.
   */
  async mount(name: string, extra: string[] = [], token: string | null = this.adminToken): Promise<string> {
    const { code, out, dir } = await this.tryMount(name, extra, token);
    if (code !== 0) throw new Error(`millpond-fuse failed: ${out}`);
    return dir;
  }

  /** Runs the daemon (its parent returns once the mount is up or failed): its exit code and output. */
  async tryMount(name: string, extra: string[] = [], token: string | null = this.adminToken): Promise<{ code: number | null; out: string; dir: string }> {
    const dir = join(this.tmp.dir, name);
    mkdirSync(dir, { recursive: true });
    const auth = token === null ? [] : ['--token-file', this.tokenFile(name, token), '--server-key', this.serverKey];
    const child = spawn(FUSE_BIN, [dir, '--meta', this.meta, '--mgmtd', this.mgmtd.join(','), '--transport', 'tcp',
      '--allow-other', '--log', join(this.tmp.dir, `${name}.log`), ...auth, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    if (code === 0) {
      this.mounts.push(dir);
      this.pids.set(dir, Number(out.trim().split("\n")[0])); // the parent prints the daemon's pid first
    }
    return { code, out, dir };
  }

  /** The pid of the daemon serving `dir`. */
  daemonPid(dir: string): number {
    return this.pids.get(dir)!;
  }

  async stop(): Promise<void> {
    for (const dir of this.mounts) {
      if (mounted(dir)) await shResult(`fusermount3 -uz ${dir}`);
    }
    // Daemons exit when their mount goes; one that does not is killed (by its pid).
    const pids = [...this.pids.values()];
    await until(() => !pids.some(processAlive), 10_000, 'mount daemons to exit').catch(() => {
      for (const pid of pids.filter(processAlive)) process.kill(pid, 'SIGKILL');
    });
    for (const p of this.storage.values()) await p.kill();
    this.metaProc?.kill('SIGKILL');
    await this.mgmtdProc?.kill();
    this.tmp.cleanup();
    this.keys.cleanup();
  }
}
