// Writes chunks as fast as it can until killed: `crash-writer.ts <dir> <chunks>`.
// Each chunk has its own sequential writer; after every acknowledged write it prints
// "ack <index> <generation>". Content of generation g: see pattern.ts.
import { ChunkStore } from '../../src/index.js';
import { chunkPattern } from './pattern.js';

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
    console.log(`ack ${index} ${generation}`);
  }
}
console.log('ready');
await Promise.all(Array.from({ length: chunks }, (_, i) => writer(i)));
