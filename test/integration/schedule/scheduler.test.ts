/**
 * The update-window scheduler on a simulated clock with its real state file: it runs at the
 * window (spring-forward night included), once per date, skips a window the clock jumped far
 * past, picks up a changed setting, and does nothing when off.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '@clgw/core/platform/clock.js';
import { fileLogger } from '@clgw/core/platform/log.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  describeSchedule,
  readSchedule,
  setSchedule,
  startScheduler,
} from '../../../agent/src/schedule/scheduler.js';

let dir: string;
let file: string;
let stop: (() => void) | undefined;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-schedule-'));
  file = path.join(dir, 'schedule.json');
});

afterEach(async () => {
  stop?.();
  stop = undefined;
  await fs.rm(dir, { recursive: true, force: true });
});

let clock: ManualClock;

/** Waits until the scheduler, done with what the last clock move woke it for, sleeps again. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5000 && clock.waiting() === 0; i++) await new Promise((r) => setTimeout(r, 1));
  if (clock.waiting() === 0) throw new Error('the scheduler did not go back to sleep');
}

/** Moves the clock forward in one-minute steps (as time passes), letting the scheduler run. */
async function pass(ms: number): Promise<void> {
  for (let left = ms; left > 0; left -= 60_000) {
    clock.advance(Math.min(60_000, left));
    await settle();
  }
}

function scheduler(runs: string[]) {
  const log = fileLogger({ file: path.join(dir, 'clgw.log'), clock });
  const s = startScheduler({
    file,
    clock,
    log,
    run: async () => void runs.push(new Date(clock.now()).toISOString()),
  });
  stop = s.stop;
}

describe('update window scheduler', () => {
  it('runs at the window, once per date, across the spring-forward night', async () => {
    await setSchedule(file, { at: '02:30', tz: 'America/New_York', spreadMinutes: 0 });
    clock = new ManualClock(Date.parse('2026-03-07T06:00:00Z')); // 01:00 EST, Saturday
    const runs: string[] = [];
    scheduler(runs);
    await settle();
    await pass(90 * 60_000); // to 07:30Z = 02:30 EST
    expect(runs).toEqual(['2026-03-07T07:30:00.000Z']);
    await pass(23 * 3600_000 + 40 * 60_000); // to Sunday 07:10Z: 02:30 never happened, the jump did
    expect(runs).toEqual(['2026-03-07T07:30:00.000Z', '2026-03-08T07:00:00.000Z']);
    expect((await readSchedule(file)).lastRunDate).toBe('2026-03-08');
  });

  it('a clock set back after the run does not run the window again', async () => {
    await setSchedule(file, { at: '02:00', tz: 'UTC', spreadMinutes: 0 });
    clock = new ManualClock(Date.parse('2026-06-10T01:50:00Z'));
    const runs: string[] = [];
    scheduler(runs);
    await settle();
    await pass(15 * 60_000);
    expect(runs).toHaveLength(1);
    // NTP steps the clock back 30 minutes: before the window again.
    clock.advance(-30 * 60_000);
    await pass(60 * 60_000);
    expect(runs).toHaveLength(1);
  });

  it('skips a window the clock jumped far past (NTP at boot), and runs the next', async () => {
    await setSchedule(file, { at: '02:00', tz: 'UTC', spreadMinutes: 0 });
    clock = new ManualClock(Date.parse('2026-06-10T01:59:00Z'));
    const runs: string[] = [];
    scheduler(runs);
    await settle();
    clock.advance(5 * 3600_000); // one tick later the clock reads 06:59
    await settle();
    await pass(60_000);
    expect(runs).toEqual([]);
    expect(await fs.readFile(path.join(dir, 'clgw.log'), 'utf8')).toContain('update window missed');
    await pass(20 * 3600_000);
    expect(runs).toEqual(['2026-06-11T02:00:00.000Z']);
  });

  it('spreads the start within the configured minutes, the same after a restart', async () => {
    const state = await setSchedule(file, { at: '02:00', tz: 'UTC', spreadMinutes: 30 });
    const now = Date.parse('2026-06-10T00:00:00Z');
    const view = describeSchedule(state, now);
    const start = Date.parse(view.next!.at);
    expect(start).toBeGreaterThanOrEqual(Date.parse('2026-06-10T02:00:00Z'));
    expect(start).toBeLessThan(Date.parse('2026-06-10T02:30:00Z'));
    expect(describeSchedule(await readSchedule(file), now).next!.at).toBe(view.next!.at);
    expect(view.next!.local).toMatch(/^2026-06-10 02:[0-2]\d UTC$/);
  });

  it('does nothing when off, and picks up a window set while it runs', async () => {
    clock = new ManualClock(Date.parse('2026-06-10T00:00:00Z'));
    const runs: string[] = [];
    scheduler(runs);
    await settle();
    await pass(3 * 3600_000);
    expect(runs).toEqual([]);
    await setSchedule(file, { at: '04:00', tz: 'UTC', spreadMinutes: 0 });
    await pass(2 * 3600_000);
    expect(runs).toEqual(['2026-06-10T04:00:00.000Z']);
    await setSchedule(file, { off: true });
    await pass(26 * 3600_000);
    expect(runs).toHaveLength(1);
  });
});
