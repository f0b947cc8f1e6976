/**
 * AWS Signature Version 4 as a server checks it: in the Authorization header, in a presigned
 * URL's query, and per chunk of an aws-chunked body (chunked.ts).
 *
 * Why not a kept signer (@smithy/signature-v4): it signs requests it builds, so verifying a
 * received request with it means rebuilding that request exactly as the client saw it (its
 * escaping of the path, only the signed headers, the presign query) — the canonicalization
 * is the whole job, and the signer does not do the chunk signatures of streaming uploads.
 * What is kept is the cryptography: node:crypto's HMAC-SHA256 and SHA-256. The real AWS SDK,
 * AWS CLI, rclone and s3cmd sign every request in the tests (test/s3), which is the check
 * that this canonicalization is theirs.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { s3Limits } from '../limits.js';
import { S3Error } from './errors.js';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_PAYLOAD = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_PAYLOAD_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
export const EMPTY_SHA256 = createHash('sha256').digest('hex');

/** What a request claims about its signature, before the key's secret is known. */
export interface SignatureClaim {
  accessKeyId: string;
  /** yyyymmdd/region/service/aws4_request */
  scope: string;
  region: string;
  service: string;
  /** x-amz-date: yyyymmddThhmmssZ */
  amzDate: string;
  signedHeaders: string[];
  signature: string;
  presigned: boolean;
  /** The payload hash the client signed: hex, UNSIGNED-PAYLOAD or a STREAMING-* value. */
  payloadHash: string;
}

/** The signing key, the claim and the checked seed signature: what chunk checks need. */
export interface VerifiedSignature {
  claim: SignatureClaim;
  signingKey: Buffer;
}

/** RFC 3986 escaping as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ */
export function uriEscape(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new S3Error('InvalidArgument', `malformed percent-encoding in ${JSON.stringify(text.slice(0, 64))}`);
  }
}

/** The request's query as decoded (name, value) pairs, in their order. */
export function queryPairs(rawQuery: string): Array<[string, string]> {
  if (rawQuery === '') return [];
  return rawQuery.split('&').filter((p) => p !== '').map((part) => {
    const eq = part.indexOf('=');
    return eq < 0 ? [decodeComponent(part), ''] : [decodeComponent(part.slice(0, eq)), decodeComponent(part.slice(eq + 1))];
  });
}

function parseAmzDate(amzDate: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!m) throw new S3Error('AccessDenied', `malformed X-Amz-Date ${JSON.stringify(amzDate)}`);
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
}

function parseCredential(credential: string, code: string): Pick<SignatureClaim, 'accessKeyId' | 'scope' | 'region' | 'service'> {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || !/^\d{8}$/.test(parts[1]!)) {
    throw new S3Error(code, `malformed credential ${JSON.stringify(credential)}`);
  }
  return { accessKeyId: parts[0]!, scope: parts.slice(1).join('/'), region: parts[2]!, service: parts[3]! };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * The signature a request claims, or undefined for an anonymous request. Throws S3Errors for
 * malformed claims, and for a time outside the skew window or an expired presigned URL.
 */
export function parseClaim(req: IncomingMessage, query: Array<[string, string]>, nowMs: number): SignatureClaim | undefined {
  const auth = header(req, 'authorization');
  const q = new Map(query);
  if (auth !== undefined) {
    if (!auth.startsWith(`${ALGORITHM} `)) {
      throw new S3Error(auth.startsWith('AWS ') ? 'InvalidRequest' : 'AuthorizationHeaderMalformed', 'only AWS4-HMAC-SHA256 signatures are supported');
    }
    const fields = new Map<string, string>();
    for (const part of auth.slice(ALGORITHM.length + 1).split(',')) {
      const eq = part.indexOf('=');
      if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
    }
    const credential = fields.get('Credential');
    const signedHeaders = fields.get('SignedHeaders');
    const signature = fields.get('Signature');
    if (!credential || !signedHeaders || !signature) throw new S3Error('AuthorizationHeaderMalformed', 'the Authorization header needs Credential, SignedHeaders and Signature');
    const amzDate = header(req, 'x-amz-date') ?? dateHeaderAsAmz(header(req, 'date'));
    const atMs = parseAmzDate(amzDate);
    if (Math.abs(nowMs - atMs) > s3Limits.clockSkewMs) {
      throw new S3Error('RequestTimeTooSkewed', 'The difference between the request time and the server\'s time is too large.', {
        RequestTime: amzDate, ServerTime: new Date(nowMs).toISOString(), MaxAllowedSkewMilliseconds: String(s3Limits.clockSkewMs),
      });
    }
    const cred = parseCredential(credential, 'AuthorizationHeaderMalformed');
    if (cred.scope.slice(0, 8) !== amzDate.slice(0, 8)) throw new S3Error('AuthorizationHeaderMalformed', 'the credential date is not the request date');
    const payloadHash = header(req, 'x-amz-content-sha256');
    if (!payloadHash) throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
    return { ...cred, amzDate, signedHeaders: signedHeaders.split(';'), signature, presigned: false, payloadHash };
  }
  if (q.has('X-Amz-Signature') || q.has('X-Amz-Credential')) {
    const get = (name: string) => {
      const v = q.get(name);
      if (v === undefined || v === '') throw new S3Error('AuthorizationQueryParametersError', `the presigned URL lacks ${name}`);
      return v;
    };
    if (get('X-Amz-Algorithm') !== ALGORITHM) throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Algorithm must be AWS4-HMAC-SHA256');
    const amzDate = get('X-Amz-Date');
    const atMs = parseAmzDate(amzDate);
    const expires = Number(get('X-Amz-Expires'));
    if (!Number.isSafeInteger(expires) || expires < 1 || expires > s3Limits.presignExpiresSecMax) {
      throw new S3Error('AuthorizationQueryParametersError', `X-Amz-Expires must be in [1, ${s3Limits.presignExpiresSecMax}]`);
    }
    if (atMs - nowMs > s3Limits.clockSkewMs) throw new S3Error('AccessDenied', 'Request is not valid yet');
    if (nowMs > atMs + expires * 1000) throw new S3Error('AccessDenied', 'Request has expired', { 'X-Amz-Expires': String(expires), Expires: new Date(atMs + expires * 1000).toISOString(), ServerTime: new Date(nowMs).toISOString() });
    const cred = parseCredential(get('X-Amz-Credential'), 'AuthorizationQueryParametersError');
    return {
      ...cred, amzDate, signedHeaders: get('X-Amz-SignedHeaders').split(';'), signature: get('X-Amz-Signature'), presigned: true,
      payloadHash: q.get('X-Amz-Content-Sha256') ?? UNSIGNED_PAYLOAD,
    };
  }
  return undefined;
}

