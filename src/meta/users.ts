/**
 * The users table (design §10), in meta's KV next to the namespace:
 *   'U' name (utf-8)       -> UserRecord
 *   'K' tokenId (16 hex)   -> name         (which user a token belongs to)
 * A token is valid when its secret derives from the cluster secret (tokenValid) AND its id is
 * listed for an existing user with the token's uid. uid 0 is the admin (it may manage users and
 * act as anyone); a `proxy` user (the FUSE mount, the S3 gateway) may send `actAs` to have its
 * requests checked as another identity. Nobody else may.
 */
import { MillpondError } from '../errors.js';
import { authLimits } from '../limits.js';
import { pack, unpack } from '../protocol/codec.js';
import type { KvBackend, KvTx } from '../kv/kv.js';
import type { User } from '../protocol/meta-types.js';

export interface UserRecord {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
  tokenIds: string[];
  proxy: boolean;
}

/** Who a request comes from, as its token says. */
export interface Identity extends User {
  name: string;
  tokenId: string;
  admin: boolean;
  proxy: boolean;
}

export const ADMIN_NAME = 'admin';
const NAME_RE = /^[a-z_][a-z0-9_.-]*$/i;

const userKey = (name: string) => Buffer.concat([Buffer.from('U', 'latin1'), Buffer.from(name, 'utf8')]);
const tokenKey = (tokenId: string) => Buffer.from(`K${tokenId}`, 'latin1');
const USERS_RANGE: [Buffer, Buffer] = [Buffer.from('U', 'latin1'), Buffer.from('V', 'latin1')];

function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME_RE.test(name) || Buffer.byteLength(name) > authLimits.userNameBytesMax) {
    throw new MillpondError('EINVAL', `a user name is letters, digits, _ . - (at most ${authLimits.userNameBytesMax} bytes), not ${JSON.stringify(name)}`);
  }
}

function checkId(what: string, v: unknown): asserts v is number {
  if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > 0xffffffff) throw new MillpondError('EINVAL', `${what} must be an integer in [0, 4294967295]`);
}

export async function getUser(tx: KvTx, name: string): Promise<UserRecord | undefined> {
  const v = await tx.get(userKey(name));
  return v ? (unpack(v) as UserRecord) : undefined;
}

export async function userOfToken(tx: KvTx, tokenId: string): Promise<UserRecord | undefined> {
  const name = await tx.get(tokenKey(tokenId));
  return name ? getUser(tx, name.toString('utf8')) : undefined;
}

export async function listUsers(tx: KvTx): Promise<UserRecord[]> {
  return (await tx.scan(...USERS_RANGE, authLimits.usersMax)).map(([, v]) => unpack(v) as UserRecord);
}

export async function addUser(tx: KvTx, user: Omit<UserRecord, 'tokenIds'>, tokenId: string): Promise<UserRecord> {
  checkName(user.name);
  checkId('uid', user.uid);
  checkId('gid', user.gid);
  if (!Array.isArray(user.groups) || user.groups.length > authLimits.groupsPerUserMax) throw new MillpondError('EINVAL', `at most ${authLimits.groupsPerUserMax} groups`);
  for (const g of user.groups) checkId('a group id', g);
  if (await tx.get(userKey(user.name))) throw new MillpondError('EEXIST', `user ${user.name} exists`);
  const all = await listUsers(tx);
  if (all.length >= authLimits.usersMax) throw new MillpondError('ENOSPC', `at most ${authLimits.usersMax} users`);
  const record: UserRecord = { name: user.name, uid: user.uid, gid: user.gid, groups: [...user.groups], tokenIds: [tokenId], proxy: user.proxy === true };
  await tx.put(userKey(record.name), pack(record));
  await tx.put(tokenKey(tokenId), Buffer.from(record.name, 'utf8'));
  return record;
}

export async function addToken(tx: KvTx, name: string, tokenId: string): Promise<UserRecord> {
  const user = await getUser(tx, name);
  if (!user) throw new MillpondError('ENOENT', `no user ${name}`);
  if (user.tokenIds.includes(tokenId)) return user;
  if (user.tokenIds.length >= authLimits.tokensPerUserMax) throw new MillpondError('ENOSPC', `a user has at most ${authLimits.tokensPerUserMax} tokens`);
  user.tokenIds.push(tokenId);
  await tx.put(userKey(name), pack(user));
  await tx.put(tokenKey(tokenId), Buffer.from(name, 'utf8'));
  return user;
}

export async function removeUser(tx: KvTx, name: string): Promise<void> {
  const user = await getUser(tx, name);
  if (!user) throw new MillpondError('ENOENT', `no user ${name}`);
  for (const id of user.tokenIds) await tx.delete(tokenKey(id));
  await tx.delete(userKey(name));
}

/** Makes sure the admin user exists and lists `tokenId` (the token `up`/`init` wrote). */
export async function ensureAdmin(kv: KvBackend, tokenId: string): Promise<void> {
  await kv.transact(async (tx) => {
    const admin = await getUser(tx, ADMIN_NAME);
    if (!admin) await addUser(tx, { name: ADMIN_NAME, uid: 0, gid: 0, groups: [], proxy: false }, tokenId);
    else if (admin.uid !== 0) throw new MillpondError('EINVAL', `user ${ADMIN_NAME} exists with uid ${admin.uid}`);
    else await addToken(tx, ADMIN_NAME, tokenId);
  });
}

export function identityOf(user: UserRecord, tokenId: string): Identity {
  return { name: user.name, uid: user.uid, gid: user.gid, gids: user.groups, tokenId, admin: user.uid === 0, proxy: user.proxy };
}
