import type { ClgwError } from '@clgw/core/errors.js';
import { type Compat, validateCompat } from '@clgw/core/release/schema.js';
import { describe, expect, it } from 'vitest';
import {
  decideUpdate,
  lastLook,
  type PendingRelease,
  type UpdateContext,
} from '../../../agent/src/release/policy.js';
import { sampleCompat } from '../../fixtures/release/compat.js';

const EXPIRES = Date.UTC(2026, 11, 20, 10); // 2026-12-20T10:00:00Z, the sample's expiry
const NOW = Date.UTC(2026, 10, 25);
const PUBLISHED = Date.UTC(2026, 10, 20, 10); // 2026-11-20T10:00:00Z, the sample's publication

/** The sample document (virtual: 1.1.0, updates from 1.0.0) with edits. */
function compat(edit: (d: ReturnType<typeof sampleCompat>) => void = () => {}): Compat {
  const doc = sampleCompat();
  edit(doc);
  return validateCompat(doc);
}

function ctx(over: Partial<UpdateContext> = {}): UpdateContext {
  return { platform: 'virtual', runningVersion: '1.0.0', now: NOW, ...over };
}

function refusal(c: Compat, context: UpdateContext): ClgwError {
  try {
    decideUpdate(c, context);
  } catch (e) {
    return e as ClgwError;
  }
  throw new Error('no refusal');
}

