/**
 * The OVF environment parser against a table of documents (VMware's own shape, other prefixes,
 * the default namespace, attributes outside the namespace, missing and malformed values, entity
 * tricks), and the first-boot plan: blank `cl.ip0` → DHCP, bad values → reasons and DHCP.
 */

import { ClgwError } from '@clgw/core/errors.js';
import { MAX_OVF_ENV_BYTES, parseOvfEnvironment } from '@clgw/core/firstboot/ovf-env.js';
import { describe, expect, it } from 'vitest';
import { planNetwork } from '../../../firstboot/src/plan.js';
import { PLANS, STATIC, STATIC_SETTINGS } from '../../support/ovf-cases.js';

const NS = 'http://schemas.dmtf.org/ovf/environment/1';

/** What vSphere puts in guestinfo.ovfEnv (and on the ISO), with its own vmware-namespace extras. */
const VMWARE = `<?xml version="1.0" encoding="UTF-8"?>
<Environment
     xmlns="${NS}"
     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xmlns:oe="${NS}"
     xmlns:ve="http://www.vmware.com/schema/ovfenv"
     oe:id=""
     ve:vCenterId="vm-1042">
   <PlatformSection>
      <Kind>VMware ESXi</Kind>
      <Version>8.0.2</Version>
      <Vendor>VMware, Inc.</Vendor>
      <Locale>en</Locale>
   </PlatformSection>
   <PropertySection>
         <Property oe:key="cl.dns0" oe:value="10.0.2.3"/>
         <Property oe:key="cl.gateway0" oe:value="10.0.2.2"/>
         <Property oe:key="cl.hostname" oe:value="gw-hq"/>
         <Property oe:key="cl.ip0" oe:value="10.0.2.15"/>
         <Property oe:key="cl.netmask0" oe:value="24"/>
         <Property oe:key="vm.vmname" oe:value="CloudLink Gateway"/>
   </PropertySection>
   <ve:EthernetAdapterSection>
      <ve:Adapter ve:mac="00:50:56:a1:b2:c3" ve:network="LAN" ve:unitNumber="7"/>
   </ve:EthernetAdapterSection>
</Environment>
`;

/** Documents that parse, and the `cl.*` values they carry. */
const accepted: [string, string, Record<string, string>][] = [
  ['VMware guestinfo shape', VMWARE, STATIC],
  [
    'ovfenv: prefix everywhere',
    `<ovfenv:Environment xmlns:ovfenv="${NS}"><ovfenv:PropertySection>
       <ovfenv:Property ovfenv:key="cl.ip0" ovfenv:value="192.168.1.10"/>
       <ovfenv:Property ovfenv:key="cl.netmask0" ovfenv:value="255.255.255.0"/>
     </ovfenv:PropertySection></ovfenv:Environment>`,
    { ip0: '192.168.1.10', netmask0: '255.255.255.0' },
  ],
  [
    'ns0: prefix (Python ElementTree writes it)',
    `<ns0:Environment xmlns:ns0="${NS}"><ns0:PropertySection>
       <ns0:Property ns0:key="cl.hostname" ns0:value="edge"/></ns0:PropertySection></ns0:Environment>`,
    { hostname: 'edge' },
  ],
  [
    'default namespace for elements, another prefix for attributes',
    `<Environment xmlns="${NS}" xmlns:e="${NS}"><PropertySection>
       <Property e:key="cl.ip0" e:value=""/></PropertySection></Environment>`,
    { ip0: '' },
  ],
  [
    'no PropertySection at all',
    `<Environment xmlns="${NS}"><PlatformSection><Kind>KVM</Kind></PlatformSection></Environment>`,
    {},
  ],
  [
    'properties of other virtual machines (Entity) are not this one’s',
    `<oe:Environment xmlns:oe="${NS}"><oe:Entity oe:id="peer"><oe:PropertySection>
       <oe:Property oe:key="cl.ip0" oe:value="10.9.9.9"/></oe:PropertySection></oe:Entity>
     <oe:PropertySection><oe:Property oe:key="cl.hostname" oe:value="me"/></oe:PropertySection></oe:Environment>`,
    { hostname: 'me' },
  ],
  [
    'values keep their text (entities and character references decoded)',
    `<oe:Environment xmlns:oe="${NS}"><oe:PropertySection>
       <oe:Property oe:key="cl.hostname" oe:value="a&amp;b&#x41;"/></oe:PropertySection></oe:Environment>`,
    { hostname: 'a&bA' },
  ],
];

