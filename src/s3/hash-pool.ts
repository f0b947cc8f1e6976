/**
 * MD5 (the ETag) and SHA-256 (the signed payload's check) of request bodies, computed on
 * worker threads instead of the gateway's event loop. Hashing is the gateway's largest CPU
 * cost on a PUT (MD5 runs at a few hundred MB/s per core, slower than the chain writes it
 * feeds), and on the event loop it stalls every other request and every write completion.
 *
 * A Digester copies the bytes it is given into batches of s3Limits.hashBatchBytes and hands
 * each full batch to its worker (transferred, not copied again); the worker updates the
 * running hashes in order. update() waits only when s3Limits.hashBatchesInFlight batches of
 * this digester are unhashed, which bounds memory per request. Bodies no larger than one
 * batch are hashed in the calling thread (a round trip to a worker would cost more).
 *
 * With `pieces` (pooled digesters), the batches are shared pieces (pieces.ts) the size of the
 * file's chunks, aligned to them: the worker reads a piece in place (not transferred) and the
 * caller takes the filled pieces (takePieces) to write them as they are, so a body's bytes are
 * copied once, into its pieces.
 *
 * With `segments`, a digester also gives the SHA-256 of each run of bytes between calls of
 * segment() (aws-chunked chunks, whose signatures cover each chunk's hash): the marks travel
 * inside the batches, so a chunk of 64 KiB costs no message of its own, and each segment's
 * hash resolves when the worker reached its end.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { s3Limits } from '../limits.js';
import { holdPiece, releasePiece, takePiece } from './pieces.js';

export type HashName = 'md5' | 'sha256';
export type Digests = Partial<Record<HashName, Buffer>>;

export interface Digester {
  /** Adds `data` (copied: the caller may reuse it at once). */
  update(data: Buffer): Promise<void>;
  /**
   * Ends a segment here: resolves to the SHA-256 of the bytes added since the previous
   * segment() (or the start). REQUIRES: made with `segments`.
   */
  segment(): Promise<Buffer>;
  /** The digests of everything added. The digester is finished afterwards. */
  digest(): Promise<Digests>;
  /** Forgets the hashes (an aborted body). Idempotent; harmless after digest(). */
  drop(): void;
  /**
   * Present on a digester made with `pieces` past one batch: the pieces filled since the last
   * call (the last one, partly filled, once digest() was called), in order. The caller holds
   * each once and lets it go with releasePiece.
   */
  takePieces?(): Buffer[];
}

/** Pieces of a file's chunks: `bytes` each, the first `firstBytes` (up to the first chunk's end). */
export interface PieceShape {
  bytes: number;
  firstBytes: number;
}

