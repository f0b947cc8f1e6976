/**
 * The namespace as seen inside one transaction: typed reads and writes of inodes, entries and
 * sessions, and path resolution with search (x) checks on every directory crossed.
 */
import { MillpondError } from '../errors.js';
import { pack, unpack } from '../protocol/codec.js';
import { keys, ROOT_INODE } from './keys.js';
import type { KvTx } from './kv.js';
import { requireAccess, X } from './permissions.js';
import type { FileType, Garbage, Inode, User } from './types.js';

export interface Entry {
  inode: bigint;
  type: FileType;
}

export interface SessionRecord {
  uid: number;
  openedMs: number;
  /** The clientId of the opener, whose liveness ('L') keeps the session; absent: kept until closed. */
  client?: Buffer;
}

export class NamespaceTx {
  constructor(readonly tx: KvTx, readonly user: User) {}

  async inode(id: bigint): Promise<Inode | undefined> {
    const raw = await this.tx.get(keys.inode(id));
    return raw ? (unpack(raw) as Inode) : undefined;
  }

  async mustInode(id: bigint): Promise<Inode> {
    const inode = await this.inode(id);
    if (!inode) throw new MillpondError('ESTALE', `inode ${id} does not exist`);
    return inode;
  }

  putInode(inode: Inode): Promise<void> {
    return this.tx.put(keys.inode(inode.id), pack(inode));
  }

  deleteInode(id: bigint): Promise<void> {
    return this.tx.delete(keys.inode(id));
  }

  async entry(parent: bigint, name: string): Promise<Entry | undefined> {
    const raw = await this.tx.get(keys.dentry(parent, name));
    return raw ? (unpack(raw) as Entry) : undefined;
  }

  putEntry(parent: bigint, name: string, entry: Entry): Promise<void> {
    return this.tx.put(keys.dentry(parent, name), pack({ inode: entry.inode, type: entry.type }));
  }

  deleteEntry(parent: bigint, name: string): Promise<void> {
    return this.tx.delete(keys.dentry(parent, name));
  }

  async isEmptyDir(id: bigint): Promise<boolean> {
    const [start, end] = keys.dentryRange(id);
    return (await this.tx.scan(start, end, 1)).length === 0;
  }

  async hasSessions(id: bigint): Promise<boolean> {
    const [start, end] = keys.sessionRange(id);
    return (await this.tx.scan(start, end, 1)).length > 0;
  }

  /** Resolves a directory path; x on every directory crossed, including the last. */
  async dir(components: string[], path: string): Promise<Inode> {
    let current = await this.mustInode(ROOT_INODE);
    for (let i = 0; i < components.length; i++) {
      requireAccess(this.user, current, X, `/${components.slice(0, i).join('/')}`);
      const entry = await this.entry(current.id, components[i]!);
      if (!entry) throw new MillpondError('ENOENT', `no such directory: ${path}`);
      if (entry.type !== 'dir') throw new MillpondError('ENOTDIR', `not a directory: /${components.slice(0, i + 1).join('/')}`);
      current = await this.mustInode(entry.inode);
    }
    return current;
  }

  /** Resolves the parent of a non-root path and checks x on it; returns it with the last name. */
  async parentOf(components: string[], path: string): Promise<{ parent: Inode; name: string }> {
    if (components.length === 0) throw new MillpondError('EBUSY', `the root has no parent: ${path}`);
    const parent = await this.dir(components.slice(0, -1), path);
    requireAccess(this.user, parent, X, path);
    return { parent, name: components[components.length - 1]! };
  }

  /** Resolves any path to its inode (x on the directories crossed). */
  async lookup(components: string[], path: string): Promise<Inode> {
    if (components.length === 0) return this.mustInode(ROOT_INODE);
    const { parent, name } = await this.parentOf(components, path);
    const entry = await this.entry(parent.id, name);
    if (!entry) throw new MillpondError('ENOENT', `no such file or directory: ${path}`);
    return this.mustInode(entry.inode);
  }

  /**
   * Drops one of a file's names. Its last name: the file is collected now, or when its last
   * write session closes.
   */
  async release(inode: Inode, nowMs: number): Promise<void> {
    const nlink = inode.nlink ?? 1;
    if (nlink > 1) {
      await this.putInode({ ...inode, nlink: nlink - 1, ctimeMs: nowMs });
      return;
    }
    if (inode.type === 'symlink') {
      await this.deleteInode(inode.id); // no chunks
      return;
    }
    if (await this.hasSessions(inode.id)) {
      await this.putInode({ ...inode, unlinked: true });
      return;
    }
    await this.deleteInode(inode.id);
    const garbage: Garbage = { inode: inode.id, layout: inode.layout as Garbage['layout'], length: inode.length, queuedMs: nowMs };
    await this.tx.put(keys.garbage(inode.id), pack(garbage));
  }

  async session(id: bigint, session: Buffer): Promise<SessionRecord | undefined> {
    const raw = await this.tx.get(keys.session(id, session));
    return raw ? (unpack(raw) as SessionRecord) : undefined;
  }

  putSession(id: bigint, session: Buffer, record: SessionRecord): Promise<void> {
    return this.tx.put(keys.session(id, session), pack(record));
  }

  deleteSession(id: bigint, session: Buffer): Promise<void> {
    return this.tx.delete(keys.session(id, session));
  }
}
