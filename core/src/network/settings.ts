/**
 * The appliance's network settings as a technician enters them (console menu, CLI, API): DHCP or
 * static IPv4, and the hostname. Validation names the field and says why; rendering produces the
 * systemd-networkd unit and the hostname file. Pure: no `node:*` imports.
 */
import { ClgwError } from '../errors.js';

export interface StaticIpv4 {
  mode: 'static';
  address: string;
  prefixLength: number;
  /** Absent: no default route (a LAN-only appliance is allowed, if unusual). */
  gateway?: string;
  dns: string[];
}

export interface NetworkSettings {
  hostname: string;
  ipv4: { mode: 'dhcp' } | StaticIpv4;
}

/** What arrives from a form or the API before validation (strings as typed). */
export interface NetworkInput {
  hostname?: unknown;
  /** `dhcp` or `static`. */
  mode?: unknown;
  address?: unknown;
  /** Dotted (`255.255.255.0`) or a prefix length (`24`, `/24`). */
  netmask?: unknown;
  gateway?: unknown;
  /** Comma-separated, or an array of addresses. */
  dns?: unknown;
}

export type NetworkField = keyof NetworkInput;

export interface NetworkProblem {
  field: NetworkField;
  message: string;
}

/** A factory-fresh appliance: DHCP on the first NIC (SPEC §5). */
export const DEFAULT_NETWORK: NetworkSettings = { hostname: 'cloudlink-gateway', ipv4: { mode: 'dhcp' } };

/** At most this many DNS servers (what systemd-resolved uses per link is not bounded, the form is). */
export const MAX_DNS = 3;

/** Parses a dotted-quad IPv4 address (no leading zeros, no shorthand); undefined when it is not one. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(value / 2 ** s) % 256).join('.');
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff - (2 ** (32 - prefix) - 1)) >>> 0;
}

/** A netmask as typed (`255.255.255.0`, `24`, `/24`) → prefix length, or why it is not one. */
export function parseNetmask(text: string): number | string {
  const t = text.trim();
  const prefix = /^\/?([0-9]{1,2})$/.exec(t);
  if (prefix) {
    const n = Number(prefix[1]);
    if (n < 1 || n > 32) return `prefix length ${n} is out of range (1-32)`;
    return n;
  }
  const value = parseIpv4(t);
  if (value === undefined) return `"${t}" is neither a dotted netmask nor a prefix length`;
  for (let p = 0; p <= 32; p++)
    if (maskOf(p) === value) return p === 0 ? 'netmask 0.0.0.0 is not allowed' : p;
  return `${t} is not a contiguous netmask`;
}

/**
 * RFC 1123 host name: labels of letters, digits and hyphens, ≤ 63 chars each. At most 64 in all,
 * not DNS's 253: the kernel (HOST_NAME_MAX) and systemd-hostnamed take no longer name, and one
 * accepted here would fail only when applied.
 */
export const MAX_HOSTNAME = 64;

/** The name as kept: a fully qualified name's trailing dot (`gw.example.com.`) is dropped. */
export function canonicalHostname(name: string): string {
  return name.length > 1 && name.endsWith('.') ? name.slice(0, -1) : name;
}

/** What is wrong with a host name (after {@link canonicalHostname}), or undefined. */
export function hostnameProblem(given: string): string | undefined {
  const name = canonicalHostname(given);
  if (name.length === 0) return 'must not be empty';
  if (name.length > MAX_HOSTNAME) return `is ${name.length} characters long (at most ${MAX_HOSTNAME})`;
  for (const label of name.split('.')) {
    if (label.length === 0) return 'has an empty label (two dots, or a dot at either end)';
    if (label.length > 63)
      return `label "${label.slice(0, 20)}…" is ${label.length} characters long (at most 63)`;
    if (!/^[A-Za-z0-9-]+$/.test(label)) return `label "${label}" may only hold letters, digits and hyphens`;
    if (label.startsWith('-') || label.endsWith('-'))
      return `label "${label}" must not start or end with a hyphen`;
  }
  if (/^[0-9.]+$/.test(name)) return 'must not be all digits (it would read as an address)';
  // Every machine's name for itself: other hosts could not reach the gateway by it.
  if (/^localhost$|\.localhost$|^localhost\./i.test(name))
    return 'is reserved (localhost names the machine itself)';
  return undefined;
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v.trim() : undefined;
}

/** Every problem with the input, field by field (empty when it is valid). For inline validation. */
export function networkProblems(input: NetworkInput): NetworkProblem[] {
  return check(input).problems;
}

/** The settings the input stands for; SETTING_INVALID naming the first field and its problem otherwise. */
export function validateNetworkSettings(input: NetworkInput): NetworkSettings {
  const { settings, problems } = check(input);
  const first = problems[0];
  if (first || !settings) {
    const p = first ?? { field: 'mode' as const, message: 'is invalid' };
    throw new ClgwError('SETTING_INVALID', `network setting ${p.field} ${p.message}`, {
      details: { field: p.field, problems },
    });
  }
  return settings;
}

