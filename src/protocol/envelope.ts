/**
 * The envelope of every control-plane message (one ZeroMQ frame, one msgpack array):
 *   request: [version, requestId, method, params]
 *   reply:   [version, requestId, ok, resultOrError]   error = { code, message }
 * requestId is an unsigned integer chosen by the client, unique among its requests in flight;
 * 0 is reserved for replies to requests whose id could not be read.
 *
 * A batch (TS peers only; the C++ client never sends one and so never gets one):
 *   [version, 0, "rpc.batch", [request, request, ...]]   (and the same with replies)
 * at most protocolLimits.batchMessagesMax elements and messageBytesMax bytes. Each element is
 * a whole request (or reply) as above, and means exactly what it would in a frame of its own:
 * a batch only saves ZeroMQ sends, CURVE boxes and wake-ups. A server answers the requests of
 * a batch in batches (in any order, in as many frames as it likes), a single request singly.
 */
import { ERROR_CODES, MillpondError, type ErrorCode } from '../errors.js';
import { protocolLimits } from '../limits.js';
import { pack, unpack } from './codec.js';

export const PROTOCOL_VERSION = protocolLimits.version;
/** The requestId of a reply to a request whose id could not be read. */
export const UNKNOWN_REQUEST_ID = 0;
const REQUEST_ID_MAX = Number.MAX_SAFE_INTEGER;

export type Params = Record<string, unknown>;

export interface Request {
  requestId: number;
  method: string;
  params: Params;
}

export interface WireError {
  code: ErrorCode;
  message: string;
}

export type Reply =
  | { requestId: number; ok: true; result: unknown }
  | { requestId: number; ok: false; error: WireError };

/** A malformed message; `requestId` is set when it could be read, for the error reply. */
export class ProtocolError extends MillpondError {
  readonly requestId: number;
  constructor(code: 'EPROTO' | 'EMSGSIZE', message: string, requestId = UNKNOWN_REQUEST_ID) {
    super(code, message);
    this.requestId = requestId;
  }
}

/** The method name that marks a batch frame (requestId 0, which no request has). */
export const BATCH_TAG = 'rpc.batch';
// [version, 0, "rpc.batch", array header]: fixarray(4), fixint version, fixint 0, fixstr tag.
const BATCH_HEAD = Buffer.concat([Buffer.from([0x94, PROTOCOL_VERSION, 0x00, 0xa0 | BATCH_TAG.length]), Buffer.from(BATCH_TAG)]);
/** The bytes a batch frame adds to its elements at most (head and a 16-bit array length). */
export const BATCH_OVERHEAD_BYTES = BATCH_HEAD.length + 3;

/**
 * One frame carrying already encoded requests (or replies): their bytes are copied once, not
 * encoded again. REQUIRES: 2 <= frames.length <= batchMessagesMax, each a whole encoded message.
 */
export function encodeBatch(frames: readonly Buffer[]): Buffer {
  const n = frames.length;
  const head = n < 16 ? Buffer.from([0x90 | n]) : Buffer.from([0xdc, n >> 8, n & 0xff]);
  return Buffer.concat([BATCH_HEAD, head, ...frames]);
}

function isBatch(value: unknown): value is [number, 0, string, unknown[]] {
  return Array.isArray(value) && value.length === 4 && value[1] === 0 && value[2] === BATCH_TAG && Array.isArray(value[3]);
}

/**
 * Decodes a frame holding one request or a batch of them. A malformed frame throws
 * ProtocolError as decodeRequest does; a malformed element of a well-formed batch is returned
 * in its place as a ProtocolError (with its requestId when readable), so the others are served.
 */
