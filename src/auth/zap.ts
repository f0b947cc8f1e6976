/**
 * The ZAP handler (ZeroMQ RFC 27) of this process: a REP socket bound at inproc://zeromq.zap.01
 * in zeromq.js's global context, which every CURVE server socket of the process asks, once per
 * connection handshake, whether a client public key may connect. Each server socket names a ZAP
 * domain (its service: "meta", "mgmtd", ...) and registers a policy for it here; a key the
 * policy does not admit is refused with status 400 and the refusal is logged (the public key and
 * the peer address, never anything secret). An unknown domain refuses everything.
 *
 * Contract: register the domain's policy before the server socket binds, and unregister it only
 * after that socket closed (libzmq lets a CURVE handshake through when no handler is bound: the
 * handler binds at the first register() and closes when the last domain is unregistered, so a
 * process whose servers all closed has no socket left to keep it alive).
 */
import { Reply } from 'zeromq';
import { z85Encode } from './curve.js';
import { authLimits } from '../limits.js';
import { logger } from '../log.js';

const authLog = logger('auth');

/** Admits or refuses one client public key (Z85); also gives the ZAP User-Id. */
export type ZapPolicy = (clientKey: string) => boolean;

export interface ZapCounters {
  admitted: number;
  refused: number;
}

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

class ZapHandler {
  readonly counters: ZapCounters = { admitted: 0, refused: 0 };
  private readonly policies = new Map<string, { policy: ZapPolicy; log: (line: string) => void }>();
  private socket: Reply | undefined;
  private bound: Promise<void> | undefined;
  private closed: Promise<void> = Promise.resolve();

  /** Serves `domain` with `policy` until the returned function is called. */
  async register(domain: string, policy: ZapPolicy, log: (line: string) => void): Promise<() => void> {
    if (this.policies.has(domain)) throw new Error(`ZAP domain ${domain} is already served in this process`);
    const entry = { policy, log };
    this.policies.set(domain, entry);
    this.bound ??= this.bind();
    try {
      await this.bound;
    } catch (err) {
      this.unregister(domain, entry);
      throw err;
    }
    return () => this.unregister(domain, entry);
  }

  private unregister(domain: string, entry: { policy: ZapPolicy }): void {
    if (this.policies.get(domain) === entry) this.policies.delete(domain);
    if (this.policies.size === 0 && this.bound) this.closed = this.close();
  }

  private async bind(): Promise<void> {
    await this.closed;
    const socket = new Reply({ linger: 0 });
    this.socket = socket;
    // The last handler's socket is closed; its endpoint is free once libzmq's reaper got to it.
    const waitUntilMs = Date.now() + authLimits.zapRebindWaitMs;
    for (;;) {
      try {
        await socket.bind(ZAP_ENDPOINT);
        break;
      } catch (err) {
        if ((err as { code?: string }).code !== 'EADDRINUSE' || Date.now() >= waitUntilMs) throw err;
        await new Promise((resolve) => setTimeout(resolve, authLimits.zapRebindPauseMs));
      }
    }
    void this.loop(socket);
  }

  private async close(): Promise<void> {
    const bound = this.bound;
    this.bound = undefined;
    await bound?.catch(() => {}); // a bind under way finishes first (a new one waits for this close)
    const socket = this.socket;
    this.socket = undefined;
    // Closed, never unbound: zeromq.js unbinds on a libuv worker thread while this thread may
    // be reading the same socket in loop(), and libzmq sockets are not thread-safe (that race
    // aborted the process in libzmq's pipe.cpp). bind() waits out the endpoint's release.
    socket?.close();
  }

  private async loop(socket: Reply): Promise<void> {
    try {
      for await (const frames of socket) {
        const [version, requestId, domainFrame, address, , mechanism, key] = frames as Buffer[];
        const domain = domainFrame?.toString() ?? '';
        const entry = this.policies.get(domain);
        let status = '400';
        let text = 'refused';
        let clientKey = '';
        if (mechanism?.toString() !== 'CURVE' || !key || key.length !== 32) {
          text = 'only CURVE clients are served';
        } else {
          clientKey = z85Encode(key);
          let admitted = false;
          try {
            admitted = entry?.policy(clientKey) ?? false;
          } catch {
            admitted = false;
          }
          if (admitted) (status = '200', text = 'OK');
          else text = 'unknown client key';
        }
        if (status === '200') this.counters.admitted++;
        else {
          this.counters.refused++;
          (entry?.log ?? authLog.warn)(`auth: ${domain || '?'} refused a connection from ${address?.toString() || '?'}: ${text}${clientKey ? ` (client key ${clientKey})` : ''}`);
        }
        await socket.send([version ?? '1.0', requestId ?? '', status, text, status === '200' ? clientKey : '', '']);
      }
    } catch {
      // The process is exiting (the context closed).
    }
  }
}

/** The one handler of this process (one zeromq.js context). */
export const zap = new ZapHandler();
