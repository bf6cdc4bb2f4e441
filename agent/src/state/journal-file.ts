import { ClgwError } from '@clgw/core/errors.js';
import { readJsonFile, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { type Journal, journalSchema } from '../machine/journal.js';

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

/**
 * `write`, one call at a time in the order of the calls. The machine persists on entering a state
 * and does not wait for a write it has left behind (leaving `idle` for `checking` cancels the
 * actor, not the write): two writes under way at once could rename in either order and leave the
 * older journal on disk — `idle` while a check runs. Each write waits for the one before, whichever
 * way that one ended; its own failure reaches only its caller.
 */
export function inOrder<T>(write: (value: T) => Promise<void>): (value: T) => Promise<void> {
  let last: Promise<unknown> = Promise.resolve();
  return (value) => {
    const next = last.then(() => write(value));
    last = next.catch(() => undefined);
    return next;
  };
}
