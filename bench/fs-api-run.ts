/**
 * One pass of the fs-api bench against the millpond checkout at --root (this one, or a
 * baseline's worktree): an embedded cluster over TCP with synced writes, then the FileSystem
 * API's own writes and reads of one --size-mib file. Prints one JSON line of GB/s by operation.
 * It imports only what every version since the embedded cluster has (startEmbedded, connect,
 * the FileSystem and FileHandle methods below), so a commit from before a change runs it as is.
 * Usage: node --import tsx bench/fs-api-run.ts --root DIR --size-mib N --data-dir DIR
 */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dropPageCache, gbPerSecond, GiB, intOption, MiB, nowMs, parseOptions } from './lib.js';

const options = parseOptions(process.argv.slice(2));
const root = options.get('root') ?? process.cwd();
if (!options.get('data-dir')) throw new Error('--data-dir is required');
const dataDir = resolve(options.get('data-dir')!);
const bytes = intOption(options, 'size-mib', 2048) * MiB;

const load = (path: string) => import(pathToFileURL(join(root, path)).href);
const { startEmbedded } = await load('src/cli/embedded.ts');
const { connect } = await load('src/fs/index.ts');

const cluster = await startEmbedded({
  dataDir, mgmtdListen: 'tcp://127.0.0.1:0', metaListen: 'tcp://127.0.0.1:0',
  host: '127.0.0.1', transport: 'tcp', chainCount: 12, syncWrites: true, insecure: false,
});
const fs = await connect({ meta: cluster.meta, mgmtd: [cluster.mgmtd], transport: 'tcp', token: cluster.adminToken, serverKey: cluster.serverKey });

const GBps: Record<string, number> = {};
/** Times `op` moving `moved` bytes; reads start with the page cache dropped (a cold file). */
async function measure(name: string, moved: number, op: () => Promise<void>, cold = false): Promise<void> {
  if (cold) await dropPageCache();
  const started = nowMs();
  await op();
  GBps[name] = gbPerSecond(moved, nowMs() - started);
}

const piece = Buffer.alloc(64 * MiB);
for (let i = 0; i < piece.length; i += 4096) piece.writeUInt32LE(i, i);
const whole = Buffer.alloc(Math.min(bytes, GiB), 7);

try {
  await measure('write_64MiB_pieces', bytes, async () => {
    const h = await fs.open('/big.bin', 'w');
    for (let at = 0; at < bytes; at += piece.length) await h.write(piece.subarray(0, Math.min(piece.length, bytes - at)));
    await h.close();
  });
  await measure('writeFile_1GiB', whole.length, () => fs.writeFile('/whole.bin', whole));
  await measure('write_stream', bytes, () => new Promise<void>((resolve, reject) => {
    const stream = fs.createWriteStream('/stream.bin');
    stream.on('error', reject).on('finish', resolve);
    let at = 0;
    const more = (): void => {
      while (at < bytes) {
        const n = Math.min(piece.length, bytes - at);
        at += n;
        if (!stream.write(piece.subarray(0, n))) return void stream.once('drain', more);
      }
      stream.end();
    };
    more();
  }));

  await measure('readFile_1GiB', whole.length, async () => {
    const got = await fs.readFile('/whole.bin');
    if (got.length !== whole.length || got[got.length - 1] !== 7) throw new Error('readFile returned other bytes');
  }, true);
  const readPieces = async (size: number): Promise<void> => {
    const h = await fs.open('/big.bin', 'r');
    for (let at = 0; at < bytes; at += size) {
      const got = await h.readAt(at, size);
      if (got.readUInt32LE(0) !== at % piece.length) throw new Error(`readAt(${at}) returned other bytes`);
    }
    await h.close();
  };
  await measure('readAt_1GiB', bytes, () => readPieces(GiB), true);
  await measure('readAt_64MiB', bytes, () => readPieces(64 * MiB), true);
  await measure('readAt_1MiB', bytes, () => readPieces(MiB), true);
  await measure('read_stream', bytes, async () => {
    let seen = 0;
    for await (const chunk of fs.createReadStream('/stream.bin')) seen += (chunk as Buffer).length;
    if (seen !== bytes) throw new Error(`the stream gave ${seen} bytes`);
  }, true);
  const batch = Array.from({ length: 256 }, (_, i) => ({ position: ((i * 7919) % (bytes / MiB)) * MiB, length: MiB }));
  await measure('readBatch_256x1MiB', 256 * MiB, async () => {
    const h = await fs.open('/big.bin', 'r');
    const got: Buffer = await h.readBatch(batch);
    if (got.length !== 256 * MiB) throw new Error('readBatch returned other bytes');
    await h.close();
  }, true);
} finally {
  fs.close();
  await cluster.stop();
}
console.log(JSON.stringify(GBps));
process.exit(0); // a baseline may leave a handle open after stop; the figures are out
