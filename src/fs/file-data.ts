/**
 * A file's bytes on the chains: splits byte ranges into chunk pieces by the file's layout
 * and moves them through the RoutingClient, several chunks at a time. Chunks never written
 * (holes) and bytes past a chunk's end read as zeros, up to the file's length.
 */
import type { RoutingClient } from '../cluster/routing-client.js';
import { MillpondError } from '../errors.js';
import { fsLimits, limits } from '../limits.js';
import type { FileLayout } from '../protocol/meta-types.js';
import type { FileCapability } from './file-capability.js';
import { resolveFileChains } from './file-chains.js';
import { chainOfChunk } from './layout.js';

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
    /** The file's data-plane capability; absent where the cluster has no secret. */
    private readonly capability?: FileCapability,
  ) {}

  private withCapability<T>(io: (capability: Buffer | undefined) => Promise<T>): Promise<T> {
    return this.capability ? this.capability.use(io) : io(undefined);
  }

  private async chainOf(index: number): Promise<number> {
    this.chains ??= await resolveFileChains(this.routing, this.inode, this.layout);
    return chainOfChunk(this.chains, index);
  }

  /** Reads [position, position + target.length) into target; the caller bounds it by the file length. */
  async read(position: number, target: Buffer): Promise<void> {
    const pieces = piecesOf(position, target.length, this.layout.chunkSizeBytes);
    await forEachLimited(pieces, fsLimits.chunksInFlightPerFile, async (p) => {
      const chain = await this.chainOf(p.index);
      const dst = target.subarray(p.at, p.at + p.length);
      try {
        const { data } = await this.withCapability((capability) =>
          this.routing.readChunk(chain, { inode: this.inode, index: p.index }, p.offsetInChunk, p.length, { target: dst, capability }));
        dst.fill(0, data.length); // past the chunk's end: a hole
      } catch (err) {
        if (!(err instanceof MillpondError) || err.code !== 'ENOENT') throw err;
        dst.fill(0); // a hole: never written
      }
    });
  }

  /**
   * Many small reads in few messages (3FS's batched reads): the pieces are grouped by chain
   * and each group goes to one serving replica as chunk-client readBatch messages (at most
   * batchReadEntriesMax entries each). A piece the replica could not serve is read again
   * through read() (any replica, retried); a hole or a short chunk reads as zeros.
   * `reads[i]` lands at target[offsets[i], offsets[i] + reads[i].length).
   * REQUIRES: every read lies within the file (the caller bounds it).
   */
  async readBatch(reads: Array<{ position: number; length: number }>, offsets: number[], target: Buffer): Promise<void> {
    const byChain = new Map<number, Array<{ index: number; offsetInChunk: number; length: number; at: number }>>();
    for (let i = 0; i < reads.length; i++) {
      for (const p of piecesOf(reads[i]!.position, reads[i]!.length, this.layout.chunkSizeBytes)) {
        const chain = await this.chainOf(p.index);
        let group = byChain.get(chain);
        if (!group) byChain.set(chain, (group = []));
        group.push({ ...p, at: offsets[i]! + p.at });
      }
    }
    const batches: Array<{ chain: number; pieces: Array<{ index: number; offsetInChunk: number; length: number; at: number }> }> = [];
    for (const [chain, pieces] of byChain) {
      let current: typeof pieces = [];
      let bytes = 0;
      for (const p of pieces) { // each message within the chunk client's entry and byte limits
        if (current.length === limits.batchReadEntriesMax || bytes + p.length > limits.batchReadBytesMax) {
          batches.push({ chain, pieces: current });
          current = [];
          bytes = 0;
        }
        current.push(p);
        bytes += p.length;
      }
      if (current.length > 0) batches.push({ chain, pieces: current });
    }
    await forEachLimited(batches, fsLimits.chunksInFlightPerFile, async ({ chain, pieces }) => {
      const serving = await this.routing.servingAddresses(chain);
      const address = serving[Math.floor(Math.random() * serving.length)];
      let results: Array<{ bytesRead: number; code: string | null }> | undefined;
      if (address) {
        const entries = pieces.map((p) => ({
          chunk: { inode: this.inode, index: p.index }, offset: p.offsetInChunk, length: p.length, bufferOffset: p.at,
        }));
        results = await this.withCapability((capability) =>
          this.routing.chunks.readBatch(address, entries, target, capability ? [capability] : undefined))
          .catch(() => undefined); // the whole message failed: each piece is retried below
      }
      await Promise.all(pieces.map(async (p, i) => {
        const r = results?.[i];
        const dst = target.subarray(p.at, p.at + p.length);
        if (r && r.code === null) dst.fill(0, r.bytesRead); // past the chunk's end: a hole
        else if (r && r.code === 'ENOENT') dst.fill(0); // never written
        else await this.read(p.index * this.layout.chunkSizeBytes + p.offsetInChunk, dst);
      }));
    });
  }

  /** Writes data at position; resolves when every replica of every touched chunk committed. */
  async write(position: number, data: Buffer): Promise<void> {
    const pieces = piecesOf(position, data.length, this.layout.chunkSizeBytes);
    await forEachLimited(pieces, fsLimits.chunksInFlightPerFile, async (p) => {
      const chain = await this.chainOf(p.index);
      await this.withCapability((capability) => this.routing.writeChunk(chain, { inode: this.inode, index: p.index }, p.offsetInChunk,
        data.subarray(p.at, p.at + p.length), { chunkSizeBytes: this.layout.chunkSizeBytes, capability }));
    });
  }
}
