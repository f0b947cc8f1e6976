/**
 * Serves a MgmtdService over the control-plane protocol (one ZeroMQ ROUTER).
 *
 * With `auth` (every real deployment) the socket is a CURVE server. Its ZAP policy admits cluster
 * daemons (the curve/member key) and the tokens meta lists (meta pushes them with
 * mgmtd.setClientTokens, a member-only call). Then, per request:
 *   registerNode, heartbeat   a proof under the node's key (node-proof.ts), else EAUTH
 *   createChainTable          the admin's token (uid 0, listed by meta) or a member's proof
 *                             (a daemon holding S), else EACCES/EAUTH
 *   mgmtd.admin*              the admin's token or a member's proof, as createChainTable
 *   getRouting, status        any admitted caller
 *   executorReport/Leave      a token: the uid that first reported the executor, or the admin
 *                             (executors.ts, soft state with a TTL); executors: any admitted caller
 *   jobReport / jobs          the same rules for engine jobs (jobs.ts)
 * A target stays bound to the node that registered it first (the service refuses a move), and
 * a node's heartbeat speaks only for its own targets, so syncing-done and state changes come
 * only from the owning node. Refusals are logged; the server serves on.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ClusterAuth } from '../auth/credentials.js';
import { curveClientSecret, keyPairOf } from '../auth/curve.js';
import { parseToken, tokenSecret, tokenValid } from '../auth/keys.js';
import { MillpondError } from '../errors.js';
import { adminLimits, authLimits, clusterLimits } from '../limits.js';
import { RpcServer, type Handler } from '../protocol/rpc-server.js';
import type { Params } from '../protocol/envelope.js';
import { optUint, str, uint } from '../protocol/fields.js';
import type { MgmtdService } from './mgmtd-service.js';
import { heartbeatText, nodeProofValid, registerText } from './node-proof.js';
import { decodeCreateChainTable, decodeHeartbeat, decodeRegister, MGMTD_METHODS, type MgmtdMethod } from '../protocol/mgmtd.js';
import { refusalLog } from '../auth/refusal-log.js';
import { EXECUTOR_METHODS, ExecutorRegistry, executorHandlers } from './executors.js';
import { JOB_METHODS, JobRegistry, jobHandlers } from './jobs.js';
import { logger } from '../log.js';

/** The tokens meta lists, as mgmtd keeps them: tokenId -> uid and CURVE public key. */
class ClientTokens {
  private byId = new Map<string, { uid: number; publicKey: string }>();
  private keys = new Set<string>();

  constructor(private readonly cluster: ClusterAuth) {}

  admit = (clientKey: string): boolean => clientKey === this.cluster.member.publicKey || this.keys.has(clientKey);

  set(text: string): void {
    const byId = new Map<string, { uid: number; publicKey: string }>();
    for (const item of text ? text.split(',') : []) {
      const [uidText, tokenId] = item.split(':');
      const uid = Number(uidText);
      if (!tokenId || !/^[0-9a-f]{16}$/.test(tokenId) || !Number.isSafeInteger(uid) || uid < 0) throw new MillpondError('EPROTO', 'tokens must be uid:tokenId,...');
      const old = this.byId.get(tokenId);
      byId.set(tokenId, old && old.uid === uid ? old : { uid, publicKey: keyPairOf(curveClientSecret(tokenSecret(this.cluster.secret, uid, tokenId))).publicKey });
      if (byId.size > authLimits.usersMax * authLimits.tokensPerUserMax) throw new MillpondError('EPROTO', 'too many tokens');
    }
    this.byId = byId;
    this.keys = new Set([...byId.values()].map((v) => v.publicKey));
  }

  /** The uid of a valid, listed token; EAUTH otherwise. */
  uidOf(token: unknown): number {
    if (typeof token !== 'string') throw new MillpondError('EAUTH', 'the request carries no token');
    const t = parseToken(token);
    const listed = this.byId.get(t.tokenId);
    if (!listed || listed.uid !== t.uid || !tokenValid(this.cluster.secret, t)) throw new MillpondError('EAUTH', `token ${t.tokenId} of uid ${t.uid} is not a listed token of this cluster`);
    return t.uid;
  }
}

