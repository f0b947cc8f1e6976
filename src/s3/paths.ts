/**
 * Buckets are top-level directories and keys are paths under them (design §12): key
 * "a/b/c.parquet" of bucket "data" is the file /data/a/b/c.parquet. A key ending in "/" names
 * a directory (the zero-byte "folder" objects consoles make). The gateway's own records live
 * in /.s3 (a name no bucket can have): multipart uploads in /.s3/uploads. Bytes being written
 * (a PUT's, an upload's) are in hidden files beside their key (data.ts), so they have the
 * layout of their directory and the final rename stays inside it.
 */
import { metaLimits, s3Limits } from '../limits.js';
import { S3Error } from './errors.js';

export const GATEWAY_DIR = '/.s3';
export const UPLOADS_DIR = '/.s3/uploads';

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function isBucketName(name: string): boolean {
  return BUCKET_RE.test(name) && !name.includes('..') && !name.includes('.-') && !name.includes('-.')
    && !/^\d+\.\d+\.\d+\.\d+$/.test(name) && !name.startsWith('xn--') && !name.endsWith('-s3alias');
}

export function checkBucketName(name: string): void {
  if (!isBucketName(name)) throw new S3Error('InvalidBucketName', `The specified bucket is not valid: ${JSON.stringify(name.slice(0, 80))}`, { BucketName: name.slice(0, 80) });
}

/** Keys a filesystem can hold: no empty, "." or ".." segment, no NUL, bounded lengths. */
export function checkKey(key: string): void {
  if (key === '') throw new S3Error('InvalidArgument', 'the key is empty');
  if (Buffer.byteLength(key) > s3Limits.keyBytesMax) throw new S3Error('KeyTooLongError', `Your key is too long (over ${s3Limits.keyBytesMax} bytes)`);
  const segments = (key.endsWith('/') ? key.slice(0, -1) : key).split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || s.includes('\0')) {
      throw new S3Error('InvalidArgument', `millpond keys are paths: no empty, "." or ".." segment (${JSON.stringify(key.slice(0, 80))})`);
    }
    if (Buffer.byteLength(s) > metaLimits.nameBytesMax) throw new S3Error('KeyTooLongError', `a key segment is over ${metaLimits.nameBytesMax} bytes`);
  }
}

export function bucketPath(bucket: string): string {
  return `/${bucket}`;
}

/** REQUIRES: checkKey(key) passed. A directory key's trailing "/" is dropped. */
export function objectPath(bucket: string, key: string): string {
  return `/${bucket}/${key.endsWith('/') ? key.slice(0, -1) : key}`;
}

export function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}
