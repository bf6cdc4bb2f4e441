/**
 * What the first boot did, as every view shows it (status API, `clgw status`, tty1, the portal):
 * `firstboot.json` read back into display-safe text. The record's values came from the OVF
 * environment, which anyone deploying the VM wrote: each is escaped to one line here again.
 * Pure: no `node:*` imports.
 */
import { oneLine } from '../format.js';
import type { NetworkSettings } from '../network/settings.js';
import type { OvfEnvironment } from './ovf-env.js';

/** How the deployment settings reached the appliance. */
export type Transport = 'guestinfo' | 'iso' | 'file';

/** What became of the deployment settings (`firstboot.json`'s `outcome`). */
export type FirstBootOutcome =
  /** Every value given was used. */
  | 'applied'
  /** Used, but a value was not (a bad hostname, a netmask without an address): see the reasons. */
  | 'partial'
  /** A static address was asked for and could not be used, or the document was unusable: DHCP. */
  | 'refused'
  /** No OVF environment anywhere: the factory default (DHCP). */
  | 'none';

/** `firstboot.json`. */
export interface FirstBootRecord {
  at: string;
  outcome: FirstBootOutcome;
  transport: Transport | 'none';
  source?: string;
  /** The hypervisor's PlatformSection, where the environment has one. */
  platform?: OvfEnvironment['platform'];
  /** The `cl.*` properties as found (other products' properties are not kept). */
  properties?: OvfEnvironment['cl'];
  /** The settings saved; absent when nothing usable was found (the factory DHCP default stays). */
  network?: NetworkSettings;
  /** Every value, document or source not used, and why: one line each, control characters escaped. */
  reasons: string[];
}

export interface FirstBootView {
  at: string;
  outcome: FirstBootOutcome;
  transport: Transport | 'none';
  /** Where the settings came from (`guestinfo.ovfEnv`, `/dev/sr0: OVF-ENV.XML;1`), if anywhere. */
  source: string | null;
  /** The `cl.*` properties as deployed (`cl.ip0` → value), one line each. */
  properties: Record<string, string>;
  /** Every value, document or source not used, and why. */
  reasons: string[];
  /** One line: `Deployed settings applied (VMware guestinfo)`. */
  summary: string;
}

const OUTCOMES: readonly FirstBootOutcome[] = ['applied', 'partial', 'refused', 'none'];
const TRANSPORTS: readonly string[] = ['guestinfo', 'iso', 'file', 'none'];

const FROM: Record<Transport | 'none', string> = {
  guestinfo: 'VMware guestinfo',
  iso: 'CD-ROM',
  file: 'file',
  none: 'nowhere',
};

/** The `cl.*` keys the reasons name, in order, once each. */
function keysIn(reasons: readonly string[]): string[] {
  const keys: string[] = [];
  for (const r of reasons) {
    const key = /^cl\.[a-z0-9]+/.exec(r)?.[0];
    if (key && !keys.includes(key)) keys.push(key);
  }
  return keys;
}

function summaryOf(outcome: FirstBootOutcome, transport: Transport | 'none', reasons: string[]): string {
  const keys = keysIn(reasons);
  switch (outcome) {
    case 'applied':
      return `Deployed settings applied (${FROM[transport]})`;
    case 'partial':
      return `Deployed settings applied (${FROM[transport]}) except ${keys.join(', ') || 'one value'}`;
    case 'refused':
      return `Deployed settings refused: ${keys.length ? keys.join(', ') : 'the OVF environment is unusable'}; using DHCP`;
    case 'none':
      return 'No deployment settings found: using DHCP';
  }
}

/** `firstboot.json` as read from the data partition → the view, or null when absent or unreadable. */
export function firstBootView(record: unknown): FirstBootView | null {
  if (typeof record !== 'object' || record === null) return null;
  const r = record as Record<string, unknown>;
  if (typeof r.at !== 'string' || !TRANSPORTS.includes(r.transport as string)) return null;
  const transport = r.transport as Transport | 'none';
  const reasons = Array.isArray(r.reasons)
    ? r.reasons.filter((x): x is string => typeof x === 'string').map(oneLine)
    : [];
  const network = r.network as { ipv4?: { mode?: string } } | undefined;
  // A record from before outcomes were kept says enough to tell.
  const outcome: FirstBootOutcome = OUTCOMES.includes(r.outcome as FirstBootOutcome)
    ? (r.outcome as FirstBootOutcome)
    : transport === 'none'
      ? 'none'
      : !network
        ? 'refused'
        : reasons.length > 0
          ? 'partial'
          : 'applied';
  const properties: Record<string, string> = {};
  if (typeof r.properties === 'object' && r.properties !== null) {
    for (const [k, v] of Object.entries(r.properties)) {
      if (typeof v === 'string')
        properties[`cl.${oneLine(k)}`] = oneLine(v.length > 200 ? `${v.slice(0, 200)}…` : v);
    }
  }
  return {
    at: oneLine(r.at),
    outcome,
    transport,
    source: typeof r.source === 'string' ? oneLine(r.source) : null,
    properties,
    reasons,
    summary: summaryOf(outcome, transport, reasons),
  };
}
