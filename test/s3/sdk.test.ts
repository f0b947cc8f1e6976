// The S3 gateway through the AWS SDK for JavaScript (@aws-sdk/client-s3) against a real
// embedded cluster: every operation, its errors, presigned URLs, and objects as files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { Agent } from 'node:http';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, CreateMultipartUploadCommand,
  DeleteBucketCommand, DeleteObjectCommand, DeleteObjectsCommand, GetBucketLocationCommand, GetObjectCommand, HeadBucketCommand,
  HeadObjectCommand, ListBucketsCommand, ListMultipartUploadsCommand, ListObjectsCommand, ListObjectsV2Command, ListPartsCommand,
  PutObjectCommand, S3Client, S3ServiceException, UploadPartCommand, UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { MillpondError } from '../../src/errors.js';
import { sweepUploads } from '../../src/s3/multipart.js';
import { chunkedPut, send, signedRequest } from './raw.js';
import { pattern, startS3, type S3Setup } from './support.js';

const MiB = 1 << 20;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** The S3 error code a call failed with (and the HTTP status), or 'ok'. */
async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof S3ServiceException) return `${err.name} ${err.$metadata.httpStatusCode}`;
    throw err;
  }
}

async function body(out: { Body?: unknown }): Promise<Buffer> {
  return Buffer.from(await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
}

async function exists(s: S3Setup, path: string): Promise<boolean> {
  try {
    await s.fs.stat(path);
    return true;
  } catch (err) {
    if (err instanceof MillpondError && err.code === 'ENOENT') return false;
    throw err;
  }
}

describe('S3 gateway with the AWS SDK', () => {
  let s: S3Setup;
  let c: S3Client;

  beforeAll(async () => {
    s = await startS3({ partBytesMax: 12 * MiB, putObjectBytesMax: 24 * MiB, accessKeyCacheMs: 1000 });
    c = s.client();
    await c.send(new CreateBucketCommand({ Bucket: 'data' }));
    // 1 MiB chunks: objects of a few MiB span several chunks.
    await s.fs.setLayout('/data', { chunkSizeBytes: MiB });
  }, 60_000);

  afterAll(async () => { await s?.stop(); });

  it('creates, lists, heads, locates and deletes buckets', async () => {
    await c.send(new CreateBucketCommand({ Bucket: 'tmp.bucket-1' }));
    expect((await s.fs.stat('/tmp.bucket-1')).isDirectory()).toBe(true);
    const list = await c.send(new ListBucketsCommand({}));
    expect(list.Buckets!.map((b) => b.Name)).toEqual(expect.arrayContaining(['data', 'tmp.bucket-1']));
    expect(list.Buckets!.map((b) => b.Name)).not.toContain('.s3');
    await c.send(new HeadBucketCommand({ Bucket: 'tmp.bucket-1' }));
    expect((await c.send(new GetBucketLocationCommand({ Bucket: 'tmp.bucket-1' }))).LocationConstraint).toBeFalsy();
    expect(await failure(c.send(new CreateBucketCommand({ Bucket: 'tmp.bucket-1' })))).toBe('BucketAlreadyOwnedByYou 409');
    await c.send(new PutObjectCommand({ Bucket: 'tmp.bucket-1', Key: 'k', Body: 'x' }));
    expect(await failure(c.send(new DeleteBucketCommand({ Bucket: 'tmp.bucket-1' })))).toBe('BucketNotEmpty 409');
    await c.send(new DeleteObjectCommand({ Bucket: 'tmp.bucket-1', Key: 'k' }));
    await c.send(new DeleteBucketCommand({ Bucket: 'tmp.bucket-1' }));
    expect(await exists(s, '/tmp.bucket-1')).toBe(false);
    expect(await failure(c.send(new HeadBucketCommand({ Bucket: 'tmp.bucket-1' })))).toBe('NotFound 404');
    expect(await failure(c.send(new GetBucketLocationCommand({ Bucket: 'no-such-bucket' })))).toBe('NoSuchBucket 404');
    expect(await failure(c.send(new ListObjectsV2Command({ Bucket: 'no-such-bucket' })))).toBe('NoSuchBucket 404');
    for (const bad of ['ab', 'Upper', 'a..b', '192.168.1.1', '-lead', 'x'.repeat(64)]) {
      expect(await failure(c.send(new CreateBucketCommand({ Bucket: bad })))).toBe('InvalidBucketName 400');
      expect(await exists(s, `/${bad}`)).toBe(false);
    }
  });

  it('round-trips objects of 0 bytes to several chunks byte for byte, with S3 ETags', async () => {
    for (const size of [0, 1, 4095, MiB, 3 * MiB + 17, 7 * MiB + 1]) {
      const data = pattern(size, size + 1);
      const put = await c.send(new PutObjectCommand({ Bucket: 'data', Key: `sizes/${size}.bin`, Body: data }));
      expect(put.ETag).toBe(`"${md5(data)}"`);
      const got = await c.send(new GetObjectCommand({ Bucket: 'data', Key: `sizes/${size}.bin` }));
      expect(got.ETag).toBe(`"${md5(data)}"`);
      expect(got.ContentLength).toBe(size);
      expect((await body(got)).equals(data)).toBe(true);
      // The object is the file: the FileSystem API reads the same bytes.
      expect((await s.fs.readFile(`/data/sizes/${size}.bin`)).equals(data)).toBe(true);
    }
  });

  it('streams a body of unknown-to-the-SDK length (aws-chunked with a trailing checksum)', async () => {
    const data = pattern(5 * MiB + 3, 9);
    const stream = Readable.from((function* () { for (let at = 0; at < data.length; at += 64 * 1024) yield data.subarray(at, at + 64 * 1024); })());
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'streamed.bin', Body: stream, ContentLength: data.length }));
    expect((await s.fs.readFile('/data/streamed.bin')).equals(data)).toBe(true);
  });

  it('takes signed aws-chunked bodies and refuses a tampered chunk without writing', async () => {
    const data = pattern(200_000, 3);
    const ok = await chunkedPut(s.gateway.port, s.admin, '/data/chunked.bin', data, 64 * 1024);
    expect(ok.status).toBe(200);
    expect(ok.headers.etag).toBe(`"${md5(data)}"`);
    expect((await s.fs.readFile('/data/chunked.bin')).equals(data)).toBe(true);
    const bad = await chunkedPut(s.gateway.port, s.admin, '/data/chunked-bad.bin', data, 64 * 1024, 1);
    expect(bad.status).toBe(403);
    expect(bad.body).toContain('<Code>SignatureDoesNotMatch</Code>');
    expect(bad.body).toMatch(/<RequestId>[0-9A-F]{16}<\/RequestId>/);
    expect(await exists(s, '/data/chunked-bad.bin')).toBe(false);
    expect((await s.fs.readdir('/data')).filter((n) => n.startsWith('.s3'))).toEqual([]); // no temporary file left
  });

  it('checks the chunk signatures of signed aws-chunked bodies past one hash batch (hashed on the workers)', async () => {
    // 3 MiB in 64 KiB chunks, and 1.5 MiB in 1000-byte chunks: more chunks than the checks
    // the decoder keeps pending (s3Limits.chunkChecksPendingMax), several marks per batch.
    const big = pattern(3 * MiB + 5, 11);
    const ok = await chunkedPut(s.gateway.port, s.admin, '/data/chunked-big.bin', big, 64 * 1024);
    expect(ok.status).toBe(200);
    expect(ok.headers.etag).toBe(`"${md5(big)}"`);
    expect((await s.fs.readFile('/data/chunked-big.bin')).equals(big)).toBe(true);
    const many = pattern(1536 * 1000 + 17, 12);
    const small = await chunkedPut(s.gateway.port, s.admin, '/data/chunked-many.bin', many, 1000);
    expect(small.status).toBe(200);
    expect((await s.fs.readFile('/data/chunked-many.bin')).equals(many)).toBe(true);
    // A tampered chunk deep in the body (past several batches), and one among many small chunks.
    for (const [path, data, chunkBytes, tamper] of [['/data/chunked-big-bad.bin', big, 64 * 1024, 40], ['/data/chunked-many-bad.bin', many, 1000, 1300]] as const) {
      const bad = await chunkedPut(s.gateway.port, s.admin, path, data, chunkBytes, tamper);
      expect(bad.status).toBe(403);
      expect(bad.body).toContain('<Code>SignatureDoesNotMatch</Code>');
      expect(await exists(s, path)).toBe(false);
    }
    expect((await s.fs.readdir('/data')).filter((n) => n.startsWith('.s3'))).toEqual([]);
  });

  it('tells a missing bucket from a missing key on PUT, GET and HEAD, creating nothing', async () => {
    // PUT and GET find the bucket missing from their one meta call (no stat of the bucket first).
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'no-such-bucket', Key: 'a/b/c', Body: 'x' })))).toBe('NoSuchBucket 404');
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'no-such-bucket', Key: 'flat', Body: 'x' })))).toBe('NoSuchBucket 404');
    expect(await exists(s, '/no-such-bucket')).toBe(false);
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'no-such-bucket', Key: 'flat' })))).toBe('NoSuchBucket 404');
    expect(await failure(c.send(new HeadObjectCommand({ Bucket: 'no-such-bucket', Key: 'flat' })))).toBe('NotFound 404'); // HEAD: no body, so no code
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'shapes/file', Body: 'bytes' }));
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'shapes/dir/', Body: '' }));
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'shapes/file/under' })))).toBe('NoSuchKey 404');
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'shapes/dir' })))).toBe('NoSuchKey 404');
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'shapes/file/' })))).toBe('NoSuchKey 404');
    const dir = await c.send(new GetObjectCommand({ Bucket: 'data', Key: 'shapes/dir/' }));
    expect((await dir.Body!.transformToByteArray()).length).toBe(0);
    const file = await c.send(new GetObjectCommand({ Bucket: 'data', Key: 'shapes/file' }));
    expect(await file.Body!.transformToString()).toBe('bytes');
    expect(file.ETag).toBe(`"${md5(Buffer.from('bytes'))}"`);
    // Under an object, a key cannot be a file (a filesystem holds one or the other).
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'data', Key: 'shapes/file/under', Body: 'x' })))).toBe('InvalidArgument 400');
    expect((await s.fs.readdir('/data/shapes')).filter((n) => n.startsWith('.s3'))).toEqual([]);
  });

  it('checks Content-MD5 (BadDigest writes nothing)', async () => {
    const data = pattern(10_000);
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'md5-ok', Body: data, ContentMD5: createHash('md5').update(data).digest('base64') }));
    const wrong = createHash('md5').update('other').digest('base64');
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'data', Key: 'md5-bad', Body: data, ContentMD5: wrong })))).toBe('BadDigest 400');
    expect(await exists(s, '/data/md5-bad')).toBe(false);
    // A failed overwrite keeps the old object.
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'data', Key: 'md5-ok', Body: pattern(5), ContentMD5: wrong })))).toBe('BadDigest 400');
    expect((await s.fs.readFile('/data/md5-ok')).equals(data)).toBe(true);
  });

  it('checks Content-MD5 and the signed payload hash of bodies past one hash batch (shared pieces) before publishing', async () => {
    // 9 MiB + 5: pieces of the 4 MiB chunks, hashed in place while they are written to the temporary file.
    const data = pattern(9 * MiB + 5, 21);
    const wrong = createHash('md5').update('other').digest('base64');
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'data', Key: 'big-md5-bad', Body: data, ContentMD5: wrong })))).toBe('BadDigest 400');
    expect(await exists(s, '/data/big-md5-bad')).toBe(false);
    const other = createHash('sha256').update('other').digest('hex');
    const bad = await signedRequest(s.gateway.port, s.admin, { method: 'PUT', path: '/data/big-sha-bad', body: data, payloadHash: other });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('<Code>XAmzContentSHA256Mismatch</Code>');
    expect(await exists(s, '/data/big-sha-bad')).toBe(false);
    expect((await s.fs.readdir('/data')).filter((n) => n.startsWith('.s3'))).toEqual([]);
    // Many such bodies at once, each byte for byte (pieces go back to the pool and are reused).
    const bodies = [0, 1, 2, 3, 4, 5].map((i) => pattern(5 * MiB + i * 333_333, 30 + i));
    await Promise.all(bodies.map(async (b, i) => {
      const put = await c.send(new PutObjectCommand({ Bucket: 'data', Key: `pieces/${i}`, Body: b, ContentMD5: createHash('md5').update(b).digest('base64') }));
      expect(put.ETag).toBe(`"${md5(b)}"`);
    }));
    for (const [i, b] of bodies.entries()) expect((await s.fs.readFile(`/data/pieces/${i}`)).equals(b)).toBe(true);
    // A request document past one hash batch is read whole: 1000 keys whose '&'s XML spells
    // "&amp;", over 1 MiB of XML.
    const keys = Array.from({ length: 1000 }, (_, i) => `pieces/${i}/${'&'.repeat(250)}`);
    const deleted = await c.send(new DeleteObjectsCommand({ Bucket: 'data', Delete: { Objects: keys.map((Key) => ({ Key })) } }));
    expect(deleted.Errors ?? []).toEqual([]);
    expect(deleted.Deleted).toHaveLength(1000);
  });

  it('keeps Content-Type, x-amz-meta-* and stored headers; response-* overrides them', async () => {
    await c.send(new PutObjectCommand({
      Bucket: 'data', Key: 'meta.txt', Body: 'hello', ContentType: 'text/plain', Metadata: { color: 'blue', 'two-words': 'a b' },
      CacheControl: 'max-age=60', ContentDisposition: 'attachment',
    }));
    const head = await c.send(new HeadObjectCommand({ Bucket: 'data', Key: 'meta.txt' }));
    expect(head).toMatchObject({ ContentType: 'text/plain', Metadata: { color: 'blue', 'two-words': 'a b' }, CacheControl: 'max-age=60', ContentDisposition: 'attachment', ContentLength: 5 });
    const got = await c.send(new GetObjectCommand({ Bucket: 'data', Key: 'meta.txt', ResponseContentType: 'application/x-test', ResponseCacheControl: 'no-cache' }));
    expect(got.ContentType).toBe('application/x-test');
    expect(got.CacheControl).toBe('no-cache');
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'data', Key: 'meta-big', Body: 'x', Metadata: { big: 'v'.repeat(3000) } })))).toBe('MetadataTooLarge 400');
    expect(await exists(s, '/data/meta-big')).toBe(false);
    // A write through the FileSystem API drops the S3 attributes of the old bytes.
    await s.fs.writeFile('/data/meta.txt', 'other bytes');
    const after = await c.send(new HeadObjectCommand({ Bucket: 'data', Key: 'meta.txt' }));
    expect(after.ContentType).toBe('binary/octet-stream');
    expect(after.Metadata).toEqual({});
    expect(after.ETag).toMatch(/^"[0-9a-f]{32}-1"$/);
  });

  it('serves ranges, and InvalidRange past the end', async () => {
    const data = pattern(3 * MiB + 5, 4);
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'ranged.bin', Body: data }));
    const cases: Array<[string, number, number]> = [['bytes=0-0', 0, 1], ['bytes=100-199', 100, 200], [`bytes=${MiB - 10}-${2 * MiB + 10}`, MiB - 10, 2 * MiB + 11], ['bytes=-10', data.length - 10, data.length], ['bytes=3145000-', 3145000, data.length], ['bytes=5-99999999', 5, data.length]];
    for (const [range, start, end] of cases) {
      const got = await c.send(new GetObjectCommand({ Bucket: 'data', Key: 'ranged.bin', Range: range }));
      expect(got.ContentRange).toBe(`bytes ${start}-${end - 1}/${data.length}`);
      expect((await body(got)).equals(data.subarray(start, end))).toBe(true);
    }
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'ranged.bin', Range: `bytes=${data.length}-` })))).toBe('InvalidRange 416');
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'sizes/0.bin', Range: 'bytes=0-1' })))).toBe('InvalidRange 416');
  });

  it('answers conditional requests', async () => {
    const put = await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'cond', Body: 'abc' }));
    const later = new Date(Date.now() + 3600_000);
    const earlier = new Date(Date.now() - 3600_000);
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'cond', IfMatch: put.ETag })))).toBe('ok');
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'cond', IfMatch: '"0123"' })))).toBe('PreconditionFailed 412');
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'cond', IfNoneMatch: put.ETag })))).toMatch(/ 304$/);
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'cond', IfModifiedSince: later })))).toMatch(/ 304$/);
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'cond', IfModifiedSince: earlier })))).toBe('ok');
    expect(await failure(c.send(new HeadObjectCommand({ Bucket: 'data', Key: 'cond', IfUnmodifiedSince: earlier })))).toMatch(/ 412$/); // HEAD has no body: the SDK knows only the status
  });

  it('deletes objects (and the prefixes they leave empty), one or many', async () => {
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'del/a/b/one', Body: '1' }));
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'del/two', Body: '2' }));
    await c.send(new DeleteObjectCommand({ Bucket: 'data', Key: 'del/a/b/one' }));
    expect(await exists(s, '/data/del/a')).toBe(false);
    expect(await failure(c.send(new DeleteObjectCommand({ Bucket: 'data', Key: 'del/never-was' })))).toBe('ok');
    expect(await failure(c.send(new HeadObjectCommand({ Bucket: 'data', Key: 'del/a/b/one' })))).toBe('NotFound 404');
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'del/a/b/one' })))).toBe('NoSuchKey 404');
    for (let i = 0; i < 5; i++) await c.send(new PutObjectCommand({ Bucket: 'data', Key: `many/${i}`, Body: String(i) }));
    const out = await c.send(new DeleteObjectsCommand({ Bucket: 'data', Delete: { Objects: [0, 1, 2, 3, 4, 9].map((i) => ({ Key: `many/${i}` })) } }));
    expect(out.Deleted!.map((d) => d.Key).sort()).toEqual(['many/0', 'many/1', 'many/2', 'many/3', 'many/4', 'many/9']);
    expect(await exists(s, '/data/many')).toBe(false);
    const quiet = await c.send(new DeleteObjectsCommand({ Bucket: 'data', Delete: { Objects: [{ Key: 'del/two' }], Quiet: true } }));
    expect(quiet.Deleted ?? []).toEqual([]);
    expect(await exists(s, '/data/del/two')).toBe(false);
  });

  it('copies objects with the COPY and REPLACE metadata directives', async () => {
    const data = pattern(2 * MiB + 3, 5);
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'src.bin', Body: data, ContentType: 'a/b', Metadata: { m: '1' } }));
    const copied = await c.send(new CopyObjectCommand({ Bucket: 'data', Key: 'copies/keep.bin', CopySource: 'data/src.bin' }));
    expect(copied.CopyObjectResult!.ETag).toBe(`"${md5(data)}"`);
    const keep = await c.send(new GetObjectCommand({ Bucket: 'data', Key: 'copies/keep.bin' }));
    expect(keep).toMatchObject({ ContentType: 'a/b', Metadata: { m: '1' } });
    expect((await body(keep)).equals(data)).toBe(true);
    await c.send(new CopyObjectCommand({ Bucket: 'data', Key: 'copies/replace.bin', CopySource: 'data/src.bin', MetadataDirective: 'REPLACE', ContentType: 'c/d', Metadata: { n: '2' } }));
    expect(await c.send(new HeadObjectCommand({ Bucket: 'data', Key: 'copies/replace.bin' }))).toMatchObject({ ContentType: 'c/d', Metadata: { n: '2' } });
    // A copy onto itself must change something; with REPLACE it rewrites the metadata.
    expect(await failure(c.send(new CopyObjectCommand({ Bucket: 'data', Key: 'src.bin', CopySource: 'data/src.bin' })))).toBe('InvalidRequest 400');
    await c.send(new CopyObjectCommand({ Bucket: 'data', Key: 'src.bin', CopySource: 'data/src.bin', MetadataDirective: 'REPLACE', Metadata: { m: '3' } }));
    expect((await c.send(new HeadObjectCommand({ Bucket: 'data', Key: 'src.bin' }))).Metadata).toEqual({ m: '3' });
    expect(await failure(c.send(new CopyObjectCommand({ Bucket: 'data', Key: 'x', CopySource: 'data/none' })))).toBe('NoSuchKey 404');
    expect(await failure(c.send(new CopyObjectCommand({ Bucket: 'data', Key: 'x', CopySource: 'data/src.bin', CopySourceIfMatch: '"nope"' })))).toBe('PreconditionFailed 412');
  });

  it('lists objects v1 and v2: prefix, delimiter, max-keys, continuation, start-after, url encoding, S3 key order', async () => {
    await c.send(new CreateBucketCommand({ Bucket: 'listing' }));
    const keys = ['a-b', 'a/x', 'a/y/z', 'a/y/zz', 'b', 'c d/e+f', 'c d/é', 'z'];
    for (const k of keys) await c.send(new PutObjectCommand({ Bucket: 'listing', Key: k, Body: k }));
    const all = await c.send(new ListObjectsV2Command({ Bucket: 'listing' }));
    expect(all.Contents!.map((o) => o.Key)).toEqual(keys); // "a-b" before "a/x", as S3 sorts bytes
    expect(all.Contents![0]).toMatchObject({ Size: 3, ETag: `"${md5(Buffer.from('a-b'))}"` });
    expect(all.KeyCount).toBe(keys.length);
    const delim = await c.send(new ListObjectsV2Command({ Bucket: 'listing', Delimiter: '/' }));
    expect(delim.Contents!.map((o) => o.Key)).toEqual(['a-b', 'b', 'z']);
    expect(delim.CommonPrefixes!.map((p) => p.Prefix)).toEqual(['a/', 'c d/']);
    const under = await c.send(new ListObjectsV2Command({ Bucket: 'listing', Prefix: 'a/', Delimiter: '/' }));
    expect(under.Contents!.map((o) => o.Key)).toEqual(['a/x']);
    expect(under.CommonPrefixes!.map((p) => p.Prefix)).toEqual(['a/y/']);
    const partial = await c.send(new ListObjectsV2Command({ Bucket: 'listing', Prefix: 'a/y/z' }));
    expect(partial.Contents!.map((o) => o.Key)).toEqual(['a/y/z', 'a/y/zz']);
    // Pages of 3, v2 with continuation tokens and v1 with markers, both give every key once.
    const v2: string[] = [];
    let token: string | undefined;
    do {
      const page = await c.send(new ListObjectsV2Command({ Bucket: 'listing', MaxKeys: 3, ContinuationToken: token }));
      v2.push(...page.Contents!.map((o) => o.Key!));
      expect(page.IsTruncated).toBe(page.NextContinuationToken !== undefined);
      token = page.NextContinuationToken;
    } while (token);
    expect(v2).toEqual(keys);
    const v1: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await c.send(new ListObjectsCommand({ Bucket: 'listing', MaxKeys: 3, Marker: marker, Delimiter: '/' }));
      v1.push(...(page.Contents ?? []).map((o) => o.Key!), ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!));
      if (!page.IsTruncated) break;
      marker = page.NextMarker;
    }
    expect(v1.sort()).toEqual(['a-b', 'a/', 'b', 'c d/', 'z']);
    const after = await c.send(new ListObjectsV2Command({ Bucket: 'listing', StartAfter: 'a/y/z' }));
    expect(after.Contents!.map((o) => o.Key)).toEqual(['a/y/zz', 'b', 'c d/e+f', 'c d/é', 'z']);
    // encoding-type=url: keys come percent-encoded (SDK v3 hands them over as they came).
    const enc = await c.send(new ListObjectsV2Command({ Bucket: 'listing', Prefix: 'c d/', EncodingType: 'url' }));
    expect(enc.Contents!.map((o) => o.Key)).toEqual(['c%20d/e%2Bf', 'c%20d/%C3%A9']);
    expect(enc.Contents!.map((o) => decodeURIComponent(o.Key!))).toEqual(['c d/e+f', 'c d/é']);
    const raw = await signedRequest(s.gateway.port, s.admin, { method: 'GET', path: '/listing', query: { 'list-type': '2', prefix: 'c d/', 'encoding-type': 'url' } });
    expect(raw.body).toContain('<Key>c%20d/e%2Bf</Key>');
    expect((await c.send(new ListObjectsV2Command({ Bucket: 'listing', MaxKeys: 0 }))).Contents ?? []).toEqual([]);
    // Prefixes no key can have list nothing (keys never have empty, "." or ".." segments).
    for (const prefix of ['a//', '/a', 'a/../', './']) expect((await c.send(new ListObjectsV2Command({ Bucket: 'listing', Prefix: prefix }))).KeyCount).toBe(0);
    // A generic delimiter.
    const dash = await c.send(new ListObjectsV2Command({ Bucket: 'listing', Delimiter: '-' }));
    expect(dash.CommonPrefixes!.map((p) => p.Prefix)).toEqual(['a-']);
  });

  it('lists a directory larger than a readdir page in S3 key order, from any marker and under any prefix', async () => {
    await c.send(new CreateBucketCommand({ Bucket: 'order' }));
    // Names whose key order differs from name order ("d/" sorts after "d-1" and "d.2"), code
    // points above U+FFFF (after U+FFFD in UTF-8, before it in UTF-16), and more entries than
    // one readdir page (fsLimits.readdirPageEntries) in the bucket's directory.
    const files = [
      ...Array.from({ length: 1500 }, (_, i) => `n${String(i).padStart(4, '0')}`),
      'd', 'd-1', 'd.2', 'd!', 'd0', 'd-/q', 'd-/r/s', 'd/x', 'd/y-', 'd/y/z', 'dd/e', '\u{1F600}', '\uFFFD', 'e\u{1F600}/f', 'e\uFFFD',
    ].filter((k, i, all) => !all.some((o) => o !== k && o.startsWith(`${k}/`))); // "d" is a directory
    for (const k of files) {
      await s.fs.mkdir(`/order/${k}`.replace(/\/[^/]*$/, ''), { recursive: true });
      await s.fs.writeFile(`/order/${k}`, '');
    }
    const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
    const keys = [...files].sort(byBytes);
    // What S3 lists: keys (or, with the delimiter, their common prefixes) under the prefix, after the marker.
    const expected = (prefix: string, delimiter: string, marker: string) => {
      const out: string[] = [];
      for (const k of keys.filter((k) => k.startsWith(prefix))) {
        const at = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
        const item = at < 0 ? k : k.slice(0, at + 1);
        if (byBytes(item, marker) > 0 && out.at(-1) !== item) out.push(item);
      }
      return out;
    };
    const listed = async (prefix: string, delimiter: string, marker: string, maxKeys: number) => {
      const page = await c.send(new ListObjectsV2Command({ Bucket: 'order', Prefix: prefix || undefined, Delimiter: delimiter || undefined, StartAfter: marker || undefined, MaxKeys: maxKeys }));
      return [...(page.Contents ?? []).map((o) => o.Key!), ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!)].sort(byBytes);
    };
    const all: string[] = [];
    let token: string | undefined;
    do {
      const page = await c.send(new ListObjectsV2Command({ Bucket: 'order', ContinuationToken: token }));
      all.push(...page.Contents!.map((o) => o.Key!));
      token = page.NextContinuationToken;
    } while (token);
    expect(all).toEqual(keys);
    const markers = ['', 'd', 'd-', 'd-.-.-.-.-.', 'd-/', 'd-/q', 'd.', 'd/', 'd/x', 'd/y', 'd0', 'dd', 'e', 'n0', 'n0999', 'n1023', 'n1024x', 'n14', 'z', '\u{1F600}', '\uFFFD'];
    const prefixes = ['', 'd', 'd-', 'd/', 'd/y', 'e', 'n07', 'n1', '\u{1F6}'.slice(0, 1)];
    for (const prefix of prefixes) {
      for (const marker of markers) {
        for (const delimiter of ['', '/']) {
          expect(await listed(prefix, delimiter, marker, 40), `prefix ${prefix} marker ${marker} delimiter ${delimiter}`)
            .toEqual(expected(prefix, delimiter, marker).slice(0, 40));
        }
      }
    }
  });

  it('uploads in parts: Create, UploadPart, UploadPartCopy, ListParts, ListMultipartUploads, Complete (parts in place), Abort', async () => {
    const partBytes = 5 * MiB;
    const data = pattern(2 * partBytes + 123_456, 6);
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: 'data', Key: 'mp/big.bin', ContentType: 'app/x', Metadata: { k: 'v' } }));
    // The object being assembled is a hidden file beside the key, which listings skip.
    const hidden = (await s.fs.readdir('/data/mp')).filter((n) => n.startsWith('.s3up.'));
    expect(hidden).toHaveLength(1);
    const dataInode = (await s.fs.stat(`/data/mp/${hidden[0]}`)).ino;
    expect((await c.send(new ListObjectsV2Command({ Bucket: 'data', Prefix: 'mp/' }))).KeyCount).toBe(0);
    const slices = [data.subarray(0, partBytes), data.subarray(partBytes, 2 * partBytes), data.subarray(2 * partBytes)];
    // Parts sent last first and concurrently, as clients do.
    const etags = await Promise.all([2, 1, 0].map(async (i) => [i, (await c.send(new UploadPartCommand({ Bucket: 'data', Key: 'mp/big.bin', UploadId, PartNumber: i + 1, Body: slices[i] }))).ETag!] as const));
    const byPart = new Map(etags);
    expect(byPart.get(0)).toBe(`"${md5(slices[0]!)}"`);
    const parts = await c.send(new ListPartsCommand({ Bucket: 'data', Key: 'mp/big.bin', UploadId }));
    expect(parts.Parts!.map((p) => [p.PartNumber, p.Size])).toEqual([[1, partBytes], [2, partBytes], [3, 123_456]]);
    const uploads = await c.send(new ListMultipartUploadsCommand({ Bucket: 'data' }));
    expect(uploads.Uploads!.map((u) => [u.Key, u.UploadId])).toContainEqual(['mp/big.bin', UploadId]);
    expect(await failure(c.send(new CompleteMultipartUploadCommand({ Bucket: 'data', Key: 'mp/big.bin', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"00000000000000000000000000000000"' }] } })))).toBe('InvalidPart 400');
    expect(await failure(c.send(new CompleteMultipartUploadCommand({ Bucket: 'data', Key: 'mp/big.bin', UploadId, MultipartUpload: { Parts: [{ PartNumber: 2, ETag: byPart.get(1) }, { PartNumber: 1, ETag: byPart.get(0) }] } })))).toBe('InvalidPartOrder 400');
    const done = await c.send(new CompleteMultipartUploadCommand({
      Bucket: 'data', Key: 'mp/big.bin', UploadId, MultipartUpload: { Parts: [0, 1, 2].map((i) => ({ PartNumber: i + 1, ETag: byPart.get(i) })) },
    }));
    const expected = createHash('md5').update(Buffer.concat(slices.map((p) => createHash('md5').update(p).digest()))).digest('hex');
    expect(done.ETag).toBe(`"${expected}-3"`);
    const got = await c.send(new GetObjectCommand({ Bucket: 'data', Key: 'mp/big.bin' }));
    expect(got).toMatchObject({ ETag: `"${expected}-3"`, ContentType: 'app/x', Metadata: { k: 'v' }, ContentLength: data.length });
    expect((await body(got)).equals(data)).toBe(true);
    // Assembled in place: the object is the file its full-size parts were written into.
    expect((await s.fs.stat('/data/mp/big.bin')).ino).toBe(dataInode);
    expect((await s.fs.readdir('/data/mp')).filter((n) => n.startsWith('.s3'))).toEqual([]);
    expect(await failure(c.send(new ListPartsCommand({ Bucket: 'data', Key: 'mp/big.bin', UploadId })))).toBe('NoSuchUpload 404');

    // UploadPartCopy and parts with gaps in their numbers (assembled by copying).
    const second = await c.send(new CreateMultipartUploadCommand({ Bucket: 'data', Key: 'mp/copied.bin' }));
    const p1 = await c.send(new UploadPartCopyCommand({ Bucket: 'data', Key: 'mp/copied.bin', UploadId: second.UploadId, PartNumber: 1, CopySource: 'data/mp/big.bin', CopySourceRange: `bytes=0-${partBytes - 1}` }));
    const p3 = await c.send(new UploadPartCommand({ Bucket: 'data', Key: 'mp/copied.bin', UploadId: second.UploadId, PartNumber: 3, Body: 'tail' }));
    await c.send(new CompleteMultipartUploadCommand({ Bucket: 'data', Key: 'mp/copied.bin', UploadId: second.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.CopyPartResult!.ETag }, { PartNumber: 3, ETag: p3.ETag }] } }));
    expect((await s.fs.readFile('/data/mp/copied.bin')).equals(Buffer.concat([slices[0]!, Buffer.from('tail')]))).toBe(true);

    // Small non-last parts are refused; Abort removes the upload and its data.
    const third = await c.send(new CreateMultipartUploadCommand({ Bucket: 'data', Key: 'mp/aborted.bin' }));
    const s1 = await c.send(new UploadPartCommand({ Bucket: 'data', Key: 'mp/aborted.bin', UploadId: third.UploadId, PartNumber: 1, Body: 'small' }));
    const s2 = await c.send(new UploadPartCommand({ Bucket: 'data', Key: 'mp/aborted.bin', UploadId: third.UploadId, PartNumber: 2, Body: 'small' }));
    expect(await failure(c.send(new CompleteMultipartUploadCommand({ Bucket: 'data', Key: 'mp/aborted.bin', UploadId: third.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: s1.ETag }, { PartNumber: 2, ETag: s2.ETag }] } })))).toBe('EntityTooSmall 400');
    await c.send(new AbortMultipartUploadCommand({ Bucket: 'data', Key: 'mp/aborted.bin', UploadId: third.UploadId }));
    expect(await exists(s, `/.s3/uploads/${third.UploadId}`)).toBe(false);
    expect(await exists(s, '/data/mp/aborted.bin')).toBe(false);
    expect((await s.fs.readdir('/data/mp')).filter((n) => n.startsWith('.s3'))).toEqual([]);
    expect(await failure(c.send(new UploadPartCommand({ Bucket: 'data', Key: 'mp/aborted.bin', UploadId: third.UploadId, PartNumber: 1, Body: 'x' })))).toBe('NoSuchUpload 404');
  });

  it('refuses an oversized part or object before writing it (EntityTooLarge)', async () => {
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: 'data', Key: 'mp/too-big.bin' }));
    expect(await failure(c.send(new UploadPartCommand({ Bucket: 'data', Key: 'mp/too-big.bin', UploadId, PartNumber: 1, Body: Buffer.alloc(13 * MiB) })))).toBe('EntityTooLarge 400');
    expect((await c.send(new ListPartsCommand({ Bucket: 'data', Key: 'mp/too-big.bin', UploadId }))).Parts ?? []).toEqual([]);
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'data', Key: 'too-big.bin', Body: Buffer.alloc(25 * MiB) })))).toBe('EntityTooLarge 400');
    expect(await exists(s, '/data/too-big.bin')).toBe(false);
    await c.send(new AbortMultipartUploadCommand({ Bucket: 'data', Key: 'mp/too-big.bin', UploadId }));
  });

  it('removes uploads abandoned past their expiry', async () => {
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: 'data', Key: 'abandoned.bin' }));
    await c.send(new UploadPartCommand({ Bucket: 'data', Key: 'abandoned.bin', UploadId, PartNumber: 1, Body: 'bytes' }));
    expect(await s.gateway.sweep(Date.now())).toBe(0); // not yet expired
    expect(await exists(s, `/.s3/uploads/${UploadId}`)).toBe(true);
    expect(await s.gateway.sweep(Date.now() + 25 * 3600_000)).toBeGreaterThanOrEqual(1);
    expect(await exists(s, `/.s3/uploads/${UploadId}`)).toBe(false);
    expect((await s.fs.readdir('/data')).filter((n) => n.startsWith('.s3up.'))).toEqual([]);
    expect(await failure(c.send(new ListPartsCommand({ Bucket: 'data', Key: 'abandoned.bin', UploadId })))).toBe('NoSuchUpload 404');
    // A sweep looks at a bounded number of uploads (2 here) and returns where the next goes on.
    const ids = (await Promise.all([1, 2, 3].map(async (i) => (await c.send(new CreateMultipartUploadCommand({ Bucket: 'data', Key: `abandoned-${i}` }))).UploadId!))).sort();
    const day = 24 * 3600_000;
    expect(await sweepUploads(s.fs, day, Date.now(), undefined, 2)).toEqual({ removed: 0, next: ids[1] });
    expect(await sweepUploads(s.fs, day, Date.now(), ids[1], 2)).toEqual({ removed: 0 });
    expect(await sweepUploads(s.fs, day, Date.now() + day + 3600_000, ids[0], 2)).toEqual({ removed: 2 });
    expect(await Promise.all(ids.map((id) => exists(s, `/.s3/uploads/${id}`)))).toEqual([true, false, false]);
    expect(await s.gateway.sweep(Date.now() + 2 * day)).toBe(1); // the gateway's own sweeps, from the first
  });

  it('checks signatures: wrong secret, unknown key, skewed clock, anonymous', async () => {
    const wrong = s.client({ accessKeyId: s.admin.accessKeyId, secretAccessKey: 'not-the-secret' });
    expect(await failure(wrong.send(new PutObjectCommand({ Bucket: 'data', Key: 'sig-wrong', Body: 'x' })))).toBe('SignatureDoesNotMatch 403');
    expect(await exists(s, '/data/sig-wrong')).toBe(false);
    const unknown = s.client({ accessKeyId: 'MPAKAAAAAAAAAAAAAAAA', secretAccessKey: 'x' });
    expect(await failure(unknown.send(new ListBucketsCommand({})))).toBe('InvalidAccessKeyId 403');
    const skewed = s.client(s.admin, { systemClockOffset: -20 * 60_000 });
    expect(await failure(skewed.send(new PutObjectCommand({ Bucket: 'data', Key: 'sig-skewed', Body: 'x' })))).toBe('RequestTimeTooSkewed 403');
    expect(await exists(s, '/data/sig-skewed')).toBe(false);
    const anonymous = await send(s.gateway.port, 'PUT', '/data/anon', {}, 'x');
    expect(anonymous.status).toBe(403);
    expect(anonymous.body).toContain('<Code>AccessDenied</Code>');
    expect(await exists(s, '/data/anon')).toBe(false);
    // A payload that is not the one signed.
    const mismatch = await signedRequest(s.gateway.port, s.admin, { method: 'PUT', path: '/data/sha-mismatch', body: 'actual', payloadHash: createHash('sha256').update('signed').digest('hex') });
    expect(mismatch.body).toContain('<Code>XAmzContentSHA256Mismatch</Code>');
    expect(await exists(s, '/data/sha-mismatch')).toBe(false);
    // Bodies past one hash batch are hashed on the worker threads: the same checks hold there.
    const large = pattern(3 * 1024 * 1024 + 17, 5);
    const largeSigned = createHash('sha256').update(large).digest('hex');
    const altered = Buffer.from(large);
    altered[2 * 1024 * 1024 + 5] ^= 1;
    const largeMismatch = await signedRequest(s.gateway.port, s.admin, { method: 'PUT', path: '/data/sha-mismatch-large', body: altered, payloadHash: largeSigned });
    expect(largeMismatch.body).toContain('<Code>XAmzContentSHA256Mismatch</Code>');
    expect(await exists(s, '/data/sha-mismatch-large')).toBe(false);
    const largeOk = await signedRequest(s.gateway.port, s.admin, { method: 'PUT', path: '/data/sha-large', body: large, payloadHash: largeSigned });
    expect(largeOk.status).toBe(200);
    expect(largeOk.headers.etag).toBe(`"${md5(large)}"`);
    expect((await s.fs.readFile('/data/sha-large')).equals(large)).toBe(true);
    const wrongMd5 = createHash('md5').update('other').digest('base64');
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'data', Key: 'md5-bad-large', Body: large, ContentMD5: wrongMd5 })))).toBe('BadDigest 400');
    expect(await exists(s, '/data/md5-bad-large')).toBe(false);
  });

  it('serves presigned URLs and refuses expired or altered ones', async () => {
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'presigned/obj', Body: 'secret bytes' }));
    const getUrl = await getSignedUrl(c, new GetObjectCommand({ Bucket: 'data', Key: 'presigned/obj' }), { expiresIn: 60 });
    const got = await fetch(getUrl);
    expect(got.status).toBe(200);
    expect(await got.text()).toBe('secret bytes');
    const putUrl = await getSignedUrl(c, new PutObjectCommand({ Bucket: 'data', Key: 'presigned/put' }), { expiresIn: 60 });
    expect((await fetch(putUrl, { method: 'PUT', body: 'via presign' })).status).toBe(200);
    expect(await s.fs.readFile('/data/presigned/put', 'utf8')).toBe('via presign');
    const altered = await fetch(getUrl.replace('presigned/obj', 'presigned/put'));
    expect(altered.status).toBe(403);
    expect(await altered.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
    const shortUrl = await getSignedUrl(c, new PutObjectCommand({ Bucket: 'data', Key: 'presigned/late' }), { expiresIn: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    const expired = await fetch(shortUrl, { method: 'PUT', body: 'too late' });
    expect(expired.status).toBe(403);
    expect(await expired.text()).toMatch(/<Code>AccessDenied<\/Code><Message>Request has expired/);
    expect(await exists(s, '/data/presigned/late')).toBe(false);
  });

  it('refuses malformed XML and invalid keys, writing nothing', async () => {
    const { UploadId } = await c.send(new CreateMultipartUploadCommand({ Bucket: 'data', Key: 'xml.bin' }));
    const bad = await signedRequest(s.gateway.port, s.admin, { method: 'POST', path: '/data/xml.bin', query: { uploadId: UploadId! }, body: '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>' });
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('<Code>MalformedXML</Code>');
    expect(await exists(s, '/data/xml.bin')).toBe(false);
    const badDelete = await signedRequest(s.gateway.port, s.admin, { method: 'POST', path: '/data', query: { delete: '' }, body: '<Delete><Object><Key>md5-ok</Key></Object>' });
    expect(badDelete.body).toContain('<Code>MalformedXML</Code>');
    expect(await exists(s, '/data/md5-ok')).toBe(true);
    // An Object without a Key after a good one: nothing is deleted, not even the good one.
    const keyless = await signedRequest(s.gateway.port, s.admin, { method: 'POST', path: '/data', query: { delete: '' }, body: '<Delete><Object><Key>md5-ok</Key></Object><Object><VersionId>1</VersionId></Object></Delete>' });
    expect(keyless.body).toContain('<Code>MalformedXML</Code>');
    expect(await exists(s, '/data/md5-ok')).toBe(true);
    for (const key of ['a//b', 'a/../b', './x', 'x/.', 'k'.repeat(1025)]) {
      const code = await failure(c.send(new PutObjectCommand({ Bucket: 'data', Key: key, Body: 'x' })));
      expect(code).toMatch(/^(InvalidArgument|KeyTooLongError) 400$/);
    }
    expect((await s.fs.readdir('/data')).filter((n) => n === 'a' || n === 'x' || n.startsWith('k'))).toEqual([]);
  });

  it('gives S3 requests the permissions of the key\'s user', async () => {
    const alice = await s.keyFor({ uid: 1000, gid: 1000 });
    const a = s.client(alice);
    await c.send(new PutObjectCommand({ Bucket: 'data', Key: 'perm-read', Body: 'root\'s' }));
    expect(await failure(a.send(new PutObjectCommand({ Bucket: 'data', Key: 'by-alice', Body: 'x' })))).toBe('AccessDenied 403');
    expect(await exists(s, '/data/by-alice')).toBe(false);
    expect(await failure(a.send(new GetObjectCommand({ Bucket: 'data', Key: 'perm-read' })))).toBe('ok'); // 0644 objects are readable
    // Buckets are directories in /, which only root may write: as through the FileSystem API.
    expect(await failure(a.send(new CreateBucketCommand({ Bucket: 'alice' })))).toBe('AccessDenied 403');
    expect(await exists(s, '/alice')).toBe(false);
    await c.send(new CreateBucketCommand({ Bucket: 'alice' }));
    await s.meta.setattr('/alice', { uid: 1000, gid: 1000 });
    await a.send(new PutObjectCommand({ Bucket: 'alice', Key: 'mine', Body: 'x' }));
    expect((await s.fs.stat('/alice/mine')).uid).toBe(1000);
    expect(await failure(a.send(new DeleteObjectCommand({ Bucket: 'data', Key: 'perm-read' })))).toBe('AccessDenied 403');
    expect(await exists(s, '/data/perm-read')).toBe(true);
    await s.meta.accessKeyRemove(alice.accessKeyId);
    // The removal reaches the gateway within its key cache's life (1 s here).
    await new Promise((r) => setTimeout(r, 1500));
    expect(await failure(a.send(new ListBucketsCommand({})))).toBe('InvalidAccessKeyId 403');
  });

  it('takes virtual-host-style addresses (<bucket>.localhost)', async () => {
    const agent = new Agent({ lookup: (_host, options, cb) => (options as { all?: boolean }).all ? cb(null, [{ address: '127.0.0.1', family: 4 }] as never) : cb(null, '127.0.0.1', 4) });
    const vhost = s.client(s.admin, { endpoint: `http://localhost:${s.gateway.port}`, forcePathStyle: false, requestHandler: new NodeHttpHandler({ httpAgent: agent }) });
    await vhost.send(new PutObjectCommand({ Bucket: 'data', Key: 'vhost/obj', Body: 'virtual' }));
    expect(await s.fs.readFile('/data/vhost/obj', 'utf8')).toBe('virtual');
    expect((await body(await vhost.send(new GetObjectCommand({ Bucket: 'data', Key: 'vhost/obj' })))).toString()).toBe('virtual');
    expect((await vhost.send(new ListObjectsV2Command({ Bucket: 'data', Prefix: 'vhost/' }))).Contents!.map((o) => o.Key)).toEqual(['vhost/obj']);
    agent.destroy();
  });

  it('serves files the FileSystem API wrote as objects', async () => {
    await s.fs.mkdir('/data/from-fs', { recursive: true });
    const data = pattern(MiB + 7, 8);
    await s.fs.writeFile('/data/from-fs/file.bin', data);
    const head = await c.send(new HeadObjectCommand({ Bucket: 'data', Key: 'from-fs/file.bin' }));
    expect(head.ContentLength).toBe(data.length);
    expect(head.ETag).toMatch(/^"[0-9a-f]{32}-1"$/);
    expect((await body(await c.send(new GetObjectCommand({ Bucket: 'data', Key: 'from-fs/file.bin' })))).equals(data)).toBe(true);
    expect((await c.send(new ListObjectsV2Command({ Bucket: 'data', Prefix: 'from-fs/' }))).Contents!.map((o) => o.Key)).toEqual(['from-fs/file.bin']);
    // A directory is no object, and a key under an object cannot be written.
    expect(await failure(c.send(new GetObjectCommand({ Bucket: 'data', Key: 'from-fs' })))).toBe('NoSuchKey 404');
    expect(await failure(c.send(new PutObjectCommand({ Bucket: 'data', Key: 'from-fs/file.bin/under', Body: 'x' })))).toBe('InvalidArgument 400');
  });
});
