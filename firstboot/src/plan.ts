/**
 * What the first boot makes of the OVF properties (SPEC.md §5): the network settings to save and,
 * for every value it could not use, one reason naming the key and the value. A box deployed
 * with a typo must stay reachable, so a bad static field means DHCP, never no address; a bad
 * hostname means the default name, without throwing away a good static address.
 * Pure: no `node:*` imports.
 */

import type { ClKey, OvfEnvironment } from '@clgw/core/firstboot/ovf-env.js';
import { oneLine } from '@clgw/core/format.js';
import {
  canonicalHostname,
  DEFAULT_NETWORK,
  hostnameProblem,
  type NetworkField,
  type NetworkInput,
  type NetworkSettings,
  networkProblems,
  validateNetworkSettings,
} from '@clgw/core/network/settings.js';

export interface FirstBootPlan {
  settings: NetworkSettings;
  /** One line per value not used, e.g. `cl.ip0: '10.0.2.300' is not an IPv4 address; …`. */
  reasons: string[];
}

/** The OVF key each validated field comes from (`mode` follows from `cl.ip0` being blank or not). */
const KEY_OF: Record<NetworkField, ClKey> = {
  hostname: 'hostname',
  mode: 'ip0',
  address: 'ip0',
  netmask: 'netmask0',
  gateway: 'gateway0',
  dns: 'dns0',
};

/** A value as it goes into a one-line reason: length capped, control characters escaped. */
function shown(value: string): string {
  return oneLine(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

/**
 * `cl.ip0: '10.0.2.300' is not an IPv4 address`: the validator's message names the value
 * itself (quoted or not) where it can; that copy is replaced by the quoted original.
 */
function reason(key: ClKey, value: string, message: string): string {
  if (!value) return `cl.${key} ${oneLine(message)}`;
  for (const lead of [`"${value}" `, `${value} `]) {
    if (message.startsWith(lead))
      return `cl.${key}: '${shown(value)}' ${oneLine(message.slice(lead.length))}`;
  }
  // The message may quote the value (or a label of it) again: escaped like the value.
  return `cl.${key}: '${shown(value)}': ${oneLine(message)}`;
}

export function planNetwork(cl: OvfEnvironment['cl']): FirstBootPlan {
  const given = (k: ClKey): string => (cl[k] ?? '').trim();
  const reasons: string[] = [];

  let hostname = DEFAULT_NETWORK.hostname;
  const name = given('hostname');
  if (name) {
    const why = hostnameProblem(name);
    if (why) reasons.push(`${reason('hostname', name, why)}; keeping the hostname ${hostname}`);
    else hostname = canonicalHostname(name);
  }
  const dhcp: NetworkSettings = { hostname, ipv4: { mode: 'dhcp' } };

  if (!given('ip0')) {
    for (const k of ['netmask0', 'gateway0', 'dns0'] as const) {
      if (given(k)) reasons.push(`cl.${k}: '${shown(given(k))}' ignored: cl.ip0 is blank, so DHCP it is`);
    }
    return { settings: dhcp, reasons };
  }

  const input: NetworkInput = {
    hostname,
    mode: 'static',
    address: given('ip0'),
    netmask: given('netmask0'),
    gateway: given('gateway0'),
    dns: given('dns0'),
  };
  const problems = networkProblems(input);
  if (problems.length === 0) return { settings: validateNetworkSettings(input), reasons };
  for (const p of problems) {
    const key = KEY_OF[p.field];
    reasons.push(`${reason(key, given(key), p.message)}; falling back to DHCP`);
  }
  return { settings: dhcp, reasons };
}
