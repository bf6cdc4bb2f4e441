import { ClgwError } from '@clgw/core/errors.js';
import {
  DEFAULT_NETWORK,
  describeNetwork,
  hostnameProblem,
  type NetworkInput,
  networkProblems,
  parseNetmask,
  renderHostname,
  renderNetworkUnit,
  toInput,
  validateNetworkSettings,
} from '@clgw/core/network/settings.js';
import { describe, expect, it } from 'vitest';

const ok = { hostname: 'gw-hq', mode: 'static', address: '10.0.0.20', netmask: '24', gateway: '10.0.0.1' };

/** Accepted inputs and the IPv4 settings they stand for. */
const accepted: [string, NetworkInput, object][] = [
  ['DHCP', { hostname: 'gw', mode: 'dhcp' }, { mode: 'dhcp' }],
  ['DHCP ignores stale static fields', { hostname: 'gw', mode: 'dhcp', address: 'junk' }, { mode: 'dhcp' }],
  ['prefix length', ok, { address: '10.0.0.20', prefixLength: 24, gateway: '10.0.0.1', dns: [] }],
  ['prefix with a slash', { ...ok, netmask: '/24' }, { prefixLength: 24 }],
  ['dotted mask', { ...ok, netmask: '255.255.255.0' }, { prefixLength: 24 }],
  ['/16 dotted', { ...ok, netmask: '255.255.0.0' }, { prefixLength: 16 }],
  ['/25 dotted', { ...ok, address: '10.0.0.20', netmask: '255.255.255.128' }, { prefixLength: 25 }],
  [
    '/30 point to point',
    { ...ok, address: '10.0.0.1', netmask: '30', gateway: '10.0.0.2' },
    { prefixLength: 30 },
  ],
  [
    '/31: both addresses usable',
    { ...ok, address: '10.0.0.0', netmask: '31', gateway: '10.0.0.1' },
    { prefixLength: 31 },
  ],
  ['/32 without a gateway', { ...ok, netmask: '32', gateway: '' }, { prefixLength: 32, dns: [] }],
  ['no gateway', { ...ok, gateway: '' }, { address: '10.0.0.20' }],
  ['one DNS', { ...ok, dns: '10.0.0.53' }, { dns: ['10.0.0.53'] }],
  ['DNS list with spaces', { ...ok, dns: ' 10.0.0.53 , 9.9.9.9 ' }, { dns: ['10.0.0.53', '9.9.9.9'] }],
  [
    'DNS as an array',
    { ...ok, dns: ['1.1.1.1', '8.8.8.8', '9.9.9.9'] },
    { dns: ['1.1.1.1', '8.8.8.8', '9.9.9.9'] },
  ],
  ['DNS empty entries skipped', { ...ok, dns: '1.1.1.1,,' }, { dns: ['1.1.1.1'] }],
  ['address with spaces around', { ...ok, address: ' 10.0.0.20 ' }, { address: '10.0.0.20' }],
  [
    '172.16/12 private',
    { ...ok, address: '172.16.5.4', netmask: '12', gateway: '172.16.0.1' },
    { prefixLength: 12 },
  ],
  ['192.168 /24', { ...ok, address: '192.168.1.10', gateway: '192.168.1.254' }, { gateway: '192.168.1.254' }],
];

