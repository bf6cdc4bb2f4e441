import { describe, expect, it } from 'vitest';
import { parseRange, parseRanges } from '../../../scripts/lib/mirror.js';

describe('mirror parseRange', () => {
  it('serves single ranges', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=90-500', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
  });
  it('says unsatisfiable past the end', () => {
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=5-1', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=-0', 100)).toBe('unsatisfiable');
  });
  it('serves the whole file for absent, malformed or multiple ranges', () => {
    expect(parseRange(undefined, 100)).toBeUndefined();
    expect(parseRange('bytes=0-1,5-6', 100)).toBeUndefined();
    expect(parseRange('items=0-1', 100)).toBeUndefined();
    expect(parseRange('bytes=-', 100)).toBeUndefined();
  });
});

describe('mirror parseRanges', () => {
  it('reads several ranges, leaving out those past the end', () => {
    expect(parseRanges('bytes=0-9,20-29', 100)).toEqual([
      { start: 0, end: 9 },
      { start: 20, end: 29 },
    ]);
    expect(parseRanges('bytes=0-9, 200-300, 90-', 100)).toEqual([
      { start: 0, end: 9 },
      { start: 90, end: 99 },
    ]);
    expect(parseRanges('bytes=200-300,400-', 100)).toBe('unsatisfiable');
  });
  it('leaves one range, a malformed one or none to parseRange', () => {
    expect(parseRanges('bytes=0-9', 100)).toBeUndefined();
    expect(parseRanges('bytes=0-9,x', 100)).toBeUndefined();
    expect(parseRanges(undefined, 100)).toBeUndefined();
  });
});
