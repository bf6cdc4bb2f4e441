/**
 * The narrow API between the agent and the portal (`run/clgw/portal.sock`): what the local web
 * page may see and ask (SPEC.md §9). The portal is its own unprivileged process facing the LAN;
 * this socket offers it no more than a visitor may do, so a compromised portal can do no more:
 *
 *   GET  /v1/view                 the page's input ({@link PortalInput})
 *   POST /v1/retry                {}                  Update Error → Retry
 *   POST /v1/reboot               {"code": "…"}       Update Error → Reboot, with the presence code
 *   POST /v1/factory-reset        {"code": "…"}       Update Error → Factory Reset (physical), likewise
 *   GET  /v1/logs/<token>         a log archive behind a temporary link (404 for anything else)
 *
 * The agent, not the page, enforces the rules: {@link portalOffers} is what the page shows and
 * what the agent accepts. Pure: no `node:*` imports.
 */

import { formatMemory } from '@clgw/core/system/profiles.js';
import type { DiagnosticsReport } from '../diagnostics/checks.js';
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
  /** The running root's, e.g. `2026-11-20` (the date its Debian packages were taken). */
  osPatchLevel?: string;
}

/** The status as the page may see it: everything but SSH access (when support can log in is not a visitor's business). */
export type PortalStatus = Omit<Status, 'ssh'>;

/** `GET /v1/view`: what the page is made from. */
export interface PortalInput {
  status: PortalStatus;
  versions?: PortalVersions;
  profile?: PortalProfile;
  diagnostics?: PortalDiagnostics;
  /** The appliance's IPv4 addresses; without them the page shows the address it was reached at. */
  addresses?: string[];
}

export const PORTAL_ACTIONS = ['retry', 'reboot', 'factory-reset'] as const;
export type PortalAction = (typeof PORTAL_ACTIONS)[number];

/** The actions that need the code shown on the appliance's own screen. */
export function needsPresence(action: PortalAction): boolean {
  return action !== 'retry';
}

/** The longest code either side reads (a real one is 11 characters with its dash). */
const MAX_CODE = 64;

/**
 * A request body as `action` takes it — `{}` for Retry, `{"code": "…"}` for the others (the code
 * may be missing: whether one is needed is the agent's to say) — or why it is not. The portal
 * checks it to answer the browser clearly, the agent again because it trusts nobody.
 */
export function portalBody(action: PortalAction, body: unknown): { code?: string } | { problem: string } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { problem: 'the body must be a JSON object' };
  }
  const { code, ...rest } = body as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) return { problem: `unknown option "${extra.slice(0, 32)}"` };
  if (code === undefined) return {};
  if (!needsPresence(action)) return { problem: 'Retry takes no code' };
  if (typeof code !== 'string' || code.length > MAX_CODE) {
    return { problem: `code: text of at most ${MAX_CODE} characters` };
  }
  return { code };
}

/**
 * What the page offers, and so what the agent accepts from it: Retry and Reboot after a failed
 * update; Factory Reset too, on a physical appliance only (a virtual one is redeployed).
 */
export function portalOffers(status: Pick<Status, 'state' | 'platform'>): Record<PortalAction, boolean> {
  const failed = status.state === 'failed';
  return { retry: failed, reboot: failed, 'factory-reset': failed && status.platform === 'physical' };
}

/** The page's input from one status: versions, profile and diagnostics are all in it. */
export function portalInput(status: Status): PortalInput {
  const { ssh: _ssh, ...visible } = status;
  const c = status.containers;
  // SPEC §7: "Cloud Software" is the CloudLink containers' version, "VOIP Software" FreeSWITCH's,
  // the OS patch level the running root's os-release.
  const cloud = c.tunnel?.version ?? c.micloud?.version;
  const versions: PortalVersions = {
    ...(cloud ? { cloudSoftware: cloud } : {}),
    ...(c.freeswitch?.version ? { voipSoftware: c.freeswitch.version } : {}),
    ...(status.osPatchLevel ? { osPatchLevel: status.osPatchLevel } : {}),
  };
  return {
    status: visible,
    versions,
    ...(status.profile
      ? {
          profile: {
            name: status.profile.name,
            // The name is shown before it: the detail says what it gives, not the name again.
            detail: `${formatMemory(status.profile.memoryBytes)} RAM, RTP port range: ${status.profile.rtpPorts.low}-${status.profile.rtpPorts.high}`,
          },
        }
      : {}),
    ...(status.diagnostics ? { diagnostics: portalDiagnostics(status.diagnostics) } : {}),
  };
}

const VERDICT = { ok: 'pass', warning: 'warn', failed: 'fail' } as const;

function portalDiagnostics(d: DiagnosticsReport): PortalDiagnostics {
  return {
    at: d.at,
    checks: d.results.map((r) => ({
      name: [r.name, r.target].filter((x) => x !== '').join(' '),
      status: VERDICT[r.verdict],
      message: r.summary,
    })),
  };
}
