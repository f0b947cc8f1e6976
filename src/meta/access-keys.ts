/**
 * S3 access keys (design §12): each belongs to a millpond user, whose uid/gid/gids the S3
 * gateway acts as for requests signed with it. Kept in meta's KV under 'A' + accessKeyId.
 * The secret is stored as is: SigV4 verification needs it (the server recomputes the
 * client's HMAC), as in AWS and MinIO. Every operation is for admins only (uid 0), and the
 * gateway reads keys as one.
 */
import { randomBytes } from 'node:crypto';
import { MillpondError } from '../errors.js';
import { metaLimits } from '../limits.js';
import { pack, unpack } from '../protocol/codec.js';
import { keys } from './keys.js';
import type { KvBackend } from '../kv/kv.js';
import type { AccessKey, User } from '../protocol/meta-types.js';

/** 20 characters from A-Z0-9 as AWS's (first four "MPAK"); secrets 40 base64 characters. */
const ACCESS_KEY_ID_RE = /^[A-Z0-9]{16,128}$/;
const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function requireAdmin(caller: User, what: string): void {
  if (caller.uid !== 0) throw new MillpondError('EPERM', `only an admin may ${what} access keys`);
}

function newAccessKeyId(): string {
  const bytes = randomBytes(16);
  let id = 'MPAK';
  for (let i = 0; i < 16; i++) id += ID_ALPHABET[bytes[i]! & 31];
  return id;
}

function checkOwner(owner: User): void {
  const ok = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
  if (!ok(owner.uid) || !ok(owner.gid)) throw new MillpondError('EINVAL', 'an access key owner needs uid and gid in [0, 2^32)');
  if (owner.gids !== undefined && (!Array.isArray(owner.gids) || owner.gids.length > metaLimits.gidsMax || !owner.gids.every(ok))) {
    throw new MillpondError('EINVAL', `gids must be at most ${metaLimits.gidsMax} ids`);
  }
}

export function checkAccessKeyId(id: string): void {
  if (typeof id !== 'string' || !ACCESS_KEY_ID_RE.test(id)) throw new MillpondError('EINVAL', 'an access key id is 16-128 characters A-Z, 0-9');
}

/** Makes a key for `owner`; returns it with its secret (shown once by the CLI). */
export async function addAccessKey(kv: KvBackend, caller: User, owner: User): Promise<AccessKey> {
  requireAdmin(caller, 'add');
  checkOwner(owner);
  const key: AccessKey = {
    accessKeyId: newAccessKeyId(),
    secretAccessKey: randomBytes(30).toString('base64'),
    uid: owner.uid,
    gid: owner.gid,
    ...(owner.gids?.length ? { gids: owner.gids } : {}),
    createdMs: Date.now(),
  };
  return kv.transact(async (tx) => {
    const count = (await tx.scan(...keys.accessKeysAll(), metaLimits.accessKeysMax + 1)).length;
    if (count >= metaLimits.accessKeysMax) throw new MillpondError('ENOSPC', `at most ${metaLimits.accessKeysMax} access keys`);
    await tx.put(keys.accessKey(key.accessKeyId), pack(key));
    return key;
  });
}

/** The key with its secret, or ENOENT. */
export async function getAccessKey(kv: KvBackend, caller: User, accessKeyId: string): Promise<AccessKey> {
  requireAdmin(caller, 'read');
  checkAccessKeyId(accessKeyId);
  const raw = await kv.read((tx) => tx.get(keys.accessKey(accessKeyId)));
  if (!raw) throw new MillpondError('ENOENT', `no access key ${accessKeyId}`);
  return unpack(raw) as AccessKey;
}

/** Every key without its secret, optionally only `uid`'s. */
export async function listAccessKeys(kv: KvBackend, caller: User, uid?: number): Promise<Omit<AccessKey, 'secretAccessKey'>[]> {
  requireAdmin(caller, 'list');
  const rows = await kv.read((tx) => tx.scan(...keys.accessKeysAll(), metaLimits.accessKeysMax));
  return rows.map(([, v]) => {
    const { secretAccessKey: _secret, ...rest } = unpack(v) as AccessKey;
    return rest;
  }).filter((k) => uid === undefined || k.uid === uid);
}

export async function removeAccessKey(kv: KvBackend, caller: User, accessKeyId: string): Promise<void> {
  requireAdmin(caller, 'remove');
  checkAccessKeyId(accessKeyId);
  await kv.transact(async (tx) => {
    if (!(await tx.get(keys.accessKey(accessKeyId)))) throw new MillpondError('ENOENT', `no access key ${accessKeyId}`);
    await tx.delete(keys.accessKey(accessKeyId));
  });
}
