/**
 * The mount-free filesystem API (design §1): node:fs/promises-shaped calls over the metadata
 * service (MetaClient) and the chains (the native FileClient, which moves every byte). Errors are
 * MillpondErrors with node's codes (ENOENT, EEXIST, ENOTDIR, EISDIR, EACCES, ...), `path`
 * and `syscall` set.
 */
import { Readable, Writable } from 'node:stream';
import { RoutingClient } from '../cluster/routing-client.js';
import { mapLimited } from '../concurrency.js';
import { MillpondError } from '../errors.js';
import { fsLimits, limits } from '../limits.js';
import { findClientAuth } from '../auth/credentials.js';
import { MetaClient, MetaClientView } from '../meta/meta-client.js';
import type { DirLayout, FileLayout, Inode, ObjectAttrs, OpenFlags, User } from '../protocol/meta-types.js';
import { addon, type DataClientCounters, type TransportChoice } from '../native/binding.js';
import { FileCapability } from './file-capability.js';
import { FileClient, type DataClientTuning, type FileData } from './file-data.js';
import { fileChainsIn } from './file-chains.js';
import { chainOfChunk } from './layout.js';
import { compileGlob, type Segment } from './glob.js';
import { HandOff, writeFrom } from './write-from.js';
import { Dirent, Stats } from './stats.js';

export interface ConnectOptions {
  /**
   * Meta servers (tcp://host:port): one, or several over one database as a list or a comma
   * string; calls fail over between them.
   */
  meta: string | string[];
  /** mgmtd endpoints. */
  mgmtd: string | string[];
  /**
   * The caller's token (`mpt1...`) and the cluster's CURVE server key (cluster.json
   * "serverKey"); when absent, MILLPOND_TOKEN / MILLPOND_TOKEN_FILE and MILLPOND_SERVER_KEY.
   * Meta checks every request as the token's user; data servers with the cluster secret
   * check the token too, and serve it only with the capabilities meta hands out at open.
   */
  token?: string;
  tokenFile?: string;
  serverKey?: string;
  /** A proxy user's (or the admin's) token acts as this identity (`actAs`). */
  user?: User;
  transport?: TransportChoice;
  /** How the native client moves bytes: read-ahead, chunks in flight, connections per server. */
  io?: DataClientTuning;
}

export type OpenMode = 'r' | 'r+' | 'w' | 'wx' | 'w+' | 'a' | 'ax' | 'a+';

const OPEN_FLAGS: Record<OpenMode, OpenFlags> = {
  r: { read: true },
  'r+': { read: true, write: true },
  w: { write: true, create: true, truncate: true },
  wx: { write: true, create: true, exclusive: true },
  'w+': { read: true, write: true, create: true, truncate: true },
  a: { write: true, create: true, append: true },
  ax: { write: true, create: true, exclusive: true, append: true },
  'a+': { read: true, write: true, create: true, append: true },
};

/** Adds node's `path` and `syscall` to errors of one call. */
async function attributed<T>(syscall: string, path: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof MillpondError) {
      err.path ??= path;
      err.syscall ??= syscall;
    }
    throw err;
  }
}

function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export async function connect(options: ConnectOptions): Promise<FileSystem> {
  const auth = findClientAuth({ token: options.token, tokenFile: options.tokenFile, serverKey: options.serverKey });
  const meta = new MetaClient(options.meta, { user: options.user, auth });
  const routing = new RoutingClient({ mgmtd: options.mgmtd, auth });
  let files: FileClient | undefined;
  try {
    await routing.refresh();
    files = new FileClient({ mgmtd: options.mgmtd, auth, transport: options.transport, io: options.io });
  } catch (err) {
    meta.disconnect();
    routing.close();
    throw err;
  }
  return new FileSystem(meta, options.user ? meta.as(options.user) : auth ? meta.as(undefined) : meta.as({ uid: 0, gid: 0 }), routing, files);
}

export class FileSystem {
  constructor(
    private readonly client: MetaClient,
    private readonly meta: MetaClientView,
    /** Routing, for dataHosts() only: bytes move through `files`. */
    private readonly routing: RoutingClient,
    private readonly files: FileClient,
  ) {}

  stat(path: string): Promise<Stats> {
    return attributed('stat', path, async () => new Stats(await this.meta.stat(path)));
  }

