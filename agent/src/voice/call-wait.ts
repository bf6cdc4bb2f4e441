/**
 * Pure: no `node:*` imports. What one answer of the voice service means for a wait for calls to
 * end — shared by the update machine (before the reboot into a new slot, or a technician's Reboot)
 * and the container upgrade (before a `freeswitch` or `tunnel` container is swapped).
 */
import type { SerializedError } from '@clgw/core/errors.js';
import type { CallWait } from '../machine/journal.js';

/**
 * Why a wait for calls ended: no calls up; the voice service silent past its grace; the deadline;
 * a technician's confirmed "Reboot now"; no voice service configured (nothing to wait for).
 */
export type CallWaitEnd = 'clear' | 'voiceSilent' | 'deadline' | 'override' | 'noVoice';

/**
 * The wait with one poll's answer recorded (`active` null: the voice service could not tell,
 * `error` why), and whether it ends now: no call is up; the service has been silent for its grace
 * (a voice service that is down carries no calls; a glitch of a poll or two is not zero); or the
 * deadline has passed, whatever the calls.
 */
export function answerCallWait(
  calls: CallWait,
  now: number,
  active: number | null,
  error?: SerializedError,
): { calls: CallWait; end?: Exclude<CallWaitEnd, 'override' | 'noVoice'> } {
  const next: CallWait =
    active !== null
      ? { ...calls, active, unknownSince: undefined, error: undefined }
      : {
          ...calls,
          active: null,
          unknownSince: calls.unknownSince ?? new Date(now).toISOString(),
          ...(error ? { error } : {}),
        };
  if (active === 0) return { calls: next, end: 'clear' };
  if (next.unknownSince !== undefined && now - Date.parse(next.unknownSince) >= (next.unknownGraceMs ?? 0))
    return { calls: next, end: 'voiceSilent' };
  if (next.deadline !== undefined && now >= Date.parse(next.deadline))
    return { calls: next, end: 'deadline' };
  return { calls: next };
}
