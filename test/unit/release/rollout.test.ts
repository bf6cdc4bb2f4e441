/**
 * The staged rollout's bucket function: which appliances a release with `rollout: { percent, salt }`
 * is offered to. Table tests over random appliance IDs made the way the agent makes them.
 */
import { randomBytes } from 'node:crypto';
import { inRollout, ROLLOUT_BUCKETS, rolloutBasisPoints, rolloutBucket } from '@clgw/core/release/rollout.js';
import { APPLIANCE_ID_LENGTH, applianceIdFrom } from '@clgw/core/ssh/principal.js';
import { describe, expect, it } from 'vitest';

const ids = (n: number): string[] =>
  Array.from({ length: n }, () => applianceIdFrom(randomBytes(APPLIANCE_ID_LENGTH)));
const offered = (list: string[], salt: string, percent: number): number =>
  list.filter((id) => inRollout(rolloutBucket(salt, id), percent)).length;

describe('rolloutBucket', () => {
  it('is SHA-256(salt + "\\n" + id), first 8 bytes big-endian, modulo 10000', () => {
    // `printf '1.4.0\n0123456789ab' | sha256sum` starts c5b93df9c8d3a565: that mod 10000 is 9429.
    expect(rolloutBucket('1.4.0', '0123456789ab')).toBe(9429);
  });

  it('is stable: the same ID and salt always give the same bucket, within 0 … 9999', () => {
    for (const id of ids(200)) {
      const bucket = rolloutBucket('salt-a', id);
      expect(rolloutBucket('salt-a', id)).toBe(bucket);
      expect(Number.isInteger(bucket) && bucket >= 0 && bucket < ROLLOUT_BUCKETS).toBe(true);
    }
  });

  it.each([10, 50, 90])('offers %d %% of 10,000 random appliances the release, within ±2 %%', (percent) => {
    const share = offered(ids(10_000), 'uniform', percent) / 100;
    expect(Math.abs(share - percent)).toBeLessThanOrEqual(2);
  });

  it('draws other cohorts under another salt', () => {
    const list = ids(10_000);
    const a = new Set(list.filter((id) => inRollout(rolloutBucket('1.4.0', id), 50)));
    const b = new Set(list.filter((id) => inRollout(rolloutBucket('1.4.0-second', id), 50)));
    // Independent cohorts of half each: about half of the IDs change sides.
    const flipped = list.filter((id) => a.has(id) !== b.has(id)).length;
    expect(flipped).toBeGreaterThan(4_000);
    expect(flipped).toBeLessThan(6_000);
  });

  it('offers nobody at 0 % and everybody at 100 %', () => {
    const list = ids(2_000);
    expect(offered(list, 'edges', 0)).toBe(0);
    expect(offered(list, 'edges', 100)).toBe(list.length);
    // The extreme buckets themselves.
    expect(inRollout(0, 0)).toBe(false);
    expect(inRollout(ROLLOUT_BUCKETS - 1, 100)).toBe(true);
  });

  it('never takes a release back from a box as the percentage rises (same salt): no flip-flop', () => {
    const percents = [0, 0.01, 1, 5, 10, 10.5, 25, 50, 75, 99.99, 100];
    for (const id of ids(2_000)) {
      const decisions = percents.map((p) => inRollout(rolloutBucket('monotone', id), p));
      // Once in, in at every higher percentage: the decisions are false… then true….
      const firstIn = decisions.indexOf(true);
      expect(decisions.slice(firstIn)).not.toContain(false);
    }
  });
});

describe('rolloutBasisPoints', () => {
  it.each([
    [0, 0],
    [0.01, 1],
    [10, 1000],
    [10.15, 1015],
    [12.5, 1250],
    [33.33, 3333],
    [100, 10_000],
  ])('%d %% is %d basis points (no float noise)', (percent, points) => {
    expect(rolloutBasisPoints(percent)).toBe(points);
  });
});
