/**
 * The meta service's methods on the wire. On an authenticated server (the default) every
 * request's params carry `token` (the caller's token, inside the CURVE channel) and meta checks
 * permissions as the token's user; a proxy user (or the admin) may add `actAs: {uid, gid, gids?}`
 * to be checked as that identity. A server without authentication (benchmarks' baseline only)
 * takes `user: {uid, gid, gids?}` instead.
 * mutations may carry `clientId` (16 bytes, fixed per client) so that a resend under the same
 * requestId is applied once. Results are the service's records (src/protocol/meta-types.ts) as msgpack
 * maps; inode ids are 64-bit integers.
 *
 *   method            params (besides user, clientId)                  result
 *   meta.stat         path                                             Inode
 *   meta.readdir      path, after?, limit?, plus?                      { entries: [{name, inode, type, attrs?: Inode}], more }
 *   meta.mkdir        path, mode?, recursive?                          Inode
 *   meta.open         path, flags: {read, write, create, exclusive,    { inode: Inode, session?,
 *                     truncate, append}, mode?                           sessionTimeoutMs?, capability? }
 *                                                                      (capability: 36-byte bin, with a
 *                                                                      cluster secret; src/auth/capability.ts)
 *   meta.close        inode, session, length?, object?: {etag,         Inode
 *                     contentType?, headers?, meta?} (S3 attributes)
 *   meta.unlink       path                                             nil
 *   meta.rmdir        path                                             nil
 *   meta.rename       from, to, noReplace?                             nil  (noReplace: EEXIST when to exists)
 *   meta.link         existing, to                                     Inode
 *   meta.symlink      target, path                                     Inode (type 'symlink', target)
 *   meta.readlink     path                                             { target }
 *   meta.heartbeat    sessions?: [{inode, session}]: the clientId's    { ended: [session id],
 *                     write sessions live on; those named that the       sessionTimeoutMs }
 *                     service already ended are listed in the reply
 *   meta.truncate     path, length                                     Inode
 *   meta.setattr      path, mode?, uid?, gid?, mtimeMs?                Inode
 *   meta.setLayout    path, layout: {chunkSizeBytes?, stripeSize?,     Inode
 *                     chainTableId?, chainTableVersion?}
 *   meta.takeGarbage  limit                                            [{inode, layout, length, queuedMs}]
 *                     (leased to the caller: other callers get other files until the lease ends)
 *   meta.ackGarbage   inodes: [u64]                                    nil
 *   meta.userAdd      name, uid, gid, groups?, proxy?   (admin)        { user: UserRecord, token }
 *   meta.userList     -                                 (admin)        [UserRecord]
 *   meta.userRemove   name                              (admin)        nil
 *   meta.userToken    name                              (admin)        { token }
 *   meta.whoami       -                                                { name, uid, gid, gids, admin, proxy }
 *   meta.accessKeyAdd     owner: {uid, gid, gids?} (admin only)        AccessKey (with its secret)
 *   meta.accessKeyGet     accessKeyId (admin only)                     AccessKey (with its secret)
 *   meta.accessKeyList    uid? (admin only)                            [AccessKey without secret]
 *   meta.accessKeyRemove  accessKeyId (admin only)                     nil
 */
import { metaLimits } from '../limits.js';
import type { User } from './meta-types.js';
import type { Params } from './envelope.js';
import { ProtocolError } from './envelope.js';
import { bin, bool, list, map, optMap, optUint } from './fields.js';

export const META_METHODS = [
  'meta.stat', 'meta.readdir', 'meta.mkdir', 'meta.open', 'meta.close', 'meta.unlink', 'meta.rmdir',
  'meta.rename', 'meta.link', 'meta.symlink', 'meta.readlink', 'meta.heartbeat', 'meta.truncate', 'meta.setattr', 'meta.setLayout', 'meta.takeGarbage', 'meta.ackGarbage',
  'meta.userAdd', 'meta.userList', 'meta.userRemove', 'meta.userToken', 'meta.whoami',
  'meta.accessKeyAdd', 'meta.accessKeyGet', 'meta.accessKeyList', 'meta.accessKeyRemove',
] as const;

export type MetaMethod = (typeof META_METHODS)[number];

export const CLIENT_ID_BYTES = 16;
const ID32_MAX = 0xffffffff;

export function decodeUser(params: Params, name = 'user'): User {
  const user = map(params, name);
  const uid = optUint(user, 'uid', ID32_MAX);
  const gid = optUint(user, 'gid', ID32_MAX);
  if (uid === undefined || gid === undefined) throw new ProtocolError('EPROTO', `param ${name} must have uid and gid`);
  if (user.gids === undefined || user.gids === null) return { uid, gid };
  const gids = list(user, 'gids', metaLimits.gidsMax).map((g, i) => optUint({ g }, 'g', ID32_MAX) ?? badGid(i));
  return { uid, gid, gids };
}

function badGid(i: number): never {
  throw new ProtocolError('EPROTO', `param user.gids[${i}] must be an integer`);
}

/** The (clientId, requestId) of a mutation, when the client sent a clientId. */
export function decodeClientId(params: Params): Buffer | undefined {
  if (params.clientId === undefined || params.clientId === null) return undefined;
  const id = bin(params, 'clientId');
  if (id.length !== CLIENT_ID_BYTES) throw new ProtocolError('EPROTO', `param clientId must be ${CLIENT_ID_BYTES} bytes`);
  return id;
}

export function decodeFlags(params: Params) {
  const flags = optMap(params, 'flags') ?? { read: true };
  return {
    read: bool(flags, 'read', false),
    write: bool(flags, 'write', false),
    create: bool(flags, 'create', false),
    exclusive: bool(flags, 'exclusive', false),
    truncate: bool(flags, 'truncate', false),
    append: bool(flags, 'append', false),
  };
}
