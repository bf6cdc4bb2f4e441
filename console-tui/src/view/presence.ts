/**
 * The portal's presence code as the console shows it (SPEC.md §9): the technician at the
 * appliance reads it here and types it into the web page's Reboot or Factory Reset dialog. Only
 * the appliance's own screens show it (tty1's home screen, the tty2 menu's header). A lockout
 * after too many wrong codes — someone on the LAN guessing — is shown in red, as are wrong tries
 * so far. Pure.
 */
import type { PresenceView } from '@clgw/agent/presence/presence.js';

/** `10:25 UTC`: the appliance's clock, as every time the console shows. */
function clock(ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 16)} UTC`;
}

/**
 * The code and how long it lasts, e.g. `K7M2Q-9XRT4  (changes in 4 min)`; while locked, the
 * lockout in red instead. Blessed markup; the code's symbols need no escaping (its alphabet).
 */
export function presenceText(view: PresenceView, now: number): string {
  if (view.lockedUntil !== null) {
    return `{red-fg}{bold}locked until ${clock(view.lockedUntil)}{/}{red-fg} after ${view.maxFailures} wrong codes on the web page{/}`;
  }
  const minutes = Math.max(1, Math.ceil((view.expiresAt - now) / 60_000));
  const wrong = view.failures
    ? ` {red-fg}${view.failures} wrong ${view.failures === 1 ? 'try' : 'tries'}{/}`
    : '';
  return `{bold}${view.code}{/bold}  (changes in ${minutes} min)${wrong}`;
}

/**
 * The same in a few words, for the right of the menu's title row (the rows under it belong to
 * SSH access): `Portal code K7M2Q-9XRT4 (4 min)`, or the lockout.
 */
export function presenceShort(view: PresenceView, now: number): string {
  if (view.lockedUntil !== null)
    return `{red-fg}{bold}Portal code LOCKED until ${clock(view.lockedUntil)}{/}`;
  const minutes = Math.max(1, Math.ceil((view.expiresAt - now) / 60_000));
  const wrong = view.failures ? ` {red-fg}${view.failures} wrong{/}` : '';
  return `Portal code {bold}${view.code}{/bold} (${minutes} min)${wrong}`;
}
