/**
 * The metadata service: the namespace operations over any KvBackend. Every operation is one
 * transaction (retried by the backend on conflict). A mutation may carry a Dedup
 * (clientId, requestId): its result is stored in the same transaction, so a retry after a lost
 * reply returns the first result instead of applying twice.
 *
 * Not maintained, on purpose: directory mtimes and directory link counts (every create in a
 * directory would write the directory's inode and conflict with every other create in it).
 * Files count their names (hard links), since their chunks must outlive all but the last.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { MillpondError } from '../errors.js';
import { limits, metaLimits } from '../limits.js';
import { pack, unpack } from '../protocol/codec.js';
import { CapabilitySigner, RIGHT_READ, RIGHT_WRITE } from '../auth/capability.js';
import { InodeAllocator } from './inode-allocator.js';
import { keys, ROOT_INODE } from './keys.js';
import type { KvBackend, KvTx } from '../kv/kv.js';
import { splitPath } from './names.js';
import { NamespaceTx, PathHints, type SessionRecord } from './namespace-tx.js';
import { inGroup, permits, R, requireAccess, W, X } from './permissions.js';
import { addAccessKey, getAccessKey, listAccessKeys, removeAccessKey } from './access-keys.js';
import type { AccessKey, ChainTableVersions, ChunkTrimmer, DirEntry, DirLayout, FileLayout, Garbage, Inode, ObjectAttrs, OpenFlags, OpenResult, ReaddirResult, TrimIntent, User } from '../protocol/meta-types.js';

export interface MetaServiceOptions {
  /** The root directory's layout when the namespace is created (later: setLayout). */
  rootLayout?: Partial<DirLayout>;
  /** Expire stored mutation results in the background (default true). */
  pruneApplied?: boolean;
  /** End the sessions of clients gone quiet, in the background (default true). */
  pruneSessions?: boolean;
  /** How long a client with sessions may be quiet (default metaLimits.sessionTimeoutMs). */
  sessionTimeoutMs?: number;
  /**
   * Cuts shrunk files' chunks (trimChunks over a RoutingClient; also attachStorage()). Without
   * it a shrink (truncate, open with truncate) only records a TrimIntent, and old bytes come
   * back if the file grows again before some service with storage finishes it.
   */
  storage?: ChunkTrimmer;
  /** The cluster secret: open() then hands out data-plane capabilities (src/auth/capability.ts). */
  clusterSecret?: Buffer;
  /** Lifetime of those capabilities (default authLimits.capabilityTtlMsDefault). */
  capabilityTtlMs?: number;
  /** How long takeGarbage's files stay leased to their taker (default metaLimits.garbageLeaseMsDefault). */
  garbageLeaseMs?: number;
}

/** A queued file as stored: the file, leased to a collector until leaseUntilMs (absent: free). */
function unpackQueuedGarbage(value: Buffer): { file: Garbage; leaseUntilMs: number } {
  const { leaseUntilMs, ...file } = unpack(value) as Garbage & { leaseUntilMs?: number };
  return { file, leaseUntilMs: leaseUntilMs ?? 0 };
}

export interface Dedup {
  clientId: Buffer;
  requestId: number;
}

const SESSION_BYTES = 16;

function defaultLayout(overrides: Partial<DirLayout> = {}): DirLayout {
  return checkLayout({
    chunkSizeBytes: limits.chunkSizeBytesDefault,
    stripeSize: metaLimits.stripeSizeDefault,
    chainTableId: metaLimits.chainTableIdDefault,
    chainTableVersion: 1,
    ...overrides,
  });
}

function checkLayout(layout: DirLayout): DirLayout {
  const { chunkSizeBytes, stripeSize, chainTableId, chainTableVersion } = layout;
  const int = (v: number) => Number.isSafeInteger(v) && v >= 0;
  if (!int(chunkSizeBytes) || chunkSizeBytes < limits.chunkSizeBytesMin || chunkSizeBytes > limits.chunkSizeBytesMax || chunkSizeBytes % limits.chunkBlockBytes !== 0) {
    throw new MillpondError('EINVAL', `chunkSizeBytes must be a multiple of ${limits.chunkBlockBytes} in [${limits.chunkSizeBytesMin}, ${limits.chunkSizeBytesMax}]`);
  }
  if (!int(stripeSize) || stripeSize < 1 || stripeSize > metaLimits.stripeSizeMax) throw new MillpondError('EINVAL', `stripeSize must be in [1, ${metaLimits.stripeSizeMax}]`);
  if (!int(chainTableId) || chainTableId < 1) throw new MillpondError('EINVAL', 'chainTableId must be a positive integer');
  if (!int(chainTableVersion)) throw new MillpondError('EINVAL', 'chainTableVersion must be a non-negative integer');
  return { chunkSizeBytes, stripeSize, chainTableId, chainTableVersion };
}

function checkUser(user: User): void {
  if (typeof user !== 'object' || user === null) throw new TypeError('user must be { uid, gid, gids? }');
  if (!Number.isSafeInteger(user.uid) || user.uid < 0 || !Number.isSafeInteger(user.gid) || user.gid < 0) throw new TypeError('uid and gid must be non-negative integers');
  if (user.gids !== undefined && (!Array.isArray(user.gids) || user.gids.length > metaLimits.gidsMax)) throw new RangeError(`gids must be an array of at most ${metaLimits.gidsMax}`);
}

function checkMode(mode: number): number {
  if (!Number.isSafeInteger(mode) || mode < 0 || mode > 0o7777) throw new MillpondError('EINVAL', 'mode must be in [0, 0o7777]');
  return mode;
}

