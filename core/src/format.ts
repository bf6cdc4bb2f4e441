/**
 * Names and formats every view of the appliance shares (the console, the portal, the CLI): one
 * wording for a size, a time and the portal's address wherever a person reads them.
 * Pure: no `node:*` imports.
 */

export const PRODUCT_NAME = 'CloudLink Gateway';
/** The mDNS name the appliance answers to (SPEC.md §5). */
export const LOCAL_NAME = 'cloudlink.local';

/** Bytes in binary units with three significant digits: `512 B`, `1.50 KiB`, `600 MiB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return 'unknown';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** An ISO 8601 time as `2025-11-21 09:12 UTC` (the appliance's clock; a browser's may differ). */
export function formatTime(iso: string | undefined | null): string {
  if (!iso) return 'unknown';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : iso;
}

/** The URL of the portal at `host` (no port on 80); an IPv6 address in brackets. */
export function portalUrl(host: string, port: number): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `http://${h}${port === 80 ? '' : `:${port}`}/`;
}

/** The portal's URL on this machine when it listens at `host` (every address: loopback's). */
export function localPortalUrl(host: string, port: number): string {
  return portalUrl(host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host, port);
}

/**
 * Text from outside (an OVF property, another program's message) made one printable line for a
 * log, a record or a screen: line breaks and other control characters are escaped (`\n`,
 * `\x1b`), so a value can neither split a journal line nor move a terminal's cursor.
 */
export function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => {
    const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
    const code = c.charCodeAt(0);
    return named[c] ?? (code > 0xff ? `\\u${code.toString(16)}` : `\\x${code.toString(16).padStart(2, '0')}`);
  });
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** `17:40 UTC` when `ms` falls on the same (UTC) day as `now`, else `2026-11-22 17:40 UTC`. */
export function utcTime(ms: number, now: number): string {
  const d = new Date(ms);
  const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())} UTC`;
  const sameDay = d.toISOString().slice(0, 10) === new Date(now).toISOString().slice(0, 10);
  return sameDay ? hm : `${d.toISOString().slice(0, 10)} ${hm}`;
}
