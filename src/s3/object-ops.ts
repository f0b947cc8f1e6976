/** PutObject, GetObject, HeadObject, DeleteObject, CopyObject. */
import { createHash } from 'node:crypto';
import { MillpondError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/file-system.js';
import { Stats } from '../fs/stats.js';
import type { ObjectAttrs } from '../protocol/meta-types.js';
import { declaredLength, payload, type BodyResult } from './chunked.js';
import { digester, type Digester } from './hash-pool.js';
import { publishObject, readTo, writeObjectBytes, type BodySource } from './data.js';
import { fromMillpond, S3Error } from './errors.js';
import { checkConditions, etagOf, header, httpDate, isoDate, parseRange, requestAttrs, sendEmpty, sendXml, type S3Request } from './http.js';
import { bucketPath, checkBucketName, checkKey, objectPath, parentOf } from './paths.js';
import { decodeComponent } from './sigv4.js';

const EMPTY_MD5 = createHash('md5').digest('hex');

/** NoSuchBucket unless the bucket exists (as a directory). */
export async function requireBucket(fs: FileSystem, bucket: string): Promise<void> {
  checkBucketName(bucket);
  try {
    if ((await fs.stat(bucketPath(bucket))).isDirectory()) return;
  } catch (err) {
    throw fromMillpond(err, 'NoSuchBucket');
  }
  throw new S3Error('NoSuchBucket', 'The specified bucket does not exist');
}

/** NoSuchBucket or NoSuchKey for a lookup of `key` that failed with `err`; other errors mapped. */
async function missingObject(fs: FileSystem, bucket: string, key: string, err: unknown): Promise<never> {
  if (err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) {
    await requireBucket(fs, bucket);
    throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
  }
  throw fromMillpond(err);
}

/** NoSuchKey unless `st` is what `key` may name: a file, or a directory for a key ending in "/". */
function checkKind(st: Stats, key: string): Stats {
  if (st.isDirectory() !== key.endsWith('/')) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
  return st;
}

/** The object's stats; NoSuchKey for a missing key or a directory (unless the key ends in "/"). */
export async function statObject(fs: FileSystem, bucket: string, key: string): Promise<Stats> {
  checkKey(key);
  let st: Stats;
  try {
    st = await fs.stat(objectPath(bucket, key));
  } catch (err) {
    return missingObject(fs, bucket, key, err);
  }
  return checkKind(st, key);
}

/**
 * The object open for reading, with its stats from the same meta call (one round trip, where
 * stat and open were two; and the bytes read are those of the inode the headers describe).
 * The bucket is looked up only when the key is missing, to tell NoSuchBucket from NoSuchKey.
 */
async function openObject(fs: FileSystem, bucket: string, key: string): Promise<{ handle: FileHandle; st: Stats }> {
  checkKey(key);
  let handle: FileHandle;
  try {
    handle = await fs.open(objectPath(bucket, key), 'r');
  } catch (err) {
    return missingObject(fs, bucket, key, err);
  }
  try {
    return { handle, st: checkKind(new Stats(handle.info), key) };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

function objectHeaders(st: Stats): Record<string, string | number> {
  const h: Record<string, string | number> = {
    ETag: st.isDirectory() ? `"${EMPTY_MD5}"` : etagOf(st),
    'Last-Modified': httpDate(st.mtimeMs),
    'Content-Type': st.object?.contentType ?? 'binary/octet-stream',
    'Accept-Ranges': 'bytes',
  };
  for (const [k, v] of Object.entries(st.object?.headers ?? {})) h[k] = v;
  for (const [k, v] of Object.entries(st.object?.meta ?? {})) h[`x-amz-meta-${k}`] = v;
  return h;
}

const OVERRIDES: Record<string, string> = {
  'response-content-type': 'Content-Type',
  'response-content-language': 'Content-Language',
  'response-expires': 'Expires',
  'response-cache-control': 'Cache-Control',
  'response-content-disposition': 'Content-Disposition',
  'response-content-encoding': 'Content-Encoding',
};

export async function getObject(s: S3Request, head: boolean): Promise<void> {
  // HEAD needs only the inode (a stat: a read); GET opens, and the open's inode is the stat.
  let st: Stats;
  let handle: FileHandle | undefined;
  if (head) st = await statObject(s.fs, s.bucket, s.key);
  else ({ st, handle } = await openObject(s.fs, s.bucket, s.key));
  try {
    try {
      checkConditions(s, st);
    } catch (err) {
      if (err instanceof S3Error && err.code === 'NotModified') {
        const h = objectHeaders(st);
        return sendEmpty(s, 304, { ETag: h.ETag!, 'Last-Modified': h['Last-Modified']! });
      }
      throw err;
    }
    const size = st.isDirectory() ? 0 : st.size;
    const partNumber = s.query.get('partNumber');
    const range = partNumber === undefined ? parseRange(header(s, 'range'), size) : undefined;
    const headers = objectHeaders(st);
    for (const [q, name] of Object.entries(OVERRIDES)) {
      const v = s.query.get(q);
      if (v !== undefined) headers[name] = v;
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? size;
    headers['Content-Length'] = end - start;
    if (range) headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
    s.res.writeHead(range ? 206 : 200, headers);
    if (handle && end > start) await readTo(handle, start, end, s.res);
    s.res.end();
  } finally {
    await handle?.close();
  }
}

/**
 * The payload of a PUT-like request, with its declared length checked against `max`: iterated,
 * the socket's pieces; written by writeObjectBytes, shared pieces of the file's chunks.
 */
export function requestBody(s: S3Request, max: number, done: (r: BodyResult) => void): { length: number; body: BodySource } {
  const length = declaredLength(s.req);
  if (length > max) throw new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed object size.', { ProposedSize: String(length), MaxSizeAllowed: String(max) });
  const md5 = header(s, 'content-md5');
  if (md5 !== undefined && !/^[A-Za-z0-9+/]{22}==$/.test(md5)) throw new S3Error('InvalidDigest', 'The Content-MD5 you specified is not valid.');
  const checks = { length, md5Base64: md5, signature: s.signature };
  return {
    length,
    body: {
      [Symbol.asyncIterator]: () => payload(s.req, checks, done),
      pieces: (chunkBytes, position) => payload(s.req, checks, done, { bytes: chunkBytes, firstBytes: chunkBytes - (position % chunkBytes) }),
    },
  };
}

export async function putObject(s: S3Request): Promise<void> {
  checkKey(s.key);
  const attrs = requestAttrs(s);
  let digest: BodyResult | undefined;
  const { length, body } = requestBody(s, s.config.putObjectBytesMax, (r) => { digest = r; });
  checkBucketName(s.bucket);
  const path = objectPath(s.bucket, s.key);
  if (s.key.endsWith('/')) {
    await requireBucket(s.fs, s.bucket);
    if (length !== 0) throw new S3Error('InvalidArgument', 'a key ending in "/" is a directory: its body must be empty');
    for await (const _ of body) { /* checks the (empty) payload's signature */ }
    await s.fs.mkdir(path, { recursive: true }).catch((err: unknown) => { throw fromMillpond(err); });
    return sendEmpty(s, 200, { ETag: `"${EMPTY_MD5}"` });
  }
  try {
    // The bucket is not looked up first (a meta round trip per PUT): publishObject does when
    // the key's directory is missing.
    await publishObject(s.fs, path, async (h) => { await writeObjectBytes(h, body, 0, length); }, () => ({ etag: `"${digest!.md5.toString('hex')}"`, ...attrs }),
      () => requireBucket(s.fs, s.bucket));
  } catch (err) {
    throw fromMillpond(err);
  }
  sendEmpty(s, 200, { ETag: `"${digest!.md5.toString('hex')}"` });
}

/** Removes `path`'s parent directories up to the bucket while they are empty (prefixes vanish with their keys). */
async function pruneParents(fs: FileSystem, bucket: string, path: string): Promise<void> {
  for (let dir = parentOf(path); dir !== bucketPath(bucket) && dir !== '/'; dir = parentOf(dir)) {
    try {
      await fs.rmdir(dir);
    } catch {
      return; // not empty, or gone
    }
  }
}

/** Deletes one key; a missing key is not an error (S3 answers 204 either way). */
export async function deleteKey(fs: FileSystem, bucket: string, key: string): Promise<void> {
  checkKey(key);
  const path = objectPath(bucket, key);
  try {
    if (key.endsWith('/')) await fs.rmdir(path);
    else {
      if ((await fs.stat(path)).isDirectory()) return;
      await fs.unlink(path);
    }
  } catch (err) {
    if (err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'ENOTDIR' || err.code === 'ENOTEMPTY')) return;
    throw fromMillpond(err);
  }
  await pruneParents(fs, bucket, path);
}

export async function deleteObject(s: S3Request): Promise<void> {
  await requireBucket(s.fs, s.bucket);
  await deleteKey(s.fs, s.bucket, s.key);
  sendEmpty(s, 204);
}

/** x-amz-copy-source: "[/]bucket/key[?versionId=...]", URL-encoded. */
export function parseCopySource(value: string): { bucket: string; key: string } {
  const raw = value.split('?')[0]!;
  const decoded = decodeComponent(raw.startsWith('/') ? raw.slice(1) : raw);
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey');
  const bucket = decoded.slice(0, slash);
  const key = decoded.slice(slash + 1);
  checkBucketName(bucket);
  checkKey(key);
  return { bucket, key };
}

/**
 * readPieces, with every piece given to `md5` (a digester: on the hash workers past one batch,
 * so a copy's MD5 does not run on the event loop) before it is passed on.
 */
export async function* md5Pieces(fs: FileSystem, path: string, start: number, end: number, md5: Digester): AsyncGenerator<Buffer> {
  for await (const piece of readPieces(fs, path, start, end)) {
    await md5.update(piece);
    yield piece;
  }
}

/** Reads [start, end) of an object as a stream of chunk-sized pieces. */
export async function* readPieces(fs: FileSystem, path: string, start: number, end: number): AsyncGenerator<Buffer> {
  const handle = await fs.open(path, 'r');
  try {
    const step = handle.info.layout.chunkSizeBytes;
    let next: Promise<Buffer> | undefined;
    for (let at = start; at < end;) {
      const n = Math.min(step - (at % step), end - at);
      const current = next ?? handle.readAt(at, n);
      at += n;
      next = at < end ? handle.readAt(at, Math.min(step - (at % step), end - at)) : undefined;
      yield await current;
    }
  } finally {
    await handle.close();
  }
}

export async function copyObject(s: S3Request): Promise<void> {
  checkKey(s.key);
  const source = parseCopySource(header(s, 'x-amz-copy-source')!);
  const st = await statObject(s.fs, source.bucket, source.key);
  checkConditions(s, st, true);
  await requireBucket(s.fs, s.bucket);
  const directive = (header(s, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase();
  if (directive !== 'COPY' && directive !== 'REPLACE') throw new S3Error('InvalidArgument', 'Unknown metadata directive.');
  if (directive === 'COPY' && source.bucket === s.bucket && source.key === s.key) {
    throw new S3Error('InvalidRequest', 'This copy request is illegal because it is trying to copy an object to itself without changing the object\'s metadata, storage class, website redirect location or encryption attributes.');
  }
  for await (const _ of requestBody(s, 0, () => {}).body) { /* a copy has no body: check its (empty) payload */ }
  const kept: Omit<ObjectAttrs, 'etag'> = directive === 'REPLACE' ? requestAttrs(s) : {
    ...(st.object?.contentType ? { contentType: st.object.contentType } : {}),
    ...(st.object?.headers ? { headers: st.object.headers } : {}),
    ...(st.object?.meta ? { meta: st.object.meta } : {}),
  };
  const md5 = digester(['md5'], st.size);
  let etag = '';
  let inode;
  try {
    inode = await publishObject(s.fs, objectPath(s.bucket, s.key), async (h) => {
      await writeObjectBytes(h, md5Pieces(s.fs, objectPath(source.bucket, source.key), 0, st.size, md5), 0, st.size);
      etag = `"${(await md5.digest()).md5!.toString('hex')}"`;
    }, () => ({ etag, ...kept }));
  } catch (err) {
    throw fromMillpond(err);
  } finally {
    md5.drop();
  }
  sendXml(s, 200, 'CopyObjectResult', { LastModified: isoDate(inode.mtimeMs), ETag: etag });
}
