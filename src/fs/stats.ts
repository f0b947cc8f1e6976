/** node:fs-shaped views of inodes and directory entries. */
import type { DirEntry, Inode, ObjectAttrs } from '../protocol/meta-types.js';

export class Stats {
  readonly ino: bigint;
  readonly size: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly mtime: Date;
  readonly ctime: Date;
  readonly chunkSizeBytes: number;
  /** Names of a file (hard links); 1 for directories, whose counts are not kept. */
  readonly nlink: number;

  constructor(private readonly inode: Inode) {
    this.ino = inode.id;
    this.size = inode.length;
    this.mode = (inode.type === 'dir' ? 0o040000 : 0o100000) | inode.mode;
    this.uid = inode.uid;
    this.gid = inode.gid;
    this.mtimeMs = inode.mtimeMs;
    this.ctimeMs = inode.ctimeMs;
    this.mtime = new Date(inode.mtimeMs);
    this.ctime = new Date(inode.ctimeMs);
    this.chunkSizeBytes = inode.layout.chunkSizeBytes;
    this.nlink = inode.nlink ?? 1;
  }

  isFile(): boolean { return this.inode.type === 'file'; }
  isDirectory(): boolean { return this.inode.type === 'dir'; }

  /** The S3 attributes of the file's bytes, when an S3 client wrote them (src/s3). */
  get object(): ObjectAttrs | undefined { return this.inode.object; }
}

export class Dirent {
  /**
   * `stats`: the entry's Stats as stat gives them, from the same read as the name, when it was
   * asked for (FileSystem.dirEntries with `plus`) and the caller may search the directory.
   */
  constructor(readonly name: string, readonly parentPath: string, private readonly type: DirEntry['type'], readonly stats?: Stats) {}
  isFile(): boolean { return this.type === 'file'; }
  isDirectory(): boolean { return this.type === 'dir'; }
}
