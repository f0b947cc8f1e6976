/**
 * The protocol's byte fixtures: each message here is encoded by the TS codec into
 * test/fixtures/protocol/<name>.bin, described (with the message in JSON, bigint as
 * {"$u64": "..."} and bytes as {"$bin": "<hex>"}) in <name>.json. A C++ codec must produce
 * and accept exactly these bytes.
 */
import { heartbeatText, nodeProof, registerText } from '../../../src/cluster/node-proof.js';
import type { Routing } from '../../../src/protocol/mgmtd-types.js';
import type { Reply, Request } from '../../../src/protocol/envelope.js';

export interface Fixture {
  name: string;
  description: string;
  kind: 'request' | 'reply';
  message: Request | Reply;
}

const user = { uid: 1000, gid: 1000 };
const clientId = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const inode = {
  id: 4097n, type: 'file', mode: 0o644, uid: 1000, gid: 1000, length: 12_582_912, ctimeMs: 1_700_000_000_000, mtimeMs: 1_700_000_000_500,
  layout: { chunkSizeBytes: 4_194_304, stripeSize: 3, chainTableId: 1, chainTableVersion: 1, seed: 2_534_090_413 }, parent: 0n,
};

export const fixtures: Fixture[] = [
  { name: 'stat-request', kind: 'request', description: 'meta.stat of a path as uid/gid 1000', message: { requestId: 1, method: 'meta.stat', params: { user, path: '/data/part-0.parquet' } } },
  {
    name: 'open-request', kind: 'request', description: 'meta.open create+write with a clientId (deduplicated mutation), mode 0o644',
    message: { requestId: 70000, method: 'meta.open', params: { user: { ...user, gids: [10, 20] }, clientId, path: '/data/out', flags: { write: true, create: true, exclusive: false, truncate: false, append: false, read: false }, mode: 0o644 } },
  },
  { name: 'readdir-request', kind: 'request', description: 'meta.readdir page after a name', message: { requestId: 4_294_967_296, method: 'meta.readdir', params: { user, path: '/data', after: 'part-9', limit: 256 } } },
  { name: 'close-request', kind: 'request', description: 'meta.close of a write session with its length; inode as int64', message: { requestId: 3, method: 'meta.close', params: { user, clientId, inode: 4097n, session: 'b2dc5deb95bbfa7598552e38c3722a8f', length: 12_582_912 } } },
  { name: 'open-reply', kind: 'reply', description: 'ok reply of meta.open: inode with layout and session', message: { requestId: 70000, ok: true, result: { inode, session: 'b2dc5deb95bbfa7598552e38c3722a8f' } } },
  { name: 'readdir-reply', kind: 'reply', description: 'ok reply of meta.readdir', message: { requestId: 4_294_967_296, ok: true, result: { entries: [{ name: 'part-0', inode: 4097n, type: 'file' }, { name: 'sub', inode: 12n, type: 'dir' }], more: false } } },
  { name: 'error-reply', kind: 'reply', description: 'error reply: ENOENT', message: { requestId: 1, ok: false, error: { code: 'ENOENT', message: 'no such file or directory: /data/part-0.parquet' } } },
  { name: 'unknown-id-error-reply', kind: 'reply', description: 'error reply to a request whose id could not be read (requestId 0)', message: { requestId: 0, ok: false, error: { code: 'EPROTO', message: 'request is not one msgpack value' } } },
  { name: 'null-reply', kind: 'reply', description: 'ok reply without a result (meta.unlink)', message: { requestId: 9, ok: true, result: null } },
];

// mgmtd's messages that the native client decodes (native/client/mgmtd_client.cc). The routing
// snapshot has the full record shapes of src/protocol/mgmtd-types.ts, so a field added there shows here.
const routing: Routing = {
  version: 42,
  nodes: [{ nodeId: 7, kind: 'storage', controlAddress: 'tcp://10.1.0.3:7001', alive: true, appliedVersion: 42 }],
  targets: [
    { targetId: 101, nodeId: 7, dataAddress: '10.1.0.3:7100', state: 'serving', localState: 'uptodate', stateVersion: 3 },
    { targetId: 201, nodeId: 8, dataAddress: '10.1.0.4:7100', state: 'syncing', localState: 'online', stateVersion: 41 },
  ],
  chains: [{ chainId: 1, version: 5, targets: [101, 201], preferred: [201, 101] }],
  // Table 2 grew (chains appended at version 2): a file at version 1 spreads over chain 1 alone.
  chainTables: [{ tableId: 1, version: 2, chainIds: [1] }, { tableId: 2, version: 2, chainIds: [1, 3, 4], chainCounts: [1, 3] }],
};

