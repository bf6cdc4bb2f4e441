/**
 * What SSH access looks like from outside (status, console, CLI): pure, so the console's view
 * models use it without loading the module that runs sshd.
 */
import { utcTime } from '@clgw/core/format.js';

export { utcTime };

/** `var/clgw/ssh.json`: present while SSH access is on (or being turned on); the expiry is absolute. */
export interface SshState {
  enabledAt: string;
  expiresAt: string;
  /**
   * `starting` from the moment it is persisted until sshd answered; only then is SSH access on. An
   * enable cut short there (agent stopped) is rolled back at the next start. Absent: on (files
   * written before there was a phase).
   */
  phase?: 'starting' | 'on';
  /** The account support logs in to, and the principal its certificate must name. */
  account?: string;
  principal?: string;
}

export interface SshView {
  enabled: boolean;
  expiresAt: string | null;
  secondsLeft: number | null;
  /** While enabled: the account support logs in to… */
  account: string | null;
  /** …and the principal its certificate must name (`appliance-<id>`): what the technician reads out. */
  principal: string | null;
  /** While enabled: whether sshd runs (false: it died or was stopped; null: not known). */
  running?: boolean | null;
}

export const SSH_OFF: SshView = {
  enabled: false,
  expiresAt: null,
  secondsLeft: null,
  account: null,
  principal: null,
};

export function describeSsh(state: SshState | undefined, now: number): SshView {
  if (!state || state.phase === 'starting') return SSH_OFF;
  const left = Date.parse(state.expiresAt) - now;
  return left > 0
    ? {
        enabled: true,
        expiresAt: state.expiresAt,
        secondsLeft: Math.ceil(left / 1000),
        account: state.account ?? null,
        principal: state.principal ?? null,
      }
    : SSH_OFF;
}

/* The banner of the console and `clgw status`: until when on the appliance's clock (UTC, as
 * every time the console shows) and how long is left, never a raw ISO string. */
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
export function sshBanner(view: SshView, now: number): string | undefined {
  if (!view.enabled) return undefined;
  // On, yet nobody can log in: said instead of "ON", with what to do.
  if (view.running === false)
    return 'SSH access is on, but sshd is not running: turn SSH access off and on again';
  const at = view.expiresAt ? Date.parse(view.expiresAt) : Number.NaN;
  if (!Number.isFinite(at)) {
    return view.secondsLeft === null
      ? 'SSH access is ON'
      : `SSH access is ON (${duration(view.secondsLeft)} left)`;
  }
  if (at <= now) return `SSH access is ending: its time was up at ${utcTime(at, now)}`;
  return `SSH access is ON until ${utcTime(at, now)} (${duration(Math.max(0, (at - now) / 1000))} left)`;
}

/**
 * `For support: user support, certificate principal appliance-k3m9x2pq7rtw` — the line under the
 * banner: what the technician reads to support, who issues a certificate for that principal.
 */
export function sshSupportLine(view: SshView): string | undefined {
  if (!view.enabled || !view.account || !view.principal) return undefined;
  return `For support: user ${view.account}, certificate principal ${view.principal}`;
}
