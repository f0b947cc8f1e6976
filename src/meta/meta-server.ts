/** Serves a MetaService over the control-plane protocol (one ZeroMQ ROUTER). */
import { metaLimits } from '../limits.js';
import type { Params } from '../protocol/envelope.js';
import { list, map, optStr, optUint, str, u64, uint, bool } from '../protocol/fields.js';
import { decodeClientId, decodeFlags, decodeUser, type MetaMethod } from '../protocol/meta.js';
import { RpcServer, type CallContext, type Handler } from '../protocol/rpc-server.js';
import { ProtocolError } from '../protocol/envelope.js';
import type { Dedup, MetaService } from './meta-service.js';

type MetaHandler = (params: Params, dedup: Dedup | undefined) => Promise<unknown>;

function handlers(service: MetaService): Record<MetaMethod, MetaHandler> {
  const user = decodeUser;
  return {
    'meta.stat': (p) => service.stat(user(p), str(p, 'path')),
    'meta.readdir': (p) => service.readdir(user(p), str(p, 'path'), { after: optStr(p, 'after'), limit: optUint(p, 'limit', metaLimits.readdirEntriesMax), plus: bool(p, 'plus', false) }),
    'meta.mkdir': (p, d) => service.mkdir(user(p), str(p, 'path'), { mode: optUint(p, 'mode', 0o7777), recursive: bool(p, 'recursive', false) }, d),
    'meta.open': (p, d) => service.open(user(p), str(p, 'path'), { flags: decodeFlags(p), mode: optUint(p, 'mode', 0o7777) }, d),
    'meta.close': (p, d) => service.close(user(p), u64(p, 'inode'), str(p, 'session'), { length: optUint(p, 'length') }, d),
    'meta.unlink': async (p, d) => (await service.unlink(user(p), str(p, 'path'), d), null),
    'meta.rmdir': async (p, d) => (await service.rmdir(user(p), str(p, 'path'), d), null),
    'meta.rename': async (p, d) => (await service.rename(user(p), str(p, 'from'), str(p, 'to'), d), null),
    'meta.link': (p, d) => service.link(user(p), str(p, 'existing'), str(p, 'to'), d),
    'meta.symlink': (p, d) => service.symlink(user(p), str(p, 'target'), str(p, 'path'), d),
    'meta.readlink': async (p) => ({ target: await service.readlink(user(p), str(p, 'path')) }),
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
    'meta.truncate': (p, d) => service.truncate(user(p), str(p, 'path'), uint(p, 'length'), d),
    'meta.setattr': (p, d) => service.setattr(user(p), str(p, 'path'), { mode: optUint(p, 'mode', 0o7777), uid: optUint(p, 'uid', 0xffffffff), gid: optUint(p, 'gid', 0xffffffff), mtimeMs: optUint(p, 'mtimeMs') }, d),
    'meta.setLayout': (p, d) => {
      const l = map(p, 'layout');
      const layout = Object.fromEntries(
        (['chunkSizeBytes', 'stripeSize', 'chainTableId', 'chainTableVersion'] as const)
          .map((k) => [k, optUint(l, k)] as const)
          .filter(([, v]) => v !== undefined),
      );
      return service.setLayout(user(p), str(p, 'path'), layout, d);
    },
    'meta.takeGarbage': (p) => service.takeGarbage(uint(p, 'limit', metaLimits.garbageBatchMax)),
    'meta.ackGarbage': async (p) => {
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
  };
}

export class MetaServer {
  private constructor(private readonly rpc: RpcServer) {}

  /** Binds `endpoint` (e.g. tcp://127.0.0.1:0 for any free port) and serves `service`. */
  static async start(service: MetaService, endpoint: string): Promise<MetaServer> {
    const table = handlers(service);
    const map = new Map<string, Handler>(
      Object.entries(table).map(([method, fn]) => [method, (params: Params, context: CallContext) => {
        const clientId = decodeClientId(params);
        return fn(params, clientId ? { clientId, requestId: context.requestId } : undefined);
      }]),
    );
    return new MetaServer(await RpcServer.bind(endpoint, map));
  }

  get endpoint(): string {
    return this.rpc.endpoint;
  }

  get counters() {
    return this.rpc.counters;
  }

  close(): Promise<void> {
    return this.rpc.close();
  }
}
