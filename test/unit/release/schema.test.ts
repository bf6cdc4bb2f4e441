import { ClgwError } from '@clgw/core/errors.js';
import {
  artifactPathProblem,
  isStrictSemver,
  MAX_ARTIFACT_SIZE,
  parseUtcTimestamp,
  validateCompat,
} from '@clgw/core/release/schema.js';
import { describe, expect, it } from 'vitest';
import { sampleCompat } from '../../fixtures/release/compat.js';

/** Sets (or, for undefined, deletes) the field at a dotted path of a plain document. */
function setPath(doc: object, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  const last = keys.pop()!;
  let node = doc as Record<string, unknown>;
  for (const k of keys) node = node[k] as Record<string, unknown>;
  if (value === undefined) delete node[last];
  else node[last] = value;
}

/** Runs validateCompat and returns the COMPAT_INVALID message (fails the test if it passes). */
function invalid(doc: unknown): string {
  try {
    validateCompat(doc);
  } catch (e) {
    expect(e).toBeInstanceOf(ClgwError);
    expect((e as ClgwError).code).toBe('COMPAT_INVALID');
    return (e as ClgwError).message;
  }
  throw new Error('document was accepted');
}

describe('compat schema v1', () => {
  it('accepts a complete document and keeps every field', () => {
    const compat = validateCompat(sampleCompat());
    expect(compat.serial).toBe(42);
    expect(compat.platforms.virtual?.release.artifacts.boot.size).toBe(16777216);
    expect(compat.platforms.virtual?.containers[0]?.name).toBe('tunnel');
    expect(compat.platforms.physical).toBeUndefined();
  });

  it('defaults a missing container list to empty', () => {
    const doc = sampleCompat();
    delete (doc.platforms.virtual as Record<string, unknown>).containers;
    expect(validateCompat(doc).platforms.virtual?.containers).toEqual([]);
  });

  it.each([
    [
      'top level',
      (d: ReturnType<typeof sampleCompat>) => Object.assign(d, { extra: 1 }),
      '(document): unknown key "extra"',
    ],
    [
      'platforms',
      (d: ReturnType<typeof sampleCompat>) => Object.assign(d.platforms, { solaris: {} }),
      'platforms: unknown key "solaris"',
    ],
    [
      'platform entry',
      (d: ReturnType<typeof sampleCompat>) => Object.assign(d.platforms.virtual!, { notes: 'x' }),
      'platforms.virtual: unknown key "notes"',
    ],
    [
      'release',
      (d: ReturnType<typeof sampleCompat>) =>
        Object.assign(d.platforms.virtual!.release, { channel: 'beta' }),
      'platforms.virtual.release: unknown key "channel"',
    ],
    [
      'artifacts',
      (d: ReturnType<typeof sampleCompat>) =>
        Object.assign(d.platforms.virtual!.release.artifacts, { kernel: {} }),
      'platforms.virtual.release.artifacts: unknown key "kernel"',
    ],
    [
      'artifact',
      (d: ReturnType<typeof sampleCompat>) =>
        Object.assign(d.platforms.virtual!.release.artifacts.boot!, { md5: 'x' }),
      'platforms.virtual.release.artifacts.boot: unknown key "md5"',
    ],
    [
      'container',
      (d: ReturnType<typeof sampleCompat>) =>
        Object.assign(d.platforms.virtual!.containers[0]!, { tag: 'x' }),
      'platforms.virtual.containers[0]: unknown key "tag"',
    ],
  ])('refuses an unknown key at the %s level', (_level, mutate, message) => {
    const doc = sampleCompat();
    mutate(doc);
    expect(invalid(doc)).toContain(message);
  });

  it.each([
    ['serial as string', 'serial', '42', 'serial: expected a number, got string "42"'],
    ['serial fractional', 'serial', 4.5, 'serial: expected a whole number'],
    ['serial zero', 'serial', 0, 'serial: expected a serial of at least 1'],
    ['serial missing', 'serial', undefined, 'serial: missing'],
    [
      'size as string',
      'platforms.virtual.release.artifacts.root.size',
      '64M',
      'platforms.virtual.release.artifacts.root.size: expected a number',
    ],
    ['platforms as list', 'platforms', [], 'platforms: expected a mapping, got a list'],
    [
      'containers as mapping',
      'platforms.virtual.containers',
      {},
      'platforms.virtual.containers: expected a list, got a mapping',
    ],
    ['schema 2', 'schema', 2, 'schema: unsupported schema version'],
    [
      'version as number',
      'platforms.virtual.release.version',
      1.1,
      'platforms.virtual.release.version: expected a string, got number 1.1',
    ],
  ])('refuses a wrong type: %s', (_name, at, value, message) => {
    const doc = sampleCompat();
    setPath(doc, at, value);
    expect(invalid(doc)).toContain(message);
  });

  it('refuses the whole document when it is not a mapping', () => {
    expect(invalid(null)).toContain('(document): expected a mapping, got null');
    expect(invalid([1])).toContain('(document): expected a mapping, got a list');
  });

  it('refuses numbers a JS number cannot hold, and sizes above the cap', () => {
    const doc = sampleCompat();
    doc.serial = 2 ** 60;
    expect(invalid(doc)).toContain(`serial: expected a serial of at most ${Number.MAX_SAFE_INTEGER}`);
    const inf = sampleCompat();
    inf.platforms.virtual!.release.artifacts.boot!.size = Number.POSITIVE_INFINITY;
    expect(invalid(inf)).toContain('platforms.virtual.release.artifacts.boot.size');
    const big = sampleCompat();
    big.platforms.virtual!.release.artifacts.boot!.size = MAX_ARTIFACT_SIZE + 1;
    expect(invalid(big)).toContain('at most 68719476736 bytes (64 GiB)');
    const ok = sampleCompat();
    ok.platforms.virtual!.release.artifacts.boot!.size = MAX_ARTIFACT_SIZE;
    expect(validateCompat(ok).platforms.virtual?.release.artifacts.boot.size).toBe(MAX_ARTIFACT_SIZE);
    const zero = sampleCompat();
    zero.platforms.virtual!.release.artifacts.boot!.size = 0;
    expect(invalid(zero)).toContain('at least 1 byte');
  });

  it.each(['ABCDEF'.padEnd(64, '0'), 'a'.repeat(63), 'a'.repeat(65), 'g'.repeat(64), ` ${'a'.repeat(63)}`])(
    'refuses sha256 %j',
    (sha) => {
      const doc = sampleCompat();
      doc.platforms.virtual!.release.artifacts.boot!.sha256 = sha;
      const message = invalid(doc);
      expect(message).toContain(
        'platforms.virtual.release.artifacts.boot.sha256: expected 64 lowercase hex digits',
      );
      expect(message).toContain(JSON.stringify(sha));
    },
  );

  it.each([
    ['../etc/passwd', '".." segment'],
    ['releases/../../etc/shadow', '".." segment'],
    ['/etc/passwd', 'relative'],
    ['releases\\1.1.0\\boot.img', 'backslash'],
    ['releases//boot.img', 'empty segments'],
    ['releases/1.1.0/', 'empty segments'],
    ['./boot.img', '"." segment'],
    ['releases/.hidden', 'not start with "."'],
    ['releases/boot img', 'must use only'],
    ['releases/bööt.img', 'must use only'],
    ['', 'must not be empty'],
    [`${'a/'.repeat(9)}b`, 'at most 8 segments'],
    ['a'.repeat(256), 'at most 255 characters'],
  ])('refuses artifact path %j', (p, why) => {
    expect(artifactPathProblem(p)).toContain(why);
    const doc = sampleCompat();
    doc.platforms.virtual!.release.artifacts.root!.path = p;
    expect(invalid(doc)).toContain('platforms.virtual.release.artifacts.root.path: unsafe path');
  });

  it('accepts ordinary nested relative paths', () => {
    expect(artifactPathProblem('releases/1.1.0+build.7/root.img')).toBeUndefined();
    expect(artifactPathProblem('a/b_c/d-e.tar.gz')).toBeUndefined();
  });

  it.each(['v1.1.0', '1.1', '1.1.0.0', '01.1.0', '1.1.0 ', '=1.1.0', 'latest', `1.0.0-${'x'.repeat(70)}`])(
    'refuses version %j',
    (v) => {
      expect(isStrictSemver(v)).toBe(false);
      const doc = sampleCompat();
      doc.platforms.virtual!.release.version = v;
      expect(invalid(doc)).toContain('platforms.virtual.release.version: expected a strict semantic version');
    },
  );

  it('accepts prerelease versions but not build metadata (semver ignores it when ordering)', () => {
    expect(isStrictSemver('1.2.3-rc.1')).toBe(true);
    expect(isStrictSemver('1.2.3+build.5')).toBe(false);
  });

  it('refuses a minimum source version above the release version', () => {
    const doc = sampleCompat();
    doc.platforms.virtual!.release.minSourceVersion = '1.2.0';
    expect(invalid(doc)).toContain(
      'platforms.virtual.release.minSourceVersion: must not be above the release version 1.1.0',
    );
  });

  it('refuses expires at or before published', () => {
    const same = sampleCompat();
    same.expires = same.published as string;
    expect(invalid(same)).toContain('expires: must be after published (2026-11-20T10:00:00Z)');
    const before = sampleCompat();
    before.expires = '2026-11-20T09:59:59Z';
    expect(invalid(before)).toContain('expires: must be after published');
    const after = sampleCompat();
    after.expires = '2026-11-20T10:00:01Z';
    expect(validateCompat(after).expires).toBe('2026-11-20T10:00:01Z');
  });

  it.each([
    '2026-11-20',
    '2026-11-20T10:00:00',
    '2026-11-20T10:00:00+01:00',
    '2026-02-30T10:00:00Z',
    '2026-11-20T24:00:00Z',
    'tomorrow',
  ])('refuses timestamp %j', (ts) => {
    expect(parseUtcTimestamp(ts)).toBeNaN();
    const doc = sampleCompat();
    doc.published = ts;
    expect(invalid(doc)).toContain('published: expected an ISO-8601 UTC timestamp');
  });

  it('reads UTC timestamps with and without milliseconds', () => {
    expect(parseUtcTimestamp('2026-11-20T10:00:00Z')).toBe(Date.UTC(2026, 10, 20, 10));
    expect(parseUtcTimestamp('2028-02-29T00:00:00.5Z')).toBe(Date.UTC(2028, 1, 29, 0, 0, 0, 500));
  });

  it('needs at least one platform', () => {
    const doc = sampleCompat();
    doc.platforms = {};
    expect(invalid(doc)).toContain('platforms: expected at least one of physical, virtual, kvm');
  });

  it('validates container entries: names from the fixed set, unique, with safe references', () => {
    const unknown = sampleCompat();
    unknown.platforms.virtual!.containers[0]!.name = 'nginx';
    expect(invalid(unknown)).toContain(
      'platforms.virtual.containers[0].name: expected one of tunnel, micloud, freeswitch',
    );
    const dup = sampleCompat();
    dup.platforms.virtual!.containers.push({ ...dup.platforms.virtual!.containers[0]! });
    expect(invalid(dup)).toContain('platforms.virtual.containers[1].name: duplicate container');
    const image = sampleCompat();
    image.platforms.virtual!.containers[0]!.image = 'registry/x:1; rm -rf /';
    expect(invalid(image)).toContain('platforms.virtual.containers[0].image: expected an image reference');
    const archive = sampleCompat();
    (archive.platforms.virtual!.containers[0]!.archive as Record<string, unknown>).path = '../x.tar';
    expect(invalid(archive)).toContain('platforms.virtual.containers[0].archive.path: unsafe path');
  });

  it('names several problems at once and records them in details', () => {
    const doc = sampleCompat();
    doc.serial = -1;
    doc.platforms.virtual!.release.artifacts.boot!.sha256 = 'x';
    try {
      validateCompat(doc, 'https://mirror.test/compat.yaml');
      expect.unreachable();
    } catch (e) {
      const err = e as ClgwError;
      expect(err.message).toMatch(/^https:\/\/mirror\.test\/compat\.yaml is invalid: /);
      expect(err.message).toContain('serial:');
      expect(err.message).toContain('boot.sha256:');
      expect(err.details.problems).toHaveLength(2);
    }
  });
});

