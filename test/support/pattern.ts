/**
 * Self-describing chunk content: every 4 KiB block starts with (index, generation, block)
 * and is filled with a byte derived from them, so a torn or mixed chunk is detectable.
 * Lengths vary with the generation (and are not block multiples) to exercise the metadata.
 */
export function chunkPattern(index: number, generation: number): Buffer {
  const length = 256 * 1024 + (generation % 17) * 4096 + (generation % 5) * 333;
  const data = Buffer.alloc(length, (index * 31 + generation * 7) & 0xff);
  for (let block = 0; block * 4096 + 12 <= length; block++) {
    data.writeUInt32LE(index, block * 4096);
    data.writeUInt32LE(generation, block * 4096 + 4);
    data.writeUInt32LE(block, block * 4096 + 8);
  }
  return data;
}

/** The generation whose pattern `data` is exactly, or -1. */
export function generationOf(index: number, data: Buffer): number {
  if (data.length < 12) return -1;
  const generation = data.readUInt32LE(4);
  return chunkPattern(index, generation).equals(data) ? generation : -1;
}
