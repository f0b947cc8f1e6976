/**
 * randread: 4 KiB random reads per second from one client process on one DataServer over
 * loopback, with readBatch() (many reads in one message, like 3FS's USRBIO ring) and, for
 * comparison, with one read() per 4 KiB. The dataset is hot in the server's page cache.
 */
import { join } from 'node:path';
import { allocAligned, ChunkClient, type BatchRead } from '../src/index.js';
import {
  fmtCount, intOption, machineNote, MiB, makeWorkDir, nowMs, printJson, printTable, runForDuration, runWithDepth,
} from './lib.js';
import { parseServerMode, parseTransport, startServer } from './server.js';

const chunkBytes = 4 * MiB;
const readBytes = 4096;
const blocksPerChunk = chunkBytes / readBytes;

export async function randreadBench(options: Map<string, string>): Promise<void> {
  const transport = parseTransport(options.get('transport'));
  const serverMode = parseServerMode(options.get('server'));
  const chunkCount = intOption(options, 'chunks', 256);
  const batchEntries = intOption(options, 'batch', 512);
  const batchDepth = intOption(options, 'batch-depth', 4);
  const singleDepth = intOption(options, 'single-depth', 64);
  const connections = intOption(options, 'connections', 1);
  const ioThreads = intOption(options, 'io-threads', 4);
  const seconds = intOption(options, 'seconds', 10);

  const { dir, cleanup } = await makeWorkDir('randread');
  // A server that cannot start (e.g. --transport rdma without a device) still cleans up.
  const server = await startServer(serverMode, join(dir, 'store'), transport, ioThreads).catch((err: unknown) => {
    cleanup();
    throw err;
  });
  const client = new ChunkClient({ transport, connectionsPerServer: connections });
  try {
    console.log(`randread: ${chunkCount} chunks x 4 MiB, 4 KiB reads at random block offsets, transport ${transport}, ` +
      `server in ${serverMode === 'child' ? 'a child process' : 'this process'} (${ioThreads} io threads), ${connections} connection(s)`);
    console.log(machineNote());

    // Fill, then read everything once so the timed reads hit the page cache.
    const fill = allocAligned(chunkBytes);
    for (let i = 0; i < chunkBytes; i += 4) fill.writeUInt32LE((Math.random() * 0x1_0000_0000) >>> 0, i);
    const chunkOf = (i: number) => ({ inode: 3n, index: i });
    await runWithDepth(chunkCount, 4, (i) => client.write(server.address, chunkOf(i), 0, fill));
    const warm = Array.from({ length: 4 }, () => Buffer.allocUnsafe(chunkBytes));
    await runWithDepth(chunkCount, 4, (i, slot) => client.read(server.address, chunkOf(i), 0, chunkBytes, { target: warm[slot] }));

    const randomRead = (r: BatchRead) => {
      r.chunk = chunkOf(Math.floor(Math.random() * chunkCount));
      r.offset = Math.floor(Math.random() * blocksPerChunk) * readBytes;
    };

    // Batched: each slot owns its target and its entries, re-aimed at new offsets per batch.
    const slots = Array.from({ length: batchDepth }, () => ({
      target: Buffer.allocUnsafe(batchEntries * readBytes),
      reads: Array.from({ length: batchEntries }, (_, k): BatchRead => ({ chunk: chunkOf(0), offset: 0, length: readBytes, bufferOffset: k * readBytes })),
    }));
    let failed = 0;
    const batched = await runForDuration(seconds * 1000, batchDepth, async (_i, slot) => {
      const { target, reads } = slots[slot];
      for (const r of reads) randomRead(r);
      const results = await client.readBatch(server.address, reads, target);
      for (const res of results) if (res.code !== null || res.bytesRead !== readBytes) failed++;
    });
    if (failed > 0) throw new Error(`${failed} batched reads failed`);
    const iops4k = (batched.ops * batchEntries) / (batched.elapsedMs / 1000);

    // Single: one read() per 4 KiB, many in flight.
    const singleTargets = Array.from({ length: singleDepth }, () => Buffer.allocUnsafe(readBytes));
    const one: BatchRead = { chunk: chunkOf(0), offset: 0, length: readBytes, bufferOffset: 0 };
    const single = await runForDuration(Math.min(seconds, 5) * 1000, singleDepth, async (_i, slot) => {
      randomRead(one);
      const { data } = await client.read(server.address, one.chunk, one.offset, readBytes, { target: singleTargets[slot] });
      if (data.length !== readBytes) throw new Error(`read ${data.length} bytes`);
    });
    const iops4kSingle = single.ops / (single.elapsedMs / 1000);

    const microsPerRead = (iops: number) => (1e6 / iops).toFixed(2);
    printTable('4 KiB random reads, hot cache', [
      ['API', 'in flight', 'reads/s', 'µs/read (amortized)'],
      [`readBatch (${batchEntries} per batch)`, `${batchDepth} batches`, fmtCount(iops4k), microsPerRead(iops4k)],
      ['read (one per call)', `${singleDepth} reads`, fmtCount(iops4kSingle), microsPerRead(iops4kSingle)],
    ]);
    const serverStats = await server.stop();
    console.log(`\nserver stats: ${JSON.stringify(serverStats)}`);
    printJson('randread', {
      transport, server: serverMode, batchEntries, batchDepth, singleDepth, connections, ioThreads,
      iops_4k: Math.round(iops4k), iops_4k_single: Math.round(iops4kSingle),
    });
  } finally {
    client.close();
    cleanup();
  }
}
