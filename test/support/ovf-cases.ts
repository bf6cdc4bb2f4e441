/**
 * The OVF properties → first-boot plan table: the `cl.*` values given, the network settings
 * saved and the reasons recorded. The unit tests run it through `planNetwork`; the first-boot
 * program's tests run every row through the built program, handed over by VMware guestinfo.
 */

/** All five properties, valid. */
export const STATIC = {
  hostname: 'gw-hq',
  ip0: '10.0.2.15',
  netmask0: '24',
  gateway0: '10.0.2.2',
  dns0: '10.0.2.3',
};

export const STATIC_SETTINGS = {
  hostname: 'gw-hq',
  ipv4: { mode: 'static', address: '10.0.2.15', prefixLength: 24, gateway: '10.0.2.2', dns: ['10.0.2.3'] },
};
const dhcp = (hostname = 'cloudlink-gateway') => ({ hostname, ipv4: { mode: 'dhcp' } });

/** `cl.*` values → the settings saved and the reasons logged. */
export const PLANS: [string, Record<string, string>, object, string[]][] = [
  ['all five valid', STATIC, STATIC_SETTINGS, []],
  ['nothing given: the factory default', {}, dhcp(), []],
  ['blank ip0 → DHCP, hostname kept', { hostname: 'gw-hq', ip0: '' }, dhcp('gw-hq'), []],
  ['ip0 of spaces is blank', { ip0: '   ' }, dhcp(), []],
  [
    'blank ip0 with other network values: DHCP, and they are said to be ignored',
    { ip0: '', netmask0: '24', gateway0: '10.0.2.2' },
    dhcp(),
    [
      "cl.netmask0: '24' ignored: cl.ip0 is blank, so DHCP it is",
      "cl.gateway0: '10.0.2.2' ignored: cl.ip0 is blank, so DHCP it is",
    ],
  ],
  [
    'values are trimmed; a dotted netmask and a DNS list are fine',
    { ip0: ' 10.0.2.15 ', netmask0: '255.255.255.0', dns0: '10.0.2.3, 9.9.9.9' },
    {
      hostname: 'cloudlink-gateway',
      ipv4: { mode: 'static', address: '10.0.2.15', prefixLength: 24, dns: ['10.0.2.3', '9.9.9.9'] },
    },
    [],
  ],
  [
    'bad address',
    { ...STATIC, ip0: '10.0.2.300' },
    dhcp('gw-hq'),
    ["cl.ip0: '10.0.2.300' is not an IPv4 address; falling back to DHCP"],
  ],
  [
    'the network address',
    { ...STATIC, ip0: '10.0.2.0' },
    dhcp('gw-hq'),
    ["cl.ip0: '10.0.2.0' is the network address of 10.0.2.0/24; falling back to DHCP"],
  ],
  [
    'netmask missing',
    { ...STATIC, netmask0: '' },
    dhcp('gw-hq'),
    ['cl.netmask0 is missing; falling back to DHCP'],
  ],
  [
    'netmask out of range',
    { ...STATIC, netmask0: '33' },
    dhcp('gw-hq'),
    ["cl.netmask0: '33': prefix length 33 is out of range (1-32); falling back to DHCP"],
  ],
  [
    'netmask not contiguous',
    { ...STATIC, netmask0: '255.0.255.0' },
    dhcp('gw-hq'),
    ["cl.netmask0: '255.0.255.0' is not a contiguous netmask; falling back to DHCP"],
  ],
  [
    'gateway outside the subnet',
    { ...STATIC, gateway0: '10.0.3.1' },
    dhcp('gw-hq'),
    ["cl.gateway0: '10.0.3.1' is outside the subnet 10.0.2.0/24; falling back to DHCP"],
  ],
  [
    'gateway not an address',
    { ...STATIC, gateway0: 'router' },
    dhcp('gw-hq'),
    ["cl.gateway0: 'router' is not an IPv4 address; falling back to DHCP"],
  ],
  [
    'one bad DNS server in a list',
    { ...STATIC, dns0: '10.0.2.3,dns.example' },
    dhcp('gw-hq'),
    ['cl.dns0: \'10.0.2.3,dns.example\': "dns.example" is not an IPv4 address; falling back to DHCP'],
  ],
  [
    'too many DNS servers',
    { ...STATIC, dns0: '1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4' },
    dhcp('gw-hq'),
    ["cl.dns0: '1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4': lists 4 servers (at most 3); falling back to DHCP"],
  ],
  [
    'bad hostname: default name, the static address stays',
    { ...STATIC, hostname: 'gw_hq' },
    { ...STATIC_SETTINGS, hostname: 'cloudlink-gateway' },
    [
      'cl.hostname: \'gw_hq\': label "gw_hq" may only hold letters, digits and hyphens; keeping the hostname cloudlink-gateway',
    ],
  ],
  [
    'an all-digit hostname with DHCP',
    { hostname: '1234', ip0: '' },
    dhcp(),
    [
      "cl.hostname: '1234': must not be all digits (it would read as an address); keeping the hostname cloudlink-gateway",
    ],
  ],
  [
    'several bad fields: one reason each',
    { hostname: '-gw', ip0: '10.0.2.300', netmask0: 'x', gateway0: '10.0.2.2', dns0: 'y' },
    dhcp(),
    [
      'cl.hostname: \'-gw\': label "-gw" must not start or end with a hyphen; keeping the hostname cloudlink-gateway',
      "cl.ip0: '10.0.2.300' is not an IPv4 address; falling back to DHCP",
      "cl.netmask0: 'x' is neither a dotted netmask nor a prefix length; falling back to DHCP",
      "cl.dns0: 'y' is not an IPv4 address; falling back to DHCP",
    ],
  ],
  [
    'control characters in a value cannot break the log line',
    { ip0: '10.0.2.15\nrm -rf /', netmask0: '24' },
    dhcp(),
    ["cl.ip0: '10.0.2.15\\nrm -rf /' is not an IPv4 address; falling back to DHCP"],
  ],
  [
    'a line break in the hostname stays one escaped line (the label is quoted again)',
    { hostname: 'gw\nhq', ip0: '' },
    dhcp(),
    [
      'cl.hostname: \'gw\\nhq\': label "gw\\nhq" may only hold letters, digits and hyphens; keeping the hostname cloudlink-gateway',
    ],
  ],
];
