// GETs share one bound on what they read ahead of their sockets (s3Limits.getReadAheadBytesMax),
// each keeping one chunk ahead whatever the others hold, and give it all back, to the last
// byte, when they end or their clients go away.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { s3Limits } from '../../src/limits.js';
import { getReadAheadBytes } from '../../src/s3/data.js';
import { pattern, startS3, type S3Setup } from './support.js';

const MiB = 1 << 20;
const CHUNK = 4 * MiB; // the default layout's chunk size
const GETS = 24;

async function until(what: () => boolean, ms = 20_000): Promise<void> {
  for (const end = Date.now() + ms; !what(); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > end) throw new Error('timed out waiting');
  }
}

describe('S3 gateway: GET read-ahead', () => {
  let s: S3Setup;
  let c: S3Client;
  const data = pattern(10 * CHUNK + 5, 3);

  beforeAll(async () => {
    s = await startS3();
    c = s.client(undefined, { requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: GETS }) }) });
    await c.send(new CreateBucketCommand({ Bucket: 'readahead' }));
    await c.send(new PutObjectCommand({ Bucket: 'readahead', Key: 'big', Body: data }));
  }, 60_000);
  afterAll(async () => { await s?.stop(); });

  it('keeps the GETs of stalled clients within the bound, and gives every byte back', async () => {
    // 24 GETs whose clients read nothing: unbounded, each would read 8 chunks ahead (768 MiB).
    const outs = await Promise.all(Array.from({ length: GETS }, () => c.send(new GetObjectCommand({ Bucket: 'readahead', Key: 'big' }))));
    const bodies = outs.map((o) => o.Body as IncomingMessage);
    for (const b of bodies) b.pause();
    await until(() => getReadAheadBytes() >= s3Limits.getReadAheadBytesMax);
    await new Promise((r) => setTimeout(r, 300)); // what would come past the bound has had time to
    const held = getReadAheadBytes();
    expect(held).toBeLessThanOrEqual(s3Limits.getReadAheadBytesMax + GETS * CHUNK);
    expect(held).toBeLessThan(GETS * (s3Limits.getChunksAhead + 1) * CHUNK);

    // Half the clients go away mid-body; the others read to the end, byte for byte.
    for (const b of bodies.slice(0, GETS / 2)) b.destroy();
    const read = await Promise.all(bodies.slice(GETS / 2).map(async (b) => {
      const parts: Buffer[] = [];
      for await (const p of b) parts.push(p as Buffer);
      return Buffer.concat(parts);
    }));
    for (const r of read) expect(r.equals(data)).toBe(true);
    await until(() => getReadAheadBytes() === 0);
  }, 120_000);
});