describe('decideUpdate', () => {
  it('offers the release when the running version qualifies', () => {
    const decision = decideUpdate(compat(), ctx());
    expect(decision).toMatchObject({ kind: 'update', serial: 42, release: { version: '1.1.0' } });
  });

  it('refuses an expired document, at and after the expiry instant', () => {
    for (const now of [EXPIRES, EXPIRES + 1, EXPIRES + 86_400_000]) {
      const err = refusal(compat(), ctx({ now }));
      expect(err.code).toBe('RELEASE_EXPIRED');
      expect(err.message).toContain('expired at 2026-12-20T10:00:00Z');
    }
    expect(decideUpdate(compat(), ctx({ now: EXPIRES - 1 })).kind).toBe('update');
  });

  it('refuses a document published more than 5 minutes ahead of the clock, naming both times', () => {
    for (const now of [PUBLISHED - 5 * 60_000 - 1, PUBLISHED - 86_400_000, 0]) {
      const err = refusal(compat(), ctx({ now }));
      expect(err.code).toBe('RELEASE_NOT_YET_VALID');
      expect(err.message).toContain('published at 2026-11-20T10:00:00Z');
      expect(err.message).toContain(`it is now ${new Date(now).toISOString()}`);
      expect(err.details).toMatchObject({
        published: '2026-11-20T10:00:00Z',
        now: new Date(now).toISOString(),
      });
    }
    // Within the skew allowed for clocks (and at or after publication) it is current.
    for (const now of [PUBLISHED - 5 * 60_000, PUBLISHED - 1, PUBLISHED])
      expect(decideUpdate(compat(), ctx({ now })).kind).toBe('update');
  });

  it('refuses a replayed older serial but accepts the same or a newer one', () => {
    const err = refusal(compat(), ctx({ lastSerial: 43 }));
    expect(err.code).toBe('SERIAL_REPLAYED');
    expect(err.message).toContain('serial 42, older than serial 43');
    expect(decideUpdate(compat(), ctx({ lastSerial: 42 })).kind).toBe('update');
    expect(decideUpdate(compat(), ctx({ lastSerial: 41 })).kind).toBe('update');
    expect(decideUpdate(compat(), ctx({ lastSerial: undefined })).kind).toBe('update');
  });

  it('refuses a document without the platform, naming the ones present', () => {
    const err = refusal(
      compat((d) => {
        d.platforms.kvm = d.platforms.virtual!;
      }),
      ctx({ platform: 'physical' }),
    );
    expect(err.code).toBe('PLATFORM_MISMATCH');
    expect(err.message).toContain('no release for platform physical; it names virtual, kvm');
  });

  it('keeps a running release newer than the one published (removed from compat.yaml): no downgrade, no error', () => {
    for (const highestVersion of [undefined, '1.2.0', '1.3.0'])
      expect(decideUpdate(compat(), ctx({ runningVersion: '1.2.0', highestVersion }))).toEqual({
        kind: 'newer-running',
        version: '1.2.0',
        published: '1.1.0',
        serial: 42,
      });
  });

  it('refuses a release older than the highest version ever installed, even above the running one', () => {
    // After a rollback the running slot is older than what was once installed; replaying a
    // release between the two must not be accepted.
    const err = refusal(compat(), ctx({ runningVersion: '1.0.0', highestVersion: '1.1.1' }));
    expect(err.code).toBe('DOWNGRADE_REFUSED');
    expect(err.message).toContain(
      'release 1.1.0 is older than the highest version ever installed here, 1.1.1',
    );
  });

  it('allows re-installing the highest version after it was rolled back', () => {
    expect(decideUpdate(compat(), ctx({ runningVersion: '1.0.0', highestVersion: '1.1.0' })).kind).toBe(
      'update',
    );
  });

  it('is up to date when the release is the running version, whatever minSourceVersion says', () => {
    expect(decideUpdate(compat(), ctx({ runningVersion: '1.1.0', highestVersion: '1.1.0' }))).toEqual({
      kind: 'up-to-date',
      version: '1.1.0',
      serial: 42,
    });
  });

  it('refuses when the running version is below minSourceVersion, naming both', () => {
    const err = refusal(compat(), ctx({ runningVersion: '0.9.9' }));
    expect(err.code).toBe('SOURCE_VERSION_TOO_OLD');
    expect(err.message).toContain(
      'release 1.1.0 can only be installed over 1.0.0 or later; this appliance runs 0.9.9',
    );
    expect(decideUpdate(compat(), ctx({ runningVersion: '1.0.0' })).kind).toBe('update');
    // A prerelease of the minimum is below the minimum.
    expect(refusal(compat(), ctx({ runningVersion: '1.0.0-rc.1' })).code).toBe('SOURCE_VERSION_TOO_OLD');
  });

  it('orders prereleases below their release', () => {
    expect(decideUpdate(compat(), ctx({ runningVersion: '1.1.0-rc.2' })).kind).toBe('update');
    const rc = compat((d) => {
      d.platforms.virtual!.release.version = '1.1.0-rc.1';
    });
    expect(decideUpdate(rc, ctx({ runningVersion: '1.1.0' })).kind).toBe('newer-running');
  });

  it('checks in a fixed order: publication, expiry, replay, platform, downgrade, source version', () => {
    const everything = ctx({ now: EXPIRES, lastSerial: 99, platform: 'kvm', runningVersion: '2.0.0' });
    const ahead = compat((d) => {
      d.published = '2026-12-21T10:00:00Z';
      d.expires = '2026-12-22T10:00:00Z';
    });
    expect(refusal(ahead, everything).code).toBe('RELEASE_NOT_YET_VALID');
    expect(refusal(compat(), everything).code).toBe('RELEASE_EXPIRED');
    expect(refusal(compat(), { ...everything, now: NOW }).code).toBe('SERIAL_REPLAYED');
    expect(refusal(compat(), { ...everything, now: NOW, lastSerial: 1 }).code).toBe('PLATFORM_MISMATCH');
    expect(
      refusal(compat(), {
        ...everything,
        now: NOW,
        lastSerial: 1,
        platform: 'virtual',
        runningVersion: '1.0.0',
        highestVersion: '2.0.0',
      }).code,
    ).toBe('DOWNGRADE_REFUSED');
  });

  it('refuses to reason about a running version that is not semver', () => {
    const err = refusal(compat(), ctx({ runningVersion: 'unknown' }));
    expect(err.code).toBe('STATE_INVALID');
    expect(err.message).toContain('"unknown"');
  });
});

