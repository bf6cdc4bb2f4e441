/**
 * SSH access as the console shows it: until when on the appliance's clock (UTC, as every time
 * the console shows) and how long is left, never a raw ISO string. Pure.
 */
import type { SshView } from '@clgw/agent/ssh/view.js';

const pad = (n: number) => String(n).padStart(2, '0');

/** `17:40 UTC` when `ms` falls on the same (UTC) day as `now`, else `2026-11-22 17:40 UTC`. */
export function utcTime(ms: number, now: number): string {
  const d = new Date(ms);
  const hm = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
  const sameDay = d.toISOString().slice(0, 10) === new Date(now).toISOString().slice(0, 10);
  return sameDay ? hm : `${d.toISOString().slice(0, 10)} ${hm}`;
}

/** `23 h 59 min`, `5 min`, `less than a minute`. */
export function duration(seconds: number): string {
  if (seconds < 60) return 'less than a minute';
  const minutes = Math.floor(seconds / 60);
  const h = Math.floor(minutes / 60);
  return h ? `${h} h ${minutes % 60} min` : `${minutes} min`;
}

/**
 * `SSH access is ON until 2026-11-22 10:00 UTC (23 h 59 min left)`; undefined while off. The
 * time left is counted from `now` (the agent's `secondsLeft` is as old as its last answer).
 */
export function sshBannerText(view: SshView, now: number): string | undefined {
  if (!view.enabled) return undefined;
  const at = view.expiresAt ? Date.parse(view.expiresAt) : Number.NaN;
  if (!Number.isFinite(at)) {
    return view.secondsLeft === null
      ? 'SSH access is ON'
      : `SSH access is ON (${duration(view.secondsLeft)} left)`;
  }
  if (at <= now) return `SSH access is ending: its time was up at ${utcTime(at, now)}`;
  return `SSH access is ON until ${utcTime(at, now)} (${duration(Math.max(0, (at - now) / 1000))} left)`;
}