describe('parseOvfEnvironment: accepted documents', () => {
  it.each(accepted)('%s', (_name, doc, cl) => {
    expect(parseOvfEnvironment(doc).cl).toEqual(cl);
  });

  it('keeps every property, the platform, and nothing ignored in VMware’s shape', () => {
    const env = parseOvfEnvironment(VMWARE);
    expect(env.properties).toEqual({
      'cl.dns0': '10.0.2.3',
      'cl.gateway0': '10.0.2.2',
      'cl.hostname': 'gw-hq',
      'cl.ip0': '10.0.2.15',
      'cl.netmask0': '24',
      'vm.vmname': 'CloudLink Gateway',
    });
    expect(env.platform).toEqual({
      kind: 'VMware ESXi',
      version: '8.0.2',
      vendor: 'VMware, Inc.',
      locale: 'en',
    });
    expect(env.ignored).toEqual([]);
  });

  it('the same document as bytes, with a UTF-8 byte order mark', () => {
    const bytes = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(VMWARE)]);
    expect(parseOvfEnvironment(bytes).cl).toEqual(STATIC);
  });

  it('attributes without the namespace do not count: the Property is ignored and said so', () => {
    const env = parseOvfEnvironment(
      `<Environment xmlns="${NS}" xmlns:x="urn:other"><PropertySection>
         <Property key="cl.ip0" value="10.0.0.5"/>
         <Property x:key="cl.netmask0" x:value="24"/>
       </PropertySection></Environment>`,
    );
    expect(env.cl).toEqual({});
    expect(env.ignored).toEqual([
      'Property without a key in the OVF environment namespace (line 2)',
      'Property without a key in the OVF environment namespace (line 3)',
    ]);
  });

  it('a key such as __proto__ stays a plain entry', () => {
    const env = parseOvfEnvironment(
      `<e:Environment xmlns:e="${NS}"><e:PropertySection><e:Property e:key="__proto__" e:value="x"/></e:PropertySection></e:Environment>`,
    );
    expect(Object.getPrototypeOf(env.properties)).toBe(Object.prototype);
    expect(Object.entries(env.properties)).toEqual([['__proto__', 'x']]);
  });
});

const oe = (body: string) => `<oe:Environment xmlns:oe="${NS}">${body}</oe:Environment>`;

/** A valid document made larger than the cap by a comment. */
const OVERSIZE = oe(`<!--${'x'.repeat(MAX_OVF_ENV_BYTES)}-->`);

/** Documents refused as a whole, and what the message says. */
const refused: [string, string | Uint8Array, RegExp][] = [
  [
    'not XML at all',
    'ip0=10.0.0.5',
    /not well-formed XML: no root element \(the document begins "ip0=10\.0\.0\.5"\)$/,
  ],
  ['empty', '', /not well-formed XML/],
  ['unclosed element', `<Environment xmlns="${NS}"><PropertySection></Environment>`, /not well-formed XML/],
  [
    'unquoted attribute (xmldom only warns)',
    `<Environment xmlns="${NS}" xmlns:oe="${NS}"><PropertySection><Property oe:key=cl.ip0 oe:value="1"/></PropertySection></Environment>`,
    /not well-formed XML/,
  ],
  ['unbound prefix', `<oe:Environment><oe:PropertySection/></oe:Environment>`, /not well-formed XML/],
  ['two root elements', `<Environment xmlns="${NS}"/><Environment xmlns="${NS}"/>`, /not well-formed XML/],
  [
    'undefined entity',
    oe(`<oe:PropertySection><oe:Property oe:key="cl.ip0" oe:value="&ip;"/></oe:PropertySection>`),
    /not well-formed XML: .*entity not found/,
  ],
  [
    'internal entity (DOCTYPE refused before anything expands)',
    `<!DOCTYPE oe:Environment [<!ENTITY ip "10.0.0.5">]>${oe(
      `<oe:PropertySection><oe:Property oe:key="cl.ip0" oe:value="&ip;"/></oe:PropertySection>`,
    )}`,
    /has a DOCTYPE \(not allowed\)/,
  ],
  [
    'billion laughs',
    `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>${oe('&lol2;')}`,
    /has a DOCTYPE/,
  ],
  [
    'external entity',
    `<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/shadow">]>${oe('&ext;')}`,
    /has a DOCTYPE/,
  ],
  [
    'wrong root element',
    `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>`,
    /root element is \{http:\/\/schemas\.dmtf\.org\/ovf\/envelope\/1\}Envelope, not \{http:\/\/schemas\.dmtf\.org\/ovf\/environment\/1\}Environment/,
  ],
  [
    'Environment without a namespace',
    '<Environment><PropertySection/></Environment>',
    /root element is \{\}Environment/,
  ],
  [
    'Environment in another namespace',
    '<Environment xmlns="http://schemas.dmtf.org/ovf/environment/2"/>',
    /root element is \{http:\/\/schemas\.dmtf\.org\/ovf\/environment\/2\}Environment/,
  ],
  [
    'duplicate key',
    oe(
      `<oe:PropertySection><oe:Property oe:key="cl.ip0" oe:value="10.0.0.5"/><oe:Property oe:key="cl.ip0" oe:value="10.0.0.6"/></oe:PropertySection>`,
    ),
    /property cl\.ip0 is given twice/,
  ],
  [
    'duplicate key across two PropertySections',
    oe(
      `<oe:PropertySection><oe:Property oe:key="cl.dns0" oe:value="1.1.1.1"/></oe:PropertySection><oe:PropertySection><oe:Property oe:key="cl.dns0" oe:value="8.8.8.8"/></oe:PropertySection>`,
    ),
    /property cl\.dns0 is given twice/,
  ],
  [
    'property without a value',
    oe(`<oe:PropertySection><oe:Property oe:key="cl.ip0"/></oe:PropertySection>`),
    /property cl\.ip0 has no value/,
  ],
  ['oversize document', OVERSIZE, new RegExp(`document is ${OVERSIZE.length} bytes \\(at most 262144\\)`)],
  ['bytes that are not UTF-8', new Uint8Array([0x3c, 0xff, 0xfe, 0x3e]), /document is not UTF-8 text/],
];

