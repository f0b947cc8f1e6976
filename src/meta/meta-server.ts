/**
 * Serves a MetaService over the control-plane protocol (one ZeroMQ ROUTER).
 *
 * With `auth` (every real deployment): the socket is a CURVE server whose ZAP policy admits
 * cluster daemons and the keys of listed tokens; each request's `token` names its user (EAUTH
 * when it does not), permissions are checked as that user, `actAs` is honoured for proxy users
 * and the admin only (EACCES otherwise), and user management needs the admin. Refusals are
 * logged (method, uid, token id; never a secret). Without `auth` the request's `user` is
 * trusted: a baseline for benchmarks, never a cluster anyone can reach.
 */
import { meteredMetaOp, metaOpName } from '../metrics/services.js';
import { mintToken, formatToken } from '../auth/keys.js';
import type { ClusterAuth } from '../auth/credentials.js';
import { MillpondError } from '../errors.js';
import { authLimits, metaLimits } from '../limits.js';
import type { Params } from '../protocol/envelope.js';
import { list, map, optMap, optStr, optUint, str, u64, uint, bool } from '../protocol/fields.js';
import { decodeClientId, decodeFlags, decodeUser, type MetaMethod } from '../protocol/meta.js';
import { RpcClient } from '../protocol/rpc-client.js';
import { RpcServer, type CallContext, type Handler } from '../protocol/rpc-server.js';
import { PackedResult, ProtocolError } from '../protocol/envelope.js';
import { Authenticator } from './authenticator.js';
import type { Dedup, MetaService } from './meta-service.js';
import type { User } from '../protocol/meta-types.js';
import { addToken, addUser, getUser, listUsers, removeUser, type Identity } from './users.js';
import type { ObjectAttrs } from '../protocol/meta-types.js';
import { refusalLog } from '../auth/refusal-log.js';
import { logger } from '../log.js';

type MetaHandler = (params: Params, dedup: Dedup | undefined, who: Identity) => Promise<unknown>;

const ROOT: Identity = { name: 'root', uid: 0, gid: 0, tokenId: '', admin: true, proxy: true };

function requireAdmin(who: Identity, what: string): void {
  if (!who.admin) throw new MillpondError('EACCES', `${what} needs the admin token (uid 0); uid ${who.uid} asked`);
}

