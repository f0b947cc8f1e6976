// The hash workers' pieces mode (src/s3/hash-pool.ts, pieces.ts): a body copied once into
// shared pieces the shape of a file's chunks, hashed in place on the real worker threads.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { digester } from '../../src/s3/hash-pool.js';
import { releasePiece, takePiece } from '../../src/s3/pieces.js';
import { pattern } from './support.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Feeds `data` in socket-sized pieces; returns the pieces the digester gave, and its digests. */
async function run(data: Buffer, shape: { bytes: number; firstBytes: number }, segmentEvery?: number) {
  const d = digester(['md5', 'sha256'], data.length, { pieces: shape, segments: segmentEvery !== undefined });
  const out: Buffer[] = [];
  const segments: Promise<Buffer>[] = [];
  for (let at = 0; at < data.length; at += 64 * KiB) {
    const piece = data.subarray(at, at + 64 * KiB);
    await d.update(piece);
    if (segmentEvery !== undefined && (at / (64 * KiB)) % segmentEvery === 0) segments.push(d.segment());
    out.push(...d.takePieces!());
  }
  const digests = await d.digest();
  out.push(...d.takePieces!());
  return { out, digests, segments: await Promise.all(segments) };
}

describe('hash workers: shared pieces', () => {
  it('cuts a body into pieces aligned to the chunks from its position, hashing what they hold', async () => {
    const data = pattern(10 * MiB + 77, 5);
    // A body written from 2.5 MiB into a file of 4 MiB chunks: 1.5 MiB, then 4 MiB pieces.
    const { out, digests } = await run(data, { bytes: 4 * MiB, firstBytes: 1.5 * MiB });
    expect(out.map((p) => p.length)).toEqual([1.5 * MiB, 4 * MiB, 4 * MiB, 0.5 * MiB + 77]);
    expect(Buffer.concat(out).equals(data)).toBe(true);
    expect(digests.md5!.toString('hex')).toBe(createHash('md5').update(data).digest('hex'));
    expect(digests.sha256!.toString('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    for (const p of out) releasePiece(p);
  });

  it('gives segment hashes of the bytes between marks (aws-chunked chunks) across pieces', async () => {
    const data = pattern(3 * MiB + 5, 6);
    const { out, segments } = await run(data, { bytes: MiB, firstBytes: MiB }, 3);
    expect(Buffer.concat(out).equals(data)).toBe(true);
    // Marks after pieces 0, 3, 6, ... of 64 KiB: segment i covers [prev end, (3i + 1) * 64 KiB).
    let from = 0;
    for (const [i, hash] of segments.entries()) {
      const end = Math.min((3 * i + 1) * 64 * KiB, data.length);
      expect(hash.toString('hex')).toBe(createHash('sha256').update(data.subarray(from, end)).digest('hex'));
      from = end;
    }
    for (const p of out) releasePiece(p);
  });

  it('passes the caller\'s pieces on without `pieces` (no takePieces), past one batch too', async () => {
    for (const bytes of [1000, 3 * MiB]) {
      const d = digester(['md5'], bytes);
      expect(d.takePieces).toBeUndefined();
      d.drop();
    }
  });

  it('reuses a piece\'s memory only once every holder let it go', () => {
    const a = takePiece(256 * KiB);
    releasePiece(a);
    const b = takePiece(256 * KiB);
    expect(b.buffer).toBe(a.buffer); // back from the pool
    b.fill(1);
    const c = takePiece(256 * KiB);
    expect(c.buffer).not.toBe(b.buffer); // b is still held
    releasePiece(c);
    releasePiece(b);
    // A buffer that is not a piece is ignored.
    releasePiece(Buffer.alloc(16));
  });
});
