/**
 * A control-plane client: a ZeroMQ DEALER connected to one server, matching replies to
 * requests by requestId, with a timeout per attempt, bounded requests in flight, and resends
 * of a timed-out request under the same requestId (ZeroMQ reconnects by itself; servers
 * apply a retried mutation once, keyed by the caller's clientId and this requestId).
 *
 * Requests made in one event-loop turn leave together: one batch frame (envelope.ts) instead of
 * one ZeroMQ send each, split at protocolLimits.batchMessagesMax requests or messageBytesMax
 * bytes; a lone request goes in a frame of its own. The server answers batches in batches.
 */
import { Dealer } from 'zeromq';
import { MillpondError } from '../errors.js';
import { protocolLimits } from '../limits.js';
import { BATCH_OVERHEAD_BYTES, decodeReplies, encodeBatch, encodeRequest, type Params, type Reply } from './envelope.js';
import { SendQueue } from './send-queue.js';

export interface RpcClientOptions {
  /** Time to wait for the reply of one attempt. */
  timeoutMs?: number;
  /** Attempts per call when `retry` is on (1 = never resend). */
  attemptsMax?: number;
  inflightRequestsMax?: number;
  /**
   * CURVE: the server's public key and this client's key pair (Z85). A server refuses a client
   * without it, or with a key its ZAP handler does not know; such a call times out (ZeroMQ
   * gives the client no word of the refusal).
   */
  curve?: ClientCurve;
}

export interface ClientCurve {
  serverKey: string;
  publicKey: string;
  secretKey: string;
}

interface Pending {
  settle: (reply: Reply) => void;
}

export class RpcClient {
  readonly endpoint: string;
  private readonly dealer: Dealer;
  private readonly sends: SendQueue<Buffer>;
  private readonly pending = new Map<number, Pending>();
  private readonly timeoutMs: number;
  private readonly attemptsMax: number;
  private readonly inflightMax: number;
  private readonly slotWaiters: Array<() => void> = [];
  private inflight = 0;
  private nextRequestId = 1;
  private closed = false;
  private authFailure: string | undefined;
  /** Encoded requests of this event-loop turn, sent together by flush(). */
  private outbox: Buffer[] = [];

  constructor(endpoint: string, options: RpcClientOptions = {}) {
    if (typeof endpoint !== 'string' || !endpoint) throw new TypeError('endpoint must be a non-empty string');
    this.timeoutMs = options.timeoutMs ?? protocolLimits.rpcTimeoutMsDefault;
    this.attemptsMax = options.attemptsMax ?? protocolLimits.rpcAttemptsMax;
    this.inflightMax = options.inflightRequestsMax ?? protocolLimits.rpcInflightRequestsMax;
    if (!Number.isSafeInteger(this.timeoutMs) || this.timeoutMs < 1) throw new RangeError('timeoutMs must be a positive integer');
    if (!Number.isSafeInteger(this.attemptsMax) || this.attemptsMax < 1) throw new RangeError('attemptsMax must be a positive integer');
    if (!Number.isSafeInteger(this.inflightMax) || this.inflightMax < 1 || this.inflightMax > protocolLimits.rpcInflightRequestsMax) {
      throw new RangeError(`inflightRequestsMax must be in [1, ${protocolLimits.rpcInflightRequestsMax}]`);
    }
    this.endpoint = endpoint;
    const curve = options.curve ? { curveServerKey: options.curve.serverKey, curvePublicKey: options.curve.publicKey, curveSecretKey: options.curve.secretKey } : {};
    this.dealer = new Dealer({
      ...curve,
      linger: 0,
      sendTimeout: this.timeoutMs,
      maxMessageSize: protocolLimits.frameBytesHardMax,
      sendHighWaterMark: protocolLimits.socketHighWaterMarkMessages,
      receiveHighWaterMark: protocolLimits.socketHighWaterMarkMessages,
      reconnectInterval: 50,
      reconnectMaxInterval: 1000,
    });
    // A server that refuses this client's key (or its lack of one) fails the handshake; ZeroMQ
    // retries it forever, so calls in flight and calls until a handshake succeeds end in EAUTH.
    const refused = (what: string) => (data: { error: Error }) => {
      this.authFailure = `${endpoint} refused the connection (${what}: ${data.error.message})`;
      for (const [id, p] of this.pending) p.settle({ requestId: id, ok: false, error: { code: 'EAUTH', message: this.authFailure } });
    };
    this.dealer.events.on('handshake:error:auth', refused('authentication'));
    this.dealer.events.on('handshake:error:protocol', refused('security handshake'));
    this.dealer.events.on('handshake', () => (this.authFailure = undefined));
    this.dealer.connect(endpoint);
    this.sends = new SendQueue((frame) => this.dealer.send(frame), Number.MAX_SAFE_INTEGER);
    void this.receiveLoop();
  }