  readdir(path: string): Promise<string[]>;
  readdir(path: string, options: { withFileTypes: true }): Promise<Dirent[]>;
  readdir(path: string, options: { withFileTypes?: boolean } = {}): Promise<string[] | Dirent[]> {
    return attributed('scandir', path, async () => {
      const entries: Dirent[] = [];
      for await (const e of this.dirEntries(path)) {
        if (entries.length === fsLimits.walkEntriesMax) throw new MillpondError('EMSGSIZE', `${path} has too many entries`);
        entries.push(e);
      }
      return options.withFileTypes ? entries : entries.map((e) => e.name);
    });
  }

  /**
   * A directory's entries in name order (UTF-8 bytes), read fsLimits.readdirPageEntries at a
   * time as the caller iterates: a directory of any size in bounded memory. With `after`, only
   * the names sorting after it (it need not exist). With `plus`, each entry carries its Stats
   * (read with its page: no stat per entry). Entries added or removed meanwhile may or may not
   * be seen; none is seen twice.
   */
  async *dirEntries(path: string, options: { after?: string; plus?: boolean } = {}): AsyncGenerator<Dirent> {
    let after = options.after;
    for (;;) {
      const page = await attributed('scandir', path, () => this.meta.readdir(path, { after, limit: fsLimits.readdirPageEntries, plus: options.plus }));
      for (const e of page.entries) yield new Dirent(e.name, path, e.type, e.attrs && new Stats(e.attrs));
      if (!page.more || page.entries.length === 0) return;
      after = page.entries.at(-1)!.name;
    }
  }

  mkdir(path: string, options: { recursive?: boolean; mode?: number } = {}): Promise<void> {
    return attributed('mkdir', path, async () => { await this.meta.mkdir(path, options); });
  }

  unlink(path: string): Promise<void> {
    return attributed('unlink', path, () => this.meta.unlink(path));
  }

  rmdir(path: string): Promise<void> {
    return attributed('rmdir', path, () => this.meta.rmdir(path));
  }

  /** Removes a file, or a directory with `recursive`; `force` ignores a missing path. */
  rm(path: string, options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    return attributed('rm', path, async () => {
      let st: Stats;
      try {
        st = await this.stat(path);
      } catch (err) {
        if (options.force && err instanceof MillpondError && err.code === 'ENOENT') return;
        throw err;
      }
      if (!st.isDirectory()) return this.meta.unlink(path);
      if (!options.recursive) throw new MillpondError('EISDIR', `${path} is a directory (use recursive)`);
      // A directory's files go fsLimits.rmUnlinksInFlight at a time (their meta transactions
      // share commits); its subdirectories one after another, so that bound holds for the tree.
      const entries = await this.readdir(path, { withFileTypes: true });
      await mapLimited(entries.filter((e) => !e.isDirectory()), fsLimits.rmUnlinksInFlight, (e) => this.meta.unlink(joinPath(path, e.name)));
      for (const e of entries.filter((e) => e.isDirectory())) await this.rm(joinPath(path, e.name), { recursive: true });
      await this.meta.rmdir(path);
    });
  }

  /** Sets how files created under a directory are laid out (chunk size, stripe, chain table). */
  setLayout(path: string, layout: Partial<DirLayout>): Promise<void> {
    return attributed('setlayout', path, async () => { await this.meta.setLayout(path, layout); });
  }

  /** Atomic rename; `noReplace`: EEXIST when `to` exists (checked in the same meta transaction). */
  rename(from: string, to: string, options?: { noReplace?: boolean }): Promise<void> {
    return attributed('rename', from, () => this.meta.rename(from, to, options));
  }

  /** A second name for a file (fs.link): no bytes move; the chunks go with the last name. */
  async link(existingPath: string, newPath: string): Promise<void> {
    await attributed('link', existingPath, () => this.meta.link(existingPath, newPath));
  }

  /** Sets the length; a shrink returns once meta had storage cut the chunks past the end. */
  /**
   * Where a file's bytes are: bytes per storage host (the host part of the data address of
   * each serving target of each chunk's chain; a chunk with 3 replicas counts on 3 hosts).
   * From the file's layout and the routing this client holds: no chunk is read.
   */
  dataHosts(path: string): Promise<{ bytes: number; hosts: Map<string, number> }> {
    return attributed('stat', path, async () => {
      const inode = await this.meta.stat(path);
      const out = new Map<string, number>();
      const result = { bytes: inode.length, hosts: out };
      if (inode.type !== 'file' || inode.length === 0) return result;
      const layout = inode.layout as FileLayout;
      const routing = await this.routing.routing();
      const chains = fileChainsIn(routing, layout);
      if (!chains) return result;
      const chainById = new Map(routing.chains.map((c) => [c.chainId, c]));
      const targetById = new Map(routing.targets.map((t) => [t.targetId, t]));
      const chunks = Math.ceil(inode.length / layout.chunkSizeBytes);
      for (let i = 0; i < chunks; i++) {
        const bytes = Math.min(layout.chunkSizeBytes, inode.length - i * layout.chunkSizeBytes);
        const chain = chainById.get(chainOfChunk(chains, i));
        for (const id of chain?.targets ?? []) {
          const target = targetById.get(id);
          if (target?.state !== 'serving') continue;
          const host = target.dataAddress.replace(/^\[?(.*?)\]?:\d+$/, '$1');
          out.set(host, (out.get(host) ?? 0) + bytes);
        }
      }
      return result;
    });
  }

