/** The console's view models: status → home screen lines, menu items, confirmations, the network form. */

import { ClgwError } from '@clgw/core/errors.js';
import { firstBootView } from '@clgw/core/firstboot/report.js';
import { describe, expect, it } from 'vitest';
import { encodeQr, renderQrText } from '../../../agent/src/logs/qr.js';
import { duration, sshBanner, sshSupportLine, utcTime } from '../../../agent/src/ssh/view.js';
import { AGENT_AWAY, agentAwayDetail } from '../../../console-tui/src/view/agent.js';
import { deploymentLines, displayAddresses, homeLines, WIDTH } from '../../../console-tui/src/view/home.js';
import {
  expiryText,
  LOG_ACTION_DEFAULT,
  LOG_ACTIONS,
  LOGS_CHOICES,
  LOGS_QUESTION,
  linkInfoLines,
  qrLines,
  timeLeft,
} from '../../../console-tui/src/view/logs.js';
import {
  CONFIRMATIONS,
  confirms,
  factoryResetNote,
  menuItems,
  rebootNowConfirmation,
  sshQuestion,
} from '../../../console-tui/src/view/menu.js';
import {
  fieldRow,
  formFromSettings,
  formProblems,
  formToInput,
  saveQuestion,
  visibleFields,
} from '../../../console-tui/src/view/network-form.js';
import { progressBar, wrap } from '../../../console-tui/src/view/text.js';
import { sampleStatus } from '../../support/status.js';

/** The lines without markup (what a person reads). */
function plain(lines: string[]): string[] {
  return lines.map((l) =>
    l.replace(/\{(\/?[a-z-]*)\}/g, (_, tag: string) => (tag === 'open' ? '{' : tag === 'close' ? '}' : '')),
  );
}

const SSH_ON = {
  enabled: true,
  expiresAt: '2026-11-22T10:00:00.000Z',
  secondsLeft: 3 * 3600 + 90,
  account: 'support',
  principal: 'appliance-k3m9x2pq7rtw',
};

