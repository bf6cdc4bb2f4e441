import { ERROR_CODES } from '@clgw/core/errors.js';
import { describe, expect, it } from 'vitest';
import { CLI_ACTIONS, ownWords, PORTAL_ACTIONS, plainError } from '../../../agent/src/advice.js';
import { plainError as portalPlainError } from '../../../portal/src/view.js';

describe('plain words for an error code, shared by the portal and the CLI', () => {
  it('the portal shows the shared module’s words (one source: they cannot diverge)', () => {
    for (const code of ERROR_CODES) expect(portalPlainError({ code }), code).toEqual(plainError({ code }));
    expect(plainError({ code: 'DNS_LOOKUP_FAILED' }, PORTAL_ACTIONS).advice).toBe(
      'Check the DNS server in the network settings and that the gateway may reach it (udp/53), then choose Retry.',
    );
  });

  it('the CLI gets the same text with its commands in place of the buttons', () => {
    for (const code of ERROR_CODES) {
      const cli = plainError({ code }, CLI_ACTIONS);
      expect(cli.title, code).toBe(plainError({ code }).title);
      expect(cli.advice, code).not.toMatch(/\b(choose|Choose) (Retry|Reboot)\b/);
    }
    expect(plainError({ code: 'TIMED_OUT' }, CLI_ACTIONS).advice).toBe(
      'Check the network settings (clgw network), the DNS server and the firewall (the gateway needs HTTPS, tcp/443, to the download server), then run clgw retry.',
    );
    expect(plainError({ code: 'NO_SPACE' }, CLI_ACTIONS).advice).toMatch(
      /^Run clgw reboot, then clgw retry\./,
    );
  });

  it('codes without words of their own: none from ownWords, the general words from plainError', () => {
    expect(ownWords({ code: 'INTERNAL' }, CLI_ACTIONS)).toBeUndefined();
    expect(plainError({ code: 'INTERNAL' }).title).toBe('The update failed.');
    expect(ownWords({ code: 'PROXY_AUTH_FAILED' })?.advice).toBe(
      'Correct the user and password in the proxy settings, then choose Retry.',
    );
  });
});
