// Writes chunks as fast as it can until killed: `crash-writer.ts <dir> <chunks>`.
// Each chunk has its own sequential writer; after every acknowledged write it prints
// "ack <index> <generation>" (synchronously, so a kill cannot lose an ack). Content of generation g: see pattern.ts.
import { writeSync } from 'node:fs';
import { ChunkStore } from '../../src/index.js';
import { chunkPattern } from './pattern.js';

// Writes a line before returning. stdout may be a non-blocking pipe: wait out EAGAIN.
function printNow(line: string): void {
  for (;;) {
    try {
      writeSync(1, `${line}\n`);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
  }
}

const [dir, chunksArg] = process.argv.slice(2);
const store = await ChunkStore.open(dir!, { syncWrites: false });
const chunks = Number(chunksArg);

async function writer(index: number): Promise<never> {
  for (let generation = 1; ; generation++) {
    const data = chunkPattern(index, generation);
    // Alternate one-step commits with two-step (pending, then commit) writes.
    if (generation % 2 === 0) {
      const meta = await store.write({ inode: 7n, index }, 0, data, { replace: true, commit: false });
      await store.commit({ inode: 7n, index }, meta.updateVersion);
    } else {
      await store.write({ inode: 7n, index }, 0, data, { replace: true });
    }
    printNow(`ack ${index} ${generation}`); // before the next write starts
  }
}
printNow('ready');
await Promise.all(Array.from({ length: chunks }, (_, i) => writer(i)));
