/**
 * The QR encoder against known-good output: the Reed–Solomon example of ISO/IEC 18004 Annex I,
 * the standard's format-information table, and two symbols made by the widely used `qrcode` npm
 * package (byte mode; same version, level and mask). During development every version 1–6 at L
 * and M with each of the eight masks was also compared module for module with that package and
 * decoded by zbarimg (zbar-tools).
 */
import { describe, expect, it } from 'vitest';
import { encodeQr, formatBits, qrCapacity, reedSolomon, renderQrText } from '../../../agent/src/logs/qr.js';

/** 'http://192.168.1.20/logs/q3vXfRk9Yb2Lm7Zt4Wc8Hn5Pd1Js6Ga0Ue-Ko_Ri3Ty', level M (version 5, mask 6). */
const URL_V5_M = [
  '#######.####...##..##....##...#######',
  '#.....#.###..###..##.##.###.#.#.....#',
  '#.###.#.###.###.#..#.#...###..#.###.#',
  '#.###.#....##.##.#...#..###...#.###.#',
  '#.###.#.##...#.##.#...#.#.#...#.###.#',
  '#.....#...#..##.....#.##..#.#.#.....#',
  '#######.#.#.#.#.#.#.#.#.#.#.#.#######',
  '.........#######.####.####.##........',
  '#..######.#.#..#.....##......#..#.###',
  '##.###....#.###.#.#...#..##...###..#.',
  '...##.###.#..####.####.#.#.#.#.###..#',
  '.##.#...#.##.##.#####...#...#.#..####',
  '#..####....#..##..#...##..#####..##.#',
  '..####.#.##.##.#....####...#.#.###.#.',
  '#.#...##.####..##.###....####....##.#',
  '...##..##....##....#####....#...####.',
  '#.#..###.#.#..##.###.###....#.##..###',
  '##.###..#...##...#....#.#..##........',
  '......##.#.##...#.##..##..##.######.#',
  '....#..###.##.###.###.#.###.....##..#',
  '###..##..##.###....#...##..#..#.##...',
  '#....#.###.#.###.###...#.#.##...#.#..',
  '....#.##.####.##....##.#.###.###.#..#',
  '...##..#####...##.##......##...##.#..',
  '#..#.##..##..##..#.####.#..#####....#',
  '###..#.....#..#..###..##.#####..###..',
  '####.##..##.##.#........##.#.#.#.#.##',
  '#....#.##...#...#.##..###.##....#.#.#',
  '#..#.###.###.####..#.############.#.#',
  '........#..##.#..##.##...#.##...#...#',
  '#######.#.####.#.####..##...#.#.##..#',
  '#.....#.###...###....#...#..#...#...#',
  '#.###.#.#.##.#.##.####.#.#########.##',
  '#.###.#.#.#..##..#..###..#.##.#..##.#',
  '#.###.#..#.###...#...#.#.#.#....#...#',
  '#.....#..#.###.#.#....#...#.#.#######',
  '#######.###...#...###...#...##....#.#',
];

/** 'CloudLink', level L (version 1, mask 2). */
const WORD_V1_L = [
  '#######...###.#######',
  '#.....#.###.#.#.....#',
  '#.###.#...###.#.###.#',
  '#.###.#.##..#.#.###.#',
  '#.###.#..#..#.#.###.#',
  '#.....#.#..#..#.....#',
  '#######.#.#.#.#######',
  '.........#...........',
  '#####.###..#.#.#.#.#.',
  '.#.#.#...#.#######..#',
  '####.###.#..#.#...##.',
  '.#..#..#.#.###...####',
  '#..#####.##.#.###....',
  '........##..#.####...',
  '#######.####.##..#.#.',
  '#.....#..##....#.###.',
  '#.###.#.#.##....##..#',
  '#.###.#.#.######.##..',
  '#.###.#.#...#.#..##..',
  '#.....#.#..#####.##..',
  '#######.#...#......#.',
];

const picture = (modules: boolean[][]) => modules.map((row) => row.map((d) => (d ? '#' : '.')).join(''));

describe('QR encoder', () => {
  it('computes the Reed–Solomon codewords of the standard example (1-M, "01234567")', () => {
    const data = [
      0x10, 0x20, 0x0c, 0x56, 0x61, 0x80, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11,
    ];
    expect(reedSolomon(data, 10)).toEqual([0xa5, 0x24, 0xd4, 0xc1, 0xed, 0x36, 0xc7, 0x87, 0x2c, 0x55]);
  });

  it('writes the format information of the standard table', () => {
    expect(formatBits('L', 0)).toBe(0b111011111000100);
    expect(formatBits('M', 0)).toBe(0b101010000010010);
    expect(formatBits('M', 5)).toBe(0b100000011001110);
    expect(formatBits('L', 7)).toBe(0b110100101110110);
  });

  it('encodes a log download URL exactly as a known-good encoder does, mask choice included', () => {
    const qr = encodeQr('http://192.168.1.20/logs/q3vXfRk9Yb2Lm7Zt4Wc8Hn5Pd1Js6Ga0Ue-Ko_Ri3Ty');
    expect([qr.version, qr.ecLevel, qr.mask, qr.size]).toEqual([5, 'M', 6, 37]);
    expect(picture(qr.modules)).toEqual(URL_V5_M);
  });

  it('encodes a short text at level L in version 1', () => {
    const qr = encodeQr('CloudLink', { ecLevel: 'L' });
    expect([qr.version, qr.mask, qr.size]).toEqual([1, 2, 21]);
    expect(picture(qr.modules)).toEqual(WORD_V1_L);
  });

  it('picks the smallest version that holds the text, up to version 6', () => {
    expect([1, 2, 3, 4, 5, 6].map((v) => qrCapacity(v, 'M'))).toEqual([14, 26, 42, 62, 84, 106]);
    expect([1, 2, 3, 4, 5, 6].map((v) => qrCapacity(v, 'L'))).toEqual([17, 32, 53, 78, 106, 134]);
    expect(encodeQr('x'.repeat(14)).version).toBe(1);
    expect(encodeQr('x'.repeat(15)).version).toBe(2);
    expect(encodeQr('x'.repeat(106)).version).toBe(6);
    // The longest URL a link can have fits: http://255.255.255.255:65535/logs/<43>.
    expect(encodeQr(`http://255.255.255.255:65535/logs/${'A'.repeat(43)}`).version).toBe(5);
    expect(() => encodeQr('x'.repeat(107))).toThrow(RangeError);
    expect(() => encodeQr('x', { mask: 8 })).toThrow(/mask/);
  });

  it('renders two module rows per line inside a quiet zone', () => {
    const qr = encodeQr('CloudLink', { ecLevel: 'L' });
    const lines = renderQrText(qr, { quiet: 4, lightText: false });
    expect(lines).toHaveLength(Math.ceil((21 + 8) / 2));
    for (const l of lines) expect([...l]).toHaveLength(29);
    expect(lines[0]!.trim()).toBe('');
    // Row 4–5 of the picture: the top of the finder pattern (dark) over its first inner row.
    expect(lines[2]!.slice(4, 11)).toBe('█▀▀▀▀▀█');
    const inverted = renderQrText(qr, { quiet: 4 });
    expect(inverted[2]!.slice(4, 11)).toBe(' ▄▄▄▄▄ ');
  });
});
