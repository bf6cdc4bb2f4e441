/**
 * The multi-range answer's body (core/src/platform/byteranges.ts): parts handed over exactly,
 * whatever pieces the body comes in, and every answer that is not exactly the ranges asked refused.
 */
import { type ByteRange, ByteRangesParser, byterangesBoundary } from '@clgw/core/platform/byteranges.js';
import { describe, expect, it } from 'vitest';
import { rejected } from '../../support/errors.js';

const SIZE = 1000;
const RANGES: ByteRange[] = [
  { start: 10, end: 19 },
  { start: 500, end: 503 },
];
const bytesOf = (r: ByteRange) =>
  Buffer.from(Array.from({ length: r.end - r.start + 1 }, (_, i) => (r.start + i) % 251));

/** A body as a server writes it: each part a delimiter, its headers, its bytes. */
function body(
  parts: { range: string; bytes: Buffer }[],
  opts: { close?: boolean; preamble?: string } = {},
): Buffer {
  const out: Buffer[] = [Buffer.from(opts.preamble ?? '')];
  for (const [i, p] of parts.entries())
    out.push(
      Buffer.from(
        `${i === 0 ? '' : '\r\n'}--b0und\r\nContent-Type: application/octet-stream\r\nContent-Range: ${p.range}\r\n\r\n`,
      ),
      p.bytes,
    );
  if (opts.close !== false) out.push(Buffer.from('\r\n--b0und--\r\n'));
  return Buffer.concat(out);
}

const asked = (ranges = RANGES) =>
  ranges.map((r) => ({ range: `bytes ${r.start}-${r.end}/${SIZE}`, bytes: bytesOf(r) }));

/** Feeds `data` in pieces of `size` bytes; returns what each part received, and whether it ended. */
async function parse(data: Buffer, size: number, ranges = RANGES) {
  const got = ranges.map(() => ({ bytes: [] as Buffer[], ended: false }));
  const parser = new ByteRangesParser(
    'b0und',
    ranges,
    SIZE,
    (i) => ({
      data: (piece) => {
        got[i]!.bytes.push(Buffer.from(piece));
        return undefined;
      },
      end: async () => {
        got[i]!.ended = true;
      },
    }),
    'test ranges',
  );
  for (let at = 0; at < data.length; at += size) await parser.data(data.subarray(at, at + size));
  parser.end();
  return got.map((g) => ({ bytes: Buffer.concat(g.bytes), ended: g.ended }));
}

describe('multipart/byteranges', () => {
  it.each([1, 7, 64, 100_000])('hands each part its bytes exactly, in pieces of %i bytes', async (size) => {
    const parts = await parse(body(asked(), { preamble: '\r\n' }), size);
    expect(parts).toEqual(RANGES.map((r) => ({ bytes: bytesOf(r), ended: true })));
  });

  it('reads the boundary of the Content-Type, quoted or not, and nothing else', () => {
    expect(byterangesBoundary('multipart/byteranges; boundary=3d6b6a416f9b5')).toBe('3d6b6a416f9b5');
    expect(byterangesBoundary('Multipart/Byteranges; charset=x; boundary="a b"')).toBe('a b');
    expect(byterangesBoundary('application/octet-stream')).toBeUndefined();
    expect(byterangesBoundary('multipart/byteranges')).toBeUndefined();
    expect(byterangesBoundary(undefined)).toBeUndefined();
  });

  it.each([
    [
      'other ranges',
      body(
        asked([
          { start: 10, end: 19 },
          { start: 501, end: 504 },
        ]),
      ),
      /part 2 is "bytes 501-504\/1000"/,
    ],
    [
      'parts merged into one',
      body([{ range: `bytes 10-503/${SIZE}`, bytes: Buffer.alloc(494) }]),
      /part 1 is "bytes 10-503/,
    ],
    ['a part without Content-Range', Buffer.from('--b0und\r\n\r\n'), /without Content-Range/],
    ['no closing delimiter', body(asked(), { close: false }), /ended after 2 of 2 parts/],
    ['too few parts', body(asked().slice(0, 1)), /closed after 1 of 2 parts/],
    [
      'bytes where a delimiter belongs',
      Buffer.concat([body(asked().slice(0, 1), { close: false }), Buffer.from('xx\r\n')]),
      /where a delimiter belongs/,
    ],
    [
      'another boundary',
      body(asked()).toString().replaceAll('b0und', 'other'),
      /where the first delimiter belongs/,
    ],
    ['an endless line', `--b0und\r\n${'x'.repeat(2000)}`, /a line of more than 1024 bytes/],
    ['an endless header block', `--b0und\r\n${'X-A: 1\r\n'.repeat(20)}`, /over 16 header lines/],
  ])('refuses %s as RANGE_NOT_SUPPORTED', async (_, data, message) => {
    const e = await rejected(parse(Buffer.from(data), 5));
    expect(e).toMatchObject({ code: 'RANGE_NOT_SUPPORTED', transient: false, details: { multipart: true } });
    expect(String((e as Error).message)).toMatch(message);
  });
});
