/**
 * The last check, in the words every view uses (tty1, the portal, `clgw status`): a check that
 * could not be done is a warning that names its cause and says what happens next — the gateway
 * keeps running what it runs and tries again — never an update error.
 * Pure: no `node:*` imports.
 */
import { REACH_ERROR_CODES } from '@clgw/core/error-codes.js';
import type { ErrorCode } from '@clgw/core/errors.js';
import type { Status } from './status.js';

const UNREACHABLE: ReadonlySet<ErrorCode> = new Set(REACH_ERROR_CODES);

export interface CheckWords {
  /** `ok`: nothing to worry about; `warn`: the check could not be done or its release was refused. */
  severity: 'ok' | 'warn';
  /** One sentence, e.g. `Cannot reach the download server: … — the gateway keeps running 1.1.0 …`. */
  text: string;
}

/** When the appliance checks again by itself: the next update window, else its next start. */
function nextTry(s: Pick<Status, 'nextWindow'>): string {
  return s.nextWindow ? `at ${s.nextWindow.local}` : 'at its next start';
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The last check in words, or null before the first one. */
export function describeCheck(s: Pick<Status, 'check' | 'gatewayVersion' | 'nextWindow'>): CheckWords | null {
  const c = s.check;
  if (!c) return null;
  const keeps = `the gateway keeps running ${s.gatewayVersion ?? 'its current release'}`;
  switch (c.outcome) {
    case 'upToDate':
      // A newer release running than the one published: the vendor removed it — kept, but said.
      return c.published === undefined
        ? { severity: 'ok', text: 'Up to date' }
        : { severity: 'warn', text: capitalised(c.message) };
    case 'available':
      return { severity: 'ok', text: `Release ${c.version} available` };
    case 'rejected':
      return { severity: 'warn', text: `Release ${c.version} not installed: ${c.message}` };
    case 'notOffered':
      // A staged rollout working as meant: nothing is wrong, the gateway is simply not in it yet.
      return {
        severity: 'ok',
        text: `Release ${c.version} is available but not yet offered to this gateway${c.percent === undefined ? '' : ` (rollout ${c.percent} %)`}`,
      };
    case 'withdrawn':
      // The message says which: not installed, or kept running until a newer release is published.
      return { severity: 'warn', text: capitalised(c.message) };
    case 'failed': {
      // Its message says it all ("the clock is not set (no NTP yet): update deferred; it reads …"),
      // and the agent looks at the clock every minute to run the check again (Agent.waitForClock).
      if (c.error?.code === 'CLOCK_NOT_SET') {
        const text = c.message.charAt(0).toUpperCase() + c.message.slice(1);
        return { severity: 'warn', text: `${text} — ${keeps} and will try again once its clock is set` };
      }
      const what =
        c.error && UNREACHABLE.has(c.error.code)
          ? 'Cannot reach the download server'
          : c.error?.code === 'CHECK_INTERRUPTED'
            ? 'The check for updates did not finish'
            : "The download server's release information was refused";
      return { severity: 'warn', text: `${what}: ${c.message} — ${keeps} and will try again ${nextTry(s)}` };
    }
  }
}

/**
 * The warning to show apart from the update's own state: a check that could not be done or whose
 * release was refused, while the appliance is settled. Beside a failed update only when it is
 * newer (a Retry whose check failed), since the update's error says more otherwise.
 */
export function checkWarning(
  s: Pick<Status, 'check' | 'gatewayVersion' | 'nextWindow' | 'state' | 'result'>,
): CheckWords | null {
  const words = describeCheck(s);
  if (words?.severity !== 'warn' || !s.check) return null;
  if (!['idle', 'committed', 'rolledBack', 'failed'].includes(s.state)) return null;
  if (s.state === 'failed' && (!s.result || Date.parse(s.check.at) <= Date.parse(s.result.at))) return null;
  return words;
}