function handlers(service: MetaService, authn: Authenticator | undefined, changed: () => Promise<void>): Record<MetaMethod, MetaHandler> {
  // The identity permissions are checked as: the caller's, or the one a proxy acts for.
  const user = (p: Params, who: Identity): User => {
    if (p.actAs === undefined || p.actAs === null) return who;
    if (!who.proxy && !who.admin) throw new MillpondError('EACCES', `uid ${who.uid} is not a proxy user: actAs refused`);
    return decodeUser(p, 'actAs');
  };
  const users = (fn: Parameters<MetaService['kv']['transact']>[0]) => service.kv.transact(fn);
  const cluster = (): ClusterAuth => {
    if (!authn) throw new MillpondError('ENOTSUP', 'this meta server runs without authentication: it has no users');
    return authn.cluster;
  };
  return {
    'meta.stat': async (p, _d, w) => new PackedResult(await service.statPacked(user(p, w), str(p, 'path'))),
    'meta.readdir': (p, _d, w) => service.readdir(user(p, w), str(p, 'path'), { after: optStr(p, 'after'), limit: optUint(p, 'limit', metaLimits.readdirEntriesMax), plus: bool(p, 'plus', false) }),
    'meta.mkdir': (p, d, w) => service.mkdir(user(p, w), str(p, 'path'), { mode: optUint(p, 'mode', 0o7777), recursive: bool(p, 'recursive', false) }, d),
    'meta.open': (p, d, w) => service.open(user(p, w), str(p, 'path'), { flags: decodeFlags(p), mode: optUint(p, 'mode', 0o7777) }, d),
    'meta.close': (p, d, w) => service.close(user(p, w), u64(p, 'inode'), str(p, 'session'), { length: optUint(p, 'length'), object: optMap(p, 'object') as ObjectAttrs | undefined }, d),
    'meta.unlink': async (p, d, w) => (await service.unlink(user(p, w), str(p, 'path'), d), null),
    'meta.rmdir': async (p, d, w) => (await service.rmdir(user(p, w), str(p, 'path'), d), null),
    'meta.rename': async (p, d, w) => (await service.rename(user(p, w), str(p, 'from'), str(p, 'to'), d, { noReplace: bool(p, 'noReplace', false) }), null),
    'meta.link': (p, d, w) => service.link(user(p, w), str(p, 'existing'), str(p, 'to'), d),
    'meta.symlink': (p, d, w) => service.symlink(user(p, w), str(p, 'target'), str(p, 'path'), d),
    'meta.readlink': async (p, _d, w) => ({ target: await service.readlink(user(p, w), str(p, 'path')) }),
    'meta.heartbeat': (p, d) => {
      if (!d) throw new ProtocolError('EPROTO', 'meta.heartbeat needs a clientId');
      const sessions = (p.sessions === undefined ? [] : list(p, 'sessions', metaLimits.heartbeatSessionsMax)).map((v, i) => {
        try {
          const m = map({ v }, 'v');
          return { inode: u64(m, 'inode'), session: str(m, 'session') };
        } catch {
          throw new ProtocolError('EPROTO', `param sessions[${i}] must be { inode: u64, session: string }`);
        }
      });
      return service.heartbeat(d.clientId, sessions); // idempotent: no stored result
    },
    'meta.truncate': (p, d, w) => service.truncate(user(p, w), str(p, 'path'), uint(p, 'length'), d),
    'meta.setattr': (p, d, w) => service.setattr(user(p, w), str(p, 'path'), { mode: optUint(p, 'mode', 0o7777), uid: optUint(p, 'uid', 0xffffffff), gid: optUint(p, 'gid', 0xffffffff), mtimeMs: optUint(p, 'mtimeMs') }, d),
    'meta.setLayout': (p, d, w) => {
      const l = map(p, 'layout');
      const layout = Object.fromEntries(
        (['chunkSizeBytes', 'stripeSize', 'chainTableId', 'chainTableVersion'] as const)
          .map((k) => [k, optUint(l, k)] as const)
          .filter(([, v]) => v !== undefined),
      );
      return service.setLayout(user(p, w), str(p, 'path'), layout, d);
    },
    'meta.accessKeyAdd': (p, _d, w) => {
      requireAdmin(w, 'meta.accessKeyAdd');
      const owner = decodeUser({ user: map(p, 'owner') });
      return service.accessKeyAdd(w, owner);
    },
    'meta.accessKeyGet': (p, _d, w) => {
      // The S3 gateway (a proxy user) looks keys up to check signatures; nobody else may.
      if (!w.admin && !w.proxy) throw new MillpondError('EACCES', `meta.accessKeyGet needs the admin or a proxy token; uid ${w.uid} asked`);
      return service.accessKeyGet({ uid: 0, gid: 0 }, str(p, 'accessKeyId'));
    },
    'meta.accessKeyList': (p, _d, w) => {
      requireAdmin(w, 'meta.accessKeyList');
      return service.accessKeyList(w, optUint(p, 'uid', 0xffffffff));
    },
    'meta.accessKeyRemove': async (p, _d, w) => {
      requireAdmin(w, 'meta.accessKeyRemove');
      return (await service.accessKeyRemove(w, str(p, 'accessKeyId')), null);
    },
    'meta.takeGarbage': (p, _d, w) => {
      requireAdmin(w, 'meta.takeGarbage');
      return service.takeGarbage(uint(p, 'limit', metaLimits.garbageBatchMax));
    },
    'meta.ackGarbage': async (p, _d, w) => {
      requireAdmin(w, 'meta.ackGarbage');
      const inodes = list(p, 'inodes', metaLimits.garbageBatchMax).map((v, i) => {
        try {
          return u64({ v }, 'v');
        } catch {
          throw new ProtocolError('EPROTO', `param inodes[${i}] must be an unsigned 64-bit integer`);
        }
      });
      await service.ackGarbage(inodes);
      return null;
    },
    'meta.userAdd': async (p, _d, w) => {
      requireAdmin(w, 'meta.userAdd');
      const uid = uint(p, 'uid', 0xffffffff);
      const token = mintToken(cluster().secret, uid);
      const groups = p.groups === undefined || p.groups === null ? [] : list(p, 'groups', authLimits.groupsPerUserMax).map((g) => uint({ g }, 'g', 0xffffffff));
      const record = await users((tx) => addUser(tx, { name: str(p, 'name'), uid, gid: uint(p, 'gid', 0xffffffff), groups, proxy: bool(p, 'proxy', false) }, token.tokenId));
      await changed();
      return { user: record, token: formatToken(token) };
    },
    'meta.userList': async (_p, _d, w) => {
      requireAdmin(w, 'meta.userList');
      return users((tx) => listUsers(tx));
    },
    'meta.userRemove': async (p, _d, w) => {
      requireAdmin(w, 'meta.userRemove');
      const name = str(p, 'name');
      if (name === w.name) throw new MillpondError('EINVAL', 'a user cannot remove itself');
      await users((tx) => removeUser(tx, name));
      await changed();
      return null;
    },
    'meta.userToken': async (p, _d, w) => {
      requireAdmin(w, 'meta.userToken');
      const name = str(p, 'name');
      const existing = await service.kv.transact((tx) => getUser(tx, name));
      if (!existing) throw new MillpondError('ENOENT', `no user ${name}`);
      const token = mintToken(cluster().secret, existing.uid);
      await users((tx) => addToken(tx, name, token.tokenId));
      await changed();
      return { token: formatToken(token) };
    },
    'meta.whoami': async (_p, _d, w) => ({ name: w.name, uid: w.uid, gid: w.gid, gids: w.gids ?? [], admin: w.admin, proxy: w.proxy }),
  };
}

