import { describe, expect, it } from 'vitest';
import type { CallWait } from '../../../agent/src/machine/journal.js';
import { callWaitDeadline, describeCallWait } from '../../../agent/src/voice/wait.js';

const at = (iso: string) => Date.parse(iso);
// 02:00 in New York with a 30-minute spread: the window ends 02:30 local (07:30 UTC in winter).
const window = { at: '02:00', tz: 'America/New_York', spreadMinutes: 30 };

describe('callWaitDeadline: the end of the update window plus the grace, else from now', () => {
  it('in the day: the end of the coming night window + 60 min', () => {
    expect(callWaitDeadline({ window }, at('2026-12-07T15:00:00Z'), 60)).toBe(at('2026-12-08T08:30:00Z'));
  });
  it('inside the window (or its hour after): the end of that same window + 60 min', () => {
    expect(callWaitDeadline({ window }, at('2026-12-08T07:05:00Z'), 60)).toBe(at('2026-12-08T08:30:00Z'));
    expect(callWaitDeadline({ window }, at('2026-12-08T08:29:00Z'), 60)).toBe(at('2026-12-08T08:30:00Z'));
  });
  it('just past it: the next night', () => {
    expect(callWaitDeadline({ window }, at('2026-12-08T08:31:00Z'), 60)).toBe(at('2026-12-09T08:30:00Z'));
  });
  it('follows the zone across a DST change (summer: 06:30 UTC)', () => {
    expect(callWaitDeadline({ window }, at('2026-07-01T12:00:00Z'), 60)).toBe(at('2026-07-02T07:30:00Z'));
  });
  it('without a window: that long after now', () => {
    expect(callWaitDeadline({}, at('2026-12-07T15:00:00Z'), 60)).toBe(at('2026-12-07T16:00:00Z'));
    expect(callWaitDeadline({}, at('2026-12-07T15:00:00Z'), 0)).toBe(at('2026-12-07T15:00:00Z'));
  });
});

describe('describeCallWait: the words on tty1, the portal and clgw status', () => {
  const wait = (over: Partial<CallWait>): CallWait => ({
    for: 'update',
    since: '2026-12-08T07:00:00Z',
    deadline: '2026-12-08T09:00:00.000Z',
    active: 2,
    ...over,
  });
  const now = at('2026-12-08T07:10:00Z');
  it('names the calls and the deadline in the site zone', () => {
    expect(describeCallWait(wait({}), now, 'America/New_York')).toBe(
      'Waiting for 2 active calls to end before restarting — at the latest 04:00 EST',
    );
    expect(describeCallWait(wait({ active: 1 }), now)).toBe(
      'Waiting for 1 active call to end before restarting — at the latest 09:00 UTC',
    );
  });
  it('says when the count is unknown, and dates a deadline on another day', () => {
    expect(describeCallWait(wait({ active: null, deadline: '2026-12-09T09:00:00Z' }), now)).toBe(
      'Waiting for the voice service to tell its active calls before restarting — at the latest 2026-12-09 09:00 UTC',
    );
  });
  it('before it is planned: no deadline yet', () => {
    expect(describeCallWait(wait({ deadline: undefined }), now)).toBe(
      'Waiting for 2 active calls to end before restarting',
    );
  });
});
