/**
 * What the local portal needs from the agent: the status, the three recovery requests, and
 * optional sources for what the status does not carry yet (diagnostics, performance profile, the
 * Cloud/VOIP software versions and OS patch level, the interface addresses). The page shows
 * "not run" / "unknown" for whatever is absent.
 */
import type { AgentRequest } from '../agent.js';
import type { Status } from '../status.js';

/** One startup-diagnostics check (SPEC.md §5: DNS, NTP, HTTPS, STUN, SIP-TLS, RTP). */
export interface PortalDiagnosticCheck {
  /** What was tested, e.g. `DNS udp/53` or `HTTPS download.mitel.io:443`. */
  name: string;
  status: 'pass' | 'fail' | 'warn' | 'skip';
  /** Why it failed (names the host, port or server), or what it found. */
  message?: string;
}

export interface PortalDiagnostics {
  /** When the checks ran (ISO 8601). */
  at?: string;
  checks: PortalDiagnosticCheck[];
}

export interface PortalProfile {
  /** E.g. `small`, `small-plus`. */
  name: string;
  /** A line saying what it allows, e.g. `25 calls, RTP 65336-65534`. */
  detail?: string;
}

/** SPEC.md §7: the versions shown besides the gateway OS release (which the status has). */
export interface PortalVersions {
  /** The containers bundle, e.g. `1.1.0.01-296`. */
  cloudSoftware?: string;
  /** E.g. `111`. */
  voipSoftware?: string;
  /** E.g. `patch 172`. */
  osPatchLevel?: string;
}

/**
 * The agent as the portal sees it. The three requests throw a `ClgwError` (`BUSY`,
 * `NOT_ALLOWED`) with a message when the current state refuses them; the portal shows that
 * message. The optional sources may throw or resolve undefined: the page then shows the value as
 * unknown.
 */
export interface PortalAgent {
  status(): Promise<Status>;
  /** Update Error → Retry: check again and install (after e.g. a firewall was fixed). */
  retry(): Promise<void>;
  reboot(): Promise<void>;
  /** Hands over to the recovery system; the agent refuses it on `virtual`/`kvm` and while critical. */
  factoryReset(): Promise<void>;
  /** The last startup-diagnostics results; undefined: not run yet. */
  diagnostics?(): Promise<PortalDiagnostics | undefined>;
  /** The performance profile chosen at boot. */
  profile?(): Promise<PortalProfile | undefined>;
  versions?(): Promise<PortalVersions | undefined>;
  /** The appliance's IPv4 addresses; without them the page shows the address it was reached at. */
  addresses?(): Promise<string[]>;
}

/** The optional sources, as {@link portalAgentOf} takes them. */
export type PortalExtras = Pick<PortalAgent, 'diagnostics' | 'profile' | 'versions' | 'addresses'>;

/**
 * A {@link PortalAgent} over the running agent (`Agent` or anything with its `status` and
 * `request`), plus the optional sources that exist.
 */
export function portalAgentOf(
  agent: { status(): Promise<Status>; request(req: AgentRequest): Promise<void> },
  extras: PortalExtras = {},
): PortalAgent {
  return {
    status: () => agent.status(),
    retry: () => agent.request({ type: 'retry' }),
    reboot: () => agent.request({ type: 'reboot' }),
    factoryReset: () => agent.request({ type: 'factoryReset' }),
    ...extras,
  };
}
