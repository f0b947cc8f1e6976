import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { chainOfChunk, fileChains, locate, tableChainsAt } from '../../src/fs/layout.js';

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

  it('matches the grown-table vectors the native client is tested against', () => {
    const lines = readFileSync(new URL('../fixtures/layout-grown.txt', import.meta.url), 'utf8')
      .split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines.length).toBeGreaterThanOrEqual(12);
    for (const line of lines) {
      const [head, tail] = line.split(' : ');
      const [size, version, counts, layoutVersion, stripe, seed] = head!.split(' ');
      const table = { version: Number(version), chainIds: Array.from({ length: Number(size) }, (_, i) => 101 + i),
        ...(counts === '-' ? {} : { chainCounts: counts!.split(',').map(Number) }) };
      const at = tableChainsAt(table, Number(layoutVersion));
      if (tail === 'none') expect(at, line).toBeUndefined();
      else expect(fileChains(at!, Number(stripe), Number(seed)), line).toEqual(tail!.split(' ').map(Number));
    }
  });

  it('a grown table keeps the chains of files made before the grow', () => {
    const before = { version: 1, chainIds: Array.from({ length: 8 }, (_, i) => 1 + i) };
    const grown = { version: 2, chainIds: [...before.chainIds, 9, 10, 11, 12], chainCounts: [8, 12] };
    for (let seed = 0; seed < 500; seed++) {
      expect(fileChains(tableChainsAt(grown, 1)!, 4, seed)).toEqual(fileChains(tableChainsAt(before, 1)!, 4, seed));
    }
    // New files spread over the grown table: some of them land on the new chains.
    const onNew = Array.from({ length: 100 }, (_, seed) => fileChains(tableChainsAt(grown, 2)!, 4, seed)).filter((c) => c.some((id) => id > 8));
    expect(onNew.length).toBeGreaterThan(50);
  });

  it('locates chunks and their chains', () => {
    expect(locate(10 * 4194304 + 17, 4194304)).toEqual({ index: 10, offsetInChunk: 17 });
    expect(chainOfChunk([7, 8, 9], 4)).toBe(8);
  });
});
