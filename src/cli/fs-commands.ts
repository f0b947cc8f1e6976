/** `millpond fs <command>`: ls, stat, cat, put, get, cp, mv, ln, rm, mkdir, du. */
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connect, type FileSystem, type Stats } from '../fs/index.js';
import { cliAuth, type CliConfig } from './config.js';
import { Progress, formatBytes } from './progress.js';

export const FS_USAGE = `millpond fs ls PATH | stat PATH | cat PATH | put LOCAL PATH | get PATH LOCAL |
            cp SRC DST | mv SRC DST | ln SRC DST | rm [-r] PATH | mkdir [-p] PATH | du PATH`;

function counting(progress: Progress): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      progress.add(chunk.length);
      callback(null, chunk);
    },
  });
}

/**
 * Bytes under `path`; a file with several names under it counts once, as du does. Entries'
 * stats come with their directory's pages (readdir plus), `st` being the path's own if known.
 */
async function du(fs: FileSystem, path: string, seen = new Set<bigint>(), st?: Stats): Promise<number> {
  st ??= await fs.stat(path);
  if (!st.isDirectory()) {
    if (seen.has(st.ino)) return 0;
    seen.add(st.ino);
    return st.size;
  }
  let total = 0;
  for await (const e of fs.dirEntries(path, { plus: true })) {
    total += await du(fs, path === '/' ? `/${e.name}` : `${path}/${e.name}`, seen, e.stats);
  }
  return total;
}

export async function runFs(config: CliConfig, args: string[], out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const [command, ...rest] = args;
  const flags = new Set(rest.filter((a) => a.startsWith('-')));
  const [a, b] = rest.filter((x) => !x.startsWith('-'));
  const need = (n: number) => {
    if ([a, b].slice(0, n).some((x) => x === undefined)) throw new TypeError(`usage: ${FS_USAGE}`);
  };
  const auth = cliAuth(config);
  const fs = await connect({ meta: config.meta, mgmtd: config.mgmtd, transport: config.transport, token: auth?.token, serverKey: auth?.serverKey });
  try {
    switch (command) {
      case 'ls': {
        need(1);
        for await (const e of fs.dirEntries(a!, { plus: true })) {
          const st = e.stats ?? await fs.stat(a === '/' ? `/${e.name}` : `${a}/${e.name}`);
          out.write(`${e.isDirectory() ? 'd' : '-'} ${String(st.size).padStart(12)} ${e.name}${e.isDirectory() ? '/' : ''}\n`);
        }
        return;
      }
      case 'stat': {
        need(1);
        const st = await fs.stat(a!);
        out.write(`${JSON.stringify({ path: a, type: st.isDirectory() ? 'dir' : 'file', size: st.size, mode: `0${(st.mode & 0o7777).toString(8)}`, uid: st.uid, gid: st.gid, ino: String(st.ino), nlink: st.nlink, chunkSizeBytes: st.chunkSizeBytes, mtime: st.mtime.toISOString() })}\n`);
        return;
      }
      case 'cat':
        need(1);
        await pipeline(fs.createReadStream(a!), out, { end: false });
        return;
      case 'put': {
        need(2);
        const progress = new Progress(`put ${b}`, statSync(a!).size, { minTotal: 8 << 20 });
        await pipeline(createReadStream(a!), counting(progress), fs.createWriteStream(b!));
        progress.finish();
        return;
      }
      case 'get': {
        need(2);
        const progress = new Progress(`get ${a}`, (await fs.stat(a!)).size, { minTotal: 8 << 20 });
        await pipeline(fs.createReadStream(a!), counting(progress), createWriteStream(b!));
        progress.finish();
        return;
      }
      case 'cp': {
        need(2);
        const progress = new Progress(`cp ${a}`, (await fs.stat(a!)).size, { minTotal: 8 << 20 });
        await pipeline(fs.createReadStream(a!), counting(progress), fs.createWriteStream(b!));
        progress.finish();
        return;
      }
      case 'mv':
        need(2);
        await fs.rename(a!, b!);
        return;
      case 'ln': // a hard link, as ln without -s
        need(2);
        await fs.link(a!, b!);
        return;
      case 'rm':
        need(1);
        await fs.rm(a!, { recursive: flags.has('-r') || flags.has('-rf'), force: flags.has('-f') || flags.has('-rf') });
        return;
      case 'mkdir':
        need(1);
        await fs.mkdir(a!, { recursive: flags.has('-p') });
        return;
      case 'du':
        need(1);
        out.write(`${formatBytes(await du(fs, a!))}\t${a}\n`);
        return;
      default:
        throw new TypeError(`usage: ${FS_USAGE}`);
    }
  } finally {
    fs.close();
  }
}
