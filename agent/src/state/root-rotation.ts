import { ClgwError } from '@clgw/core/errors.js';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import type { Logger } from '@clgw/core/platform/log.js';
import {
  rotationIsMoot,
  SignedRotationSchema,
  type VerifiedRotation,
  verifyRootRotation,
} from '@clgw/core/release/root-rotation.js';
import { parseTrustedRoots } from '@clgw/core/release/signature.js';
import { readSignedRecord } from './signed-record.js';

/**
 * The root rotation this appliance has adopted (`<dataDir>/root-rotation.json`, beside revocations.json: no new directory whose own entry would need making durable): the new
 * root's certificate with the old root's signed statement, kept as they came so they are verified
 * again against the image's pinned roots at every reading — the image's root stays the bridge, also
 * after the overlap, and a file on the data partition is not trusted for being there.
 *
 * A stored file that cannot be read, is malformed or does not verify refuses every update
 * (`SIGNATURE_INVALID` naming the file), as a bad revocation list does: ignoring it would, after the
 * overlap, silently trust the retired root again. The vendor keeps the rotation in every envelope,
 * so removing the file (or a factory reset) repairs it at the next check. A stored rotation whose
 * new root the image now pins itself is moot and ignored.
 */

/** The new root's PEM (~2 KiB, at most 16 KiB by schema), a statement and a signature. */
const MAX_STORED_BYTES = 32 * 1024;

/** Reads and verifies the stored rotation; undefined when there is none (or it is moot). */
export async function readStoredRotation(
  file: string,
  trustedRootsPem: string,
  now: number,
): Promise<VerifiedRotation | undefined> {
  const refuse = (why: string, cause?: unknown): ClgwError =>
    new ClgwError(
      'SIGNATURE_INVALID',
      `the stored root rotation ${file} ${why}; updates are refused until it is repaired, since forgetting it could trust the retired release root again (removing it lets the next check store the vendor's rotation)`,
      { cause, details: { file } },
    );
  const stored = await readSignedRecord(file, MAX_STORED_BYTES, SignedRotationSchema, refuse);
  if (!stored) return undefined;
  const roots = parseTrustedRoots(trustedRootsPem);
  if (rotationIsMoot(stored, roots)) return undefined;
  try {
    return verifyRootRotation(stored, roots, now, 'the rotation');
  } catch (e) {
    throw refuse(`does not verify (${(e as Error).message})`, e);
  }
}

/**
 * The rotation that applies: the stored one, or — when none is stored — the one an envelope
 * carried (already verified), written atomically to `file` before it is returned (persist before
 * acting) and logged. A different rotation offered while one is stored is ignored with a warning:
 * one rotation per image root (README.md "Root rotation"). Throws as {@link readStoredRotation}.
 */
export async function adoptRotation(
  deps: { log: Logger },
  file: string,
  trustedRootsPem: string,
  offered: VerifiedRotation | undefined,
  now: number,
): Promise<VerifiedRotation | undefined> {
  const stored = await readStoredRotation(file, trustedRootsPem, now);
  if (stored) {
    if (offered && offered.newRoot.fingerprint256 !== stored.newRoot.fingerprint256)
      deps.log.warn('a different root rotation was offered; keeping the adopted one', {
        adopted: stored.statement.newRoot,
        offered: offered.statement.newRoot,
        file,
      });
    return stored;
  }
  if (!offered) return undefined;
  await writeJsonAtomic(file, offered.signed);
  deps.log.info('release root rotation adopted', {
    newRoot: offered.newRoot.subject.split('\n').join(', '),
    sha256: offered.statement.newRoot,
    vouchedBy: offered.oldRoot.subject.split('\n').join(', '),
    overlapUntil: offered.statement.overlapUntil,
    file,
  });
  return offered;
}
