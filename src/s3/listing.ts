/**
 * ListObjects over a directory tree, in S3's order: keys sorted by their UTF-8 bytes. A
 * directory's entries come sorted by name from meta, but S3 sorts the key "a/x" after "a-b"
 * ('/' is 0x2F, '-' 0x2D), so each directory is read whole and sorted with its
 * subdirectories' names as "name/". Subtrees that cannot hold a key after the marker or
 * under the prefix are not read; with the delimiter "/", a subdirectory under the prefix is
 * one common prefix and is not read at all.
 */
import { MillpondError } from '../errors.js';
import type { FileSystem } from '../fs/file-system.js';
import type { Dirent } from '../fs/stats.js';
import { HIDDEN_NAME_RE } from './data.js';
import { s3Limits } from '../limits.js';

export type Listed = { key: string } | { prefix: string };

/** Byte order of UTF-8 strings (JS compares UTF-16 units, which differs above U+FFFF). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function sortedEntries(fs: FileSystem, path: string): Promise<Array<{ name: string; dir: boolean }>> {
  let entries: Dirent[];
  try {
    entries = await fs.readdir(path, { withFileTypes: true });
  } catch (err) {
    if (err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'ENOTDIR' || err.code === 'EINVAL')) return []; // EINVAL: a prefix no path can have ("a//b")
    throw err;
  }
  for (const e of entries) {
    // A PUT's temporary file older than any PUT can take was left by a crashed gateway.
    const m = HIDDEN_NAME_RE.exec(e.name);
    if (m && m[1] === 'tmp' && Date.now() - Number(m[2]) > s3Limits.tempExpiryMs) void fs.unlink(`${path}/${e.name}`).catch(() => {});
  }
  const named = entries.filter((e) => !HIDDEN_NAME_RE.test(e.name)).map((e) => ({ name: e.isDirectory() ? `${e.name}/` : e.name, dir: e.isDirectory() }));
  return named.sort((a, b) => compareKeys(a.name, b.name));
}

/**
 * Yields the bucket's keys after `startAfter` that start with `prefix`, in order, and with a
 * delimiter the common prefixes in their places (each once).
 */
export async function* listKeys(fs: FileSystem, bucketPath: string, prefix: string, delimiter: string, startAfter: string): AsyncGenerator<Listed> {
  let lastPrefix: string | undefined;
  const after = (s: string) => compareKeys(s, startAfter) > 0;
  async function* walk(dirPath: string, keyPrefix: string): AsyncGenerator<Listed> {
    for (const e of await sortedEntries(fs, dirPath)) {
      const key = keyPrefix + e.name;
      if (e.dir) {
        // keys under `key` start with it: skip the subtree if none can match the prefix or
        // come after the marker.
        if (!(key.startsWith(prefix) || prefix.startsWith(key))) continue;
        if (!after(key) && !startAfter.startsWith(key)) continue;
        if (delimiter === '/' && key.startsWith(prefix) && key.indexOf('/', prefix.length) === key.length - 1) {
          if (after(key)) yield { prefix: key };
          continue;
        }
        yield* walk(`${dirPath}/${e.name.slice(0, -1)}`, key);
      } else {
        if (!key.startsWith(prefix) || !after(key)) continue;
        yield { key };
      }
    }
  }
  // Start at the deepest directory the prefix names.
  const slash = prefix.lastIndexOf('/');
  const startDir = slash < 0 ? '' : prefix.slice(0, slash + 1);
  // No key has an empty, "." or ".." segment (paths.ts: checkKey), so neither can its prefix.
  if (startDir.split('/').slice(0, -1).some((seg) => seg === '' || seg === '.' || seg === '..')) return;
  const source = walk(startDir === '' ? bucketPath : `${bucketPath}/${startDir.slice(0, -1)}`, startDir);
  for await (const item of source) {
    if (!('key' in item) || delimiter === '' || delimiter === '/') {
      if ('prefix' in item && item.prefix === lastPrefix) continue;
      if ('prefix' in item) lastPrefix = item.prefix;
      yield item;
      continue;
    }
    const at = item.key.indexOf(delimiter, prefix.length);
    if (at < 0) {
      yield item;
      continue;
    }
    const common = item.key.slice(0, at + delimiter.length);
    if (common === lastPrefix || !after(common)) continue;
    lastPrefix = common;
    yield { prefix: common };
  }
}
