import { createHash } from 'node:crypto';
import { INDEX_ENTRY_BYTES } from '@clgw/core/release/chunk-index.js';
import { describe, expect, it } from 'vitest';
import { ChunkTable } from '../../../agent/src/slot/chunk-table.js';
import { coalesceFetches, planWindow } from '../../../agent/src/slot/delta-plan.js';

/** The SHA-256 of a chunk named by a short label (content stand-in). */
const h = (label: string) => createHash('sha256').update(label).digest();
/** Index entries of chunks named by labels: 8 bytes of digest, then a stored length. */
const entries = (labels: string[]) =>
  Buffer.concat(
    labels.map((l) => {
      const e = Buffer.alloc(INDEX_ENTRY_BYTES);
      h(l).copy(e, 0, 0, 8);
      e.writeUInt32BE(4096, 8);
      return e;
    }),
  );

/** A table of the active slot's chunks, labelled in order. */
function table(labels: string[]): ChunkTable {
  const t = new ChunkTable(labels.length);
  for (const [i, l] of labels.entries()) t.add(h(l), 0, i);
  return t;
}

describe('ChunkTable', () => {
  it('finds every chunk by its hash, keeps the first of identical chunks, misses the rest', () => {
    const n = 5000;
    const t = new ChunkTable(n);
    const all = entries(Array.from({ length: n }, (_, i) => `chunk ${i}`));
    for (let i = 0; i < n; i++) t.add(all, i * INDEX_ENTRY_BYTES, i);
    t.add(h('chunk 7'), 0, 9999);
    expect(t.size).toBe(n);
    for (let i = 0; i < n; i++) expect(t.find(all, i * INDEX_ENTRY_BYTES)).toBe(i);
    for (let i = 0; i < 1000; i++) expect(t.find(h(`absent ${i}`), 0)).toBe(-1);
  });

  it('takes one typed array: 8 bytes a slot, 4/3 as many slots as chunks', () => {
    expect(ChunkTable.bytesFor(131072)).toBe(174763 * 8); // 512 MiB in 4 KiB chunks: 1.33 MiB
    expect(ChunkTable.bytesFor(133120)).toBe(177494 * 8); // a 520 MiB slot
    expect(ChunkTable.bytesFor(1)).toBe(16 * 8);
    expect(() => {
      const t = new ChunkTable(1);
      t.add(h('a'), 0, 0);
      t.add(h('b'), 0, 1);
    }).toThrow(RangeError);
  });

  it('probing wraps from the last slot to the first', () => {
    // First four bytes all ones: every chunk starts probing at the last of the 16 slots.
    const entry = (tag: number) => {
      const b = new Uint8Array(INDEX_ENTRY_BYTES).fill(0xff);
      new DataView(b.buffer).setUint32(4, tag);
      return b;
    };
    const t = new ChunkTable(12);
    for (let c = 0; c < 12; c++) t.add(entry(c), 0, c);
    expect(t.size).toBe(12);
    for (let c = 0; c < 12; c++) expect(t.find(entry(c), 0)).toBe(c);
    expect(t.find(entry(99), 0)).toBe(-1);
  });
});

describe('planWindow', () => {
  const source = table(['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H']);
  const find = (b: Uint8Array, o: number) => source.find(b, o);

  it('copies what the active slot has (any offset) and fetches the rest', () => {
    const ops = planWindow({ first: 100, entries: entries(['C', 'D', 'x', 'y', 'A', 'A']), find, maxGap: 0 });
    expect(ops).toEqual([
      { kind: 'copy', first: 100, count: 2, from: [2, 3] },
      { kind: 'fetch', first: 102, count: 2 },
      { kind: 'copy', first: 104, count: 2, from: [0, 0] },
    ]);
  });

  it('keeps what the target slot already holds (resume), before looking anywhere else', () => {
    const inPlace = Uint8Array.from([1, 1, 0, 1, 0]);
    const ops = planWindow({
      first: 0,
      entries: entries(['x', 'A', 'y', 'z', 'B']),
      inPlace,
      find,
      maxGap: 0,
    });
    expect(ops).toEqual([
      { kind: 'keep', first: 0, count: 2 },
      { kind: 'fetch', first: 2, count: 1 },
      { kind: 'keep', first: 3, count: 1 },
      { kind: 'copy', first: 4, count: 1, from: [1] },
    ]);
  });

  it('coalesces fetches across small gaps into one request, not across larger ones', () => {
    const labels = ['x1', 'A', 'B', 'x2', 'C', 'D', 'E', 'x3'];
    expect(planWindow({ first: 0, entries: entries(labels), find, maxGap: 2 })).toEqual([
      { kind: 'fetch', first: 0, count: 4 },
      { kind: 'copy', first: 4, count: 3, from: [2, 3, 4] },
      { kind: 'fetch', first: 7, count: 1 },
    ]);
    expect(planWindow({ first: 0, entries: entries(labels), find, maxGap: 3 })).toEqual([
      { kind: 'fetch', first: 0, count: 8 },
    ]);
  });

  it('every chunk is covered once, in order', () => {
    const labels = Array.from({ length: 300 }, (_, i) => (i % 7 === 0 ? `new ${i}` : 'ABCDEFGH'[i % 8]!));
    const inPlace = Uint8Array.from(labels, (_, i) => (i % 11 === 0 ? 1 : 0));
    const ops = planWindow({ first: 1000, entries: entries(labels), inPlace, find, maxGap: 1 });
    let next = 1000;
    for (const op of ops) {
      expect(op.first).toBe(next);
      expect(op.count).toBeGreaterThan(0);
      if (op.kind === 'copy') expect(op.from).toHaveLength(op.count);
      next += op.count;
    }
    expect(next).toBe(1300);
  });
});

describe('coalesceFetches', () => {
  it('merges a fetch, a gap of keeps and copies, and the next fetch; leaves lone fetches alone', () => {
    expect(
      coalesceFetches(
        [
          { kind: 'fetch', first: 0, count: 1 },
          { kind: 'keep', first: 1, count: 1 },
          { kind: 'copy', first: 2, count: 1, from: [5] },
          { kind: 'fetch', first: 3, count: 2 },
          { kind: 'copy', first: 5, count: 1, from: [9] },
          { kind: 'fetch', first: 6, count: 1 },
          { kind: 'copy', first: 7, count: 4, from: [1, 2, 3, 4] },
        ],
        2,
      ),
    ).toEqual([
      { kind: 'fetch', first: 0, count: 7 },
      { kind: 'copy', first: 7, count: 4, from: [1, 2, 3, 4] },
    ]);
  });
});
