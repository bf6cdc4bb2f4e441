import type { ClgwError } from '@clgw/core/errors.js';
import { readAtMost } from '@clgw/core/platform/atomic.js';
import type * as z from 'zod';

/**
 * A root-signed record the agent keeps on the data partition (the revocation list, the root
 * rotation) read back before it is verified again: `undefined` when there is none; anything
 * unreadable, too large, not UTF-8 JSON or not of `schema` is `refuse(why)` — the caller's error,
 * which refuses updates rather than forget what the record held.
 */
export async function readSignedRecord<T>(
  file: string,
  maxBytes: number,
  schema: z.ZodType<T>,
  refuse: (why: string, cause?: unknown) => ClgwError,
): Promise<T | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readAtMost(file, maxBytes);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw refuse(`cannot be read (${(e as Error).message})`, e);
  }
  if (bytes.byteLength >= maxBytes) throw refuse(`is larger than ${maxBytes} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw refuse(`is not UTF-8 JSON (${(e as Error).message})`, e);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw refuse(`is malformed (${issue.path.map(String).join('.') || '(file)'}: ${issue.message})`);
  }
  return parsed.data;
}
