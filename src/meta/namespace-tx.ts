/**
 * The namespace as seen inside one transaction: typed reads and writes of inodes, entries and
 * sessions, and path resolution with search (x) checks on every directory crossed.
 */
import { MillpondError } from '../errors.js';
import { metaLimits } from '../limits.js';
import { pack, unpack } from '../protocol/codec.js';
import { keyIds, keys, ROOT_INODE } from './keys.js';
import { sharedValues, type KvTx } from '../kv/kv.js';
import { permits, requireAccess, X } from './permissions.js';
import type { FileType, Garbage, Inode, User } from '../protocol/meta-types.js';

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

/**
 * (directory, name) -> inode ids this server saw, so that a path's entries and inodes are read
 * in one statement (KvTx.getMany) instead of one round trip each. Only a guess of which keys to
 * read: the walk still follows the entries it read in its own transaction, so a stale hint
 * costs one more read, never a wrong answer.
 *
 * At most metaLimits.pathHintsMax names, the least recently used forgotten first, in two
 * generations as BoundedCache (the directories every walk crosses stay). By directory, then
 * name: no key string is built per lookup (a walk asks for each of its names twice).
 */
export class PathHints {
  private young = new Map<bigint, Map<string, bigint>>();
  private old = new Map<bigint, Map<string, bigint>>();
  private youngNames = 0;
  private readonly generationMax: number;

  constructor(max: number = metaLimits.pathHintsMax) {
    this.generationMax = Math.floor(max / 2);
  }

  get(parent: bigint, name: string): bigint | undefined {
    const hit = this.young.get(parent)?.get(name);
    if (hit !== undefined) return hit;
    const aged = this.old.get(parent)?.get(name);
    if (aged !== undefined) this.set(parent, name, aged);
    return aged;
  }

  set(parent: bigint, name: string, inode: bigint): void {
    if (this.generationMax === 0) return;
    let names = this.young.get(parent);
    if (names === undefined) this.young.set(parent, (names = new Map()));
    const before = names.get(name);
    if (before === inode) return; // most walks confirm a hint
    names.set(name, inode);
    if (before === undefined && ++this.youngNames >= this.generationMax) {
      this.old = this.young;
      this.young = new Map();
      this.youngNames = 0;
    }
  }

  drop(parent: bigint, name: string): void {
    if (this.young.get(parent)?.delete(name)) this.youngNames--;
    this.old.get(parent)?.delete(name);
  }
}

/**
 * Decoded inodes and entries by the stored bytes they came from, for values a backend shares
 * (kv.ts sharedValues: SQLite's read cache and PostgreSQL's snapshot cache hand out the same
 * Buffer for a key until it changes), so the directories every stat walks are decoded once, not
 * per request. Shared by every request that reads those bytes: frozen, as KvTx values are the
 * reader's to read only. A fresh value (a first read, a write transaction's) is decoded as it
 * is: most are read once.
 */
const decodedValues = new WeakMap<Buffer, unknown>();

function decoded<T>(raw: Buffer): T {
  let value = decodedValues.get(raw) as T | undefined;
  if (value !== undefined) return value;
  if (!sharedValues.has(raw)) return unpack(raw) as T;
  value = deepFreeze(unpack(raw)) as T;
  decodedValues.set(raw, value);
  return value;
}