describe('a release under a staged rollout', () => {
  const withRollout = (rollout: unknown) => {
    const doc = sampleCompat();
    Object.assign(doc.platforms.virtual!.release, { rollout });
    return doc;
  };

  it.each([
    [{ percent: 0, salt: 'a' }],
    [{ percent: 10, salt: '1.4.0' }],
    [{ percent: 12.5, salt: 'wave-2/2026:Q4' }],
    [{ percent: 99.99, salt: 'x'.repeat(64) }],
    [{ percent: 100, salt: '~!#' }],
  ])('accepts %j', (rollout) => {
    expect(validateCompat(withRollout(rollout)).platforms.virtual?.release.rollout).toEqual(rollout);
  });

  it('is optional: without it the release is offered to all', () => {
    expect(validateCompat(sampleCompat()).platforms.virtual?.release.rollout).toBeUndefined();
  });

  it.each([
    [{ percent: -1, salt: 's' }, 'rollout.percent: expected a percentage from 0 to 100 (got -1)'],
    [{ percent: 100.01, salt: 's' }, 'rollout.percent: expected a percentage from 0 to 100 (got 100.01)'],
    [
      { percent: 12.345, salt: 's' },
      'rollout.percent: expected at most two decimals, such as 12.5 (got 12.345)',
    ],
    [{ percent: '10', salt: 's' }, 'rollout.percent: expected a number, got string "10"'],
    [{ salt: 's' }, 'rollout.percent: missing (expected a number)'],
    [
      { percent: 10, salt: '' },
      'rollout.salt: expected 1 to 64 printable characters without spaces (got "")',
    ],
    [
      { percent: 10, salt: 'two words' },
      'rollout.salt: expected 1 to 64 printable characters without spaces',
    ],
    [
      { percent: 10, salt: 'x'.repeat(65) },
      'rollout.salt: expected 1 to 64 printable characters without spaces',
    ],
    [
      { percent: 10, salt: 'tab\there' },
      'rollout.salt: expected 1 to 64 printable characters without spaces',
    ],
    [{ percent: 10, salt: 'é' }, 'rollout.salt: expected 1 to 64 printable characters without spaces'],
    [{ percent: 10, salt: 7 }, 'rollout.salt: expected a string, got number 7'],
    [{ percent: 10 }, 'rollout.salt: missing (expected a string)'],
    [{ percent: 10, salt: 's', cohort: 'a' }, 'rollout: unknown key "cohort"'],
    [10, 'rollout: expected a mapping, got number 10'],
  ])('refuses %j naming the field', (rollout, message) => {
    expect(invalid(withRollout(rollout))).toContain(`platforms.virtual.release.${message}`);
  });
});

