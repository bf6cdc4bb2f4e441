/**
 * The temporary log download links: a random token (256 bits) per archive, of which only the
 * SHA-256 is kept; a fixed lifetime; a few live at most. Expired, revoked and unknown tokens are
 * all the same `undefined`, and every lookup compares against every live hash in constant time,
 * so neither the answer nor its timing tells a guesser anything. Kept in memory: a restart
 * revokes them all (their archives are under the run directory, which a reboot clears).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { Clock } from '@clgw/core/platform/clock.js';

export interface LogLinkFile {
  /** The archive on disk. */
  file: string;
  /** The name a browser saves it as. */
  name: string;
}

export interface LogLinksOptions {
  clock: Clock;
  /** How long a link lives. */
  ttlMs: number;
  /** Links live at once; creating one more revokes the oldest (default 3). */
  maxLive?: number;
  /** Random bytes of a token (default 32; at least 16). */
  tokenBytes?: number;
  /** Deletes an archive whose link ended (default: `fs.rm`, missing files ignored). */
  remove?: (file: string) => Promise<void>;
  /** Told when deleting an archive failed (it is not retried). */
  onError?: (file: string, error: unknown) => void;
}

interface Link extends LogLinkFile {
  hash: Buffer;
  expiresAt: number;
  /** Ends the timer that deletes the archive at expiry. */
  stop: AbortController;
}

/** Longest token looked up: a real one is 43 characters; anything far longer is not hashed at all. */
const MAX_TOKEN_LENGTH = 128;
const TOKEN = /^[A-Za-z0-9_-]+$/;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class LogLinks {
  private readonly links: Link[] = [];
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly maxLive: number;
  private readonly tokenBytes: number;
  private readonly remove: (file: string) => Promise<void>;
  private readonly onError: (file: string, error: unknown) => void;

  constructor(opts: LogLinksOptions) {
    this.clock = opts.clock;
    this.ttlMs = opts.ttlMs;
    this.maxLive = Math.max(1, opts.maxLive ?? 3);
    this.tokenBytes = opts.tokenBytes ?? 32;
    if (this.tokenBytes < 16) throw new RangeError('a log link token needs at least 16 random bytes');
    this.remove = opts.remove ?? ((file) => fs.rm(file, { force: true }));
    this.onError = opts.onError ?? (() => undefined);
  }

  /**
   * A new link to `archive`: the token (given out once, never kept) and when it expires. The
   * oldest link goes when more than `maxLive` would be live.
   */
  async create(archive: LogLinkFile): Promise<{ token: string; expiresAt: number }> {
    await this.sweep();
    const token = randomBytes(this.tokenBytes).toString('base64url');
    const expiresAt = this.clock.now() + this.ttlMs;
    const link: Link = { ...archive, hash: sha256(token), expiresAt, stop: new AbortController() };
    this.links.push(link);
    this.clock.sleep(this.ttlMs, link.stop.signal).then(
      () => this.end(link),
      () => undefined, // revoked first: end() already ran
    );
    while (this.links.length > this.maxLive) await this.end(this.links[0]!);
    return { token, expiresAt };
  }

  /**
   * The archive a token stands for, or undefined — for a token that is unknown, expired,
   * revoked or malformed alike. Compares the token's hash with every live link's hash, each in
   * constant time, without stopping at a match.
   */
  async lookup(token: string): Promise<LogLinkFile | undefined> {
    await this.sweep();
    const candidate = sha256(token.length <= MAX_TOKEN_LENGTH && TOKEN.test(token) ? token : '');
    let found: Link | undefined;
    for (const link of this.links) {
      if (timingSafeEqual(link.hash, candidate) && found === undefined) found = link;
    }
    if (!found || found.expiresAt <= this.clock.now()) return undefined;
    return { file: found.file, name: found.name };
  }

  /** Ends every link and deletes their archives; resolves to how many there were. */
  async revokeAll(): Promise<number> {
    const all = [...this.links];
    for (const link of all) await this.end(link);
    return all.length;
  }

  /** Live links: when each expires (nothing that would let one be used). */
  live(): { expiresAt: number }[] {
    const now = this.clock.now();
    return this.links.filter((l) => l.expiresAt > now).map((l) => ({ expiresAt: l.expiresAt }));
  }

  /** The stored hashes (for tests: that no token is kept). */
  storedHashes(): Buffer[] {
    return this.links.map((l) => Buffer.from(l.hash));
  }

  /** Ends links whose time is up (the timers do too; this covers a clock that jumped). */
  private async sweep(): Promise<void> {
    const now = this.clock.now();
    for (const link of this.links.filter((l) => l.expiresAt <= now)) await this.end(link);
  }

  private async end(link: Link): Promise<void> {
    const i = this.links.indexOf(link);
    if (i < 0) return;
    this.links.splice(i, 1);
    link.stop.abort();
    try {
      await this.remove(link.file);
    } catch (e) {
      this.onError(link.file, e);
    }
  }
}
