import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { chainOfChunk, fileChains, locate } from '../../src/fs/layout.js';

describe('file layout', () => {
  it('matches the vectors the native client is tested against', () => {
    const lines = readFileSync(new URL('../fixtures/layout.txt', import.meta.url), 'utf8')
      .split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines.length).toBeGreaterThanOrEqual(8);
    for (const line of lines) {
      const [head, tail] = line.split(' : ');
      const [tableSize, stripe, seed] = head!.split(' ').map(Number) as [number, number, number];
      const table = Array.from({ length: tableSize }, (_, i) => 101 + i);
      expect(fileChains(table, stripe, seed)).toEqual(tail!.split(' ').map(Number));
    }
  });

  it('locates chunks and their chains', () => {
    expect(locate(10 * 4194304 + 17, 4194304)).toEqual({ index: 10, offsetInChunk: 17 });
    expect(chainOfChunk([7, 8, 9], 4)).toBe(8);
  });
});
