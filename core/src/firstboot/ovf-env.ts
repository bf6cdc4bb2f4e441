/**
 * The OVF environment document (DMTF DSP0243 §11) a hypervisor hands the appliance at deployment:
 * `<Environment>` in the namespace below, with this machine's properties as
 * `<PropertySection><Property oe:key="cl.ip0" oe:value="…"/>`. Parsed namespace-aware, so any
 * prefix (or the default namespace) works and an attribute outside the namespace does not count.
 * Untrusted input: size capped, DOCTYPE refused, anything malformed is OVF_ENV_INVALID.
 * Pure: no `node:*` imports.
 */
import { DOMParser, type Element } from '@xmldom/xmldom';
import { ClgwError } from '../errors.js';
import { oneLine } from '../format.js';

export const OVF_ENV_NS = 'http://schemas.dmtf.org/ovf/environment/1';

/** Far above a real environment (a few KiB even with VMware's extras). */
export const MAX_OVF_ENV_BYTES = 256 * 1024;

/** The properties the OVA declares (ProductSection `ovf:class="cl"`, SPEC.md §5). */
export const CL_KEYS = ['hostname', 'ip0', 'netmask0', 'gateway0', 'dns0'] as const;
export type ClKey = (typeof CL_KEYS)[number];

export interface OvfEnvironment {
  /** `cl.*` values by key without the class (`ip0`), as given (untrimmed); absent when not given. */
  cl: Partial<Record<ClKey, string>>;
  /** Every property of this machine, by full key (`cl.ip0`, or another product's). */
  properties: Record<string, string>;
  /** The hypervisor's PlatformSection (`VMware ESXi`, version…), where there is one. */
  platform?: { kind?: string; version?: string; vendor?: string; locale?: string };
  /** Elements that were skipped and why (a Property without a namespaced key), for the log. */
  ignored: string[];
}

function invalid(message: string, details: Record<string, unknown> = {}): ClgwError {
  return new ClgwError('OVF_ENV_INVALID', `OVF environment: ${message}`, { details });
}

/** Child elements of `parent` in the OVF environment namespace named `name` (not deeper ones). */
function children(parent: Element, name: string): Element[] {
  const out: Element[] = [];
  for (let n = parent.firstChild; n; n = n.nextSibling) {
    const e = n as Element;
    if (n.nodeType === n.ELEMENT_NODE && e.namespaceURI === OVF_ENV_NS && e.localName === name) out.push(e);
  }
  return out;
}

function text(parent: Element, name: string): string | undefined {
  const e = children(parent, name)[0];
  return e ? (e.textContent ?? '').trim() : undefined;
}

/** Text from the document as a short quotation: one line, at most 60 characters. */
function quote(text: string): string {
  const t = oneLine(text.trim());
  return `"${t.length > 60 ? `${t.slice(0, 59)}…` : t}"`;
}

/**
 * xmldom's report as one statement, quoting the document where it helps. xmldom removes the
 * spaces from text it quotes ('garbage here' becomes 'garbagehere'): text outside the root
 * element is quoted from the document instead.
 */
function xmlProblem(report: string, source: string): string {
  const why = report.split('\n')[0]!.trim();
  const before = source.slice(0, Math.max(0, source.indexOf('<')));
  const after = source.slice(source.lastIndexOf('>') + 1);
  if (/^Unexpected content outside root element/i.test(why)) {
    const outside = before.trim() || after.trim();
    return outside ? `text outside the root element: ${quote(outside)}` : why;
  }
  if (/^Extra content at the end/i.test(why) && after.trim())
    return `text after the root element: ${quote(after)}`;
  if (/missing root element/i.test(why))
    return source.trim() ? `no root element (the document begins ${quote(source)})` : 'the document is empty';
  return why;
}

/** The document as bytes (a CD-ROM file) or text (guestinfo) → its properties. */
export function parseOvfEnvironment(input: Uint8Array | string): OvfEnvironment {
  const size = typeof input === 'string' ? new TextEncoder().encode(input).length : input.length;
  if (size > MAX_OVF_ENV_BYTES)
    throw invalid(`document is ${size} bytes (at most ${MAX_OVF_ENV_BYTES})`, { size });
  let source: string;
  try {
    source = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
  } catch {
    throw invalid('document is not UTF-8 text');
  }
  // xmldom does not fetch external entities, but internal ones still expand; an environment
  // never needs a DTD, so none is accepted at all.
  if (/<!DOCTYPE/i.test(source)) throw invalid('document has a DOCTYPE (not allowed)');

  let root: Element | null;
  let report: string | undefined;
  try {
    const parser = new DOMParser({
      // Every report — warnings too (unquoted attributes and the like) — makes the document invalid.
      // xmldom wraps what is thrown here in words of its own ("Reporting fatalError "x" caused
      // Error: fatalError: x"), saying it twice: the first report's own words are kept instead.
      onError: (_level, message) => {
        report ??= message;
        throw new Error(message);
      },
    });
    root = parser.parseFromString(source, 'application/xml').documentElement;
  } catch (e) {
    throw invalid(`not well-formed XML: ${xmlProblem(report ?? (e as Error).message, source)}`);
  }
  if (!root) throw invalid('document has no root element');
  if (root.localName !== 'Environment' || root.namespaceURI !== OVF_ENV_NS) {
    throw invalid(
      `root element is {${root.namespaceURI ?? ''}}${root.localName}, not {${OVF_ENV_NS}}Environment`,
      { root: root.localName, namespace: root.namespaceURI },
    );
  }

  const properties = new Map<string, string>();
  const ignored: string[] = [];
  // Only the root's own PropertySection: those inside <Entity> belong to other virtual machines.
  for (const section of children(root, 'PropertySection')) {
    for (const p of children(section, 'Property')) {
      const key = p.getAttributeNS(OVF_ENV_NS, 'key');
      if (key === null) {
        ignored.push(`Property without a key in the OVF environment namespace (line ${p.lineNumber})`);
        continue;
      }
      const value = p.getAttributeNS(OVF_ENV_NS, 'value');
      if (value === null) throw invalid(`property ${key} has no value`, { key });
      if (properties.has(key)) throw invalid(`property ${key} is given twice`, { key });
      properties.set(key, value);
    }
  }

  const cl: Partial<Record<ClKey, string>> = {};
  for (const k of CL_KEYS) {
    const v = properties.get(`cl.${k}`);
    if (v !== undefined) cl[k] = v;
  }
  const platformSection = children(root, 'PlatformSection')[0];
  return {
    cl,
    // fromEntries defines own properties, so a key such as `__proto__` stays a plain entry.
    properties: Object.fromEntries(properties),
    ...(platformSection
      ? {
          platform: {
            kind: text(platformSection, 'Kind'),
            version: text(platformSection, 'Version'),
            vendor: text(platformSection, 'Vendor'),
            locale: text(platformSection, 'Locale'),
          },
        }
      : {}),
    ignored,
  };
}
