import { ClgwError } from '@clgw/core/errors.js';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import type { Logger } from '@clgw/core/platform/log.js';
import {
  MAX_REVOCATION_LIST_BYTES,
  newerRevocations,
  SignedRevocationsSchema,
  type VerifiedRevocations,
  verifyRevocations,
} from '@clgw/core/release/revocation.js';
import { parseTrustedRoots } from '@clgw/core/release/signature.js';
import { readSignedRecord } from './signed-record.js';

/**
 * The revocation list this appliance holds (`<dataDir>/revocations.json`): the highest-numbered
 * root-signed list it has seen, kept as the list's bytes and signature so it is verified again at
 * every reading — a file on the data partition is not trusted for being there.
 *
 * A stored file that cannot be read, is malformed or does not verify against the pinned roots
 * refuses every update (`SIGNATURE_INVALID` naming the file). Ignoring it would be simpler, but
 * would silently trust again every certificate it revoked — the one thing a revocation must never
 * do. The vendor embeds its current list in every envelope, so removing the file (or a factory
 * reset, which erases the data partition) repairs it at the next check.
 */

/** The stored file holds one signed list in base64 and a little JSON around it. */
const MAX_STORED_BYTES = 2 * MAX_REVOCATION_LIST_BYTES + 4096;

/** Reads and verifies the stored list; undefined when there is none yet. */
export async function readStoredRevocations(
  file: string,
  trustedRootsPem: string,
): Promise<VerifiedRevocations | undefined> {
  const refuse = (why: string, cause?: unknown): ClgwError =>
    new ClgwError(
      'SIGNATURE_INVALID',
      `the stored revocation list ${file} ${why}; updates are refused until it is repaired, since forgetting it would trust revoked certificates again (removing it lets the next check store the vendor's current list)`,
      { cause, details: { file } },
    );
  const stored = await readSignedRecord(file, MAX_STORED_BYTES, SignedRevocationsSchema, refuse);
  if (!stored) return undefined;
  try {
    return verifyRevocations(stored, parseTrustedRoots(trustedRootsPem), 'the list');
  } catch (e) {
    throw refuse(`does not verify (${(e as Error).message})`, e);
  }
}

/**
 * The list that applies now, given the one an envelope carried (already verified): a higher number
 * than the stored list's is written atomically to `file` before it is returned — persist before
 * acting — and logged; a lower or equal one is ignored. Throws as {@link readStoredRevocations}.
 */
export async function adoptRevocations(
  deps: { log: Logger },
  file: string,
  trustedRootsPem: string,
  offered: VerifiedRevocations | undefined,
): Promise<VerifiedRevocations | undefined> {
  const stored = await readStoredRevocations(file, trustedRootsPem);
  const { effective, adopt } = newerRevocations(stored, offered);
  if (adopt && effective) {
    await writeJsonAtomic(file, effective.signed);
    deps.log.info('revocation list adopted', {
      number: effective.list.number,
      ...(stored ? { previous: stored.list.number } : {}),
      serials: effective.list.serials.length,
      issued: effective.list.issued,
      file,
    });
  } else if (offered && stored && offered.list.number < stored.list.number) {
    // An envelope carrying an older list is a replay or a stale mirror: worth a line, not a refusal.
    deps.log.warn('older revocation list ignored', {
      offered: offered.list.number,
      stored: stored.list.number,
    });
  }
  return effective;
}
