/**
 * An error code in plain words, with what a technician can do about it (SPEC.md §3): one text for
 * every view — the portal's error page and the `clgw` CLI — so they can never diverge. Only the
 * names of the recovery actions differ: a button on the portal, a command on the CLI.
 * Pure: no `node:*` imports.
 */
import type { SerializedError } from '@clgw/core/errors.js';

export interface PlainError {
  /** What went wrong, in plain words. */
  title: string;
  /** What to do about it. */
  advice: string;
}

/** How a reader takes the recovery actions the advice names. */
export interface ActionNames {
  /** The verb before an action: `choose` (a button), `run` (a command). */
  choose: string;
  /** Try the failed operation again. */
  retry: string;
  reboot: string;
  factoryReset: string;
  /** Where the network and proxy settings are changed (`the network settings`). */
  networkSettings: string;
  proxySettings: string;
}

/** The portal's buttons and pages. */
export const PORTAL_ACTIONS: ActionNames = {
  choose: 'choose',
  retry: 'Retry',
  reboot: 'Reboot',
  factoryReset: 'Factory Reset',
  networkSettings: 'the network settings',
  proxySettings: 'the proxy settings',
};

/** The CLI's commands (`retry`: after a failed update; a failed check is retried with `clgw check`). */
export const CLI_ACTIONS: ActionNames = {
  choose: 'run',
  retry: 'clgw retry',
  reboot: 'clgw reboot',
  factoryReset: 'factory reset (clgw factory-reset --confirm)',
  networkSettings: 'the network settings (clgw network)',
  proxySettings: 'the proxy settings (clgw proxy)',
};

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** The plain words for `error` (none, or a code without its own words: "The update failed."). */
export function plainError(
  error: Pick<SerializedError, 'code' | 'details'> | null | undefined,
  a: ActionNames = PORTAL_ACTIONS,
): PlainError {
  return (
    ownWords(error, a) ?? {
      title: 'The update failed.',
      advice: `${cap(a.choose)} ${a.retry}. If it fails again, ${a.choose} ${a.reboot}; if the update itself is suspect, ${a.factoryReset}.`,
    }
  );
}

/**
 * The words for a code that has its own; undefined for the others (the CLI then says only the
 * error's message, which for those names the fault better than "The update failed.").
 */
