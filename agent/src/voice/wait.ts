import { promises as fs } from 'node:fs';
import { configPath } from '@clgw/core/config.js';
import { ClgwError } from '@clgw/core/errors.js';
import type { Deps } from '../deps.js';
import type { CallWait, Journal } from '../machine/journal.js';
import type { CallWaitEnd, CallWaitPlan } from '../machine/update.machine.js';
import { readSchedule, type ScheduleState } from '../schedule/scheduler.js';
import { formatLocal, nextWindow } from '../schedule/window.js';
import { activeCalls } from './esl.js';

const MINUTE = 60_000;

/**
 * When a wait for calls that begins at `now` ends whatever the calls: `afterMinutes` after the end
 * of the update window (its start plus the fleet spread) that is open at `now`, else of the next
 * one — so a wait begun in the day lasts at most until the night's window is over; without a
 * window, `afterMinutes` after `now`.
 */
export function callWaitDeadline(
  schedule: Pick<ScheduleState, 'window'>,
  now: number,
  afterMinutes: number,
): number {
  const w = schedule.window;
  if (!w) return now + afterMinutes * MINUTE;
  const span = (w.spreadMinutes + afterMinutes) * MINUTE;
  // The first window to start after `now - span` is the one still open at `now`, if any; else
  // the next to come.
  return nextWindow(w, now - span).at + span;
}

/** `04:00 EST`, or `2026-06-11 04:00 EST` when not on `now`'s local date. */
function localTime(tz: string, at: number, now: number): string {
  const when = formatLocal(tz, at);
  return when.slice(0, 10) === formatLocal(tz, now).slice(0, 10) ? when.slice(11) : when;
}

/**
 * The wait in words, for tty1, the portal and `clgw status`: "Waiting for 2 active calls to end
 * before restarting — at the latest 04:00 EST". The deadline is told in the update window's zone
 * (the site's), else in UTC.
 */
export function describeCallWait(calls: CallWait, now: number, tz = 'UTC'): string {
  const what =
    calls.active === null
      ? 'Waiting for the voice service to tell its active calls'
      : `Waiting for ${calls.active} active call${calls.active === 1 ? '' : 's'} to end`;
  const deadline = calls.deadline ? ` — at the latest ${localTime(tz, Date.parse(calls.deadline), now)}` : '';
  return `${what} before restarting${deadline}`;
}

/** The wait's plan from the configuration and the update window; null without a voice service. */
export async function planCallWait(
  deps: Pick<Deps, 'config' | 'paths' | 'clock'>,
): Promise<CallWaitPlan | null> {
  const voice = deps.config.voice;
  if (!voice) return null;
  const schedule = await readSchedule(deps.paths.schedule);
  const deadline = callWaitDeadline(schedule, deps.clock.now(), voice.deadlineAfterWindowMinutes);
  return { deadline: new Date(deadline).toISOString(), unknownGraceMs: voice.unknownGraceMs };
}

/** Asks the voice service how many calls are up (VOICE_* when it cannot tell). */
export async function countCalls(
  deps: Pick<Deps, 'config' | 'paths' | 'clock'>,
  signal: AbortSignal,
): Promise<number> {
  const voice = deps.config.voice;
  if (!voice) throw new ClgwError('CONFIG_INVALID', 'no voice service is configured (agent.json voice)');
  const file = configPath(deps.paths, voice.passwordFile);
  const password = await fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new ClgwError(
      'CONFIG_INVALID',
      `cannot read the voice service's password file ${file}: ${e.code ?? e.message}`,
      {
        details: { file },
      },
    );
  });
  return activeCalls(
    { host: voice.host, port: voice.port, password: password.replace(/\r?\n$/, '') },
    { clock: deps.clock, timeoutMs: voice.timeoutMs, signal },
  );
}

/** Says in the log why the wait ended, with the calls a restart past the deadline cuts. */
export function logCallWaitEnded(deps: Pick<Deps, 'log'>, journal: Journal, how: CallWaitEnd): void {
  const calls = journal.calls;
  const fields = {
    for: calls?.for,
    active: calls?.active ?? null,
    deadline: calls?.deadline,
    ...(calls?.error ? { error: calls.error } : {}),
  };
  switch (how) {
    case 'noVoice':
      break; // nothing to wait for: not worth a line at every update
    case 'clear':
      deps.log.info('no call is up: restarting', fields);
      break;
    case 'voiceSilent':
      deps.log.warn(
        'the voice service has not answered for its grace period: restarting as with no calls',
        fields,
      );
      break;
    case 'deadline':
      deps.log.warn(
        calls?.active === null
          ? 'the deadline for calls to end has passed: restarting, the calls up unknown (the voice service did not answer)'
          : `the deadline for calls to end has passed: restarting, cutting ${calls?.active ?? 0} active call(s)`,
        fields,
      );
      break;
    case 'override':
      deps.log.warn(
        `a technician confirmed "Reboot now": restarting, cutting ${calls?.active ?? 'an unknown number of'} active call(s)`,
        fields,
      );
      break;
  }
}