describe('home screen view model', () => {
  it('an idle appliance: product, version, hostname, addresses, portal URLs, update, diagnostics "not run"', () => {
    const lines = plain(homeLines({ status: sampleStatus(), unreachable: null, addresses: ['192.0.2.10'] }));
    expect(lines).toEqual([
      'CloudLink Gateway',
      '',
      'Gateway OS:   1.0.0, patch level 2026-11-02',
      'Hostname:     cloudlink-gateway',
      'IP address:   192.0.2.10',
      'Network:      DHCP',
      'Portal:       http://cloudlink.local/  http://192.0.2.10/',
      'Update:       no update in progress',
      'Diagnostics:  not run',
    ]);
  });

  it('a static address comes first and is not repeated; no address yet is said', () => {
    const status = sampleStatus({
      network: {
        settings: {
          hostname: 'gw',
          ipv4: { mode: 'static', address: '10.0.0.20', prefixLength: 24, dns: [] },
        },
        source: 'saved',
        summary: 'static 10.0.0.20/24',
      },
    });
    expect(displayAddresses(status, ['10.0.0.20', '192.0.2.7'])).toEqual(['10.0.0.20', '192.0.2.7']);
    const lines = plain(homeLines({ status, unreachable: null, addresses: [] }));
    expect(lines).toContain('Portal:       http://cloudlink.local/  http://10.0.0.20/');
    const none = plain(homeLines({ status: sampleStatus(), unreachable: null, addresses: [] }));
    expect(none).toContain('IP address:   none yet');
    expect(none).toContain('Portal:       http://cloudlink.local/');
  });

  it('a download in progress shows the target and an ASCII progress bar', () => {
    const status = sampleStatus({
      state: 'downloading',
      target: { version: '1.1.0', slot: 'B' },
      progress: {
        phase: 'download',
        bytes: 12 * 1048576,
        total: 24 * 1048576,
        rate: 1,
        startedAt: 0,
        percent: 50,
      },
    });
    const lines = plain(homeLines({ status, unreachable: null, addresses: [] }));
    expect(lines).toContain('Update:       downloading the update 1.1.0');
    expect(lines).toContain(`${' '.repeat(14)}${progressBar(50, 40)} 12.0 MiB of 24.0 MiB`);
  });

  it('a failed update, an active alarm, diagnostics results and the SSH banner', () => {
    const status = sampleStatus({
      state: 'failed',
      error: {
        code: 'DNS_LOOKUP_FAILED',
        message: 'DNS lookup of download.mitel.io failed',
        transient: true,
      },
      alarms: [
        { code: 'CLGW_ALARM_CRITICAL_PHASE_FAILED', message: 'old one', raisedAt: 'x', clearedAt: 'y' },
        {
          code: 'CLGW_ALARM_CRITICAL_PHASE_FAILED',
          message: 'power cut in the critical phase',
          raisedAt: 'z',
        },
      ],
      diagnostics: {
        at: '2026-11-21T09:12:00.000Z',
        ok: false,
        results: [
          { name: 'dns', target: '10.0.0.53', verdict: 'ok', summary: 'resolved', durationMs: 3 },
          { name: 'ntp', target: 'x:123', verdict: 'failed', summary: 'no answer from {ntp}', durationMs: 3 },
          { name: 'stun-3478', target: '-', verdict: 'warning', summary: 'not checked', durationMs: 0 },
        ],
      },
      ssh: SSH_ON,
    });
    const raw = homeLines({
      status,
      unreachable: null,
      addresses: [],
      sshBanner: sshBanner(status.ssh, Date.parse('2026-11-22T06:58:00Z')) ?? '',
      sshSupport: sshSupportLine(status.ssh) ?? '',
    });
    const lines = plain(raw);
    expect(lines).toContain('Update:       the last update failed');
    expect(lines).toContain('              DNS lookup of download.mitel.io failed');
    expect(lines).toContain('Alarm:        CLGW_ALARM_CRITICAL_PHASE_FAILED');
    expect(lines).toContain('              power cut in the critical phase');
    expect(lines.filter((l) => l.startsWith('Alarm:'))).toHaveLength(1);
    expect(lines).toContain('Diagnostics:  2026-11-21 09:12 UTC: 1 failed, 1 warning');
    expect(lines).toContain('              ok   dns        resolved');
    expect(lines).toContain('              FAIL ntp        no answer from {ntp}');
    expect(lines).toContain('              WARN stun-3478  not checked');
    expect(raw.join('\n')).toContain('{open}ntp{close}'); // escaped in the markup
    // SSH access on is said right under the title (on the first page whatever follows), in UTC.
    expect(lines.slice(2, 5)).toEqual([
      'SSH access is ON until 10:00 UTC (3 h 2 min left)',
      'For support: user support, certificate principal appliance-k3m9x2pq7rtw',
      '',
    ]);
  });

  it('the agent unreachable: said once in plain words, the detail once under it, nothing stale invented', () => {
    const lines = plain(homeLines({ status: null, unreachable: 'not running {x}', addresses: [] }));
    expect(lines).toEqual([
      'CloudLink Gateway',
      '',
      'The gateway agent is not answering; trying again every second.',
      'not running {x}',
      '',
    ]);
    // The client's error repeats the sentence in its message: the detail is its socket and code.
    const refused = new ClgwError(
      'AGENT_UNREACHABLE',
      'the agent is not reachable on /run/clgw/agent.sock: not running',
      {
        cause: Object.assign(new Error('connect ECONNREFUSED /run/clgw/agent.sock'), {
          code: 'ECONNREFUSED',
        }),
        details: { socket: '/run/clgw/agent.sock' },
      },
    );
    expect(agentAwayDetail(refused)).toBe('socket /run/clgw/agent.sock: ECONNREFUSED');
    const slow = new ClgwError(
      'AGENT_UNREACHABLE',
      'the agent is not reachable on /s: no answer within 30000 ms',
      {
        cause: new Error('no answer within 30000 ms'),
        details: { socket: '/s' },
      },
    );
    expect(agentAwayDetail(slow)).toBe('socket /s: no answer within 30000 ms');
    expect(agentAwayDetail(new ClgwError('INTERNAL', 'journal unreadable'))).toBe('journal unreadable');
    expect(AGENT_AWAY).not.toMatch(/socket|sock/);
  });

  it('long messages wrap under the value column, nothing cut (update error, alarm, diagnostics)', () => {
    const cause =
      'Get "https://download.mitel.io/compat.yaml?timestamp=1764940000000000000": connection to 127.0.0.1:40687 refused; while fetching https://download.mitel.io/compat.yaml';
    const status = sampleStatus({
      state: 'failed',
      error: { code: 'CONNECTION_REFUSED', message: cause, transient: true },
      alarms: [
        {
          code: 'CLGW_ALARM_CRITICAL_PHASE_FAILED',
          message: `power cut; ${'x '.repeat(40)}end`,
          raisedAt: 'z',
        },
      ],
      diagnostics: {
        at: '2026-11-21T09:12:00.000Z',
        ok: false,
        results: [
          {
            name: 'dns',
            target: '10.0.0.53',
            verdict: 'failed',
            summary:
              'DNS lookup of download.mitel.io via 10.0.0.53 failed: no answer within 3 s (udp 10.0.0.53:53)',
            durationMs: 3,
          },
        ],
      },
    });
    const lines = plain(homeLines({ status, unreachable: 'E'.repeat(200), addresses: [] }));
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(WIDTH);
    const at = lines.indexOf('Update:       the last update failed');
    const error = [];
    for (let i = at + 1; lines[i]?.startsWith(' '.repeat(14)); i++) error.push(lines[i]!.slice(14));
    expect(error.length).toBeGreaterThan(1);
    // Every character is there (blanks aside: a break takes the place of one).
    expect(error.join('').replace(/ /g, '')).toBe(cause.replace(/ /g, ''));
    expect(lines.join('\n')).toContain('end');
    expect(lines.join('\n')).toContain('E'.repeat(WIDTH));
    const dns = lines.findIndex((l) => l.includes('FAIL dns'));
    expect(lines[dns]).toBe('              FAIL dns        DNS lookup of download.mitel.io via 10.0.0.53');
    expect(lines[dns + 1]).toBe(
      '                              failed: no answer within 3 s (udp 10.0.0.53:53)',
    );
  });

  it('outside text is escaped and every line fits the 80-column console in ASCII', () => {
    const status = sampleStatus({
      network: {
        settings: { hostname: `h{bold}${'x'.repeat(200)}`, ipv4: { mode: 'dhcp' } },
        source: 'saved',
        summary: 'DHCP',
      },
      gatewayVersion: '1.0.0{/}\x1b[31m',
    });
    const raw = homeLines({ status, unreachable: null, addresses: ['192.0.2.1'] });
    for (const l of plain(raw)) {
      expect(l.length).toBeLessThanOrEqual(WIDTH);
      expect(l).toMatch(/^[\x20-\x7e]*$/);
    }
    expect(raw.join('\n')).not.toContain('{bold}x');
    expect(plain(raw)).toContain('Gateway OS:   1.0.0{/}?[31m, patch level 2026-11-02');
  });
});