  /**
   * Sends `method(params)` and resolves with the result, or rejects with a MillpondError
   * carrying the server's code (ETIMEDOUT after the last attempt, ECLOSED after close()).
   * REQUIRES: `retry` only for calls that are idempotent or deduplicated by the server;
   * `requestId` only from FailoverRpc, which gives each of its calls its own (this client's own
   * counter is then unused, so the two never collide).
   */
  async call(method: string, params: Params, options: { retry?: boolean; requestId?: number } = {}): Promise<unknown> {
    if (typeof method !== 'string' || !method) throw new TypeError('method must be a non-empty string');
    if (this.closed) throw new MillpondError('ECLOSED', 'rpc client is closed');
    await this.acquireSlot();
    // A caller's requestId (FailoverRpc: the same id on every server it tries) or the next one.
    const requestId = options.requestId ?? this.nextRequestId++;
    try {
      const frame = encodeRequest({ requestId, method, params });
      if (frame.length > protocolLimits.messageBytesMax) throw new MillpondError('EMSGSIZE', `request of ${frame.length} bytes exceeds ${protocolLimits.messageBytesMax}`);
      const attempts = options.retry === false ? 1 : this.attemptsMax;
      for (let attempt = 1; ; attempt++) {
        const reply = await this.attempt(requestId, frame);
        if (reply === undefined) {
          if (attempt < attempts && !this.closed) continue;
          throw new MillpondError(this.closed ? 'ECLOSED' : 'ETIMEDOUT', `${method} to ${this.endpoint}: no reply after ${attempt} attempt(s) of ${this.timeoutMs} ms`);
        }
        if (reply.ok) return reply.result;
        throw new MillpondError(reply.error.code, reply.error.message);
      }
    } finally {
      this.releaseSlot();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dealer.close();
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.settle({ requestId: id, ok: false, error: { code: 'ECLOSED', message: 'rpc client closed' } });
    }
    for (const wake of this.slotWaiters.splice(0)) wake();
  }

  /** One send and wait; undefined on timeout (or a failed send, which ZeroMQ recovers from). */
  private attempt(requestId: number, frame: Buffer): Promise<Reply | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        resolve(this.authFailure ? { requestId, ok: false, error: { code: 'EAUTH', message: this.authFailure } } : undefined);
      }, this.timeoutMs);
      this.pending.set(requestId, {
        settle: (reply) => {
          clearTimeout(timer);
          this.pending.delete(requestId);
          resolve(reply);
        },
      });
      this.outbox.push(frame);
      if (this.outbox.length === 1) setImmediate(() => this.flush());
    });
  }

  /** Sends the requests of this turn: a lone one as it is, more as batch frames. */
  private flush(): void {
    const frames = this.outbox;
    this.outbox = [];
    if (this.closed) return;
    const bytesMax = protocolLimits.messageBytesMax - BATCH_OVERHEAD_BYTES;
    let start = 0;
    while (start < frames.length) {
      let end = start + 1;
      let bytes = frames[start]!.length;
      while (end < frames.length && end - start < protocolLimits.batchMessagesMax && bytes + frames[end]!.length <= bytesMax) bytes += frames[end++]!.length;
      this.sends.push(end - start === 1 ? frames[start]! : encodeBatch(frames.slice(start, end))).catch(() => {
        // Send timed out (peer down, queue full) or the socket closed: the timers decide.
      });
      start = end;
    }
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.dealer) {
        if (frames.length !== 1) continue;
        let replies: Reply[];
        try {
          replies = decodeReplies(frames[0] as Buffer);
        } catch {
          continue; // a malformed reply can't be matched to a request; its caller times out
        }
        // A late reply to an earlier attempt of a settled request finds nothing here.
        for (const reply of replies) this.pending.get(reply.requestId)?.settle(reply);
      }
    } catch {
      // The socket closed.
    }
  }

  private async acquireSlot(): Promise<void> {
    while (this.inflight >= this.inflightMax) {
      await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
      if (this.closed) throw new MillpondError('ECLOSED', 'rpc client is closed');
    }
    this.inflight++;
  }

  private releaseSlot(): void {
    this.inflight--;
    this.slotWaiters.shift()?.();
  }
}
