import { describe, expect, it } from 'vitest';
import { parseOsRelease } from '../../../agent/src/system/os-release.js';

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
});
