/**
 * S3's errors: a code, an HTTP status and a message, sent as S3's XML <Error> document
 * (xml.ts) with the request id. MillpondErrors from the filesystem map onto them here, in one
 * place, so every operation answers the same way for the same failure.
 */
import { MillpondError } from '../errors.js';

const STATUS: Record<string, number> = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  KeyTooLongError: 400,
  MalformedXML: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingSecurityHeader: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  NotModified: 304,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  XAmzContentSHA256Mismatch: 400,
};

export type S3ErrorCode = keyof typeof STATUS & string;

export class S3Error extends Error {
  readonly status: number;
  constructor(readonly code: string, message: string, readonly extra: Record<string, string> = {}) {
    super(message);
    this.name = 'S3Error';
    this.status = STATUS[code] ?? 400;
  }
}

/** What a filesystem failure means to an S3 client; `missing` is the code for ENOENT. */
export function fromMillpond(err: unknown, missing: 'NoSuchKey' | 'NoSuchBucket' | 'NoSuchUpload' = 'NoSuchKey'): S3Error {
  if (err instanceof S3Error) return err;
  if (!(err instanceof MillpondError)) return new S3Error('InternalError', err instanceof Error ? err.message : String(err));
  switch (err.code) {
    case 'ENOENT': return new S3Error(missing, err.message);
    case 'EACCES': case 'EPERM': case 'EAUTH': return new S3Error('AccessDenied', err.message);
    case 'ENOTEMPTY': return new S3Error('BucketNotEmpty', err.message);
    case 'ENAMETOOLONG': return new S3Error('KeyTooLongError', err.message);
    case 'ENOTDIR': case 'EISDIR': case 'EEXIST':
      // A key whose parent is an object, or an object where a prefix has objects: a
      // filesystem cannot hold both (S3 can); MinIO answers the same way.
      return new S3Error('InvalidArgument', `the key collides with an object or a prefix: ${err.message}`);
    case 'EMSGSIZE': return new S3Error('MetadataTooLarge', err.message);
    case 'ENOSPC': return new S3Error('SlowDown', err.message);
    case 'EBUSY': case 'ETIMEDOUT': return new S3Error('SlowDown', err.message);
    default: return new S3Error('InternalError', `${err.code}: ${err.message}`);
  }
}
