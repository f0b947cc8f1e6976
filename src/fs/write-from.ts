/**
 * Sequential bytes into a file with bounded memory: the S3 gateway's PUTs and the
 * FileSystem's write streams.
 */

import { giveChunkBuffer, takeChunkBuffer } from './chunk-buffers.js';

/** What writeFrom needs of an open file (FileHandle). */
export interface ChunkedWritable {
  readonly info: { layout: { chunkSizeBytes: number } };
  write(data: Buffer, position: number): Promise<unknown>;
}

/**
 * Writes `source` into `handle` from `position`, in chunk-aligned pieces (each write replaces
 * whole chunks, the cheap path of a chain write), `inFlightMax` writes at once. Returns the
 * bytes written. On a failure of the source or a write, waits for the writes in flight and
 * throws.
 * `lengthBytes`, the source's declared length when known, sizes the piece buffers: a 4 KiB
 * body takes a 4 KiB buffer, not a chunk-sized one (which, per small PUT, made most of the
 * gateway's garbage); a source longer than declared still goes through whole.
 * With `release`, the source's pieces may be written as they are: one that starts where no
 * copied piece is being filled is written without a copy up to its last chunk boundary (or
 * the declared end), its tail copied, and release(it) is called once that write settled; any
 * other is copied, then released. (Without it, every piece is copied: the source may reuse
 * its buffers as soon as it is asked for the next.)
 */
export async function writeFrom(handle: ChunkedWritable, source: AsyncIterable<Buffer>,
  options: { position?: number; lengthBytes?: number; inFlightMax: number; release?: (piece: Buffer) => void }): Promise<number> {
  const release = options.release;
  const position = options.position ?? 0;
  const lengthBytes = options.lengthBytes ?? Infinity;
  const chunkBytes = handle.info.layout.chunkSizeBytes;
  const inflight = new Set<Promise<void>>();
  let failure: unknown;
  let at = position;
  let piece: Buffer | undefined;
  let filled = 0;
  let pieceAt = position;
  /** Writes `data` at `where`, at most inFlightMax at once; `settled` runs when the write did. */
  const submit = async (data: Buffer, where: number, settled: (ok: boolean) => void) => {
    const write: Promise<void> = handle.write(data, where).then(() => {
      inflight.delete(write);
      settled(true);
    }, (err: unknown) => {
      inflight.delete(write);
      failure ??= err;
      settled(false);
    });
    inflight.add(write);
    while (inflight.size >= options.inFlightMax) await Promise.race(inflight);
    if (failure) throw failure;
  };
  const flush = async () => {
    if (!piece || filled === 0) return;
    const buffer = piece;
    const data = piece.subarray(0, filled);
    piece = undefined;
    filled = 0;
    await submit(data, pieceAt, (ok) => { if (ok && buffer.length === chunkBytes) giveChunkBuffer(buffer); });
  };
  try {
    for await (const incoming of source) {
      // Written as it is (with `release`, where no copied piece is being filled): from here to
      // the last chunk boundary in it, or to the declared end. Its tail is copied first, so the
      // release that follows that write finds the buffer no longer needed.
      let direct: Buffer | undefined;
      const directAt = at;
      let offset = 0;
      if (release && !piece && incoming.length > 0) {
        const end = at + incoming.length;
        const directEnd = end === position + lengthBytes ? end : end - (end % chunkBytes);
        if (directEnd > at) {
          direct = incoming.subarray(0, directEnd - at);
          offset = direct.length;
          at = directEnd;
        }
      }
      while (offset < incoming.length) {
        if (!piece) {
          pieceAt = at;
          const room = chunkBytes - (at % chunkBytes); // up to the chunk's end
          const left = position + lengthBytes - at; // of the declared length (<= 0: past it)
          if (room === chunkBytes && left >= chunkBytes) piece = takeChunkBuffer(chunkBytes);
          else piece = Buffer.allocUnsafe(left > 0 ? Math.min(room, left) : Math.min(room, incoming.length - offset));
        }
        const n = Math.min(piece.length - filled, incoming.length - offset);
        incoming.copy(piece, filled, offset, offset + n);
        filled += n;
        offset += n;
        at += n;
        if (filled === piece.length) await flush();
      }
      if (direct) await submit(direct, directAt, () => release!(incoming));
      else release?.(incoming);
      if (failure) throw failure;
    }
    await flush();
  } finally {
    await Promise.all(inflight);
  }
  if (failure) throw failure;
  return at - position;
}

/**
 * The buffers a Writable is given, as writeFrom's source: a Writable passes one at a time and
 * waits for its callback, which runs when writeFrom releases the buffer (copied, or its write
 * settled), so a caller may reuse a buffer as soon as its write's callback ran.
 */
export class HandOff implements AsyncIterable<Buffer> {
  private chunk: Buffer | undefined;
  private callback: (() => void) | undefined;
  private ended = false;
  private wake: (() => void) | undefined;

  offer(chunk: Buffer, callback: () => void): void {
    this.chunk = chunk;
    this.callback = callback;
    this.wake?.();
  }

  /** writeFrom is done with the buffer given last. */
  release(): void {
    const callback = this.callback;
    this.callback = undefined;
    callback?.();
  }

  /** No more buffers: the iteration ends once the one given is taken. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = this.chunk;
      if (chunk) {
        this.chunk = undefined;
        yield chunk;
      } else if (this.ended) {
        return;
      } else {
        await new Promise<void>((resolve) => { this.wake = resolve; });
        this.wake = undefined;
      }
    }
  }
}
