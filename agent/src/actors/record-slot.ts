import { ClgwError } from '@clgw/core/errors.js';
import type { Deps } from '../deps.js';
import type { Journal } from '../machine/journal.js';
import { writeSlotRecord } from '../slot/status.js';

/** Records what the target slot now holds (slot status), once its content is verified. */
export async function recordSlot(deps: Deps, journal: Journal): Promise<void> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'installing without a target release in the journal');
  await writeSlotRecord(deps.paths.slotStatus, target.slot, {
    version: target.version,
    bootSha256: target.artifacts.boot.sha256,
    rootSha256: target.artifacts.root.sha256,
    bootSize: target.artifacts.boot.size,
    rootSize: target.artifacts.root.size,
    installedAt: new Date(deps.clock.now()).toISOString(),
  });
  deps.progress.clear();
}
