import { createHash } from 'node:crypto';

/**
 * Staged rollout: which appliances a release with `rollout: { percent, salt }` is offered to.
 *
 * Each appliance hashes the release's salt with its own ID into a bucket from 0 to 9999 (basis
 * points) and takes the release when the bucket is below the percentage in basis points. Nothing
 * but the ID and the signed compat.yaml goes in, so a static mirror is enough: no server logic, no
 * list of appliances. The decision is a threshold on a fixed bucket, so for one salt a box that is
 * in at some percentage stays in at every higher one — raising the percentage only brings boxes
 * in, never flips one out and back. A new salt draws new cohorts (the first 10 % of one release
 * need not be the first 10 % of the next).
 *
 * Not marked pure: it hashes with Node's SHA-256 (node:crypto), like signature.ts. It does no I/O
 * and is deterministic.
 */

/** Buckets per appliance population: basis points, so a percentage may have two decimals. */
export const ROLLOUT_BUCKETS = 10_000;

/**
 * The appliance's bucket for `salt`: the first 8 bytes of SHA-256(salt + "\n" + id), read as an
 * unsigned big-endian integer, modulo 10000. 2^64 is no multiple of 10000, but the bias that leaves
 * is below 10^-15 per bucket.
 */
export function rolloutBucket(salt: string, applianceId: string): number {
  const digest = createHash('sha256').update(`${salt}\n${applianceId}`, 'utf8').digest();
  return Number(digest.readBigUInt64BE(0) % BigInt(ROLLOUT_BUCKETS));
}

/** A percentage (0 … 100, two decimals) in basis points, rounded against float noise (10.15 → 1015). */
export function rolloutBasisPoints(percent: number): number {
  return Math.round(percent * 100);
}

/** True when an appliance in `bucket` is offered a release rolled out to `percent` %. */
export function inRollout(bucket: number, percent: number): boolean {
  return bucket < rolloutBasisPoints(percent);
}
