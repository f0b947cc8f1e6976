/** The HTTP side of multipart uploads (multipart.ts keeps the uploads). */
import { S3Error, fromMillpond } from './errors.js';
import { header, isoDate, readXml, requestAttrs, sendEmpty, sendXml, type S3Request } from './http.js';
import { abortUpload, completeUpload, createUpload, listParts, listUploads, readUpload, uploadPart } from './multipart.js';
import { md5Pieces, parseCopySource, requestBody, requireBucket, statObject } from './object-ops.js';
import { digester } from './hash-pool.js';
import { checkKey, objectPath } from './paths.js';
import { checkConditions, parseRange } from './http.js';
import type { BodyResult } from './chunked.js';
import { s3Limits } from '../limits.js';

function partNumberOf(s: S3Request): number {
  const n = Number(s.query.get('partNumber'));
  if (!Number.isInteger(n) || n < 1 || n > s3Limits.partNumberMax) throw new S3Error('InvalidArgument', `Part number must be an integer between 1 and ${s3Limits.partNumberMax}, inclusive`);
  return n;
}

export async function createMultipartUpload(s: S3Request): Promise<void> {
  checkKey(s.key);
  if (s.key.endsWith('/')) throw new S3Error('InvalidArgument', 'a key ending in "/" is a directory');
  await requireBucket(s.fs, s.bucket);
  const id = await createUpload(s.fs, objectPath(s.bucket, s.key), { bucket: s.bucket, key: s.key, initiatedMs: Date.now(), uid: s.user.uid, ...requestAttrs(s) }).catch((err: unknown) => { throw fromMillpond(err); });
  sendXml(s, 200, 'InitiateMultipartUploadResult', { Bucket: s.bucket, Key: s.key, UploadId: id });
}

export async function uploadPartHandler(s: S3Request): Promise<void> {
  const partNumber = partNumberOf(s);
  const uploadId = s.query.get('uploadId')!;
  const copySource = header(s, 'x-amz-copy-source');
  let digest: BodyResult | undefined;
  if (copySource === undefined) {
    const { length, body } = requestBody(s, s.config.partBytesMax, (r) => { digest = r; });
    const info = await readUpload(s.fs, uploadId, s.bucket, s.key);
    const record = await uploadPart(s.fs, uploadId, info, partNumber, length, body, () => digest!.md5).catch((err: unknown) => { throw fromMillpond(err, 'NoSuchUpload'); });
    return sendEmpty(s, 200, { ETag: record.etag });
  }
  // UploadPartCopy: the part's bytes are a range of another object.
  const source = parseCopySource(copySource);
  const st = await statObject(s.fs, source.bucket, source.key);
  checkConditions(s, st, true);
  const rangeHeader = header(s, 'x-amz-copy-source-range');
  const range = rangeHeader === undefined ? { start: 0, end: st.size } : parseRange(rangeHeader, st.size);
  if (!range) throw new S3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy');
  const length = range.end - range.start;
  if (length > s.config.partBytesMax) throw new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed object size.');
  for await (const _ of requestBody(s, 0, () => {}).body) { /* no body: check its (empty) payload */ }
  const info = await readUpload(s.fs, uploadId, s.bucket, s.key);
  // The part's MD5 on the hash workers (past one batch), not the event loop.
  const md5 = digester(['md5'], length);
  let partMd5: Buffer | undefined;
  async function* hashed() {
    yield* md5Pieces(s.fs, objectPath(source.bucket, source.key), range!.start, range!.end, md5);
    partMd5 = (await md5.digest()).md5!; // before the writer sees the end of the source
  }
  const record = await uploadPart(s.fs, uploadId, info, partNumber, length, hashed(), () => partMd5!)
    .catch((err: unknown) => { throw fromMillpond(err, 'NoSuchUpload'); })
    .finally(() => md5.drop());
  sendXml(s, 200, 'CopyPartResult', { LastModified: isoDate(record.lastModifiedMs), ETag: record.etag });
}