function deepFreeze(value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Buffer.isBuffer(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export class NamespaceTx {
  /** Inode and entry values this transaction read (null: absent), by keyId(key) (keyIds). */
  private readonly known = new Map<string, Buffer | null>();

  constructor(readonly tx: KvTx, readonly user: User, private readonly hints = new PathHints(0)) {}

  private async read(id: string, key: () => Buffer): Promise<Buffer | undefined> {
    const seen = this.known.get(id);
    if (seen !== undefined) return seen ?? undefined;
    const raw = await this.tx.get(key());
    this.known.set(id, raw ?? null);
    return raw;
  }

  /**
   * Reads in one statement the keys a walk of `components` will read: the root's inode, and
   * for each component its entry and (when a hint or an earlier read names it) its inode. The
   * walk itself then finds them here; keys read before are not read again.
   */
  async prefetch(components: string[]): Promise<void> {
    const missing: Buffer[] = [];
    const missingIds: string[] = [];
    const want = (id: string, key: () => Buffer): Buffer | null | undefined => {
      const seen = this.known.get(id);
      if (seen === undefined) {
        missing.push(key());
        missingIds.push(id);
      }
      return seen;
    };
    want(keyIds.inode(ROOT_INODE), () => keys.inode(ROOT_INODE));
    let id: bigint | undefined = ROOT_INODE;
    for (let i = 0; i < components.length; i++) {
      if (2 * i + 3 > metaLimits.getManyKeysMax) break; // a deeper walk reads the rest one by one
      const name = components[i]!;
      const parent: bigint = id;
      const seen = want(keyIds.dentry(parent, name), () => keys.dentry(parent, name));
      id = seen ? decoded<Entry>(seen).inode : seen === null ? undefined : this.hints.get(parent, name);
      if (id === undefined) break;
      const child: bigint = id;
      want(keyIds.inode(child), () => keys.inode(child));
    }
    if (missing.length === 0) return;
    const values = await this.tx.getMany(missing, missingIds);
    missingIds.forEach((k, i) => this.known.set(k, values[i] ?? null));
  }

  /** The inode if this transaction has read it (undefined: not read, or absent): no promise. */
  private inodeRead(id: bigint): Inode | undefined {
    const raw = this.known.get(keyIds.inode(id));
    return raw ? decoded<Inode>(raw) : undefined;
  }

  /** entry() if this transaction has read the entry (undefined: not read, or absent): no promise. */
  private entryRead(parent: bigint, name: string): Entry | undefined {
    const raw = this.known.get(keyIds.dentry(parent, name));
    if (!raw) return undefined;
    const entry = decoded<Entry>(raw);
    this.hints.set(parent, name, entry.inode);
    return entry;
  }

  async inode(id: bigint): Promise<Inode | undefined> {
    const raw = await this.read(keyIds.inode(id), () => keys.inode(id));
    return raw ? decoded<Inode>(raw) : undefined;
  }

  /** The inodes of `ids` in one statement (undefined: gone). */
  async inodes(ids: bigint[]): Promise<Array<Inode | undefined>> {
    if (ids.length === 0) return [];
    return (await this.tx.getMany(ids.map((id) => keys.inode(id)))).map((raw) => (raw ? decoded<Inode>(raw) : undefined));
  }

  async mustInode(id: bigint): Promise<Inode> {
    const inode = await this.inode(id);
    if (!inode) throw new MillpondError('ESTALE', `inode ${id} does not exist`);
    return inode;
  }

  putInode(inode: Inode): Promise<void> {
    this.known.delete(keyIds.inode(inode.id));
    return this.tx.put(keys.inode(inode.id), pack(inode));
  }

  deleteInode(id: bigint): Promise<void> {
    this.known.delete(keyIds.inode(id));
    return this.tx.delete(keys.inode(id));
  }

  async entry(parent: bigint, name: string): Promise<Entry | undefined> {
    const raw = await this.read(keyIds.dentry(parent, name), () => keys.dentry(parent, name));
    const entry = raw ? decoded<Entry>(raw) : undefined;
    if (entry) this.hints.set(parent, name, entry.inode);
    else this.hints.drop(parent, name);
    return entry;
  }

  putEntry(parent: bigint, name: string, entry: Entry): Promise<void> {
    this.known.delete(keyIds.dentry(parent, name));
    this.hints.set(parent, name, entry.inode);
    return this.tx.put(keys.dentry(parent, name), pack({ inode: entry.inode, type: entry.type }));
  }

  /**
   * Adds the entry only if `name` is free in `parent` (KvTx.insert: no read of the absent
   * name); otherwise writes nothing and returns the entry there.
   */
  async insertEntry(parent: bigint, name: string, entry: Entry): Promise<Entry | undefined> {
    this.known.delete(keyIds.dentry(parent, name));
    const present = await this.tx.insert(keys.dentry(parent, name), pack({ inode: entry.inode, type: entry.type }));
    const now = present ? (unpack(present) as Entry) : entry;
    this.hints.set(parent, name, now.inode);
    return present ? now : undefined;
  }

  deleteEntry(parent: bigint, name: string): Promise<void> {
    this.known.delete(keyIds.dentry(parent, name));
    this.hints.drop(parent, name);
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

  /**
   * Resolves a directory path; x on every directory crossed, including the last. `prefetched`:
   * the caller already prefetched a walk that covers this one.
   */
  async dir(components: string[], path: string, prefetched = false): Promise<Inode> {
    if (!prefetched) await this.prefetch(components);
    // Most steps find their keys prefetched: taken as they are, without a promise each.
    let current = this.inodeRead(ROOT_INODE) ?? await this.mustInode(ROOT_INODE);
    for (let i = 0; i < components.length; i++) {
      if (!permits(this.user, current, X)) requireAccess(this.user, current, X, `/${components.slice(0, i).join('/')}`);
      const entry = this.entryRead(current.id, components[i]!) ?? await this.entry(current.id, components[i]!);
      if (!entry) throw new MillpondError('ENOENT', `no such directory: ${path}`);
      if (entry.type !== 'dir') throw new MillpondError('ENOTDIR', `not a directory: /${components.slice(0, i + 1).join('/')}`);
      current = this.inodeRead(entry.inode) ?? await this.mustInode(entry.inode);
    }
    return current;
  }

  /**
   * Resolves the parent of a non-root path and checks x on it; returns it with the last name.
   * `prefetchLast`: also read the last name's entry (and inode) in the same statement; a
   * create passes false, as it claims the name with insertEntry instead of reading it.
   */
  async parentOf(components: string[], path: string, prefetchLast = true): Promise<{ parent: Inode; name: string }> {
    if (components.length === 0) throw new MillpondError('EBUSY', `the root has no parent: ${path}`);
    await this.prefetch(prefetchLast ? components : components.slice(0, -1));
    const parent = await this.dir(components.slice(0, -1), path, true);
    requireAccess(this.user, parent, X, path);
    return { parent, name: components[components.length - 1]! };
  }

  /** Resolves any path to its inode (x on the directories crossed). */
  async lookup(components: string[], path: string): Promise<Inode> {
    const id = await this.lookupId(components, path);
    return this.inodeRead(id) ?? this.mustInode(id);
  }

  /** lookup(), as the inode's stored bytes (codec.pack of it): what a stat replies with as they are. */
  async lookupPacked(components: string[], path: string): Promise<Buffer> {
    const id = await this.lookupId(components, path);
    const raw = this.known.get(keyIds.inode(id)) ?? (await this.read(keyIds.inode(id), () => keys.inode(id)));
    if (!raw) throw new MillpondError('ESTALE', `inode ${id} does not exist`);
    return raw;
  }

  /** The inode id `components` name (x on the directories crossed); its inode is not read. */
  private async lookupId(components: string[], path: string): Promise<bigint> {
    if (components.length === 0) return ROOT_INODE;
    const { parent, name } = await this.parentOf(components, path);
    const entry = this.entryRead(parent.id, name) ?? await this.entry(parent.id, name);
    if (!entry) throw new MillpondError('ENOENT', `no such file or directory: ${path}`);
    return entry.inode;
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
