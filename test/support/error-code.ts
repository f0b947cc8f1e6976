// What a call ends with, for tests that compare outcomes: the MillpondError's code, or `onSuccess`
// when it resolves. Any other error is rethrown (a bug, not an outcome).
import { MillpondError } from '../../src/errors.js';

export async function errorCode(p: Promise<unknown>, onSuccess: string): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof MillpondError) return err.code;
    throw err;
  }
  return onSuccess;
}
