import { ClgwError } from '@clgw/core/errors.js';
import { readJsonFile, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import * as z from 'zod';

/**
 * Facts that outlive any single update, kept on the data partition: the highest gateway OS
 * version ever installed (no downgrade, even after a rollback), the highest compat.yaml serial
 * accepted (an older signed document replayed is refused), and releases rolled back here.
 */
const historySchema = z
  .object({
    highestVersion: z.string().optional(),
    lastSerial: z.number().int().nonnegative().optional(),
    rejected: z
      .array(
        z.object({ version: z.string(), at: z.string(), code: z.string(), message: z.string() }).strict(),
      )
      .max(100)
      .default([]),
  })
  .strict();

export type History = z.infer<typeof historySchema>;

export async function readHistory(file: string): Promise<History> {
  const raw = await readJsonFile(file);
  if (raw === undefined) return { rejected: [] };
  const parsed = historySchema.safeParse(raw);
  if (!parsed.success) {
    throw new ClgwError('STATE_INVALID', `${file}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {
      details: { file },
    });
  }
  return parsed.data;
}

export async function updateHistory(file: string, change: (h: History) => History): Promise<History> {
  const next = change(await readHistory(file));
  // Keep only the most recent rejections; the list is for display and for not retrying them.
  next.rejected = next.rejected.slice(-20);
  await writeJsonAtomic(file, next);
  return next;
}