describe('home screen: a check that could not be done', () => {
  it('is a yellow Last check line under Update, which still says no update is in progress', () => {
    const check = {
      outcome: 'failed' as const,
      version: '',
      at: '2026-12-05T03:00:00Z',
      message: 'download.example: no such host',
      error: {
        code: 'DNS_LOOKUP_FAILED' as const,
        message: 'download.example: no such host',
        transient: true,
      },
    };
    const lines = homeLines({ status: sampleStatus({ check }), unreachable: null, addresses: [] });
    const at = lines.findIndex((l) => l.startsWith('Update:'));
    expect(lines[at]).toBe('Update:       no update in progress');
    // The whole sentence, wrapped under the value column: the cause and what happens next.
    expect(lines.slice(at + 1, at + 4)).toEqual([
      'Last check:   {yellow-fg}Cannot reach the download server: download.example: no such host{/}',
      '              {yellow-fg}- the gateway keeps running 1.0.0 and will try again at its next{/}',
      '              {yellow-fg}start{/}',
    ]);
    expect(homeLines({ status: sampleStatus(), unreachable: null, addresses: [] }).join('\n')).not.toContain(
      'Last check',
    );
  });
});

describe('home screen: a release held back by a staged rollout', () => {
  it('is a plain Last check line (no warning colour) while idle', () => {
    const check = {
      outcome: 'notOffered' as const,
      version: '1.4.0',
      at: '2026-12-05T03:00:00Z',
      message: 'gateway OS 1.4.0 is available but not yet offered to this gateway (rollout 10 %)',
      percent: 10,
    };
    const lines = homeLines({ status: sampleStatus({ check }), unreachable: null, addresses: [] });
    const at = lines.findIndex((l) => l.startsWith('Update:'));
    expect(lines.slice(at + 1, at + 3)).toEqual([
      'Last check:   Release 1.4.0 is available but not yet offered to this gateway',
      '              (rollout 10 %)',
    ]);
    const busy = homeLines({
      status: sampleStatus({ check, state: 'checking' }),
      unreachable: null,
      addresses: [],
    });
    expect(busy.join('\n')).not.toContain('Last check');
  });
});

