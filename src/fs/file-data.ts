/**
 * A file's bytes on the chains: splits byte ranges into chunk pieces by the file's layout
 * and moves them through the RoutingClient, several chunks at a time. Chunks never written
 * (holes) and bytes past a chunk's end read as zeros, up to the file's length.
 */
import type { RoutingClient } from '../cluster/routing-client.js';
import { MillpondError } from '../errors.js';
import { fsLimits } from '../limits.js';
import type { FileLayout } from '../meta/types.js';
import { chainOfChunk, fileChains } from './layout.js';

interface Piece {
  index: number;
  offsetInChunk: number;
  length: number;
  /** Offset of this piece in the caller's buffer. */
  at: number;
}

function piecesOf(position: number, length: number, chunkSizeBytes: number): Piece[] {
  const pieces: Piece[] = [];
  for (let done = 0; done < length;) {
    const offset = position + done;
    const index = Math.floor(offset / chunkSizeBytes);
    const offsetInChunk = offset % chunkSizeBytes;
    const n = Math.min(length - done, chunkSizeBytes - offsetInChunk);
    pieces.push({ index, offsetInChunk, length: n, at: done });
    done += n;
  }
  return pieces;
}

/** Runs `work` over items with at most `limit` in flight; rejects with the first failure. */
async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(lanes);
}

export class FileData {
  private chains: number[] | undefined;

  constructor(
    private readonly routing: RoutingClient,
    readonly inode: bigint,
    readonly layout: FileLayout,
  ) {}

  private async chainOf(index: number): Promise<number> {
    if (!this.chains) {
      const { chainTables } = await this.routing.routing();
      const table = chainTables.find((t) => t.tableId === this.layout.chainTableId);
      if (!table || table.chainIds.length === 0) {
        throw new MillpondError('EIO', `chain table ${this.layout.chainTableId} of inode ${this.inode} does not exist`);
      }
      this.chains = fileChains(table.chainIds, this.layout.stripeSize, this.layout.seed);
    }
    return chainOfChunk(this.chains, index);
  }

  /** Reads [position, position + target.length) into target; the caller bounds it by the file length. */
  async read(position: number, target: Buffer): Promise<void> {
    const pieces = piecesOf(position, target.length, this.layout.chunkSizeBytes);
    await forEachLimited(pieces, fsLimits.chunksInFlightPerFile, async (p) => {
      const chain = await this.chainOf(p.index);
      const dst = target.subarray(p.at, p.at + p.length);
      try {
        const { data } = await this.routing.readChunk(chain, { inode: this.inode, index: p.index }, p.offsetInChunk, p.length, { target: dst });
        dst.fill(0, data.length); // past the chunk's end: a hole
      } catch (err) {
        if (!(err instanceof MillpondError) || err.code !== 'ENOENT') throw err;
        dst.fill(0); // a hole: never written
      }
    });
  }

  /** Writes data at position; resolves when every replica of every touched chunk committed. */
  async write(position: number, data: Buffer): Promise<void> {
    const pieces = piecesOf(position, data.length, this.layout.chunkSizeBytes);
    await forEachLimited(pieces, fsLimits.chunksInFlightPerFile, async (p) => {
      const chain = await this.chainOf(p.index);
      await this.routing.writeChunk(chain, { inode: this.inode, index: p.index }, p.offsetInChunk,
        data.subarray(p.at, p.at + p.length), { chunkSizeBytes: this.layout.chunkSizeBytes });
    });
  }
}