export interface MetaServerOptions {
  /** The cluster's keys: CURVE, tokens, users (omit only for an unauthenticated baseline). */
  auth?: ClusterAuth;
  /** mgmtd endpoints to tell which tokens to admit (they serve routing to clients). */
  mgmtd?: string[];
  log?: (line: string) => void;
}

/** At most this many refusal lines a second (a flood of bad requests must not flood the log). */

export class MetaServer {
  private constructor(private readonly rpc: RpcServer, private readonly authn: Authenticator | undefined, private readonly pushers: RpcClient[]) {}

  /** Binds `endpoint` (e.g. tcp://127.0.0.1:0 for any free port) and serves `service`. */
  static async start(service: MetaService, endpoint: string, options: MetaServerOptions = {}): Promise<MetaServer> {
    const log = options.log ?? logger('meta').warn;
    const cluster = options.auth;
    const authn = cluster ? new Authenticator(service.kv, cluster) : undefined;
    const pushers = cluster && options.mgmtd ? options.mgmtd.map((e) => new RpcClient(e, { curve: cluster.memberCurve, timeoutMs: authLimits.tokenPushTimeoutMs, attemptsMax: 1 })) : [];
    // mgmtd admits the tokens meta lists: at start, after each change, and every refresh.
    const push = async () => {
      if (!authn || pushers.length === 0) return;
      const tokens = authn.tokens;
      const text = tokens.map((t) => `${t.uid}:${t.tokenId}`).join(',');
      const proof = cluster!.memberProof(`mgmtd.setClientTokens|${text}`);
      await Promise.all(pushers.map((c) => c.call('mgmtd.setClientTokens', { tokens: text, proof }).catch(() => {})));
    };
    const changed = async () => {
      await authn!.refresh();
      await push();
    };
    if (authn) {
      await authn.start();
      authn.onChange(() => void push());
      await push();
    }
    const refused = refusalLog(log);
    const table = handlers(service, authn, changed);
    const map = new Map<string, Handler>(
      Object.entries(table).map(([method, fn]) => [method, async (params: Params, context: CallContext) => {
        let who: Identity | undefined;
        try {
          who = authn ? await authn.identify(params.token) : params.user === undefined ? ROOT : { ...ROOT, ...decodeUser(params), admin: false, proxy: false };
          const clientId = decodeClientId(params);
          const caller = who;
          return await meteredMetaOp(metaOpName(method, () => decodeFlags(params).create), () => fn(params, clientId ? { clientId, requestId: context.requestId } : undefined, caller));
        } catch (err) {
          if (err instanceof MillpondError && (err.code === 'EAUTH' || err.code === 'EACCES')) {
            refused(`auth: meta refused ${method} for ${who ? `uid ${who.uid} (${who.name}, token ${who.tokenId})` : 'an unidentified caller'}: ${err.code} ${err.message}`);
          }
          throw err;
        }
      }]),
    );
    const curve = cluster && authn ? { secretKey: cluster.server.secretKey, service: 'meta', admit: authn.admit, log } : undefined;
    try {
      return new MetaServer(await RpcServer.bind(endpoint, map, curve), authn, pushers);
    } catch (err) {
      authn?.stop();
      for (const c of pushers) c.close();
      throw err;
    }
  }

  get endpoint(): string {
    return this.rpc.endpoint;
  }

  get counters() {
    return this.rpc.counters;
  }

  async close(): Promise<void> {
    this.authn?.stop();
    for (const c of this.pushers) c.close();
    await this.rpc.close();
  }
}
