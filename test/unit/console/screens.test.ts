/**
 * The console's blessed screens headless: a screen on in-memory streams at 80x25 (TERM=linux),
 * driven with the keys a terminal sends, against a stand-in agent client; the drawn text compared.
 */

import { ClgwError } from '@clgw/core/errors.js';
import type { NetworkInput } from '@clgw/core/network/settings.js';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeQr, renderQrText } from '../../../agent/src/logs/qr.js';
import type { LogLinkView } from '../../../agent/src/logs/service.js';
import type { PresenceView } from '../../../agent/src/presence/presence.js';
import type { Status } from '../../../agent/src/status.js';
import type { ConsoleDeps } from '../../../console-tui/src/ui/deps.js';
import { HomeScreen } from '../../../console-tui/src/ui/home.js';
import { MenuScreen } from '../../../console-tui/src/ui/menu.js';
import { wrap } from '../../../console-tui/src/view/text.js';
import { sampleStatus } from '../../support/status.js';
import { headlessScreen, KEY, typeKeys, waitForText } from './headless.js';

interface FakeAgent extends ConsoleDeps {
  calls: string[];
  current: Status;
  presence: PresenceView;
  down: boolean;
  refuse?: ClgwError;
  /** What createLogLink answers (or throws); it waits for `release` when set. */
  link: LogLinkView | ClgwError;
  release?: Promise<void>;
}

const LINK: LogLinkView = {
  url: 'http://192.0.2.10/logs/q3vXfRk9Yb2Lm7Zt4Wc8Hn5Pd1Js6Ga0Ue-Ko_Ri3Ty',
  expiresAt: new Date(Date.now() + 10 * 60_000).toISOString(),
  ttlMinutes: 10,
  bytes: 1536,
  skipped: 2,
};

function fakeAgent(status: Status): FakeAgent {
  const fake: FakeAgent = {
    calls: [],
    current: status,
    presence: {
      code: 'K7M2Q-9XRT4',
      expiresAt: Date.now() + 4 * 60_000 - 1000,
      lockedUntil: null,
      failures: 0,
      maxFailures: 5,
    },
    down: false,
    link: LINK,
    refreshMs: 1_000_000,
    addresses: () => ['192.0.2.10'],
    client: {
      status: async () => {
        if (fake.down)
          // As the agent's client throws it: its message repeats what the screens say in words.
          throw new ClgwError(
            'AGENT_UNREACHABLE',
            'the agent is not reachable on /run/clgw/agent.sock: not running',
            {
              cause: Object.assign(new Error('connect ECONNREFUSED /run/clgw/agent.sock'), {
                code: 'ECONNREFUSED',
              }),
              transient: true,
              details: { socket: '/run/clgw/agent.sock' },
            },
          );
        return fake.current;
      },
      presence: async () => fake.presence,
      post: async (endpoint: string) => {
        fake.calls.push(endpoint);
        if (fake.refuse) throw fake.refuse;
        return fake.current;
      },
      setSsh: async (enabled: boolean) => {
        fake.calls.push(`ssh ${enabled}`);
        const ssh = enabled
          ? {
              enabled: true,
              expiresAt: SSH_END.toISOString(),
              secondsLeft: 86_400,
              account: 'support',
              principal: 'appliance-k3m9x2pq7rtw',
            }
          : { enabled: false, expiresAt: null, secondsLeft: null, account: null, principal: null };
        fake.current = { ...fake.current, ssh };
        return ssh;
      },
      network: async () => fake.current.network,
      changeNetwork: async (input: NetworkInput) => {
        fake.calls.push(`network ${JSON.stringify(input)}`);
        const view = {
          settings: {
            hostname: String(input.hostname),
            ipv4: { mode: 'static' as const, address: String(input.address), prefixLength: 24, dns: [] },
          },
          source: 'saved' as const,
          summary: `static ${String(input.address)}/24`,
        };
        return view;
      },
      createLogLink: async () => {
        fake.calls.push('create log link');
        await fake.release;
        if (fake.link instanceof ClgwError) throw fake.link;
        return fake.link;
      },
      revokeLogLinks: async () => {
        fake.calls.push('revoke log links');
        if (fake.refuse) throw fake.refuse;
        return { revoked: 1 };
      },
    },
  };
  return fake;
}

/** When SSH access enabled by the stand-in agent ends: 24 hours on (and a little, for rounding). */
const SSH_END = new Date(Date.now() + 86_400_000 + 30_000);

let destroy: (() => void) | undefined;
afterEach(() => destroy?.());

