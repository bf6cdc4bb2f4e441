/**
 * `make image` without KEYS (issue 16): the framed development-keys notice (the development
 * support CA in it) and the name suffix every output then carries (the name builders of
 * image/src/build/build.ts).
 */
import { describe, expect, it } from 'vitest';
import {
  DEV_KEYS_SUFFIX,
  devKeysNotice,
  diskNames,
  releaseImageNames,
} from '../../../image/src/build/build.js';

describe('development keys notice', () => {
  const notice = devKeysNotice('/work/repo/.cache/image/keys');
  const lines = notice.trim().split('\n');

  it('is framed: every line as wide as the bars above and below', () => {
    expect(lines[0]).toMatch(/^!+$/);
    expect(lines.at(-1)).toBe(lines[0]);
    for (const line of lines) expect(line).toHaveLength(lines[0]!.length);
    for (const line of lines.slice(1, -1)) expect(line).toMatch(/^!! .* !!$/);
  });

  it('says what the images are, where the keys are and how the names end', () => {
    expect(lines[1]).toContain('DEVELOPMENT KEYS - NOT FOR CUSTOMERS');
    expect(notice).toContain('/work/repo/.cache/image/keys');
    expect(notice).toContain(DEV_KEYS_SUFFIX);
    expect(notice).toContain('make image KEYS=DIR');
    expect(DEV_KEYS_SUFFIX).toBe('-devkeys');
  });

  it('says the images trust a development support CA, and when this build generated it', () => {
    expect(notice).toContain('a development support');
    expect(notice).toContain('DIR holds support-ca.pub');
    expect(notice).not.toContain('generated');
    const generated = devKeysNotice('/work/repo/.cache/image/keys', { supportCaGenerated: true });
    const framed = generated.trim().split('\n');
    for (const line of framed) expect(line).toHaveLength(framed[0]!.length);
    expect(framed).toContainEqual(
      expect.stringMatching(
        /^!! This build generated that support CA: \/work\/repo\/\.cache\/image\/keys\/support-ca\. +!!$/,
      ),
    );
  });
});

describe('output names', () => {
  it('end in -devkeys, before the extension, for every image and disk built with development keys', () => {
    expect(releaseImageNames({ version: '1.2.0', devKeys: true })).toEqual({
      boot: 'boot-1.2.0-devkeys.img',
      root: 'root-1.2.0-devkeys.img',
      tree: 'tree-1.2.0-devkeys',
    });
    expect(releaseImageNames({ version: '1.2.0', devKeys: true, brokenInit: true }).root).toBe(
      'root-1.2.0-broken-devkeys.img',
    );
    expect(diskNames({ version: '1.2.0', devKeys: true })).toEqual({
      raw: 'clgw-1.2.0-devkeys.img',
      qcow2: 'clgw-1.2.0-devkeys.qcow2',
      ova: 'clgw-1.2.0-devkeys.ova',
      vm: 'clgw-1.2.0-devkeys',
    });
  });

  it("carry no suffix with the vendor's keys", () => {
    const names = [
      ...Object.values(releaseImageNames({ version: '1.2.0' })),
      ...Object.values(diskNames({ version: '1.2.0', devKeys: false })),
    ];
    expect(names).toEqual([
      'boot-1.2.0.img',
      'root-1.2.0.img',
      'tree-1.2.0',
      'clgw-1.2.0.img',
      'clgw-1.2.0.qcow2',
      'clgw-1.2.0.ova',
      'clgw-1.2.0',
    ]);
  });
});
