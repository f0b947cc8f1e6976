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
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { s3Limits } from '../limits.js';

export type HashName = 'md5' | 'sha256';
export type Digests = Partial<Record<HashName, Buffer>>;

export interface Digester {
  /** Adds `data` (copied: the caller may reuse it at once). */
  update(data: Buffer): Promise<void>;
  /** The digests of everything added. The digester is finished afterwards. */
  digest(): Promise<Digests>;
  /** Forgets the hashes (an aborted body). Idempotent; harmless after digest(). */
  drop(): void;
}

// Plain CommonJS run with `eval` (no file to resolve under tsx, vitest or dist/).
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'open') open.set(m.id, m.names.map((n) => [n, createHash(n)]));
  else if (m.op === 'update') {
    const hs = open.get(m.id);
    if (hs) { const data = new Uint8Array(m.data, 0, m.length); for (const [, h] of hs) h.update(data); }
    parentPort.postMessage({ op: 'ack', id: m.id, data: m.data }, [m.data]);
  } else if (m.op === 'digest') {
    const hs = open.get(m.id) || [];
    open.delete(m.id);
    const out = {};
    for (const [n, h] of hs) out[n] = h.digest();
    parentPort.postMessage({ op: 'digest', id: m.id, digests: out });
  } else if (m.op === 'drop') open.delete(m.id);
});
`;

interface Waiting {
  acked: () => void;
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
    this.worker.on('message', (m: { op: string; id: number; data?: ArrayBuffer; digests?: Record<string, Uint8Array> }) => {
      const w = this.waiting.get(m.id);
      if (m.op === 'ack') {
        if (m.data && this.spare.length < s3Limits.hashBatchesInFlight) this.spare.push(m.data);
        w?.acked();
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
  constructor(names: HashName[]) {
    this.hashes = names.map((n) => [n, createHash(n)]);
  }
  async update(data: Buffer): Promise<void> {
    for (const [, h] of this.hashes) h.update(data);
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

  constructor(names: HashName[]) {
    this.worker.open++;
    this.worker.waiting.set(this.id, {
      acked: () => {
        this.unacked--;
        this.wake?.();
      },
      failed: (err) => {
        this.failure ??= err;
        this.wake?.();
      },
    });
    this.worker.worker.postMessage({ op: 'open', id: this.id, names });
  }

  async update(data: Buffer): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      if (!this.batch) {
        const reused = this.worker.spare.pop();
        this.batch = reused ? Buffer.from(reused) : Buffer.from(new ArrayBuffer(s3Limits.hashBatchBytes));
        this.filled = 0;
      }
      const n = data.copy(this.batch, this.filled, offset);
      this.filled += n;
      offset += n;
      if (this.filled === this.batch.length) await this.send();
    }
  }

  private async send(): Promise<void> {
    const batch = this.batch!;
    this.batch = undefined;
    this.unacked++;
    this.worker.worker.postMessage({ op: 'update', id: this.id, data: batch.buffer, length: this.filled }, [batch.buffer as ArrayBuffer]);
    while (this.unacked >= s3Limits.hashBatchesInFlight && this.failure === undefined) {
      await new Promise<void>((resolve) => { this.wake = resolve; });
      this.wake = undefined;
    }
    if (this.failure !== undefined) throw this.failure;
  }

  async digest(): Promise<Digests> {
    if (this.batch && this.filled > 0) await this.send();
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
    this.worker.open--;
    this.worker.waiting.delete(this.id);
  }
}

/** A digester of `names` for a body of `lengthBytes` (declared; the worker pool past one batch). */
export function digester(names: HashName[], lengthBytes: number): Digester {
  return lengthBytes <= s3Limits.hashBatchBytes ? new LocalDigester(names) : new PooledDigester(names);
}