describe('home screen (headless, 80x25)', () => {
  it('shows product, version, addresses with the portal URLs, update state and diagnostics', async () => {
    const h = headlessScreen();
    destroy = () => h.screen.destroy();
    const home = new HomeScreen(h.screen, fakeAgent(sampleStatus()));
    await home.refresh();
    const text = h.text();
    expect(text.split('\n')).toHaveLength(25);
    expect(text).toContain(' CloudLink Gateway');
    expect(text).toMatch(/Gateway OS: +1\.0\.0/);
    expect(text).toMatch(/IP address: +192\.0\.2\.10\n +Network: +DHCP\n/);
    expect(text).toContain('http://cloudlink.local/  http://192.0.2.10/');
    expect(text).toMatch(/Update: +no update in progress/);
    expect(text).toMatch(/Diagnostics: +not run/);
    // The code the web page asks for Reboot and Factory Reset: only this screen and the menu show it.
    expect(text).toMatch(/Portal code: +K7M2Q-9XRT4 {2}\(changes in 4 min\)\n/);
    expect(text).not.toContain('SSH access');
    // tty1 takes no commands: its last row says where the menu is.
    expect(text.split('\n')[24]).toBe(' Menu (Data Reset, SSH, network, logs): press ALT+F2');
  });

  it('wraps a long update error under the value column, and pages what does not fit with PgDn', async () => {
    const h = headlessScreen();
    destroy = () => h.screen.destroy();
    const cause =
      'Get "https://download.mitel.io/compat.yaml?timestamp=1764940000000000000": connection to 127.0.0.1:40687 refused; while fetching https://download.mitel.io/compat.yaml (after 3 tries)';
    const summary = (n: number) =>
      `check ${n} failed: no answer from host-${n}.mitel.io within 3 s, tried twice`;
    const status = sampleStatus({
      state: 'failed',
      error: { code: 'CONNECTION_REFUSED', message: cause, transient: true },
      alarms: [
        {
          code: 'CLGW_ALARM_CRITICAL_PHASE_FAILED',
          message: `power was lost ${'in the critical phase '.repeat(5)}END`,
          raisedAt: 'z',
        },
      ],
      diagnostics: {
        at: '2026-11-21T09:12:00.000Z',
        ok: false,
        results: (['dns', 'ntp', 'https', 'stun-3478', 'stun-3479', 'sip-tls'] as const).map((name, i) => ({
          name,
          target: '-',
          verdict: 'failed' as const,
          summary: summary(i),
          durationMs: 1,
        })),
      },
    });
    const home = new HomeScreen(h.screen, fakeAgent(status));
    await home.refresh();
    const first = h.text().split('\n');
    expect(first).toHaveLength(25);
    const at = first.findIndex((r) => r.includes('Update:       the last update failed'));
    const under: string[] = [];
    for (let i = at + 1; first[i]?.startsWith(' '.repeat(15)) && !first[i]?.includes('Alarm'); i++)
      under.push(first[i]!);
    expect(under.length).toBeGreaterThan(1);
    expect(under.join('').replace(/ /g, '')).toBe(cause.replace(/ /g, ''));
    expect(first.join('\n')).toContain('END');
    expect(first[24]).toMatch(/press ALT\+F2 +PgDn: more \(\d+ lines\)$/);
    await typeKeys(h.input, '\x1b[6~'); // PgDn
    const second = h.text();
    // The last check's summary, wrapped, is there in full on the next page.
    expect(second.replace(/\s+/g, ' ')).toContain(summary(5));
    expect(second.split('\n')[24]).toMatch(/PgUp: back to the top$/);
    await typeKeys(h.input, '\x1b[5~'); // PgUp
    expect(h.text()).toBe(first.join('\n'));
  });

  it('a row as wide as the screen stays one row (blessed broke it again, pushing the rest down)', async () => {
    const h = headlessScreen();
    destroy = () => h.screen.destroy();
    const cause =
      'GET https://download.example.com/releases/1.1.0/boot.img failed: connection reset by peer after 1.2 MiB of 25.7 MiB (ECONNRESET)';
    // Its first row under the value column ends in the screen's last column.
    expect(wrap(cause, 64)[0]).toHaveLength(64);
    const status = sampleStatus({
      state: 'failed',
      error: { code: 'CONNECTION_RESET', message: cause, transient: true },
    });
    await new HomeScreen(h.screen, fakeAgent(status)).refresh();
    const rows = h.text().split('\n');
    const at = rows.findIndex((r) => r.includes('Update:       the last update failed'));
    expect(rows.slice(at + 1, at + 3)).toEqual(wrap(cause, 64).map((l) => `${' '.repeat(15)}${l}`));
    expect(rows[at + 3]).toMatch(/^ Diagnostics: +not run$/);
  });

  it('shows a lockout of the portal code in place of the code, and wrong tries beside it', async () => {
    const h = headlessScreen();
    destroy = () => h.screen.destroy();
    const agent = fakeAgent(sampleStatus());
    agent.presence = { ...agent.presence, failures: 2 };
    const home = new HomeScreen(h.screen, agent);
    await home.refresh();
    expect(h.text()).toMatch(/Portal code: +K7M2Q-9XRT4 {2}\(changes in 4 min\) 2 wrong tries\n/);
    agent.presence = { ...agent.presence, lockedUntil: Date.parse('2026-12-05T10:25:00Z'), failures: 5 };
    await home.refresh();
    const text = h.text();
    expect(text).toMatch(/Portal code: +locked until 10:25 UTC after 5 wrong codes on the web page\n/);
    expect(text).not.toContain('K7M2Q');
    // The menu's title row says it too.
    h.screen.destroy();
    const m = headlessScreen();
    destroy = () => m.screen.destroy();
    await new MenuScreen(m.screen, agent).refresh();
    expect(m.text().split('\n')[0]).toBe(
      ' CloudLink Gateway - console menu           Portal code LOCKED until 10:25 UTC',
    );
  });

  it('says when the agent is not reachable, and recovers at the next refresh', async () => {
    const h = headlessScreen();
    destroy = () => h.screen.destroy();
    const agent = fakeAgent(sampleStatus());
    agent.down = true;
    const home = new HomeScreen(h.screen, agent);
    await home.refresh();
    const text = h.text();
    expect(text).toContain('The gateway agent is not answering; trying again every second.');
    // Said once, in plain words; the detail (the socket) once, on its own line.
    expect(text.match(/not answering|not reachable/g)).toHaveLength(1);
    expect(text.match(/agent\.sock/g)).toHaveLength(1);
    agent.down = false;
    await home.refresh();
    // Away after it had answered: what is still shown is said to be its last answer.
    agent.down = true;
    await home.refresh();
    expect(h.text()).toMatch(
      /trying again every second\.\n.*agent\.sock: ECONNREFUSED\n Below: its last answer, which may be out of date\.\n/,
    );
    expect(h.text()).toMatch(/Gateway OS: +1\.0\.0/);
    agent.down = false;
    await home.refresh();
    expect(h.text()).not.toContain('not reachable');
    expect(h.text()).toMatch(/Gateway OS: +1\.0\.0/);
  });
});

