import { ClgwError, isClgwError, serializeError } from '@clgw/core/errors.js';
import type { PartitionKind } from '@clgw/core/platform/paths.js';
import { type VerifyOptions, verifyArtifactOnDevice } from '@clgw/core/slot/read-back.js';
import type { Deps } from '../deps.js';
import type { ArtifactRef, Journal } from '../machine/journal.js';

/**
 * Reads back what was written into the target slot and compares it with compat.yaml's SHA-256,
 * for each artifact the download did not already read back whole and matching (`written.readBack`:
 * the slot read behind the writes, read-back.ts; nothing writes the slot in between): one whose
 * read-back did not match — a server's other bytes, a disk that did not keep them, or a chunk
 * index that lies, which the adaptive install's per-chunk checks cannot see —, one written with
 * its SHA-256 checked in flight, or one whose mark an interrupted download did not leave. A
 * mismatch in an artifact whose download did not check its SHA-256 in flight fails with
 * READBACK_MISMATCH and `details.downloadAgain`: the update machine then downloads that artifact
 * again, whole and checked as it arrives, which tells a server sending other bytes (HASH_MISMATCH,
 * naming its URL) from a disk that does not keep them (READBACK_MISMATCH again, now final).
 */
export async function verifyRelease(deps: Deps, journal: Journal, signal: AbortSignal): Promise<void> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'verifying without a target release in the journal');
  const { boot, root } = target.artifacts;
  const checked = journal.written?.checkInFlight ?? [];
  const readBack = journal.written?.readBack ?? [];
  const artifacts = [
    ['boot', boot],
    ['root', root],
  ] as const;
  const toRead = artifacts.filter(([kind]) => !readBack.includes(kind));
  // Those read back already count as done from the start.
  let before = boot.size + root.size - toRead.reduce((sum, [, a]) => sum + a.size, 0);
  deps.progress.start(`verifying ${target.version}`, boot.size + root.size, before);
  // Its bytes as they are read back: told only per artifact, the percentage would stand at the
  // boot artifact's share (~12 %) while the root artifact, most of the phase, is read.
  for (const [kind, artifact] of toRead) {
    const base = before;
    await verifyArtifact(deps, kind, deps.paths.partition(kind, target.slot), artifact, checked, {
      signal,
      onProgress: (read) => deps.progress.update(base + read),
    });
    before += artifact.size;
  }
  deps.log.info('slot verified by read-back', {
    slot: target.slot,
    version: target.version,
    ...(readBack.length ? { readBackByDownload: readBack } : {}),
  });
}

async function verifyArtifact(
  deps: Deps,
  kind: PartitionKind,
  device: string,
  artifact: ArtifactRef,
  checkedInFlight: readonly PartitionKind[],
  opts: VerifyOptions,
): Promise<void> {
  try {
    await verifyArtifactOnDevice(device, artifact.size, artifact.sha256, opts);
  } catch (e) {
    if (!(isClgwError(e) && e.code === 'READBACK_MISMATCH')) throw e;
    if (checkedInFlight.includes(kind)) {
      throw new ClgwError(
        'READBACK_MISMATCH',
        `${e.message}: ${artifact.path} matched its SHA-256 as it was downloaded, so ${device} did not keep what was written`,
        { cause: e, details: { ...e.details, artifact: kind } },
      );
    }
    // An adaptive install checked each chunk only: a wrong chunk index shows here first.
    const index = artifact.index ? `, or its chunk index ${artifact.index.path} does not describe it` : '';
    const again = new ClgwError(
      'READBACK_MISMATCH',
      `${e.message} (either the server sent other bytes or the disk did not keep them${index}): downloading ${artifact.path} again, whole and checked as it arrives, to tell which`,
      { cause: e, details: { ...e.details, artifact: kind, downloadAgain: kind } },
    );
    deps.log.warn('read-back found the artifact wrong: downloading it again, checked as it arrives', {
      artifact: kind,
      device,
      error: serializeError(again),
    });
    throw again;
  }
}