// Plain CommonJS run with `eval` (no file to resolve under tsx, vitest or dist/).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
const segs = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'open') {
    open.set(m.id, m.names.map((n) => [n, createHash(n)]));
    if (m.segments) segs.set(m.id, createHash('sha256'));
  } else if (m.op === 'update') {
    const hs = open.get(m.id);
    const marks = [];
    if (hs) {
      const data = new Uint8Array(m.data, m.offset || 0, m.length);
      for (const [, h] of hs) h.update(data);
      let at = 0;
      for (const end of m.marks || []) {
        segs.get(m.id).update(data.subarray(at, end));
        marks.push(segs.get(m.id).digest());
        segs.set(m.id, createHash('sha256'));
        at = end;
      }
      if (segs.has(m.id)) segs.get(m.id).update(data.subarray(at));
    }
    if (m.shared) parentPort.postMessage({ op: 'ack', id: m.id, marks });
    else parentPort.postMessage({ op: 'ack', id: m.id, data: m.data, marks }, [m.data]);
  } else if (m.op === 'digest') {
    segs.delete(m.id);
    const hs = open.get(m.id) || [];
    open.delete(m.id);
    const out = {};
    for (const [n, h] of hs) out[n] = h.digest();
    parentPort.postMessage({ op: 'digest', id: m.id, digests: out });
  } else if (m.op === 'drop') { open.delete(m.id); segs.delete(m.id); }
});
`;

interface Waiting {
  acked: (marks: Uint8Array[]) => void;
  digested?: (d: Digests) => void;
  failed: (err: unknown) => void;
}

class HashWorker {
  readonly worker: Worker;
  readonly waiting = new Map<number, Waiting>();
  /** Batch buffers the worker gave back, reused for the next batches. */
  readonly spare: ArrayBuffer[] = [];
  open = 0;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.unref(); // never keeps the gateway alive
    this.worker.on('message', (m: { op: string; id: number; data?: ArrayBuffer; marks?: Uint8Array[]; digests?: Record<string, Uint8Array> }) => {
      const w = this.waiting.get(m.id);
      if (m.op === 'ack') {
        if (m.data?.byteLength === s3Limits.hashBatchBytes && this.spare.length < s3Limits.hashSpareBatchesMax) this.spare.push(m.data);
        w?.acked(m.marks ?? []);
      } else if (m.op === 'digest' && w?.digested) {
        const out: Digests = {};
        for (const [k, v] of Object.entries(m.digests ?? {})) out[k as HashName] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        w.digested(out);
      }
    });
    this.worker.on('error', (err) => {
      for (const w of this.waiting.values()) w.failed(err);
      this.waiting.clear();
    });
  }
}

let workers: HashWorker[] | undefined;
let nextId = 1;

/** The least busy worker (by open digesters), started on first use. */
function pickWorker(): HashWorker {
  workers ??= Array.from({ length: s3Limits.hashWorkers }, () => new HashWorker());
  return workers.reduce((best, w) => (w.open < best.open ? w : best));
}

/** Hashes in the calling thread: for bodies of at most one batch. */
class LocalDigester implements Digester {
  private readonly hashes: [HashName, Hash][];
  private seg: Hash | undefined;
  constructor(names: HashName[], segments: boolean) {
    this.hashes = names.map((n) => [n, createHash(n)]);
    if (segments) this.seg = createHash('sha256');
  }
  async update(data: Buffer): Promise<void> {
    for (const [, h] of this.hashes) h.update(data);
    this.seg?.update(data);
  }
  async segment(): Promise<Buffer> {
    const digest = this.seg!.digest();
    this.seg = createHash('sha256');
    return digest;
  }
  async digest(): Promise<Digests> {
    const out: Digests = {};
    for (const [n, h] of this.hashes) out[n] = h.digest();
    return out;
  }
  drop(): void {}
}

class PooledDigester implements Digester {
  private readonly id = nextId++;
  private readonly worker = pickWorker();
  private batch: Buffer | undefined;
  private filled = 0;
  private unacked = 0;
  private wake: (() => void) | undefined;
  private failure: unknown;
  private finished = false;
  /** Segment ends in the batch being filled (offsets in it). */
  private marks: number[] = [];
  /** Segments sent (or being filled), oldest first: their hashes come back in this order. */
  private readonly segments: Array<{ resolve: (d: Buffer) => void; reject: (err: unknown) => void }> = [];
  /** Pieces posted to the worker and not yet acknowledged, oldest first (pieces mode). */
  private readonly hashing: Buffer[] = [];
  /** Pieces filled and not yet taken by the caller (pieces mode). */
  private filledPieces: Buffer[] = [];
  /** Bytes posted so far (pieces mode: where the next piece starts, for its alignment). */
  private postedBytes = 0;
  /** Only in pieces mode: a digester without it passes the caller's pieces on (payload()). */
  readonly takePieces?: () => Buffer[];

  constructor(names: HashName[], private readonly withSegments: boolean, private readonly shape?: PieceShape) {
    if (shape) {
      this.takePieces = () => {
        const taken = this.filledPieces;
        this.filledPieces = [];
        return taken;
      };
    }
    this.worker.open++;
    this.worker.waiting.set(this.id, {
      acked: (marks) => {
        this.unacked--;
        const piece = this.hashing.shift();
        if (piece) releasePiece(piece);
        for (const d of marks) this.segments.shift()?.resolve(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
        this.wake?.();
      },
      failed: (err) => {
        this.failure ??= err;
        for (const waiting of this.segments.splice(0)) waiting.reject(err);
        this.wake?.();
      },
    });
    this.worker.worker.postMessage({ op: 'open', id: this.id, names, segments: withSegments });
  }

  segment(): Promise<Buffer> {
    if (!this.withSegments) throw new TypeError('segment() of a digester made without segments');
    if (this.failure !== undefined) return Promise.reject(this.failure);
    this.marks.push(this.filled);
    const hash = new Promise<Buffer>((resolve, reject) => { this.segments.push({ resolve, reject }); });
    // Many small segments: their batch goes now, so a caller waiting for an old segment's hash
    // never waits for a batch that is not sent (its memory is checked by the next update).
    if (this.marks.length >= s3Limits.hashMarksPerBatchMax) this.post();
    return hash;
  }

  async update(data: Buffer): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      if (!this.batch) {
        if (this.shape) {
          // Up to the end of the file's chunk this piece starts in.
          const intoChunk = (this.postedBytes + this.shape.bytes - this.shape.firstBytes) % this.shape.bytes;
          this.batch = takePiece(this.shape.bytes, this.shape.bytes - intoChunk);
        } else {
          const reused = this.worker.spare.pop();
          this.batch = Buffer.from(reused ?? new ArrayBuffer(s3Limits.hashBatchBytes));
        }
      }
      const n = data.copy(this.batch, this.filled, offset);
      this.filled += n;
      offset += n;
      if (this.filled === this.batch.length) await this.send();
    }
  }

  /** Hands the batch being filled (and its marks) to the worker. */
  private post(): void {
    const marks = this.marks;
    this.marks = [];
    this.unacked++;
    if (this.shape && this.batch) {
      // The piece stays here: the worker reads it in place; the caller writes it meanwhile.
      const piece = this.batch.subarray(0, this.filled);
      this.batch = undefined;
      holdPiece(piece); // the worker's hold, let go at its ack; the caller's is the taker's
      this.hashing.push(piece);
      this.filledPieces.push(piece);
      this.postedBytes += this.filled;
      this.worker.worker.postMessage({ op: 'update', id: this.id, data: piece.buffer, offset: piece.byteOffset, length: this.filled, marks, shared: true });
    } else {
      const batch = this.batch ?? Buffer.from(new ArrayBuffer(0)); // a batch of marks only
      this.batch = undefined;
      if (this.shape) this.hashing.push(Buffer.alloc(0)); // keeps the acks in step with `hashing`
      this.worker.worker.postMessage({ op: 'update', id: this.id, data: batch.buffer, length: this.filled, marks }, [batch.buffer as ArrayBuffer]);
    }
    this.filled = 0;
  }

  /** post(), then waits while hashBatchesInFlight batches of this digester are unhashed. */
  private async send(): Promise<void> {
    this.post();
    while (this.unacked >= s3Limits.hashBatchesInFlight && this.failure === undefined) {
      await new Promise<void>((resolve) => { this.wake = resolve; });
      this.wake = undefined;
    }
    if (this.failure !== undefined) throw this.failure;
  }

  async digest(): Promise<Digests> {
    if ((this.batch && this.filled > 0) || this.marks.length > 0) await this.send();
    if (this.batch && this.shape) releasePiece(this.batch); // taken, never filled
    this.batch = undefined;
    const result = new Promise<Digests>((resolve, reject) => {
      const w = this.worker.waiting.get(this.id)!;
      w.digested = resolve;
      w.failed = reject;
    });
    this.worker.worker.postMessage({ op: 'digest', id: this.id });
    try {
      return await result;
    } finally {
      this.finish();
    }
  }

  drop(): void {
    if (this.finished) return;
    this.worker.worker.postMessage({ op: 'drop', id: this.id });
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    // Pieces the worker has not acknowledged are never released (it may still read them): the
    // collector takes them, the pool does not reuse them.
    this.hashing.splice(0);
    for (const waiting of this.segments.splice(0)) waiting.reject(new Error('the digester was dropped'));
    this.worker.open--;
    this.worker.waiting.delete(this.id);
  }
}

/**
 * A digester of `names` for a body of `lengthBytes` (declared; the worker pool past one batch),
 * with per-segment SHA-256s when `segments`.
 */
export function digester(names: HashName[], lengthBytes: number, options: { segments?: boolean; pieces?: PieceShape } = {}): Digester {
  const segments = options.segments ?? false;
  return lengthBytes <= s3Limits.hashBatchBytes ? new LocalDigester(names, segments) : new PooledDigester(names, segments, options.pieces);
}
