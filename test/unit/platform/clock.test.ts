import { getEventListeners } from 'node:events';
import { ManualClock, systemClock } from '@clgw/core/platform/clock.js';
import { describe, expect, it } from 'vitest';

describe('the clocks', () => {
  it('ManualClock: a sleep that ends takes its listener off the signal', async () => {
    const clock = new ManualClock();
    const signal = new AbortController().signal;
    for (let i = 0; i < 20; i++) {
      const slept = clock.sleep(1000, signal);
      clock.advance(1000);
      await slept;
    }
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('ManualClock: an abort rejects the sleep, which no advance resolves later', async () => {
    const clock = new ManualClock();
    const abort = new AbortController();
    const slept = clock.sleep(1000, abort.signal);
    abort.abort(new Error('stopped'));
    await expect(slept).rejects.toThrow('stopped');
    expect(clock.waiting()).toBe(0);
  });

  it('systemClock: the same for a sleep that ends', async () => {
    const signal = new AbortController().signal;
    for (let i = 0; i < 3; i++) await systemClock.sleep(1, signal);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });
});