describe('decideUpdate: a withdrawn release', () => {
  const withdrawn = compat((d) => {
    Object.assign(d.platforms.virtual!.release, { withdrawn: { reason: 'calls drop' } });
  });

  it('is not installed on a box below it, whatever its source version', () => {
    for (const runningVersion of ['1.0.0', '0.9.9']) {
      expect(decideUpdate(withdrawn, ctx({ runningVersion }))).toMatchObject({
        kind: 'withdrawn',
        running: false,
        release: { version: '1.1.0', withdrawn: { reason: 'calls drop' } },
      });
    }
  });

  it('is kept on a box running it (a withdrawal is not a downgrade)', () => {
    expect(decideUpdate(withdrawn, ctx({ runningVersion: '1.1.0', highestVersion: '1.1.0' }))).toMatchObject({
      kind: 'withdrawn',
      running: true,
    });
  });

  it('after the document checks: an expired document is still refused', () => {
    expect(refusal(withdrawn, ctx({ now: EXPIRES })).code).toBe('RELEASE_EXPIRED');
  });
});

describe('lastLook: is the installed release still offered?', () => {
  const pending = (over: Partial<PendingRelease> = {}): PendingRelease => {
    const r = compat().platforms.virtual!.release;
    return { version: '1.1.0', serial: 42, platform: 'virtual', artifacts: r.artifacts, ...over };
  };

  it('offered: the same release, same images, same or a newer document, whatever its rollout', () => {
    expect(lastLook(compat(), pending(), NOW)).toEqual({ kind: 'offered' });
    expect(lastLook(compat(), pending({ serial: 41 }), NOW)).toEqual({ kind: 'offered' });
    const narrowed = compat((d) => {
      Object.assign(d.platforms.virtual!.release, { rollout: { percent: 0, salt: 's' } });
    });
    expect(lastLook(narrowed, pending(), NOW)).toEqual({ kind: 'offered' });
  });

  it('halted: withdrawn, with the reason', () => {
    const doc = compat((d) => {
      Object.assign(d.platforms.virtual!.release, { withdrawn: { reason: 'calls drop' } });
    });
    expect(lastLook(doc, pending(), NOW)).toEqual({
      kind: 'halted',
      message: 'the vendor withdrew 1.1.0 (calls drop)',
      reason: 'calls drop',
    });
  });

  it('halted: another version named (the previous one re-published), or another one above it', () => {
    for (const version of ['1.0.1', '1.2.0']) {
      const doc = compat((d) => {
        d.serial = 43;
        d.platforms.virtual!.release.version = version;
      });
      expect(lastLook(doc, pending(), NOW)).toEqual({
        kind: 'halted',
        message: `compat.yaml (serial 43) now names ${version} instead of 1.1.0`,
      });
    }
  });

  it('halted: the platform no longer named', () => {
    const doc = compat((d) => {
      d.platforms.kvm = d.platforms.virtual!;
      delete d.platforms.virtual;
    });
    expect(lastLook(doc, pending(), NOW)).toEqual({
      kind: 'halted',
      message: 'compat.yaml (serial 42) no longer names a release for platform virtual',
    });
  });

  it('halted: other images under the same version', () => {
    const other = pending();
    const doc = compat((d) => {
      d.platforms.virtual!.release.artifacts.root!.sha256 = 'c'.repeat(64);
    });
    expect(lastLook(doc, other, NOW)).toMatchObject({
      kind: 'halted',
      message: expect.stringContaining('other images'),
    });
  });

  it('unjudged: a document older than the one that offered it, expired or from the future', () => {
    const halted = compat((d) => {
      d.platforms.virtual!.release.version = '1.0.1';
    });
    expect(lastLook(halted, pending({ serial: 43 }), NOW)).toMatchObject({
      kind: 'unjudged',
      message: expect.stringContaining('serial 42, older than serial 43'),
    });
    expect(lastLook(halted, pending(), EXPIRES)).toMatchObject({
      kind: 'unjudged',
      message: expect.stringContaining('expired'),
    });
    expect(lastLook(halted, pending(), PUBLISHED - 86_400_000)).toMatchObject({ kind: 'unjudged' });
  });
});