describe('home screen: the deployment line', () => {
  const first = (outcome: 'applied' | 'partial' | 'refused' | 'none', reasons: string[] = []) =>
    firstBootView({ at: '2026-12-05T09:00:00Z', outcome, transport: 'guestinfo', reasons });

  it('says what became of the deployed settings, coloured by outcome, under Network', () => {
    const lines = homeLines({
      status: sampleStatus({ firstBoot: first('refused', ["cl.gateway0: 'x' is not an IPv4 address"]) }),
      unreachable: null,
      addresses: [],
    });
    const at = lines.findIndex((l) => l.startsWith('Network:'));
    expect(lines[at + 1]).toBe('Deployment:   {red-fg}Deployed settings refused: cl.gateway0; using DHCP{/}');
    expect(deploymentLines(first('applied'))).toEqual([
      'Deployment:   Deployed settings applied (VMware guestinfo)',
    ]);
    expect(deploymentLines(first('partial', ['cl.hostname: …'])).join()).toContain('{yellow-fg}');
    expect(deploymentLines(first('none', ['guestinfo.ovfEnv is not set']))).toEqual([
      'Deployment:   {yellow-fg}No deployment settings found: using DHCP{/}',
    ]);
  });

  it('is left out where there was nothing to deploy and nowhere to look', () => {
    expect(deploymentLines(first('none'))).toEqual([]);
    expect(deploymentLines(null)).toEqual([]);
    const lines = homeLines({ status: sampleStatus(), unreachable: null, addresses: [] });
    expect(lines.some((l) => l.startsWith('Deployment:'))).toBe(false);
  });
});

