/**
 * A small QR code encoder (ISO/IEC 18004) for the console's "Download logs" screen: byte mode,
 * error correction level L or M, versions 1 to 6 — up to 106 bytes at M, enough for
 * `http://255.255.255.255:65535/logs/<43-character token>` (77). Pure: no `node:*` imports.
 */

export type QrEcLevel = 'L' | 'M';

export interface QrCode {
  version: number;
  ecLevel: QrEcLevel;
  /** Mask pattern 0–7. */
  mask: number;
  /** Modules per side (4 × version + 17). */
  size: number;
  /** `modules[row][col]`: true is dark. */
  modules: boolean[][];
}

export const QR_MAX_VERSION = 6;

/** Per version 1–6 and level: error correction codewords per block, blocks, data codewords per block. */
const BLOCKS: Record<QrEcLevel, [ec: number, blocks: number, data: number][]> = {
  L: [
    [7, 1, 19],
    [10, 1, 34],
    [15, 1, 55],
    [20, 1, 80],
    [26, 1, 108],
    [18, 2, 68],
  ],
  M: [
    [10, 1, 16],
    [16, 1, 28],
    [26, 1, 44],
    [18, 2, 32],
    [24, 2, 43],
    [16, 4, 27],
  ],
};
/** The second alignment pattern centre of versions 2–6 (the first is always 6). */
const ALIGNMENT = [0, 18, 22, 26, 30, 34];
const FORMAT_LEVEL_BITS: Record<QrEcLevel, number> = { L: 1, M: 0 };

/** Data bytes a version holds in byte mode (4-bit mode, 8-bit count, then the bytes). */
export function qrCapacity(version: number, ecLevel: QrEcLevel): number {
  const [, blocks, data] = BLOCKS[ecLevel][version - 1]!;
  return blocks * data - 2;
}

// --- GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1, and Reed–Solomon remainders.
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
for (let i = 0, x = 1; i < 255; i++) {
  EXP[i] = x;
  LOG[x] = i;
  x <<= 1;
  if (x & 0x100) x ^= 0x11d;
}
for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255]!;

function gfMul(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a]! + LOG[b]!]!;
}

/** The generator polynomial of degree n (coefficients, highest first, leading 1 dropped). */
function generator(n: number): number[] {
  let g = [1];
  for (let i = 0; i < n; i++) {
    const next = new Array<number>(g.length + 1).fill(0);
    for (let j = 0; j < g.length; j++) {
      next[j] = next[j]! ^ g[j]!;
      next[j + 1] = next[j + 1]! ^ gfMul(g[j]!, EXP[i]!);
    }
    g = next;
  }
  return g.slice(1);
}

/** The n error correction codewords of `data`. */
export function reedSolomon(data: readonly number[], n: number): number[] {
  const g = generator(n);
  const rem = new Array<number>(n).fill(0);
  for (const byte of data) {
    const factor = byte ^ rem.shift()!;
    rem.push(0);
    for (let i = 0; i < n; i++) rem[i] = rem[i]! ^ gfMul(g[i]!, factor);
  }
  return rem;
}

/** Data and error correction codewords, interleaved across blocks as the symbol carries them. */
function codewords(bytes: Uint8Array, version: number, ecLevel: QrEcLevel): number[] {
  const [ecPerBlock, blocks, dataPerBlock] = BLOCKS[ecLevel][version - 1]!;
  const capacityBits = blocks * dataPerBlock * 8;
  const bits: number[] = [];
  const put = (value: number, length: number) => {
    for (let i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1);
  };
  put(0b0100, 4); // byte mode
  put(bytes.length, 8);
  for (const b of bytes) put(b, 8);
  put(0, Math.min(4, capacityBits - bits.length)); // terminator
  while (bits.length % 8) bits.push(0);
  const data: number[] = [];
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  for (let pad = 0xec; data.length < blocks * dataPerBlock; pad ^= 0xec ^ 0x11) data.push(pad);

  const dataBlocks: number[][] = [];
  const ecBlocks: number[][] = [];
  for (let b = 0; b < blocks; b++) {
    const block = data.slice(b * dataPerBlock, (b + 1) * dataPerBlock);
    dataBlocks.push(block);
    ecBlocks.push(reedSolomon(block, ecPerBlock));
  }
  const out: number[] = [];
  for (let i = 0; i < dataPerBlock; i++) for (const block of dataBlocks) out.push(block[i]!);
  for (let i = 0; i < ecPerBlock; i++) for (const block of ecBlocks) out.push(block[i]!);
  return out;
}

