import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Per-page tokens against cross-site requests. Each page (and each event stream) gets
 * `<nonce>.<issued>.<mac>`: a random nonce, the issue time in seconds, and the HMAC-SHA256 of
 * both under a secret made once per process. Nothing is stored per token, so any number of pages
 * can be open; a restart of the portal invalidates every token (the page fetches a new one when it
 * reconnects). Another site cannot read a page or a stream of this origin, so it cannot learn a
 * token; the MAC is compared in constant time.
 */
export interface TokenIssuer {
  issue(): string;
  /** True for a token this issuer made less than `maxAgeMs` ago. */
  verify(token: unknown): boolean;
}

const NONCE_BYTES = 16;
const MAX_TOKEN_LENGTH = 128;

export function createTokenIssuer(
  opts: { now: () => number; secret?: Buffer; maxAgeMs?: number } = { now: Date.now },
): TokenIssuer {
  const secret = opts.secret ?? randomBytes(32);
  const maxAgeMs = opts.maxAgeMs ?? 24 * 3600_000;
  const mac = (payload: string) =>
    createHmac('sha256', secret).update(`clgw-portal:${payload}`).digest('base64url');
  return {
    issue() {
      const payload = `${randomBytes(NONCE_BYTES).toString('base64url')}.${Math.floor(opts.now() / 1000)}`;
      return `${payload}.${mac(payload)}`;
    },
    verify(token) {
      if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH) return false;
      const parts = token.split('.');
      if (parts.length !== 3) return false;
      const [nonce, issued, given] = parts as [string, string, string];
      if (!/^[A-Za-z0-9_-]{22}$/.test(nonce) || !/^\d{1,12}$/.test(issued)) return false;
      const expected = Buffer.from(mac(`${nonce}.${issued}`));
      const actual = Buffer.from(given);
      if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return false;
      const age = opts.now() - Number(issued) * 1000;
      return age >= -60_000 && age <= maxAgeMs;
    },
  };
}
