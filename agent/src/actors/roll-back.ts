import type { Deps } from '../deps.js';
import { ClgwError } from '../errors.js';
import type { Journal } from '../machine/journal.js';
import { markBad } from '../slot/bootchooser.js';
import { readGrubenv, writeGrubenv } from '../slot/grubenv-file.js';

/** Marks the failed target slot bad (and the source first in ORDER) so the reboot returns to the source. */
export async function rollBack(deps: Deps, journal: Journal): Promise<void> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'rolling back without a target release in the journal');
  const env = await readGrubenv(deps.paths.grubenv);
  await writeGrubenv(deps.paths.grubenv, markBad(env, target.slot));
  deps.log.warn('marked slot bad; rebooting into the previous slot', {
    slot: target.slot,
    to: target.sourceSlot,
  });
}
