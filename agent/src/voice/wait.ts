import { promises as fs } from 'node:fs';
import type { AgentConfig } from '@clgw/core/config.js';
import { configPath } from '@clgw/core/config.js';
import { ClgwError, type SerializedError, serializeError } from '@clgw/core/errors.js';
import type { Clock } from '@clgw/core/platform/clock.js';
import type { Logger } from '@clgw/core/platform/log.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import type { CallWait } from '../machine/journal.js';
import type { CallWaitPlan } from '../machine/update.machine.js';
import { readSchedule, type ScheduleState } from '../schedule/scheduler.js';
import { formatLocal, nextWindow } from '../schedule/window.js';
import { answerCallWait, type CallWaitEnd } from './call-wait.js';
import { activeCalls } from './esl.js';

const MINUTE = 60_000;

/** What asking the voice service takes: the agent's deps, or the container upgrade's. */
export interface VoiceDeps {
  config: Pick<AgentConfig, 'voice'>;
  paths: AppliancePaths;
  clock: Clock;
  log: Logger;
}

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
  const restart = calls.for === 'containers' ? 'before restarting the voice service' : 'before restarting';
  return `${what} ${restart}${deadline}`;
}

/** The wait's plan from the configuration and the update window; null without a voice service. */
export async function planCallWait(deps: VoiceDeps): Promise<CallWaitPlan | null> {
  const voice = deps.config.voice;
  if (!voice) return null;
  const schedule = await readSchedule(deps.paths.schedule);
  const deadline = callWaitDeadline(schedule, deps.clock.now(), voice.deadlineAfterWindowMinutes);
  return { deadline: new Date(deadline).toISOString(), unknownGraceMs: voice.unknownGraceMs };
}

/** Asks the voice service how many calls are up (VOICE_* when it cannot tell). */
export async function countCalls(deps: VoiceDeps, signal: AbortSignal): Promise<number> {
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
export function logCallWaitEnded(deps: VoiceDeps, calls: CallWait | undefined, how: CallWaitEnd): void {
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

/**
 * Before a container swap that drops calls (`freeswitch`, or the `tunnel` they go through): the
 * same wait as the update machine's before its reboot — planned once and saved with its deadline
 * (`save`, so a run cut off resumes it), then polled until answerCallWait ends it. The calls up
 * are saved when their number changes, for the status. Without a voice service it returns at once.
 */
export async function waitForCallsToEnd(
  deps: VoiceDeps,
  o: {
    calls: CallWait | undefined;
    save: (calls: CallWait | undefined) => Promise<void>;
    signal?: AbortSignal;
  },
): Promise<void> {
  const voice = deps.config.voice;
  if (!voice) return;
  let calls = o.calls;
  if (calls?.deadline === undefined) {
    const plan = (await planCallWait(deps))!;
    calls = { for: 'containers', since: new Date(deps.clock.now()).toISOString(), active: null, ...plan };
    await o.save(calls);
  }
  for (;;) {
    o.signal?.throwIfAborted();
    let active: number | null = null;
    let error: SerializedError | undefined;
    try {
      active = await countCalls(deps, o.signal ?? new AbortController().signal);
    } catch (e) {
      o.signal?.throwIfAborted();
      error = serializeError(e);
    }
    const answer = answerCallWait(calls, deps.clock.now(), active, error);
    const changed = answer.calls.active !== calls.active;
    calls = answer.calls;
    if (answer.end) {
      logCallWaitEnded(deps, calls, answer.end);
      await o.save(undefined);
      return;
    }
    if (changed) await o.save(calls);
    await deps.clock.sleep(voice.pollMs, o.signal);
  }
}
