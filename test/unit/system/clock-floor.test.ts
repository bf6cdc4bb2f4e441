/**
 * The clock's floor (the running image's OS patch level) and the check against it, which the
 * update check runs before it fetches anything.
 */

import type { ClgwError } from '@clgw/core/errors.js';
import { describe, expect, it } from 'vitest';
import { requireClockSet } from '../../../agent/src/actors/check.js';
import { clockFloor, clockNotSet } from '../../../agent/src/system/clock-floor.js';

// A day before 2025-10-01: dpkg's date is the build machine's local time, up to a day ahead of UTC.
const FLOOR = Date.UTC(2025, 8, 30); // 2025-09-30T00:00:00Z

describe('clockFloor', () => {
  it('is the start (UTC) of the day before the image’s packages were taken', () => {
    expect(clockFloor('2025-10-01')).toEqual({
      at: FLOOR,
      what: "2025-09-30, a day before this gateway OS's packages were taken (CLGW_PATCH_LEVEL 2025-10-01)",
    });
  });

  it('is none for an image without a patch level', () => {
    expect(clockFloor(undefined)).toBeUndefined();
  });
});

describe('clockNotSet', () => {
  const floor = clockFloor('2025-10-01');

  it('refuses a clock before the floor, naming what it reads and the floor', () => {
    for (const now of [0, 12_000, FLOOR - 1]) {
      const e = clockNotSet(now, floor);
      expect(e?.code).toBe('CLOCK_NOT_SET');
      expect(e?.transient).toBe(true);
      expect(e?.message).toBe(
        `the clock is not set (no NTP yet): update deferred; it reads ${new Date(now).toISOString()}, earlier than 2025-09-30, a day before this gateway OS's packages were taken (CLGW_PATCH_LEVEL 2025-10-01)`,
      );
      expect(e?.details).toEqual({ now: new Date(now).toISOString(), floor: '2025-09-30T00:00:00.000Z' });
    }
  });

  it('lets a clock at or after the floor through, and any clock without a floor', () => {
    for (const now of [FLOOR, FLOOR + 1, Date.UTC(2026, 11, 5)])
      expect(clockNotSet(now, floor)).toBeUndefined();
    expect(clockNotSet(0, undefined)).toBeUndefined();
  });
});

describe('requireClockSet', () => {
  it('throws CLOCK_NOT_SET before the floor of the running image', () => {
    let thrown: ClgwError | undefined;
    try {
      requireClockSet(0, '2025-10-01');
    } catch (e) {
      thrown = e as ClgwError;
    }
    expect(thrown?.code).toBe('CLOCK_NOT_SET');
    expect(() => requireClockSet(FLOOR, '2025-10-01')).not.toThrow();
    expect(() => requireClockSet(0, undefined)).not.toThrow();
  });
});
