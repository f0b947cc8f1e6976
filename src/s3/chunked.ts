/**
 * Request bodies as payload bytes: aws-chunked bodies (streaming SigV4 uploads) decoded, each
 * chunk's signature checked against the previous one (seeded by the request's), and the
 * payload's SHA-256, MD5 and length checked at the end. A consumer sees the bytes as they
 * arrive, with memory bounded by the socket's reads; a failed check throws before the
 * consumer finishes, so the object it was writing is never published.
 *
 * aws-chunked framing: `<hex size>[;chunk-signature=<sig>]\r\n<bytes>\r\n`, ended by a chunk of
 * size 0 and, for the *-TRAILER variants, trailing headers and an empty line.
 */
import type { IncomingMessage } from 'node:http';
import { s3Limits } from '../limits.js';
import { S3Error } from './errors.js';
import { digester, type Digester, type PieceShape } from './hash-pool.js';
import {
  chunkSignature, sameSignature, STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER, trailerSignature,
  UNSIGNED_PAYLOAD, type VerifiedSignature,
} from './sigv4.js';

export interface BodyChecks {
  /** The payload's declared length (Content-Length, or x-amz-decoded-content-length). */
  length: number;
  /** Content-MD5, base64. */
  md5Base64?: string;
  signature?: VerifiedSignature;
}

/** The payload digest of what went through, for the ETag. */
export interface BodyResult {
  md5: Buffer;
  bytes: number;
}

const CRLF = Buffer.from('\r\n');

/** The declared payload length of a request, or MissingContentLength. */
export function declaredLength(req: IncomingMessage): number {
  const decoded = req.headers['x-amz-decoded-content-length'];
  const raw = typeof decoded === 'string' ? decoded : req.headers['content-length'];
  if (raw === undefined) {
    if (req.headers['transfer-encoding'] === undefined) return 0;
    throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.');
  }
  const n = Number(raw);
  if (!/^\d+$/.test(String(raw)) || !Number.isSafeInteger(n)) throw new S3Error('InvalidArgument', 'Content-Length must be a non-negative integer');
  return n;
}

function isChunked(req: IncomingMessage, signature: VerifiedSignature | undefined): boolean {
  const hash = signature?.claim.payloadHash;
  if (hash === STREAMING_PAYLOAD || hash === STREAMING_PAYLOAD_TRAILER || hash === STREAMING_UNSIGNED_TRAILER) return true;
  return /(^|,)\s*aws-chunked\s*(,|$)/.test(String(req.headers['content-encoding'] ?? ''));
}

/**
 * The payload of `req`, checked. `onDone` gets the digests after the last byte was checked.
 * With `pieces`, a body past one hash batch comes as shared pieces of that shape (pieces.ts:
 * its only copy, which the hash workers read in place), each to be let go with releasePiece
 * by the consumer; otherwise as the socket's pieces (as is any smaller body).
 * REQUIRES: the caller consumes the iterable to its end for the checks to run.
 */
export async function* payload(req: IncomingMessage, checks: BodyChecks, onDone: (r: BodyResult) => void, pieces?: PieceShape): AsyncGenerator<Buffer> {
  const claimed = checks.signature?.claim.payloadHash;
  const signedHash = claimed !== undefined && /^[0-9a-f]{64}$/.test(claimed);
  const chunked = isChunked(req, checks.signature);
  // MD5 and SHA-256 on the hash workers (bodies past one batch): the event loop only copies.
  // So are the SHA-256s of signed aws-chunked chunks (segments), whose checks finish below.
  const hashes = digester(signedHash ? ['md5', 'sha256'] : ['md5'], checks.length, { segments: chunked && signsChunks(checks.signature), pieces });
  const chunkChecks: Promise<void>[] = [];
  let bytes = 0;
  const source = chunked ? decodeChunked(req, checks.signature, hashes, chunkChecks) : req as AsyncIterable<Buffer>;
  try {
    for await (const piece of source) {
      bytes += piece.length;
      if (bytes > checks.length) throw new S3Error('IncompleteBody', 'the body is longer than its declared length');
      await hashes.update(piece);
      if (hashes.takePieces) yield* hashes.takePieces();
      else yield piece;
    }
    if (bytes !== checks.length) throw new S3Error('IncompleteBody', `You did not provide the number of bytes specified by the Content-Length HTTP header (${bytes} of ${checks.length})`);
    const digests = await hashes.digest();
    const last = hashes.takePieces?.() ?? []; // given only once every check passed
    for (const check of chunkChecks) await check; // every chunk's signature, before anything is published
    if (signedHash && digests.sha256!.toString('hex') !== claimed) throw new S3Error('XAmzContentSHA256Mismatch', 'The provided x-amz-content-sha256 header does not match what was computed.');
    const digest = digests.md5!;
    if (checks.md5Base64 !== undefined && digest.toString('base64') !== checks.md5Base64) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    yield* last;
    onDone({ md5: digest, bytes });
  } finally {
    hashes.drop();
  }
}

