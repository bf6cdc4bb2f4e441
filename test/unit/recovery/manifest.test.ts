import { describe, expect, it } from 'vitest';
import { parseManifest, validateManifest } from '../../../recovery/src/manifest.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = '0123456789abcdef'.repeat(4);

function good(): Record<string, unknown> {
  return {
    schema: 1,
    version: '1.0.0',
    boot: { file: 'boot.img', size: 4096, sha256: SHA_A },
    root: { file: 'root.img', size: 8192, sha256: SHA_B },
  };
}

/** A copy of the good manifest with one field changed (by path), or removed when value is undefined. */
function withField(pathParts: string[], value: unknown): Record<string, unknown> {
  const m = structuredClone(good());
  let at: Record<string, unknown> = m;
  for (const p of pathParts.slice(0, -1)) at = at[p] as Record<string, unknown>;
  const last = pathParts[pathParts.length - 1]!;
  if (value === undefined) delete at[last];
  else at[last] = value;
  return m;
}

describe('factory manifest validation', () => {
  it('accepts a well-formed manifest and returns it as read', () => {
    expect(validateManifest(good())).toEqual(good());
    expect(parseManifest(JSON.stringify(good()), '/r/manifest.json').root.sha256).toBe(SHA_B);
  });

  it.each([
    ['an unknown top-level key', withField(['extra'], true), 'extra'],
    ['an unknown image key', withField(['boot', 'offset'], 0), 'boot'],
    ['schema 2', withField(['schema'], 2), 'schema'],
    ['a missing version', withField(['version'], undefined), 'version'],
    ['a version with a slash', withField(['version'], '1.0/../x'), 'version'],
    ['a missing root image', withField(['root'], undefined), 'root'],
    ['an upper-case digest', withField(['boot', 'sha256'], SHA_A.toUpperCase()), 'boot.sha256'],
    ['a short digest', withField(['boot', 'sha256'], 'abc'), 'boot.sha256'],
    [
      'a digest with a non-hex letter',
      withField(['root', 'sha256'], `${'g'}${SHA_B.slice(1)}`),
      'root.sha256',
    ],
    ['a parent-directory file name', withField(['boot', 'file'], '../x'), 'boot.file'],
    ['a bare ".."', withField(['boot', 'file'], '..'), 'boot.file'],
    ['an absolute file name', withField(['root', 'file'], '/etc/shadow'), 'root.file'],
    ['a file name in a subdirectory', withField(['root', 'file'], 'images/root.img'), 'root.file'],
    ['a hidden file name', withField(['root', 'file'], '.root.img'), 'root.file'],
    ['an empty file name', withField(['root', 'file'], ''), 'root.file'],
    ['the manifest itself as an image', withField(['root', 'file'], 'manifest.json'), 'root.file'],
    ['the same file for boot and root', withField(['root', 'file'], 'boot.img'), 'root.file'],
    ['a zero size', withField(['boot', 'size'], 0), 'boot.size'],
    ['a negative size', withField(['boot', 'size'], -1), 'boot.size'],
    ['a fractional size', withField(['boot', 'size'], 1.5), 'boot.size'],
    ['a size given as a string', withField(['boot', 'size'], '4096'), 'boot.size'],
  ])('refuses %s with RECOVERY_MANIFEST_INVALID naming the field', (_name, value, field) => {
    let error: unknown;
    try {
      validateManifest(value, '/r/manifest.json');
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'RECOVERY_MANIFEST_INVALID' });
    const message = (error as Error).message;
    expect(message).toContain('/r/manifest.json');
    expect(message).toContain(field);
  });

  it('refuses text that is not JSON, naming the file', () => {
    expect(() => parseManifest('{"schema": 1,', '/r/manifest.json')).toThrow(
      expect.objectContaining({
        code: 'RECOVERY_MANIFEST_INVALID',
        message: expect.stringContaining('/r/manifest.json is not valid JSON'),
      }),
    );
  });

  it('refuses a JSON value that is not an object', () => {
    for (const text of ['null', '[]', '"manifest"', '1']) {
      expect(() => parseManifest(text)).toThrow(
        expect.objectContaining({ code: 'RECOVERY_MANIFEST_INVALID' }),
      );
    }
  });
});