function handlers(s: MgmtdService, cluster: ClusterAuth | undefined, tokens: ClientTokens | undefined): Record<MgmtdMethod, (p: Params) => unknown> {
  const requireAdmin = (p: Params, what: string) => {
    if (!tokens || !cluster) return;
    // A cluster daemon (holder of S) may too: its proof names the method.
    if (p.member !== undefined && p.member !== null) {
      const expected = cluster.memberProof(what);
      const proof = Buffer.isBuffer(p.member) || p.member instanceof Uint8Array ? Buffer.from(p.member) : Buffer.alloc(0);
      if (proof.length === expected.length && timingSafeEqual(proof, expected)) return;
      throw new MillpondError('EAUTH', `${what}: not a cluster member's proof`);
    }
    const uid = tokens.uidOf(p.token);
    if (uid !== 0) throw new MillpondError('EACCES', `${what} needs the admin token (uid 0); uid ${uid} asked`);
  };
  const requireNode = (nodeId: number, text: string, proof: unknown) => {
    if (cluster && !nodeProofValid(cluster.secret, nodeId, text, proof)) throw new MillpondError('EAUTH', `no valid proof of node ${nodeId}'s key`);
  };
  return {
    'mgmtd.registerNode': (p) => {
      const { node, targets } = decodeRegister(p);
      requireNode(node.nodeId, registerText({ ...node, targets }), p.proof);
      return s.registerNode(node, targets);
    },
    'mgmtd.heartbeat': (p) => {
      const h = decodeHeartbeat(p);
      requireNode(h.nodeId, heartbeatText(h), p.proof);
      return s.heartbeat(h.nodeId, h.appliedVersion, h.targets, h.counters);
    },
    'mgmtd.getRouting': (p) => s.getRouting(optUint(p, 'knownVersion')),
    'mgmtd.createChainTable': (p) => {
      const req = decodeCreateChainTable(p);
      requireAdmin(p, 'mgmtd.createChainTable');
      const chains = req.chains ?? s.planChains(req.plan.firstChainId ?? 1, req.plan.chainCount, req.plan.chainLength);
      return s.createChainTable(req.tableId, chains);
    },
    'mgmtd.adminView': (p) => (requireAdmin(p, 'mgmtd.adminView'), s.adminView()),
    'mgmtd.adminCreateTable': (p) => {
      const tableId = uint(p, 'tableId', 0xffffffff);
      const replicas = uint(p, 'replicas', adminLimits.replicasMax);
      const chainCount = optUint(p, 'chainCount', clusterLimits.chainsMax);
      requireAdmin(p, 'mgmtd.adminCreateTable');
      return s.adminCreateTable(tableId, replicas, chainCount);
    },
    'mgmtd.adminGrowTable': (p) => {
      const tableId = uint(p, 'tableId', 0xffffffff);
      const replicas = optUint(p, 'replicas', adminLimits.replicasMax);
      const chainCount = optUint(p, 'chainCount', clusterLimits.chainsMax);
      requireAdmin(p, 'mgmtd.adminGrowTable');
      return s.adminGrowTable(tableId, replicas, chainCount);
    },
    'mgmtd.adminRebalance': (p) => {
      // A number of MiB/s, fractions allowed (0.5: 512 KiB/s); setRebalance checks its range.
      const rateMiBs = typeof p.rateMiBs === 'number' ? p.rateMiBs : uint(p, 'rateMiBs', adminLimits.rebalanceRateMiBsMax);
      requireAdmin(p, 'mgmtd.adminRebalance');
      return s.adminRebalance(rateMiBs);
    },
    'mgmtd.adminReplace': (p) => {
      const oldId = uint(p, 'oldTargetId', 0xffffffff);
      const newId = uint(p, 'newTargetId', 0xffffffff);
      requireAdmin(p, 'mgmtd.adminReplace');
      return s.adminReplace(oldId, newId);
    },
    'mgmtd.adminDrain': (p) => {
      const nodeId = uint(p, 'nodeId', 0xffffffff);
      requireAdmin(p, 'mgmtd.adminDrain');
      return s.adminDrain(nodeId);
    },
    'mgmtd.adminRemoveNode': (p) => {
      const nodeId = uint(p, 'nodeId', 0xffffffff);
      requireAdmin(p, 'mgmtd.adminRemoveNode');
      return s.adminRemoveNode(nodeId, p.force === true);
    },
    'mgmtd.status': () => s.status(),
    'mgmtd.capacity': () => s.capacity(),
    'mgmtd.setClientTokens': (p) => {
      if (!cluster || !tokens) throw new MillpondError('ENOTSUP', 'this mgmtd runs without authentication');
      const text = str(p, 'tokens');
      const want = createHmac('sha256', Buffer.alloc(0)).digest(); // same length as a proof
      const proof = Buffer.isBuffer(p.proof) || p.proof instanceof Uint8Array ? Buffer.from(p.proof) : want;
      const expected = cluster.memberProof(`mgmtd.setClientTokens|${text}`);
      if (proof.length !== expected.length || !timingSafeEqual(proof, expected)) throw new MillpondError('EAUTH', 'mgmtd.setClientTokens needs a cluster member\'s proof');
      tokens.set(text);
      return s.saveClientTokens(text).then(() => null);
    },
  };
}