/** Whether an aws-chunked body under `signature` carries chunk signatures. */
function signsChunks(signature: VerifiedSignature | undefined): boolean {
  return signature !== undefined && signature.claim.payloadHash !== STREAMING_UNSIGNED_TRAILER && signature.claim.payloadHash !== UNSIGNED_PAYLOAD;
}

/**
 * Reads aws-chunked framing from `req`, yielding chunk data as it arrives. Each chunk's hash is
 * a segment of `hashes` (which the caller updates with every piece yielded, before it asks
 * for the next), and its signature check goes into `checks`: a check needs the previous
 * chunk's claimed signature only (a valid chain repeats them), so checks run as the hash
 * workers reach each chunk's end. The caller awaits `checks` after hashes.digest().
 */
async function* decodeChunked(req: IncomingMessage, signature: VerifiedSignature | undefined, hashes: Digester, checks: Promise<void>[]): AsyncGenerator<Buffer> {
  const signed = signsChunks(signature);
  const trailers = signature?.claim.payloadHash === STREAMING_PAYLOAD_TRAILER || signature?.claim.payloadHash === STREAMING_UNSIGNED_TRAILER
    || String(req.headers['x-amz-trailer'] ?? '') !== '';
  let previous = signature?.claim.signature ?? '';
  let pending: Buffer = Buffer.alloc(0);
  const iterator = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const more = async (): Promise<boolean> => {
    const next = await iterator.next();
    if (next.done) return false;
    pending = pending.length === 0 ? next.value : Buffer.concat([pending, next.value]);
    return true;
  };
  const line = async (): Promise<string> => {
    for (;;) {
      const at = pending.indexOf(CRLF);
      if (at >= 0) {
        const text = pending.subarray(0, at).toString('latin1');
        pending = pending.subarray(at + 2);
        return text;
      }
      if (pending.length > s3Limits.chunkHeaderBytesMax) throw new S3Error('InvalidRequest', 'an aws-chunked header line is too long');
      if (!(await more())) throw new S3Error('IncompleteBody', 'the aws-chunked body ended inside a chunk header');
    }
  };
  for (;;) {
    const head = await line();
    const [sizeHex, ...extensions] = head.split(';');
    if (!/^[0-9a-fA-F]{1,16}$/.test(sizeHex!.trim())) throw new S3Error('InvalidRequest', `malformed aws-chunked chunk header ${JSON.stringify(head.slice(0, 64))}`);
    const size = parseInt(sizeHex!.trim(), 16);
    let claimed: string | undefined;
    for (const ext of extensions) if (ext.startsWith('chunk-signature=')) claimed = ext.slice('chunk-signature='.length).trim();
    if (signed && claimed === undefined) throw new S3Error('SignatureDoesNotMatch', 'an aws-chunked chunk has no signature');
    let left = size;
    while (left > 0) {
      if (pending.length === 0 && !(await more())) throw new S3Error('IncompleteBody', 'the aws-chunked body ended inside a chunk');
      const piece = pending.subarray(0, Math.min(left, pending.length));
      pending = pending.subarray(piece.length);
      left -= piece.length;
      yield piece; // resumed once the caller gave it to `hashes`
    }
    if (signed) {
      const before = previous;
      const claim = claimed!;
      const check = hashes.segment().then((sha) => {
        if (!sameSignature(chunkSignature(signature!, before, sha.toString('hex')), claim)) {
          throw new S3Error('SignatureDoesNotMatch', 'an aws-chunked chunk signature does not match');
        }
      });
      check.catch(() => {}); // awaited later (or dropped with the request): never unhandled
      checks.push(check);
      previous = claim;
      while (checks.length > s3Limits.chunkChecksPendingMax) await checks.shift();
    }
    if (size === 0) break;
    if ((await line()) !== '') throw new S3Error('InvalidRequest', 'an aws-chunked chunk is longer than its size');
  }
  if (trailers) {
    const lines: string[] = [];
    for (let l = await line(); l !== ''; l = await line()) lines.push(l);
    const sig = lines.find((l) => l.startsWith('x-amz-trailer-signature:'));
    if (signed && signature!.claim.payloadHash === STREAMING_PAYLOAD_TRAILER) {
      const text = lines.filter((l) => !l.startsWith('x-amz-trailer-signature:')).map((l) => `${l}\n`).join('');
      if (!sig || !sameSignature(trailerSignature(signature!, previous, text), sig.slice(sig.indexOf(':') + 1).trim())) {
        throw new S3Error('SignatureDoesNotMatch', 'the trailer signature does not match');
      }
    }
  } else {
    // Some clients end with an extra CRLF after the last chunk: drain it.
    while (pending.length > 0 || (await more())) {
      if (pending.toString('latin1').trim() !== '') throw new S3Error('InvalidRequest', 'bytes after the last aws-chunked chunk');
      pending = Buffer.alloc(0);
    }
  }
}
