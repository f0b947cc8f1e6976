/**
 * Capabilities on the data plane (design §10, after HDFS block tokens): meta hands a client
 * one when it opens or creates a file; storage checks it on every client request for that
 * file's chunks. It names one inode, rights (read, write) and an expiry, and carries a MAC
 * only holders of the cluster secret can make. native/common/auth.* checks the same bytes.
 *
 * Wire form (36 bytes, little-endian; what clients pass around and send, opaque to them):
 *   0 inode u64   8 rights u32   12 expiresMs u64 (Unix ms)
 *   20 mac[16] = first 16 bytes of HMAC-SHA256(capabilityKey(S), bytes 0..19)
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { MillpondError } from '../errors.js';
import { authLimits } from '../limits.js';
import { capabilityKey } from './keys.js';

export const RIGHT_READ = 1;
export const RIGHT_WRITE = 2;
export const CAPABILITY_BYTES = 36;
const SIGNED_BYTES = 20;
const MAC_BYTES = 16;

export interface CapabilityFields {
  inode: bigint;
  rights: number;
  expiresMs: number;
}

function mac(key: Buffer, wire: Buffer): Buffer {
  return createHmac('sha256', key).update(wire.subarray(0, SIGNED_BYTES)).digest().subarray(0, MAC_BYTES);
}

/** Signs a capability; `key` is capabilityKey(S) (derive it once: see CapabilitySigner). */
export function signCapability(key: Buffer, fields: CapabilityFields): Buffer {
  const { inode, rights, expiresMs } = fields;
  if (typeof inode !== 'bigint' || inode < 0n || inode >= 2n ** 64n) throw new RangeError('inode must be a u64 bigint');
  if (!Number.isInteger(rights) || rights < 1 || rights > (RIGHT_READ | RIGHT_WRITE)) throw new RangeError('rights must be read (1), write (2) or both');
  if (!Number.isSafeInteger(expiresMs) || expiresMs < 0) throw new RangeError('expiresMs must be a non-negative integer');
  const wire = Buffer.alloc(CAPABILITY_BYTES);
  wire.writeBigUInt64LE(inode, 0);
  wire.writeUInt32LE(rights, 8);
  wire.writeBigUInt64LE(BigInt(expiresMs), 12);
  mac(key, wire).copy(wire, SIGNED_BYTES);
  return wire;
}

/** The fields of a capability's wire form (not verified: anyone may read them). */
export function decodeCapability(wire: Buffer): CapabilityFields {
  if (!Buffer.isBuffer(wire) || wire.length !== CAPABILITY_BYTES) throw new MillpondError('EAUTH', 'not a capability');
  return { inode: wire.readBigUInt64LE(0), rights: wire.readUInt32LE(8), expiresMs: Number(wire.readBigUInt64LE(12)) };
}

/**
 * Throws EAUTH when `wire` is forged, expired or for another inode, EACCES when it lacks
 * `right`; as storage does (CapabilitySigner::Check in native/common/auth.h).
 */
export function verifyCapability(key: Buffer, wire: Buffer, inode: bigint, right: number, nowMs = Date.now()): CapabilityFields {
  const fields = decodeCapability(wire);
  if (!timingSafeEqual(mac(key, wire), wire.subarray(SIGNED_BYTES))) throw new MillpondError('EAUTH', 'forged capability');
  if (fields.inode !== inode) throw new MillpondError('EAUTH', `capability for inode ${fields.inode} used on inode ${inode}`);
  if (fields.expiresMs <= nowMs) throw new MillpondError('EAUTH', 'capability expired');
  if ((fields.rights & right) === 0) throw new MillpondError('EACCES', `capability does not grant ${right === RIGHT_WRITE ? 'write' : 'read'}`);
  return fields;
}

/** Meta's signer: holds capabilityKey(S) and the lifetime of what it hands out. */
export class CapabilitySigner {
  private readonly key: Buffer;

  constructor(clusterSecret: Buffer, readonly ttlMs: number = authLimits.capabilityTtlMsDefault) {
    this.key = capabilityKey(clusterSecret);
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > authLimits.capabilityTtlMsMax) {
      throw new RangeError(`capability ttlMs must be in [1, ${authLimits.capabilityTtlMsMax}]`);
    }
  }

  sign(inode: bigint, rights: number, nowMs = Date.now()): Buffer {
    return signCapability(this.key, { inode, rights, expiresMs: nowMs + this.ttlMs });
  }

  verify(wire: Buffer, inode: bigint, right: number, nowMs = Date.now()): CapabilityFields {
    return verifyCapability(this.key, wire, inode, right, nowMs);
  }
}
