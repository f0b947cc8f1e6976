/** ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation, ListObjects (v1, v2), DeleteObjects. */
import { mapLimited } from '../concurrency.js';
import { MillpondError } from '../errors.js';
import type { Stats } from '../fs/stats.js';
import { s3Limits } from '../limits.js';
import { fromMillpond, S3Error } from './errors.js';
import { etagOf, isoDate, readXml, sendEmpty, sendXml, type S3Request } from './http.js';
import { listKeys, type Listed } from './listing.js';
import { deleteKey, requireBucket } from './object-ops.js';
import { bucketPath, checkBucketName, isBucketName, objectPath } from './paths.js';
import { uriEscape } from './sigv4.js';

const owner = (s: S3Request) => ({ ID: String(s.user.uid), DisplayName: `uid ${s.user.uid}` });

export async function listBuckets(s: S3Request): Promise<void> {
  const entries = await s.fs.readdir('/', { withFileTypes: true });
  const buckets = entries.filter((e) => e.isDirectory() && isBucketName(e.name));
  const stats = await Promise.all(buckets.map((b) => s.fs.stat(bucketPath(b.name)).catch(() => undefined)));
  sendXml(s, 200, 'ListAllMyBucketsResult', {
    Owner: owner(s),
    Buckets: { Bucket: buckets.map((b, i) => ({ Name: b.name, CreationDate: isoDate(stats[i]?.ctimeMs ?? 0) })) },
  });
}

export async function createBucket(s: S3Request): Promise<void> {
  checkBucketName(s.bucket);
  await readXml(s, 'CreateBucketConfiguration', true); // a LocationConstraint: every region is this one
  try {
    await s.fs.mkdir(bucketPath(s.bucket), { mode: 0o755 });
  } catch (err) {
    if (err instanceof MillpondError && err.code === 'EEXIST') {
      const st = await s.fs.stat(bucketPath(s.bucket));
      if (st.isDirectory() && st.uid === s.user.uid) throw new S3Error('BucketAlreadyOwnedByYou', 'Your previous request to create the named bucket succeeded and you already own it.', { BucketName: s.bucket });
      throw new S3Error('BucketAlreadyExists', 'The requested bucket name is not available.', { BucketName: s.bucket });
    }
    throw fromMillpond(err);
  }
  sendEmpty(s, 200, { Location: `/${s.bucket}` });
}

export async function deleteBucket(s: S3Request): Promise<void> {
  await requireBucket(s.fs, s.bucket);
  try {
    await s.fs.rmdir(bucketPath(s.bucket));
  } catch (err) {
    if (err instanceof MillpondError && err.code === 'ENOTEMPTY') throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty', { BucketName: s.bucket });
    throw fromMillpond(err, 'NoSuchBucket');
  }
  sendEmpty(s, 204);
}

export async function headBucket(s: S3Request): Promise<void> {
  await requireBucket(s.fs, s.bucket);
  sendEmpty(s, 200, { 'x-amz-bucket-region': s.config.region });
}

/** Versioning is never on: an empty configuration, as S3 answers for a bucket that never had it. */
export async function getVersioning(s: S3Request): Promise<void> {
  await requireBucket(s.fs, s.bucket);
  sendXml(s, 200, 'VersioningConfiguration', {});
}

export async function getBucketLocation(s: S3Request): Promise<void> {
  await requireBucket(s.fs, s.bucket);
  sendXml(s, 200, 'LocationConstraint', { '#text': s.config.region === 'us-east-1' ? '' : s.config.region });
}