/** Refused inputs: the field and a piece of the message that says why. */
const refused: [string, NetworkInput, string, string][] = [
  ['mode missing', { hostname: 'gw' }, 'mode', 'must be "dhcp" or "static"'],
  ['mode unknown', { hostname: 'gw', mode: 'auto' }, 'mode', '"auto"'],
  ['hostname missing', { mode: 'dhcp' }, 'hostname', 'is missing'],
  ['hostname empty', { hostname: '', mode: 'dhcp' }, 'hostname', 'must not be empty'],
  ['hostname underscore', { hostname: 'gw_hq', mode: 'dhcp' }, 'hostname', 'letters, digits and hyphens'],
  ['hostname space', { hostname: 'gw hq', mode: 'dhcp' }, 'hostname', 'letters, digits and hyphens'],
  ['hostname leading hyphen', { hostname: '-gw', mode: 'dhcp' }, 'hostname', 'start or end with a hyphen'],
  ['hostname trailing hyphen', { hostname: 'gw-', mode: 'dhcp' }, 'hostname', 'start or end with a hyphen'],
  ['hostname 64-char label', { hostname: 'a'.repeat(64), mode: 'dhcp' }, 'hostname', 'at most 63'],
  ['hostname double dot', { hostname: 'gw..local', mode: 'dhcp' }, 'hostname', 'empty label'],
  ['hostname two trailing dots', { hostname: 'gw..', mode: 'dhcp' }, 'hostname', 'empty label'],
  ['hostname only a dot', { hostname: '.', mode: 'dhcp' }, 'hostname', 'empty label'],
  ['hostname localhost', { hostname: 'LocalHost', mode: 'dhcp' }, 'hostname', 'reserved (localhost'],
  ['hostname under localhost', { hostname: 'gw.localhost', mode: 'dhcp' }, 'hostname', 'reserved'],
  [
    'link-local address',
    { ...ok, address: '169.254.10.20', netmask: '16', gateway: '' },
    'address',
    'link-local address (169.254.0.0/16), which routers do not forward',
  ],
  [
    'hostname too long',
    { hostname: `${'a'.repeat(32)}.${'b'.repeat(32)}`, mode: 'dhcp' },
    'hostname',
    '65 characters long (at most 64)',
  ],
  ['hostname all digits', { hostname: '10.0.0.1', mode: 'dhcp' }, 'hostname', 'all digits'],
  ['hostname non-ASCII', { hostname: 'gät', mode: 'dhcp' }, 'hostname', 'letters, digits and hyphens'],
  [
    'hostname markup',
    { hostname: '{bold}x{/bold}', mode: 'dhcp' },
    'hostname',
    'letters, digits and hyphens',
  ],
  ['address missing', { ...ok, address: '' }, 'address', 'is missing'],
  ['address three octets', { ...ok, address: '10.0.20' }, 'address', 'not an IPv4 address'],
  ['address octet 256', { ...ok, address: '10.0.0.256' }, 'address', 'not an IPv4 address'],
  ['address leading zero', { ...ok, address: '10.0.0.020' }, 'address', 'not an IPv4 address'],
  ['address IPv6', { ...ok, address: 'fe80::1' }, 'address', 'not an IPv4 address'],
  ['address is the network', { ...ok, address: '10.0.0.0' }, 'address', 'network address of 10.0.0.0/24'],
  ['address is broadcast', { ...ok, address: '10.0.0.255' }, 'address', 'broadcast address of 10.0.0.0/24'],
  ['address broadcast /25', { ...ok, address: '10.0.0.127', netmask: '25' }, 'address', 'broadcast'],
  ['address loopback', { ...ok, address: '127.0.0.5', netmask: '8', gateway: '' }, 'address', 'loopback'],
  ['address multicast', { ...ok, address: '224.0.0.5', netmask: '24', gateway: '' }, 'address', 'multicast'],
  ['address 0.x', { ...ok, address: '0.1.2.3', netmask: '8', gateway: '' }, 'address', 'this network'],
  ['netmask missing', { ...ok, netmask: '' }, 'netmask', 'is missing'],
  ['netmask not contiguous', { ...ok, netmask: '255.0.255.0' }, 'netmask', 'not a contiguous netmask'],
  ['netmask 255.255.255.1', { ...ok, netmask: '255.255.255.1' }, 'netmask', 'not a contiguous netmask'],
  ['netmask prefix 33', { ...ok, netmask: '33' }, 'netmask', 'out of range'],
  ['netmask prefix 0', { ...ok, netmask: '0' }, 'netmask', 'out of range'],
  ['netmask zero dotted', { ...ok, netmask: '0.0.0.0' }, 'netmask', 'not allowed'],
  ['netmask words', { ...ok, netmask: 'class C' }, 'netmask', 'neither a dotted netmask nor a prefix'],
  ['gateway outside', { ...ok, gateway: '10.0.1.1' }, 'gateway', 'outside the subnet 10.0.0.0/24'],
  ['gateway is own address', { ...ok, gateway: '10.0.0.20' }, 'gateway', "appliance's own address"],
  ['gateway is network', { ...ok, gateway: '10.0.0.0' }, 'gateway', 'network or broadcast'],
  ['gateway is broadcast', { ...ok, gateway: '10.0.0.255' }, 'gateway', 'network or broadcast'],
  ['gateway invalid', { ...ok, gateway: '10.0.0' }, 'gateway', 'not an IPv4 address'],
  [
    'gateway outside /30',
    { ...ok, address: '10.0.0.1', netmask: '30', gateway: '10.0.0.5' },
    'gateway',
    'outside',
  ],
  ['DNS invalid', { ...ok, dns: '10.0.0.53, dns.example' }, 'dns', '"dns.example" is not an IPv4 address'],
  ['DNS semicolons', { ...ok, dns: '1.1.1.1;8.8.8.8' }, 'dns', 'not an IPv4 address'],
  ['DNS too many', { ...ok, dns: '1.1.1.1,1.0.0.1,8.8.8.8,9.9.9.9' }, 'dns', 'at most 3'],
  ['DNS not a list', { ...ok, dns: 53 }, 'dns', 'comma-separated'],
];

