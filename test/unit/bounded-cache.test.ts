// BoundedCache (src/bounded-cache.ts): never more than its bound, forgets what was least
// recently set or read. Its speed when full (the reason it exists) is bench/meta's to show.
import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../../src/bounded-cache.js';

describe('BoundedCache', () => {
  it('holds at most its bound, and what was read lately outlives what was not', () => {
    const cache = new BoundedCache<string, number>(8);
    for (let i = 0; i < 100; i++) {
      cache.set(`k${i}`, i);
      expect(cache.get('k0')).toBe(0); // read after every set: never forgotten
      expect(cache.size).toBeLessThanOrEqual(8);
    }
    expect(cache.get('k99')).toBe(99);
    expect(cache.get('k1')).toBeUndefined();
    // Kept values include null (SQLite's cache keeps "absent" so).
    const absent = new BoundedCache<string, number | null>(4);
    absent.set('gone', null);
    expect(absent.get('gone')).toBeNull();
    expect(absent.get('never')).toBeUndefined();
  });

  it('set replaces, delete and clear forget, whichever generation holds the key', () => {
    const cache = new BoundedCache<string, string>(4);
    cache.set('a', '1');
    cache.set('b', '2'); // the first generation is full: a and b are now the old one
    cache.set('a', '3');
    expect(cache.get('a')).toBe('3');
    expect(cache.size).toBe(2);
    cache.delete('a');
    cache.delete('b');
    expect([cache.get('a'), cache.get('b'), cache.size]).toEqual([undefined, undefined, 0]);
    cache.set('c', '4');
    cache.clear();
    expect([cache.get('c'), cache.size]).toEqual([undefined, 0]);
    const none = new BoundedCache<string, string>(0);
    none.set('x', 'y');
    expect([none.get('x'), none.size]).toEqual([undefined, 0]);
  });
});
