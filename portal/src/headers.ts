/**
 * The portal's HTTP policy: the headers every response carries, which Host names it answers to,
 * and which requests count as coming from its own page. Pure: no `node:*` imports.
 */
import { LOCAL_NAME } from '@clgw/core/format.js';

/** The page has no inline script or style and loads nothing from anywhere else. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Sent with every response, errors included. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/** The host part of a Host header (`name`, `1.2.3.4`, `[::1]`), lower-cased, without the port. */
export function hostName(hostHeader: string | undefined): string | undefined {
  if (!hostHeader) return undefined;
  const h = hostHeader.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/.exec(h);
  return m ? m[1] : undefined;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/**
 * Whether the portal answers a request for this Host. IP literals, `localhost`, `cloudlink.local`
 * and the appliance's own hostname (bare and `.local`) are its names; anything else is a name some
 * other DNS gave the appliance's address — the DNS-rebinding trick by which another site's page
 * would become same-origin with the portal and read its tokens.
 */
export function isAllowedHost(hostHeader: string | undefined, names: Iterable<string>): boolean {
  const host = hostName(hostHeader);
  if (!host) return false;
  if (IPV4.test(host) || host.startsWith('[')) return true;
  if (host === 'localhost' || host === LOCAL_NAME) return true;
  for (const n of names) {
    const name = n.toLowerCase();
    if (host === name || host === `${name}.local`) return true;
  }
  return false;
}

/**
 * Why a state-changing request is not from the portal's own page, or undefined when it may be.
 * Browsers send `Sec-Fetch-Site` and `Origin` with every fetch POST; a client that sends neither
 * (curl) still needs a valid token.
 */
export function crossSiteReason(headers: {
  host?: string;
  origin?: string;
  'sec-fetch-site'?: string;
}): string | undefined {
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return `Sec-Fetch-Site is ${site}`;
  const origin = headers.origin;
  if (origin === undefined) return undefined;
  const host = headers.host?.trim().toLowerCase();
  if (!host || origin.toLowerCase() !== `http://${host}`) return `Origin ${origin} is not this portal`;
  return undefined;
}
