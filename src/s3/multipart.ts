/**
 * Multipart uploads. An upload is the directory /.s3/uploads/<uploadId>, owned by its
 * initiator (0700):
 *   info       JSON: bucket, key, initiatedMs, the object's Content-Type, headers, metadata
 *   data       the object being assembled: parts of the upload's stride size are written
 *              here at their final offsets, (partNumber - 1) * stride
 *   stride     an empty file whose length is the stride: the size of the first part of at
 *              least s3Limits.partBytesMin to arrive (clients send equal parts but the last)
 *   part-N     a part of another size (usually the last), in a file of its own
 *   p-N        JSON record of part N: size, etag, where it is, when
 * Complete: when parts 1..k are listed and all but the last sit in `data`, the object is
 * `data` itself: the last part is copied in if it is elsewhere (at most one part's bytes),
 * the file is cut to the object's length and renamed into place, so no other byte moves.
 * Any other list (gaps in numbers, parts of mixed sizes) is assembled by copying into a new
 * file. Either way the object appears by one rename: whole or not at all.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mapLimited } from '../concurrency.js';
import { MillpondError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/file-system.js';
import { s3Limits } from '../limits.js';
import type { Inode, ObjectAttrs } from '../protocol/meta-types.js';
import { S3Error } from './errors.js';
import { renameInto, tempNameBeside, writeObjectBytes, type BodySource } from './data.js';
import { parentOf, UPLOADS_DIR } from './paths.js';

export interface UploadInfo {
  bucket: string;
  key: string;
  /** The object being assembled: a hidden file beside the key's path (its directory's layout). */
  dataPath: string;
  initiatedMs: number;
  uid: number;
  contentType?: string;
  headers?: Record<string, string>;
  meta?: Record<string, string>;
}

export interface PartRecord {
  partNumber: number;
  size: number;
  /** Quoted MD5 hex. */
  etag: string;
  inData: boolean;
  lastModifiedMs: number;
}

const UPLOAD_ID_RE = /^[0-9a-f]{32}$/;

const uploadDir = (id: string) => `${UPLOADS_DIR}/${id}`;
const partName = (n: number) => `p-${String(n).padStart(5, '0')}`;

function isMissing(err: unknown): boolean {
  return err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'ENOTDIR');
}

export async function createUpload(fs: FileSystem, path: string, fields: Omit<UploadInfo, 'dataPath'>): Promise<string> {
  const id = randomBytes(16).toString('hex');
  const dir = uploadDir(id);
  const info: UploadInfo = { ...fields, dataPath: tempNameBeside(path, 'up', id) };
  await fs.mkdir(parentOf(path), { recursive: true });
  await fs.writeFile(info.dataPath, Buffer.alloc(0), { flag: 'wx' });
  await fs.mkdir(dir, { mode: 0o700 });
  await fs.writeFile(`${dir}/info`, JSON.stringify(info), { flag: 'wx' });
  return id;
}

/** The upload's info, checked against the bucket and key of the request; NoSuchUpload otherwise. */
export async function readUpload(fs: FileSystem, id: string, bucket: string, key: string): Promise<UploadInfo> {
  if (!UPLOAD_ID_RE.test(id)) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.');
  let info: UploadInfo;
  try {
    info = JSON.parse(await fs.readFile(`${uploadDir(id)}/info`, 'utf8')) as UploadInfo;
  } catch (err) {
    if (isMissing(err)) throw new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
    throw err;
  }
  if (info.bucket !== bucket || info.key !== key) throw new S3Error('NoSuchUpload', 'The specified upload is for another key.');
  return info;
}

/**
 * The stride of an upload, setting it to `size` if none is set and `size` may be one. The
 * marker is made whole under a temporary name and then linked: link() fails with EEXIST when
 * another part set it first, and then the marker read is already whole.
 */
