#!/usr/bin/env node
/**
 * The millpond command. Today: `millpond demo` — starts three storage targets with their
 * data servers on this machine (under ./millpond-data by default), stripes a file's worth of
 * chunks over them through one client, reads everything back with checksums verified and
 * prints what moved and how fast.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ChunkClient, ChunkStore, DataServer, allocAligned, crc32c, limits } from '../index.js';

const USAGE = `usage: millpond demo [--data-dir DIR] [--size-mib N] [--transport auto|tcp|rdma]`;

function parseFlags(args: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--') || i + 1 >= args.length) throw new Error(`bad argument ${arg}\n${USAGE}`);
    flags.set(arg.slice(2), args[++i]!);
  }
  return flags;
}

async function demo(flags: Map<string, string>): Promise<void> {
  const dataDir = resolve(flags.get('data-dir') ?? process.env.MILLPOND_DATA_DIR ?? 'millpond-data');
  const sizeMiB = Number(flags.get('size-mib') ?? 512);
  const transport = (flags.get('transport') ?? process.env.MILLPOND_TRANSPORT ?? 'auto') as 'auto' | 'tcp' | 'rdma';
  if (!Number.isInteger(sizeMiB) || sizeMiB < 4 || sizeMiB > 65536) throw new Error('--size-mib must be 4..65536');
  const chunkBytes = limits.chunkSizeBytesDefault;
  const chunkCount = Math.ceil((sizeMiB << 20) / chunkBytes);

  const stores: ChunkStore[] = [];
  const servers: DataServer[] = [];
  for (let t = 0; t < 3; t++) {
    const dir = join(dataDir, `target-${t}`);
    mkdirSync(dir, { recursive: true });
    const store = await ChunkStore.open(dir);
    stores.push(store);
    servers.push(await DataServer.start(store, { transport }));
  }
  console.log(`3 targets under ${dataDir}, data servers at ${servers.map((s) => s.address).join(', ')}`);
  const client = new ChunkClient({ transport });
  const inode = BigInt(Date.now());
  const chunkAt = (index: number) => ({ chunk: { inode, index }, server: servers[index % servers.length]! });

  // Write: each chunk stamped with its index, 8 chunks in flight.
  const checksums: number[] = [];
  const buffers = Array.from({ length: 8 }, () => allocAligned(chunkBytes));
  let started = performance.now();
  for (let base = 0; base < chunkCount; base += buffers.length) {
    await Promise.all(buffers.map(async (buf, slot) => {
      const index = base + slot;
      if (index >= chunkCount) return;
      for (let i = 0; i < buf.length; i += 8) buf.writeUInt32LE(index, i), buf.writeUInt32LE(i, i + 4);
      checksums[index] = crc32c(buf);
      const { chunk, server } = chunkAt(index);
      const meta = await client.write(server.address, chunk, 0, buf);
      if (meta.checksum !== checksums[index]) throw new Error(`chunk ${index}: server checksum differs`);
    }));
  }
  const writeSeconds = (performance.now() - started) / 1000;

  // Read back and verify every chunk.
  started = performance.now();
  for (let base = 0; base < chunkCount; base += buffers.length) {
    await Promise.all(buffers.map(async (buf, slot) => {
      const index = base + slot;
      if (index >= chunkCount) return;
      const { chunk, server } = chunkAt(index);
      const { data } = await client.read(server.address, chunk, 0, chunkBytes, { target: buf });
      if (crc32c(data) !== checksums[index]) throw new Error(`chunk ${index}: read back different bytes`);
    }));
  }
  const readSeconds = (performance.now() - started) / 1000;

  const bytes = chunkCount * chunkBytes;
  const rate = (s: number) => `${(bytes / s / 1e9).toFixed(2)} GB/s`;
  console.log(`wrote ${chunkCount} chunks of 4 MiB (${sizeMiB} MiB) in ${writeSeconds.toFixed(2)} s: ${rate(writeSeconds)}`);
  console.log(`read and verified them in ${readSeconds.toFixed(2)} s: ${rate(readSeconds)}`);
  const carried = client.stats().transports;
  console.log(`bytes carried: ${Object.entries(carried).map(([k, v]) => `${k} ${v!.bytesReceived + v!.bytesSent}`).join(', ')}`);
  for (const [i, s] of servers.entries()) {
    const st = s.stats();
    console.log(`target-${i}: ${st.writes} writes, ${st.reads} reads, ${stores[i]!.usage().chunks} chunks on disk`);
  }
  for (let index = 0; index < chunkCount; index++) {
    const { chunk, server } = chunkAt(index);
    await client.remove(server.address, chunk);
  }
  client.close();
  for (const s of servers) await s.stop();
  for (const s of stores) s.close();
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'demo') return demo(parseFlags(rest));
  console.error(USAGE);
  process.exitCode = 2;
}

main().catch((error: unknown) => {
  console.error(`millpond: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
