/**
 * The presence code (agent/src/presence/presence.ts) with a clock the test moves: its alphabet
 * and length, rotation by time and by use, the grace for the previous code, the global lockout,
 * and that a code is compared whole and case-blind.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { constantTimeEqual } from '../../../agent/src/presence/equal.js';
import {
  createPresence,
  normalizeCode,
  PRESENCE_ALPHABET,
  PRESENCE_CODE_LENGTH,
} from '../../../agent/src/presence/presence.js';

const MIN = 60_000;

function presence(opts: { maxFailures?: number; equal?: (a: string, b: string) => boolean } = {}) {
  const clock = { t: Date.parse('2026-12-05T10:00:00Z') };
  const p = createPresence({
    now: () => clock.t,
    random: (n) => randomBytes(n),
    // The agent's own comparison (agent.ts).
    equal: constantTimeEqual,
    ...opts,
  });
  return { p, clock };
}

describe('presence code', () => {
  it('is 10 symbols from an alphabet without look-alikes, shown in two groups: over 40 bits', () => {
    const { p } = presence();
    expect(PRESENCE_ALPHABET).not.toMatch(/[01OILUV]/);
    expect(PRESENCE_CODE_LENGTH * Math.log2(PRESENCE_ALPHABET.length)).toBeGreaterThan(40);
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const { code } = p.view();
      expect(code).toMatch(new RegExp(`^[${PRESENCE_ALPHABET}]{5}-[${PRESENCE_ALPHABET}]{5}$`));
      seen.add(code);
      expect(p.verify(code)).toEqual({ ok: true }); // used: the next one is new
    }
    expect(seen.size).toBe(50);
  });

  it('is taken once, typed in any case with or without the dash; a right code changes it', () => {
    const { p } = presence();
    const { code } = p.view();
    expect(p.verify(` ${code.toLowerCase().replace('-', ' ')} `)).toEqual({ ok: true });
    expect(p.view().code).not.toBe(code);
    // Replayed: the used code is refused and counts as wrong.
    expect(p.verify(code)).toEqual({ ok: false, reason: 'invalid', attemptsLeft: 4 });
    expect(normalizeCode('ab-cd ef')).toBe('ABCDEF');
  });

  it('changes every 5 minutes; the previous code is still taken for a minute, not after', () => {
    const { p, clock } = presence();
    const first = p.view();
    expect(first.expiresAt).toBe(clock.t + 5 * MIN);
    clock.t += 5 * MIN - 1;
    expect(p.view().code).toBe(first.code);
    clock.t += 30_001;
    const second = p.view();
    expect(second.code).not.toBe(first.code);
    expect(second.expiresAt).toBe(clock.t + 5 * MIN);
    expect(p.verify(first.code)).toEqual({ ok: true }); // 30 s after the change: within the grace
    const third = p.view();
    clock.t += 5 * MIN;
    const fourth = p.view().code;
    clock.t += 61_000;
    expect(p.verify(third.code)).toEqual({ ok: false, reason: 'invalid', attemptsLeft: 4 });
    expect(p.verify(fourth)).toEqual({ ok: true });
  });

  it('locks every code for 15 minutes after 5 wrong ones, whoever sent them; then takes the new code', () => {
    const { p, clock } = presence();
    const code = p.view().code;
    const wrong = code.startsWith('2') ? '33333-33333' : '22222-22222';
    for (let left = 4; left >= 1; left--) {
      expect(p.verify(wrong)).toEqual({ ok: false, reason: 'invalid', attemptsLeft: left });
    }
    const locked = p.verify(wrong);
    expect(locked).toEqual({ ok: false, reason: 'locked', lockedUntil: clock.t + 15 * MIN });
    const during = p.view();
    expect(during.lockedUntil).toBe(clock.t + 15 * MIN);
    expect(during.code).not.toBe(code); // changed at the lockout
    // Even the right code is refused while locked.
    expect(p.verify(during.code)).toMatchObject({ ok: false, reason: 'locked' });
    clock.t += 15 * MIN;
    const after = p.view();
    expect(after.lockedUntil).toBeNull();
    expect(after.failures).toBe(0);
    expect(p.verify(after.code)).toEqual({ ok: true });
  });

  it('counts a wrong length or an unknown symbol as a wrong code, and never matches a prefix', () => {
    const { p } = presence();
    const code = p.view().code.replace('-', '');
    expect(p.verify(code.slice(0, 9))).toMatchObject({ ok: false, reason: 'invalid' });
    expect(p.verify(`${code}2`)).toMatchObject({ ok: false, reason: 'invalid' });
    expect(p.verify('')).toMatchObject({ ok: false, reason: 'invalid' });
    expect(p.view().failures).toBe(3);
    expect(p.verify(code)).toEqual({ ok: true });
    expect(p.view().failures).toBe(0);
  });

  it('counts a code of 10 characters that are not the alphabet’s (É, Cyrillic, digits 0/1) as wrong, never comparing it', () => {
    const compared: [string, string][] = [];
    const { p } = presence({
      equal: (a, b) => {
        compared.push([a, b]);
        return constantTimeEqual(a, b);
      },
    });
    const code = p.view().code;
    // 10 characters each, after the dash goes: 20 bytes of UTF-8, or symbols left out as look-alikes.
    const malformed = ['ÉÉÉÉÉ-ÉÉÉÉÉ', 'АВСЕНКМРТХ', '00000-11111', 'éééééééééé'];
    malformed.forEach((typed, i) => {
      expect(p.verify(typed), typed).toEqual({ ok: false, reason: 'invalid', attemptsLeft: 4 - i });
    });
    expect(compared).toEqual([]);
    expect(p.view()).toMatchObject({ code, failures: 4 });
    // The fifth malformed code locks, as a fifth wrong code of the right form would.
    expect(p.verify('ÄÄÄÄÄÄÄÄÄÄ')).toMatchObject({ ok: false, reason: 'locked' });
    expect(compared).toEqual([]);
  });
});

describe('constantTimeEqual (the agent’s comparison)', () => {
  it('answers false for strings of one length in characters but not in bytes, instead of throwing', () => {
    expect(() => constantTimeEqual('ÉÉÉÉÉÉÉÉÉÉ', 'K7M2Q9XRT4')).not.toThrow();
    expect(constantTimeEqual('ÉÉÉÉÉÉÉÉÉÉ', 'K7M2Q9XRT4')).toBe(false);
    expect(constantTimeEqual('K7M2Q9XRT', 'K7M2Q9XRT4')).toBe(false);
    expect(constantTimeEqual('K7M2Q9XRT5', 'K7M2Q9XRT4')).toBe(false);
    expect(constantTimeEqual('K7M2Q9XRT4', 'K7M2Q9XRT4')).toBe(true);
  });
});
