/**
 * partialSql's `{0}`, `{1}`, ... placeholders: one per input DataFrame, replaced in each task
 * by a name bound to that input's partition (a CTE of each statement: withInputs in
 * execution/relations.ts). Only `{<digits>}` is a placeholder, so struct literals like
 * `{'a': 1}` pass through.
 */
import { MillpondError } from '../../errors.js';

const kPlaceholder = /\{(\d+)\}/g;

/** Throws EINVAL naming the placeholder when one refers past the inputs. */
export function checkPlaceholders(sql: string, inputCount: number): void {
  for (const m of sql.matchAll(kPlaceholder)) {
    const index = Number(m[1]);
    if (index >= inputCount) {
      throw new MillpondError('EINVAL',
        `placeholder {${index}} in SQL refers to input ${index}, but ${inputCount} input${inputCount === 1 ? ' was' : 's were'} given ({0}..{${inputCount - 1}}): ${sql}`);
    }
  }
}

export function inputName(index: number): string {
  return `__mp_input_${index}`;
}

export function substitutePlaceholders(sql: string): string {
  return sql.replace(kPlaceholder, (_all, digits: string) => inputName(Number(digits)));
}
