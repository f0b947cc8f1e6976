/**
 * mgmtd's methods on the wire (src/protocol envelope; params and results are msgpack maps).
 *
 *   method                  params                                             result
 *   mgmtd.registerNode      nodeId, kind, controlAddress?, targets?:           { version }
 *                           [{targetId, dataAddress}]
 *   mgmtd.heartbeat         nodeId, appliedVersion, targets?:                  { version }
 *                           [{targetId, localState, syncedStateVersion?,
 *                             capacityBytes?, freeBytes?, chunks?, resync?:
 *                             {listedChunks, copiedChunks, copiedBytes,
 *                             sourceTargetIds}: a resync's progress so far,
 *                             swept?: {removedChunks, removedBytes}: what the
 *                             stray sweep removed since the daemon started}],
 *                           dataReadBytes?, dataWrittenBytes?, pid?: the
 *                           node process's data-server byte counters (all
 *                           its data servers; nodes sharing a process share
 *                           them: same pid), for throughput; like the space
 *                           figures, informational and outside the node's proof
 *   mgmtd.getRouting        knownVersion?                                      Routing | { version, unchanged: true }
 *   mgmtd.createChainTable  tableId, chains?: [{chainId, targets: [id]}]       ChainTableRecord
 *                           | chainCount, chainLength, firstChainId?
 *   mgmtd.status            -                                                  { primary, instanceId, primaryAddress?, routing? }
 *   mgmtd.capacity          -                                                  { capacityBytes, freeBytes, replicas }: the
 *                                                                              targets' space / the chains' length
 *   mgmtd.setClientTokens   tokens: "uid:tokenId,...", proof (member)          nil
 * Admin operations (admin-ops.ts; each needs the admin's token or a member's proof):
 *   mgmtd.adminView         -                                                  { version, nodes (+capacityBytes, freeBytes,
 *                                                                              usedBytes, replicas, drain?), targets (+space,
 *                                                                              full, replicas, heads), chains (+preferred),
 *                                                                              chainTables, ops: {rebalance?, leaving, moves,
 *                                                                              moved}, spread: {replicasSkew, headsSkew,
 *                                                                              balanced, ...} }
 *   mgmtd.adminCreateTable  tableId, replicas, chainCount?                     ChainTableRecord (placement.ts)
 *   mgmtd.adminGrowTable    tableId, replicas?, chainCount?                    ChainTableRecord (chains appended, version+1)
 *   mgmtd.adminRebalance    rateMiBs (0 stops)                                 { rateBytesPerS }
 *   mgmtd.adminReplace      oldTargetId, newTargetId                           MoveRecord
 *   mgmtd.adminDrain        nodeId                                             LeavingNode
 *   mgmtd.adminRemoveNode   nodeId, force?                                     { removed, replicasLeft }
 * On an authenticated mgmtd (mgmtd-server.ts) registerNode and heartbeat carry `proof` (the
 * node's key), createChainTable the admin's `token`.
 *
 * A standby answers every method but mgmtd.status with ENOTPRIMARY; callers try the next
 * mgmtd address. An unknown nodeId in a heartbeat is ENOENT: the node registers again.
 */
import { clusterLimits } from '../limits.js';
import { ProtocolError, type Params } from './envelope.js';
import { list, map, optMap, optStr, optUint, str, uint } from './fields.js';
import { LOCAL_STATES, NODE_KINDS, type LocalState, type NodeKind, type ResyncProgress, type SweptChunks } from './mgmtd-types.js';

export const MGMTD_METHODS = ['mgmtd.registerNode', 'mgmtd.heartbeat', 'mgmtd.getRouting', 'mgmtd.createChainTable', 'mgmtd.status', 'mgmtd.capacity', 'mgmtd.setClientTokens',
  'mgmtd.adminView', 'mgmtd.adminCreateTable', 'mgmtd.adminGrowTable', 'mgmtd.adminRebalance', 'mgmtd.adminReplace', 'mgmtd.adminDrain', 'mgmtd.adminRemoveNode'] as const;
export type MgmtdMethod = (typeof MGMTD_METHODS)[number];

const U32 = 0xffffffff;

function each<T>(items: unknown[], name: string, decode: (p: Params) => T): T[] {
  return items.map((item, i) => {
    try {
      return decode(map({ item }, 'item'));
    } catch (err) {
      throw new ProtocolError('EPROTO', `${name}[${i}]: ${(err as Error).message}`);
    }
  });
}