const MASKS: ((r: number, c: number) => boolean)[] = [
  (r, c) => (r + c) % 2 === 0,
  (r) => r % 2 === 0,
  (_r, c) => c % 3 === 0,
  (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0,
  (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0,
  (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
];

/** The 15 format bits: level and mask, BCH(15,5)-protected, XOR 0x5412. */
export function formatBits(ecLevel: QrEcLevel, mask: number): number {
  const data = (FORMAT_LEVEL_BITS[ecLevel] << 3) | mask;
  let rem = data;
  for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
  return ((data << 10) | (rem & 0x3ff)) ^ 0x5412;
}

class Grid {
  readonly dark: boolean[][];
  readonly fixed: boolean[][];

  constructor(readonly size: number) {
    this.dark = Array.from({ length: size }, () => new Array<boolean>(size).fill(false));
    this.fixed = Array.from({ length: size }, () => new Array<boolean>(size).fill(false));
  }

  set(r: number, c: number, dark: boolean): void {
    this.dark[r]![c] = dark;
    this.fixed[r]![c] = true;
  }
}

function drawFunctionPatterns(g: Grid, version: number): void {
  const n = g.size;
  // Finder patterns with their light separators.
  for (const [fr, fc] of [
    [3, 3],
    [3, n - 4],
    [n - 4, 3],
  ] as const) {
    for (let dr = -4; dr <= 4; dr++) {
      for (let dc = -4; dc <= 4; dc++) {
        const r = fr + dr;
        const c = fc + dc;
        if (r < 0 || c < 0 || r >= n || c >= n) continue;
        const d = Math.max(Math.abs(dr), Math.abs(dc));
        g.set(r, c, d !== 2 && d !== 4);
      }
    }
  }
  // Timing patterns.
  for (let i = 8; i < n - 8; i++) {
    g.set(6, i, i % 2 === 0);
    g.set(i, 6, i % 2 === 0);
  }
  // The one alignment pattern of versions 2–6 (the other centres collide with finders).
  if (version >= 2) {
    const a = ALIGNMENT[version - 1]!;
    for (let dr = -2; dr <= 2; dr++)
      for (let dc = -2; dc <= 2; dc++) g.set(a + dr, a + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
  }
  // Format areas are reserved now and written once the mask is known; the dark module.
  drawFormat(g, 0);
  g.set(n - 8, 8, true);
}

function drawFormat(g: Grid, bits: number): void {
  const n = g.size;
  const bit = (i: number) => ((bits >>> i) & 1) === 1;
  for (let i = 0; i <= 5; i++) g.set(i, 8, bit(i));
  g.set(7, 8, bit(6));
  g.set(8, 8, bit(7));
  g.set(8, 7, bit(8));
  for (let i = 9; i < 15; i++) g.set(8, 14 - i, bit(i));
  for (let i = 0; i < 8; i++) g.set(8, n - 1 - i, bit(i));
  for (let i = 8; i < 15; i++) g.set(n - 15 + i, 8, bit(i));
  g.set(n - 8, 8, true);
}

/** Places the codewords in the zigzag order: column pairs from the right, skipping column 6. */
function drawData(g: Grid, data: number[]): void {
  const n = g.size;
  let i = 0;
  const total = data.length * 8;
  for (let right = n - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    const upward = ((right + 1) & 2) === 0;
    for (let k = 0; k < n; k++) {
      const r = upward ? n - 1 - k : k;
      for (let j = 0; j < 2; j++) {
        const c = right - j;
        if (g.fixed[r]![c]) continue;
        // Past the last codeword: the remainder bits are light.
        g.dark[r]![c] = i < total && ((data[i >>> 3]! >>> (7 - (i & 7))) & 1) === 1;
        i++;
      }
    }
  }
}

function applyMask(g: Grid, mask: number): void {
  const m = MASKS[mask]!;
  for (let r = 0; r < g.size; r++)
    for (let c = 0; c < g.size; c++) if (!g.fixed[r]![c] && m(r, c)) g.dark[r]![c] = !g.dark[r]![c];
}

/** The penalty score a mask choice is judged by (lower is better). */
export function penalty(m: readonly (readonly boolean[])[]): number {
  const n = m.length;
  const at = (r: number, c: number, byRow: boolean) => (byRow ? m[r]![c]! : m[c]![r]!);
  let score = 0;
  for (const byRow of [true, false]) {
    for (let r = 0; r < n; r++) {
      // N1: five or more alike in a row or column.
      let run = 1;
      for (let c = 1; c < n; c++) {
        if (at(r, c, byRow) === at(r, c - 1, byRow)) {
          run++;
          if (run === 5) score += 3;
          else if (run > 5) score += 1;
        } else run = 1;
      }
      // N3: 1:1:3:1:1 finder-like runs with four light modules on one side.
      for (let c = 0; c + 10 < n; c++) {
        let word = 0;
        for (let k = 0; k < 11; k++) word = (word << 1) | (at(r, c + k, byRow) ? 1 : 0);
        if (word === 0b10111010000 || word === 0b00001011101) score += 40;
      }
    }
  }
  // N2: 2 × 2 blocks of one colour.
  for (let r = 0; r + 1 < n; r++)
    for (let c = 0; c + 1 < n; c++) {
      const v = m[r]![c];
      if (m[r]![c + 1] === v && m[r + 1]![c] === v && m[r + 1]![c + 1] === v) score += 3;
    }
  // N4: how far the dark share is from half, in 5 % steps.
  let dark = 0;
  for (const row of m) for (const v of row) if (v) dark++;
  score += Math.floor(Math.abs((dark * 100) / (n * n) - 50) / 5) * 10;
  return score;
}

/**
 * Encodes `text` (UTF-8, byte mode) in the smallest version 1–6 that holds it at `ecLevel`
 * (default M); the mask is the one with the lowest penalty unless given. Throws a RangeError for
 * text longer than version 6 holds.
 */
export function encodeQr(text: string, opts: { ecLevel?: QrEcLevel; mask?: number } = {}): QrCode {
  const ecLevel = opts.ecLevel ?? 'M';
  const bytes = new TextEncoder().encode(text);
  let version = 1;
  while (version <= QR_MAX_VERSION && qrCapacity(version, ecLevel) < bytes.length) version++;
  if (version > QR_MAX_VERSION) {
    throw new RangeError(
      `${bytes.length} bytes do not fit a version ${QR_MAX_VERSION} QR code at level ${ecLevel} (at most ${qrCapacity(QR_MAX_VERSION, ecLevel)})`,
    );
  }
  if (opts.mask !== undefined && !(Number.isInteger(opts.mask) && opts.mask >= 0 && opts.mask <= 7))
    throw new RangeError(`QR mask must be 0–7 (got ${opts.mask})`);
  const size = version * 4 + 17;
  const data = codewords(bytes, version, ecLevel);
  const build = (mask: number): Grid => {
    const g = new Grid(size);
    drawFunctionPatterns(g, version);
    drawData(g, data);
    applyMask(g, mask);
    drawFormat(g, formatBits(ecLevel, mask));
    return g;
  };
  let best: { mask: number; grid: Grid; score: number } | undefined;
  for (const mask of opts.mask === undefined ? [0, 1, 2, 3, 4, 5, 6, 7] : [opts.mask]) {
    const grid = build(mask);
    const score = opts.mask === undefined ? penalty(grid.dark) : 0;
    if (!best || score < best.score) best = { mask, grid, score };
  }
  return { version, ecLevel, mask: best!.mask, size, modules: best!.grid.dark };
}

/**
 * The code as text for a terminal, two module rows per line with half blocks, inside a quiet zone
 * of `quiet` modules (default 4, the standard's). `darkOnLight` (default true) draws dark modules
 * as spaces on a light-foreground screen — the console's colours are light text on dark.
 */
export function renderQrText(qr: QrCode, opts: { quiet?: number; lightText?: boolean } = {}): string[] {
  const quiet = opts.quiet ?? 4;
  const lightText = opts.lightText ?? true;
  const n = qr.size + 2 * quiet;
  // "Ink" is what the terminal draws in its foreground colour.
  const ink = (r: number, c: number) => {
    const rr = r - quiet;
    const cc = c - quiet;
    const dark = rr >= 0 && cc >= 0 && rr < qr.size && cc < qr.size && qr.modules[rr]![cc]!;
    return lightText ? !dark : dark;
  };
  const lines: string[] = [];
  for (let r = 0; r < n; r += 2) {
    let line = '';
    for (let c = 0; c < n; c++) {
      const top = ink(r, c);
      const bottom = r + 1 < n ? ink(r + 1, c) : !lightText;
      line += top && bottom ? '█' : top ? '▀' : bottom ? '▄' : ' ';
    }
    lines.push(line);
  }
  return lines;
}