export function decodeRequests(frame: Buffer): { batch: boolean; requests: Array<Request | ProtocolError> } {
  if (frame.length > protocolLimits.messageBytesMax) return { batch: false, requests: [decodeRequest(frame)] };
  let value: unknown;
  try {
    value = unpack(frame);
  } catch (err) {
    throw new ProtocolError('EPROTO', `request is not one msgpack value: ${(err as Error).message}`, peekRequestId(frame));
  }
  if (!isBatch(value)) return { batch: false, requests: [requestOf(value)] };
  if (value[0] !== PROTOCOL_VERSION) throw new ProtocolError('EPROTO', `unsupported protocol version ${String(value[0])}`);
  const elements = value[3];
  if (elements.length < 1 || elements.length > protocolLimits.batchMessagesMax) {
    throw new ProtocolError('EPROTO', `a batch holds 1 to ${protocolLimits.batchMessagesMax} requests, got ${elements.length}`);
  }
  return {
    batch: true,
    requests: elements.map((element) => {
      try {
        return requestOf(element);
      } catch (err) {
        return err as ProtocolError;
      }
    }),
  };
}

/** The replies one frame carries (one, or a batch's); throws ProtocolError if malformed. */
export function decodeReplies(frame: Buffer): Reply[] {
  let value: unknown;
  try {
    value = unpack(frame);
  } catch (err) {
    throw new ProtocolError('EPROTO', `reply is not one msgpack value: ${(err as Error).message}`);
  }
  if (!isBatch(value)) return [replyOf(value)];
  if (value[0] !== PROTOCOL_VERSION || value[3].length > protocolLimits.batchMessagesMax) throw new ProtocolError('EPROTO', 'malformed reply batch');
  return value[3].map(replyOf);
}

export function encodeRequest(request: Request): Buffer {
  if (!Number.isSafeInteger(request.requestId) || request.requestId < 1) throw new RangeError('requestId must be a positive safe integer');
  return pack([PROTOCOL_VERSION, request.requestId, request.method, request.params]);
}

/**
 * A result already encoded by codec.pack (a stored value replied as it is stored, such as a
 * stat's inode): a reply carries its bytes without decoding and encoding them again.
 */
export class PackedResult {
  constructor(readonly bytes: Buffer) {}
}

export function encodeReply(reply: Reply): Buffer {
  if (reply.ok && reply.result instanceof PackedResult) {
    // The reply with a nil result, its last byte (the nil) replaced by the packed result.
    const head = pack([PROTOCOL_VERSION, reply.requestId, true, null]);
    return Buffer.concat([head.subarray(0, head.length - 1), reply.result.bytes]);
  }
  return pack([PROTOCOL_VERSION, reply.requestId, reply.ok, reply.ok ? reply.result : { code: reply.error.code, message: reply.error.message }]);
}