describe('parseOvfEnvironment: refused documents', () => {
  it.each(refused)('%s', (_name, doc, message) => {
    let error: unknown;
    try {
      parseOvfEnvironment(doc);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ClgwError);
    expect((error as ClgwError).code).toBe('OVF_ENV_INVALID');
    expect((error as ClgwError).message).toMatch(/^OVF environment: /);
    expect((error as ClgwError).message).toMatch(message);
  });
});

describe('parseOvfEnvironment: what a garbled document is told', () => {
  const messageOf = (doc: string) => {
    try {
      parseOvfEnvironment(doc);
    } catch (e) {
      return (e as ClgwError).message;
    }
    throw new Error('accepted');
  };

  it('states the problem once, without xmldom\u2019s wrapping', () => {
    for (const doc of [
      'garbage here',
      `<Environment xmlns="${NS}"><PropertySection></Environment>`,
      '<a b=c/>',
    ]) {
      const m = messageOf(doc);
      expect(m, doc).not.toMatch(/Reporting|caused Error|fatalError|warning:/);
      // No phrase of five words or more said twice.
      const words = m.split(' ');
      for (let i = 0; i + 5 <= words.length; i++)
        expect(
          m.indexOf(words.slice(i, i + 5).join(' '), m.indexOf(words.slice(i, i + 5).join(' ')) + 1),
          m,
        ).toBe(-1);
    }
    expect(messageOf('garbage here')).toBe(
      'OVF environment: not well-formed XML: no root element (the document begins "garbage here")',
    );
    expect(messageOf('')).toBe('OVF environment: not well-formed XML: the document is empty');
  });

  it('quotes text outside the root element with its spaces (xmldom drops them)', () => {
    expect(messageOf(`garbage here ${oe('')}`)).toBe(
      'OVF environment: not well-formed XML: text outside the root element: "garbage here"',
    );
    expect(messageOf(`${oe('')}\ntrailing  text\there`)).toBe(
      'OVF environment: not well-formed XML: text after the root element: "trailing  text\\there"',
    );
    expect(messageOf('x'.repeat(200))).toMatch(/begins "x{59}…"\)$/);
  });
});

describe('planNetwork', () => {
  it.each(PLANS)('%s', (_name, cl, settings, reasons) => {
    expect(planNetwork(cl)).toEqual({ settings, reasons });
  });

  it('a long value is cut in the reason', () => {
    const [line] = planNetwork({ ip0: '1'.repeat(500), netmask0: '24' }).reasons;
    expect(line).toBe(`cl.ip0: '${'1'.repeat(80)}…' is not an IPv4 address; falling back to DHCP`);
  });

  it('VMware’s document end to end: static', () => {
    expect(planNetwork(parseOvfEnvironment(VMWARE).cl)).toEqual({ settings: STATIC_SETTINGS, reasons: [] });
  });
});
