/**
 * A control-plane server: a ZeroMQ ROUTER that decodes requests, runs the handler of each
 * method (many at once, bounded) and sends one reply per request. A malformed message gets an
 * EPROTO/EMSGSIZE reply (requestId 0 when its id could not be read) and the server serves on;
 * frames above protocolLimits.frameBytesHardMax make libzmq drop the sender's connection.
 *
 * Requests that came in a batch frame are answered in batch frames: the replies ready in one
 * event-loop turn go to their peer together (one ZeroMQ send, one CURVE box), split at
 * protocolLimits.batchMessagesMax replies or messageBytesMax bytes. Replies waiting for that
 * turn count against serverSendQueueDepthMax like queued sends.
 */
import { Router } from 'zeromq';
import { MillpondError } from '../errors.js';
import { protocolLimits } from '../limits.js';
import { BATCH_OVERHEAD_BYTES, decodeRequests, encodeBatch, encodeReply, ProtocolError, UNKNOWN_REQUEST_ID, type Params, type Reply, type Request } from './envelope.js';
import { SendQueue } from './send-queue.js';
import { zap, type ZapPolicy } from '../auth/zap.js';
import { logger } from '../log.js';

const rpcLog = logger('rpc');

/**
 * CURVE on a server socket: its secret key (the cluster's curve/server key), and which client
 * keys the process's ZAP handler admits. Without it the socket speaks plain ZeroMQ (tests and
 * benchmarks that measure the cost of authentication only).
 */
export interface ServerCurve {
  secretKey: string;
  /** A name for the service in logs ("meta", "mgmtd"); a unique ZAP domain is made from it. */
  service: string;
  admit: ZapPolicy;
  log?: (line: string) => void;
}

let zapDomains = 0;

export interface CallContext {
  method: string;
  requestId: number;
  /** The ZeroMQ routing identity of the caller (one per client socket). */
  peer: Buffer;
}

export type Handler = (params: Params, context: CallContext) => Promise<unknown> | unknown;

export interface RpcServerCounters {
  requests: number;
  malformed: number;
  failed: number;
}

/** `tcp://host:0` means "any free port" (ZeroMQ spells it `*`). */
function zmqEndpoint(endpoint: string): string {
  return endpoint.replace(/^(tcp:\/\/.+):0$/, '$1:*');
}

export class RpcServer {
  readonly counters: RpcServerCounters = { requests: 0, malformed: 0, failed: 0 };
  private readonly router: Router;
  private readonly sends: SendQueue<[Buffer, Buffer]>;
  private inflight = 0;
  private slotWaiter: (() => void) | undefined;
  private closed = false;
  private readonly loopDone: Promise<void>;
  /** Encoded replies to batched requests, per peer (latin1 of its routing id), not yet sent. */
  private readonly outbox = new Map<string, { peer: Buffer; frames: Buffer[] }>();
  private outboxCount = 0;
  private flushScheduled = false;

  private constructor(router: Router, private readonly handlers: ReadonlyMap<string, Handler>, private readonly unregister: () => void) {
    this.router = router;
    this.sends = new SendQueue((frames) => this.router.send(frames), protocolLimits.serverSendQueueDepthMax);
    this.loopDone = this.loop();
  }

  static async bind(endpoint: string, handlers: ReadonlyMap<string, Handler>, curve?: ServerCurve): Promise<RpcServer> {
    if (typeof endpoint !== 'string') throw new TypeError('endpoint must be a string');
    let unregister = () => {};
    let security = {};
    if (curve) {
      const zapDomain = `${curve.service}#${++zapDomains}`;
      unregister = await zap.register(zapDomain, curve.admit, curve.log ?? rpcLog.warn);
      security = { curveServer: true, curveSecretKey: curve.secretKey, zapDomain };
    }
    const router = new Router({
      ...security,
      linger: 0,
      maxMessageSize: protocolLimits.frameBytesHardMax,
      sendHighWaterMark: protocolLimits.socketHighWaterMarkMessages,
      receiveHighWaterMark: protocolLimits.socketHighWaterMarkMessages,
    });
    try {
      await router.bind(zmqEndpoint(endpoint));
    } catch (err) {
      router.close();
      unregister();
      throw new MillpondError('EINVAL', `cannot bind ${endpoint}: ${(err as Error).message}`);
    }
    return new RpcServer(router, handlers, unregister);
  }

  /** The bound endpoint with its real port, e.g. tcp://127.0.0.1:41234. */
  get endpoint(): string {
    return this.router.lastEndpoint ?? '';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.router.close();
    this.unregister();
    this.slotWaiter?.();
    await this.loopDone;
  }

