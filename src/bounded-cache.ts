/**
 * A map of at most `entriesMax` entries that forgets what was least recently set or read, in
 * O(1) per operation. Two generations: sets (and reads of old entries) go to the young map;
 * when it holds half the bound it becomes the old map, and the old one is dropped whole.
 *
 * Why not one Map that deletes its oldest key when full: V8 leaves a deleted entry's slot in
 * place until the table is rebuilt, and `keys().next()` walks every such slot from the front,
 * so each eviction of a full 131,072-entry map cost ~30 us (scratch microbench, 2026-12-05).
 */
export class BoundedCache<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly generationMax: number;

  constructor(entriesMax: number) {
    if (!Number.isSafeInteger(entriesMax) || entriesMax < 0) throw new RangeError('entriesMax must be a non-negative integer');
    this.generationMax = Math.floor(entriesMax / 2);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  get(key: K): V | undefined {
    const value = this.young.get(key);
    if (value !== undefined || this.old.size === 0) return value;
    const aged = this.old.get(key);
    if (aged !== undefined) {
      this.old.delete(key);
      this.setYoung(key, aged);
    }
    return aged;
  }

  /** REQUIRES: `value` is not undefined (get's answer for "not kept"). */
  set(key: K, value: V): void {
    this.old.delete(key);
    this.setYoung(key, value);
  }

  delete(key: K): void {
    this.young.delete(key);
    this.old.delete(key);
  }

  clear(): void {
    this.young = new Map();
    this.old = new Map();
  }

  private setYoung(key: K, value: V): void {
    if (this.generationMax === 0) return;
    this.young.set(key, value);
    if (this.young.size >= this.generationMax) {
      this.old = this.young;
      this.young = new Map();
    }
  }
}
