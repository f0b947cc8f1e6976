/**
 * Pieces of request bodies that the hash workers and the chunk writes share: a PUT's bytes are
 * copied once, from the socket into a piece (a SharedArrayBuffer the size of the file's chunk),
 * which a hash worker reads in place (no copy into a batch, no transfer) while the piece's chunk
 * write sends it (no copy into a write buffer). A piece goes back to the pool when both let it
 * go (releasePiece, once per holder); one never let go (an aborted body, a dropped digester
 * whose worker may still read it) is left to the collector, never reused.
 *
 * The pool keeps s3Limits.sharedPiecesPooledBytesMax: pieces are filled in memory already
 * touched (first-touch page faults cost several times the copy).
 */
import { s3Limits } from '../limits.js';

const holders = new WeakMap<ArrayBufferLike, { refs: number }>();
const pooled = new Map<number, SharedArrayBuffer[]>();
let pooledBytes = 0;

/** A piece of `bytes` (of a pooled buffer of `bufferBytes`), held once by the caller. */
export function takePiece(bufferBytes: number, bytes = bufferBytes): Buffer {
  let shared = pooled.get(bufferBytes)?.pop();
  if (shared) pooledBytes -= bufferBytes;
  else shared = new SharedArrayBuffer(bufferBytes);
  holders.set(shared, { refs: 1 });
  return Buffer.from(shared, 0, bytes);
}

/** One more holder of `piece` (or of any view of its buffer). */
export function holdPiece(piece: Buffer): void {
  const state = holders.get(piece.buffer);
  if (state) state.refs++;
}

/** A holder lets `piece` go; the last one returns its buffer to the pool. Other buffers: ignored. */
export function releasePiece(piece: Buffer): void {
  const shared = piece.buffer;
  const state = holders.get(shared);
  if (!state || --state.refs > 0) return;
  holders.delete(shared);
  if (pooledBytes + shared.byteLength > s3Limits.sharedPiecesPooledBytesMax) return;
  let list = pooled.get(shared.byteLength);
  if (!list) pooled.set(shared.byteLength, list = []);
  list.push(shared as SharedArrayBuffer);
  pooledBytes += shared.byteLength;
}
