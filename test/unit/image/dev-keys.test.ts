/**
 * `make image` without KEYS (issue 16): the framed development-keys notice and the name suffix
 * every output then carries.
 */
import { describe, expect, it } from 'vitest';
import { DEV_KEYS_SUFFIX, devKeysNotice } from '../../../image/src/build/build.js';

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
});
