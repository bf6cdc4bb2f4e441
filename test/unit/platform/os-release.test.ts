import { isPatchLevel, parseOsRelease, patchLevelOf } from '@clgw/core/system/os-release.js';
import { describe, expect, it } from 'vitest';

describe('os-release parsing', () => {
  it('reads quoted and unquoted values and skips comments and junk', () => {
    const text = [
      '# comment',
      'NAME="CloudLink Gateway OS"',
      "ID='clgw'",
      'VERSION_ID=1.2.3',
      'PRETTY_NAME="Say \\"hi\\""',
      'not a line',
      '',
    ].join('\n');
    expect(parseOsRelease(text)).toEqual({
      NAME: 'CloudLink Gateway OS',
      ID: 'clgw',
      VERSION_ID: '1.2.3',
      PRETTY_NAME: 'Say "hi"',
    });
  });

  it('takes CLGW_PATCH_LEVEL only when it is a real date', () => {
    expect(patchLevelOf(parseOsRelease('VERSION_ID=1.1.0\nCLGW_PATCH_LEVEL=2026-11-20\n'))).toBe(
      '2026-11-20',
    );
    expect(patchLevelOf(parseOsRelease('CLGW_PATCH_LEVEL="2026-02-28"'))).toBe('2026-02-28');
    expect(patchLevelOf(parseOsRelease('VERSION_ID=1.1.0\n'))).toBeUndefined();
    for (const bad of ['2026-02-30', '2026-13-01', 'patch 172', '2026-1-01', '20261120', ' 2026-11-20'])
      expect(isPatchLevel(bad), bad).toBe(false);
  });
});
