/** POSIX permission checks on inodes. Root (uid 0) passes all but execute on plain files. */
import { MillpondError } from '../errors.js';
import type { Inode, User } from '../protocol/meta-types.js';

export const R = 4;
export const W = 2;
export const X = 1;

export function inGroup(user: User, gid: number): boolean {
  return user.gid === gid || (user.gids?.includes(gid) ?? false);
}

export function permits(user: User, inode: Inode, want: number): boolean {
  if (user.uid === 0) return (want & X) === 0 || inode.type === 'dir' || (inode.mode & 0o111) !== 0;
  const bits = user.uid === inode.uid ? inode.mode >> 6 : inGroup(user, inode.gid) ? inode.mode >> 3 : inode.mode;
  return ((bits & 7) & want) === want;
}

export function requireAccess(user: User, inode: Inode, want: number, what: string): void {
  if (!permits(user, inode, want)) {
    const perm = `${want & R ? 'r' : ''}${want & W ? 'w' : ''}${want & X ? 'x' : ''}`;
    throw new MillpondError('EACCES', `permission denied: ${perm} on ${what} for uid ${user.uid}`);
  }
}
