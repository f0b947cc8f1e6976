/**
 * dataplane: one ChunkClient reading and writing 4 MiB chunks on one DataServer over loopback,
 * against iperf3's single TCP stream in the same run. Chunks are hot in the server's page
 * cache (directIo:false, read once before timing), so the figure is the data plane's, not the
 * disk's. The server runs in a child process by default (--server inproc to share this one).
 * Every figure is taken twice in the run: against a server with a cluster secret (a token client,
 * a capability checked per request: *_auth_ratio = on / off) and one without; over TCP also
 * against a server with encryptData (every frame sealed with an AEAD): *_encrypt_ratio =
 * encrypted / auth on, and encrypt_ratio the same over reads and writes together. With the server
 * in a child process, also against a server with native metrics off (MILLPOND_METRICS=off):
 * *_metrics_ratio = metrics on / off (auth on both), metrics_ratio over reads and writes together.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { allocAligned, type TransportCounters } from '../src/index.js';
import {
  fmtGBps, freePort, gbPerSecond, intOption, machineNote, makeWorkDir, median, MiB, nowMs, printJson,
  printTable, round3, runForDuration, runIperf3, runWithDepth,
} from './lib.js';
import { parseServerMode, parseTransport, startAuthPair, type AuthSide } from './server.js';

const chunkBytes = 4 * MiB;

/** Which AEAD the encrypted side runs: libsodium's AES-256-GCM needs the CPU's AES-NI and PCLMUL. */
function aeadNote(): string {
  const flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1]?.split(/\s+/) ?? [];
  return flags.includes('aes') && flags.includes('pclmulqdq') ? 'AES-256-GCM' : 'ChaCha20-Poly1305-IETF';
}

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
  // Two servers, with and without a cluster secret, so auth's cost is measured in this run.
  // A server that cannot start (e.g. --transport rdma without a device) still cleans up.
  const encrypted = transport === 'tcp'; // RDMA is not encrypted
  const metricsOff = serverMode === 'child'; // the switch is per process
  const pair = await startAuthPair(serverMode, dir, transport, ioThreads, { transport, connectionsPerServer: connections }, 2n, encrypted, metricsOff)
    .catch((err: unknown) => {
      cleanup();
      throw err;
    });
  try {
    console.log(`dataplane: ${chunkCount} chunks x 4 MiB, transport ${transport}, server in ${serverMode === 'child' ? 'a child process' : 'this process'} ` +
      `(${ioThreads} io threads), ${depth} requests in flight on ${connections} connection(s), ${seconds} s per phase, median of ${rounds} rounds; ` +
      'each figure with authentication on (a token client, capabilities checked) and off (no secret)' +
      (encrypted ? `, and encrypted (encryptData; ${aeadNote()})` : '') + (metricsOff ? ', and with native metrics off (auth on)' : '') + ', writes through a one-target chain');
    console.log(machineNote());

    const buffers = Array.from({ length: depth }, () => {
      const b = allocAligned(chunkBytes, true);
      for (let i = 0; i < chunkBytes; i += 4) b.writeUInt32LE((Math.random() * 0x1_0000_0000) >>> 0, i);
      return b;
    });
    const chunkOf = (i: number) => ({ inode: 2n, index: i % chunkCount });
    const sides = [pair.on, pair.off, ...(pair.enc ? [pair.enc] : []), ...(pair.moff ? [pair.moff] : [])];
    const write = (side: AuthSide, i: number, slot: number) => side.client.write(side.server.address, chunkOf(i), 0, buffers[slot]!, side.chain());
    const read = async (side: AuthSide, i: number, slot: number) => {
      const { data } = await side.client.read(side.server.address, chunkOf(i), 0, chunkBytes, { target: buffers[slot], capability: side.capability });
      if (data.length !== chunkBytes) throw new Error(`chunk ${i % chunkCount}: read ${data.length} bytes`);
    };

    // Writes: every chunk once (creates it); the chunks' newest versions are read once, so the
    // timed reads hit the cache.
    for (const side of sides) {
      await runWithDepth(chunkCount, depth, (i, slot) => write(side, i, slot));
      await runWithDepth(chunkCount, depth, (i, slot) => read(side, i, slot));
    }
    // Loopback throughput drifts with the other work on the shared cores, so overwrites and
    // reads (auth on, auth off, the order swapped each round) and iperf3 alternate for a few
    // rounds and each figure is the median.
    const writeSamples = new Map<AuthSide, number[]>(sides.map((s) => [s, []]));
    const readSamples = new Map<AuthSide, number[]>(sides.map((s) => [s, []]));
    const iperf3Samples: number[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {  // the order swapped each round
        const w = await runForDuration(seconds * 1000, depth, (i, slot) => write(side, i, slot));
        writeSamples.get(side)!.push(gbPerSecond(w.ops * chunkBytes, w.elapsedMs));
        await runWithDepth(chunkCount, depth, (i, slot) => read(side, i, slot)); // warm the new versions
        const r = await runForDuration(seconds * 1000, depth, (i, slot) => read(side, i, slot));
        readSamples.get(side)!.push(gbPerSecond(r.ops * chunkBytes, r.elapsedMs));
      }
      iperf3Samples.push((await runIperf3(await freePort(), seconds)) / 1e9);
    }

    const transports = pair.on.client.stats().transports as Record<string, TransportCounters | undefined>;
    const carriers = Object.entries(transports).filter(([, c]) => c && c.bytesReceived > 0).map(([name]) => name);

    const figures = {
      read_GBps: round3(median(readSamples.get(pair.on)!)),
      read_noauth_GBps: round3(median(readSamples.get(pair.off)!)),
      write_GBps: round3(median(writeSamples.get(pair.on)!)),
      write_noauth_GBps: round3(median(writeSamples.get(pair.off)!)),
      iperf3_GBps: round3(median(iperf3Samples)),
      read_ratio: 0,
      read_auth_ratio: 0,
      write_auth_ratio: 0,
      ...(pair.enc ? {
        read_encrypted_GBps: round3(median(readSamples.get(pair.enc)!)),
        write_encrypted_GBps: round3(median(writeSamples.get(pair.enc)!)),
        read_encrypt_ratio: 0, write_encrypt_ratio: 0, encrypt_ratio: 0,
      } : {}),
      ...(pair.moff ? {
        read_nometrics_GBps: round3(median(readSamples.get(pair.moff)!)),
        write_nometrics_GBps: round3(median(writeSamples.get(pair.moff)!)),
        read_metrics_ratio: 0, write_metrics_ratio: 0, metrics_ratio: 0,
      } : {}),
    };
    figures.read_ratio = round3(figures.read_GBps / figures.iperf3_GBps);
    figures.read_auth_ratio = round3(figures.read_GBps / figures.read_noauth_GBps);
    figures.write_auth_ratio = round3(figures.write_GBps / figures.write_noauth_GBps);
    if (pair.enc) {
      const r = median(readSamples.get(pair.enc)!), w = median(writeSamples.get(pair.enc)!);
      const rOn = median(readSamples.get(pair.on)!), wOn = median(writeSamples.get(pair.on)!);
      figures.read_encrypt_ratio = round3(r / rOn);
      figures.write_encrypt_ratio = round3(w / wOn);
      figures.encrypt_ratio = round3((r + w) / (rOn + wOn));
    }
    if (pair.moff) {
      const r = median(readSamples.get(pair.on)!), w = median(writeSamples.get(pair.on)!);
      const rOff = median(readSamples.get(pair.moff)!), wOff = median(writeSamples.get(pair.moff)!);
      figures.read_metrics_ratio = round3(r / rOff);
      figures.write_metrics_ratio = round3(w / wOff);
      figures.metrics_ratio = round3((r + w) / (rOff + wOff));
    }
    console.log('\nrounds (GB/s):');
    console.log(`  read, auth on   ${readSamples.get(pair.on)!.map((v) => v.toFixed(3)).join('  ')}`);
    console.log(`  read, auth off  ${readSamples.get(pair.off)!.map((v) => v.toFixed(3)).join('  ')}`);
    console.log(`  write, auth on  ${writeSamples.get(pair.on)!.map((v) => v.toFixed(3)).join('  ')}`);
    console.log(`  write, auth off ${writeSamples.get(pair.off)!.map((v) => v.toFixed(3)).join('  ')}`);
    if (pair.enc) {
      console.log(`  read, encrypted ${readSamples.get(pair.enc)!.map((v) => v.toFixed(3)).join('  ')}`);
      console.log(`  write, encrypted ${writeSamples.get(pair.enc)!.map((v) => v.toFixed(3)).join('  ')}`);
    }
    if (pair.moff) {
      console.log(`  read, metrics off  ${readSamples.get(pair.moff)!.map((v) => v.toFixed(3)).join('  ')}`);
      console.log(`  write, metrics off ${writeSamples.get(pair.moff)!.map((v) => v.toFixed(3)).join('  ')}`);
    }
    console.log(`  iperf3          ${iperf3Samples.map((v) => v.toFixed(3)).join('  ')}`);
    printTable(`4 MiB chunks over loopback (GB/s = 1e9 bytes/s), carried by: ${carriers.join(', ') || 'nothing'}`, [
      ['path', 'GB/s', 'vs iperf3', 'vs auth off'],
      ['millpond read (hot cache), auth on, median', fmtGBps(figures.read_GBps), figures.read_ratio.toFixed(2), figures.read_auth_ratio.toFixed(3)],
      ['millpond read (hot cache), auth off, median', fmtGBps(figures.read_noauth_GBps), (figures.read_noauth_GBps / figures.iperf3_GBps).toFixed(2), '1'],
      ['millpond write (chain of 1, no sync), auth on, median', fmtGBps(figures.write_GBps), (figures.write_GBps / figures.iperf3_GBps).toFixed(2), figures.write_auth_ratio.toFixed(3)],
      ['millpond write (chain of 1, no sync), auth off, median', fmtGBps(figures.write_noauth_GBps), (figures.write_noauth_GBps / figures.iperf3_GBps).toFixed(2), '1'],
      ...(pair.enc ? [
        ['millpond read, encrypted (encryptData), median', fmtGBps(figures.read_encrypted_GBps!), (figures.read_encrypted_GBps! / figures.iperf3_GBps).toFixed(2),
          `${(figures.read_encrypted_GBps! / figures.read_noauth_GBps).toFixed(3)} (vs auth on ${figures.read_encrypt_ratio!.toFixed(3)})`],
        ['millpond write, encrypted (encryptData), median', fmtGBps(figures.write_encrypted_GBps!), (figures.write_encrypted_GBps! / figures.iperf3_GBps).toFixed(2),
          `${(figures.write_encrypted_GBps! / figures.write_noauth_GBps).toFixed(3)} (vs auth on ${figures.write_encrypt_ratio!.toFixed(3)})`],
      ] : []),
      ['iperf3, one TCP stream, median', fmtGBps(figures.iperf3_GBps), '1.00', ''],
    ]);
    if (pair.moff) {
      console.log(`metrics (auth on both): read ${figures.read_nometrics_GBps} GB/s with metrics off, read_metrics_ratio ${figures.read_metrics_ratio}; ` +
        `write ${figures.write_nometrics_GBps} GB/s off, write_metrics_ratio ${figures.write_metrics_ratio}; metrics_ratio (on / off, reads and writes together) ${figures.metrics_ratio}`);
    }
    if (pair.enc) console.log(`encrypt_ratio (encrypted vs auth on, reads and writes together): ${figures.encrypt_ratio}`);
    if (carriers.includes('rdma')) {
      console.log('\nnote: RDMA here is soft-RoCE (rdma_rxe), under qemu TCG where it runs: these figures are functional only, not performance.');
    }
    const serverStats = await pair.close();
    console.log(`\nserver stats (auth on, auth off): ${JSON.stringify(serverStats, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))}`);
    printJson('dataplane', {
      transport: carriers.join('+') || transport, server: serverMode, rounds, depth, connections, ioThreads,
      ...(pair.enc ? { aead: aeadNote() } : {}), ...figures,
    });
  } finally {
    await pair.close().catch(() => {});
    cleanup();
  }
}
