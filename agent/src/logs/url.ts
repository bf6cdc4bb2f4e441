/**
 * The address a log download link names. Pure: no `node:*` imports.
 */

export interface LinkHostInput {
  /** The portal's URL as it wrote it at start (`http://127.0.0.1:80/` when it listens on all addresses). */
  portalUrl: string;
  /** The address the portal listens on (`0.0.0.0` on the appliance). */
  listenHost: string;
  /** The static IPv4 address from the network settings, when set. */
  staticAddress?: string;
  /** The LAN port's current IPv4 address (DHCP), when it has one. */
  interfaceAddress?: string;
}

/**
 * `http://<ip>[:port]/logs/<token>`. A portal bound to one address (the simulator's loopback) is
 * reachable only there; one bound to all addresses is reached on the LAN at the static address,
 * else the address DHCP gave the LAN port, else (no address known) the portal's own URL host.
 */
export function logLinkUrl(input: LinkHostInput, token: string): string {
  const portal = new URL(input.portalUrl);
  const anyAddress = input.listenHost === '0.0.0.0' || input.listenHost === '::';
  const host = anyAddress
    ? (input.staticAddress ?? input.interfaceAddress ?? portal.hostname)
    : portal.hostname;
  const url = new URL(`http://${host}/`);
  url.port = portal.port;
  url.pathname = `/logs/${token}`;
  return url.toString();
}
