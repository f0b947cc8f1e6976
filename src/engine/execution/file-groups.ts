/**
 * Splitting a list of files into partitions by files (smallpond's partition_by_files): n
 * contiguous groups, in order, whose sizes differ by at most one, the larger ones first.
 * Fewer items than n leaves the last groups empty.
 */
export function splitEvenly<T>(items: readonly T[], n: number): T[][] {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`splitEvenly: n must be a positive integer, got ${n}`);
  const small = Math.floor(items.length / n);
  const large = items.length % n; // the first `large` groups hold small + 1
  const groups: T[][] = [];
  let start = 0;
  for (let g = 0; g < n; g++) {
    const size = small + (g < large ? 1 : 0);
    groups.push(items.slice(start, start + size));
    start += size;
  }
  return groups;
}
