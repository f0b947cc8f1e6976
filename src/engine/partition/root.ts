/**
 * Where a job keeps its partitions: a place DuckDB can open paths in, plus the few metadata
 * operations the engine needs around DuckDB (directories, atomic renames, task markers).
 *
 * Locations are absolute strings in the root's own namespace ('/tmp/x/job/node/0-0.parquet'
 * for a local root, '/jobs/job/node/0-0.parquet' inside millpond); `url()` turns one into
 * what DuckDB opens. Contract: `rename` replaces its target atomically, so a reader sees a
 * whole file or none; `writeFileAtomic` is write-then-rename.
 */
import { linkSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { MillpondError } from '../../errors.js';
import { connect, type FileSystem } from '../../fs/index.js';
import { engineLimits } from '../../limits.js';

/** A plain object (it crosses into worker processes), naming the root. */
export type DataRootSpec =
  | { kind: 'local'; dir: string }
  /**
   * A directory of a millpond cluster: DuckDB reads and writes `millpond://<path>` through the
   * millpond extension; markers and renames go through the FileSystem API (src/fs).
   */
  | {
    kind: 'millpond'; dir: string; meta: string; mgmtd: string;
    /**
     * The token tasks present, and the cluster's server key (design §10); when absent, the
     * workers' MILLPOND_TOKEN / MILLPOND_TOKEN_FILE and MILLPOND_SERVER_KEY. The spec crosses
     * into worker processes over IPC, never in argv.
     */
    token?: string;
    serverKey?: string;
  };

export interface DataRoot {
  readonly spec: DataRootSpec;
  /** The root directory; job directories live under it. */
  readonly dir: string;
  /** What DuckDB opens for a location (a path, or a millpond:// URL). */
  url(location: string): string;
  /** Resolves a user-supplied path (relative ones against the working directory for local roots). */
  resolveUserPath(path: string): string;
  mkdirp(location: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** The location a url() of this root names; undefined for anything else (a file elsewhere). */
  locationOf(url: string): string | undefined;
  /** Copies a file's bytes to `to` (replacing it): no DuckDB decode and encode. */
  copyFile(from: string, to: string): Promise<void>;
  /** Makes `to` (which must not exist) another name of the file `from`; false where the root cannot. */
  link(from: string, to: string): Promise<boolean>;
  writeFileAtomic(location: string, data: string): Promise<void>;
  /**
   * Creates `location` holding `owner` if it does not exist (an exclusive create: O_EXCL here,
   * one transaction in meta on millpond, so exactly one of several racing callers gets true);
   * false when it exists. The owner's bytes follow the create: only the name is the claim.
   */
  claim(location: string, owner: string): Promise<boolean>;
  /** The file's text, or undefined when it does not exist. */
  readText(location: string): Promise<string | undefined>;
  /** The names in a directory, sorted. */
  list(location: string): Promise<string[]>;
  /** The file's size in bytes, or undefined when it does not exist. */
  sizeBytes(location: string): Promise<number | undefined>;
  removeRecursive(location: string): Promise<void>;
  /** Releases connections (millpond roots). */
  close?(): void;
  /**
   * Bytes of a file per storage host (an address, as storage targets serve it): millpond roots
   * only, where the engine can prefer executors on the host that holds a task's input.
   */
  dataHosts?(location: string): Promise<{ bytes: number; hosts: Map<string, number> }>;
}

export function openDataRoot(spec: DataRootSpec): DataRoot {
  if (spec === null || typeof spec !== 'object') throw new TypeError('root must be { kind: "local", dir }');
  if (spec.kind === 'local') {
    if (typeof spec.dir !== 'string' || spec.dir === '') throw new TypeError('root.dir must be a non-empty string');
    return new LocalDataRoot({ kind: 'local', dir: resolve(spec.dir) });
  }
  if (spec.kind === 'millpond') {
    for (const key of ['dir', 'meta', 'mgmtd'] as const) {
      if (typeof spec[key] !== 'string' || spec[key] === '') throw new TypeError(`root.${key} must be a non-empty string`);
    }
    if (!spec.dir.startsWith('/')) throw new TypeError('root.dir of a millpond root is an absolute path in millpond');
    // One connection per cluster and process: a worker runs many tasks against one root.
    const key = `${spec.meta}|${spec.mgmtd}|${spec.dir}|${spec.token ?? ""}`; // one per identity too
    let root = millpondRoots.get(key);
    if (!root) millpondRoots.set(key, (root = new MillpondDataRoot(spec, () => millpondRoots.delete(key))));
    return root;
  }
  throw new TypeError(`unknown root kind ${JSON.stringify((spec as { kind?: unknown }).kind)}`);
}

/**
 * A directory of this machine's filesystem. Its metadata operations (mkdir, rename, link, a
 * marker's or claim's few bytes, stat, a listing) are synchronous system calls: each takes
 * microseconds, less than the thread-pool round trip an asynchronous one costs (a hand-off to
 * a libuv thread and a wake-up back), and a task makes about ten of them. Copies and
 * recursive removals, which may take long, stay asynchronous.
 */
class LocalDataRoot implements DataRoot {
  readonly dir: string;
  constructor(readonly spec: DataRootSpec & { kind: 'local' }) {
    this.dir = spec.dir;
  }

  url(location: string): string {
    return location;
  }

  resolveUserPath(path: string): string {
    // Globs and URLs DuckDB understands pass through; plain relative paths become absolute so
    // worker processes with another cwd agree.
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path) || isAbsolute(path)) return path;
    return resolve(path);
  }

  async mkdirp(location: string): Promise<void> {
    mkdirSync(location, { recursive: true });
  }

  async rename(from: string, to: string): Promise<void> {
    renameSync(from, to);
  }

  locationOf(url: string): string | undefined {
    return isAbsolute(url) ? url : undefined;
  }

  async copyFile(from: string, to: string): Promise<void> {
    await copyFile(from, to);
  }

  async link(from: string, to: string): Promise<boolean> {
    try {
      linkSync(from, to);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EXDEV' || code === 'EPERM' || code === 'ENOTSUP' || code === 'EMLINK') return false;
      throw e;
    }
  }

  async writeFileAtomic(location: string, data: string): Promise<void> {
    const tmp = `${location}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    writeCreatingDir(tmp, data);
    renameSync(tmp, location);
  }

  async claim(location: string, owner: string): Promise<boolean> {
    try {
      writeCreatingDir(location, owner, 'wx');
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  }

  async readText(location: string): Promise<string | undefined> {
    try {
      return readFileSync(location, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async sizeBytes(location: string): Promise<number | undefined> {
    try {
      return statSync(location).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async list(location: string): Promise<string[]> {
    return readdirSync(location).sort();
  }

  async removeRecursive(location: string): Promise<void> {
    await rm(location, { recursive: true, force: true });
  }
}

/**
 * Writes a file (`flag` 'w', or 'wx': only if it does not exist), creating its directory only
 * when it is missing: a job writes many small files (markers, claims) into few directories,
 * and a mkdir per file is a system call per file.
 */
function writeCreatingDir(path: string, data: string, flag: 'w' | 'wx' = 'w'): void {
  try {
    writeFileSync(path, data, { flag });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, data, { flag });
  }
}

async function writeCreatingDirIn(fs: FileSystem, path: string, data: string, flag: 'w' | 'wx' = 'w'): Promise<void> {
  try {
    await fs.writeFile(path, data, { flag });
  } catch (e) {
    if (!(e instanceof MillpondError && e.code === 'ENOENT')) throw e;
    await fs.mkdir(path.slice(0, path.lastIndexOf('/')) || '/', { recursive: true });
    await fs.writeFile(path, data, { flag });
  }
}

const millpondRoots = new Map<string, MillpondDataRoot>();

/** Locations are paths in the millpond namespace; DuckDB gets them as millpond:/// URLs. */
class MillpondDataRoot implements DataRoot {
  readonly dir: string;
  private fs: Promise<FileSystem> | undefined;

  constructor(readonly spec: DataRootSpec & { kind: 'millpond' }, private readonly forget: () => void) {
    this.dir = spec.dir.replace(/\/+$/, '') || '/';
  }

  private files(): Promise<FileSystem> {
    this.fs ??= connect({ meta: this.spec.meta, mgmtd: this.spec.mgmtd.split(','), token: this.spec.token, serverKey: this.spec.serverKey });
    return this.fs;
  }

  url(location: string): string {
    return /^millpond:/i.test(location) ? location : `millpond://${location}`; // glob results are URLs already
  }

  resolveUserPath(path: string): string {
    if (/^millpond:\/*/i.test(path)) return `/${path.replace(/^millpond:\/*/i, '')}`;
    if (path.startsWith('/')) return path;
    return `${this.dir === '/' ? '' : this.dir}/${path}`;
  }

  async mkdirp(location: string): Promise<void> {
    await (await this.files()).mkdir(location, { recursive: true });
  }

  async rename(from: string, to: string): Promise<void> {
    await (await this.files()).rename(from, to);
  }

  locationOf(url: string): string | undefined {
    return /^millpond:/i.test(url) ? `/${url.replace(/^millpond:\/*/i, '')}` : undefined;
  }

  async dataHosts(location: string): Promise<{ bytes: number; hosts: Map<string, number> }> {
    return (await this.files()).dataHosts(location);
  }

  async copyFile(from: string, to: string): Promise<void> {
    const fs = await this.files();
    // Pieces of whole chunks: a write of part of a chunk rewrites the chunk (copy-on-write).
    await pipeline(fs.createReadStream(from, { highWaterMark: engineLimits.copyPieceBytes }), fs.createWriteStream(to));
  }

  async link(from: string, to: string): Promise<boolean> {
    try {
      await (await this.files()).link(from, to);
      return true;
    } catch (e) {
      if (e instanceof MillpondError && e.code === 'EMLINK') return false;
      throw e;
    }
  }

  async writeFileAtomic(location: string, data: string): Promise<void> {
    const fs = await this.files();
    const tmp = `${location}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await writeCreatingDirIn(fs, tmp, data);
    await fs.rename(tmp, location);
  }

  async claim(location: string, owner: string): Promise<boolean> {
    try {
      await writeCreatingDirIn(await this.files(), location, owner, 'wx');
      return true;
    } catch (e) {
      if (e instanceof MillpondError && e.code === 'EEXIST') return false;
      throw e;
    }
  }

  async readText(location: string): Promise<string | undefined> {
    try {
      return await (await this.files()).readFile(location, 'utf8');
    } catch (e) {
      if (e instanceof MillpondError && e.code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async sizeBytes(location: string): Promise<number | undefined> {
    try {
      return (await (await this.files()).stat(location)).size;
    } catch (e) {
      if (e instanceof MillpondError && e.code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async list(location: string): Promise<string[]> {
    return (await (await this.files()).readdir(location)).sort();
  }

  async removeRecursive(location: string): Promise<void> {
    await (await this.files()).rm(location, { recursive: true, force: true });
  }

  close(): void {
    this.forget();
    void this.fs?.then((fs) => fs.close());
  }
}