export function address(params: Params, name: string): string {
  const v = str(params, name);
  if (Buffer.byteLength(v) > clusterLimits.addressBytesMax) throw new ProtocolError('EPROTO', `param ${name} is longer than ${clusterLimits.addressBytesMax} bytes`);
  return v;
}

export function decodeRegister(p: Params) {
  const kind = str(p, 'kind');
  if (!(NODE_KINDS as readonly string[]).includes(kind)) throw new ProtocolError('EPROTO', `param kind must be one of ${NODE_KINDS.join(', ')}`);
  const targets = p.targets === undefined || p.targets === null ? [] : each(list(p, 'targets', clusterLimits.targetsPerNodeMax), 'targets', (t) => ({
    targetId: uint(t, 'targetId', U32),
    dataAddress: address(t, 'dataAddress'),
  }));
  const controlAddress = optStr(p, 'controlAddress') ?? '';
  if (Buffer.byteLength(controlAddress) > clusterLimits.addressBytesMax) throw new ProtocolError('EPROTO', 'param controlAddress is too long');
  return { node: { nodeId: uint(p, 'nodeId', U32), kind: kind as NodeKind, controlAddress }, targets };
}

export function decodeHeartbeat(p: Params) {
  const targets = p.targets === undefined || p.targets === null ? [] : each(list(p, 'targets', clusterLimits.targetsPerNodeMax), 'targets', (t) => {
    const localState = str(t, 'localState');
    if (!(LOCAL_STATES as readonly string[]).includes(localState)) throw new ProtocolError('EPROTO', `localState must be one of ${LOCAL_STATES.join(', ')}`);
    return {
      targetId: uint(t, 'targetId', U32), localState: localState as LocalState, syncedStateVersion: optUint(t, 'syncedStateVersion'),
      capacityBytes: optUint(t, 'capacityBytes'), freeBytes: optUint(t, 'freeBytes'), chunks: optUint(t, 'chunks'),
      resync: decodeResyncProgress(optMap(t, 'resync')),
      swept: decodeSwept(optMap(t, 'swept')),
    };
  });
  const dataReadBytes = optUint(p, 'dataReadBytes');
  const dataWrittenBytes = optUint(p, 'dataWrittenBytes');
  const pid = optUint(p, 'pid', U32);
  const counters = dataReadBytes !== undefined && dataWrittenBytes !== undefined ? { dataReadBytes, dataWrittenBytes, pid: pid ?? 0 } : undefined;
  return { nodeId: uint(p, 'nodeId', U32), appliedVersion: uint(p, 'appliedVersion'), targets, counters };
}

function decodeResyncProgress(r: Params | undefined): ResyncProgress | undefined {
  if (!r) return undefined;
  const sourceTargetIds = list(r, 'sourceTargetIds', clusterLimits.chainLengthMax * clusterLimits.targetsPerNodeMax)
    .map((id, i) => uint({ [`sourceTargetIds[${i}]`]: id }, `sourceTargetIds[${i}]`, U32));
  return { listedChunks: uint(r, 'listedChunks'), copiedChunks: uint(r, 'copiedChunks'), copiedBytes: uint(r, 'copiedBytes'), sourceTargetIds };
}

function decodeSwept(s: Params | undefined): SweptChunks | undefined {
  return s ? { removedChunks: uint(s, 'removedChunks'), removedBytes: uint(s, 'removedBytes') } : undefined;
}

export function decodeCreateChainTable(p: Params) {
  const tableId = uint(p, 'tableId', U32);
  if (p.chains === undefined || p.chains === null) {
    return {
      tableId,
      plan: { chainCount: uint(p, 'chainCount', clusterLimits.chainsMax), chainLength: uint(p, 'chainLength', clusterLimits.chainLengthMax), firstChainId: optUint(p, 'firstChainId', U32) },
    };
  }
  const chains = each(list(p, 'chains', clusterLimits.chainsMax), 'chains', (c) => ({
    chainId: uint(c, 'chainId', U32),
    targets: list(c, 'targets', clusterLimits.chainLengthMax).map((v, i) => {
      try {
        return uint({ v }, 'v', U32);
      } catch {
        throw new ProtocolError('EPROTO', `targets[${i}] must be a target id`);
      }
    }),
  }));
  return { tableId, chains };
}