export interface MgmtdServerOptions {
  /** The cluster's keys (omit only for an unauthenticated baseline or unit tests). */
  auth?: ClusterAuth;
  log?: (line: string) => void;
}


export class MgmtdServer {
  private constructor(private readonly rpc: RpcServer, readonly service: MgmtdService) {}

  /**
   * Binds `endpoint` (tcp://host:0 for any free port), then makes the service with the bound
   * address (which standbys name to callers) and serves it.
   */
  static async start(endpoint: string, makeService: (address: string) => MgmtdService, options: MgmtdServerOptions = {}): Promise<MgmtdServer> {
    const log = options.log ?? logger('mgmtd').warn;
    const cluster = options.auth;
    const tokens = cluster ? new ClientTokens(cluster) : undefined;
    const refused = refusalLog(log);
    let table: Record<string, (p: Params) => unknown> | undefined;
    const map = new Map<string, Handler>([...MGMTD_METHODS, ...EXECUTOR_METHODS, ...JOB_METHODS].map((m) => [m, async (p: Params) => {
      try {
        return await table![m]!(p);
      } catch (err) {
        if (err instanceof MillpondError && (err.code === 'EAUTH' || err.code === 'EACCES')) {
          refused(`auth: mgmtd refused ${m}${typeof p.nodeId === 'number' ? ` for node ${p.nodeId}` : ''}: ${err.code} ${err.message}`);
        }
        throw err;
      }
    }]));
    const curve = cluster && tokens ? { secretKey: cluster.server.secretKey, service: 'mgmtd', admit: tokens.admit, log } : undefined;
    const rpc = await RpcServer.bind(endpoint, map, curve);
    const service = makeService(rpc.endpoint);
    const uidOf = (p: Params) => tokens?.uidOf(p.token) ?? 0;
    table = { ...handlers(service, cluster, tokens), ...executorHandlers(service, new ExecutorRegistry(), uidOf), ...jobHandlers(service, new JobRegistry(), uidOf) };
    // A restart admits the clients meta listed last, not none until meta's next push.
    const kept = tokens ? await service.loadClientTokens().catch(() => undefined) : undefined;
    if (kept !== undefined) tokens!.set(kept);
    return new MgmtdServer(rpc, service);
  }

  get endpoint(): string {
    return this.rpc.endpoint;
  }

  get counters() {
    return this.rpc.counters;
  }

  /** Stops serving, then gives the lease up if this instance is primary. */
  async close(): Promise<void> {
    await this.rpc.close();
    await this.service.stop();
  }
}