  /** Waits until a request may start: inflight and queued replies below their limits. */
  private async slot(): Promise<boolean> {
    while (this.inflight >= protocolLimits.serverInflightRequestsMax || this.sends.depth + this.outboxCount >= this.sends.depthMax) {
      await new Promise<void>((resolve) => (this.slotWaiter = resolve));
      if (this.closed) return false;
    }
    return true;
  }

  private async loop(): Promise<void> {
    try {
      for await (const frames of this.router) {
        const [peer, ...body] = frames as Buffer[];
        if (!peer) continue;
        if (!(await this.slot())) return;
        if (body.length !== 1) {
          this.counters.malformed++;
          this.reply(peer, { requestId: UNKNOWN_REQUEST_ID, ok: false, error: { code: 'EPROTO', message: `request must be one frame, got ${body.length}` } }, false);
          continue;
        }
        let decoded: ReturnType<typeof decodeRequests>;
        try {
          decoded = decodeRequests(body[0]!);
        } catch (err) {
          void this.serve(peer, err as ProtocolError, false);
          continue;
        }
        for (let i = 0; i < decoded.requests.length; i++) {
          if (i > 0 && !(await this.slot())) return;
          void this.serve(peer, decoded.requests[i]!, decoded.batch);
        }
      }
    } catch (err) {
      if (!this.closed) rpcLog.error(`rpc server receive loop ended: ${(err as Error).message}`);
    }
  }

  private async serve(peer: Buffer, decoded: Request | ProtocolError, batched: boolean): Promise<void> {
    this.inflight++;
    let requestId = UNKNOWN_REQUEST_ID;
    try {
      if (decoded instanceof ProtocolError) throw decoded;
      const request = decoded;
      requestId = request.requestId;
      const handler = this.handlers.get(request.method);
      if (!handler) throw new ProtocolError('EPROTO', `unknown method ${JSON.stringify(request.method)}`, requestId);
      this.counters.requests++;
      const result = await handler(request.params, { method: request.method, requestId, peer });
      this.reply(peer, { requestId, ok: true, result: result ?? null }, batched);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.counters.malformed++;
        this.reply(peer, { requestId: err.requestId || requestId, ok: false, error: { code: err.code, message: err.message } }, batched);
      } else if (err instanceof MillpondError) {
        this.counters.failed++;
        this.reply(peer, { requestId, ok: false, error: { code: err.code, message: err.message } }, batched);
      } else {
        // A bug or an unexpected backend failure: the caller learns it, the server serves on.
        this.counters.failed++;
        this.reply(peer, { requestId, ok: false, error: { code: 'EINTERNAL', message: String((err as Error)?.message ?? err) } }, batched);
      }
    } finally {
      this.inflight--;
      const wake = this.slotWaiter;
      this.slotWaiter = undefined;
      wake?.();
    }
  }

  private reply(peer: Buffer, reply: Reply, batched: boolean): void {
    if (this.closed) return;
    let frame: Buffer;
    try {
      frame = encodeReply(reply);
    } catch (err) {
      frame = encodeReply({ requestId: reply.requestId, ok: false, error: { code: 'EINTERNAL', message: `unencodable result: ${(err as Error).message}` } });
    }
    if (frame.length > protocolLimits.messageBytesMax) {
      frame = encodeReply({ requestId: reply.requestId, ok: false, error: { code: 'EMSGSIZE', message: `reply of ${frame.length} bytes exceeds ${protocolLimits.messageBytesMax}` } });
    }
    if (!batched) {
      this.send(peer, frame);
      return;
    }
    const key = peer.toString('latin1');
    let box = this.outbox.get(key);
    if (!box) this.outbox.set(key, (box = { peer, frames: [] }));
    box.frames.push(frame);
    this.outboxCount++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends each peer's waiting replies, as few frames as the batch limits allow. */
  private flush(): void {
    this.flushScheduled = false;
    const boxes = [...this.outbox.values()];
    this.outbox.clear();
    this.outboxCount = 0;
    if (this.closed) return;
    const bytesMax = protocolLimits.messageBytesMax - BATCH_OVERHEAD_BYTES;
    for (const { peer, frames } of boxes) {
      let start = 0;
      while (start < frames.length) {
        let end = start + 1;
        let bytes = frames[start]!.length;
        while (end < frames.length && end - start < protocolLimits.batchMessagesMax && bytes + frames[end]!.length <= bytesMax) bytes += frames[end++]!.length;
        this.send(peer, end - start === 1 ? frames[start]! : encodeBatch(frames.slice(start, end)));
        start = end;
      }
    }
  }

  private send(peer: Buffer, frame: Buffer): void {
    // A peer gone away is not the server's problem: ROUTER drops unroutable replies.
    this.sends.push([peer, frame]).catch(() => {}).finally(() => {
      const wake = this.slotWaiter;
      this.slotWaiter = undefined;
      wake?.();
    });
  }
}
