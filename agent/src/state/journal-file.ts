import { ClgwError } from '../errors.js';
import { type Journal, journalSchema } from '../machine/journal.js';
import { readJsonFile, writeJsonAtomic } from '../platform/atomic.js';

/** Reads the persisted journal; `undefined` on a fresh appliance, STATE_INVALID when unreadable. */
export async function readJournal(file: string): Promise<Journal | undefined> {
  const raw = await readJsonFile(file);
  if (raw === undefined) return undefined;
  const parsed = journalSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ClgwError(
      'STATE_INVALID',
      `update journal ${file}: ${issue?.path.join('.')}: ${issue?.message}`,
      {
        details: { file },
      },
    );
  }
  return parsed.data as Journal;
}

export async function writeJournal(file: string, journal: Journal): Promise<void> {
  // Drop undefined fields so the file stays small and readable.
  await writeJsonAtomic(file, JSON.parse(JSON.stringify(journal)));
}
