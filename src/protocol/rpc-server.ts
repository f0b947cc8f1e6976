/**
 * A control-plane server: a ZeroMQ ROUTER that decodes requests, runs the handler of each
 * method (many at once, bounded) and sends one reply per request. A malformed message gets an
 * EPROTO/EMSGSIZE reply (requestId 0 when its id could not be read) and the server serves on;
 * frames above protocolLimits.frameBytesHardMax make libzmq drop the sender's connection.
 */
import { Router } from 'zeromq';
import { MillpondError } from '../errors.js';
import { protocolLimits } from '../limits.js';
import { decodeRequest, encodeReply, ProtocolError, UNKNOWN_REQUEST_ID, type Params, type Reply } from './envelope.js';
import { SendQueue } from './send-queue.js';
import { zap, type ZapPolicy } from '../auth/zap.js';

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
      unregister = await zap.register(zapDomain, curve.admit, curve.log ?? ((line) => console.error(line)));
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

  private async loop(): Promise<void> {
    try {
      for await (const frames of this.router) {
        const [peer, ...body] = frames as Buffer[];
        if (!peer) continue;
        while (this.inflight >= protocolLimits.serverInflightRequestsMax || this.sends.depth >= this.sends.depthMax) {
          await new Promise<void>((resolve) => (this.slotWaiter = resolve));
          if (this.closed) return;
        }
        if (body.length !== 1) {
          this.counters.malformed++;
          this.reply(peer, { requestId: UNKNOWN_REQUEST_ID, ok: false, error: { code: 'EPROTO', message: `request must be one frame, got ${body.length}` } });
          continue;
        }
        void this.serve(peer, body[0]!);
      }
    } catch (err) {
      if (!this.closed) console.error(`rpc server receive loop ended: ${(err as Error).message}`);
    }
  }

  private async serve(peer: Buffer, frame: Buffer): Promise<void> {
    this.inflight++;
    let requestId = UNKNOWN_REQUEST_ID;
    try {
      const request = decodeRequest(frame);
      requestId = request.requestId;
      const handler = this.handlers.get(request.method);
      if (!handler) throw new ProtocolError('EPROTO', `unknown method ${JSON.stringify(request.method)}`, requestId);
      this.counters.requests++;
      const result = await handler(request.params, { method: request.method, requestId, peer });
      this.reply(peer, { requestId, ok: true, result: result ?? null });
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.counters.malformed++;
        this.reply(peer, { requestId: err.requestId || requestId, ok: false, error: { code: err.code, message: err.message } });
      } else if (err instanceof MillpondError) {
        this.counters.failed++;
        this.reply(peer, { requestId, ok: false, error: { code: err.code, message: err.message } });
      } else {
        // A bug or an unexpected backend failure: the caller learns it, the server serves on.
        this.counters.failed++;
        this.reply(peer, { requestId, ok: false, error: { code: 'EINTERNAL', message: String((err as Error)?.message ?? err) } });
      }
    } finally {
      this.inflight--;
      const wake = this.slotWaiter;
      this.slotWaiter = undefined;
      wake?.();
    }
  }

  private reply(peer: Buffer, reply: Reply): void {
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
    // A peer gone away is not the server's problem: ROUTER drops unroutable replies.
    this.sends.push([peer, frame]).catch(() => {}).finally(() => {
      const wake = this.slotWaiter;
      this.slotWaiter = undefined;
      wake?.();
    });
  }
}
