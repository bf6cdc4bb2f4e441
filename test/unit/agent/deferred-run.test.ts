/**
 * What the agent runs again once the clock is set, for a check it deferred because the clock was
 * not (CLOCK_NOT_SET): what was asked, as it was asked.
 */
import { describe, expect, it } from 'vitest';
import { deferredRun } from '../../../agent/src/agent.js';

describe('deferredRun', () => {
  it('a boot-time or window run as that run (boot only while the agent updates at boot)', () => {
    expect(deferredRun({ trigger: 'window', install: true }, 'idle', false)).toEqual({
      type: 'automatic',
      trigger: 'window',
    });
    expect(deferredRun({ trigger: 'boot', install: true }, 'idle', true)).toEqual({
      type: 'automatic',
      trigger: 'boot',
    });
    expect(deferredRun({ trigger: 'boot', install: true }, 'idle', false)).toEqual({ type: 'check' });
  });

  it("a technician's check, update (with its --force) or Retry as that", () => {
    expect(deferredRun({ trigger: 'user', install: false }, 'idle', true)).toEqual({ type: 'check' });
    expect(deferredRun({ trigger: 'user', install: true }, 'idle', true)).toEqual({
      type: 'update',
      force: false,
    });
    expect(deferredRun({ trigger: 'user', install: true, force: true }, 'idle', true)).toEqual({
      type: 'update',
      force: true,
    });
    // A Retry whose check was deferred went back to the failed update: Retry again, so a check
    // that fails again goes back to that failure instead of leaving it behind.
    expect(deferredRun({ trigger: 'user', install: true }, 'failed', true)).toEqual({ type: 'retry' });
  });
});