describe('menu view model', () => {
  it.each([
    [
      'physical',
      [
        'Data Reset',
        'Factory Reset',
        'Enable SSH access',
        'Ethernet configuration and Hostname',
        'Download logs',
      ],
    ],
    ['virtual', ['Data Reset', 'Enable SSH access', 'Ethernet configuration and Hostname', 'Download logs']],
    ['kvm', ['Data Reset', 'Enable SSH access', 'Ethernet configuration and Hostname', 'Download logs']],
  ])('on %s', (platform, labels) => {
    expect(menuItems(sampleStatus({ platform })).map((i) => i.label)).toEqual(labels);
  });

  it('before the agent answered, Factory Reset is not offered (the platform is unknown)', () => {
    expect(menuItems(null).map((i) => i.action)).toEqual(['data-reset', 'ssh', 'network', 'logs']);
  });

  it('SSH on: the item disables it', () => {
    const status = sampleStatus({ ssh: SSH_ON });
    expect(menuItems(status).map((i) => i.label)).toContain('Disable SSH access');
  });

  it('confirmations need the exact word', () => {
    const c = CONFIRMATIONS['data-reset'];
    expect(c.endpoint).toBe('/v1/data-reset');
    expect(confirms(c, 'RESET')).toBe(true);
    expect(confirms(c, ' RESET ')).toBe(true);
    for (const t of ['', 'reset', 'RESE', 'yes', 'RESET!']) expect(confirms(c, t)).toBe(false);
    expect(confirms(CONFIRMATIONS['factory-reset'], 'RESET')).toBe(false);
    expect(CONFIRMATIONS['factory-reset'].text.join(' ')).toContain('15 to 20 minutes');
  });

  it('while a restart waits for calls, "Reboot now" comes first and its word is the count it cuts', () => {
    const waiting = (active: number | null, what: 'update' | 'reboot' | 'containers' = 'update') =>
      sampleStatus({
        state: what === 'containers' ? 'idle' : 'waitingForCalls',
        calls: { for: what, active, deadline: '2026-12-08T09:00:00.000Z' },
        phase: 'Waiting for 2 active calls to end before restarting — at the latest 09:00 UTC',
      });
    expect(menuItems(waiting(2))[0]).toEqual({
      action: 'reboot-now',
      label: 'Reboot now, cutting 2 active calls',
    });
    expect(menuItems(waiting(1))[0]?.label).toBe('Reboot now, cutting 1 active call');
    const c = rebootNowConfirmation(waiting(2))!;
    expect(c).toMatchObject({ word: '2', endpoint: '/v1/reboot-now', body: { calls: 2 } });
    expect(confirms(c, '2')).toBe(true);
    expect(confirms(c, '3')).toBe(false);
    expect(rebootNowConfirmation(waiting(null))).toMatchObject({ word: 'UNKNOWN', body: { calls: null } });
    // A container upgrade's wait has no reboot to hurry; nothing waiting, nothing offered.
    expect(menuItems(waiting(2, 'containers'))[0]?.action).toBe('data-reset');
    expect(rebootNowConfirmation(sampleStatus())).toBeUndefined();
  });

  it('says why Factory Reset is missing wherever it is not offered', () => {
    expect(factoryResetNote(sampleStatus({ platform: 'physical' }))).toBeUndefined();
    expect(factoryResetNote(sampleStatus({ platform: 'virtual' }))).toBe(
      'Factory Reset: not on a virtual appliance - redeploy the OVA instead.',
    );
    expect(factoryResetNote(sampleStatus({ platform: 'kvm' }))).toContain('not on a virtual appliance');
    expect(factoryResetNote(null)).toContain('physical appliance only');
  });

  it('SSH on and off are both asked, naming the end of the window and what off does to sessions', () => {
    const on = sshQuestion(true, '2026-11-23 10:00 UTC');
    expect(on.text.join(' ')).toContain('for 24 hours, until 2026-11-23 10:00 UTC');
    expect(on.question).toBe('Enable SSH access for 24 hours?');
    const off = sshQuestion(false, 'x');
    expect(off.question).toBe('Disable SSH access now?');
    expect(off.text.join(' ')).toContain('sessions');
  });
});

describe('SSH access in words', () => {
  const now = Date.parse('2026-11-22T06:58:00Z');
  it('until when on the appliance clock (UTC), with the date on another day, and the time left', () => {
    expect(utcTime(Date.parse('2026-11-22T17:40:00Z'), now)).toBe('17:40 UTC');
    expect(utcTime(Date.parse('2026-11-23T06:58:00Z'), now)).toBe('2026-11-23 06:58 UTC');
    expect(duration(86_400)).toBe('24 h 0 min');
    expect(duration(125)).toBe('2 min');
    expect(duration(20)).toBe('less than a minute');
    const view = { ...SSH_ON, expiresAt: '2026-11-23T06:58:00.000Z' };
    expect(sshBanner(view, now)).toBe('SSH access is ON until 2026-11-23 06:58 UTC (24 h 0 min left)');
    expect(sshBanner({ ...view, enabled: false }, now)).toBeUndefined();
    // Never the raw ISO string.
    expect(sshBanner(view, now)).not.toContain('T06:58');
  });
});

describe('wrap', () => {
  it('breaks at blanks, keeps double blanks inside a line, breaks long words at punctuation, drops nothing', () => {
    expect(wrap('aaa bbb ccc', 7)).toEqual(['aaa bbb', 'ccc']);
    expect(wrap('a  b', 10)).toEqual(['a  b']);
    expect(wrap('', 10)).toEqual(['']);
    const url = 'http://example.invalid/a/very/long/path/that/goes/on/and/on';
    const lines = wrap(`see ${url}`, 20);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(20);
    expect(lines.join('')).toBe(`see ${url}`);
    // The long word starts on the line it follows, not on a line of its own.
    expect(lines[0]).toMatch(/^see http/);
    expect(wrap('x'.repeat(25), 10)).toEqual(['x'.repeat(10), 'x'.repeat(10), 'x'.repeat(5)]);
    expect(wrap('tab\there', 20)).toEqual(['tab?here']);
  });
});

