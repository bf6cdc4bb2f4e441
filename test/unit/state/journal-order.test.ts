import { describe, expect, it } from 'vitest';
import { inOrder } from '../../../agent/src/state/journal-file.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('journal writes in order', () => {
  it('starts a write only once the one before has ended, so the last value is the one left', async () => {
    const events: string[] = [];
    let disk = '';
    // The first write is the slow one: unordered, it would land last and leave 'idle' behind.
    const write = inOrder(async (state: string) => {
      events.push(`start ${state}`);
      await tick(state === 'idle' ? 30 : 1);
      disk = state;
      events.push(`end ${state}`);
    });
    await Promise.all([write('idle'), write('checking')]);
    expect(disk).toBe('checking');
    expect(events).toEqual(['start idle', 'end idle', 'start checking', 'end checking']);
  });

  it('goes on after a failed write; the failure reaches only its own caller', async () => {
    const written: string[] = [];
    const write = inOrder(async (state: string) => {
      if (state === 'bad') throw new Error('disk full');
      written.push(state);
    });
    const results = await Promise.allSettled([write('bad'), write('idle')]);
    expect(results[0]).toMatchObject({ status: 'rejected', reason: { message: 'disk full' } });
    expect(results[1]).toMatchObject({ status: 'fulfilled' });
    expect(written).toEqual(['idle']);
  });
});
