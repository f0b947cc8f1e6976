/**
 * Where a job keeps its partitions: a place DuckDB can open paths in, plus the few metadata
 * operations the engine needs around DuckDB (directories, atomic renames, task markers).
 *
 * Locations are absolute strings in the root's own namespace ('/tmp/x/job/node/0-0.parquet'
 * for a local root, '/jobs/job/node/0-0.parquet' inside millpond); `url()` turns one into
 * what DuckDB opens. Contract: `rename` replaces its target atomically, so a reader sees a
 * whole file or none; `writeFileAtomic` is write-then-rename.
 */
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { MillpondError } from '../../errors.js';

/** A plain object (it crosses into worker processes), naming the root. */
export type DataRootSpec =
  | { kind: 'local'; dir: string }
  /**
   * Not implemented yet: DuckDB reads `millpond://<path>` through the millpond extension and
   * task markers go through the FileSystem API (src/fs) at these addresses.
   */
  | { kind: 'millpond'; dir: string; meta: string; mgmtd: string };

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
  writeFileAtomic(location: string, data: string): Promise<void>;
  /** The file's text, or undefined when it does not exist. */
  readText(location: string): Promise<string | undefined>;
  /** The file's size in bytes, or undefined when it does not exist. */
  sizeBytes(location: string): Promise<number | undefined>;
  removeRecursive(location: string): Promise<void>;
}

export function openDataRoot(spec: DataRootSpec): DataRoot {
  if (spec === null || typeof spec !== 'object') throw new TypeError('root must be { kind: "local", dir }');
  if (spec.kind === 'local') {
    if (typeof spec.dir !== 'string' || spec.dir === '') throw new TypeError('root.dir must be a non-empty string');
    return new LocalDataRoot({ kind: 'local', dir: resolve(spec.dir) });
  }
  if (spec.kind === 'millpond') {
    throw new MillpondError('ENOTSUP', 'millpond:// data roots need the DuckDB millpond extension (not built yet); use { kind: "local", dir }');
  }
  throw new TypeError(`unknown root kind ${JSON.stringify((spec as { kind?: unknown }).kind)}`);
}

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
    await mkdir(location, { recursive: true });
  }

  async rename(from: string, to: string): Promise<void> {
    await rename(from, to);
  }

  async writeFileAtomic(location: string, data: string): Promise<void> {
    const tmp = `${location}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await mkdir(dirname(location), { recursive: true });
    await writeFile(tmp, data);
    await rename(tmp, location);
  }

  async readText(location: string): Promise<string | undefined> {
    try {
      return await readFile(location, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async sizeBytes(location: string): Promise<number | undefined> {
    try {
      return (await stat(location)).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async removeRecursive(location: string): Promise<void> {
    await rm(location, { recursive: true, force: true });
  }
}