async function strideOf(fs: FileSystem, dir: string, size: number): Promise<number> {
  const path = `${dir}/stride`;
  try {
    return (await fs.stat(path)).size;
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  if (size < s3Limits.partBytesMin) return 0;
  const temp = `${dir}/stride.${randomBytes(8).toString('hex')}`;
  await fs.writeFile(temp, Buffer.alloc(0), { flag: 'wx' });
  try {
    await fs.truncate(temp, size); // a length without bytes: the marker holds no data
    await fs.link(temp, path);
    return size;
  } catch (err) {
    if (!(err instanceof MillpondError && err.code === 'EEXIST')) throw err;
    return (await fs.stat(path)).size;
  } finally {
    await fs.unlink(temp).catch(() => {});
  }
}

/** Writes one part from `source` (size known up front), records it and returns its record. */
export async function uploadPart(fs: FileSystem, id: string, info: UploadInfo, partNumber: number, size: number, source: BodySource, md5: () => Buffer): Promise<PartRecord> {
  const dir = uploadDir(id);
  const stride = await strideOf(fs, dir, size);
  const inData = stride > 0 && size === stride;
  const target = inData ? info.dataPath : `${dir}/part-${partNumber}.${randomBytes(4).toString('hex')}`;
  const handle = await fs.open(target, inData ? 'r+' : 'wx');
  try {
    await writeObjectBytes(handle, source, inData ? (partNumber - 1) * stride : 0, size);
  } finally {
    await handle.close();
  }
  const record: PartRecord = { partNumber, size, etag: `"${md5().toString('hex')}"`, inData, lastModifiedMs: Date.now() };
  const previous = await readPart(fs, dir, partNumber).catch(() => undefined);
  if (!inData) await renameInto(fs, target, `${dir}/part-${partNumber}`);
  const temp = `${dir}/${partName(partNumber)}.${randomBytes(4).toString('hex')}`;
  await fs.writeFile(temp, JSON.stringify(record), { flag: 'wx' });
  await fs.rename(temp, `${dir}/${partName(partNumber)}`);
  if (previous && !previous.inData && inData) await fs.unlink(`${dir}/part-${partNumber}`).catch(() => {});
  return record;
}

async function readPart(fs: FileSystem, dir: string, n: number): Promise<PartRecord | undefined> {
  try {
    return JSON.parse(await fs.readFile(`${dir}/${partName(n)}`, 'utf8')) as PartRecord;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** The upload's parts in number order, after `marker`, at most `max`. */
export async function listParts(fs: FileSystem, id: string, marker: number, max: number): Promise<{ parts: PartRecord[]; truncated: boolean }> {
  const dir = uploadDir(id);
  const names = (await fs.readdir(dir)).filter((n) => /^p-\d{5}$/.test(n)).map((n) => Number(n.slice(2))).filter((n) => n > marker).sort((a, b) => a - b);
  const parts: PartRecord[] = [];
  for (const n of names.slice(0, max)) {
    const p = await readPart(fs, dir, n);
    if (p) parts.push(p);
  }
  return { parts, truncated: names.length > max };
}

/** Where part `p`'s bytes are: the file and offset. */
function partSource(dir: string, info: UploadInfo, p: PartRecord, stride: number): { path: string; at: number } {
  return p.inData ? { path: info.dataPath, at: (p.partNumber - 1) * stride } : { path: `${dir}/part-${p.partNumber}`, at: 0 };
}

async function copyRange(fs: FileSystem, from: { path: string; at: number }, length: number, to: FileHandle, toAt: number): Promise<void> {
  const src = await fs.open(from.path, 'r');
  try {
    const step = to.info.layout.chunkSizeBytes;
    async function* pieces() {
      for (let done = 0; done < length;) {
        const n = Math.min(step - ((toAt + done) % step), length - done);
        yield await src.readAt(from.at + done, n);
        done += n;
      }
    }
    await writeObjectBytes(to, pieces(), toAt, length);
  } finally {
    await src.close();
  }
}

/**
 * Completes the upload with `listed` (partNumber, etag) pairs: checks them, assembles the
 * object at `path` and removes the upload. Returns the object's inode.
 */
export async function completeUpload(fs: FileSystem, id: string, info: UploadInfo, listed: Array<{ partNumber: number; etag: string }>, path: string): Promise<Inode> {
  const dir = uploadDir(id);
  if (listed.length === 0) throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema (no parts)');
  const parts: PartRecord[] = [];
  for (let i = 0; i < listed.length; i++) {
    const { partNumber, etag } = listed[i]!;
    if (i > 0 && partNumber <= listed[i - 1]!.partNumber) throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.');
    const p = await readPart(fs, dir, partNumber);
    const bare = (s: string) => s.replace(/^"|"$/g, '');
    if (!p || bare(p.etag) !== bare(etag)) throw new S3Error('InvalidPart', `One or more of the specified parts could not be found (part ${partNumber}).`);
    if (i < listed.length - 1 && p.size < s3Limits.partBytesMin) throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.');
    parts.push(p);
  }
  const stride = parts.some((p) => p.inData) ? (await fs.stat(`${dir}/stride`)).size : 0;
  const total = parts.reduce((n, p) => n + p.size, 0);
  const md5s = createHash('md5');
  for (const p of parts) md5s.update(Buffer.from(p.etag.replace(/"/g, ''), 'hex'));
  const object: ObjectAttrs = {
    etag: `"${md5s.digest('hex')}-${parts.length}"`,
    ...(info.contentType ? { contentType: info.contentType } : {}),
    ...(info.headers ? { headers: info.headers } : {}),
    ...(info.meta ? { meta: info.meta } : {}),
  };
  const inPlace = parts.every((p, i) => p.partNumber === i + 1 && (p.inData || i === parts.length - 1));
  let assembled: string;
  if (inPlace) {
    assembled = info.dataPath;
    const last = parts[parts.length - 1]!;
    await fs.truncate(assembled, total); // drops parts past the object (numbers beyond the list)
    const handle = await fs.open(assembled, 'r+');
    try {
      if (!last.inData) await copyRange(fs, partSource(dir, info, last, stride), last.size, handle, (last.partNumber - 1) * stride);
    } finally {
      await handle.close({ object });
    }
  } else {
    assembled = tempNameBeside(path, 'tmp');
    const handle = await fs.open(assembled, 'w');
    try {
      let at = 0;
      for (const p of parts) {
        await copyRange(fs, partSource(dir, info, p, stride), p.size, handle, at);
        at += p.size;
      }
    } finally {
      await handle.close({ object });
    }
  }
  await renameInto(fs, assembled, path);
  const inode = await fs.stat(path);
  await fs.rm(dir, { recursive: true }).catch(() => {});
  if (!inPlace) await fs.unlink(info.dataPath).catch(() => {});
  return { id: inode.ino, length: inode.size, mtimeMs: inode.mtimeMs, object } as Inode;
}

export async function abortUpload(fs: FileSystem, id: string, info: UploadInfo): Promise<void> {
  await fs.unlink(info.dataPath).catch(() => {});
  await fs.rm(uploadDir(id), { recursive: true });
}

/** Uploads of `bucket` (by key, then initiation), for ListMultipartUploads. */
export async function listUploads(fs: FileSystem, bucket: string, prefix: string): Promise<Array<UploadInfo & { uploadId: string }>> {
  // The first uploadsListedMax ids, read a page at a time: the directory may hold many more.
  const ids: string[] = [];
  try {
    for await (const e of fs.dirEntries(UPLOADS_DIR)) {
      if (!UPLOAD_ID_RE.test(e.name)) continue;
      if (ids.length === s3Limits.uploadsListedMax) break;
      ids.push(e.name);
    }
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
  const found: Array<UploadInfo & { uploadId: string }> = [];
  await mapLimited(ids, s3Limits.uploadInfoReadsInFlight, async (uploadId) => {
    try {
      const info = JSON.parse(await fs.readFile(`${uploadDir(uploadId)}/info`, 'utf8')) as UploadInfo;
      if (info.bucket === bucket && info.key.startsWith(prefix)) found.push({ ...info, uploadId });
    } catch {
      // another user's upload (0700), or one being removed
    }
  });
  return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiatedMs - b.initiatedMs));
}

/**
 * Removes uploads older than `expiryMs` (by their directory's ctime) among the next
 * `uploadsMax` after `after` (an upload id; undefined: from the first). Returns
 * how many it removed and where the next sweep goes on (undefined: it reached the end), so
 * sweeps cover every upload however many there are.
 */
export async function sweepUploads(fs: FileSystem, expiryMs: number, nowMs = Date.now(), after?: string,
  uploadsMax: number = s3Limits.uploadsListedMax): Promise<{ removed: number; next?: string }> {
  let removed = 0;
  let looked = 0;
  try {
    for await (const e of fs.dirEntries(UPLOADS_DIR, { after, plus: true })) {
      if (looked++ === uploadsMax) return { removed, next: after };
      after = e.name;
      try {
        const st = e.stats ?? await fs.stat(uploadDir(e.name));
        if (nowMs - st.ctimeMs < expiryMs) continue;
        const info = JSON.parse(await fs.readFile(`${uploadDir(e.name)}/info`, 'utf8').catch(() => '{}')) as Partial<UploadInfo>;
        if (typeof info.dataPath === 'string') await fs.unlink(info.dataPath).catch(() => {});
        await fs.rm(uploadDir(e.name), { recursive: true });
        removed++;
      } catch {
        // completed or aborted meanwhile
      }
    }
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  return { removed };
}
