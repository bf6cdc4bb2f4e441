/**
 * The earliest time this appliance's clock can honestly show, and the check of the clock against
 * it. Without a battery-backed clock (or before NTP has answered) the clock starts at 1970 or at
 * whatever the last shutdown saved; TLS and the signature chain then fail ("certificate not yet
 * valid"), and the error would name them instead of the clock. Pure: no `node:*` imports.
 */
import { ClgwError } from '@clgw/core/errors.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface ClockFloor {
  /** Milliseconds since the epoch. */
  at: number;
  /** What it is, for the message: `2025-10-01, the day this gateway OS's packages were taken`. */
  what: string;
}

/**
 * The floor from the running root's OS patch level (os-release `CLGW_PATCH_LEVEL`, YYYY-MM-DD): the
 * day its Debian packages were taken, so the image was built on or after it and no clock that runs
 * this image can rightly read earlier. Undefined for an image without one (no floor: the check
 * goes on, and a clock that is wrong shows as the TLS or chain error it causes).
 */
export function clockFloor(patchLevel: string | undefined): ClockFloor | undefined {
  if (patchLevel === undefined) return undefined;
  // The date comes from dpkg's log, in the build machine's local time: up to a day ahead of UTC's
  // (UTC+14). A day of slack keeps a freshly built image from deferring its first checks.
  const at = Date.parse(`${patchLevel}T00:00:00Z`) - DAY_MS;
  if (!Number.isFinite(at)) return undefined;
  const day = new Date(at).toISOString().slice(0, 10);
  return {
    at,
    what: `${day}, a day before this gateway OS's packages were taken (CLGW_PATCH_LEVEL ${patchLevel})`,
  };
}

/**
 * `CLOCK_NOT_SET` when `now` is before the floor, naming both; undefined when the clock may be
 * right. Transient: nothing needs changing but time — NTP sets the clock and the next check runs.
 */
export function clockNotSet(now: number, floor: ClockFloor | undefined): ClgwError | undefined {
  if (floor === undefined || now >= floor.at) return undefined;
  const reads = Number.isFinite(now) ? new Date(now).toISOString() : String(now);
  return new ClgwError(
    'CLOCK_NOT_SET',
    `the clock is not set (no NTP yet): update deferred; it reads ${reads}, earlier than ${floor.what}`,
    { transient: true, details: { now: reads, floor: new Date(floor.at).toISOString() } },
  );
}
