/** Serves a MgmtdService over the control-plane protocol (one ZeroMQ ROUTER). */
import { RpcServer, type Handler } from '../protocol/rpc-server.js';
import type { Params } from '../protocol/envelope.js';
import { optUint } from '../protocol/fields.js';
import type { MgmtdService } from './mgmtd-service.js';
import { decodeCreateChainTable, decodeHeartbeat, decodeRegister, MGMTD_METHODS, type MgmtdMethod } from './protocol.js';

function handlers(s: MgmtdService): Record<MgmtdMethod, (p: Params) => unknown> {
  return {
    'mgmtd.registerNode': (p) => {
      const { node, targets } = decodeRegister(p);
      return s.registerNode(node, targets);
    },
    'mgmtd.heartbeat': (p) => {
      const h = decodeHeartbeat(p);
      return s.heartbeat(h.nodeId, h.appliedVersion, h.targets);
    },
    'mgmtd.getRouting': (p) => s.getRouting(optUint(p, 'knownVersion')),
    'mgmtd.createChainTable': (p) => {
      const req = decodeCreateChainTable(p);
      const chains = req.chains ?? s.planChains(req.plan.firstChainId ?? 1, req.plan.chainCount, req.plan.chainLength);
      return s.createChainTable(req.tableId, chains);
    },
    'mgmtd.status': () => s.status(),
    'mgmtd.capacity': () => s.capacity(),
  };
}

export class MgmtdServer {
  private constructor(private readonly rpc: RpcServer, readonly service: MgmtdService) {}

  /**
   * Binds `endpoint` (tcp://host:0 for any free port), then makes the service with the bound
   * address (which standbys name to callers) and serves it.
   */
  static async start(endpoint: string, makeService: (address: string) => MgmtdService): Promise<MgmtdServer> {
    let table: Record<string, (p: Params) => unknown> | undefined;
    const map = new Map<string, Handler>(MGMTD_METHODS.map((m) => [m, (p: Params) => table![m]!(p)]));
    const rpc = await RpcServer.bind(endpoint, map);
    const service = makeService(rpc.endpoint);
    table = handlers(service);
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