describe('network form model', () => {
  it('lists the problems in the order of the fields, whatever order the agent finds them in', () => {
    const problems = formProblems({
      mode: 'static',
      address: '10.0.0.20',
      netmask: '33',
      gateway: '',
      dns: '1.2.3',
      hostname: '-gw',
    });
    expect(Object.keys(problems)).toEqual(['netmask', 'dns', 'hostname']);
  });

  it('Save asks first, naming the new address, mode and hostname and the settings in effect', () => {
    const q = saveQuestion(
      { mode: 'static', address: '10.0.0.20', netmask: '24', gateway: '10.0.0.1', dns: '', hostname: 'gw1' },
      'DHCP, hostname cloudlink-gateway',
    );
    const text = q.text.join('\n');
    expect(text).toContain('IPv4:      static 10.0.0.20/24');
    expect(text).toContain('Gateway:   10.0.0.1');
    expect(text).toContain('DNS:       (none)');
    expect(text).toContain('Hostname:  gw1');
    expect(text).toContain('Now:       DHCP, hostname cloudlink-gateway');
    expect(q.question).toBe('Apply these network settings?');
    // A dotted netmask is named as the prefix length the agent makes of it.
    const dotted = saveQuestion(
      {
        mode: 'static',
        address: '10.0.0.20',
        netmask: '255.255.255.0',
        gateway: '',
        dns: '10.0.0.53,10.0.0.54',
        hostname: 'gw1',
      },
      'x',
    );
    expect(dotted.text).toContain('IPv4:      static 10.0.0.20/24');
    expect(dotted.text).toContain('DNS:       10.0.0.53, 10.0.0.54');
    const dhcp = saveQuestion(
      { mode: 'dhcp', address: '', netmask: '', gateway: '', dns: '', hostname: 'gw' },
      'x',
    );
    expect(dhcp.text.join('\n')).toContain('IPv4:      DHCP');
    expect(dhcp.text.join('\n')).not.toContain('Gateway:');
  });

  it('round-trips the settings in effect', () => {
    const form = formFromSettings({
      hostname: 'gw',
      ipv4: {
        mode: 'static',
        address: '10.0.0.20',
        prefixLength: 24,
        gateway: '10.0.0.1',
        dns: ['1.1.1.1', '8.8.8.8'],
      },
    });
    expect(form).toEqual({
      mode: 'static',
      address: '10.0.0.20',
      netmask: '24',
      gateway: '10.0.0.1',
      dns: '1.1.1.1, 8.8.8.8',
      hostname: 'gw',
    });
    expect(formProblems(form)).toEqual({});
    expect(formToInput(form)).toMatchObject({ mode: 'static', dns: '1.1.1.1, 8.8.8.8' });
    expect(fieldRow(form, 'mode')).toBe('IPv4          static');
    expect(fieldRow({ ...form, gateway: '' }, 'gateway')).toBe('Gateway       (empty)');
  });

  it('DHCP shows and sends only the mode and the hostname', () => {
    const form = formFromSettings({ hostname: 'gw', ipv4: { mode: 'dhcp' } });
    expect(visibleFields(form)).toEqual(['mode', 'hostname']);
    expect(formToInput({ ...form, address: 'junk' })).toEqual({ mode: 'dhcp', hostname: 'gw' });
    expect(formProblems({ ...form, address: 'junk' })).toEqual({});
  });

  it.each([
    [{ address: '10.0.0.0' }, 'address', 'Address 10.0.0.0 is the network address of 10.0.0.0/24'],
    [{ netmask: '255.0.255.0' }, 'netmask', 'Netmask 255.0.255.0 is not a contiguous netmask'],
    [{ gateway: '10.0.1.1' }, 'gateway', 'Gateway 10.0.1.1 is outside the subnet 10.0.0.0/24'],
    [{ dns: '1.1.1.1, 1.2.3' }, 'dns', 'DNS servers "1.2.3" is not an IPv4 address'],
    [{ hostname: '-gw' }, 'hostname', 'Hostname label "-gw" must not start or end with a hyphen'],
  ])('inline problem for %j', (change, field, message) => {
    const base = formFromSettings({
      hostname: 'gw',
      ipv4: { mode: 'static', address: '10.0.0.20', prefixLength: 24, gateway: '10.0.0.1', dns: [] },
    });
    expect(formProblems({ ...base, ...change })).toEqual({ [field]: message });
  });
});

