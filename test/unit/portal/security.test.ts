import { describe, expect, it } from 'vitest';
import {
  CONTENT_SECURITY_POLICY,
  crossSiteReason,
  hostName,
  isAllowedHost,
  SECURITY_HEADERS,
} from '../../../portal/src/headers.js';
import { createRateLimiter } from '../../../portal/src/rate-limit.js';
import { createTokenIssuer } from '../../../portal/src/token.js';

describe('page tokens', () => {
  it('a token it issued verifies; a changed, foreign or malformed one does not', () => {
    let t = 1_700_000_000_000;
    const now = () => t;
    const issuer = createTokenIssuer({ now });
    const token = issuer.issue();
    expect(token).toMatch(/^[A-Za-z0-9_-]{22}\.\d+\.[A-Za-z0-9_-]{43}$/);
    expect(issuer.verify(token)).toBe(true);
    // Two pages get different tokens.
    expect(issuer.issue()).not.toBe(token);

    const [nonce, issued, mac] = token.split('.') as [string, string, string];
    const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
    expect(issuer.verify(`${flip(nonce)}.${issued}.${mac}`)).toBe(false);
    expect(issuer.verify(`${nonce}.${Number(issued) + 1}.${mac}`)).toBe(false);
    expect(issuer.verify(`${nonce}.${issued}.${flip(mac)}`)).toBe(false);
    expect(issuer.verify(`${nonce}.${issued}.${mac.slice(1)}`)).toBe(false);
    expect(createTokenIssuer({ now }).verify(token)).toBe(false);
    for (const bad of [undefined, '', 'x', 'a.b.c', `${token}.x`, 42, 'x'.repeat(500)]) {
      expect(issuer.verify(bad)).toBe(false);
    }

    // Expires after a day.
    t += 24 * 3600_000 - 1000;
    expect(issuer.verify(token)).toBe(true);
    t += 2000;
    expect(issuer.verify(token)).toBe(false);
  });

  it('a token verifies with every issuer that holds the same secret (a restart keeping the secret)', () => {
    const secret = Buffer.alloc(32, 7);
    const a = createTokenIssuer({ now: Date.now, secret });
    const b = createTokenIssuer({ now: Date.now, secret });
    expect(b.verify(a.issue())).toBe(true);
  });
});

describe('rate limiter', () => {
  it('allows max requests per window per client, then says when the next one is allowed', () => {
    const limiter = createRateLimiter({ max: 5, windowMs: 60_000 });
    for (let i = 0; i < 5; i++) expect(limiter.take('10.0.0.1', 1000 + i * 1000)).toEqual({ ok: true });
    expect(limiter.take('10.0.0.1', 10_000)).toEqual({ ok: false, retryAfterMs: 51_000 });
    // Another client is not affected.
    expect(limiter.take('10.0.0.2', 10_000)).toEqual({ ok: true });
    // The window slides: the first request ages out at 61 000.
    expect(limiter.take('10.0.0.1', 60_999)).toEqual({ ok: false, retryAfterMs: 1 });
    expect(limiter.take('10.0.0.1', 61_000)).toEqual({ ok: true });
    expect(limiter.take('10.0.0.1', 61_001).ok).toBe(false);
  });

  it('refused attempts do not extend the lock-out', () => {
    const limiter = createRateLimiter({ max: 1, windowMs: 1000 });
    expect(limiter.take('c', 0).ok).toBe(true);
    for (let t = 1; t < 1000; t += 100) expect(limiter.take('c', t).ok).toBe(false);
    expect(limiter.take('c', 1000).ok).toBe(true);
  });

  it('tracks a bounded number of clients', () => {
    const limiter = createRateLimiter({ max: 1, windowMs: 60_000, maxClients: 3 });
    for (const c of ['a', 'b', 'c']) expect(limiter.take(c, 0).ok).toBe(true);
    expect(limiter.take('d', 1).ok).toBe(true); // forgets 'a', the least recently seen
    expect(limiter.take('a', 2).ok).toBe(true);
    expect(limiter.take('d', 3).ok).toBe(false);
  });
});

describe('headers', () => {
  it('every response carries the strict set', () => {
    expect(CONTENT_SECURITY_POLICY).toBe(
      "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    expect(SECURITY_HEADERS).toMatchObject({
      'content-security-policy': CONTENT_SECURITY_POLICY,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
    });
  });

  it('host names: IP literals and the appliance names only (no DNS rebinding)', () => {
    expect(hostName('CloudLink.local:8080')).toBe('cloudlink.local');
    expect(hostName('[::1]:80')).toBe('[::1]');
    expect(hostName('bad host')).toBeUndefined();
    const names = ['gw-lab'];
    for (const ok of [
      '192.0.2.10',
      '192.0.2.10:8080',
      '[fe80::1]',
      'localhost:80',
      'cloudlink.local',
      'gw-lab',
      'GW-LAB.local',
    ]) {
      expect(isAllowedHost(ok, names), ok).toBe(true);
    }
    for (const bad of [
      undefined,
      '',
      'evil.example',
      'cloudlink.local.evil.example',
      '999.1.1.1',
      'gw-lab.evil',
    ]) {
      expect(isAllowedHost(bad, names), String(bad)).toBe(false);
    }
  });

  it('cross-site requests are recognised by Sec-Fetch-Site and Origin', () => {
    const host = '192.0.2.10';
    expect(
      crossSiteReason({ host, origin: 'http://192.0.2.10', 'sec-fetch-site': 'same-origin' }),
    ).toBeUndefined();
    expect(crossSiteReason({ host })).toBeUndefined(); // curl: the token decides
    expect(crossSiteReason({ host, 'sec-fetch-site': 'cross-site' })).toBe('Sec-Fetch-Site is cross-site');
    expect(crossSiteReason({ host, 'sec-fetch-site': 'same-site' })).toBe('Sec-Fetch-Site is same-site');
    expect(crossSiteReason({ host, origin: 'http://evil.example' })).toContain('not this portal');
    expect(crossSiteReason({ host, origin: 'null' })).toContain('not this portal');
    expect(crossSiteReason({ host: '192.0.2.10:8080', origin: 'http://192.0.2.10' })).toContain(
      'not this portal',
    );
  });
});
