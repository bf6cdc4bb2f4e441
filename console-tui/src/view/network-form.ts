/**
 * The Ethernet and hostname form's model: the fields as typed, the agent's own validation
 * (`networkProblems`) mapped to the field it concerns for inline messages, and the request body.
 * Pure.
 */
import {
  type NetworkField,
  type NetworkInput,
  type NetworkSettings,
  networkProblems,
  validateNetworkSettings,
} from '@clgw/core/network/settings.js';

export interface FormValues {
  mode: 'dhcp' | 'static';
  address: string;
  netmask: string;
  gateway: string;
  /** Comma-separated. */
  dns: string;
  hostname: string;
}

export type FormField = keyof FormValues;

export const FIELD_LABELS: Record<FormField, string> = {
  mode: 'IPv4',
  address: 'Address',
  netmask: 'Netmask',
  gateway: 'Gateway',
  dns: 'DNS servers',
  hostname: 'Hostname',
};

/** The fields in form order; the static-only ones are left out while DHCP is chosen. */
export function visibleFields(values: FormValues): FormField[] {
  return values.mode === 'dhcp'
    ? ['mode', 'hostname']
    : ['mode', 'address', 'netmask', 'gateway', 'dns', 'hostname'];
}

/** The form filled from the settings in effect. */
export function formFromSettings(settings: NetworkSettings): FormValues {
  const s = settings.ipv4;
  return s.mode === 'dhcp'
    ? { mode: 'dhcp', address: '', netmask: '', gateway: '', dns: '', hostname: settings.hostname }
    : {
        mode: 'static',
        address: s.address,
        netmask: String(s.prefixLength),
        gateway: s.gateway ?? '',
        dns: s.dns.join(', '),
        hostname: settings.hostname,
      };
}

/** The request body for the agent (the static fields are not sent for DHCP). */
export function formToInput(values: FormValues): NetworkInput {
  return values.mode === 'dhcp'
    ? { mode: 'dhcp', hostname: values.hostname }
    : {
        mode: 'static',
        hostname: values.hostname,
        address: values.address,
        netmask: values.netmask,
        gateway: values.gateway,
        dns: values.dns,
      };
}

/**
 * The first problem of each field, worded for the lines under the form (`Address 10.0.0.0 is …`),
 * in the order of the fields on screen (the object's key order).
 */
export function formProblems(values: FormValues): Partial<Record<FormField, string>> {
  const found: Partial<Record<FormField, string>> = {};
  for (const p of networkProblems(formToInput(values))) {
    const field: FormField = p.field satisfies NetworkField as FormField;
    found[field] ??= `${FIELD_LABELS[field]} ${p.message}`;
  }
  const out: Partial<Record<FormField, string>> = {};
  for (const field of ALL_FIELDS) if (found[field] !== undefined) out[field] = found[field];
  return out;
}

const ALL_FIELDS: readonly FormField[] = ['mode', 'address', 'netmask', 'gateway', 'dns', 'hostname'];

/**
 * What Save is about to apply, for the dialog that asks first (a typo in the address cuts the
 * technician off from the network): the new settings, the ones in effect, and what follows.
 */
export function saveQuestion(
  values: FormValues,
  current: string,
): {
  title: string;
  text: string[];
  question: string;
} {
  // As the agent will take it (a dotted netmask as its prefix length); Save only asks once valid.
  let settings: NetworkSettings | undefined;
  try {
    settings = validateNetworkSettings(formToInput(values));
  } catch {
    settings = undefined;
  }
  const s = settings?.ipv4;
  const text = [
    `IPv4:      ${
      s?.mode === 'static'
        ? `static ${s.address}/${s.prefixLength}`
        : values.mode === 'dhcp'
          ? 'DHCP (the address comes from the DHCP server)'
          : `static ${values.address}, netmask ${values.netmask}`
    }`,
  ];
  if (values.mode === 'static') {
    const gateway = s?.mode === 'static' ? s.gateway : values.gateway;
    const dns = s?.mode === 'static' ? s.dns.join(', ') : values.dns;
    text.push(`Gateway:   ${gateway || '(none)'}`, `DNS:       ${dns || '(none)'}`);
  }
  text.push(`Hostname:  ${values.hostname}`, `Now:       ${current}`, '');
  text.push(
    'The gateway uses the new settings at once. A wrong address cuts it off from the network ' +
      '(this console keeps working).',
  );
  return { title: 'Apply network settings', text, question: 'Apply these network settings?' };
}

/** One form row: `Address       10.0.0.20`. */
export function fieldRow(values: FormValues, field: FormField): string {
  const value = field === 'mode' ? (values.mode === 'dhcp' ? 'DHCP' : 'static') : values[field];
  return `${FIELD_LABELS[field].padEnd(13)} ${value || '(empty)'}`;
}