/** The cluster secret the fixtures' node proofs are made under (src/cluster/node-proof.ts). */
export const fixtureSecret = Buffer.alloc(32, 0x5c);
export const register = {
  nodeId: 7, kind: 'storage', controlAddress: 'tcp://10.1.0.3:7001',
  targets: [{ targetId: 101, dataAddress: '10.1.0.3:7100' }, { targetId: 102, dataAddress: '10.1.0.3:7101' }],
};
export const heartbeat = {
  nodeId: 7, appliedVersion: 42,
  targets: [
    { targetId: 101, localState: 'uptodate', capacityBytes: 8_589_934_592_000, freeBytes: 4_294_967_296_000, chunks: 1_000_000 },
    { targetId: 102, localState: 'online', syncedStateVersion: 41, resync: { listedChunks: 5000, copiedChunks: 1200, copiedBytes: 5_033_164_800, sourceTargetIds: [201, 301] } },
  ],
};

export const mgmtdFixtures: Fixture[] = [
  { name: 'mgmtd-get-routing-request', kind: 'request', description: 'mgmtd.getRouting with the version the caller has', message: { requestId: 12, method: 'mgmtd.getRouting', params: { knownVersion: 41 } } },
  { name: 'mgmtd-routing-reply', kind: 'reply', description: 'ok reply of mgmtd.getRouting: a snapshot with a syncing target and a preferred order', message: { requestId: 12, ok: true, result: routing } },
  { name: 'mgmtd-routing-unchanged-reply', kind: 'reply', description: 'ok reply of mgmtd.getRouting when the caller is up to date', message: { requestId: 13, ok: true, result: { version: 42, unchanged: true } } },
  { name: 'mgmtd-capacity-reply', kind: 'reply', description: 'ok reply of mgmtd.capacity (bytes above 2^32)', message: { requestId: 14, ok: true, result: { capacityBytes: 8_589_934_592_000, freeBytes: 4_294_967_296_000, replicas: 3 } } },
  { name: 'mgmtd-not-primary-reply', kind: 'reply', description: 'error reply of a standby mgmtd: the caller tries the next address', message: { requestId: 15, ok: false, error: { code: 'ENOTPRIMARY', message: 'this mgmtd is a standby' } } },
  { name: 'mgmtd-register-node-request', kind: 'request', description: 'mgmtd.registerNode of a storage node with two targets and its proof under the fixture secret', message: { requestId: 16, method: 'mgmtd.registerNode', params: { ...register, proof: nodeProof(fixtureSecret, register.nodeId, registerText(register)) } } },
  { name: 'mgmtd-heartbeat-request', kind: 'request', description: 'mgmtd.heartbeat: an up-to-date target with its space, a syncing one with its resync progress, the data-server counters and the proof', message: { requestId: 17, method: 'mgmtd.heartbeat', params: { ...heartbeat, dataReadBytes: 6_000_000_000, dataWrittenBytes: 12_345, pid: 4242, proof: nodeProof(fixtureSecret, heartbeat.nodeId, heartbeatText(heartbeat)) } } },
  { name: 'mgmtd-version-reply', kind: 'reply', description: 'ok reply of mgmtd.registerNode and mgmtd.heartbeat: the routing version', message: { requestId: 17, ok: true, result: { version: 43 } } },
  { name: 'mgmtd-create-chain-table-request', kind: 'request', description: 'mgmtd.createChainTable with explicit chains, as the admin', message: { requestId: 18, method: 'mgmtd.createChainTable', params: { tableId: 2, chains: [{ chainId: 10, targets: [101, 201, 301] }, { chainId: 11, targets: [201, 301, 101] }], token: 'admin-token' } } },
  { name: 'mgmtd-create-chain-table-reply', kind: 'reply', description: 'ok reply of mgmtd.createChainTable: the table record', message: { requestId: 18, ok: true, result: { tableId: 2, version: 1, chainIds: [10, 11] } } },
  { name: 'mgmtd-status-reply', kind: 'reply', description: 'ok reply of mgmtd.status from a standby: who the primary is', message: { requestId: 19, ok: true, result: { primary: false, instanceId: '4f1c0a9e', primaryAddress: 'tcp://10.1.0.2:7000' } } },
];

export function toJson(value: unknown): unknown {
  if (typeof value === 'bigint') return { $u64: value.toString() };
  if (Buffer.isBuffer(value)) return { $bin: value.toString('hex') };
  if (Array.isArray(value)) return value.map(toJson);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]));
  return value;
}
