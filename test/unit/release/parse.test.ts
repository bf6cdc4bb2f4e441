import { readFileSync } from 'node:fs';
import type { ClgwError } from '@clgw/core/errors.js';
import { MAX_COMPAT_BYTES, parseCompat } from '@clgw/core/release/parse.js';
import { describe, expect, it } from 'vitest';
import { stringify, type ToStringOptions } from 'yaml';
import { SAMPLE_YAML, SHA_BOOT, SHA_ROOT } from '../../fixtures/release/compat.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`../../fixtures/release/${name}`, import.meta.url), 'utf8');

function failure(text: string | Uint8Array, source?: string): ClgwError {
  try {
    parseCompat(text, source);
  } catch (e) {
    return e as ClgwError;
  }
  throw new Error('document was accepted');
}

describe('parseCompat', () => {
  it('parses a hand-written document, block and flow style mixed', () => {
    const compat = parseCompat(SAMPLE_YAML);
    expect(compat.serial).toBe(42);
    expect(compat.published).toBe('2026-11-20T10:00:00Z');
    expect(compat.platforms.virtual?.release).toEqual({
      version: '1.1.0',
      minSourceVersion: '1.0.0',
      artifacts: {
        boot: { path: 'releases/1.1.0/boot.img', size: 16777216, sha256: SHA_BOOT },
        root: expect.objectContaining({ size: 67108864 }),
      },
    });
    expect(compat.platforms.virtual?.containers[0]?.version).toBe('1.1.0.01-296');
  });

  it('accepts bytes as well as a string', () => {
    expect(parseCompat(new TextEncoder().encode(SAMPLE_YAML)).serial).toBe(42);
  });

  it('reports YAML syntax errors with line and column', () => {
    const err = failure('schema: 1\nplatforms: [virtual\nserial: 3\n');
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toMatch(/^compat\.yaml is not valid YAML at line 3, column 1: /);
    expect(err.details).toMatchObject({ line: 3, column: 1 });
  });

  it('reports tabs used as indentation', () => {
    const err = failure('schema: 1\nplatforms:\n\tvirtual: {}\n');
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain('line 3');
  });

  it('names the source in messages', () => {
    expect(failure('a: [', 'http://127.0.0.1:8080/compat.yaml').message).toMatch(
      /^http:\/\/127\.0\.0\.1:8080\/compat\.yaml is not valid YAML/,
    );
  });

  it('refuses duplicate keys instead of letting the last one win', () => {
    const err = failure(SAMPLE_YAML.replace('serial: 42\n', 'serial: 42\nserial: 43\n'));
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain('Map keys must be unique');
    expect(err.message).toContain('line 4');
    const nested = failure(
      SAMPLE_YAML.replace('      version: 1.1.0\n', '      version: 1.1.0\n      version: 9.9.9\n'),
    );
    expect(nested.code).toBe('YAML_INVALID');
  });

  it('refuses the billion-laughs alias bomb before expanding anything', () => {
    const err = failure(fixture('billion-laughs.yaml'));
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain('anchor &a is not allowed (a) at line 2, column 7');
  });

  it('refuses anchors even when nothing refers to them', () => {
    const err = failure(SAMPLE_YAML.replace('    release:\n', '    release: &rel\n'));
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain('anchor &rel is not allowed (platforms.virtual.release)');
  });

  it('refuses aliases, whether or not their anchor exists', () => {
    const dangling = failure(SAMPLE_YAML.replace(/^serial: 42$/m, 'serial: *s'));
    expect(dangling.code).toBe('YAML_INVALID');
    const anchored = failure(SAMPLE_YAML.replace(/^serial: 42$/m, 'serial: &s 42\nextra: *s'));
    expect(anchored.code).toBe('YAML_INVALID');
    expect(anchored.message).toContain('anchor &s is not allowed (serial)');
  });

  it.each([
    [
      'a local tag',
      (t: string) => t.replace(/^serial: 42$/m, 'serial: !custom 42'),
      'tag !custom is not allowed (serial)',
    ],
    [
      '!!binary',
      (t: string) => t.replace(/^serial: 42$/m, 'serial: !!binary AAAA'),
      'tag !!binary is not allowed',
    ],
    [
      'a harmless core tag',
      (t: string) => t.replace(/^serial: 42$/m, 'serial: !!int 42'),
      'tag !!int is not allowed',
    ],
    [
      'a tag on a mapping',
      (t: string) => t.replace(/^platforms:$/m, 'platforms: !!map'),
      'tag !!map is not allowed (platforms)',
    ],
    [
      'a %TAG shorthand',
      (t: string) => `%TAG !e! tag:example.com,2026:\n---\n${t.replace(/^serial: 42$/m, 'serial: !e!n 42')}`,
      'tag tag:example.com,2026:n is not allowed',
    ],
  ])('refuses %s', (_what, edit, message) => {
    const err = failure(edit(SAMPLE_YAML));
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain(message);
  });

  it('refuses a %YAML directive (YAML 1.1 would change how scalars are read)', () => {
    const err = failure(`%YAML 1.1\n---\n${SAMPLE_YAML}`);
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain('%YAML directive');
  });

  it('refuses several documents in one file', () => {
    const err = failure(`${SAMPLE_YAML}---\n${SAMPLE_YAML}`);
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain('multiple documents');
  });

  it('refuses a document above the size limit before parsing it', () => {
    const padding = `#${'x'.repeat(99)}\n`.repeat(Math.ceil(MAX_COMPAT_BYTES / 100));
    const err = failure(SAMPLE_YAML + padding);
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain('compat.yaml exceeds the 262144-byte limit');
    // Multi-byte characters count as bytes, not as string length.
    const wide = `# ${'é'.repeat(MAX_COMPAT_BYTES / 2)}\n${SAMPLE_YAML}`;
    expect(wide.length).toBeLessThan(MAX_COMPAT_BYTES * 1.01);
    expect(failure(wide).code).toBe('YAML_INVALID');
    expect(failure(new TextEncoder().encode(wide)).code).toBe('YAML_INVALID');
  });

  it('accepts a document just under the size limit', () => {
    const room = MAX_COMPAT_BYTES - new TextEncoder().encode(SAMPLE_YAML).length;
    const padded = `${SAMPLE_YAML}#${'x'.repeat(room - 2)}\n`;
    expect(new TextEncoder().encode(padded).length).toBe(MAX_COMPAT_BYTES);
    expect(parseCompat(padded).serial).toBe(42);
  });

  it('refuses bytes that are not UTF-8', () => {
    const bytes = new Uint8Array([...new TextEncoder().encode('schema: 1\n# '), 0xff, 0xfe, 0x0a]);
    const err = failure(bytes);
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain('not valid UTF-8');
  });

  it.each([
    [
      'serial: 99999999999999999999',
      'number 99999999999999999999 is too large to be exact (max 9007199254740991) (serial) at line 3',
    ],
    ['serial: 1e400', 'number 1e400 is out of range (serial)'],
    ['serial: .inf', 'number .inf is out of range'],
    ['serial: .nan', 'number .nan is out of range'],
  ])('refuses %s with a clear message', (line, message) => {
    const err = failure(SAMPLE_YAML.replace(/^serial: 42$/m, line));
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toContain(message);
  });

  it.each(['8388608.0', '0x800000', '0o40000000', '8.388608e6', '+8388608', '08388608'])(
    'refuses size: %s, which YAML reads as 8388608, naming the field and the text',
    (written) => {
      const err = failure(SAMPLE_YAML.replace('size: 16777216', `size: ${written}`));
      expect(err.code).toBe('COMPAT_INVALID');
      expect(err.message).toBe(
        'compat.yaml is invalid: platforms.virtual.release.artifacts.boot.size: expected a whole number ' +
          `in plain decimal digits, such as 8388608 (got ${written}) at line 12, column 54`,
      );
    },
  );

  it.each([
    [
      'serial',
      /^serial: 42$/m,
      'serial: 1e3',
      'serial: expected a whole number in plain decimal digits, such as 1000 (got 1e3)',
    ],
    [
      'schema',
      /^schema: 1$/m,
      'schema: 1.0',
      'schema: expected a whole number in plain decimal digits, such as 1 (got 1.0)',
    ],
    [
      'a container archive size',
      'size: 1048576',
      'size: 0x100000',
      'platforms.virtual.containers[0].archive.size: expected a whole number in plain decimal digits, such as 1048576 (got 0x100000)',
    ],
  ])('refuses a lenient number as %s', (_what, from, to, message) => {
    const err = failure(SAMPLE_YAML.replace(from, to));
    expect(err.code).toBe('COMPAT_INVALID');
    expect(err.message).toContain(message);
  });

  it('refuses a lenient chunk size, and names every lenient number at once', () => {
    const root = [
      '        root:',
      '          path: releases/1.1.0/root.img',
      '          size: 67108864',
      `          sha256: ${SHA_ROOT}`,
      `          index: { path: releases/1.1.0/root.img.idx, chunkSize: 0x1000, size: 20, sha256: ${SHA_BOOT} }`,
    ].join('\n');
    const text = SAMPLE_YAML.replace('size: 16777216', 'size: 16777216.0').replace(/^ {8}root: .*$/m, root);
    const err = failure(text);
    expect(err.code).toBe('COMPAT_INVALID');
    expect(err.details?.problems).toEqual([
      expect.stringMatching(/^platforms\.virtual\.release\.artifacts\.boot\.size: .* \(got 16777216\.0\)/),
      expect.stringMatching(
        /^platforms\.virtual\.release\.artifacts\.root\.index\.chunkSize: .* such as 4096 \(got 0x1000\)/,
      ),
    ]);
  });

  it('leaves a number where a string belongs to the schema, which says more', () => {
    const err = failure(SAMPLE_YAML.replace('version: 1.1.0\n', 'version: 1.10\n'));
    expect(err.code).toBe('COMPAT_INVALID');
    expect(err.message).toContain('platforms.virtual.release.version: expected a string, got number 1.1');
  });

  it('refuses a huge artifact size, naming its path', () => {
    const err = failure(SAMPLE_YAML.replace('size: 16777216', 'size: 1e400'));
    expect(err.message).toContain('(platforms.virtual.release.artifacts.boot.size) at line 12, column 54');
  });

  it('refuses absurd nesting without overflowing the stack', () => {
    const deep = `schema: 1\nx: ${'['.repeat(5000)}${']'.repeat(5000)}\n`;
    const err = failure(deep);
    expect(err.code).toBe('YAML_INVALID');
    const moderate = `schema: 1\nx: ${'['.repeat(40)}${']'.repeat(40)}\n`;
    expect(failure(moderate).message).toContain('nesting deeper than 16 levels');
  });

  it.each([
    ['flow sequences', (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`],
    ['flow mappings', (n: number) => `${'{a: '.repeat(n)}1${'}'.repeat(n)}`],
    ['block sequences on one line', (n: number) => `${'- '.repeat(n)}x`],
    ['explicit keys on one line', (n: number) => `${'? '.repeat(n)}x`],
  ])('refuses %s nested 40,000 deep before parsing, naming the limit and where', (_what, nest) => {
    const text = `schema: 1
x:
  ${nest(40_000)}
`;
    expect(text.length).toBeLessThan(MAX_COMPAT_BYTES);
    const err = failure(text);
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toMatch(
      /^compat\.yaml is not allowed: nesting deeper than 16 levels \(level 17 opens here\) at line 3, column \d+$/,
    );
  });

  /** `{ schema: 1, x: … }` with the deepest collection `depth` levels down (its items one more). */
  function nestedDoc(depth: number, style: 'map-seq' | 'seq'): Record<string, unknown> {
    let value: unknown = ['leaf'];
    for (let level = depth - 1; level >= 1; level--)
      value = style === 'seq' || level % 2 === 0 ? [value, 'sibling'] : { k: value, other: 1 };
    return { schema: 1, x: value };
  }

  it.each([
    ['block, lists indented', {}],
    ['block, lists at their key', { indentSeq: false }],
    ['block, four-space indent', { indent: 4 }],
    ['flow', { collectionStyle: 'flow' }],
  ] as [string, ToStringOptions][])('counts nesting as the parser does (%s)', (_what, options) => {
    for (const style of ['map-seq', 'seq'] as const) {
      const at = (depth: number) => {
        const text = stringify(nestedDoc(depth, style), options);
        if (options.collectionStyle === 'flow') return failure(text);
        // Comments and a block scalar between the levels change nothing.
        return failure(text.replace(/^(\s*)other: 1$/gm, '$1# a comment\n$1other: |\n$1  text\n'));
      };
      // 15: every node within the limit, so the schema has its say (x is no key of compat.yaml).
      expect(at(15).code).toBe('COMPAT_INVALID');
      // 16: the items of the deepest list are one level too deep (found by the parsed tree's walk).
      expect(at(16).message).toMatch(/nesting deeper than 16 levels \(x(\[0\]|\.k)+\)/);
      // 17: the deepest list itself is, which the scan before parsing finds.
      expect(at(17).message).toContain('nesting deeper than 16 levels (level 17 opens here)');
    }
  });

  it('refuses a document of more than 10,000 tokens before parsing', () => {
    // 120,000 one-digit items (240 KB) took more than the agent's 48 MiB heap to parse.
    const err = failure(`schema: 1\nx: [${'1,'.repeat(120_000)}1]\n`);
    expect(err.code).toBe('YAML_INVALID');
    expect(err.message).toBe(
      'compat.yaml is not allowed: more than 10000 YAML tokens at line 2, column 9999',
    );
  });

  it('refuses non-string keys', () => {
    const err = failure('? [a, b]\n: 1\n');
    expect(err.code).toBe('YAML_INVALID');
  });

  it('passes schema failures through as COMPAT_INVALID with the field path and value', () => {
    const err = failure(
      SAMPLE_YAML.replace(`sha256: ${SHA_BOOT} }\n        root`, 'sha256: abc123 }\n        root'),
    );
    expect(err.code).toBe('COMPAT_INVALID');
    expect(err.message).toContain(
      'platforms.virtual.release.artifacts.boot.sha256: expected 64 lowercase hex digits (got "abc123")',
    );
  });

  it('keeps __proto__ an ordinary (refused) key rather than a prototype', () => {
    const err = failure(`${SAMPLE_YAML}__proto__: { polluted: true }\n`);
    expect(err.code).toBe('COMPAT_INVALID');
    expect(err.message).toContain('unknown key "__proto__"');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('reads dates as strings (YAML 1.2 core schema), not Date objects', () => {
    expect(typeof parseCompat(SAMPLE_YAML).expires).toBe('string');
  });

  it('refuses an empty document as not a mapping', () => {
    const err = failure('');
    expect(err.code).toBe('COMPAT_INVALID');
    expect(err.message).toContain('expected a mapping, got null');
  });
});

describe('a rollout percentage in compat.yaml', () => {
  const rollout = (percent: string) =>
    SAMPLE_YAML.replace(
      '      minSourceVersion: 1.0.0\n',
      `      minSourceVersion: 1.0.0\n      rollout: { percent: ${percent}, salt: "1.1.0" }\n`,
    );

  it.each([
    ['0', 0],
    ['10', 10],
    ['12.5', 12.5],
    ['99.99', 99.99],
    ['100', 100],
  ])('reads %s, the one number that may have decimals', (text, value) => {
    expect(parseCompat(rollout(text)).platforms.virtual?.release.rollout).toEqual({
      percent: value,
      salt: '1.1.0',
    });
  });

  it.each(['1e1', '010', '+10', '10.', '.5', '0x0a', '1.25e1'])('refuses %s as not plain', (text) => {
    const err = failure(rollout(text));
    expect(err.code).toBe('COMPAT_INVALID');
    expect(err.message).toContain('platforms.virtual.release.rollout.percent: expected a percentage');
  });
});
