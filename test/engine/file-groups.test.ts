import { expect, it } from 'vitest';
import { splitEvenly } from '../../src/engine/execution/file-groups.js';

it('splitEvenly: contiguous groups, sizes within one, the larger first (as numpy.array_split)', () => {
  expect(splitEvenly([...Array(10).keys()], 3)).toEqual([[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]);
  expect(splitEvenly(['a', 'b'], 4)).toEqual([['a'], ['b'], [], []]);
  expect(splitEvenly([1, 2, 3], 1)).toEqual([[1, 2, 3]]);
  expect(() => splitEvenly([1], 0)).toThrow(RangeError);
});
