import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Paths of the committed version files (".c") of a target directory. */
export function committedChunkFiles(targetDir: string): string[] {
  const root = join(targetDir, 'chunks');
  return readdirSync(root).flatMap((shard) =>
    readdirSync(join(root, shard)).filter((f) => f.endsWith('.c')).map((f) => join(root, shard, f)));
}

/** Byte offset of the content in a chunk file holding `length` bytes (chunk_format.h, format 3). */
export function contentOffset(length: number): number {
  const requestTableBytes = 16 * 16; // kRequestEntryBytes * kChunkRequestsRemembered
  const raw = 64 + 16 + 4 * Math.ceil(length / 4096) + requestTableBytes; // fixed header, extension block
  return Math.ceil(raw / 4096) * 4096;
}