describe('Download logs view model', () => {
  // The appliance's clock, in UTC like every time the console shows.
  const now = Date.parse('2026-11-21T10:22:30Z');
  const link = {
    url: 'http://192.168.1.20/logs/q3vXfRk9Yb2Lm7Zt4Wc8Hn5Pd1Js6Ga0Ue-Ko_Ri3Ty',
    expiresAt: new Date(now + 10 * 60_000).toISOString(),
    ttlMinutes: 10,
    bytes: 3 * 1048576,
    skipped: 1,
  };

  it('is the last menu item, asks the SPEC question with No first, and selects Close first', () => {
    expect(menuItems(sampleStatus()).at(-1)).toEqual({ action: 'logs', label: 'Download logs' });
    expect(menuItems(null).at(-1)?.action).toBe('logs');
    expect(LOGS_QUESTION).toBe('Create an unreproducible and temporary log archive URL?');
    expect(LOGS_CHOICES[0]).toBe('No');
    expect(LOG_ACTIONS.map((a) => a.label)).toEqual(['Revoke now', 'Close']);
    expect(LOG_ACTIONS[LOG_ACTION_DEFAULT]?.action).toBe('close');
  });

  it('the expiry in UTC with the time left; another day gets its date; expired is said', () => {
    expect(expiryText(link, now)).toBe('Expires at 10:32 UTC (in 10 min)');
    expect(expiryText(link, now + 9 * 60_000 + 15_000)).toBe('Expires at 10:32 UTC (in 45 s)');
    expect(expiryText(link, now + 10 * 60_000)).toBe('Expired at 10:32 UTC');
    expect(utcTime(Date.parse('2026-11-22T00:05:00Z'), now)).toBe('2026-11-22 00:05 UTC');
    expect(timeLeft(90_000)).toBe('in 2 min');
    expect(timeLeft(0)).toBe('expired');
    expect(expiryText({ expiresAt: 'soon {x}' }, now)).toBe('Expires at soon {x}');
  });

  it('the lines beside the code: expiry, size, files left out, what to do; red once expired', () => {
    expect(plain(linkInfoLines(link, now))).toEqual([
      'Expires at 10:32 UTC (in 10 min)',
      '',
      'Archive: 3.00 MiB',
      '1 file left out (MANIFEST.txt)',
      '',
      'Scan the code with a phone, or',
      'type the URL in a browser on',
      'the LAN.',
    ]);
    const expired = linkInfoLines({ ...link, skipped: 0 }, now + 11 * 60_000);
    expect(expired[0]).toBe('{red-fg}{bold}Expired at 10:32 UTC{/}');
    expect(plain(expired)).toEqual([
      'Expired at 10:32 UTC',
      '',
      'Archive: 3.00 MiB',
      '',
      'Close, then ask for a new URL.',
    ]);
    expect(linkInfoLines(link, now).every((l) => plain([l])[0]!.length <= 36)).toBe(true);
  });

  it('the QR code: level L, quiet zone 2, half blocks; fits 19 rows for the longest URL; else none', () => {
    const lines = qrLines(link.url, 19, 40);
    expect(lines).toEqual(renderQrText(encodeQr(link.url, { ecLevel: 'L' }), { quiet: 2 }));
    expect(lines?.every((l) => /^[ \u2580\u2584\u2588]+$/.test(l))).toBe(true);
    const longest = `http://255.255.255.255:65535/logs/${'x'.repeat(43)}`;
    expect(longest).toHaveLength(77);
    expect(qrLines(longest, 19, 40)).toHaveLength(19);
    expect(qrLines(longest, 18, 40)).toBeUndefined();
    expect(qrLines('x'.repeat(500), 100, 100)).toBeUndefined();
  });
});