  truncate(path: string, length = 0): Promise<void> {
    return attributed('truncate', path, async () => { await this.meta.truncate(path, length); });
  }

  open(path: string, mode: OpenMode = 'r', options: { mode?: number } = {}): Promise<FileHandle> {
    const flags = OPEN_FLAGS[mode];
    if (!flags) throw new TypeError(`unknown open mode ${JSON.stringify(mode)}`);
    return attributed('open', path, async () => {
      const { inode, session, capability } = await this.meta.open(path, { flags, mode: options.mode });
      const write = Boolean(flags.write || flags.truncate || flags.append);
      const access = new FileCapability(capability, () => this.renewCapability(path, inode.id, { read: flags.read, write }));
      const bytes = inode.type === 'file' ? this.files.attach(inode, path, write, access) : undefined;
      return new FileHandle(this.meta, bytes, inode, path, session, flags);
    });
  }

  /**
   * A fresh capability for an open file: opens its path again with the same rights (meta
   * checks permissions again) and ends the extra write session at once. EAUTH when the path
   * names another file now (renamed over, or unlinked and recreated).
   */
  private async renewCapability(path: string, inodeId: bigint, rights: { read?: boolean; write?: boolean }): Promise<Buffer | undefined> {
    const again = await this.meta.open(path, { flags: { read: Boolean(rights.read), write: Boolean(rights.write) } });
    if (again.session) await this.meta.close(again.inode.id, again.session).catch(() => {});
    if (again.inode.id !== inodeId) throw new MillpondError('EAUTH', `${path} names another file now: its capability cannot be renewed`);
    return again.capability;
  }

  async readFile(path: string): Promise<Buffer>;
  async readFile(path: string, encoding: BufferEncoding): Promise<string>;
  async readFile(path: string, encoding?: BufferEncoding): Promise<Buffer | string> {
    const handle = await this.open(path, 'r');
    try {
      const data = await handle.readFile();
      return encoding ? data.toString(encoding) : data;
    } finally {
      await handle.close();
    }
  }

  async writeFile(path: string, data: Buffer | string, options: { mode?: number; flag?: OpenMode } = {}): Promise<void> {
    const handle = await this.open(path, options.flag ?? 'w', options);
    try {
      await handle.write(typeof data === 'string' ? Buffer.from(data) : data);
    } finally {
      await handle.close();
    }
  }

  appendFile(path: string, data: Buffer | string): Promise<void> {
    return this.writeFile(path, data, { flag: 'a' });
  }

  /** Sequential reads with one chunk-sized read ahead of the consumer. */
  createReadStream(path: string, options: { start?: number; end?: number; highWaterMark?: number } = {}): Readable {
    const step = options.highWaterMark ?? fsLimits.streamChunkBytesDefault;
    const open = this.open(path, 'r');
    async function* chunks() {
      const handle = await open;
      try {
        const end = Math.min(options.end === undefined ? Infinity : options.end + 1, handle.length);
        let position = options.start ?? 0;
        let ahead = position < end ? handle.readAt(position, Math.min(step, end - position)) : undefined;
        while (ahead) {
          const current = await ahead;
          position += current.length;
          ahead = position < end ? handle.readAt(position, Math.min(step, end - position)) : undefined;
          if (current.length > 0) yield current;
        }
      } finally {
        await handle.close();
      }
    }
    return Readable.from(chunks(), { objectMode: false, highWaterMark: step });
  }

