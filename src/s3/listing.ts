/**
 * ListObjects over a directory tree, in S3's order: keys sorted by their UTF-8 bytes. Each
 * directory is read a page at a time from the first name that can matter (listingStart) and no
 * further than the prefix allows, so a page of a listing costs about its own keys, however
 * large the bucket. Subtrees that cannot hold a key after the marker or under the prefix are
 * not read; with the delimiter "/", a subdirectory under the prefix is one common prefix and
 * is not read at all.
 */
import { MillpondError } from '../errors.js';
import type { FileSystem } from '../fs/file-system.js';
import type { Stats } from '../fs/stats.js';
import { HIDDEN_NAME_RE } from './data.js';
import { s3Limits } from '../limits.js';

/** A key (with its Stats when the listing read them with its names) or a common prefix. */
export type Listed = { key: string; stats?: Stats } | { prefix: string };

/** Byte order of UTF-8 strings (JS compares UTF-16 units, which differs above U+FFFF). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Where a directory's listing starts, for `markerSeg` and `prefixSeg` (the first segments of
 * the marker and the prefix relative to it; '' where they bound nothing here): the first name
 * to read, and the subdirectories before it that still sort after the marker. A name below
 * the marker's segment has a key below the marker, but for a subdirectory "d" that is a proper
 * prefix of the segment ending before a character below '/': "d/" sorts after "d-x". Those few
 * are probed by name (at most s3Limits.listMarkerProbesMax; past that, the listing reads from
 * the first of them instead). Under a prefix every name starts with its segment.
 */
async function listingStart(fs: FileSystem, path: string, markerSeg: string, prefixSeg: string): Promise<{ from: string; held: string[] }> {
  if (compareKeys(prefixSeg, markerSeg) >= 0) return { from: prefixSeg, held: [] };
  const before: string[] = [];
  for (let i = 1; i < markerSeg.length; i++) if (markerSeg.charCodeAt(i) < 0x2f) before.push(markerSeg.slice(0, i));
  if (before.length > s3Limits.listMarkerProbesMax) return { from: before[0]!, held: [] };
  const isDir = await Promise.all(before.map((name) => fs.stat(`${path}/${name}`).then((st) => st.isDirectory(), (err: unknown) => {
    if (err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return false;
    throw err;
  })));
  const held = before.filter((_, i) => isDir[i]).map((name) => `${name}/`).sort(compareKeys);
  return { from: markerSeg, held };
}

/**
 * A directory's entries from the name `from` on, in S3's key order (a subdirectory as
 * "name/"), read as the caller iterates, with `held` (subdirectory keys, ascending) merged in;
 * stops at the first name past `within` that does not start with it (no later name can).
 * Name order and key order differ only for a subdirectory "d": its key "d/" sorts after names
 * "d" + a character below '/' ("d-x", "d.x"), which follow "d" in name order. So subdirectories
 * wait in `held` until a name above their key arrives: keys are never below their names and
 * names rise, so a held key below the current name is in place.
 */
async function* keyOrderedEntries(fs: FileSystem, path: string, from: string, held: string[], within: string): AsyncGenerator<{ name: string; dir: boolean; stats?: Stats }> {
  // dirEntries gives the names after its `after`: `from` minus its last code point includes it.
  const after = Array.from(from).slice(0, -1).join('') || undefined;
  try {
    for await (const e of fs.dirEntries(path, { after, plus: true })) {
      const m = HIDDEN_NAME_RE.exec(e.name);
      if (m) {
        // A PUT's temporary file older than any PUT can take was left by a crashed gateway.
        if (m[1] === 'tmp' && Date.now() - Number(m[2]) > s3Limits.tempExpiryMs) void fs.unlink(`${path}/${e.name}`).catch(() => {});
        continue;
      }
      if (within !== '' && !e.name.startsWith(within) && compareKeys(e.name, within) > 0) break;
      while (held.length > 0 && compareKeys(held[0]!, e.name) < 0) yield { name: held.shift()!, dir: true };
      if (!e.isDirectory()) yield { name: e.name, dir: false, stats: e.stats };
      else {
        const key = `${e.name}/`;
        const at = held.findIndex((h) => compareKeys(h, key) > 0);
        held.splice(at < 0 ? held.length : at, 0, key);
      }
    }
  } catch (err) {
    // A prefix no directory has ("a//b" is EINVAL), or one that names a file: no keys.
    if (err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'ENOTDIR' || err.code === 'EINVAL')) return;
    throw err;
  }
  for (const name of held) yield { name, dir: true };
}

/**
 * Yields the bucket's keys after `startAfter` that start with `prefix`, in order, and with a
 * delimiter the common prefixes in their places (each once).
 */
export async function* listKeys(fs: FileSystem, bucketPath: string, prefix: string, delimiter: string, startAfter: string): AsyncGenerator<Listed> {
  let lastPrefix: string | undefined;
  const after = (s: string) => compareKeys(s, startAfter) > 0;
  async function* walk(dirPath: string, keyPrefix: string): AsyncGenerator<Listed> {
    // The first segments of the marker and the prefix relative to this directory ('' where
    // they bound nothing here: the walk enters only directories that can hold keys after both).
    const segment = (s: string) => (s.startsWith(keyPrefix) ? s.slice(keyPrefix.length).split('/')[0]! : '');
    const prefixSeg = segment(prefix);
    const { from, held } = await listingStart(fs, dirPath, segment(startAfter), prefixSeg);
    for await (const e of keyOrderedEntries(fs, dirPath, from, held, prefixSeg)) {
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
        yield { key, stats: e.stats };
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
