import { ManualClock } from '@clgw/core/platform/clock.js';
import { mbitToBytesPerSecond, RateBudget } from '@clgw/core/platform/rate-budget.js';
import { describe, expect, it } from 'vitest';
import { holdToBudget } from '../../../agent/src/actors/download-resume.js';

describe('RateBudget', () => {
  it('holds bytes beyond its rate; after a pause, a burst of burstMs worth goes at once', () => {
    const clock = new ManualClock(1_000_000);
    const budget = new RateBudget(clock, 1000, 100); // 1000 bytes/s: 100 bytes of burst
    expect(budget.delay(100)).toBe(100);
    clock.advance(1000);
    expect(budget.delay(100)).toBe(0);
    expect(budget.delay(500)).toBe(500);
  });

  it('holds nothing while off, and starts afresh when turned on again', () => {
    const clock = new ManualClock(1_000_000);
    const budget = new RateBudget(clock, 1000, 0);
    budget.holds(false);
    expect(budget.delay(1_000_000)).toBe(0);
    budget.holds(true);
    // Not the million bytes taken while off: the booking starts now.
    expect(budget.delay(1000)).toBe(1000);
  });

  it('Mbit/s are 10^6 bits', () => {
    expect(mbitToBytesPerSecond(40)).toBe(5_000_000);
  });
});

describe('holdToBudget: the window may be let go, nothing else', () => {
  const run = (trigger: 'boot' | 'window' | 'user', downloadBudgetInWindow: boolean) => {
    const clock = new ManualClock(0);
    const budget = new RateBudget(clock, 1000, 0);
    holdToBudget({ config: { downloadBudgetInWindow } as never, downloadBudget: budget }, trigger);
    return budget.delay(1000);
  };
  it.each([
    ['window', false, 0],
    ['window', true, 1000],
    ['boot', false, 1000],
    ['user', false, 1000],
  ] as const)('%s with downloadBudgetInWindow %s: hold %i ms', (trigger, inWindow, hold) => {
    expect(run(trigger, inWindow)).toBe(hold);
  });
});
