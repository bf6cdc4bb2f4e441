/**
 * `firstboot.json` → what the status API, `clgw status`, tty1 and the portal say of the first
 * boot: one summary line per outcome, the deployed values escaped to one line each, records of
 * older or broken shape handled.
 */

import { firstBootView } from '@clgw/core/firstboot/report.js';
import { oneLine } from '@clgw/core/format.js';
import { describe, expect, it } from 'vitest';

const at = '2026-12-05T09:00:00.000Z';

describe('firstBootView', () => {
  it.each([
    [
      'applied, from guestinfo',
      { at, outcome: 'applied', transport: 'guestinfo', source: 'guestinfo.ovfEnv', reasons: [] },
      'Deployed settings applied (VMware guestinfo)',
    ],
    [
      'partial: the key named',
      {
        at,
        outcome: 'partial',
        transport: 'iso',
        source: '/dev/sr0: OVF_ENV.XML;1',
        reasons: ["cl.hostname: 'gw_hq': label …; keeping the hostname cloudlink-gateway"],
      },
      'Deployed settings applied (CD-ROM) except cl.hostname',
    ],
    [
      'refused: each key once',
      {
        at,
        outcome: 'refused',
        transport: 'guestinfo',
        reasons: [
          "cl.ip0: '10.0.2.300' is not an IPv4 address; falling back to DHCP",
          "cl.gateway0: 'x' is not an IPv4 address; falling back to DHCP",
          "cl.ip0: 'again' …",
        ],
      },
      'Deployed settings refused: cl.ip0, cl.gateway0; using DHCP',
    ],
    [
      'refused: an unusable document',
      {
        at,
        outcome: 'refused',
        transport: 'iso',
        reasons: ['/dev/sr0: OVF environment: not well-formed XML'],
      },
      'Deployed settings refused: the OVF environment is unusable; using DHCP',
    ],
    [
      'none',
      { at, outcome: 'none', transport: 'none', reasons: ['guestinfo.ovfEnv is not set (…)'] },
      'No deployment settings found: using DHCP',
    ],
  ])('%s', (_name, record, summary) => {
    expect(firstBootView(record)?.summary).toBe(summary);
  });

  it('a record written before outcomes were kept is read by what it holds', () => {
    const network = { hostname: 'gw', ipv4: { mode: 'dhcp' } };
    expect(firstBootView({ at, transport: 'none', reasons: [] })?.outcome).toBe('none');
    expect(firstBootView({ at, transport: 'iso', reasons: ['x'] })?.outcome).toBe('refused');
    expect(firstBootView({ at, transport: 'iso', network, reasons: ['cl.dns0 …'] })?.outcome).toBe('partial');
    expect(firstBootView({ at, transport: 'iso', network, reasons: [] })?.outcome).toBe('applied');
  });

  it('values from the OVF environment come out one line each, long ones cut', () => {
    const view = firstBootView({
      at,
      outcome: 'partial',
      transport: 'iso',
      source: 'x\ny',
      properties: { hostname: 'gw\nhq\u001b[2J', dns0: 'd'.repeat(300), ip0: 7 },
      reasons: ['line one\nline two', 42],
    });
    expect(view).toMatchObject({
      source: 'x\\ny',
      properties: { 'cl.hostname': 'gw\\nhq\\x1b[2J', 'cl.dns0': `${'d'.repeat(200)}…` },
      reasons: ['line one\\nline two'],
    });
    expect(Object.keys(view!.properties)).toEqual(['cl.hostname', 'cl.dns0']);
  });

  it('nothing usable: null', () => {
    for (const r of [undefined, null, 'x', [], {}, { at, transport: 'ftp', reasons: [] }])
      expect(firstBootView(r)).toBeNull();
  });
});

describe('oneLine', () => {
  it('escapes every control character, keeps the rest', () => {
    expect(oneLine('a\nb\r\tc\u0000\u007f\u0085\u2028é✓')).toBe('a\\nb\\r\\tc\\x00\\x7f\\x85\\u2028é✓');
  });
});
