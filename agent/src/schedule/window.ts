/**
 * The update window (SPEC §3): a local time of day in an IANA time zone, e.g. 02:00 in
 * America/New_York. Pure: the zone rules come from the runtime's Intl data (ICU), time is an input.
 *
 * Rules where the wall clock is odd:
 * - a time the zone skips (spring forward: 02:30 in New York on the second Sunday of March) runs
 *   at the first instant after the gap (03:00 local, the moment the clocks jump);
 * - a time the zone repeats (fall back: 01:30 happens twice) runs once, at the first;
 * - zones with 30/45-minute offsets or DST shifts (Kolkata, Kathmandu, Chatham, Lord Howe) need
 *   nothing special: every offset is read from the zone data at the instant in question.
 */
import { createHash } from 'node:crypto';
import { ClgwError } from '@clgw/core/errors.js';

export interface WindowSetting {
  /** `HH:MM`, 24-hour, local to `tz`. */
  at: string;
  /** IANA time zone, e.g. `America/New_York`. */
  tz: string;
  /** Minutes over which a fleet spreads its start (0: none). */
  spreadMinutes: number;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** `HH:MM` → minutes since midnight; undefined when it is not a time of day. */
export function parseTimeOfDay(at: string): number | undefined {
  const m = /^([01][0-9]|2[0-3]):([0-5][0-9])$/.exec(at);
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

/** True when the runtime knows the zone (IANA names only; `EST5EDT`-style legacy names too). */
export function isTimeZone(tz: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/.test(tz)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** SETTING_INVALID naming the field, or the setting. */
export function validateWindow(input: {
  at?: unknown;
  tz?: unknown;
  spreadMinutes?: unknown;
}): WindowSetting {
  const bad = (field: string, message: string) =>
    new ClgwError('SETTING_INVALID', `update window ${field} ${message}`, { details: { field } });
  if (typeof input.at !== 'string' || parseTimeOfDay(input.at) === undefined)
    throw bad('time', `must be HH:MM on a 24-hour clock (got ${JSON.stringify(input.at)})`);
  if (typeof input.tz !== 'string' || !isTimeZone(input.tz))
    throw bad(
      'time zone',
      `must be an IANA time zone such as America/New_York (got ${JSON.stringify(input.tz)})`,
    );
  const spread = input.spreadMinutes ?? 30;
  if (typeof spread !== 'number' || !Number.isInteger(spread) || spread < 0 || spread > 180)
    throw bad(
      'spread',
      `must be a whole number of minutes from 0 to 180 (got ${JSON.stringify(input.spreadMinutes)})`,
    );
  return { at: input.at, tz: input.tz, spreadMinutes: spread };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The zone's wall clock at instant `t`, as if it were UTC (ms), i.e. t + offset(t). */
function wallClock(tz: string, t: number): number {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(t)))
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!) + (t % 1000);
}

/** `2026-06-10 02:14 EDT`: the wall clock at `t` in `tz`, for people. */
export function formatLocal(tz: string, t: number): string {
  const zone =
    new Intl.DateTimeFormat('en-US', { timeZone: tz, timeZoneName: 'short' })
      .formatToParts(new Date(t))
      .find((p) => p.type === 'timeZoneName')?.value ?? tz;
  return `${new Date(wallClock(tz, t)).toISOString().slice(0, 16).replace('T', ' ')} ${zone}`;
}

/** The local calendar date (`YYYY-MM-DD`) at instant `t` in `tz`. */
export function localDate(tz: string, t: number): string {
  return new Date(wallClock(tz, t)).toISOString().slice(0, 10);
}

/**
 * The first instant at which the zone's wall clock reads `minutes` past midnight on `date`
 * (UTC-midnight ms of that calendar date), or — when the zone skips that time — the instant
 * the clocks jump past it.
 */
function firstInstant(tz: string, date: number, minutes: number): number {
  const naive = date + minutes * MINUTE;
  // The offsets a day either side bound every transition near this time.
  const offsets = [naive - DAY, naive + DAY].map((t) => wallClock(tz, t) - t);
  const exact = offsets.map((o) => naive - o).filter((t) => wallClock(tz, t) === naive);
  if (exact.length > 0) return Math.min(...exact);
  // In a gap: the wall clock jumps from before `naive` to after it; find the jump to the minute.
  let lo = Math.min(...offsets.map((o) => naive - o));
  let hi = Math.max(...offsets.map((o) => naive - o));
  while (hi - lo > MINUTE) {
    const mid = lo + Math.floor((hi - lo) / 2 / MINUTE) * MINUTE;
    if (wallClock(tz, mid) >= naive) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * The next window strictly after `now` (ms), skipping a local date on which the window already
 * ran (`lastRunDate`, `YYYY-MM-DD` in the zone): a clock set back, or the repeated hour of a
 * fall-back night, never runs it twice. Returns the window's start and its local date; the
 * fleet spread is added by {@link spreadOffset}.
 */
export function nextWindow(
  w: WindowSetting,
  now: number,
  lastRunDate?: string,
): { at: number; date: string } {
  const minutes = parseTimeOfDay(w.at)!;
  const today = Date.parse(`${localDate(w.tz, now)}T00:00:00Z`);
  for (let d = -1; d <= 2; d++) {
    const date = today + d * DAY;
    const at = firstInstant(w.tz, date, minutes);
    const iso = new Date(date).toISOString().slice(0, 10);
    if (at > now && iso !== lastRunDate) return { at, date: iso };
  }
  // Unreachable: one of four consecutive days always has a window after now.
  throw new ClgwError('INTERNAL', `no update window found after ${new Date(now).toISOString()} in ${w.tz}`);
}

/**
 * Where in the spread this appliance starts on a given date: fixed per appliance and date (a
 * restart does not move it), different across a fleet, in [0, spread).
 */
export function spreadOffset(seed: string, date: string, spreadMinutes: number): number {
  if (spreadMinutes <= 0) return 0;
  const h = createHash('sha256').update(`${seed}/${date}`).digest();
  return (h.readUInt32BE(0) % (spreadMinutes * 60)) * 1000;
}