function dateHeaderAsAmz(date: string | undefined): string {
  const ms = date === undefined ? NaN : Date.parse(date);
  if (Number.isNaN(ms)) throw new S3Error('AccessDenied', 'the request has no X-Amz-Date or Date');
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/** SigV4's canonical form of the request the client signed. */
export function canonicalRequest(req: IncomingMessage, rawPath: string, query: Array<[string, string]>, claim: SignatureClaim): string {
  const path = rawPath.split('/').map((s) => uriEscape(decodeComponent(s))).join('/');
  const pairs = query
    .filter(([k]) => !(claim.presigned && k === 'X-Amz-Signature'))
    .map(([k, v]) => [uriEscape(k), uriEscape(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const values = new Map<string, string[]>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    const list = values.get(name) ?? [];
    list.push(req.rawHeaders[i + 1]!.trim().replace(/\s+/g, ' '));
    values.set(name, list);
  }
  const headers = claim.signedHeaders.map((name) => {
    const v = values.get(name);
    if (v === undefined) throw new S3Error('SignatureDoesNotMatch', `the signed header ${name} is not in the request`);
    return `${name}:${v.join(',')}\n`;
  }).join('');
  return [req.method, path, pairs.map(([k, v]) => `${k}=${v}`).join('&'), headers, claim.signedHeaders.join(';'), claim.payloadHash].join('\n');
}

/**
 * Derived signing keys by secret and scope (date/region/service): a client signs every
 * request of a day with the same key, so the four HMACs run once per day per key instead of
 * per request. Bounded (s3Limits.signingKeysCachedMax; full, it starts over). A removed access
 * key is refused before its secret is looked up here (identity.ts), so nothing is kept alive
 * by this cache; entries are keyed by the secret itself, never valid for another secret.
 */
const signingKeys = new Map<string, Buffer>();

export function signingKey(secret: string, scope: string): Buffer {
  const id = `${scope}\n${secret}`;
  const cached = signingKeys.get(id);
  if (cached) return cached;
  const key = deriveSigningKey(secret, scope);
  if (signingKeys.size >= s3Limits.signingKeysCachedMax) signingKeys.clear();
  signingKeys.set(id, key);
  return key;
}

function deriveSigningKey(secret: string, scope: string): Buffer {
  const [date, region, service] = scope.split('/');
  const kDate = createHmac('sha256', `AWS4${secret}`).update(date!).digest();
  const kRegion = createHmac('sha256', kDate).update(region!).digest();
  const kService = createHmac('sha256', kRegion).update(service!).digest();
  return createHmac('sha256', kService).update('aws4_request').digest();
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hmacHex(key: Buffer, text: string): string {
  return createHmac('sha256', key).update(text).digest('hex');
}

export function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Checks the request's signature with the key's secret; SignatureDoesNotMatch otherwise. */
export function verifyRequest(req: IncomingMessage, rawPath: string, query: Array<[string, string]>, claim: SignatureClaim, secret: string): VerifiedSignature {
  if (!claim.signedHeaders.includes('host')) throw new S3Error('AccessDenied', 'the signature must cover the host header');
  const canonical = canonicalRequest(req, rawPath, query, claim);
  const stringToSign = [ALGORITHM, claim.amzDate, claim.scope, sha256Hex(canonical)].join('\n');
  const key = signingKey(secret, claim.scope);
  if (!sameSignature(hmacHex(key, stringToSign), claim.signature)) {
    throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', {
      AWSAccessKeyId: claim.accessKeyId, StringToSign: stringToSign, CanonicalRequest: canonical,
    });
  }
  return { claim, signingKey: key };
}

/** The signature one chunk of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body must carry. */
export function chunkSignature(v: VerifiedSignature, previous: string, chunkSha256Hex: string): string {
  return hmacHex(v.signingKey, ['AWS4-HMAC-SHA256-PAYLOAD', v.claim.amzDate, v.claim.scope, previous, EMPTY_SHA256, chunkSha256Hex].join('\n'));
}

/** The signature of the trailing headers of a STREAMING-...-TRAILER body. */
export function trailerSignature(v: VerifiedSignature, previous: string, trailerText: string): string {
  return hmacHex(v.signingKey, ['AWS4-HMAC-SHA256-TRAILER', v.claim.amzDate, v.claim.scope, previous, sha256Hex(trailerText)].join('\n'));
}
