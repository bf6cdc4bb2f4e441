/**
 * Proof of presence for what the web page may do that a stranger on the LAN must not (SPEC.md
 * §9): Reboot and Factory Reset from the portal need a short code that only the appliance's own
 * screen shows (tty1, the tty2 menu header — the physical or VMware console). Whoever reads it is
 * standing at the appliance, or holds its hypervisor's console.
 *
 * - 10 symbols from an alphabet without look-alikes (no 0/O, 1/I/L, U/V): 29^10 ≈ 2^48.6.
 * - It changes every {@link PresenceOptions.lifetimeMs} and after each use; after a timed change
 *   the previous code is still taken for a short grace (the technician who read it just before the
 *   change and is typing it), never after a use or a lockout.
 * - Wrong codes are counted for the whole appliance, not per address (a LAN has many addresses):
 *   after `maxFailures` in a row, every code is refused until the lockout ends, and the code changes.
 *   The console shows the lockout. At 5 tries per 15 minutes, guessing 2^49 codes takes longer
 *   than any appliance lives.
 * - Only 10 symbols of the alphabet are a code at all: anything else typed (another length, other
 *   symbols, letters outside ASCII) is a wrong code, counted like any other, and never compared.
 * - Compared in constant time (the comparison is injected: `constantTimeEqual` in equal.ts).
 *
 * Kept in memory only: an agent restart shows a new code (and ends a lockout — an agent that a
 * stranger cannot crash restarts too rarely for that to matter). Pure: no `node:*` imports.
 */

/** The code's symbols: digits and capitals a person cannot mistake for one another. */
export const PRESENCE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTWXYZ';
export const PRESENCE_CODE_LENGTH = 10;
/** A code as it is compared: exactly {@link PRESENCE_CODE_LENGTH} symbols of the alphabet. */
const CODE_FORM = new RegExp(`^[${PRESENCE_ALPHABET}]{${PRESENCE_CODE_LENGTH}}$`);

export interface PresenceOptions {
  now: () => number;
  /** `n` random bytes (crypto.randomBytes). */
  random: (n: number) => Uint8Array;
  /** Equality in constant time (equal.ts); only ever given two strings of the code's form. */
  equal: (a: string, b: string) => boolean;
  /** How long a code is shown before it changes (default 5 minutes). */
  lifetimeMs?: number;
  /** How long the previous code is still taken after a timed change (default 60 s). */
  graceMs?: number;
  /** Wrong codes in a row before the lockout (default 5). */
  maxFailures?: number;
  /** How long every code is refused after `maxFailures` wrong ones (default 15 minutes). */
  lockoutMs?: number;
}

/** What the console shows (never sent to the portal). */
export interface PresenceView {
  /** `K7M2Q-9XRT4`: as displayed (grouped); typed with or without the dash, any case. */
  code: string;
  /** When it changes by itself (ms since the epoch). */
  expiresAt: number;
  /** While locked: when codes are taken again (ms since the epoch); else null. */
  lockedUntil: number | null;
  /** Wrong codes since the last right one (or the last lockout). */
  failures: number;
  maxFailures: number;
}

export type PresenceResult =
  | { ok: true }
  | { ok: false; reason: 'invalid'; attemptsLeft: number }
  | { ok: false; reason: 'locked'; lockedUntil: number };

export interface Presence {
  view(): PresenceView;
  /** Checks a code given from the LAN; a right one is used up (the code changes). */
  verify(given: string): PresenceResult;
}

/** A code as typed: case and blanks or dashes between the symbols do not matter. */
export function normalizeCode(given: string): string {
  return given.toUpperCase().replace(/[\s-]/g, '');
}

/** `K7M2Q9XRT4` as shown: `K7M2Q-9XRT4`. */
export function displayCode(code: string): string {
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

export function createPresence(opts: PresenceOptions): Presence {
  const lifetimeMs = opts.lifetimeMs ?? 5 * 60_000;
  const graceMs = opts.graceMs ?? 60_000;
  const maxFailures = opts.maxFailures ?? 5;
  const lockoutMs = opts.lockoutMs ?? 15 * 60_000;

  /** Uniform symbols: bytes at or above the largest multiple of the alphabet's size are drawn again. */
  const newCode = (): string => {
    const n = PRESENCE_ALPHABET.length;
    const limit = 256 - (256 % n);
    let code = '';
    while (code.length < PRESENCE_CODE_LENGTH) {
      for (const b of opts.random(PRESENCE_CODE_LENGTH * 2)) {
        if (b < limit && code.length < PRESENCE_CODE_LENGTH) code += PRESENCE_ALPHABET[b % n];
      }
    }
    return code;
  };

  let current = { code: newCode(), expiresAt: opts.now() + lifetimeMs };
  let previous: { code: string; validUntil: number } | null = null;
  let failures = 0;
  let lockedUntil: number | null = null;

  const fresh = (now: number) => {
    current = { code: newCode(), expiresAt: now + lifetimeMs };
    previous = null;
  };

  /** The clock moves on: the lockout ends, the code changes when its time is up. */
  const advance = (now: number) => {
    if (lockedUntil !== null && now >= lockedUntil) {
      lockedUntil = null;
      failures = 0;
    }
    if (now >= current.expiresAt) {
      previous = { code: current.code, validUntil: current.expiresAt + graceMs };
      current = { code: newCode(), expiresAt: now + lifetimeMs };
    }
    if (previous && now >= previous.validUntil) previous = null;
  };

  return {
    view() {
      advance(opts.now());
      return {
        code: displayCode(current.code),
        expiresAt: current.expiresAt,
        lockedUntil,
        failures,
        maxFailures,
      };
    },
    verify(given) {
      const now = opts.now();
      advance(now);
      if (lockedUntil !== null) return { ok: false, reason: 'locked', lockedUntil };
      const typed = normalizeCode(given);
      // What is not of the code's form is wrong before any comparison: the form is no secret,
      // and the comparison then only ever sees strings of the same length in bytes.
      if (CODE_FORM.test(typed)) {
        // Both codes are always compared, so the time taken does not tell which one matched.
        const matchesCurrent = opts.equal(typed, current.code);
        const matchesPrevious = previous !== null && opts.equal(typed, previous.code);
        if (matchesCurrent || matchesPrevious) {
          failures = 0;
          fresh(now);
          return { ok: true };
        }
      }
      failures += 1;
      if (failures >= maxFailures) {
        lockedUntil = now + lockoutMs;
        fresh(now);
        return { ok: false, reason: 'locked', lockedUntil };
      }
      return { ok: false, reason: 'invalid', attemptsLeft: maxFailures - failures };
    },
  };
}
