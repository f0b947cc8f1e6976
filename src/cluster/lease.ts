/**
 * The primary's lease: one key in the KV, written in a transaction, so at most one mgmtd holds
 * an unexpired lease. The holder renews it every third of its length; a standby takes it once
 * it has expired. Clocks of mgmtd hosts must agree to well within the lease length.
 */
import { pack, unpack } from '../protocol/codec.js';
import type { KvBackend, KvTx } from '../kv/kv.js';
import { clusterKeys } from './keys.js';

export interface Lease {
  holder: string;
  /** The holder's control endpoint, for standbys to name in ENOTPRIMARY errors. */
  address: string;
  expiresAtMs: number;
}

export async function readLease(tx: KvTx): Promise<Lease | undefined> {
  const raw = await tx.get(clusterKeys.lease);
  return raw ? (unpack(raw) as Lease) : undefined;
}

/**
 * Takes or renews the lease for `holder` if it is free, expired or already ours. Returns the
 * lease after the attempt (ours if `lease.holder === holder`).
 */
export function tryAcquire(kv: KvBackend, holder: string, address: string, leaseMs: number): Promise<Lease | undefined> {
  return kv.transact(async (tx) => {
    const now = Date.now();
    const current = await readLease(tx);
    if (current && current.holder !== holder && current.expiresAtMs > now) return current;
    const lease: Lease = { holder, address, expiresAtMs: now + leaseMs };
    await tx.put(clusterKeys.lease, pack(lease));
    return lease;
  });
}

/** Gives the lease up (on a clean shutdown) so a standby need not wait for it to expire. */
export function release(kv: KvBackend, holder: string): Promise<void> {
  return kv.transact(async (tx) => {
    const current = await readLease(tx);
    if (current?.holder === holder) await tx.delete(clusterKeys.lease);
  });
}
