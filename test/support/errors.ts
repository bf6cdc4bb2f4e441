/** What a call refused with, for tests that look at the error's code, message and details. */
import type { ClgwError } from '@clgw/core/errors.js';

/** The error `f` throws; fails when it returns. */
export function thrown(f: () => unknown): ClgwError {
  try {
    f();
  } catch (e) {
    return e as ClgwError;
  }
  throw new Error('no error was thrown');
}

/** The error `p` rejects with; fails when it resolves. */
export async function rejected(p: Promise<unknown>): Promise<ClgwError> {
  try {
    await p;
  } catch (e) {
    return e as ClgwError;
  }
  throw new Error('the promise resolved');
}
