/**
 * What SSH access looks like from outside (status, console, CLI): pure, so the console's view
 * models use it without loading the module that runs sshd.
 */

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

/** `SSH access is enabled: 23 h 59 min left` — the banner line of the console and status. */
export function sshBanner(view: SshView): string | undefined {
  if (!view.enabled || view.secondsLeft === null) return undefined;
  const minutes = Math.ceil(view.secondsLeft / 60);
  const h = Math.floor(minutes / 60);
  return `SSH access is enabled: ${h ? `${h} h ` : ''}${minutes % 60} min left (until ${view.expiresAt})`;
}

/**
 * `For support: user support, certificate principal appliance-k3m9x2pq7rtw` — the line under the
 * banner: what the technician reads to support, who issues a certificate for that principal.
 */
export function sshSupportLine(view: SshView): string | undefined {
  if (!view.enabled || !view.account || !view.principal) return undefined;
  return `For support: user ${view.account}, certificate principal ${view.principal}`;
}