describe('network settings: accepted', () => {
  it.each(accepted)('%s', (_name, input, ipv4) => {
    expect(networkProblems(input)).toEqual([]);
    const s = validateNetworkSettings(input);
    expect(s.ipv4).toMatchObject(ipv4);
    // What is saved validates again to the same settings.
    expect(validateNetworkSettings(toInput(s))).toEqual(s);
  });

  it('a fully qualified name with its trailing dot is kept without it', () => {
    expect(hostnameProblem('gw.example.com.')).toBeUndefined();
    expect(validateNetworkSettings({ hostname: 'gw.example.com.', mode: 'dhcp' }).hostname).toBe(
      'gw.example.com',
    );
  });
});

describe('network settings: refused, with the field and the reason', () => {
  it.each(refused)('%s', (_name, input, field, message) => {
    const problems = networkProblems(input);
    expect(problems.map((p) => p.field)).toContain(field);
    expect(problems.find((p) => p.field === field)?.message).toContain(message);
    let thrown: unknown;
    try {
      validateNetworkSettings(input);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(ClgwError);
    expect((thrown as ClgwError).code).toBe('SETTING_INVALID');
    expect((thrown as ClgwError).message).toMatch(/^network setting \w+ /);
  });

  it('has at least 40 cases in all', () => {
    expect(accepted.length + refused.length).toBeGreaterThanOrEqual(40);
  });

  it('reports every field that is wrong at once, for inline validation', () => {
    const problems = networkProblems({
      hostname: '-x',
      mode: 'static',
      address: '1.2.3',
      netmask: '99',
      dns: 'a',
    });
    expect(problems.map((p) => p.field).sort()).toEqual(['address', 'dns', 'hostname', 'netmask']);
  });
});

describe('parsers', () => {
  it('netmasks', () => {
    expect(parseNetmask('255.255.255.255')).toBe(32);
    expect(parseNetmask('128.0.0.0')).toBe(1);
    expect(parseNetmask('8')).toBe(8);
    expect(parseNetmask('255.255.254.0')).toBe(23);
  });

  it('hostnames', () => {
    expect(hostnameProblem('cloudlink-gateway')).toBeUndefined();
    expect(hostnameProblem('gw1.branch.example')).toBeUndefined();
    expect(hostnameProblem('1gw')).toBeUndefined(); // RFC 1123 allows a leading digit
    expect(hostnameProblem('a'.repeat(63))).toBeUndefined();
  });
});

describe('rendering', () => {
  it('a static address for systemd-networkd', () => {
    const s = validateNetworkSettings({ ...ok, dns: '10.0.0.53,9.9.9.9' });
    expect(renderNetworkUnit(s, 'eth0')).toBe(
      [
        '# Written by clgw-agent from var/clgw/network/settings.json; edits are replaced.',
        '[Match]',
        'Name=eth0',
        '',
        '[Network]',
        'Address=10.0.0.20/24',
        'Gateway=10.0.0.1',
        'DNS=10.0.0.53',
        'DNS=9.9.9.9',
        'LinkLocalAddressing=no',
        'IPv6AcceptRA=no',
        '',
      ].join('\n'),
    );
    expect(renderHostname(s)).toBe('gw-hq\n');
    expect(describeNetwork(s)).toBe('static 10.0.0.20/24 via 10.0.0.1, DNS 10.0.0.53, 9.9.9.9');
  });

  it('DHCP, the factory default', () => {
    expect(renderNetworkUnit(DEFAULT_NETWORK, 'eth0')).toContain('\nDHCP=ipv4\n');
    expect(describeNetwork(DEFAULT_NETWORK)).toBe('DHCP');
  });
});
