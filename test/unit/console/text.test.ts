/** Escaping outside text before blessed markup, and the ASCII helpers the screens use. */
import { describe, expect, it } from 'vitest';
import { clip, escapeText, plainText, progressBar } from '../../../console-tui/src/view/text.js';

describe('escapeText', () => {
  it.each([
    ['cloudlink-gateway', 'cloudlink-gateway'],
    ['{red-fg}boom{/}', '{open}red-fg{close}boom{open}/{close}'],
    ['a}b{c', 'a{close}b{open}c'],
    ['\x1b[2Jcleared', '?[2Jcleared'],
    ['tab\there\nnewline', 'tab?here?newline'],
    ['caf\u00e9 \u{1F600}', 'caf? ?'],
    ['\u5bbd', '?'],
    ['', ''],
    ['a kvm appliance \u2014 redeploy\u2026 \u201cit\u201d', 'a kvm appliance - redeploy... "it"'],
  ])('%j → %j', (input, expected) => {
    expect(escapeText(input)).toBe(expected);
  });

  it('plainText keeps braces (for widgets that do not parse tags) but no control characters', () => {
    expect(plainText('{x}\x07')).toBe('{x}?');
  });
});

describe('ASCII helpers', () => {
  it('progressBar is exactly as wide as asked and clamps', () => {
    expect(progressBar(50, 20)).toBe('[#######......]  50%');
    expect(progressBar(0, 20)).toBe('[.............]   0%');
    expect(progressBar(100, 20)).toBe('[#############] 100%');
    expect(progressBar(250, 20)).toBe(progressBar(100, 20));
    expect(progressBar(Number.NaN, 20)).toBe(progressBar(0, 20));
    for (const p of [0, 1, 33.3, 99.9, 100]) expect(progressBar(p, 40)).toHaveLength(40);
    expect(progressBar(42, 40)).toMatch(/^[[#.\] 0-9%]+$/);
  });

  it('clip cuts with an ASCII ellipsis', () => {
    expect(clip('abcdef', 6)).toBe('abcdef');
    expect(clip('abcdefg', 6)).toBe('abc...');
  });
});
