/**
 * The log download links: random tokens of which only the hash is kept, a fixed lifetime on an
 * injected clock, a few live at most, revocation; every failure the same `undefined`.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '@clgw/core/platform/clock.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LogLinks } from '../../../agent/src/logs/links.js';

const MIN = 60_000;
let dir: string;
let clock: ManualClock;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-links-'));
  clock = new ManualClock();
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function archive(name: string): Promise<{ file: string; name: string }> {
  const file = path.join(dir, name);
  await fs.writeFile(file, 'archive');
  return { file, name };
}

const exists = (file: string) =>
  fs.stat(file).then(
    () => true,
    () => false,
  );

/** Lets the link's expiry timer (a resolved sleep) run its deletion. */
const settle = () => new Promise((r) => setTimeout(r, 20));

describe('log download links', () => {
  it('hands out a ≥ 128-bit base64url token that looks up its archive, and keeps only its SHA-256', async () => {
    const links = new LogLinks({ clock, ttlMs: 10 * MIN });
    const a = await archive('a.tar.gz');
    const { token, expiresAt } = await links.create(a);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes
    expect(Buffer.from(token, 'base64url').length).toBeGreaterThanOrEqual(16);
    expect(expiresAt).toBe(clock.now() + 10 * MIN);
    expect(await links.lookup(token)).toEqual(a);
    const hashes = links.storedHashes();
    expect(hashes).toEqual([createHash('sha256').update(token).digest()]);
    expect(JSON.stringify(links)).not.toContain(token);
    const second = await links.create(await archive('b.tar.gz'));
    expect(second.token).not.toBe(token);
  });

  it('answers undefined alike for unknown, malformed, over-long and empty tokens', async () => {
    const links = new LogLinks({ clock, ttlMs: 10 * MIN });
    const { token } = await links.create(await archive('a.tar.gz'));
    for (const bad of [
      '',
      'x',
      `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`,
      `${token}x`,
      token.toUpperCase() === token ? token.toLowerCase() : token.toUpperCase(),
      '../../etc/passwd',
      'a'.repeat(10_000),
    ]) {
      expect(await links.lookup(bad)).toBeUndefined();
    }
    expect(await links.lookup(token)).toBeDefined();
  });

  it('expires after the lifetime on the injected clock and deletes the archive', async () => {
    const links = new LogLinks({ clock, ttlMs: 10 * MIN });
    const a = await archive('a.tar.gz');
    const { token } = await links.create(a);
    clock.advance(10 * MIN - 1);
    await settle();
    expect(await links.lookup(token)).toEqual(a);
    expect(links.live()).toHaveLength(1);
    clock.advance(1);
    // The archive is deleted in the background: wait for it (20 ms was not always enough under load).
    for (const end = Date.now() + 5000; (await exists(a.file)) && Date.now() < end; ) await settle();
    expect(await exists(a.file)).toBe(false);
    expect(await links.lookup(token)).toBeUndefined();
    expect(links.live()).toHaveLength(0);
    expect(links.storedHashes()).toHaveLength(0);
  });

  it('treats a clock that jumped past the expiry (no timer run yet) as expired', async () => {
    // A clock whose timers never fire: lookup must not trust the timer alone.
    let now = Date.UTC(2026, 0, 1);
    const frozenTimers = { now: () => now, sleep: () => new Promise<void>(() => undefined) };
    const links = new LogLinks({ clock: frozenTimers, ttlMs: MIN });
    const a = await archive('a.tar.gz');
    const { token } = await links.create(a);
    now += 2 * MIN;
    expect(await links.lookup(token)).toBeUndefined();
    expect(await exists(a.file)).toBe(false);
  });

  it('revokes every link at once and deletes their archives', async () => {
    const links = new LogLinks({ clock, ttlMs: 10 * MIN });
    const a = await archive('a.tar.gz');
    const b = await archive('b.tar.gz');
    const ta = await links.create(a);
    const tb = await links.create(b);
    expect(await links.revokeAll()).toBe(2);
    expect(await links.lookup(ta.token)).toBeUndefined();
    expect(await links.lookup(tb.token)).toBeUndefined();
    expect(await exists(a.file)).toBe(false);
    expect(await exists(b.file)).toBe(false);
    expect(await links.revokeAll()).toBe(0);
    // The expiry timers were cancelled with the links.
    expect(clock.waiting()).toBe(0);
  });

  it('keeps at most maxLive links: a new one revokes the oldest', async () => {
    const links = new LogLinks({ clock, ttlMs: 10 * MIN, maxLive: 2 });
    const first = await archive('1.tar.gz');
    const t1 = await links.create(first);
    const t2 = await links.create(await archive('2.tar.gz'));
    const t3 = await links.create(await archive('3.tar.gz'));
    expect(await links.lookup(t1.token)).toBeUndefined();
    expect(await exists(first.file)).toBe(false);
    expect(await links.lookup(t2.token)).toBeDefined();
    expect(await links.lookup(t3.token)).toBeDefined();
  });

  it('refuses tokens of fewer than 128 random bits', () => {
    expect(() => new LogLinks({ clock, ttlMs: MIN, tokenBytes: 15 })).toThrow(/16 random bytes/);
  });

  it('reports an archive it could not delete, and still ends the link', async () => {
    const failed: string[] = [];
    const links = new LogLinks({
      clock,
      ttlMs: MIN,
      remove: () => Promise.reject(new Error('EBUSY')),
      onError: (file) => failed.push(file),
    });
    const a = await archive('a.tar.gz');
    const { token } = await links.create(a);
    await links.revokeAll();
    expect(failed).toEqual([a.file]);
    expect(await links.lookup(token)).toBeUndefined();
  });
});