function check(input: NetworkInput): { settings?: NetworkSettings; problems: NetworkProblem[] } {
  const problems: NetworkProblem[] = [];
  const bad = (field: NetworkField, message: string) => problems.push({ field, message });

  const given = text(input.hostname);
  const hostname = given === undefined ? undefined : canonicalHostname(given);
  if (hostname === undefined) bad('hostname', 'is missing');
  else {
    const why = hostnameProblem(given!);
    if (why) bad('hostname', why);
  }

  const mode = text(input.mode);
  if (mode === 'dhcp') {
    return problems.length
      ? { problems }
      : { settings: { hostname: hostname!, ipv4: { mode: 'dhcp' } }, problems };
  }
  if (mode !== 'static') {
    bad('mode', `must be "dhcp" or "static" (got ${JSON.stringify(input.mode)})`);
    return { problems };
  }

  const addressText = text(input.address) ?? '';
  const address = parseIpv4(addressText);
  if (address === undefined)
    bad('address', addressText ? `"${addressText}" is not an IPv4 address` : 'is missing');

  const maskText = text(input.netmask) ?? '';
  const prefix = maskText ? parseNetmask(maskText) : 'is missing';
  if (typeof prefix === 'string') bad('netmask', prefix);

  if (address !== undefined && typeof prefix === 'number') {
    const first = address >>> 24;
    if (first === 0 || first === 127 || first >= 224) {
      bad(
        'address',
        `${addressText} is not a usable host address (${first === 127 ? 'loopback' : first >= 224 ? 'multicast or reserved' : 'this network'})`,
      );
    } else if (address >>> 16 === (169 << 8) + 254) {
      // What a host gives itself without DHCP: routers do not forward it, so the cloud and the
      // download server could never be reached from it.
      bad('address', `${addressText} is a link-local address (169.254.0.0/16), which routers do not forward`);
    } else if (prefix <= 30) {
      const mask = maskOf(prefix);
      const network = (address & mask) >>> 0;
      const broadcast = (network | (~mask >>> 0)) >>> 0;
      if (address === network)
        bad('address', `${addressText} is the network address of ${formatIpv4(network)}/${prefix}`);
      if (address === broadcast)
        bad('address', `${addressText} is the broadcast address of ${formatIpv4(network)}/${prefix}`);
    }
  }

  let gateway: string | undefined;
  const gatewayText = text(input.gateway) ?? '';
  if (gatewayText) {
    const gw = parseIpv4(gatewayText);
    if (gw === undefined) bad('gateway', `"${gatewayText}" is not an IPv4 address`);
    else if (address !== undefined && typeof prefix === 'number') {
      const mask = maskOf(prefix);
      const network = (address & mask) >>> 0;
      if ((gw & mask) >>> 0 !== network)
        bad('gateway', `${gatewayText} is outside the subnet ${formatIpv4(network)}/${prefix}`);
      else if (gw === address) bad('gateway', `${gatewayText} is the appliance's own address`);
      else if (prefix <= 30 && (gw === network || gw === (network | (~mask >>> 0)) >>> 0))
        bad(
          'gateway',
          `${gatewayText} is the network or broadcast address of ${formatIpv4(network)}/${prefix}`,
        );
      else gateway = gatewayText;
    }
  }

  const dnsList = Array.isArray(input.dns)
    ? input.dns.map((d) => (typeof d === 'string' ? d.trim() : String(d)))
    : (text(input.dns) ?? '').split(',').map((d) => d.trim());
  const dns = dnsList.filter((d) => d !== '');
  if (input.dns !== undefined && !Array.isArray(input.dns) && typeof input.dns !== 'string') {
    bad('dns', 'must be a comma-separated list of addresses');
  }
  if (dns.length > MAX_DNS) bad('dns', `lists ${dns.length} servers (at most ${MAX_DNS})`);
  for (const d of dns) if (parseIpv4(d) === undefined) bad('dns', `"${d}" is not an IPv4 address`);

  if (problems.length || address === undefined || typeof prefix !== 'number') return { problems };
  return {
    settings: {
      hostname: hostname!,
      ipv4: {
        mode: 'static',
        address: formatIpv4(address),
        prefixLength: prefix,
        ...(gateway ? { gateway } : {}),
        dns,
      },
    },
    problems,
  };
}

/** The systemd-networkd unit for the appliance's LAN port (`iface`, e.g. `eth0` or `en*`). */
export function renderNetworkUnit(settings: NetworkSettings, iface: string): string {
  const lines = [
    '# Written by clgw-agent from var/clgw/network/settings.json; edits are replaced.',
    '[Match]',
    `Name=${iface}`,
    '',
    '[Network]',
  ];
  if (settings.ipv4.mode === 'dhcp') {
    lines.push('DHCP=ipv4');
  } else {
    const s = settings.ipv4;
    lines.push(`Address=${s.address}/${s.prefixLength}`);
    if (s.gateway) lines.push(`Gateway=${s.gateway}`);
    for (const d of s.dns) lines.push(`DNS=${d}`);
  }
  lines.push('LinkLocalAddressing=no', 'IPv6AcceptRA=no');
  return `${lines.join('\n')}\n`;
}

/** `/etc/hostname` content. */
export function renderHostname(settings: NetworkSettings): string {
  return `${settings.hostname}\n`;
}

/** The settings back in the form they are validated in (for settings read from disk). */
export function toInput(settings: NetworkSettings): NetworkInput {
  const s = settings.ipv4;
  return s.mode === 'dhcp'
    ? { hostname: settings.hostname, mode: 'dhcp' }
    : {
        hostname: settings.hostname,
        mode: 'static',
        address: s.address,
        netmask: String(s.prefixLength),
        gateway: s.gateway ?? '',
        dns: s.dns,
      };
}

/** One line for status, logs and the console: `static 10.0.0.20/24 via 10.0.0.1` or `DHCP`. */
export function describeNetwork(settings: NetworkSettings): string {
  const s = settings.ipv4;
  if (s.mode === 'dhcp') return 'DHCP';
  return `static ${s.address}/${s.prefixLength}${s.gateway ? ` via ${s.gateway}` : ''}${s.dns.length ? `, DNS ${s.dns.join(', ')}` : ''}`;
}
