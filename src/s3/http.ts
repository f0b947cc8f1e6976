/** The request context every operation gets, and the HTTP pieces they share. */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FileSystem } from '../fs/file-system.js';
import type { Stats } from '../fs/stats.js';
import { s3Limits } from '../limits.js';
import type { User } from '../protocol/meta-types.js';
import { payload } from './chunked.js';
import { S3Error } from './errors.js';
import type { VerifiedSignature } from './sigv4.js';
import { document, parseDocument } from './xml.js';

export interface S3Request {
  req: IncomingMessage;
  res: ServerResponse;
  requestId: string;
  bucket: string;
  key: string;
  query: Map<string, string>;
  user: User;
  fs: FileSystem;
  signature: VerifiedSignature;
  config: GatewayConfig;
}

export interface GatewayConfig {
  region: string;
  putObjectBytesMax: number;
  partBytesMax: number;
}

export function sendXml(s: S3Request, status: number, root: string, body: Record<string, unknown>): void {
  const text = document(root, body);
  s.res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(text) });
  s.res.end(text);
}

export function sendEmpty(s: S3Request, status: number, headers: Record<string, string | number> = {}): void {
  s.res.writeHead(status, { 'Content-Length': 0, ...headers });
  s.res.end();
}

export function header(s: S3Request, name: string): string | undefined {
  const v = s.req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** A small request document (CompleteMultipartUpload, Delete, CreateBucketConfiguration). */
export async function readXml(s: S3Request, root: string, optional = false): Promise<Record<string, unknown> | undefined> {
  const length = Number(s.req.headers['x-amz-decoded-content-length'] ?? s.req.headers['content-length'] ?? 0);
  if (length > s3Limits.xmlBodyBytesMax) throw new S3Error('MalformedXML', `request documents are at most ${s3Limits.xmlBodyBytesMax} bytes`);
  const pieces: Buffer[] = [];
  for await (const p of payload(s.req, { length, md5Base64: header(s, 'content-md5'), signature: s.signature }, () => {})) pieces.push(p);
  const text = Buffer.concat(pieces).toString('utf8');
  if (optional && text.trim() === '') return undefined;
  return parseDocument(text, root);
}

export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * The ETag of a file: the one S3 computed when an S3 client wrote it; for a file written
 * otherwise (millpond fs put, the engine), a tag of its inode, mtime and length. That one ends
 * in "-1" so clients take it for a multipart ETag and do not compare it with an MD5.
 */
export function etagOf(st: Stats): string {
  if (st.object) return st.object.etag;
  const h = createHash('md5').update(`${st.ino}:${st.mtimeMs}:${st.size}`).digest('hex');
  return `"${h}-1"`;
}

/** The user metadata and stored headers of a request (PUT, Copy with REPLACE, CreateMultipartUpload). */
export function requestAttrs(s: S3Request): { contentType?: string; headers?: Record<string, string>; meta?: Record<string, string> } {
  const meta: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(s.req.headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const v = Array.isArray(value) ? value.join(',') : value;
    meta[name.slice('x-amz-meta-'.length)] = v;
    bytes += name.length - 'x-amz-meta-'.length + Buffer.byteLength(v);
  }
  if (bytes > s3Limits.userMetadataBytesMax) throw new S3Error('MetadataTooLarge', `Your metadata headers exceed the maximum allowed metadata size (${s3Limits.userMetadataBytesMax} bytes).`);
  const headers: Record<string, string> = {};
  for (const name of ['cache-control', 'content-disposition', 'content-language', 'expires']) {
    const v = header(s, name);
    if (v !== undefined) headers[name] = v;
  }
  const encoding = (header(s, 'content-encoding') ?? '').split(',').map((e) => e.trim()).filter((e) => e !== '' && e !== 'aws-chunked').join(',');
  if (encoding) headers['content-encoding'] = encoding;
  const contentType = header(s, 'content-type');
  return {
    ...(contentType ? { contentType } : {}),
    ...(Object.keys(headers).length ? { headers } : {}),
    ...(Object.keys(meta).length ? { meta } : {}),
  };
}

/** A byte range of an object of `size` bytes: [start, end), or undefined for the whole. */
export function parseRange(value: string | undefined, size: number): { start: number; end: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined; // not a single range: the whole object, as S3
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) throw invalidRange(size);
    return { start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || (m[2] !== '' && Number(m[2]) < start)) throw invalidRange(size);
  return { start, end: last + 1 };
}

function invalidRange(size: number): S3Error {
  return new S3Error('InvalidRange', 'The requested range is not satisfiable', { ActualObjectSize: String(size), RangeRequested: '' });
}

/**
 * RFC 7232 preconditions on an object (GetObject, HeadObject, and with `copySource` the
 * x-amz-copy-source-if-* of copies). Throws PreconditionFailed, or NotModified (304).
 */
export function checkConditions(s: S3Request, st: Stats, copySource = false): void {
  const p = copySource ? 'x-amz-copy-source-' : '';
  const etag = etagOf(st).replace(/"/g, '');
  const list = (v: string) => v.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''));
  const modifiedSec = Math.floor(st.mtimeMs / 1000);
  const sec = (v: string) => Math.floor(Date.parse(v) / 1000);
  const ifMatch = header(s, `${p}if-match`);
  const ifUnmodified = header(s, `${p}if-unmodified-since`);
  const ifNoneMatch = header(s, `${p}if-none-match`);
  const ifModified = header(s, `${p}if-modified-since`);
  if (ifMatch !== undefined) {
    if (!list(ifMatch).some((t) => t === '*' || t === etag)) throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: `${p}If-Match` });
  } else if (ifUnmodified !== undefined && !Number.isNaN(sec(ifUnmodified)) && modifiedSec > sec(ifUnmodified)) {
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: `${p}If-Unmodified-Since` });
  }
  const notModified = copySource ? new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold') : new S3Error('NotModified', 'Not Modified');
  if (ifNoneMatch !== undefined) {
    if (list(ifNoneMatch).some((t) => t === '*' || t === etag)) throw notModified;
  } else if (ifModified !== undefined && !Number.isNaN(sec(ifModified)) && modifiedSec <= sec(ifModified)) {
    throw notModified;
  }
}
