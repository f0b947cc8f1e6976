/**
 * Who a data-plane client is (design §10): what ChunkClient presents in the handshake that
 * opens every connection to a data server with a cluster secret
 * (native/transport/auth_handshake.h).
 *
 *   { token }                      a user's client: its requests need capabilities from meta
 *   { nodeId, clusterSecret }      a storage node, or another cluster daemon holding S (meta's
 *                                  garbage collector uses SERVICE_NODE_ID): chain-internal
 *                                  operations (forward, commit, remove, list), no capabilities
 */
import type { NativeCredentials } from '../native/binding.js';
import { nodeKey, parseToken } from './keys.js';

/**
 * `refuseEncryption`: never encrypt this client's connections; a data server of a cluster with
 * encryptData then refuses it with EENCRYPT (otherwise the server decides, in the handshake).
 */
export type DataCredentials = ({ token: string } | { nodeId: number; clusterSecret: Buffer }) & { refuseEncryption?: boolean };

/** The node id cluster daemons that are not storage nodes (meta's garbage collector) present. */
export const SERVICE_NODE_ID = 0xffff_ffff;

export function nativeCredentials(c: DataCredentials | undefined): NativeCredentials | undefined {
  if (c === undefined) return undefined;
  if ('token' in c) {
    const t = parseToken(c.token);
    return { kind: 'token', id: t.uid, tokenId: t.tokenId, key: t.secret, refuseEncryption: c.refuseEncryption === true };
  }
  if (!Number.isInteger(c.nodeId) || c.nodeId < 0 || c.nodeId > 0xffff_ffff) throw new RangeError('nodeId must be a u32');
  return { kind: 'node', id: c.nodeId, key: nodeKey(c.clusterSecret, c.nodeId), refuseEncryption: c.refuseEncryption === true };
}

/** True when these credentials make the client a user's (its requests carry capabilities). */
export function isUserCredentials(c: DataCredentials | undefined): boolean {
  return c !== undefined && 'token' in c;
}
