/**
 * File layout math (design §2), the same as native/client/layout.h: a file spreads over
 * `stripeSize` chains picked from its chain table by a shuffle seeded with the file's seed;
 * chunk i lives on chain fileChains[i % stripeSize]. Shared vectors: test/fixtures/layout.txt
 * and test/fixtures/layout-grown.txt.
 *
 * Tables grow (`millpond admin add-targets`) by appending chains and bumping their version,
 * never by reordering or removing: the shuffle runs over the table *as it was at the version
 * the file's layout records* (tableChainsAt), so a grow never moves an existing file's chunks
 * to other chains, while files created afterwards spread over the grown table.
 */
const MASK64 = (1n << 64n) - 1n;

/** splitmix64, as in the native client. */
function nextRandom(state: { value: bigint }): bigint {
  state.value = (state.value + 0x9e3779b97f4a7c15n) & MASK64;
  let z = state.value;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** A chain table as routing serves it (cluster/types.ts ChainTableRecord). */
export interface TableChains {
  version: number;
  chainIds: readonly number[];
  /**
   * chainCounts[v - 1]: how many chains (a prefix of chainIds) the table had at version v.
   * Absent: the table never grew, and every version up to `version` has all of chainIds.
   */
  chainCounts?: readonly number[];
}

/**
 * The table's chains at `layoutVersion` (a file layout's chainTableVersion; 0, which older
 * layouts may carry, means the first version): the first chainCounts[v - 1] of chainIds.
 * Undefined when the table has no such version yet (this routing is older than the layout:
 * refresh it and ask again).
 */
export function tableChainsAt(table: TableChains, layoutVersion: number): number[] | undefined {
  const v = Math.max(1, layoutVersion);
  if (v > table.version) return undefined;
  if (!table.chainCounts) return [...table.chainIds];
  const count = table.chainCounts[v - 1];
  if (count === undefined || count > table.chainIds.length) return undefined;
  return table.chainIds.slice(0, count);
}

/** The file's chains: tableChains shuffled by seed (Fisher-Yates), the first stripeSize of them. */
export function fileChains(tableChains: readonly number[], stripeSize: number, seed: number): number[] {
  const chains = [...tableChains];
  const state = { value: BigInt(seed >>> 0) };
  for (let k = chains.length; k > 1; k--) {
    const j = Number(nextRandom(state) % BigInt(k));
    [chains[k - 1], chains[j]] = [chains[j]!, chains[k - 1]!];
  }
  return chains.slice(0, Math.min(stripeSize, chains.length));
}

/** Chunk index and offset inside it of a byte offset in the file. */
export function locate(offset: number, chunkSizeBytes: number): { index: number; offsetInChunk: number } {
  return { index: Math.floor(offset / chunkSizeBytes), offsetInChunk: offset % chunkSizeBytes };
}

export function chainOfChunk(chains: readonly number[], chunkIndex: number): number {
  return chains[chunkIndex % chains.length]!;
}
