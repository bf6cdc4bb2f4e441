import { ClgwError } from '@clgw/core/errors.js';
import { markBad } from '@clgw/core/slot/bootchooser.js';
import { readGrubenv, writeGrubenv } from '@clgw/core/slot/grubenv-file.js';
import type { Deps } from '../deps.js';
import type { Journal } from '../machine/journal.js';

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