function toId(value: unknown): number | undefined {
  const n = typeof value === 'bigint' && value <= BigInt(REQUEST_ID_MAX) ? Number(value) : value;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function isPlainMap(value: unknown): value is Params {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/**
 * Reads the requestId from the first bytes of a frame without decoding the rest, so an oversized
 * or truncated request can still get its error reply. Returns UNKNOWN_REQUEST_ID if it can't.
 */
export function peekRequestId(frame: Buffer): number {
  let at = 0;
  const head = frame[at++];
  if (head === undefined) return UNKNOWN_REQUEST_ID;
  if ((head & 0xf0) === 0x90) { /* fixarray */ } else if (head === 0xdc) at += 2; else if (head === 0xdd) at += 4; else return UNKNOWN_REQUEST_ID;
  // version: a small positive fixint
  const version = frame[at++];
  if (version === undefined || version > 0x7f) return UNKNOWN_REQUEST_ID;
  const tag = frame[at];
  if (tag === undefined) return UNKNOWN_REQUEST_ID;
  const read = (bytes: number, signed: boolean): number => {
    if (frame.length < at + 1 + bytes) return UNKNOWN_REQUEST_ID;
    const v = bytes === 8
      ? (signed ? frame.readBigInt64BE(at + 1) : frame.readBigUInt64BE(at + 1))
      : BigInt(signed ? frame.readIntBE(at + 1, bytes) : frame.readUIntBE(at + 1, bytes));
    return toId(v) ?? UNKNOWN_REQUEST_ID;
  };
  if (tag <= 0x7f) return tag;
  switch (tag) {
    case 0xcc: return read(1, false);
    case 0xcd: return read(2, false);
    case 0xce: return read(4, false);
    case 0xcf: return read(8, false);
    case 0xd0: return read(1, true);
    case 0xd1: return read(2, true);
    case 0xd2: return read(4, true);
    case 0xd3: return read(8, true);
    default: return UNKNOWN_REQUEST_ID;
  }
}

/** Decodes a request frame; throws ProtocolError (EPROTO/EMSGSIZE) for anything malformed. */
export function decodeRequest(frame: Buffer): Request {
  if (frame.length > protocolLimits.messageBytesMax) {
    throw new ProtocolError('EMSGSIZE', `request of ${frame.length} bytes exceeds ${protocolLimits.messageBytesMax}`, peekRequestId(frame));
  }
  let value: unknown;
  try {
    value = unpack(frame);
  } catch (err) {
    throw new ProtocolError('EPROTO', `request is not one msgpack value: ${(err as Error).message}`, peekRequestId(frame));
  }
  return requestOf(value);
}

/** A decoded value as a request; throws ProtocolError for anything malformed. */
function requestOf(value: unknown): Request {
  if (!Array.isArray(value)) throw new ProtocolError('EPROTO', 'request must be an array [version, requestId, method, params]');
  const requestId = toId(value[1]);
  const idForReply = requestId ?? UNKNOWN_REQUEST_ID;
  if (value.length !== 4) throw new ProtocolError('EPROTO', `request must have 4 elements, got ${value.length}`, idForReply);
  if (value[0] !== PROTOCOL_VERSION) throw new ProtocolError('EPROTO', `unsupported protocol version ${String(value[0])}`, idForReply);
  if (requestId === undefined || requestId === UNKNOWN_REQUEST_ID) throw new ProtocolError('EPROTO', 'requestId must be a positive integer');
  const method = value[2];
  if (typeof method !== 'string' || method.length === 0 || Buffer.byteLength(method) > protocolLimits.methodNameBytesMax) {
    throw new ProtocolError('EPROTO', 'method must be a non-empty short string', requestId);
  }
  const params = value[3] ?? {};
  if (!isPlainMap(params)) throw new ProtocolError('EPROTO', 'params must be a map', requestId);
  return { requestId, method, params };
}

/** Decodes a reply frame; throws ProtocolError for anything malformed. */
export function decodeReply(frame: Buffer): Reply {
  let value: unknown;
  try {
    value = unpack(frame);
  } catch (err) {
    throw new ProtocolError('EPROTO', `reply is not one msgpack value: ${(err as Error).message}`);
  }
  return replyOf(value);
}

function replyOf(value: unknown): Reply {
  if (!Array.isArray(value) || value.length !== 4 || value[0] !== PROTOCOL_VERSION) throw new ProtocolError('EPROTO', 'reply must be [1, requestId, ok, resultOrError]');
  const requestId = toId(value[1]);
  if (requestId === undefined) throw new ProtocolError('EPROTO', 'reply requestId must be an unsigned integer');
  if (value[2] === true) return { requestId, ok: true, result: value[3] };
  if (value[2] !== false || !isPlainMap(value[3])) throw new ProtocolError('EPROTO', 'reply ok must be a boolean, an error a map', requestId);
  const { code, message } = value[3];
  const known = (ERROR_CODES as readonly unknown[]).includes(code);
  return {
    requestId,
    ok: false,
    error: {
      code: known ? (code as ErrorCode) : 'EPROTO',
      message: known ? String(message ?? '') : `unknown error code ${String(code)}: ${String(message ?? '')}`,
    },
  };
}