  /**
   * Sequential writes from the start (or at the end, for 'a'), in chunk-aligned pieces
   * (whole-chunk writes, the cheap path of a chain write): a written buffer's whole chunks go
   * as they are, the rest is gathered by copy, with fsLimits.streamWritesInFlight pieces in
   * flight (one at a time when appending). A failed write fails the stream; 'finish' comes
   * only once every byte was committed by every replica and the file closed. A write's
   * callback means the stream is done with the buffer (copied, or written from), not that
   * every byte is stored. 'ready' once the file is open (as node's fs.WriteStream).
   */
  createWriteStream(path: string, options: { flags?: OpenMode } = {}): Writable {
    const append = Boolean(OPEN_FLAGS[options.flags ?? 'w']?.append);
    const opening = this.open(path, options.flags ?? 'w');
    const source = new HandOff();
    const written = opening.then(async (h) => {
      stream.emit('ready');
      try {
        await writeFrom(h, source, {
          position: append ? h.length : 0, inFlightMax: append ? 1 : fsLimits.streamWritesInFlight, release: () => source.release(),
        });
      } catch (err) {
        await h.close().catch(() => {});
        throw err;
      }
      await h.close();
    });
    const stream = new Writable({
      highWaterMark: fsLimits.streamChunkBytesDefault,
      write(chunk: Buffer, _encoding, callback) {
        source.offer(chunk, callback);
      },
      final(callback) {
        source.end();
        written.then(() => callback(), callback);
      },
      destroy(error, callback) {
        source.end();
        written.catch(() => {}).finally(() => callback(error));
      },
    });
    written.catch((err: unknown) => stream.destroy(err as Error));
    return stream;
  }

  /** Paths matching an absolute pattern with `*`, `?` and `**`, sorted. */
  async glob(pattern: string): Promise<string[]> {
    const { root, segments } = compileGlob(pattern);
    const found = new Set<string>();
    let visited = 0;
    const walk = async (dir: string, rest: Segment[]): Promise<void> => {
      if (rest.length === 0) {
        found.add(dir);
        return;
      }
      const [head, ...tail] = rest;
      let entries: Dirent[];
      try {
        entries = await this.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (err instanceof MillpondError && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return;
        throw err;
      }
      visited += entries.length;
      if (visited > fsLimits.walkEntriesMax) throw new MillpondError('EMSGSIZE', `glob ${pattern} visits too many entries`);
      if (head === '**') {
        await walk(dir, tail); // ** matches zero directories
        for (const e of entries) if (e.isDirectory()) await walk(joinPath(dir, e.name), rest);
        if (tail.length === 0) for (const e of entries) found.add(joinPath(dir, e.name));
        return;
      }
      for (const e of entries) {
        if (!head!.test(e.name)) continue;
        if (tail.length === 0) found.add(joinPath(dir, e.name));
        else if (e.isDirectory()) await walk(joinPath(dir, e.name), tail);
      }
    };
    if (segments.length === 0) {
      await this.stat(root);
      return [root];
    }
    await walk(root, segments);
    return [...found].sort();
  }

  /** What this FileSystem's native data client did since connect (chunk reads, hedges, bytes...). */
  ioCounters(): DataClientCounters {
    return this.files.counters();
  }

  close(): void {
    this.files.close();
    this.routing.close();
    this.client.disconnect();
  }
}

/** An open file. Reads and writes at explicit positions or at the handle's own position. */
export class FileHandle {
  private position: number;
  private written = 0; // the end of the furthest write
  private closed = false;

  constructor(
    private readonly meta: MetaClientView,
    /** The bytes; absent when the path named no regular file (a directory has none to move). */
    private readonly bytes: FileData | undefined,
    private inode: Inode,
    readonly path: string,
    private readonly session: string | undefined,
    private readonly flags: OpenFlags,
  ) {
    this.position = flags.append ? inode.length : 0;
  }

  private get data(): FileData {
    if (!this.bytes) throw new MillpondError('EISDIR', `${this.path} is not a regular file`);
    return this.bytes;
  }

  /** The length known to this handle: the file's at open, extended by its own writes. */
  get length(): number {
    return Math.max(this.inode.length, this.written);
  }

  /** Reads up to `length` bytes at `position`, bounded by the file's end. */
  async readAt(position: number, length: number): Promise<Buffer> {
    this.check('read');
    if (!Number.isSafeInteger(position) || position < 0) throw new RangeError('position must be a non-negative integer');
    const n = Math.max(0, Math.min(length, this.length - position, fsLimits.readBytesMax));
    // Unzeroed: the read fills every byte (holes and short chunks as zeros) or throws, and
    // the buffer is returned only then. A large one is block-aligned, so the local reads'
    // O_DIRECT lands in it without a staging copy.
    const out = n >= limits.directReadBytesMin ? addon.allocAligned(n) : Buffer.allocUnsafe(n);
    if (n > 0) await attributed('read', this.path, () => this.data.read(position, out));
    return out;
  }

