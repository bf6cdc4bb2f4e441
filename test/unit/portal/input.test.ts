/**
 * What the agent hands the portal (`portalInput`): each fact once, in the page's words — a check
 * without a target has no dangling space, and the profile is not named twice.
 */
import { describe, expect, it } from 'vitest';
import { portalInput } from '../../../agent/src/api/portal-contract.js';
import { sampleStatus } from '../../support/status.js';

describe('portalInput', () => {
  it('names a diagnostics check by name and target, without a stray space when it has none', () => {
    const input = portalInput(
      sampleStatus({
        diagnostics: {
          at: '2026-12-05T09:00:00Z',
          results: [
            { name: 'dns', target: '', verdict: 'warning', summary: 'not checked' },
            { name: 'https', target: '10.0.0.9:443', verdict: 'ok', summary: 'TLS ok' },
          ],
        } as never,
      }),
    );
    expect(input.diagnostics?.checks.map((c) => c.name)).toEqual(['dns', 'https 10.0.0.9:443']);
  });

  it('the profile: its name, then what it gives, once', () => {
    const input = portalInput(
      sampleStatus({
        profile: {
          name: 'small-plus',
          line: 'performance profile: small-plus (23.5GiB RAM), RTP port range: 65198-65534',
          cores: 2,
          memoryBytes: 25_232_932_864,
          rtpPorts: { low: 65198, high: 65534 },
        },
      }),
    );
    expect(input.profile).toEqual({ name: 'small-plus', detail: '23.5GiB RAM, RTP port range: 65198-65534' });
  });
});
