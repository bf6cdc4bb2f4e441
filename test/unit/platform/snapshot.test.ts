/** One status build shared by every caller within its interval (agent/src/api/snapshot.ts). */
import { describe, expect, it } from 'vitest';
import { sharedSnapshot } from '../../../agent/src/api/snapshot.js';

describe('shared snapshot', () => {
  it('builds once for simultaneous callers and for callers within the interval, then anew', async () => {
    const clock = { t: 0 };
    let builds = 0;
    const snap = sharedSnapshot(async () => ++builds, { maxAgeMs: 500, now: () => clock.t });
    const answers = await Promise.all(Array.from({ length: 1000 }, () => snap.get()));
    expect(new Set(answers)).toEqual(new Set([1]));
    clock.t = 499;
    expect(await snap.get()).toBe(1);
    clock.t = 1000;
    expect(await snap.get()).toBe(2);
    snap.invalidate();
    expect(await snap.get()).toBe(3);
  });

  it('shares a slow build however long it takes, and does not keep a failure', async () => {
    const clock = { t: 0 };
    let release: () => void = () => undefined;
    let builds = 0;
    let fail = true;
    const snap = sharedSnapshot(
      async () => {
        builds += 1;
        await new Promise<void>((r) => {
          release = r;
        });
        if (fail) throw new Error('agent away');
        return builds;
      },
      { maxAgeMs: 100, now: () => clock.t },
    );
    const first = snap.get();
    clock.t = 10_000; // long past the interval: still the same build under way
    const second = snap.get();
    expect(builds).toBe(1);
    release();
    await expect(first).rejects.toThrow('agent away');
    await expect(second).rejects.toThrow('agent away');
    fail = false;
    const third = snap.get();
    release();
    expect(await third).toBe(2);
  });
});