  /**
   * Reads into `target` from `position`, bounded by the file's end; returns the bytes read
   * (holes read as zeros). readAt without the allocation: a caller streaming a file (the S3
   * gateway's GET) reuses its buffers.
   */
  async readInto(target: Buffer, position: number): Promise<number> {
    this.check('read');
    if (!Number.isSafeInteger(position) || position < 0) throw new RangeError('position must be a non-negative integer');
    const n = Math.max(0, Math.min(target.length, this.length - position, fsLimits.readBytesMax));
    if (n > 0) await attributed('read', this.path, () => this.data.read(position, target.subarray(0, n)));
    return n;
  }

  /**
   * Many small reads at once (random 4 KiB reads of a dataloader, say): grouped by chain into
   * batched messages to the storage servers instead of one request each. Returns the reads'
   * bytes one after another, each bounded by the file's end like readAt.
   */
  async readBatch(reads: Array<{ position: number; length: number }>): Promise<Buffer> {
    this.check('read');
    if (!Array.isArray(reads)) throw new TypeError('reads must be an array');
    const bounded: Array<{ position: number; length: number }> = [];
    let total = 0;
    for (const r of reads) {
      if (!Number.isSafeInteger(r.position) || r.position < 0) throw new RangeError('position must be a non-negative integer');
      if (!Number.isSafeInteger(r.length) || r.length < 0) throw new RangeError('length must be a non-negative integer');
      const n = Math.max(0, Math.min(r.length, this.length - r.position));
      bounded.push({ position: r.position, length: n });
      total += n;
    }
    if (total > fsLimits.readBytesMax) throw new RangeError(`a batch reads at most ${fsLimits.readBytesMax} bytes`);
    const out = Buffer.alloc(total);
    const nonEmpty = bounded.filter((r) => r.length > 0); // each lands after the ones before it
    if (nonEmpty.length > 0) await attributed('read', this.path, () => this.data.readBatch(nonEmpty, out));
    return out;
  }

  /** Like node: fills buffer[offset, offset+length) from `position` (or the handle's position). */
  async read(buffer: Buffer, offset = 0, length = buffer.length - offset, position: number | null = null) {
    const at = position ?? this.position;
    const data = await this.readAt(at, length);
    data.copy(buffer, offset);
    if (position === null) this.position += data.length;
    return { bytesRead: data.length, buffer };
  }

  /**
   * The whole file, or EINVAL when it is longer than fsLimits.readBytesMax (as node's readFile
   * refuses files past its limit): never a short read that looks like the whole file.
   */
  async readFile(): Promise<Buffer> {
    return attributed('read', this.path, async () => {
      if (this.length > fsLimits.readBytesMax) {
        throw new MillpondError('EINVAL', `${this.path} has ${this.length} bytes, more than readFile returns ` +
          `(${fsLimits.readBytesMax}): read it in parts (readAt, readInto, createReadStream)`);
      }
      return this.readAt(0, this.length);
    });
  }

  /** Writes all of `data` at `position` (or the handle's position; the end in append mode). */
  async write(data: Buffer, position: number | null = null): Promise<{ bytesWritten: number }> {
    this.check('write');
    if (!this.session) throw new MillpondError('EBADF', `${this.path} is not open for writing`);
    const at = this.flags.append ? this.length : position ?? this.position;
    if (!Number.isSafeInteger(at) || at < 0) throw new RangeError('position must be a non-negative integer');
    await attributed('write', this.path, async () => {
      await this.data.write(at, data);
      // Acknowledge only bytes that close() can still publish: EBADF if meta ended the session.
      await this.meta.checkSession(this.session!);
    });
    this.written = Math.max(this.written, at + data.length);
    if (position === null) this.position = at + data.length;
    return { bytesWritten: data.length };
  }

  async stat(): Promise<Stats> {
    return new Stats({ ...this.inode, length: this.length });
  }

  /**
   * Ends the write session, publishing the new length to the metadata service, and with
   * `object`, the S3 attributes of the bytes written (src/s3).
   */
  async close(options: { object?: ObjectAttrs } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.bytes?.close();
    if (this.session) {
      this.inode = await attributed('close', this.path, () =>
        this.meta.close(this.inode.id, this.session!, { length: this.length, ...options }));
    }
  }

  /** The inode as of open (or as the close that ended a write returned it). */
  get info(): Inode {
    return this.inode;
  }

  private check(what: 'read' | 'write'): void {
    if (this.closed) throw new MillpondError('EBADF', `${this.path}: ${what} on a closed file`);
    if (what === 'read' && !this.flags.read) throw new MillpondError('EBADF', `${this.path} is not open for reading`);
  }
}
