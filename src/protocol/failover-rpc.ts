/**
 * FailoverRpc: a client of one service served by several equal servers (meta servers over one
 * PostgreSQL database). It sticks to the server that answered last; an attempt that gets no
 * reply moves on to the next address and the call is resent there under the SAME requestId.
 * The servers keep a mutation's result keyed by (clientId, requestId) in the shared database,
 * so a mutation the first server applied before it died is not applied again by the second.
 * One address behaves as a plain RpcClient: attemptsMax attempts of timeoutMs each.
 */
import { MillpondError } from '../errors.js';
import { protocolLimits } from '../limits.js';
import type { Params } from './envelope.js';
import { RpcClient, type RpcClientOptions } from './rpc-client.js';

/** Splits "tcp://a:1,tcp://b:2" (or a list) into endpoints; refuses an empty list. */
export function endpointList(endpoints: string | string[]): string[] {
  const list = (typeof endpoints === 'string' ? endpoints.split(',') : endpoints).map((e) => (typeof e === 'string' ? e.trim() : e)).filter(Boolean);
  if (list.length === 0 || !list.every((e) => typeof e === 'string')) throw new TypeError('endpoints must be a non-empty list of tcp://host:port');
  if (list.length > protocolLimits.rpcServersMax) throw new RangeError(`at most ${protocolLimits.rpcServersMax} endpoints, got ${list.length}`);
  return list;
}

export class FailoverRpc {
  private readonly clients: RpcClient[];
  private readonly attemptsMax: number;
  private readonly timeoutMs: number;
  private current = 0;
  private nextRequestId = 1;

  constructor(endpoints: string | string[], options: RpcClientOptions = {}) {
    this.attemptsMax = options.attemptsMax ?? protocolLimits.rpcAttemptsMax;
    if (!Number.isSafeInteger(this.attemptsMax) || this.attemptsMax < 1) throw new RangeError('attemptsMax must be a positive integer');
    this.timeoutMs = options.timeoutMs ?? protocolLimits.rpcTimeoutMsDefault;
    this.clients = endpointList(endpoints).map((e) => new RpcClient(e, { ...options, attemptsMax: 1 }));
  }

  /** Where the next call goes. */
  get endpoint(): string {
    return this.clients[this.current]!.endpoint;
  }

  get endpoints(): string[] {
    return this.clients.map((c) => c.endpoint);
  }

  /**
   * As RpcClient.call; each attempt without a reply moves to the next address.
   * REQUIRES: `retry` only for calls that are idempotent or deduplicated by the servers.
   */
  async call(method: string, params: Params, options: { retry?: boolean } = {}): Promise<unknown> {
    const requestId = this.nextRequestId++;
    const attempts = options.retry === false ? 1 : this.attemptsMax;
    for (let attempt = 1; ; attempt++) {
      const at = this.current;
      try {
        const result = await this.clients[at]!.call(method, params, { retry: false, requestId });
        return result;
      } catch (err) {
        if (!(err instanceof MillpondError) || err.code !== 'ETIMEDOUT' || attempt >= attempts) {
          if (err instanceof MillpondError && err.code === 'ETIMEDOUT') {
            throw new MillpondError('ETIMEDOUT', `${method} to ${this.endpoints.join(', ')}: no reply after ${attempt} attempt(s) of ${this.timeoutMs} ms`);
          }
          throw err;
        }
        if (this.current === at) this.current = (at + 1) % this.clients.length;
      }
    }
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}
