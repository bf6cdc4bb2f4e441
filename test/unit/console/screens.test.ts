/**
 * The console's blessed screens headless: a screen on in-memory streams at 80x25 (TERM=linux),
 * driven with the keys a terminal sends, against a stand-in agent client; the drawn text compared.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClgwError } from '../../../agent/src/errors.js';
import type { NetworkInput } from '../../../agent/src/network/settings.js';
import type { Status } from '../../../agent/src/status.js';
import type { ConsoleDeps } from '../../../console-tui/src/ui/deps.js';
import { HomeScreen } from '../../../console-tui/src/ui/home.js';
import { MenuScreen } from '../../../console-tui/src/ui/menu.js';
import { headlessScreen, KEY, typeKeys } from './headless.js';
import { sampleStatus } from './status-fixture.js';

interface FakeAgent extends ConsoleDeps {
  calls: string[];
  current: Status;
  down: boolean;
  refuse?: ClgwError;
}

function fakeAgent(status: Status): FakeAgent {
  const fake: FakeAgent = {
    calls: [],
    current: status,
    down: false,
    refreshMs: 1_000_000,
    addresses: () => ['192.0.2.10'],
    client: {
      status: async () => {
        if (fake.down)
          throw new ClgwError(
            'AGENT_UNREACHABLE',
            'the agent is not reachable on /run/clgw/agent.sock: not running',
          );
        return fake.current;
      },
      post: async (endpoint: string) => {
        fake.calls.push(endpoint);
        if (fake.refuse) throw fake.refuse;
        return fake.current;
      },
      setSsh: async (enabled: boolean) => {
        fake.calls.push(`ssh ${enabled}`);
        const ssh = enabled
          ? { enabled: true, expiresAt: '2026-11-22T10:00:00.000Z', secondsLeft: 86_400 }
          : { enabled: false, expiresAt: null, secondsLeft: null };
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
    },
  };
  return fake;
}

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
    expect(text).not.toContain('SSH access');
  });

  it('says when the agent is not reachable, and recovers at the next refresh', async () => {
    const h = headlessScreen();
    destroy = () => h.screen.destroy();
    const agent = fakeAgent(sampleStatus());
    agent.down = true;
    const home = new HomeScreen(h.screen, agent);
    await home.refresh();
    expect(h.text()).toContain('The gateway agent is not reachable; retrying every second.');
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

  it('draws the whole 80x25 screen: title, SSH banner, the items, the help line', async () => {
    const ssh = { enabled: true, expiresAt: '2026-11-22T10:00:00.000Z', secondsLeft: 86_400 };
    const { h } = await menu(sampleStatus({ platform: 'physical', ssh }));
    const expected = [
      ' CloudLink Gateway - console menu',
      ' SSH access is enabled: 24 h 0 min left (until 2026-11-22T10:00:00.000Z)',
      '',
      '',
      '   Data Reset',
      '   Factory Reset',
      '   Disable SSH access',
      '   Ethernet configuration and Hostname',
      ...Array<string>(16).fill(''),
      ' Up/Down: choose   Enter: select',
    ];
    expect(h.text().split('\n')).toEqual(expected);
  });

  it('offers Factory Reset on the physical appliance only', async () => {
    const virtual = await menu(sampleStatus());
    expect(virtual.h.text()).not.toContain('Factory Reset');
    expect(virtual.h.text()).toContain('Data Reset');
    expect(virtual.h.text()).toContain('Enable SSH access');
    expect(virtual.h.text()).toContain('Ethernet configuration and Hostname');
    virtual.h.screen.destroy();
    const physical = await menu(sampleStatus({ platform: 'physical' }));
    expect(physical.h.text()).toContain('Factory Reset');
  });

  it('Data Reset: Escape cancels, a wrong word cancels, the typed word confirms', async () => {
    const { h, agent } = await menu(sampleStatus());
    await typeKeys(h.input, KEY.enter);
    expect(h.text()).toContain('Type RESET and press Enter to confirm');
    await typeKeys(h.input, KEY.escape);
    expect(h.text()).toContain('Cancelled.');
    await typeKeys(h.input, KEY.enter, 'reset', KEY.enter);
    expect(h.text()).toContain('Cancelled.');
    expect(agent.calls).toEqual([]);
    await typeKeys(h.input, KEY.enter, 'RESET', KEY.enter);
    expect(agent.calls).toEqual(['/v1/data-reset']);
    expect(h.text()).toContain('Data reset done');
  });

  it("shows the agent's refusal in its own words", async () => {
    const { h, agent } = await menu(sampleStatus({ platform: 'physical' }));
    agent.refuse = new ClgwError('NOT_ALLOWED', 'refused: an update is in its critical phase {red-fg}');
    await typeKeys(h.input, KEY.down, KEY.enter, 'FACTORY', KEY.enter);
    expect(agent.calls).toEqual(['/v1/factory-reset']);
    expect(h.text()).toContain('refused: an update is in its critical phase {red-fg}');
  });

  it('Enable SSH shows the banner above the menu and the item turns into Disable', async () => {
    const { h, agent } = await menu(sampleStatus());
    await typeKeys(h.input, KEY.down, KEY.enter);
    expect(agent.calls).toEqual(['ssh true']);
    const text = h.text();
    expect(text).toContain('SSH access is enabled: 24 h 0 min left');
    expect(text).toContain('Disable SSH access');
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
    expect(agent.calls).toEqual([
      'network {"mode":"static","hostname":"cloudlink-gateway","address":"10.0.0.20","netmask":"24","gateway":"10.0.0.1","dns":""}',
    ]);
    expect(h.text()).toContain('Saved: static 10.0.0.20/24');
  });
});
