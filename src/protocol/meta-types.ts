/** The records of the namespace, as stored (msgpack values in the KV) and as returned. */

export type FileType = 'file' | 'dir' | 'symlink';

/** Who asks. Root (uid 0) bypasses permission checks, as in POSIX. */
export interface User {
  uid: number;
  gid: number;
  /** Supplementary groups. */
  gids?: number[];
}

/** How a directory lays out the files created in it (inherited by its subdirectories). */
export interface DirLayout {
  chunkSizeBytes: number;
  /** Chains one file spreads over: chunk i lives on chain chains[i % stripeSize]. */
  stripeSize: number;
  chainTableId: number;
  /**
   * Directories: the version a new file gets when meta does not know the table's current one
   * (meta without mgmtd). Files: the table version the file was created at, fixed: the file
   * spreads over the chains the table had then (fs/layout.ts tableChainsAt), so growing the
   * table never moves its chunks. 0 (older layouts may hold it) reads as 1.
   */
  chainTableVersion: number;
}

/** A file's layout: its directory's, fixed at create, plus the seed that shuffles the chains. */
export interface FileLayout extends DirLayout {
  seed: number;
}

export interface Inode {
  id: bigint;
  type: FileType;
  /** Permission bits (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes; for files only (0 for directories). */
  length: number;
  ctimeMs: number;
  mtimeMs: number;
  /** Files: the fixed layout. Directories: the template for new entries. */
  layout: FileLayout | DirLayout;
  /** Directories: the parent's id (the root is its own parent). Files: 0 (a file may have many). */
  parent: bigint;
  /** Files only: how many names the file has (absent: 1). Its chunks go when the last name does. */
  nlink?: number;
  /** Files only: unlinked while open for write; collected when the last session closes. */
  unlinked?: boolean;
  /** Symlinks only: what the link points at (not resolved by meta; `length` is its bytes). */
  target?: string;
  /**
   * Files only: what the S3 gateway knows of the bytes (ETag, Content-Type, x-amz-meta-*), set
   * by the close that ends the write that made them; any later open for write or truncate
   * drops it, so it never describes other bytes than the file's.
   */
  object?: ObjectAttrs;
}

/** An object's attributes as S3 returns them (src/s3); kept in the file's inode. */
export interface ObjectAttrs {
  /** Quoted as S3 sends it: "<md5 hex>" or "<md5 of the parts' md5s>-<parts>". */
  etag: string;
  contentType?: string;
  /** Content-Encoding, Cache-Control, Content-Disposition, Content-Language, Expires. */
  headers?: Record<string, string>;
  /** x-amz-meta-* without the prefix, names lowercase. */
  meta?: Record<string, string>;
}

/** An S3 access key: the gateway signs as `uid`/`gid`/`gids` with it (src/meta/access-keys.ts). */
export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  uid: number;
  gid: number;
  gids?: number[];
  createdMs: number;
}

export interface DirEntry {
  name: string;
  inode: bigint;
  type: FileType;
  /** readdir with `plus`: the entry's inode (absent without x on the directory). */
  attrs?: Inode;
}

export interface OpenResult {
  inode: Inode;
  /** Set when opened for write: pass it to close(). */
  session?: string;
  /** With a session: how long the service keeps it for a quiet client (clients lease on half). */
  sessionTimeoutMs?: number;
  /**
   * Set by a meta service with a cluster secret, for files: the data-plane capability
   * (36 bytes, src/auth/capability.ts) to send with this file's chunk reads and writes.
   */
  capability?: Buffer;
}

export interface ReaddirResult {
  entries: DirEntry[];
  /** More entries follow: call again with `after` = the last name. */
  more: boolean;
}

/** A file whose chunks the storage daemons should remove (after unlink or replacement). */
export interface Garbage {
  inode: bigint;
  layout: FileLayout;
  length: number;
  queuedMs: number;
}

/**
 * A shrink of a file whose chunks past `length` are still to be removed (and the chunk holding
 * the end cut): written in the transaction that shrinks the file, deleted once storage did it.
 */
export interface TrimIntent {
  inode: bigint;
  layout: FileLayout;
  length: number;
  /** The inode's mtimeMs set by the shrink: a later change of the file supersedes the intent. */
  mtimeMs: number;
  /** Tells this shrink from a later one of the same file. */
  nonce: number;
}

/** Removes a file's chunks past `length` and cuts the one holding it (src/storage/garbage.ts trimChunks). */
export interface ChunkTrimmer {
  trim(inode: bigint, layout: FileLayout, length: number): Promise<unknown>;
}

/** The chain tables' current versions as meta last heard them from mgmtd (a routing cache). */
export interface ChainTableVersions {
  /** Undefined: not known (yet); files then take their directory's chainTableVersion. */
  current(tableId: number): number | undefined;
}

export interface OpenFlags {
  read?: boolean;
  write?: boolean;
  create?: boolean;
  exclusive?: boolean;
  truncate?: boolean;
  append?: boolean;
}
