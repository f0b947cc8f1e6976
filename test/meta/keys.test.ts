// keyIds (src/meta/keys.ts) make a key's id without building the key: they must give exactly
// keyId(key), or a walk would miss (or, worse, confuse) the values it read.
import { describe, expect, it } from 'vitest';
import { keyId } from '../../src/kv/kv.js';
import { keyIds, keys } from '../../src/meta/keys.js';

const ids = [0n, 1n, 255n, 256n, 65_535n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 32n + 257n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n + 12_345n, 2n ** 64n - 1n];
const names = ['f0', 'a.parquet', '', 'ünïcødé', '日本語', 'emoji 🙂', 'x'.repeat(255), '\u0080\u00ff'];

describe('keyIds', () => {
  it('equal keyId of the built key, for inode ids across the u64 range and names in any script', () => {
    for (const id of ids) {
      expect(keyIds.inode(id)).toBe(keyId(keys.inode(id)));
      for (const name of names) expect(keyIds.dentry(id, name)).toBe(keyId(keys.dentry(id, name)));
    }
  });

  it('refuse ids outside u64 as keys do', () => {
    for (const bad of [-1n, 2n ** 64n]) {
      expect(() => keys.inode(bad)).toThrow(RangeError);
      expect(() => keyIds.inode(bad)).toThrow(RangeError);
    }
  });
});