export async function completeMultipartUpload(s: S3Request): Promise<void> {
  const uploadId = s.query.get('uploadId')!;
  const info = await readUpload(s.fs, uploadId, s.bucket, s.key);
  const doc = (await readXml(s, 'CompleteMultipartUpload'))!;
  const parts = ((doc.Part as Array<Record<string, unknown>> | undefined) ?? []).map((p) => {
    const partNumber = Number(p.PartNumber);
    if (!Number.isInteger(partNumber) || typeof p.ETag !== 'string') throw new S3Error('MalformedXML', 'every Part needs a PartNumber and an ETag');
    return { partNumber, etag: p.ETag };
  });
  await requireBucket(s.fs, s.bucket);
  const inode = await completeUpload(s.fs, uploadId, info, parts, objectPath(s.bucket, s.key)).catch((err: unknown) => { throw fromMillpond(err, 'NoSuchUpload'); });
  sendXml(s, 200, 'CompleteMultipartUploadResult', { Location: `/${s.bucket}/${s.key}`, Bucket: s.bucket, Key: s.key, ETag: inode.object!.etag });
}

export async function abortMultipartUpload(s: S3Request): Promise<void> {
  const uploadId = s.query.get('uploadId')!;
  const info = await readUpload(s.fs, uploadId, s.bucket, s.key);
  await abortUpload(s.fs, uploadId, info).catch((err: unknown) => { throw fromMillpond(err, 'NoSuchUpload'); });
  sendEmpty(s, 204);
}

export async function listPartsHandler(s: S3Request): Promise<void> {
  const uploadId = s.query.get('uploadId')!;
  const info = await readUpload(s.fs, uploadId, s.bucket, s.key);
  const marker = Number(s.query.get('part-number-marker') ?? 0) || 0;
  const max = Math.min(Number(s.query.get('max-parts') ?? 1000) || 1000, 1000);
  const { parts, truncated } = await listParts(s.fs, uploadId, marker, max);
  const who = { ID: String(info.uid), DisplayName: `uid ${info.uid}` };
  sendXml(s, 200, 'ListPartsResult', {
    Bucket: s.bucket, Key: s.key, UploadId: uploadId, Initiator: who, Owner: who, StorageClass: 'STANDARD',
    PartNumberMarker: marker, ...(truncated ? { NextPartNumberMarker: parts.at(-1)!.partNumber } : {}), MaxParts: max, IsTruncated: truncated,
    Part: parts.map((p) => ({ PartNumber: p.partNumber, LastModified: isoDate(p.lastModifiedMs), ETag: p.etag, Size: p.size })),
  });
}

export async function listMultipartUploads(s: S3Request): Promise<void> {
  await requireBucket(s.fs, s.bucket);
  const prefix = s.query.get('prefix') ?? '';
  const max = Math.min(Number(s.query.get('max-uploads') ?? 1000) || 1000, 1000);
  const keyMarker = s.query.get('key-marker') ?? '';
  const uploads = (await listUploads(s.fs, s.bucket, prefix)).filter((u) => u.key > keyMarker);
  const shown = uploads.slice(0, max);
  sendXml(s, 200, 'ListMultipartUploadsResult', {
    Bucket: s.bucket, KeyMarker: keyMarker, UploadIdMarker: '', Prefix: prefix, MaxUploads: max,
    IsTruncated: uploads.length > max,
    ...(uploads.length > max ? { NextKeyMarker: shown.at(-1)!.key, NextUploadIdMarker: shown.at(-1)!.uploadId } : {}),
    Upload: shown.map((u) => ({
      Key: u.key, UploadId: u.uploadId, Initiator: { ID: String(u.uid), DisplayName: `uid ${u.uid}` },
      Owner: { ID: String(u.uid), DisplayName: `uid ${u.uid}` }, StorageClass: 'STANDARD', Initiated: isoDate(u.initiatedMs),
    })),
  });
}