describe('menu screen (headless, 80x25)', () => {
  async function menu(status: Status) {
    const h = headlessScreen();
    destroy = () => h.screen.destroy();
    const agent = fakeAgent(status);
    const m = new MenuScreen(h.screen, agent);
    await m.refresh();
    return { h, agent, m };
  }

  it('draws the whole 80x25 screen: title, portal code, SSH banner and what support needs, the items, the help line', async () => {
    const end = Date.now() + 86_400_000 + 30_000;
    const sshUntil = `${new Date(end).toISOString().slice(0, 10)} ${new Date(end).toISOString().slice(11, 16)} UTC`;
    const ssh = {
      enabled: true,
      expiresAt: new Date(end).toISOString(),
      secondsLeft: 86_400,
      account: 'support',
      principal: 'appliance-k3m9x2pq7rtw',
    };
    const { h } = await menu(sampleStatus({ platform: 'physical', ssh }));
    const expected = [
      ' CloudLink Gateway - console menu              Portal code K7M2Q-9XRT4 (4 min)',
      ` SSH access is ON until ${sshUntil} (24 h 0 min left)`,
      ' For support: user support, certificate principal appliance-k3m9x2pq7rtw',
      '',
      '   Data Reset',
      '   Factory Reset',
      '   Disable SSH access',
      '   Ethernet configuration and Hostname',
      '   Download logs',
      ...Array<string>(15).fill(''),
      ' Up/Down: choose   Enter: select',
    ];
    expect(h.text().split('\n')).toEqual(expected);
  });

  it('offers Factory Reset on the physical appliance only, and says why it is not there elsewhere', async () => {
    const virtual = await menu(sampleStatus());
    expect(virtual.h.text()).not.toMatch(/^ {3}Factory Reset/m);
    expect(virtual.h.text()).toContain(
      'Factory Reset: not on a virtual appliance - redeploy the OVA instead.',
    );
    expect(virtual.h.text()).toContain('Data Reset');
    expect(virtual.h.text()).toContain('Enable SSH access');
    expect(virtual.h.text()).toContain('Ethernet configuration and Hostname');
    expect(virtual.h.text()).toContain('Download logs');
    virtual.h.screen.destroy();
    const physical = await menu(sampleStatus({ platform: 'physical' }));
    expect(physical.h.text()).toMatch(/^ {3}Factory Reset/m);
    expect(physical.h.text()).not.toContain('not on a virtual appliance');
  });

  it('Data Reset: Escape cancels, a wrong word cancels, the typed word confirms', async () => {
    const { h, agent } = await menu(sampleStatus());
    await typeKeys(h.input, KEY.enter);
    expect(h.text()).toContain('Type RESET and press Enter to confirm');
    // The log question's No/Yes belongs to another dialog: not drawn here.
    expect(h.text()).not.toMatch(/^ +(No|Yes) *$|─ No /m);
    await typeKeys(h.input, KEY.escape);
    expect(h.text()).toContain('Cancelled.');
    await typeKeys(h.input, KEY.enter, 'reset', KEY.enter);
    expect(h.text()).toContain('Cancelled.');
    expect(agent.calls).toEqual([]);
    await typeKeys(h.input, KEY.enter, 'RESET', KEY.enter);
    expect(agent.calls).toEqual(['/v1/data-reset']);
    expect(h.text()).toContain('Data reset done');
  });

  it('keys typed on in the same read as the Enter that opened a field are not lost', async () => {
    // A busy console reads what was typed meanwhile in one go: blessed's textbox listens only
    // from the next turn of the event loop, and dropped the keys after the Enter.
    const { h, agent } = await menu(sampleStatus());
    await typeKeys(h.input, `${KEY.enter}RESET${KEY.enter}`);
    expect(agent.calls).toEqual(['/v1/data-reset']);
    expect(h.text()).toContain('Data reset done');
    // In the form: Ctrl-U among them clears what was typed before it, as when typed slowly.
    await typeKeys(h.input, KEY.down, KEY.down, KEY.enter); // the form (DHCP)
    expect(h.text()).toMatch(/IPv4 +DHCP/);
    await typeKeys(h.input, `${KEY.down}${KEY.enter}old\x15gw-2${KEY.enter}${KEY.down}`);
    expect(h.text()).toMatch(/Hostname +gw-2$/m);
    // The last Down went to the form once the field was done: Enter is on Save.
    await typeKeys(h.input, KEY.enter);
    expect(h.text()).toContain('Apply these network settings?');
  });

  it("shows the agent's refusal in its own words", async () => {
    const { h, agent } = await menu(sampleStatus({ platform: 'physical' }));
    agent.refuse = new ClgwError('NOT_ALLOWED', 'refused: an update is in its critical phase {red-fg}');
    await typeKeys(h.input, KEY.down, KEY.enter, 'FACTORY', KEY.enter);
    expect(agent.calls).toEqual(['/v1/factory-reset']);
    expect(h.text()).toContain('refused: an update is in its critical phase {red-fg}');
  });

  it('Enable and Disable SSH both ask first (No selected); the banner shows the end in UTC; the cursor stays', async () => {
    const { h, agent } = await menu(sampleStatus());
    await typeKeys(h.input, KEY.down, KEY.enter);
    expect(h.text()).toContain('Enable SSH access for 24 hours?');
    await typeKeys(h.input, KEY.enter); // No
    expect(agent.calls).toEqual([]);
    expect(h.text()).toContain('Cancelled: SSH access unchanged.');
    await typeKeys(h.input, KEY.enter, KEY.escape); // the cursor is still on the SSH item; Escape is No
    expect(agent.calls).toEqual([]);
    await typeKeys(h.input, KEY.enter, KEY.down, KEY.enter); // Yes
    expect(agent.calls).toEqual(['ssh true']);
    const text = h.text();
    const iso = SSH_END.toISOString();
    expect(text).toContain(`SSH access is ON until ${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC (`);
    expect(text).not.toContain(iso.slice(0, 16));
    expect(text).toMatch(/^ {3}Disable SSH access/m);
    // The next Enter, still on the same item, asks before switching off.
    await typeKeys(h.input, KEY.enter);
    expect(h.text()).toContain('Disable SSH access now?');
    await typeKeys(h.input, KEY.down, KEY.enter);
    expect(agent.calls).toEqual(['ssh true', 'ssh false']);
    expect(h.text()).toContain('SSH access disabled.');
  });

  it("a long refusal is shown whole, wrapped above the help line (sshd's failure as the agent says it)", async () => {
    const { h, agent } = await menu(sampleStatus());
    const why =
      'SSH access not enabled (sshd on 127.0.0.1:2222): sshd did not answer within 5 s (connect ECONNREFUSED 127.0.0.1:2222)';
    agent.client.setSsh = async () => {
      throw new ClgwError('SSH_FAILED', why);
    };
    await typeKeys(h.input, KEY.down, KEY.enter, KEY.down, KEY.enter);
    const rows = h.text().split('\n');
    expect(rows[24]).toBe(' Up/Down: choose   Enter: select');
    expect(rows.slice(20, 24).join(' ').replace(/\s+/g, ' ').trim()).toBe(why);
    expect(h.text()).not.toContain('SSH access is ON');
  });

  it('a message row as wide as the screen stays one row: nothing of it hidden', async () => {
    const { h, agent } = await menu(sampleStatus());
    // Its first row ends in the last column: blessed broke such a row once more, and the message
    // box, as high as the message's rows, hid its last words.
    const why =
      'SSH access not enabled (sshd on 127.0.0.1:22): sshd did not answer within 10 s (connect ECONNREFUSED 127.0.0.1:22)';
    expect(wrap(why, 78)[0]).toHaveLength(78);
    agent.client.setSsh = async () => {
      throw new ClgwError('SSH_FAILED', why);
    };
    await typeKeys(h.input, KEY.down, KEY.enter, KEY.down, KEY.enter);
    const rows = h.text().split('\n');
    expect(rows.slice(22, 24)).toEqual(wrap(why, 78).map((l) => ` ${l}`));
    expect(rows[24]).toBe(' Up/Down: choose   Enter: select');
  });

  it('the Ethernet form validates inline and sends what was typed', async () => {
    const { h, agent } = await menu(sampleStatus());
    await typeKeys(h.input, KEY.down, KEY.down, KEY.enter); // the form
    expect(h.text()).toMatch(/IPv4 +DHCP/);
    await typeKeys(h.input, KEY.enter); // IPv4: static
    expect(h.text()).toContain('Address is missing');
    await typeKeys(h.input, KEY.down, KEY.enter, '10.0.0.255', KEY.enter);
    await typeKeys(h.input, KEY.down, KEY.enter, '24', KEY.enter);
    expect(h.text()).toContain('Address 10.0.0.255 is the broadcast address of 10.0.0.0/24');
    await typeKeys(h.input, KEY.up, KEY.enter, '\x7f\x7f\x7f20', KEY.enter);
    expect(h.text()).not.toContain('broadcast');
    await typeKeys(h.input, KEY.down, KEY.down, KEY.enter, '10.1.0.1', KEY.enter);
    expect(h.text()).toContain('Gateway 10.1.0.1 is outside the subnet 10.0.0.0/24');
    await typeKeys(h.input, KEY.enter, '\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f10.0.0.1', KEY.enter);
    expect(h.text()).not.toContain('outside');
    await typeKeys(h.input, KEY.down, KEY.down, KEY.down, KEY.enter); // Save
    // Asked first, naming what changes; No goes back to the form with nothing sent.
    expect(h.text()).toContain('Apply these network settings?');
    expect(h.text()).toContain('IPv4:      static 10.0.0.20/24');
    await typeKeys(h.input, KEY.enter);
    expect(agent.calls).toEqual([]);
    expect(h.text()).toMatch(/IPv4 +static/);
    await typeKeys(h.input, KEY.enter, KEY.down, KEY.enter); // Save, Yes
    expect(agent.calls).toEqual([
      'network {"mode":"static","hostname":"cloudlink-gateway","address":"10.0.0.20","netmask":"24","gateway":"10.0.0.1","dns":""}',
    ]);
    expect(h.text()).toContain('Saved: static 10.0.0.20/24');
    // The cursor is back on the item that opened the form, not on the first one (SSH is not a key away).
    expect(h.text()).toMatch(/^ {3}Ethernet configuration and Hostname/m);
    await typeKeys(h.input, KEY.enter);
    expect(h.text()).toContain('Ethernet configuration and Hostname');
    expect(h.text()).toMatch(/IPv4 +DHCP/);
    expect(agent.calls).toHaveLength(1);
  });

  it('Ethernet form: Ctrl-U clears a field; problems are listed in field order, wrapped', async () => {
    const { h, agent } = await menu(sampleStatus());
    await typeKeys(h.input, KEY.down, KEY.down, KEY.enter, KEY.enter); // the form, static
    await typeKeys(h.input, KEY.down, KEY.down, KEY.down, KEY.down, KEY.down, KEY.enter); // Hostname
    await typeKeys(h.input, '\x15', `-${'h'.repeat(50)}`, KEY.enter);
    await typeKeys(h.input, KEY.up, KEY.enter, '1.2.3', KEY.enter); // DNS
    await typeKeys(h.input, KEY.up, KEY.up, KEY.enter, '33', KEY.enter); // Netmask
    // Escape while typing cancels that field only: the form stays.
    await typeKeys(h.input, KEY.down, KEY.down, KEY.enter, 'typo', KEY.escape);
    expect(h.text()).toMatch(/Hostname +-h{50}$/m);
    const rows = h.text().split('\n');
    // Ctrl-U emptied the field before typing: the old name is gone.
    expect(rows.find((r) => r.includes('Hostname  '))).toMatch(/Hostname +-h{50}$/);
    const problems = rows
      .slice(13, 19)
      .map((r) => r.trim())
      .filter(Boolean);
    const order = ['Address', 'Netmask', 'DNS servers', 'Hostname'].map((f) =>
      problems.findIndex((p) => p.startsWith(`${f} `)),
    );
    expect(order.filter((i) => i >= 0)).toEqual([...order.filter((i) => i >= 0)].sort((a, b) => a - b));
    expect(order.filter((i) => i >= 0).length).toBeGreaterThanOrEqual(3);
    for (const r of rows) expect(r.length).toBeLessThanOrEqual(79);
    expect(agent.calls).toEqual([]);
  });

  it('Ethernet form: every problem shown whole, in field order, also while a field is edited', async () => {
    const { h, agent } = await menu(sampleStatus());
    await typeKeys(h.input, KEY.down, KEY.down, KEY.enter, KEY.enter); // the form, static
    // What a technician might type into each field: five problems, two of them two rows long.
    const typed = [
      'cloudlink-gateway.branch-office-north.example.com',
      '255.255.255.0/24',
      '192.168.10.1 (the router)',
      '192.168.10.53; 192.168.10.54',
      'cloudlink_gateway_of_the_branch_office',
    ];
    for (const value of typed) await typeKeys(h.input, KEY.down, KEY.enter, '\x15', value, KEY.enter);
    const expected = [
      'Address "cloudlink-gateway.branch-office-north.example.com" is not an IPv4 address',
      'Netmask "255.255.255.0/24" is neither a dotted netmask nor a prefix length',
      'Gateway "192.168.10.1 (the router)" is not an IPv4 address',
      'DNS servers "192.168.10.53; 192.168.10.54" is not an IPv4 address',
      'Hostname label "cloudlink_gateway_of_the_branch_office" may only hold letters, digits and hyphens',
    ];
    /** The rows between the form's last row and the help line, as the technician reads them. */
    const problemRows = () =>
      h
        .text()
        .split('\n')
        .slice(12, 24)
        .map((r) => r.trim())
        .filter((r) => r !== '' && !r.includes('Ctrl-U'));
    const shown = problemRows();
    // Each problem starts a row of its own, in the order of the fields, and none is cut short.
    const starts = expected.map((e) => shown.findIndex((r) => e.startsWith(r)));
    expect(starts, shown.join('\n')).not.toContain(-1);
    expect(starts).toEqual([...starts].sort((a, b) => a - b));
    expect(shown.join(' ')).toBe(expected.join(' '));
    // Editing a field does not hide them: the line being typed is under them.
    await typeKeys(h.input, KEY.up, KEY.up, KEY.up, KEY.enter);
    expect(h.text()).toContain('Netmask:   (Enter: done');
    expect(problemRows().join(' ')).toContain(expected.join(' '));
    // The help line says what Escape does here: it leaves the field, not the form.
    expect(h.text().split('\n')[24]).toBe(' Enter: done   Escape: Netmask unchanged (the form stays open)');
    await typeKeys(h.input, KEY.escape);
    expect(h.text()).toContain('Ethernet configuration and Hostname');
    expect(h.text().split('\n')[24]).toMatch(/Escape: Cancel$/);
    expect(agent.calls).toEqual([]);
  });

  it("an agent's answer too long for the header row says it is whole on tty1", async () => {
    const { h, m, agent } = await menu(sampleStatus());
    const why =
      "the agent could not read its status: ENOSPC: no space left on device, write '/var/lib/clgw/status.json.tmp-4711'";
    agent.client.status = async () => {
      throw new ClgwError('INTERNAL', why);
    };
    await m.refresh();
    const rows = h.text().split('\n');
    expect(rows[1]).toBe(' The gateway agent is not answering; trying again every second.');
    expect(rows[2]).toMatch(
      /^ the agent could not read its status: ENOSPC: .*\.\.\. \(in full on ALT\+F1\)$/,
    );
    expect(rows[2]!.length).toBeLessThanOrEqual(79);
    // tty1 has it whole, wrapped.
    const home = headlessScreen();
    const away = fakeAgent(sampleStatus());
    away.client.status = agent.client.status;
    await new HomeScreen(home.screen, away).refresh();
    expect(home.text().replace(/\s+/g, ' ')).toContain(why);
    home.screen.destroy();
  });

  it('the refresh every second keeps the cursor where the technician moved it', async () => {
    const { h, m, agent } = await menu(sampleStatus());
    await typeKeys(h.input, KEY.down, KEY.down); // Ethernet configuration
    await m.refresh();
    await typeKeys(h.input, KEY.enter);
    expect(h.text()).toMatch(/IPv4 +DHCP/);
    await typeKeys(h.input, KEY.escape, KEY.up); // back on the menu, then up to SSH
    await m.refresh();
    await typeKeys(h.input, KEY.enter);
    expect(h.text()).toContain('Enable SSH access for 24 hours?');
    expect(agent.calls).toEqual([]);
  });

  it('every dialog, once closed, leaves nothing of itself on the menu, in the form or in the next dialog', async () => {
    const { h, agent } = await menu(sampleStatus({ platform: 'physical' }));
    const baseline = h.text().split('\n');
    /** Rows 0-20 and the help line as at first; the message rows hold no part of a dialog. */
    const expectClean = (what: string) => {
      const rows = h.text().split('\n');
      expect([...rows.slice(0, 21), rows[24]], what).toEqual([...baseline.slice(0, 21), baseline[24]]);
      for (const r of rows.slice(21, 24)) expect(r, what).not.toMatch(/[│─┌┐└┘]|^ *(No|Yes) *$/);
    };
    /** No Yes/No list and no dialog border anywhere: for screens that are not a question. */
    const expectNoChoice = (what: string) => {
      expect(h.text(), what).not.toMatch(/^[ │]*(No|Yes)[ │]*$/m);
    };
    const goTo = (index: number) => [
      ...Array<string>(5).fill(KEY.up),
      ...Array<string>(index).fill(KEY.down),
    ];
    const scenarios: [string, () => Promise<void>][] = [
      ['Data Reset, Escape', () => typeKeys(h.input, ...goTo(0), KEY.enter, KEY.escape)],
      ['Factory Reset, Escape', () => typeKeys(h.input, ...goTo(1), KEY.enter, KEY.escape)],
      ['Download logs, Escape', () => typeKeys(h.input, ...goTo(4), KEY.enter, KEY.escape)],
      ['Download logs, No', () => typeKeys(h.input, ...goTo(4), KEY.enter, KEY.enter)],
      ['Enable SSH, Escape', () => typeKeys(h.input, ...goTo(2), KEY.enter, KEY.escape)],
      ['Enable SSH, No', () => typeKeys(h.input, ...goTo(2), KEY.enter, KEY.enter)],
      [
        'Ethernet form, Cancel',
        () => typeKeys(h.input, ...goTo(3), KEY.enter, KEY.down, KEY.down, KEY.down, KEY.enter),
      ],
      [
        'Ethernet form, Save, No, Cancel',
        () =>
          typeKeys(
            h.input,
            ...goTo(3),
            KEY.enter,
            KEY.down,
            KEY.down,
            KEY.enter,
            KEY.enter,
            KEY.down,
            KEY.enter,
          ),
      ],
      [
        'Download logs, Yes, refused',
        async () => {
          agent.link = new ClgwError('NOT_ALLOWED', 'no');
          await typeKeys(h.input, ...goTo(4), KEY.enter, KEY.down, KEY.enter);
          await waitForText(h, 'Download logs: no');
        },
      ],
      [
        'Download logs, Yes, link, Close',
        async () => {
          agent.link = LINK;
          await typeKeys(h.input, ...goTo(4), KEY.enter, KEY.down, KEY.enter);
          await waitForText(h, LINK.url);
          await typeKeys(h.input, KEY.enter);
        },
      ],
    ];
    for (const [what, run] of scenarios) {
      await run();
      expectClean(what);
      expectNoChoice(what);
      // The next dialog and the form show nothing of this one.
      await typeKeys(h.input, ...goTo(0), KEY.enter);
      expect(h.text(), what).toContain('Type RESET and press Enter to confirm');
      expectNoChoice(`${what}, then Data Reset`);
      await typeKeys(h.input, KEY.escape, ...goTo(3), KEY.enter);
      expect(h.text(), what).toMatch(/IPv4 +DHCP/);
      expectNoChoice(`${what}, then the Ethernet form`);
      await typeKeys(h.input, KEY.down, KEY.down, KEY.down, KEY.enter);
      expectClean(`${what}, then the Ethernet form`);
    }
    expect(agent.calls).toEqual(['create log link', 'create log link']);
  });

  /** Down to Download logs, the last item of the virtual appliance's menu. */
  const toLogs = [KEY.down, KEY.down, KEY.down, KEY.enter];

  it('Download logs: the question defaults to No; Escape is No too', async () => {
    const { h, agent } = await menu(sampleStatus());
    await typeKeys(h.input, ...toLogs);
    const text = h.text();
    expect(text).toContain('Create an unreproducible and temporary log archive URL?');
    const rows = text.split('\n');
    const q = rows.findIndex((r) => r.includes('URL?'));
    expect(rows.slice(q + 2, q + 4).map((r) => r.slice(3).replace(/\s+\S$/, ''))).toEqual([
      '   No',
      '   Yes',
    ]);
    await typeKeys(h.input, KEY.enter);
    expect(h.text()).toContain('Cancelled.');
    await typeKeys(h.input, KEY.enter, KEY.escape);
    expect(h.text()).toContain('Cancelled.');
    expect(h.text()).toContain('   Download logs');
    expect(agent.calls).toEqual([]);
  });

  it('Download logs: Yes builds, then URL, expiry, QR code; Revoke now revokes', async () => {
    const { h, agent } = await menu(sampleStatus());
    let release: () => void = () => undefined;
    agent.release = new Promise<void>((r) => {
      release = r;
    });
    await typeKeys(h.input, ...toLogs, KEY.down, KEY.enter);
    expect(h.text()).toContain('Building the log archive...');
    await typeKeys(h.input, KEY.enter); // keys while building do nothing
    expect(agent.calls).toEqual(['create log link']);
    release();
    await waitForText(h, LINK.url);
    const rows = h.text().split('\n');
    expect(rows[3]).toBe('  Download logs: open this URL in a browser on the LAN');
    expect(rows[4]).toBe(` ${LINK.url}`);
    expect(rows.join('\n')).toMatch(/Expires at [\d: -]+ UTC \(in 10 min\)/);
    expect(rows.join('\n')).toContain('Archive: 1.50 KiB');
    expect(rows.join('\n')).toContain('2 files left out (MANIFEST.txt)');
    // The code drawn is the URL's, level L, quiet zone 2, rows 5 onwards from column 1.
    const qr = renderQrText(encodeQr(LINK.url, { ecLevel: 'L' }), { quiet: 2 });
    expect(qr).toHaveLength(19);
    expect(rows.slice(5, 5 + qr.length).map((r) => r.slice(1, 1 + qr[0]!.length))).toEqual(
      qr.map((l) => l.padEnd(qr[0]!.length)),
    );
    expect(rows).toHaveLength(25);
    expect(rows[24]).toBe(' Up/Down: choose   Enter: select   Escape: Close');
    expect(rows.every((r) => /^[\x20-\x7e\u2580\u2584\u2588]*$/.test(r))).toBe(true);
    await typeKeys(h.input, KEY.up, KEY.enter); // Revoke now
    expect(agent.calls).toEqual(['create log link', 'revoke log links']);
    expect(h.text()).toContain('Revoked: the log download URL no longer works.');
    expect(h.text()).toContain('   Download logs');
    expect(h.text()).not.toContain(LINK.url);
  });

  it("Download logs: the agent's refusal is shown; Close keeps the link; a failed revoke says so", async () => {
    const { h, agent } = await menu(sampleStatus());
    agent.link = new ClgwError('NOT_ALLOWED', 'the portal is not running {x}: no URL to serve logs at');
    await typeKeys(h.input, ...toLogs, KEY.down, KEY.enter);
    await waitForText(h, 'Download logs: the portal is not running {x}: no URL to serve logs at');
    expect(h.text()).toContain('   Ethernet configuration and Hostname');
    agent.link = LINK;
    await typeKeys(h.input, KEY.enter, KEY.down, KEY.enter);
    expect(h.text()).toContain(LINK.url);
    agent.refuse = new ClgwError('INTERNAL', 'disk trouble');
    await typeKeys(h.input, KEY.up, KEY.enter);
    expect(h.text()).toContain('Not revoked: disk trouble');
    expect(h.text()).toContain(LINK.url);
    await typeKeys(h.input, KEY.down, KEY.enter); // Close
    expect(h.text()).toMatch(/The log download URL works until \d\d:\d\d UTC unless revoked\./);
    expect(h.text()).not.toContain(LINK.url);
  });
});
