/**
 * MgmtdClient: calls mgmtd given the addresses of all mgmtd instances. It sticks to the one
 * that answered last and moves to the next on ENOTPRIMARY (a standby), a timeout or a closed
 * socket, for at most clusterLimits.mgmtdCallRoundsMax rounds over the list.
 */
import { clientCurve, type ClientAuth, type ClusterAuth } from '../auth/credentials.js';
import { MillpondError } from '../errors.js';
import { clusterLimits } from '../limits.js';
import type { Params } from '../protocol/envelope.js';
import { RpcClient } from '../protocol/rpc-client.js';
import { heartbeatText, nodeProof, registerText } from './node-proof.js';
import type { ChainTableRecord, HeartbeatTarget, NodeKind, Routing } from '../protocol/mgmtd-types.js';

/** A storage process's data-server byte counters (protocol.ts, mgmtd.heartbeat). */
export interface NodeDataCounters { dataReadBytes: number; dataWrittenBytes: number; pid: number }

export interface MgmtdClientOptions {
  /** Per attempt at one address. */
  timeoutMs?: number;
  roundsMax?: number;
  /** A client's token: sent with every call (createChainTable needs the admin's). */
  auth?: ClientAuth;
  /** A daemon's keys: connect as a cluster member, prove registrations and heartbeats. */
  cluster?: ClusterAuth;
}

const FAILOVER = new Set(['ENOTPRIMARY', 'ETIMEDOUT', 'ECLOSED', 'ECONNREFUSED', 'ECONNRESET']);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class MgmtdClient {
  private readonly clients: RpcClient[];
  private current = 0;
  private readonly roundsMax: number;
  private closed = false;
  private readonly token: string | undefined;
  private readonly cluster: ClusterAuth | undefined;

  constructor(addresses: string[] | string, options: MgmtdClientOptions = {}) {
    const list = typeof addresses === 'string' ? addresses.split(',').filter(Boolean) : addresses;
    if (!Array.isArray(list) || list.length === 0 || !list.every((a) => typeof a === 'string' && a.length > 0)) {
      throw new TypeError('addresses must be a non-empty list of endpoints');
    }
    const timeoutMs = options.timeoutMs ?? clusterLimits.mgmtdCallTimeoutMsDefault;
    this.roundsMax = options.roundsMax ?? clusterLimits.mgmtdCallRoundsMax;
    if (!Number.isSafeInteger(this.roundsMax) || this.roundsMax < 1) throw new RangeError('roundsMax must be a positive integer');
    this.token = options.auth?.token;
    this.cluster = options.cluster;
    const curve = options.cluster ? options.cluster.memberCurve : options.auth ? clientCurve(options.auth) : undefined;
    this.clients = list.map((a) => new RpcClient(a, { timeoutMs, attemptsMax: 1, curve }));
  }

  get addresses(): string[] {
    return this.clients.map((c) => c.endpoint);
  }

  async call(method: string, params: Params): Promise<unknown> {
    let last: unknown;
    for (let round = 0; round < this.roundsMax; round++) {
      // A refusal (EAUTH) by one address moves on too, as the native client does: an mgmtd that
      // is closing refuses handshakes for a moment. Only when every address refused is it final.
      let refused = 0;
      for (let i = 0; i < this.clients.length; i++) {
        if (this.closed) throw new MillpondError('ECLOSED', 'mgmtd client is closed');
        const at = this.current;
        try {
          return await this.clients[at]!.call(method, this.token ? { ...params, token: this.token } : params);
        } catch (err) {
          if (!(err instanceof MillpondError) || !(FAILOVER.has(err.code) || err.code === 'EAUTH')) throw err;
          if (err.code === 'EAUTH') refused++;
          last = err;
          if (this.current === at) this.current = (at + 1) % this.clients.length;
        }
      }
      if (refused === this.clients.length) throw last;
      await sleep(Math.random() * clusterLimits.mgmtdRetryBackoffMsMax);
    }
    throw last instanceof MillpondError && last.code === 'ENOTPRIMARY'
      ? new MillpondError('ETIMEDOUT', `no mgmtd primary among ${this.addresses.join(', ')}: ${last.message}`)
      : last;
  }

  registerNode(nodeId: number, kind: NodeKind, controlAddress: string, targets: Array<{ targetId: number; dataAddress: string }>) {
    const params = { nodeId, kind, controlAddress, targets };
    const proof = this.cluster ? nodeProof(this.cluster.secret, nodeId, registerText(params)) : undefined;
    return this.call('mgmtd.registerNode', { ...params, proof }) as Promise<{ version: number }>;
  }

  heartbeat(nodeId: number, appliedVersion: number, targets: HeartbeatTarget[],
    counters?: NodeDataCounters) {
    const params = { nodeId, appliedVersion, targets };
    const proof = this.cluster ? nodeProof(this.cluster.secret, nodeId, heartbeatText(params)) : undefined;
    return this.call('mgmtd.heartbeat', { ...params, ...counters, proof }) as Promise<{ version: number }>;
  }

  getRouting(knownVersion?: number) {
    return this.call('mgmtd.getRouting', { knownVersion }) as Promise<Routing | { version: number; unchanged: true }>;
  }

  createChainTable(tableId: number, spec: { chains: Array<{ chainId: number; targets: number[] }> } | { chainCount: number; chainLength: number; firstChainId?: number }) {
    const member = this.cluster && !this.token ? this.cluster.memberProof('mgmtd.createChainTable') : undefined;
    return this.call('mgmtd.createChainTable', { tableId, ...spec, member }) as Promise<ChainTableRecord>;
  }

  /** What the chains can hold (mgmtd.capacity). */
  capacity() {
    return this.call('mgmtd.capacity', {}) as Promise<{ capacityBytes: number; freeBytes: number; replicas: number; targets?: Array<{ targetId: number; capacityBytes: number; freeBytes: number }> }>;
  }

  /** An admin call (mgmtd.admin*): the admin's token, or a member's proof for a daemon's client. */
  admin<T = unknown>(method: 'adminView' | 'adminCreateTable' | 'adminGrowTable' | 'adminRebalance' | 'adminReplace' | 'adminDrain' | 'adminRemoveNode', params: Params = {}): Promise<T> {
    const member = this.cluster && !this.token ? this.cluster.memberProof(`mgmtd.${method}`) : undefined;
    return this.call(`mgmtd.${method}`, { ...params, member }) as Promise<T>;
  }

  /** Status of the instance that answers (standbys answer too, with primary: false). */
  status() {
    return this.call('mgmtd.status', {}) as Promise<{ primary: boolean; instanceId: string; primaryAddress?: string; routing?: Routing }>;
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients) c.close();
  }
}