/** An upper estimate of the bytes a readdir plus entry takes in a reply. */
function plusEntryBytes(name: string, inode: Inode | undefined): number {
  let bytes = metaLimits.readdirPlusEntryFixedBytes + Buffer.byteLength(name);
  if (inode?.target !== undefined) bytes += Buffer.byteLength(inode.target);
  if (inode?.object !== undefined) bytes += pack(inode.object).length;
  return bytes;
}

/** S3 object attributes a close may set: strings only, bounded when packed. */
function checkObjectAttrs(object: ObjectAttrs): ObjectAttrs {
  const strings = (m: unknown) => m === undefined || (typeof m === 'object' && m !== null && !Array.isArray(m)
    && Object.values(m).every((v) => typeof v === 'string'));
  if (typeof object !== 'object' || object === null || typeof object.etag !== 'string'
    || (object.contentType !== undefined && typeof object.contentType !== 'string') || !strings(object.headers) || !strings(object.meta)) {
    throw new MillpondError('EINVAL', 'object must be { etag, contentType?, headers?, meta? } of strings');
  }
  const out: ObjectAttrs = { etag: object.etag };
  if (object.contentType !== undefined) out.contentType = object.contentType;
  if (object.headers && Object.keys(object.headers).length) out.headers = { ...object.headers };
  if (object.meta && Object.keys(object.meta).length) out.meta = { ...object.meta };
  if (pack(out).length > metaLimits.objectAttrsBytesMax) throw new MillpondError('EMSGSIZE', `object attributes above ${metaLimits.objectAttrsBytesMax} bytes`);
  return out;
}

function putLiveness(tx: KvTx, clientId: Buffer, seenMs: number): Promise<void> {
  return tx.put(keys.liveness(clientId), pack({ seenMs }));
}

/** Records that `inode` shrank to `length`: its chunks past it are to be cut (finishTrim). */
function putTrim(tx: KvTx, inode: Inode, length: number): Promise<void> {
  const intent: TrimIntent = { inode: inode.id, layout: inode.layout as FileLayout, length, mtimeMs: inode.mtimeMs, nonce: randomInt(0, 2 ** 47) };
  return tx.put(keys.trim(inode.id), pack(intent));
}

function checkGarbageLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > metaLimits.garbageBatchMax) throw new MillpondError('EINVAL', `limit must be in [1, ${metaLimits.garbageBatchMax}]`);
}

function sessionBytes(session: string): Buffer {
  if (typeof session !== 'string' || !/^[0-9a-f]{32}$/.test(session)) throw new MillpondError('EBADF', 'not a session id');
  return Buffer.from(session, 'hex');
}

export class MetaService {
  private readonly allocator: InodeAllocator;
  private readonly hints = new PathHints();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly sessionTimeoutMs: number;
  private readonly garbageLeaseMs: number;
  private storage: ChunkTrimmer | undefined;
  private chainTables: ChainTableVersions | undefined;
  private readonly capabilities: CapabilitySigner | undefined;

