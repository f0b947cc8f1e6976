/**
 * dataplane: one ChunkClient reading and writing 4 MiB chunks on one DataServer over loopback,
 * against iperf3's single TCP stream in the same run. Chunks are hot in the server's page
 * cache (directIo:false, read once before timing), so the figure is the data plane's, not the
 * disk's. The server runs in a child process by default (--server inproc to share this one).
 */
import { join } from 'node:path';
import { allocAligned, ChunkClient, type TransportChoice, type TransportCounters } from '../src/index.js';
import {
  fmtGBps, freePort, gbPerSecond, intOption, machineNote, MiB, makeWorkDir, nowMs, printJson, printTable,
  round3, runForDuration, runIperf3, runWithDepth,
} from './lib.js';
import { parseServerMode, parseTransport, startServer } from './server.js';

const chunkBytes = 4 * MiB;

export async function dataplaneBench(options: Map<string, string>): Promise<void> {
  const transport = parseTransport(options.get('transport'));
  const serverMode = parseServerMode(options.get('server'));
  const chunkCount = intOption(options, 'chunks', 128);
  const depth = intOption(options, 'depth', 8);
  const connections = intOption(options, 'connections', 1);
  const ioThreads = intOption(options, 'io-threads', 4);
  const seconds = intOption(options, 'seconds', 3);
  const rounds = intOption(options, 'rounds', 3);

  const { dir, cleanup } = await makeWorkDir('dataplane');
  // A server that cannot start (e.g. --transport rdma without a device) still cleans up.
  const server = await startServer(serverMode, join(dir, 'store'), transport, ioThreads).catch((err: unknown) => {
    cleanup();
    throw err;
  });
  const client = new ChunkClient({ transport, connectionsPerServer: connections });
  try {
    console.log(`dataplane: ${chunkCount} chunks x 4 MiB, transport ${transport}, server in ${serverMode === 'child' ? 'a child process' : 'this process'} ` +
      `(${ioThreads} io threads), ${depth} requests in flight on ${connections} connection(s), ${seconds} s per phase, median of ${rounds} rounds`);
    console.log(machineNote());

    const buffers = Array.from({ length: depth }, () => {
      const b = allocAligned(chunkBytes);
      for (let i = 0; i < chunkBytes; i += 4) b.writeUInt32LE((Math.random() * 0x1_0000_0000) >>> 0, i);
      return b;
    });
    const chunkOf = (i: number) => ({ inode: 2n, index: i % chunkCount });

    // Writes: every chunk once (creates it), then overwrites for the rest of the phase.
    await runWithDepth(chunkCount, depth, (i, slot) => client.write(server.address, chunkOf(i), 0, buffers[slot]));
    const written = await runForDuration(seconds * 1000, depth,
      (i, slot) => client.write(server.address, chunkOf(i), 0, buffers[slot]));

    // Warm: every chunk's newest version is read once, so the timed reads hit the cache.
    await runWithDepth(chunkCount, depth, (i, slot) => client.read(server.address, chunkOf(i), 0, chunkBytes, { target: buffers[slot] }));
    // Loopback throughput drifts with the other work on the shared cores, so reads and iperf3
    // alternate for a few rounds and each figure is the median (iperf3 never overlaps a read).
    const readSamples: number[] = [];
    const iperf3Samples: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const read = await runForDuration(seconds * 1000, depth, async (i, slot) => {
        const { data } = await client.read(server.address, chunkOf(i), 0, chunkBytes, { target: buffers[slot] });
        if (data.length !== chunkBytes) throw new Error(`chunk ${i % chunkCount}: read ${data.length} bytes`);
      });
      readSamples.push(gbPerSecond(read.ops * chunkBytes, read.elapsedMs));
      iperf3Samples.push((await runIperf3(await freePort(), seconds)) / 1e9);
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

    const transports = client.stats().transports as Record<string, TransportCounters | undefined>;
    const carriers = Object.entries(transports).filter(([, c]) => c && c.bytesReceived > 0).map(([name]) => name);

    const figures = {
      read_GBps: round3(median(readSamples)),
      write_GBps: round3(gbPerSecond(written.ops * chunkBytes, written.elapsedMs)),
      iperf3_GBps: round3(median(iperf3Samples)),
      read_ratio: 0,
    };
    figures.read_ratio = round3(figures.read_GBps / figures.iperf3_GBps);
    console.log('\nrounds (GB/s):');
    console.log(`  read    ${readSamples.map((v) => v.toFixed(3)).join('  ')}`);
    console.log(`  iperf3  ${iperf3Samples.map((v) => v.toFixed(3)).join('  ')}`);
    printTable(`4 MiB chunks over loopback (GB/s = 1e9 bytes/s), carried by: ${carriers.join(', ') || 'nothing'}`, [
      ['path', 'GB/s', 'vs iperf3'],
      ['millpond read (hot cache), median', fmtGBps(figures.read_GBps), figures.read_ratio.toFixed(2)],
      ['millpond write (buffered, no sync)', fmtGBps(figures.write_GBps), (figures.write_GBps / figures.iperf3_GBps).toFixed(2)],
      ['iperf3, one TCP stream, median', fmtGBps(figures.iperf3_GBps), '1.00'],
    ]);
    if (carriers.includes('rdma')) {
      console.log('\nnote: RDMA here is soft-RoCE (rdma_rxe), under qemu TCG where it runs: these figures are functional only, not performance.');
    }
    const serverStats = await server.stop();
    console.log(`\nserver stats: ${JSON.stringify(serverStats, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}`);
    printJson('dataplane', {
      transport: carriers.join('+') || transport, server: serverMode, rounds, depth, connections, ioThreads, ...figures,
    });
  } finally {
    client.close();
    cleanup();
  }
}
