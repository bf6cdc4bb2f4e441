import { describe, expect, it } from 'vitest';
import { logLinkUrl } from '../../../agent/src/logs/url.js';

const TOKEN = 'A'.repeat(43);

describe('log link URL', () => {
  it('uses the static IPv4 address on the appliance (portal on all addresses, port 80)', () => {
    const url = logLinkUrl(
      {
        portalUrl: 'http://127.0.0.1:80/',
        listenHost: '0.0.0.0',
        staticAddress: '192.168.1.20',
        interfaceAddress: '10.0.0.5',
      },
      TOKEN,
    );
    expect(url).toBe(`http://192.168.1.20/logs/${TOKEN}`);
  });

  it('uses the address DHCP gave the LAN port when there is no static one, else the portal host', () => {
    expect(
      logLinkUrl(
        { portalUrl: 'http://127.0.0.1/', listenHost: '0.0.0.0', interfaceAddress: '10.0.0.5' },
        TOKEN,
      ),
    ).toBe(`http://10.0.0.5/logs/${TOKEN}`);
    expect(logLinkUrl({ portalUrl: 'http://127.0.0.1/', listenHost: '0.0.0.0' }, TOKEN)).toBe(
      `http://127.0.0.1/logs/${TOKEN}`,
    );
  });

  it('keeps the address and port of a portal bound to one address (the simulator)', () => {
    expect(
      logLinkUrl(
        { portalUrl: 'http://127.0.0.1:41234/', listenHost: '127.0.0.1', staticAddress: '192.168.1.20' },
        TOKEN,
      ),
    ).toBe(`http://127.0.0.1:41234/logs/${TOKEN}`);
  });
});
