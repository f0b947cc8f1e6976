/**
 * Proofs that a registration or heartbeat comes from the node it names (design §10): an
 * HMAC-SHA256 under nodeKey(S, nodeId) over the request's fields in a fixed text form, sent as
 * param `proof`. Only daemons holding the cluster secret can make one, so a user admitted to
 * mgmtd (for routing) cannot register a node, re-home a target or report syncing-done. The
 * channel is CURVE-encrypted, so nobody sees a proof to replay it.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { nodeKey } from '../auth/keys.js';

export function registerText(p: { nodeId: number; kind: string; controlAddress: string; targets: Array<{ targetId: number; dataAddress: string }> }): string {
  return `mgmtd.registerNode|${p.nodeId}|${p.kind}|${p.controlAddress}|${p.targets.map((t) => `${t.targetId}@${t.dataAddress}`).join(',')}`;
}

export function heartbeatText(p: { nodeId: number; appliedVersion: number; targets: Array<{ targetId: number; localState: string; syncedStateVersion?: number }> }): string {
  return `mgmtd.heartbeat|${p.nodeId}|${p.appliedVersion}|${p.targets.map((t) => `${t.targetId}:${t.localState}:${t.syncedStateVersion ?? ''}`).join(',')}`;
}

export function nodeProof(secret: Buffer, nodeId: number, text: string): Buffer {
  return createHmac('sha256', nodeKey(secret, nodeId)).update(text).digest();
}

export function nodeProofValid(secret: Buffer, nodeId: number, text: string, proof: unknown): boolean {
  if (!Buffer.isBuffer(proof) && !(proof instanceof Uint8Array)) return false;
  const want = nodeProof(secret, nodeId, text);
  return proof.length === want.length && timingSafeEqual(want, proof);
}
