/**
 * randread: 4 KiB random reads per second from one client process on one DataServer over
 * loopback, with readBatch() (many reads in one message, like 3FS's USRBIO ring) and, for
 * comparison, with one read() per 4 KiB. The dataset is hot in the server's page cache.
 * Every figure is taken against a server with a cluster secret (token client, capabilities
 * checked per request, one per batch) and one without, in the same run (*_auth_ratio); with the
 * server in a child process, also one with native metrics off (MILLPOND_METRICS=off; auth on):
 * metrics_ratio = readBatch reads/s with metrics on / off. The sides take turns for --rounds
 * rounds (the order swapped each round) and each figure is the median, so load that comes and
 * goes on shared cores falls on every side alike.
 */
import { allocAligned, type BatchRead } from '../src/index.js';
import {
  fmtCount, intOption, machineNote, makeWorkDir, median, MiB, nowMs, printJson, printTable, runForDuration,
  runWithDepth,
} from './lib.js';
import { parseServerMode, parseTransport, startAuthPair, type AuthSide } from './server.js';

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
  const rounds = intOption(options, 'rounds', 3);

  const { dir, cleanup } = await makeWorkDir('randread');
  // Two servers, with and without a cluster secret, so auth's cost is measured in this run.
  // A server that cannot start (e.g. --transport rdma without a device) still cleans up.
  const metricsOff = serverMode === 'child'; // the switch (MILLPOND_METRICS=off) is per process
  const pair = await startAuthPair(serverMode, dir, transport, ioThreads, { transport, connectionsPerServer: connections }, 3n, false, metricsOff)
    .catch((err: unknown) => {
      cleanup();
      throw err;
    });
  try {
    console.log(`randread: ${chunkCount} chunks x 4 MiB, 4 KiB reads at random block offsets, transport ${transport}, ` +
      `server in ${serverMode === 'child' ? 'a child process' : 'this process'} (${ioThreads} io threads), ${connections} connection(s), median of ${rounds} rounds; ` +
      'each figure with authentication on (token client, capabilities checked) and off' + (metricsOff ? ', and with native metrics off (auth on)' : ''));
    console.log(machineNote());

    const fill = allocAligned(chunkBytes, true);
    for (let i = 0; i < chunkBytes; i += 4) fill.writeUInt32LE((Math.random() * 0x1_0000_0000) >>> 0, i);
    const chunkOf = (i: number) => ({ inode: 3n, index: i });
    const randomRead = (r: BatchRead) => {
      r.chunk = chunkOf(Math.floor(Math.random() * chunkCount));
      r.offset = Math.floor(Math.random() * blocksPerChunk) * readBytes;
    };

    const prepare = async (side: AuthSide) => {
      const { client, server, capability } = side;
      // Fill, then read everything once so the timed reads hit the page cache.
      await runWithDepth(chunkCount, 4, (i) => client.write(server.address, chunkOf(i), 0, fill, side.chain()));
      const warm = Array.from({ length: 4 }, () => Buffer.allocUnsafe(chunkBytes));
      await runWithDepth(chunkCount, 4, (i, slot) => client.read(server.address, chunkOf(i), 0, chunkBytes, { target: warm[slot], capability }));
    };
    const measure = async (side: AuthSide) => {
      const { client, server, capability } = side;

      // Batched: each slot owns its target and its entries, re-aimed at new offsets per batch.
      const slots = Array.from({ length: batchDepth }, () => ({
        target: Buffer.allocUnsafe(batchEntries * readBytes),
        reads: Array.from({ length: batchEntries }, (_, k): BatchRead => ({ chunk: chunkOf(0), offset: 0, length: readBytes, bufferOffset: k * readBytes })),
      }));
      const capabilities = capability ? [capability] : undefined; // every read is of inode 3
      let failed = 0;
      const batched = await runForDuration(seconds * 1000, batchDepth, async (_i, slot) => {
        const { target, reads } = slots[slot]!;
        for (const r of reads) randomRead(r);
        const results = await client.readBatch(server.address, reads, target, capabilities);
        for (const res of results) if (res.code !== null || res.bytesRead !== readBytes) failed++;
      });
      if (failed > 0) throw new Error(`${failed} batched reads failed`);

      // Single: one read() per 4 KiB, many in flight.
      const singleTargets = Array.from({ length: singleDepth }, () => Buffer.allocUnsafe(readBytes));
      const one: BatchRead = { chunk: chunkOf(0), offset: 0, length: readBytes, bufferOffset: 0 };
      const single = await runForDuration(Math.min(seconds, 5) * 1000, singleDepth, async (_i, slot) => {
        randomRead(one);
        const { data } = await client.read(server.address, one.chunk, one.offset, readBytes, { target: singleTargets[slot], capability });
        if (data.length !== readBytes) throw new Error(`read ${data.length} bytes`);
      });
      return { batch: (batched.ops * batchEntries) / (batched.elapsedMs / 1000), single: single.ops / (single.elapsedMs / 1000) };
    };
    const sides = [pair.on, pair.off, ...(pair.moff ? [pair.moff] : [])];
    for (const side of sides) await prepare(side);
    const samples = new Map(sides.map((side) => [side, [] as Array<{ batch: number; single: number }>]));
    for (let round = 0; round < rounds; round++) {
      for (const side of round % 2 === 0 ? sides : [...sides].reverse()) samples.get(side)!.push(await measure(side));
    }
    const figure = (side: AuthSide) => ({ batch: median(samples.get(side)!.map((x) => x.batch)), single: median(samples.get(side)!.map((x) => x.single)) });
    const on = figure(pair.on);
    const off = figure(pair.off);
    const moff = pair.moff ? figure(pair.moff) : undefined;
    console.log(`rounds (readBatch reads/s): auth on ${samples.get(pair.on)!.map((x) => Math.round(x.batch)).join(' ')}; auth off ${samples.get(pair.off)!.map((x) => Math.round(x.batch)).join(' ')}` +
      (pair.moff ? `; metrics off ${samples.get(pair.moff)!.map((x) => Math.round(x.batch)).join(' ')}` : ''));

    const microsPerRead = (iops: number) => (1e6 / iops).toFixed(2);
    printTable('4 KiB random reads, hot cache', [
      ['API', 'auth', 'in flight', 'reads/s', 'µs/read (amortized)'],
      [`readBatch (${batchEntries} per batch)`, 'on', `${batchDepth} batches`, fmtCount(on.batch), microsPerRead(on.batch)],
      [`readBatch (${batchEntries} per batch)`, 'off', `${batchDepth} batches`, fmtCount(off.batch), microsPerRead(off.batch)],
      ['read (one per call)', 'on', `${singleDepth} reads`, fmtCount(on.single), microsPerRead(on.single)],
      ['read (one per call)', 'off', `${singleDepth} reads`, fmtCount(off.single), microsPerRead(off.single)],
      ...(moff ? [
        [`readBatch (${batchEntries} per batch), metrics off`, 'on', `${batchDepth} batches`, fmtCount(moff.batch), microsPerRead(moff.batch)],
        ['read (one per call), metrics off', 'on', `${singleDepth} reads`, fmtCount(moff.single), microsPerRead(moff.single)],
      ] : []),
    ]);
    const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000;
    if (moff) console.log(`metrics (auth on both): metrics_ratio (readBatch on / off) ${ratio(on.batch, moff.batch)}, single ${ratio(on.single, moff.single)}`);
    const serverStats = await pair.close();
    console.log(`\nserver stats (auth on, auth off): ${JSON.stringify(serverStats)}`);
    printJson('randread', {
      transport, server: serverMode, rounds, batchEntries, batchDepth, singleDepth, connections, ioThreads,
      iops_4k: Math.round(on.batch), iops_4k_single: Math.round(on.single),
      iops_4k_noauth: Math.round(off.batch), iops_4k_single_noauth: Math.round(off.single),
      iops_4k_auth_ratio: Math.round((on.batch / off.batch) * 1000) / 1000,
      iops_4k_single_auth_ratio: Math.round((on.single / off.single) * 1000) / 1000,
      ...(moff ? {
        iops_4k_nometrics: Math.round(moff.batch), iops_4k_single_nometrics: Math.round(moff.single),
        metrics_ratio: ratio(on.batch, moff.batch), metrics_single_ratio: ratio(on.single, moff.single),
      } : {}),
    });
  } finally {
    await pair.close().catch(() => {});
    cleanup();
  }
}
