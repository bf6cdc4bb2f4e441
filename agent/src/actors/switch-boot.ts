import { ClgwError } from '@clgw/core/errors.js';
import { crashpoint } from '@clgw/core/platform/crashpoint.js';
import { switchTo } from '@clgw/core/slot/bootchooser.js';
import { readGrubenv, writeGrubenv } from '@clgw/core/slot/grubenv-file.js';
import type { Deps } from '../deps.js';
import type { Journal } from '../machine/journal.js';

/**
 * The critical phase: makes the target slot the first choice of the bootloader (one atomic
 * grubenv write). The journal marks its start before and its end after this runs.
 */
export async function switchBoot(deps: Deps, journal: Journal): Promise<void> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'switching without a target release in the journal');
  deps.log.info('critical phase: switching the boot environment', {
    slot: target.slot,
    version: target.version,
  });
  const env = await readGrubenv(deps.paths.grubenv);
  // The journal says the phase has begun; the boot environment is not switched yet.
  crashpoint('critical phase entered');
  await writeGrubenv(deps.paths.grubenv, switchTo(env, target.slot));
}
