import type { Deps } from '../deps.js';
import { ClgwError } from '../errors.js';
import type { Journal } from '../machine/journal.js';
import { verifyArtifactOnDevice } from '../slot/install.js';

/** Reads back what was written into the target slot and compares it with compat.yaml's SHA-256. */
export async function verifyRelease(deps: Deps, journal: Journal, signal: AbortSignal): Promise<void> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'verifying without a target release in the journal');
  const { boot, root } = target.artifacts;
  deps.progress.start(`verifying ${target.version}`, boot.size + root.size);
  await verifyArtifactOnDevice(deps.paths.partition('boot', target.slot), boot.size, boot.sha256, signal);
  deps.progress.update(boot.size);
  await verifyArtifactOnDevice(deps.paths.partition('root', target.slot), root.size, root.sha256, signal);
  deps.progress.update(boot.size + root.size);
  deps.log.info('slot verified by read-back', { slot: target.slot, version: target.version });
}