export function ownWords(
  error: Pick<SerializedError, 'code' | 'details'> | null | undefined,
  a: ActionNames = PORTAL_ACTIONS,
): PlainError | undefined {
  const retry = `${a.choose} ${a.retry}`;
  const retryLater = `${cap(retry)} later`;
  const network = `Check ${a.networkSettings}, the DNS server and the firewall (the gateway needs HTTPS, tcp/443, to the download server), then ${retry}.`;
  const serverError = {
    title: 'The download server answered with an error.',
    advice: `This is usually temporary: ${retry} later. If it persists, check ${a.proxySettings}.`,
  };
  switch (error?.code) {
    case 'DNS_LOOKUP_FAILED':
      return {
        title: "The gateway could not look up the download server's name (DNS lookup failed).",
        advice: `Check the DNS server in ${a.networkSettings} and that the gateway may reach it (udp/53), then ${retry}.`,
      };
    case 'CONNECTION_REFUSED':
      return {
        title: 'The download server refused the connection.',
        advice: `A firewall or proxy may be blocking the connection. ${network}`,
      };
    case 'CONNECTION_RESET':
      return { title: 'The connection to the download server was cut off.', advice: network };
    case 'HOST_UNREACHABLE':
      return {
        title: 'The download server cannot be reached (no route to it).',
        advice: `Check the gateway address and default route. ${network}`,
      };
    case 'TIMED_OUT':
      return { title: 'The download server did not answer in time.', advice: network };
    case 'TLS_ERROR':
      return {
        title: 'The secure (TLS) connection to the download server failed.',
        advice: `A proxy or firewall that inspects HTTPS, or a wrong date and time on the gateway, can cause this. Fix it, then ${retry}.`,
      };
    case 'HTTP_STATUS': {
      const status = Number(error.details?.status);
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        return {
          title: `The download server does not offer the update's files (HTTP ${status}).`,
          advice: `${retryLater}. If it persists, check ${a.proxySettings}, or contact support.`,
        };
      }
      return serverError;
    }
    case 'REDIRECT_REFUSED':
    case 'RANGE_NOT_SUPPORTED':
      return serverError;
    case 'PROXY_INVALID':
      return {
        title: 'The proxy settings are not valid.',
        advice: `Correct ${a.proxySettings}, then ${retry}.`,
      };
    case 'PROXY_AUTH_FAILED':
      return {
        title: "The proxy refused the gateway's user name and password.",
        advice: `Correct the user and password in ${a.proxySettings}, then ${retry}.`,
      };
    case 'NETWORK_ERROR':
    case 'NETWORK_APPLY_FAILED':
      return { title: 'A network error stopped the update.', advice: network };
    case 'SIZE_EXCEEDED':
    case 'ARTIFACT_TRUNCATED':
    case 'HASH_MISMATCH':
    case 'IMAGE_MISMATCH':
    case 'INDEX_INVALID':
    case 'CHUNK_MISMATCH':
      return {
        title: 'The downloaded update was incomplete or damaged, so it was not installed.',
        advice: `${cap(retry)} to download it again. A proxy that alters downloads can cause this.`,
      };
    case 'YAML_INVALID':
    case 'COMPAT_INVALID':
    case 'SIGNATURE_MISSING':
    case 'SIGNATURE_INVALID':
    case 'CHAIN_INVALID':
    case 'RELEASE_EXPIRED':
    case 'SERIAL_REPLAYED':
      return {
        title: 'The update could not be verified as genuine, so it was not installed.',
        advice: `${retryLater}. If it persists, contact support.`,
      };
    case 'CERT_REVOKED':
      return {
        title: 'The update was signed with a certificate the vendor has revoked, so it was not installed.',
        advice: `${retryLater}: the vendor publishes the update again under a valid certificate. If it persists, contact support.`,
      };
    case 'RELEASE_NOT_YET_VALID':
      return {
        title:
          "The update's release information is dated later than the gateway's clock, so it was not used.",
        advice: `The gateway's clock may be behind: check that it reaches its NTP server (udp/123; the diagnostics show the clock's offset), then ${retry}. If the clock is right, contact support.`,
      };
    case 'PLATFORM_MISMATCH':
    case 'DOWNGRADE_REFUSED':
    case 'SOURCE_VERSION_TOO_OLD':
      return {
        title: 'The offered update does not apply to this gateway.',
        advice: `${retryLater}, or contact support.`,
      };
    case 'NO_SPACE':
    case 'SLOT_WRITE_FAILED':
    case 'READBACK_MISMATCH':
    case 'SLOT_ACTIVE':
    case 'SLOT_UNKNOWN':
    case 'GRUBENV_INVALID':
    case 'BOOTED_SLOT_UNKNOWN':
      return {
        title: "Writing the update to the gateway's storage failed.",
        advice: `${cap(a.choose)} ${a.reboot}, then ${a.retry}. If it fails again, the storage may be faulty: a ${a.factoryReset} or support may be needed.`,
      };
    case 'HEALTH_CHECK_FAILED':
      return {
        title: 'The new release did not start correctly; the gateway went back to the previous one.',
        advice: `${retryLater}, or contact support.`,
      };
    case 'CHECK_INTERRUPTED':
      return {
        title: 'The check for updates stopped the update agent each time it ran, so it was given up.',
        advice:
          'The gateway checks again at its next update window or start. If this happens again, download the logs and contact support.',
      };
    case 'CLOCK_NOT_SET':
      return {
        title: "The gateway's clock is not set (no NTP yet), so the update was deferred.",
        advice: `Nothing was downloaded or changed; the gateway checks again by itself once its clock is set. If it stays unset, check that the gateway reaches its NTP server (udp/123; the diagnostics show the clock), then ${retry}.`,
      };
    case 'CRITICAL_PHASE_FAILED':
      return {
        title: 'The update was interrupted at a critical moment.',
        advice: 'The gateway resets itself to factory defaults and updates again.',
      };
    default:
      return undefined;
  }
}
