import type { Deps } from '../deps.js';
import { ClgwError, isClgwError } from '../errors.js';
import type { ArtifactRef, Journal } from '../machine/journal.js';
import { verifyArtifactOnDevice } from '../slot/install.js';

/** Reads back what was written into the target slot and compares it with compat.yaml's SHA-256. */
export async function verifyRelease(deps: Deps, journal: Journal, signal: AbortSignal): Promise<void> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'verifying without a target release in the journal');
  const { boot, root } = target.artifacts;
  deps.progress.start(`verifying ${target.version}`, boot.size + root.size);
  await verifyArtifact(deps.paths.partition('boot', target.slot), boot, signal);
  deps.progress.update(boot.size);
  await verifyArtifact(deps.paths.partition('root', target.slot), root, signal);
  deps.progress.update(boot.size + root.size);
  deps.log.info('slot verified by read-back', { slot: target.slot, version: target.version });
}

/**
 * The streaming download checked the artifact's SHA-256 in flight, an adaptive install only each
 * chunk against the chunk index: here a wrong index is caught. The next attempt finds the artifact
 * "complete" with the wrong bytes, and downloads it whole (actors/download.ts).
 */
async function verifyArtifact(device: string, artifact: ArtifactRef, signal: AbortSignal): Promise<void> {
  try {
    await verifyArtifactOnDevice(device, artifact.size, artifact.sha256, signal);
  } catch (e) {
    if (!(isClgwError(e) && e.code === 'READBACK_MISMATCH' && artifact.index)) throw e;
    throw new ClgwError(
      'READBACK_MISMATCH',
      `${e.message}; if it was assembled from its chunk index ${artifact.index.path}, that index does not describe ${artifact.path}: the next attempt downloads ${artifact.path} whole`,
      { cause: e, details: { ...e.details, index: artifact.index.path } },
    );
  }
}