/** Runs `work` over items, `limit` at a time, keeping their order. */
export async function listObjects(s: S3Request): Promise<void> {
  await requireBucket(s.fs, s.bucket);
  const v2 = s.query.get('list-type') === '2';
  const prefix = s.query.get('prefix') ?? '';
  const delimiter = s.query.get('delimiter') ?? '';
  const encodingType = s.query.get('encoding-type');
  if (encodingType !== undefined && encodingType !== 'url') throw new S3Error('InvalidArgument', 'Invalid Encoding Method specified in Request');
  const maxKeysRaw = s.query.get('max-keys');
  const maxKeys = maxKeysRaw === undefined ? s3Limits.listKeysMax : Number(maxKeysRaw);
  if (!/^\d+$/.test(maxKeysRaw ?? '0') || !Number.isSafeInteger(maxKeys)) throw new S3Error('InvalidArgument', 'Provided max-keys not an integer or within integer range');
  const limit = Math.min(maxKeys, s3Limits.listKeysMax);
  let marker: string;
  const token = s.query.get('continuation-token');
  if (v2) {
    if (token !== undefined) {
      marker = Buffer.from(token, 'base64url').toString('utf8');
      if (token === '' || Buffer.from(marker).toString('base64url') !== token) throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect');
    } else marker = s.query.get('start-after') ?? '';
  } else marker = s.query.get('marker') ?? '';

  const items: Listed[] = [];
  let truncated = false;
  if (limit > 0) {
    for await (const item of listKeys(s.fs, bucketPath(s.bucket), prefix, delimiter, marker)) {
      if (items.length === limit) {
        truncated = true;
        break;
      }
      items.push(item);
    }
  }
  const listed = items.filter((i): i is { key: string; stats?: Stats } => 'key' in i);
  const keys = listed.map((i) => i.key);
  // The listing read each key's stats with its name where it could (readdir plus); the rest
  // (a directory the caller may read but not search) are stat'ed, and skipped if gone.
  const stats = await mapLimited(listed, s3Limits.listStatsInFlight, async (i) => i.stats ?? s.fs.stat(objectPath(s.bucket, i.key)).catch(() => undefined as Stats | undefined));
  const enc = (v: string) => (encodingType === 'url' ? uriEscape(v).replace(/%2F/g, '/') : v);
  const contents = keys.map((key, i) => ({ key, st: stats[i] })).filter((c) => c.st).map(({ key, st }) => ({
    Key: enc(key),
    LastModified: isoDate(st!.mtimeMs),
    ETag: etagOf(st!),
    Size: st!.size,
    StorageClass: 'STANDARD',
    ...(!v2 || s.query.get('fetch-owner') === 'true' ? { Owner: { ID: String(st!.uid), DisplayName: `uid ${st!.uid}` } } : {}),
  }));
  const prefixes = items.filter((i): i is { prefix: string } => 'prefix' in i).map((i) => ({ Prefix: enc(i.prefix) }));
  const last = items.at(-1);
  const lastName = last ? ('key' in last ? last.key : last.prefix) : '';
  const common = {
    Name: s.bucket,
    Prefix: enc(prefix),
    ...(delimiter ? { Delimiter: enc(delimiter) } : {}),
    MaxKeys: maxKeys,
    ...(encodingType ? { EncodingType: encodingType } : {}),
    IsTruncated: truncated,
  };
  if (v2) {
    sendXml(s, 200, 'ListBucketResult', {
      ...common,
      KeyCount: items.length,
      ...(token !== undefined ? { ContinuationToken: token } : {}),
      ...(truncated ? { NextContinuationToken: Buffer.from(lastName).toString('base64url') } : {}),
      ...(s.query.has('start-after') ? { StartAfter: enc(s.query.get('start-after')!) } : {}),
      Contents: contents,
      CommonPrefixes: prefixes,
    });
  } else {
    sendXml(s, 200, 'ListBucketResult', {
      ...common,
      Marker: enc(marker),
      ...(truncated ? { NextMarker: enc(lastName) } : {}),
      Contents: contents,
      CommonPrefixes: prefixes,
    });
  }
}

export async function deleteObjects(s: S3Request): Promise<void> {
  await requireBucket(s.fs, s.bucket);
  const doc = (await readXml(s, 'Delete'))!;
  const objects = (doc.Object as Array<Record<string, unknown>> | undefined) ?? [];
  if (objects.length === 0 || objects.length > s3Limits.deleteObjectsKeysMax) throw new S3Error('MalformedXML', `Delete needs 1 to ${s3Limits.deleteObjectsKeysMax} objects`);
  const quiet = String(doc.Quiet ?? 'false').trim() === 'true';
  // Every key is checked before any is deleted: a malformed request deletes nothing.
  const keys = objects.map((o) => {
    if (typeof o.Key !== 'string') throw new S3Error('MalformedXML', 'every Object needs a Key');
    return o.Key;
  });
  // Deletes in flight together share meta's transactions (one commit for those of a turn).
  const outcomes = await mapLimited(keys, s3Limits.deleteObjectsInFlight, (key) => deleteKey(s.fs, s.bucket, key).then(() => undefined, (err: unknown) => fromMillpond(err)));
  const deleted = quiet ? [] : keys.filter((_, i) => outcomes[i] === undefined).map((key) => ({ Key: key }));
  const errors = keys.flatMap((key, i) => (outcomes[i] ? [{ Key: key, Code: outcomes[i].code, Message: outcomes[i].message }] : []));
  sendXml(s, 200, 'DeleteResult', { Deleted: deleted, Error: errors });
}
