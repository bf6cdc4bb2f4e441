/**
 * The tty2 menu's "Download logs" (SPEC.md §4) as a view model: the question, the link screen's
 * lines (URL, expiry as local time and time left, archive size) and the QR code of the URL. Pure.
 *
 * The QR code is drawn with the agent's `renderQrText`: two module rows per text row with the
 * half blocks `▀` `▄` `█` and spaces. That is what fits 80x25 (a one-module-per-cell code of a
 * 77-byte URL needs 37 rows), and it draws on the Linux VGA console: the kernel's built-in font is
 * the CP437 one, whose Unicode map has U+2580, U+2584 and U+2588 (0xDF, 0xDC, 0xDB), and the
 * `linux` terminfo entry declares UTF-8 (`U8#1`), so blessed sends them as they are whatever the
 * locale. Each module is half a cell high and one cell wide: 8x8 pixels with the 8x16 font.
 */

import { encodeQr, renderQrText } from '@clgw/agent/logs/qr.js';
import type { LogLinkView } from '@clgw/agent/logs/service.js';
import { formatBytes, utcTime } from '@clgw/core/format.js';
import { escapeText } from './text.js';

export const LOGS_TITLE = 'Download logs';

export const LOGS_QUESTION = 'Create an unreproducible and temporary log archive URL?';

/** Under the question: what Yes does. */
export const LOGS_EXPLANATION = [
  'The gateway packs its logs into an archive (this can take up to a couple',
  'of minutes) and serves it at a temporary URL that expires after a few',
  'minutes. A browser on the LAN downloads the archive from that URL.',
];

/** The answers, in screen order; the first (No) is selected at first. */
export const LOGS_CHOICES = ['No', 'Yes'] as const;

export const LOGS_BUILDING = 'Building the log archive... (this can take up to a couple of minutes)';

/** The link screen's actions, in screen order; Close (the harmless one) is selected at first. */
export const LOG_ACTIONS = [
  { action: 'revoke', label: 'Revoke now' },
  { action: 'close', label: 'Close' },
] as const;
export type LogAction = (typeof LOG_ACTIONS)[number]['action'];
export const LOG_ACTION_DEFAULT = 1;

/** Quiet zone around the code, in modules (the standard asks 4; 2 is what fits and scanners read). */
export const QR_QUIET = 2;

/** `in 10 min`, `in 45 s`, `expired`: the time left, as a person reads it. */
export function timeLeft(ms: number): string {
  if (ms <= 0) return 'expired';
  if (ms < 60_000) return `in ${Math.ceil(ms / 1000)} s`;
  return `in ${Math.round(ms / 60_000)} min`;
}

/** Whether the link has expired at `now`. */
export function linkExpired(link: Pick<LogLinkView, 'expiresAt'>, now: number): boolean {
  return Date.parse(link.expiresAt) <= now;
}

/** `Expires at 10:32 UTC (in 10 min)` / `Expired at 10:32 UTC`: plain text. */
export function expiryText(link: Pick<LogLinkView, 'expiresAt'>, now: number): string {
  const at = Date.parse(link.expiresAt);
  if (!Number.isFinite(at)) return `Expires at ${link.expiresAt}`;
  const time = utcTime(at, now);
  return at <= now ? `Expired at ${time}` : `Expires at ${time} (${timeLeft(at - now)})`;
}

/**
 * The lines beside the QR code (blessed markup, outside text escaped), at most `width` columns
 * of text each: expiry (red once expired), archive size, what was left out, what to do.
 */
export function linkInfoLines(link: LogLinkView, now: number): string[] {
  const expired = linkExpired(link, now);
  const expiry = escapeText(expiryText(link, now));
  const lines = [expired ? `{red-fg}{bold}${expiry}{/}` : `{bold}${expiry}{/bold}`, ''];
  lines.push(`Archive: ${escapeText(formatBytes(link.bytes))}`);
  if (link.skipped > 0)
    lines.push(`${link.skipped} file${link.skipped === 1 ? '' : 's'} left out (MANIFEST.txt)`);
  lines.push('');
  if (expired) lines.push('Close, then ask for a new URL.');
  else lines.push('Scan the code with a phone, or', 'type the URL in a browser on', 'the LAN.');
  return lines;
}

/**
 * The QR code of `url` as text rows (no markup: only spaces and `▀` `▄` `█`), level L in the
 * smallest version that holds it; undefined when it needs more than `maxRows` rows or more than
 * `maxColumns` columns (or does not fit a QR code at all): the URL is still shown as text.
 */
export function qrLines(url: string, maxRows: number, maxColumns: number): string[] | undefined {
  let lines: string[];
  try {
    lines = renderQrText(encodeQr(url, { ecLevel: 'L' }), { quiet: QR_QUIET });
  } catch {
    return undefined;
  }
  if (lines.length > maxRows || (lines[0]?.length ?? 0) > maxColumns) return undefined;
  return lines;
}
