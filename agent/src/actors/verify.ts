import { ClgwError, isClgwError } from '@clgw/core/errors.js';
import { type VerifyOptions, verifyArtifactOnDevice } from '@clgw/core/slot/read-back.js';
import type { Deps } from '../deps.js';
import type { ArtifactRef, Journal } from '../machine/journal.js';

/** Reads back what was written into the target slot and compares it with compat.yaml's SHA-256. */
export async function verifyRelease(deps: Deps, journal: Journal, signal: AbortSignal): Promise<void> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'verifying without a target release in the journal');
  const { boot, root } = target.artifacts;
  deps.progress.start(`verifying ${target.version}`, boot.size + root.size);
  // Its bytes as they are read back: told only per artifact, the percentage would stand at the
  // boot artifact's share (~12 %) while the root artifact, most of the phase, is read.
  await verifyArtifact(deps.paths.partition('boot', target.slot), boot, {
    signal,
    onProgress: (read) => deps.progress.update(read),
  });
  await verifyArtifact(deps.paths.partition('root', target.slot), root, {
    signal,
    onProgress: (read) => deps.progress.update(boot.size + read),
  });
  deps.log.info('slot verified by read-back', { slot: target.slot, version: target.version });
}

/**
 * The streaming download checked the artifact's SHA-256 in flight, an adaptive install only each
 * chunk against the chunk index: here a wrong index is caught. The next attempt finds the artifact
 * "complete" with the wrong bytes, and downloads it whole (actors/download.ts).
 */
async function verifyArtifact(device: string, artifact: ArtifactRef, opts: VerifyOptions): Promise<void> {
  try {
    await verifyArtifactOnDevice(device, artifact.size, artifact.sha256, opts);
  } catch (e) {
    if (!(isClgwError(e) && e.code === 'READBACK_MISMATCH' && artifact.index)) throw e;
    throw new ClgwError(
      'READBACK_MISMATCH',
      `${e.message}; if it was assembled from its chunk index ${artifact.index.path}, that index does not describe ${artifact.path}: the next attempt downloads ${artifact.path} whole`,
      { cause: e, details: { ...e.details, index: artifact.index.path } },
    );
  }
}