describe('a withdrawn release', () => {
  const withWithdrawn = (withdrawn: unknown) => {
    const doc = sampleCompat();
    Object.assign(doc.platforms.virtual!.release, { withdrawn });
    return doc;
  };
  const message = 'expected 1 to 200 printable characters, not starting or ending with a space';

  it.each([
    [{ reason: 'x' }],
    [{ reason: 'calls drop after 20 min on SIP trunks (CLGW-1234)' }],
    [{ reason: 'y'.repeat(200) }],
  ])('accepts %j', (withdrawn) => {
    expect(validateCompat(withWithdrawn(withdrawn)).platforms.virtual?.release.withdrawn).toEqual(withdrawn);
  });

  it('is optional', () => {
    expect(validateCompat(sampleCompat()).platforms.virtual?.release.withdrawn).toBeUndefined();
  });

  it.each([
    [{ reason: '' }, `withdrawn.reason: ${message}`],
    [{ reason: ' leading' }, `withdrawn.reason: ${message}`],
    [{ reason: 'trailing ' }, `withdrawn.reason: ${message}`],
    [{ reason: 'y'.repeat(201) }, `withdrawn.reason: ${message}`],
    [{ reason: 'line\nbreak' }, `withdrawn.reason: ${message}`],
    [{ reason: 'é' }, `withdrawn.reason: ${message}`],
    [{ reason: 7 }, 'withdrawn.reason: expected a string, got number 7'],
    [{}, 'withdrawn.reason: missing (expected a string)'],
    [{ reason: 'bad', by: 'me' }, 'withdrawn: unknown key "by"'],
    [true, 'withdrawn: expected a mapping, got boolean true'],
  ])('refuses %j naming the field', (withdrawn, text) => {
    expect(invalid(withWithdrawn(withdrawn))).toContain(`platforms.virtual.release.${text}`);
  });
});