  private constructor(readonly kv: KvBackend, options: MetaServiceOptions) {
    this.allocator = new InodeAllocator(kv);
    this.storage = options.storage;
    this.capabilities = options.clusterSecret ? new CapabilitySigner(options.clusterSecret, options.capabilityTtlMs) : undefined;
    this.sessionTimeoutMs = options.sessionTimeoutMs ?? metaLimits.sessionTimeoutMs;
    if (!Number.isSafeInteger(this.sessionTimeoutMs) || this.sessionTimeoutMs < 1) throw new RangeError('sessionTimeoutMs must be a positive integer');
    this.garbageLeaseMs = options.garbageLeaseMs ?? metaLimits.garbageLeaseMsDefault;
    if (!Number.isSafeInteger(this.garbageLeaseMs) || this.garbageLeaseMs < 1) throw new RangeError('garbageLeaseMs must be a positive integer');
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const timer = setInterval(() => void fn().catch(() => {}), ms);
      timer.unref();
      this.timers.push(timer);
    };
    if (options.pruneApplied !== false) every(metaLimits.dedupPruneIntervalMs, () => this.pruneApplied());
    if (options.pruneSessions !== false) {
      every(Math.min(metaLimits.sessionPruneIntervalMs, this.sessionTimeoutMs), () => this.pruneSessions());
    }
  }

  /** Opens the namespace on `kv`, creating the root directory (uid 0, 0o755) if absent. */
  static async open(kv: KvBackend, options: MetaServiceOptions = {}): Promise<MetaService> {
    const rootLayout = defaultLayout(options.rootLayout);
    await kv.transact(async (tx) => {
      if (await tx.get(keys.inode(ROOT_INODE))) return;
      const now = Date.now();
      const root: Inode = { id: ROOT_INODE, type: 'dir', mode: 0o755, uid: 0, gid: 0, length: 0, ctimeMs: now, mtimeMs: now, layout: rootLayout, parent: ROOT_INODE };
      await tx.put(keys.inode(ROOT_INODE), pack(root));
    });
    return new MetaService(kv, options);
  }

  /**
   * From now on, shrinks cut the file's chunks before they return, and intents left by a
   * crash (or made before storage was attached) are finished in the background.
   */
  attachStorage(storage: ChunkTrimmer): void {
    const first = !this.storage;
    this.storage = storage;
    if (!first) return;
    const timer = setInterval(() => void this.finishStaleTrims().catch(() => {}), metaLimits.trimRetryIntervalMs);
    timer.unref();
    this.timers.push(timer);
  }

  /**
   * From now on, a new file's layout records its chain table's current version from `tables`
   * (the routing meta holds), so new files spread over a grown table; without it (or while the
   * version is unknown) they take their directory's chainTableVersion.
   */
  attachChainTables(tables: ChainTableVersions): void {
    this.chainTables = tables;
  }

  /** Stops background work; the KvBackend stays open (its owner closes it). */
  stop(): void {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }

  // ---- reads (idempotent): one snapshot each (KvBackend.read), no serializable transaction ----

  async stat(user: User, path: string): Promise<Inode> {
    checkUser(user);
    const components = splitPath(path);
    // With right path hints the whole walk is one statement (NamespaceTx.prefetch).
    return this.kv.read((tx) => new NamespaceTx(tx, user, this.hints).lookup(components, path), { oneStatement: true });
  }

  /** stat(), as the inode's stored bytes (codec.pack of the Inode): the meta server replies with them as they are. */
  async statPacked(user: User, path: string): Promise<Buffer> {
    checkUser(user);
    const components = splitPath(path);
    return this.kv.read((tx) => new NamespaceTx(tx, user, this.hints).lookupPacked(components, path), { oneStatement: true });
  }

  /**
   * A page of a directory's entries in name order. With `plus` (readdirplus), each entry also
   * carries its inode as `attrs` when the caller may search the directory (x), as stat would.
   */
  async readdir(user: User, path: string, options: { after?: string; limit?: number; plus?: boolean } = {}): Promise<ReaddirResult> {
    checkUser(user);
    const components = splitPath(path);
    const limit = options.limit ?? metaLimits.readdirEntriesDefault;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > metaLimits.readdirEntriesMax) throw new MillpondError('EINVAL', `limit must be in [1, ${metaLimits.readdirEntriesMax}]`);
    if (options.after !== undefined && typeof options.after !== 'string') throw new MillpondError('EINVAL', 'after must be a string');
    return this.kv.read(async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      const dir = await ns.lookup(components, path);
      if (dir.type !== 'dir') throw new MillpondError('ENOTDIR', `not a directory: ${path}`);
      requireAccess(user, dir, R, path);
      const [rangeStart, end] = keys.dentryRange(dir.id);
      const start = options.after === undefined ? rangeStart : keys.dentryAfter(dir.id, options.after);
      const rows = await tx.scan(start, end, limit + 1);
      const entries: DirEntry[] = rows.slice(0, limit).map(([k, v]) => {
        const e = unpack(v) as { inode: bigint; type: DirEntry['type'] };
        return { name: keys.nameOfDentry(k), inode: e.inode, type: e.type };
      });
      let more = rows.length > limit;
      if (options.plus && permits(user, dir, X)) {
        const inodes = await ns.inodes(entries.map((e) => e.inode));
        // The page ends early rather than make a reply past the message limit (object attributes).
        let bytes = 0;
        for (let i = 0; i < entries.length; i++) {
          bytes += plusEntryBytes(entries[i]!.name, inodes[i]);
          if (i > 0 && bytes > metaLimits.readdirPlusBytesMax) {
            entries.length = i;
            more = true;
            break;
          }
          if (inodes[i]) entries[i]!.attrs = inodes[i];
        }
      }
      return { entries, more };
    });
  }

  // ---- namespace mutations ----

  async mkdir(user: User, path: string, options: { mode?: number; recursive?: boolean } = {}, dedup?: Dedup): Promise<Inode> {
    checkUser(user);
    const components = splitPath(path);
    const mode = checkMode(options.mode ?? 0o755);
    const recursive = options.recursive ?? false;
    const ids = await this.allocator.take(recursive ? Math.max(components.length, 1) : 1);
    return this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      if (components.length === 0) {
        if (recursive) return ns.mustInode(ROOT_INODE);
        throw new MillpondError('EEXIST', 'the root exists');
      }
      await ns.prefetch(components);
      let dir = await ns.mustInode(ROOT_INODE);
      for (let i = 0; i < components.length; i++) {
        const name = components[i]!;
        const last = i === components.length - 1;
        const here = `/${components.slice(0, i + 1).join('/')}`;
        requireAccess(user, dir, X, here);
        const entry = await ns.entry(dir.id, name);
        if (entry) {
          if (last && !recursive) throw new MillpondError('EEXIST', `already exists: ${path}`);
          if (entry.type !== 'dir') throw new MillpondError(last ? 'EEXIST' : 'ENOTDIR', `not a directory: ${here}`);
          dir = await ns.mustInode(entry.inode);
          continue;
        }
        if (!last && !recursive) throw new MillpondError('ENOENT', `no such directory: ${here}`);
        requireAccess(user, dir, W | X, here);
        const now = Date.now();
        const created: Inode = {
          id: ids[i] ?? ids[0]!, type: 'dir', mode, uid: user.uid, gid: user.gid, length: 0, ctimeMs: now, mtimeMs: now,
          layout: defaultLayout(dir.layout as DirLayout), parent: dir.id,
        };
        await ns.putInode(created);
        await ns.putEntry(dir.id, name, { inode: created.id, type: 'dir' });
        dir = created;
      }
      return dir;
    });
  }

  /**
   * Opens (and with `create`, creates) a file. Writes get a session id for close(). With a
   * cluster secret, a file's result carries a capability for its chunks with the rights the
   * open was allowed (made after the transaction, so a retried request gets a fresh one).
   */
  async open(user: User, path: string, options: { flags?: OpenFlags; mode?: number } = {}, dedup?: Dedup): Promise<OpenResult> {
    const result = await this.openInode(user, path, options, dedup);
    if (!this.capabilities || result.inode.type !== 'file') return result;
    const flags = options.flags ?? { read: true };
    const write = Boolean(flags.write || flags.truncate || flags.append);
    const rights = (flags.read || !write ? RIGHT_READ : 0) | (write ? RIGHT_WRITE : 0);
    return { ...result, capability: this.capabilities.sign(result.inode.id, rights) };
  }

  private async openInode(user: User, path: string, options: { flags?: OpenFlags; mode?: number }, dedup?: Dedup): Promise<OpenResult> {
    checkUser(user);
    const components = splitPath(path);
    const flags = options.flags ?? { read: true };
    const mode = checkMode(options.mode ?? 0o644);
    const write = Boolean(flags.write || flags.truncate || flags.append);
    const read = Boolean(flags.read) || !write;
    const ids = flags.create ? await this.allocator.take(1) : [];
    const result = await this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      if (components.length === 0) {
        if (write) throw new MillpondError('EISDIR', 'the root is a directory');
        if (flags.create && flags.exclusive) throw new MillpondError('EEXIST', 'the root exists');
        const root = await ns.mustInode(ROOT_INODE);
        requireAccess(user, root, R, path);
        return { inode: root };
      }
      const { parent, name } = await ns.parentOf(components, path, !flags.create);
      if (parent.type !== 'dir') throw new MillpondError('ENOTDIR', `not a directory: ${path}`);
      // A create that may create claims the name first (insert: no read of an absent name,
      // which on PostgreSQL would conflict with every other create in the directory).
      const created = ids.length > 0 && permits(user, parent, W | X) ? { inode: ids[0]!, type: 'file' as const } : undefined;
      const entry = created ? await ns.insertEntry(parent.id, name, created) : await ns.entry(parent.id, name);
      const now = Date.now();
      let inode: Inode;
      if (entry) {
        if (flags.create && flags.exclusive) throw new MillpondError('EEXIST', `already exists: ${path}`);
        inode = await ns.mustInode(entry.inode);
        if (inode.type === 'symlink') throw new MillpondError('EINVAL', `is a symbolic link (meta does not follow links): ${path}`);
        if (inode.type === 'dir' && write) throw new MillpondError('EISDIR', `is a directory: ${path}`);
        requireAccess(user, inode, (read ? R : 0) | (write ? W : 0), path);
        if (write && inode.object) {
          const { object: _stale, ...rest } = inode; // the bytes may change: S3 attributes go
          inode = rest;
          if (!(flags.truncate && inode.length !== 0)) await ns.putInode(inode);
        }
        if (flags.truncate && inode.length !== 0) {
          inode = { ...inode, length: 0, mtimeMs: now };
          await ns.putInode(inode);
          await putTrim(tx, inode, 0);
        }
      } else {
        if (!flags.create) throw new MillpondError('ENOENT', `no such file: ${path}`);
        requireAccess(user, parent, W | X, path);
        const dirLayout = defaultLayout(parent.layout as DirLayout);
        const tableVersion = this.chainTables?.current(dirLayout.chainTableId) ?? dirLayout.chainTableVersion;
        const layout: FileLayout = { ...dirLayout, chainTableVersion: tableVersion, seed: randomInt(0, 2 ** 32) };
        inode = { id: ids[0]!, type: 'file', mode, uid: user.uid, gid: user.gid, length: 0, ctimeMs: now, mtimeMs: now, layout, parent: 0n };
        await ns.putInode(inode);
        if (!created) await ns.putEntry(parent.id, name, { inode: inode.id, type: 'file' });
      }
      if (!write) return { inode };
      const session = randomBytes(SESSION_BYTES);
      if (dedup) await putLiveness(tx, dedup.clientId, now);
      await ns.putSession(inode.id, session, { uid: user.uid, openedMs: now, ...(dedup ? { client: dedup.clientId } : {}) });
      return { inode, session: session.toString('hex'), sessionTimeoutMs: this.sessionTimeoutMs };
    });
    if (flags.truncate) await this.finishTrim(result.inode.id);
    return result;
  }

  /**
   * Ends a write session. The file's length becomes the larger of its length and `length`
   * (writers report how far they wrote, as in 3FS); an unlinked file whose last session this
   * was goes to the garbage queue.
   */
  async close(user: User, inodeId: bigint, session: string, options: { length?: number; object?: ObjectAttrs } = {}, dedup?: Dedup): Promise<Inode> {
    checkUser(user);
    if (typeof inodeId !== 'bigint') throw new TypeError('inode must be a bigint');
    const sessionKey = sessionBytes(session);
    const length = options.length ?? 0;
    if (!Number.isSafeInteger(length) || length < 0) throw new MillpondError('EINVAL', 'length must be a non-negative integer');
    const object = options.object === undefined ? undefined : checkObjectAttrs(options.object);
    return this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      if (!(await ns.session(inodeId, sessionKey))) throw new MillpondError('EBADF', `no open session ${session} on inode ${inodeId}`);
      await ns.deleteSession(inodeId, sessionKey);
      const inode = await ns.mustInode(inodeId);
      const updated: Inode = { ...inode, length: Math.max(inode.length, length), mtimeMs: Date.now(), ...(object ? { object } : {}) };
      if (updated.unlinked) await ns.release(updated, updated.mtimeMs);
      else await ns.putInode(updated);
      return updated;
    });
  }

  async unlink(user: User, path: string, dedup?: Dedup): Promise<void> {
    checkUser(user);
    const components = splitPath(path);
    await this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      const { parent, name } = await ns.parentOf(components, path);
      const entry = await ns.entry(parent.id, name);
      if (!entry) throw new MillpondError('ENOENT', `no such file: ${path}`);
      if (entry.type === 'dir') throw new MillpondError('EISDIR', `is a directory: ${path}`);
      requireAccess(user, parent, W | X, path);
      await ns.deleteEntry(parent.id, name);
      await ns.release(await ns.mustInode(entry.inode), Date.now());
      return null;
    });
  }

  async rmdir(user: User, path: string, dedup?: Dedup): Promise<void> {
    checkUser(user);
    const components = splitPath(path);
    await this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      const { parent, name } = await ns.parentOf(components, path);
      const entry = await ns.entry(parent.id, name);
      if (!entry) throw new MillpondError('ENOENT', `no such directory: ${path}`);
      if (entry.type !== 'dir') throw new MillpondError('ENOTDIR', `not a directory: ${path}`);
      requireAccess(user, parent, W | X, path);
      if (!(await ns.isEmptyDir(entry.inode))) throw new MillpondError('ENOTEMPTY', `directory not empty: ${path}`);
      await ns.deleteEntry(parent.id, name);
      await ns.deleteInode(entry.inode);
      return null;
    });
  }

  /**
   * Gives the file at `existing` a second name, `to` (POSIX link(2)): both name one inode, and
   * its chunks go when the last name does. Directories cannot be linked (EPERM).
   */
  async link(user: User, existing: string, to: string, dedup?: Dedup): Promise<Inode> {
    checkUser(user);
    const src = splitPath(existing);
    const dst = splitPath(to);
    return this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      const inode = await ns.lookup(src, existing);
      if (inode.type === 'dir') throw new MillpondError('EPERM', `cannot link a directory: ${existing}`);
      const { parent, name } = await ns.parentOf(dst, to);
      if (await ns.entry(parent.id, name)) throw new MillpondError('EEXIST', `already exists: ${to}`);
      requireAccess(user, parent, W | X, to);
      const nlink = (inode.nlink ?? 1) + 1;
      if (nlink > metaLimits.linksPerFileMax) throw new MillpondError('EMLINK', `${existing} has ${metaLimits.linksPerFileMax} names`);
      const updated: Inode = { ...inode, nlink, ctimeMs: Date.now() };
      await ns.putInode(updated);
      await ns.putEntry(parent.id, name, { inode: inode.id, type: inode.type });
      return updated;
    });
  }

  /**
   * Creates a symbolic link at `path` pointing at `target` (POSIX symlink(2)): any non-empty
   * string of at most pathBytesMax bytes, stored as given and never resolved by meta (the
   * kernel resolves links for a mount; meta's own path walks refuse to cross one, ENOTDIR).
   */
  async symlink(user: User, target: string, path: string, dedup?: Dedup): Promise<Inode> {
    checkUser(user);
    const components = splitPath(path);
    if (typeof target !== 'string' || target.length === 0 || target.includes('\0')) throw new MillpondError('EINVAL', 'a symlink target must be a non-empty string without NUL');
    const targetBytes = Buffer.byteLength(target, 'utf8');
    if (targetBytes > metaLimits.pathBytesMax) throw new MillpondError('ENAMETOOLONG', `symlink target of ${targetBytes} bytes exceeds ${metaLimits.pathBytesMax}`);
    const ids = await this.allocator.take(1);
    return this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      const { parent, name } = await ns.parentOf(components, path);
      if (await ns.entry(parent.id, name)) throw new MillpondError('EEXIST', `already exists: ${path}`);
      requireAccess(user, parent, W | X, path);
      const now = Date.now();
      const inode: Inode = {
        id: ids[0]!, type: 'symlink', mode: 0o777, uid: user.uid, gid: user.gid, length: targetBytes, ctimeMs: now, mtimeMs: now,
        layout: defaultLayout(parent.layout as DirLayout), parent: 0n, target,
      };
      await ns.putInode(inode);
      await ns.putEntry(parent.id, name, { inode: inode.id, type: 'symlink' });
      return inode;
    });
  }

  /** The target of the symbolic link at `path` (EINVAL when it is not one). */
  async readlink(user: User, path: string): Promise<string> {
    const inode = await this.stat(user, path);
    if (inode.type !== 'symlink') throw new MillpondError('EINVAL', `not a symbolic link: ${path}`);
    return inode.target!;
  }

  /**
   * Atomic rename. Replaces a file target (which then goes to garbage) or an empty directory
   * target (ENOTEMPTY otherwise); refuses a directory into its own subtree (EINVAL). With
   * `noReplace` (RENAME_NOREPLACE), an existing `to` is EEXIST, checked inside the same
   * transaction as the move: of two racing renames onto one name exactly one wins.
   */
  async rename(user: User, from: string, to: string, dedup?: Dedup, options: { noReplace?: boolean } = {}): Promise<void> {
    checkUser(user);
    const src = splitPath(from);
    const dst = splitPath(to);
    await this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      if (src.length === 0 || dst.length === 0) throw new MillpondError('EBUSY', 'cannot rename the root');
      const { parent: srcParent, name: srcName } = await ns.parentOf(src, from);
      const srcEntry = await ns.entry(srcParent.id, srcName);
      if (!srcEntry) throw new MillpondError('ENOENT', `no such file or directory: ${from}`);
      const inside = dst.length > src.length && src.every((c, i) => dst[i] === c);
      if (srcEntry.type === 'dir' && inside) throw new MillpondError('EINVAL', `cannot move ${from} into its own subtree ${to}`);
      const { parent: dstParent, name: dstName } = await ns.parentOf(dst, to);
      requireAccess(user, srcParent, W | X, from);
      requireAccess(user, dstParent, W | X, to);
      const dstEntry = await ns.entry(dstParent.id, dstName);
      if (dstEntry) {
        if (options.noReplace) throw new MillpondError('EEXIST', `file exists: ${to}`);
        if (dstEntry.inode === srcEntry.inode) return null; // same file: POSIX says do nothing
        if (srcEntry.type === 'dir') {
          if (dstEntry.type !== 'dir') throw new MillpondError('ENOTDIR', `not a directory: ${to}`);
          if (!(await ns.isEmptyDir(dstEntry.inode))) throw new MillpondError('ENOTEMPTY', `directory not empty: ${to}`);
          await ns.deleteInode(dstEntry.inode);
        } else {
          if (dstEntry.type === 'dir') throw new MillpondError('EISDIR', `is a directory: ${to}`);
          await ns.release(await ns.mustInode(dstEntry.inode), Date.now());
        }
      }
      await ns.deleteEntry(srcParent.id, srcName);
      await ns.putEntry(dstParent.id, dstName, srcEntry);
      if (srcEntry.type === 'dir' && srcParent.id !== dstParent.id) {
        const moved = await ns.mustInode(srcEntry.inode);
        await ns.putInode({ ...moved, parent: dstParent.id, ctimeMs: Date.now() });
      }
      return null;
    });
  }

  /**
   * Sets a file's length (w permission). A shrink records a TrimIntent in the same transaction
   * and, with storage attached, returns only once the chunks past the new end are removed and
   * the last one cut (so growing the file again reads zeros, not the old bytes).
   */
  async truncate(user: User, path: string, length: number, dedup?: Dedup): Promise<Inode> {
    checkUser(user);
    const components = splitPath(path);
    if (!Number.isSafeInteger(length) || length < 0) throw new MillpondError('EINVAL', 'length must be a non-negative integer');
    const result = await this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      const inode = await ns.lookup(components, path);
      if (inode.type === 'dir') throw new MillpondError('EISDIR', `is a directory: ${path}`);
      requireAccess(user, inode, W, path);
      const { object: _stale, ...rest } = inode; // other bytes: the S3 attributes go
      const updated = { ...rest, length, mtimeMs: Date.now() };
      await ns.putInode(updated);
      if (length < inode.length) await putTrim(tx, updated, length);
      return updated;
    });
    await this.finishTrim(result.id);
    return result;
  }

  /**
   * chmod (owner or root), chown (uid: root only; gid: root, or the owner to a group of theirs)
   * and utimes (mtimeMs: owner or root, as POSIX for an explicit time).
   */
  async setattr(user: User, path: string, attrs: { mode?: number; uid?: number; gid?: number; mtimeMs?: number }, dedup?: Dedup): Promise<Inode> {
    checkUser(user);
    const components = splitPath(path);
    if (attrs.mode !== undefined) checkMode(attrs.mode);
    if (attrs.mtimeMs !== undefined && (!Number.isSafeInteger(attrs.mtimeMs) || attrs.mtimeMs < 0)) throw new MillpondError('EINVAL', 'mtimeMs must be a non-negative integer');
    for (const id of [attrs.uid, attrs.gid]) {
      if (id !== undefined && (!Number.isSafeInteger(id) || id < 0 || id > 0xffffffff)) throw new MillpondError('EINVAL', 'uid and gid must be 32-bit unsigned');
    }
    return this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      const inode = await ns.lookup(components, path);
      const root = user.uid === 0;
      const owner = user.uid === inode.uid;
      if (attrs.mode !== undefined && !root && !owner) throw new MillpondError('EPERM', `only the owner may chmod ${path}`);
      if (attrs.mtimeMs !== undefined && !root && !owner) throw new MillpondError('EPERM', `only the owner may set the times of ${path}`);
      if (attrs.uid !== undefined && attrs.uid !== inode.uid && !root) throw new MillpondError('EPERM', `only root may chown ${path}`);
      if (attrs.gid !== undefined && attrs.gid !== inode.gid && !root && !(owner && inGroup(user, attrs.gid))) {
        throw new MillpondError('EPERM', `cannot change the group of ${path} to ${attrs.gid}`);
      }
      const updated: Inode = { ...inode, mode: attrs.mode ?? inode.mode, uid: attrs.uid ?? inode.uid, gid: attrs.gid ?? inode.gid, mtimeMs: attrs.mtimeMs ?? inode.mtimeMs, ctimeMs: Date.now() };
      await ns.putInode(updated);
      return updated;
    });
  }

  /** Sets the layout template of a directory (owner or root); files created later use it. */
  async setLayout(user: User, path: string, layout: Partial<DirLayout>, dedup?: Dedup): Promise<Inode> {
    checkUser(user);
    const components = splitPath(path);
    return this.mutate(dedup, async (tx) => {
      const ns = new NamespaceTx(tx, user, this.hints);
      const dir = await ns.lookup(components, path);
      if (dir.type !== 'dir') throw new MillpondError('ENOTDIR', `not a directory: ${path}`);
      if (user.uid !== 0 && user.uid !== dir.uid) throw new MillpondError('EPERM', `only the owner may set the layout of ${path}`);
      const updated: Inode = { ...dir, layout: checkLayout({ ...(dir.layout as DirLayout), ...layout }), ctimeMs: Date.now() };
      await ns.putInode(updated);
      return updated;
    });
  }

  // ---- S3 access keys (admins only; src/meta/access-keys.ts) ----

  accessKeyAdd(user: User, owner: User): Promise<AccessKey> { checkUser(user); return addAccessKey(this.kv, user, owner); }
  accessKeyGet(user: User, accessKeyId: string): Promise<AccessKey> { checkUser(user); return getAccessKey(this.kv, user, accessKeyId); }
  accessKeyList(user: User, uid?: number) { checkUser(user); return listAccessKeys(this.kv, user, uid); }
  accessKeyRemove(user: User, accessKeyId: string): Promise<void> { checkUser(user); return removeAccessKey(this.kv, user, accessKeyId); }

  // ---- garbage: files whose chunks storage daemons remove in the background ----

  /**
   * Up to `limit` files waiting for chunk removal, oldest inode first, that no collector holds:
   * each is leased to the caller for garbageLeaseMs (one transaction: two meta servers'
   * collectors on one store never take the same file while its lease runs). A file stays
   * queued until acked; one not acked is taken again once its lease ends.
   */
  async takeGarbage(limit: number): Promise<Garbage[]> {
    checkGarbageLimit(limit);
    return this.kv.transact(async (tx) => {
      const nowMs = Date.now();
      const taken: Garbage[] = [];
      let [start, end] = keys.garbageRange();
      for (let examined = 0; taken.length < limit && examined < metaLimits.garbageScanEntriesMax;) {
        const pageSize = Math.min(limit, metaLimits.garbageScanEntriesMax - examined);
        const page = await tx.scan(start, end, pageSize);
        for (const [key, value] of page) {
          examined++;
          const { file, leaseUntilMs } = unpackQueuedGarbage(value);
          if (leaseUntilMs > nowMs) continue;
          await tx.put(key, pack({ ...file, leaseUntilMs: nowMs + this.garbageLeaseMs }));
          taken.push(file);
          if (taken.length === limit) break;
        }
        if (page.length < pageSize) break;
        start = keys.after(page.at(-1)![0]);
      }
      return taken;
    });
  }

  /** The files waiting for chunk removal, oldest inode first, leased or not (nothing is taken). */
  async listGarbage(limit: number): Promise<Garbage[]> {
    checkGarbageLimit(limit);
    const [start, end] = keys.garbageRange();
    return this.kv.read(async (tx) => (await tx.scan(start, end, limit)).map(([, v]) => unpackQueuedGarbage(v).file));
  }

  /** Removes files from the queue once their chunks are gone. */
  async ackGarbage(inodes: bigint[]): Promise<void> {
    if (!Array.isArray(inodes) || inodes.length > metaLimits.garbageBatchMax) throw new MillpondError('EINVAL', `at most ${metaLimits.garbageBatchMax} inodes`);
    await this.kv.transact(async (tx) => {
      for (const id of inodes) await tx.delete(keys.garbage(id));
    });
  }

  // ---- sessions of clients that went away ----

  /**
   * A client with write sessions says it lives (every metaLimits.sessionHeartbeatMs). Of the
   * `sessions` it names (hex ids), those that no longer exist are returned in `ended`: the
   * service ended them while the client was quiet, so writes under them will never be
   * published. The check and the liveness update are one transaction, so a session not in
   * `ended` lives at least sessionTimeoutMs after this call (what clients lease on).
   */
  async heartbeat(clientId: Buffer, sessions: Array<{ inode: bigint; session: string }> = []): Promise<{ ended: string[]; sessionTimeoutMs: number }> {
    if (!Array.isArray(sessions) || sessions.length > metaLimits.heartbeatSessionsMax) {
      throw new MillpondError('EINVAL', `a heartbeat names at most ${metaLimits.heartbeatSessionsMax} sessions`);
    }
    const wanted = sessions.map(({ inode, session }) => ({ inode, session, key: sessionBytes(session) }));
    return this.kv.transact(async (tx) => {
      await putLiveness(tx, clientId, Date.now());
      const ns = new NamespaceTx(tx, { uid: 0, gid: 0 });
      const ended: string[] = [];
      for (const { inode, session, key } of wanted) if (!(await ns.session(inode, key))) ended.push(session);
      return { ended, sessionTimeoutMs: this.sessionTimeoutMs };
    });
  }

  /**
   * Ends the write sessions of clients not heard from for sessionTimeoutMs: they crashed, or
   * were cut off from every meta server. An unlinked file whose last session goes is then
   * collected; a linked file keeps the length its writer last reported, so bytes written past
   * it stay unpublished (3FS asks the storage servers for the length here; this does not).
   * Sessions opened without a clientId
   * (in-process callers) have no liveness to watch and stay until closed. Returns how many
   * sessions ended.
   */
  async pruneSessions(nowMs = Date.now()): Promise<number> {
    const quietSinceMs = nowMs - this.sessionTimeoutMs;
    const isQuiet = async (tx: KvTx, client: Buffer, known: Map<string, boolean>) => {
      const id = client.toString('hex');
      let quiet = known.get(id); // a client's sessions in one batch share one liveness read
      if (quiet === undefined) {
        const raw = await tx.get(keys.liveness(client));
        quiet = !raw || (unpack(raw) as { seenMs: number }).seenMs < quietSinceMs;
        known.set(id, quiet);
      }
      return quiet;
    };
    let ended = 0;
    const [start, end] = keys.sessionsAll();
    for (let cursor: Buffer | undefined = start; cursor;) {
      const from: Buffer = cursor;
      // The callback may run again when the transaction retries: it keeps no state outside.
      const batch = await this.kv.transact(async (tx) => {
        const ns = new NamespaceTx(tx, { uid: 0, gid: 0 });
        const rows = await tx.scan(from, end, metaLimits.sessionPruneBatch);
        const known = new Map<string, boolean>();
        let n = 0;
        for (const [key, value] of rows) {
          const { client } = unpack(value) as SessionRecord;
          if (!client || !(await isQuiet(tx, Buffer.from(client), known))) continue;
          await tx.delete(key);
          n++;
          const inode = await ns.inode(keys.inodeOfSession(key));
          if (inode?.unlinked && !(await ns.hasSessions(inode.id))) await ns.release(inode, nowMs);
        }
        const next = rows.length === metaLimits.sessionPruneBatch ? keys.after(rows[rows.length - 1]![0]) : undefined;
        return { n, next };
      });
      ended += batch.n;
      cursor = batch.next;
    }
    // Liveness records of quiet clients: their sessions are gone, so they are no longer needed.
    const [livenessStart, livenessEnd] = keys.livenessAll();
    await this.kv.transact(async (tx) => {
      for (const [key, value] of await tx.scan(livenessStart, livenessEnd, metaLimits.sessionPruneBatch)) {
        if ((unpack(value) as { seenMs: number }).seenMs < quietSinceMs) await tx.delete(key);
      }
    });
    return ended;
  }

  // ---- shrinks whose chunks storage cuts ----

  /**
   * Carries out the TrimIntent of `inode`, if any and if the file is still as its shrink left
   * it (same mtime; for a `stale` intent also no write session open, which may be writing past
   * the end): a retried request finds it again and waits for the cut too. An intent the file
   * has moved on from is dropped: cutting then could remove newer bytes. Without storage the
   * intent stays queued. Returns whether chunks were cut.
   */
  private async finishTrim(inode: bigint, stale = false): Promise<boolean> {
    if (!this.storage) return false;
    const found = await this.kv.transact(async (tx) => {
      const raw = await tx.get(keys.trim(inode));
      if (!raw) return undefined;
      const intent = unpack(raw) as TrimIntent;
      const ns = new NamespaceTx(tx, { uid: 0, gid: 0 });
      const current = await ns.inode(inode);
      const valid = current !== undefined && current.mtimeMs === intent.mtimeMs && !(stale && (await ns.hasSessions(inode)));
      return { intent, valid };
    });
    if (!found) return false;
    if (found.valid) await this.storage.trim(found.intent.inode, found.intent.layout, found.intent.length);
    await this.kv.transact(async (tx) => {
      const now = await tx.get(keys.trim(inode));
      if (now && (unpack(now) as TrimIntent).nonce === found.intent.nonce) await tx.delete(keys.trim(inode));
    });
    return found.valid;
  }

  /**
   * Finishes intents older than metaLimits.trimRetryIntervalMs (meta crashed mid-cut, storage
   * failed, or no storage was attached then), as finishTrim does. Returns how many cut chunks.
   */
  async finishStaleTrims(nowMs = Date.now()): Promise<number> {
    const [start, end] = keys.trimRange();
    const rows = await this.kv.transact((tx) => tx.scan(start, end, metaLimits.garbageBatchMax));
    let finished = 0;
    for (const [, raw] of rows) {
      const intent = unpack(raw) as TrimIntent;
      if (nowMs - intent.mtimeMs < metaLimits.trimRetryIntervalMs) continue; // its shrink may still be cutting
      if (await this.finishTrim(intent.inode, true)) finished++;
    }
    return finished;
  }

  /** Drops stored mutation results older than metaLimits.dedupTtlMs; returns how many. */
  async pruneApplied(nowMs = Date.now()): Promise<number> {
    const [start, end] = keys.expiryRangeBefore(Math.max(0, nowMs - metaLimits.dedupTtlMs));
    return this.kv.transact(async (tx) => {
      const rows = await tx.scan(start, end, metaLimits.dedupPruneBatch);
      for (const [k] of rows) {
        await tx.delete(k);
        await tx.delete(keys.appliedOfExpiry(k));
      }
      return rows.length;
    });
  }

  /**
   * Runs a mutation; with `dedup`, at most once per (clientId, requestId). The request's
   * result is claimed (KvTx.claim) at its 'R' key in the mutation's own transaction, rather
   * than looked up first: that costs no round trip, and it reads no absent key (on PostgreSQL
   * reading one locks the index page the client's other requests in flight write, so they
   * would all conflict). A duplicate runs fn again, and fails: its claim finds the key (or fn
   * itself throws, as a second exclusive create does). Any failure therefore looks the key up,
   * and a stored result is the answer; nothing of the duplicate's run commits.
   */
  private async mutate<T>(dedup: Dedup | undefined, fn: (tx: KvTx) => Promise<T>): Promise<T> {
    if (!dedup) return this.kv.transact(fn);
    const appliedKey = keys.applied(dedup.clientId, dedup.requestId);
    try {
      return await this.kv.transact(async (tx) => {
        const result = await fn(tx);
        const atMs = Date.now();
        await tx.claim(appliedKey, pack({ atMs, result }));
        await tx.put(keys.expiry(atMs, dedup.clientId, dedup.requestId), Buffer.alloc(0));
        return result;
      });
    } catch (err) {
      const prior = await this.kv.read((tx) => tx.get(appliedKey)).catch(() => undefined);
      if (prior) return (unpack(prior) as { result: T }).result;
      throw err;
    }
  }
}
