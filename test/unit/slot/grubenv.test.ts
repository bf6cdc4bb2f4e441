import { ClgwError } from '@clgw/core/errors.js';
import {
  GRUBENV_HEADER,
  GRUBENV_SECTOR,
  GRUBENV_SIZE,
  grubenvEqual,
  grubReadEnv,
  grubSetEnv,
  isValidGrubenvName,
  parseGrubenv,
  serializeGrubenv,
} from '@clgw/core/slot/grubenv.js';
import { describe, expect, it } from 'vitest';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A block built by hand: header + text, padded with '#' (or not, when it fills the block). */
function block(text: string, size = GRUBENV_SIZE): Uint8Array {
  const b = new Uint8Array(size).fill(0x23);
  b.set(enc.encode(GRUBENV_HEADER + text).subarray(0, size));
  return b;
}

function expectInvalid(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ClgwError);
  expect((caught as ClgwError).code).toBe('GRUBENV_INVALID');
  expect((caught as ClgwError).message).toMatch(pattern);
}

/** Small deterministic PRNG so the property tests are reproducible. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const NAME_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-:';
const VALUE_CHARS = ['a', 'Z', '0', '1', ' ', '\t', '\n', '\\', '=', '#', '"', 'é', '€', '😀'];

function randomVars(rand: () => number): Map<string, string> {
  const vars = new Map<string, string>();
  const count = Math.floor(rand() * 12);
  for (let i = 0; i < count; i++) {
    let name = '';
    const nl = 1 + Math.floor(rand() * 8);
    for (let j = 0; j < nl; j++) name += NAME_CHARS[Math.floor(rand() * NAME_CHARS.length)];
    let value = '';
    const vl = Math.floor(rand() * 10);
    for (let j = 0; j < vl; j++) value += VALUE_CHARS[Math.floor(rand() * VALUE_CHARS.length)];
    vars.set(name, value);
  }
  return vars;
}

describe('serializeGrubenv', () => {
  it('writes header, name=value lines in insertion order, then # padding to 1024 bytes', () => {
    const b = serializeGrubenv(
      new Map([
        ['ORDER', 'B A'],
        ['A_OK', '1'],
      ]),
    );
    expect(b.length).toBe(1024);
    const text = dec.decode(b);
    expect(text.startsWith('# GRUB Environment Block\nORDER=B A\nA_OK=1\n#')).toBe(true);
    expect(text.slice(GRUBENV_HEADER.length + 'ORDER=B A\nA_OK=1\n'.length)).toMatch(/^#+$/);
  });

  it('escapes backslash and newline the way GRUB does', () => {
    const b = serializeGrubenv(new Map([['x', 'a\\b\nc']]));
    expect(dec.decode(b)).toContain('x=a\\\\b\\\nc\n#');
  });

  it('is deterministic', () => {
    const vars = new Map([
      ['b', '2'],
      ['a', '1'],
    ]);
    expect(serializeGrubenv(vars)).toEqual(serializeGrubenv(new Map(vars)));
    expect(dec.decode(serializeGrubenv(vars)).indexOf('b=2')).toBeLessThan(
      dec.decode(serializeGrubenv(vars)).indexOf('a=1'),
    );
  });

  it('fills the first sector exactly (padding from byte 512 on) and refuses one byte more', () => {
    const room = GRUBENV_SECTOR - GRUBENV_HEADER.length - 'v=\n'.length;
    const full = serializeGrubenv(new Map([['v', 'x'.repeat(room)]]));
    expect(full.length).toBe(GRUBENV_SIZE);
    expect(full[GRUBENV_SECTOR - 1]).toBe(0x0a);
    expect(full.subarray(GRUBENV_SECTOR).every((b) => b === 0x23)).toBe(true);
    expect(parseGrubenv(full).get('v')).toBe('x'.repeat(room));
    expectInvalid(
      () => serializeGrubenv(new Map([['v', 'x'.repeat(room + 1)]])),
      /need 513 bytes, they must fit in the block's first 512-byte sector \(of 1024\)/,
    );
    // Multi-byte characters count as their UTF-8 length.
    expectInvalid(
      () => serializeGrubenv(new Map([['v', 'é'.repeat(Math.ceil(room / 2) + 1)]])),
      /first 512-byte sector/,
    );
  });

  it('refuses names GRUB cannot store or read back unambiguously', () => {
    for (const bad of ['', '#x', 'a=b', 'a b', 'a\\b', 'a\nb', 'é', 'a\u0000']) {
      expect(isValidGrubenvName(bad)).toBe(false);
      expectInvalid(() => serializeGrubenv(new Map([[bad, '1']])), /cannot store variable name/);
    }
    for (const good of ['A_OK', 'x', 'we-ird.name', 'a#b', '1', '_'])
      expect(isValidGrubenvName(good)).toBe(true);
  });

  it('refuses values with NUL, control characters or lone surrogates', () => {
    expectInvalid(
      () => serializeGrubenv(new Map([['v', 'a\u0000b']])),
      /v: it has a control character U\+0000/,
    );
    expectInvalid(() => serializeGrubenv(new Map([['v', 'a\u0001']])), /U\+0001/);
    expectInvalid(() => serializeGrubenv(new Map([['v', 'a\r']])), /U\+000d/);
    expectInvalid(() => serializeGrubenv(new Map([['v', '\u007f']])), /U\+007f/);
    expectInvalid(() => serializeGrubenv(new Map([['v', '\ud800']])), /surrogate/);
    expect(() => serializeGrubenv(new Map([['v', 'tab\there\nnewline']]))).not.toThrow();
  });
});

describe('parseGrubenv', () => {
  it('round-trips random variable sets (escapes, UTF-8, order)', () => {
    const rand = prng(42);
    for (let i = 0; i < 300; i++) {
      const vars = randomVars(rand);
      const parsed = parseGrubenv(serializeGrubenv(vars));
      expect([...parsed]).toEqual([...vars]);
    }
  });

  it('reads an empty block, comment lines and a block without padding', () => {
    expect(parseGrubenv(block('')).size).toBe(0);
    const debian = block('# WARNING: Do not edit this file by tools other than grub-editenv!!!\nA_OK=1\n');
    expect([...parseGrubenv(debian)]).toEqual([['A_OK', '1']]);
    const twoComments = block('# one\n# two\nA=1\n');
    expect([...parseGrubenv(twoComments)]).toEqual([['A', '1']]);
    expect(parseGrubenv(block('V=x#y=z\n')).get('V')).toBe('x#y=z');
  });

  it('rejects the wrong size', () => {
    expectInvalid(() => parseGrubenv(new Uint8Array(0)), /is 0 bytes.*exactly 1024/);
    expectInvalid(() => parseGrubenv(block('A=1\n', 1023)), /is 1023 bytes/);
    expectInvalid(() => parseGrubenv(block('A=1\n', 2048)), /is 2048 bytes/);
  });

  it('rejects a zero-filled block and a wrong signature', () => {
    expectInvalid(() => parseGrubenv(new Uint8Array(1024)), /all zero bytes/);
    const wrong = block('A=1\n');
    wrong[2] = 0x67; // 'g'
    expectInvalid(() => parseGrubenv(wrong), /does not start with the signature/);
  });

  it('rejects NUL bytes anywhere, naming the offset', () => {
    const b = block('A_OK=1\n');
    b[600] = 0;
    expectInvalid(() => parseGrubenv(b), /NUL byte at offset 600/);
    const tornTail = block('A_OK=1\n');
    tornTail.fill(0, 512);
    expectInvalid(() => parseGrubenv(tornTail), /NUL byte at offset 512/);
  });

  it('rejects a line without "="', () => {
    expectInvalid(
      () => parseGrubenv(block('A_OK=1\ngarbage\nB_OK=1\n')),
      /line 3 at offset 32 has no '=': "garbage"/,
    );
    expectInvalid(() => parseGrubenv(block('\nA=1\n')), /line 2 .* has no '='/);
  });

  it('takes a # after the first variable for the padding, even when a newline follows', () => {
    expectInvalid(
      () => parseGrubenv(block('A=1\n# a comment\nB=2\n')),
      /byte 0x20 at offset 30 after the '#' padding began at offset 29/,
    );
  });

  it('rejects bytes other than # after the padding began', () => {
    const b = block('A_OK=1\n');
    b[900] = 0x41;
    expectInvalid(() => parseGrubenv(b), /byte 0x41 at offset 900 after the '#' padding began at offset 32/);
  });

  it('rejects a value cut off by the end of the block', () => {
    const text = `V=${'x'.repeat(GRUBENV_SIZE)}`;
    expectInvalid(() => parseGrubenv(block(text)), /variable V .* is cut off/);
    const endsInBackslash = block(`V=${'x'.repeat(GRUBENV_SIZE - GRUBENV_HEADER.length - 3)}\\`);
    expectInvalid(() => parseGrubenv(endsInBackslash), /variable V .* is cut off/);
  });

  it('rejects escapes no writer produces', () => {
    expectInvalid(() => parseGrubenv(block('A_OK=\\1\n')), /unknown escape '\\1' at offset 30/);
  });

  it('rejects duplicate names, invalid names and invalid UTF-8', () => {
    expectInvalid(() => parseGrubenv(block('A=1\nB=2\nA=3\n')), /variable A appears twice/);
    expectInvalid(() => parseGrubenv(block(' A=1\n')), /invalid variable name " A"/);
    const bad = block('V=ab\n');
    bad[GRUBENV_HEADER.length + 2] = 0xff;
    expectInvalid(() => parseGrubenv(bad), /value of V .* not valid UTF-8/);
    expectInvalid(() => parseGrubenv(block('V=a\rb\n')), /value of V .* control character U\+000d/);
    expectInvalid(() => parseGrubenv(block('# a \\ comment\n')), /comment line 2 .* backslash/);
  });

  it('names the source in every message', () => {
    expectInvalid(
      () => parseGrubenv(new Uint8Array(3), '/boot/efi/grub/grubenv'),
      /^\/boot\/efi\/grub\/grubenv: is 3 bytes/,
    );
  });

  it('detects a block truncated at any offset (as a fixed-size read would see it)', () => {
    const good = serializeGrubenv(
      new Map([
        ['ORDER', 'B A'],
        ['A_OK', '1'],
        ['A_TRY', '0'],
        ['B_OK', '1'],
        ['B_TRY', '1'],
      ]),
    );
    for (let cut = 0; cut < GRUBENV_SIZE; cut++) {
      const torn = new Uint8Array(GRUBENV_SIZE);
      torn.set(good.subarray(0, cut)); // the rest reads back as zeros
      expect(() => parseGrubenv(torn), `cut at ${cut}`).toThrow(ClgwError);
    }
  });
});

describe('grubenvEqual', () => {
  it('compares names, values and order', () => {
    const a = new Map([
      ['x', '1'],
      ['y', '2'],
    ]);
    expect(grubenvEqual(a, new Map(a))).toBe(true);
    expect(
      grubenvEqual(
        a,
        new Map([
          ['y', '2'],
          ['x', '1'],
        ]),
      ),
    ).toBe(false);
    expect(grubenvEqual(a, new Map([['x', '1']]))).toBe(false);
    expect(
      grubenvEqual(
        a,
        new Map([
          ['x', '1'],
          ['y', '3'],
        ]),
      ),
    ).toBe(false);
  });
});

describe("grubReadEnv (GRUB's load_env)", () => {
  it('agrees with parseGrubenv on every block parseGrubenv accepts', () => {
    const rand = prng(7);
    for (let i = 0; i < 300; i++) {
      const vars = randomVars(rand);
      const read = grubReadEnv(serializeGrubenv(vars));
      expect(read && [...read]).toEqual([...vars]);
    }
  });

  it('fails like load_env on a missing signature', () => {
    expect(grubReadEnv(new Uint8Array(1024))).toBeUndefined();
    expect(grubReadEnv(enc.encode(GRUBENV_HEADER))).toBeUndefined();
    expect(grubReadEnv(enc.encode(`${GRUBENV_HEADER}#`))?.size).toBe(0);
  });

  it('keeps the lines before a tear and stops there', () => {
    const good = serializeGrubenv(
      new Map([
        ['A_OK', '1'],
        ['A_TRY', '0'],
      ]),
    );
    const torn = good.slice(0, GRUBENV_HEADER.length + 'A_OK=1\nA_TR'.length);
    expect([...grubReadEnv(torn)!]).toEqual([['A_OK', '1']]);
    const zeroed = good.slice();
    zeroed.fill(0, GRUBENV_HEADER.length + 'A_OK=1\nA_TRY='.length);
    // The NUL run has no newline: that line is broken and dropped.
    expect([...grubReadEnv(zeroed)!]).toEqual([['A_OK', '1']]);
  });

  it('reads what GRUB reads where the strict parser refuses', () => {
    // Any escape, a later duplicate winning, a name running across a newline, C-string values.
    expect(grubReadEnv(block('A_OK=\\1\n'))!.get('A_OK')).toBe('1');
    expect(grubReadEnv(block('A_TRY=1\nA_TRY=0\n'))!.get('A_TRY')).toBe('0');
    expect([...grubReadEnv(block('junk\nA_OK=1\n'))!]).toEqual([['junk\nA_OK', '1']]);
    const nul = block('A_OK=1x\n');
    nul[GRUBENV_HEADER.length + 6] = 0;
    expect(grubReadEnv(nul)!.get('A_OK')).toBe('1');
  });

  it('honours a whitelist like load_env NAME…', () => {
    const b = serializeGrubenv(
      new Map([
        ['root', 'hd9'],
        ['A_OK', '1'],
      ]),
    );
    expect([...grubReadEnv(b, ['A_OK', 'B_OK'])!]).toEqual([['A_OK', '1']]);
  });
});

describe("grubSetEnv (GRUB's save_env)", () => {
  const base = new Map([
    ['A', 'xx'],
    ['B', 'mid'],
    ['C', 'end'],
  ]);

  it('rewrites a value in place, shorter, equal or longer, keeping the block size and order', () => {
    for (const value of ['', 'y', 'yy', 'a much longer value', 'multi\nline\\ value']) {
      const out = grubSetEnv(serializeGrubenv(base), 'B', value);
      expect(out?.length).toBe(GRUBENV_SIZE);
      expect([...parseGrubenv(out!)]).toEqual([
        ['A', 'xx'],
        ['B', value],
        ['C', 'end'],
      ]);
    }
  });

  it('appends a new variable where the padding starts', () => {
    const out = grubSetEnv(serializeGrubenv(base), 'A_TRY', '1');
    expect([...parseGrubenv(out!)]).toEqual([...base, ['A_TRY', '1']]);
  });

  it('does not modify its input', () => {
    const input = serializeGrubenv(base);
    const copy = input.slice();
    grubSetEnv(input, 'A', 'changed');
    expect(input).toEqual(copy);
  });

  it('behaves like Map.set followed by serialize, for random blocks and changes', () => {
    const rand = prng(99);
    for (let i = 0; i < 300; i++) {
      const vars = randomVars(rand);
      const names = [...vars.keys(), 'NEW_ONE'];
      const name = names[Math.floor(rand() * names.length)]!;
      const value = randomVars(rand).values().next().value ?? 'v';
      const expected = new Map(vars).set(name, value);
      let fits = true;
      try {
        serializeGrubenv(expected);
      } catch {
        fits = false;
      }
      const out = grubSetEnv(serializeGrubenv(vars), name, value);
      if (fits) expect(out).toEqual(serializeGrubenv(expected));
      else expect(out).toBeUndefined();
    }
  });

  it('refuses a broken block or one without room, as save_env does', () => {
    const torn = serializeGrubenv(base).slice(0, GRUBENV_HEADER.length + 'A=xx\nB=mi'.length);
    expect(grubSetEnv(torn, 'A_TRY', '1')).toBeUndefined();
    const garbageTail = serializeGrubenv(base);
    garbageTail[1000] = 0x41;
    expect(grubSetEnv(garbageTail, 'A', 'y')).toBeUndefined();
    // A full block as grub-editenv could leave it (ours keep the variables in the first sector).
    const room = GRUBENV_SIZE - GRUBENV_HEADER.length - 'v=\n'.length;
    const full = block(`v=${'x'.repeat(room)}\n`);
    expect(grubSetEnv(full, 'A_TRY', '1')).toBeUndefined();
    expect(grubSetEnv(full, 'v', 'y'.repeat(room))).toEqual(block(`v=${'y'.repeat(room)}\n`));
  });
});
