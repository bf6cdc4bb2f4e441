import { ClgwError } from '@clgw/core/errors.js';
import { describe, expect, it } from 'vitest';
import {
  isTimeZone,
  localDate,
  nextWindow,
  parseTimeOfDay,
  spreadOffset,
  validateWindow,
} from '../../../agent/src/schedule/window.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const w = (time: string, tz: string) => ({ at: time, tz, spreadMinutes: 0 });

/** window, now (UTC) → next window start (UTC), local date. */
const table: [string, string, string, string, string, string][] = [
  // name, at, tz, now, expected start, expected local date
  [
    'New York, an ordinary night',
    '02:00',
    'America/New_York',
    '2026-06-10T12:00:00Z',
    '2026-06-11T06:00:00.000Z',
    '2026-06-11',
  ],
  [
    'later the same local day',
    '23:30',
    'America/New_York',
    '2026-06-10T12:00:00Z',
    '2026-06-11T03:30:00.000Z',
    '2026-06-10',
  ],
  [
    'spring forward: 02:30 does not exist → 03:00 EDT',
    '02:30',
    'America/New_York',
    '2026-03-07T12:00:00Z',
    '2026-03-08T07:00:00.000Z',
    '2026-03-08',
  ],
  [
    'spring forward: 02:00 → the jump',
    '02:00',
    'America/New_York',
    '2026-03-08T05:00:00Z',
    '2026-03-08T07:00:00.000Z',
    '2026-03-08',
  ],
  [
    'spring forward: 03:00 is fine',
    '03:00',
    'America/New_York',
    '2026-03-08T05:00:00Z',
    '2026-03-08T07:00:00.000Z',
    '2026-03-08',
  ],
  [
    'the day after spring forward',
    '02:30',
    'America/New_York',
    '2026-03-08T08:00:00Z',
    '2026-03-09T06:30:00.000Z',
    '2026-03-09',
  ],
  [
    'fall back: 01:30 happens twice, the first (EDT)',
    '01:30',
    'America/New_York',
    '2026-10-31T12:00:00Z',
    '2026-11-01T05:30:00.000Z',
    '2026-11-01',
  ],
  [
    'fall back: after the first 01:30, not the second',
    '01:30',
    'America/New_York',
    '2026-11-01T05:31:00Z',
    '2026-11-02T06:30:00.000Z',
    '2026-11-02',
  ],
  [
    'fall back: 02:00 happens once (EST)',
    '02:00',
    'America/New_York',
    '2026-11-01T04:00:00Z',
    '2026-11-01T07:00:00.000Z',
    '2026-11-01',
  ],
  [
    'Kolkata +05:30',
    '02:00',
    'Asia/Kolkata',
    '2026-06-10T00:00:00Z',
    '2026-06-10T20:30:00.000Z',
    '2026-06-11',
  ],
  [
    'Kathmandu +05:45',
    '02:00',
    'Asia/Kathmandu',
    '2026-06-10T00:00:00Z',
    '2026-06-10T20:15:00.000Z',
    '2026-06-11',
  ],
  [
    'Chatham +12:45 (winter)',
    '02:00',
    'Pacific/Chatham',
    '2026-06-10T00:00:00Z',
    '2026-06-10T13:15:00.000Z',
    '2026-06-11',
  ],
  [
    'Chatham +13:45 (summer)',
    '02:00',
    'Pacific/Chatham',
    '2026-01-10T00:00:00Z',
    '2026-01-10T12:15:00.000Z',
    '2026-01-11',
  ],
  [
    'Lord Howe: a 30-minute DST jump skips 02:15',
    '02:15',
    'Australia/Lord_Howe',
    '2026-10-03T10:00:00Z',
    '2026-10-03T15:30:00.000Z',
    '2026-10-04',
  ],
  [
    'Lord Howe: 01:45 repeats in April, the first',
    '01:45',
    'Australia/Lord_Howe',
    '2026-04-04T10:00:00Z',
    '2026-04-04T14:45:00.000Z',
    '2026-04-05',
  ],
  ['UTC', '00:00', 'UTC', '2026-06-10T00:00:00Z', '2026-06-11T00:00:00.000Z', '2026-06-11'],
  [
    'exactly at the window: the next one',
    '02:00',
    'UTC',
    '2026-06-10T02:00:00Z',
    '2026-06-11T02:00:00.000Z',
    '2026-06-11',
  ],
  [
    'New Year across the date line',
    '00:30',
    'Pacific/Kiritimati',
    '2026-12-31T09:00:00Z',
    '2026-12-31T10:30:00.000Z',
    '2027-01-01',
  ],
];

describe('nextWindow', () => {
  it.each(table)('%s', (_name, time, tz, now, start, date) => {
    const next = nextWindow(w(time, tz), at(now));
    expect(iso(next.at)).toBe(start);
    expect(next.date).toBe(date);
    expect(localDate(tz, next.at)).toBe(date);
  });

  it('never runs twice for one local date, even when the clock goes back', () => {
    const setting = w('02:00', 'America/New_York');
    const first = nextWindow(setting, at('2026-06-10T12:00:00Z'));
    // It ran; then NTP set the clock back two hours, before the window again.
    const again = nextWindow(setting, first.at - 2 * 3600_000, first.date);
    expect(again.date).toBe('2026-06-12');
  });
});

describe('the setting', () => {
  it('parses a time of day', () => {
    expect(parseTimeOfDay('02:00')).toBe(120);
    expect(parseTimeOfDay('23:59')).toBe(1439);
    for (const bad of ['24:00', '2:00', '02:60', '02-00', '', 'noon'])
      expect(parseTimeOfDay(bad)).toBeUndefined();
  });

  it('knows IANA zones', () => {
    expect(isTimeZone('America/New_York')).toBe(true);
    expect(isTimeZone('Asia/Kathmandu')).toBe(true);
    expect(isTimeZone('Mars/Olympus_Mons')).toBe(false);
    expect(isTimeZone('../../etc/passwd')).toBe(false);
  });

  it.each([
    [{ at: '25:00', tz: 'UTC' }, 'update window time must be HH:MM'],
    [{ at: '02:00', tz: 'Europe/Nowhere' }, 'update window time zone must be an IANA time zone'],
    [{ at: '02:00', tz: 'UTC', spreadMinutes: -5 }, 'update window spread must be a whole number'],
    [{ at: '02:00', tz: 'UTC', spreadMinutes: 1000 }, 'update window spread'],
  ])('refuses %j', (input, message) => {
    expect(() => validateWindow(input)).toThrow(ClgwError);
    expect(() => validateWindow(input)).toThrow(message);
  });

  it('defaults the spread to 30 minutes', () => {
    expect(validateWindow({ at: '02:00', tz: 'UTC' }).spreadMinutes).toBe(30);
  });
});

describe('spreadOffset', () => {
  it('is fixed per appliance and date, inside the spread, and differs across a fleet', () => {
    expect(spreadOffset('a1', '2026-06-10', 30)).toBe(spreadOffset('a1', '2026-06-10', 30));
    expect(spreadOffset('a1', '2026-06-10', 0)).toBe(0);
    const fleet = Array.from({ length: 200 }, (_, i) => spreadOffset(`box${i}`, '2026-06-10', 30));
    for (const o of fleet) {
      expect(o).toBeGreaterThanOrEqual(0);
      expect(o).toBeLessThan(30 * 60_000);
    }
    expect(new Set(fleet).size).toBeGreaterThan(150);
    expect(Math.max(...fleet) - Math.min(...fleet)).toBeGreaterThan(20 * 60_000);
  });
});
