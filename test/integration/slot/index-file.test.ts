/**
 * Chunk index files on disk (core/src/slot/index-file.ts, index-cache.ts): written and read as
 * deflate streams, checked for what they must be, and the active slot's index built, cached and
 * probed on real files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomicWith } from '@clgw/core/platform/atomic.js';
import { INDEX_ENTRY_BYTES } from '@clgw/core/release/chunk-index.js';
import { fillEntry, IndexReader, writeIndexFile } from '@clgw/core/slot/index-file.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSourceTable, probeOverlap } from '../../../agent/src/slot/index-cache.js';

let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-index-file-'));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const digest = (b: Buffer) => createHash('sha256').update(b).digest('binary');

/** Entries for `chunks` (stored as they are). */
function entriesOf(chunks: Buffer[]): Buffer {
  const out = Buffer.alloc(chunks.length * INDEX_ENTRY_BYTES);
  for (const [i, c] of chunks.entries()) fillEntry(out, i, digest(c), c.length);
  return out;
}

async function writeIndex(file: string, artifactSize: number, entries: Buffer, batch = 1000): Promise<void> {
  await writeFileAtomicWith(file, (h) =>
    writeIndexFile(h, { chunkSize: 4096, artifactSize }, async (push) => {
      for (let at = 0; at < entries.length; at += batch * INDEX_ENTRY_BYTES)
        await push(entries.subarray(at, at + batch * INDEX_ENTRY_BYTES));
    }),
  );
}

describe('index files', () => {
  it('round-trip in batches of any size; fewer or more entries than chunks are refused', async () => {
    const size = 5000 * 4096 + 7;
    const chunks = Array.from({ length: 5001 }, (_, i) => Buffer.from(`chunk ${i % 300}`));
    const entries = entriesOf(chunks);
    const file = path.join(dir, 'a.idx');
    await writeIndex(file, size, entries, 777);
    // Repeated entries deflate: far less than 12 bytes a chunk.
    expect((await fs.stat(file)).size).toBeLessThan(entries.length / 2);

    const reader = await IndexReader.open(file, { chunkSize: 4096, artifactSize: size });
    const read: Buffer[] = [];
    for (const n of [1, 2047, 2953]) read.push(Buffer.from(await reader.read(n)));
    await reader.finish();
    expect(Buffer.concat(read).equals(entries)).toBe(true);

    const short = path.join(dir, 'short.idx');
    await writeIndex(short, size, entries.subarray(0, 100 * INDEX_ENTRY_BYTES));
    const r2 = await IndexReader.open(short);
    await expect(r2.read(5001)).rejects.toMatchObject({
      code: 'INDEX_INVALID',
      message: expect.stringContaining('ends before chunk 100'),
    });
    r2.close();

    const long = path.join(dir, 'long.idx');
    await writeIndex(long, size, Buffer.concat([entries, entries.subarray(0, INDEX_ENTRY_BYTES)]));
    const r3 = await IndexReader.open(long);
    await r3.read(5001);
    await expect(r3.finish()).rejects.toMatchObject({
      code: 'INDEX_INVALID',
      message: expect.stringContaining("lists more than the artifact's 5001 chunks"),
    });
  });

  it('a damaged deflate stream or another header is INDEX_INVALID naming the file', async () => {
    const file = path.join(dir, 'b.idx');
    const entries = entriesOf(Array.from({ length: 64 }, () => randomBytes(4096)));
    await writeIndex(file, 64 * 4096, entries);
    await expect(IndexReader.open(file, { chunkSize: 4096, artifactSize: 42 })).rejects.toMatchObject({
      code: 'INDEX_INVALID',
      message: expect.stringContaining('describes 262144 bytes in 4096-byte chunks, not 42 bytes'),
    });
    const bytes = await fs.readFile(file);
    bytes.fill(0xff, 22, 40);
    await fs.writeFile(file, bytes);
    const reader = await IndexReader.open(file);
    await expect(reader.read(64)).rejects.toMatchObject({
      code: 'INDEX_INVALID',
      message: expect.stringContaining(`chunk index ${file} cannot be read`),
    });
    reader.close();
  });
});

describe("the active slot's index", () => {
  it('is built by reading the slot once, then read from its cache', async () => {
    const device = path.join(dir, 'slot-a');
    const chunks = Array.from({ length: 300 }, (_, i) =>
      i % 3 === 0 ? Buffer.alloc(4096) : randomBytes(4096),
    );
    await fs.writeFile(device, Buffer.concat(chunks));
    const cacheFile = path.join(dir, 'cache', 'A-root-x.idx');
    const opts = { device, length: 300 * 4096, chunkSize: 4096, cacheFile };
    const table = await loadSourceTable(opts);
    const wanted = entriesOf([chunks[7]!, chunks[3]!, randomBytes(4096)]);
    expect([0, 1, 2].map((i) => table.find(wanted, i * INDEX_ENTRY_BYTES))).toEqual([7, 0, -1]);
    // The slot changes; the cached index (what a recorded artifact says it holds) is used as it is.
    await fs.writeFile(device, Buffer.alloc(300 * 4096));
    const again = await loadSourceTable(opts);
    expect(again.find(wanted, 0)).toBe(7);
    // A damaged cache is rebuilt from the slot.
    await fs.writeFile(cacheFile, 'not an index');
    const rebuilt = await loadSourceTable(opts);
    expect(rebuilt.find(wanted, 0)).toBe(-1);
    expect(rebuilt.find(entriesOf([Buffer.alloc(4096)]), 0)).toBe(0);
  });

  it('runs of one content are indexed as each chunk alone would be, across the reads of the slot', async () => {
    const device = path.join(dir, 'slot-runs');
    const one = randomBytes(4096);
    // 600 chunks, read 1 MiB (256 chunks) at a time: runs of zeros and of one block that cross
    // the reads' edges, between chunks of their own.
    const chunks = Array.from({ length: 600 }, (_, i) =>
      (i >= 250 && i < 270) || i >= 590 ? Buffer.alloc(4096) : i >= 500 && i < 530 ? one : randomBytes(4096),
    );
    chunks[260] = Buffer.alloc(4096, 1);
    await fs.writeFile(device, Buffer.concat(chunks));
    const cacheFile = path.join(dir, 'runs.idx');
    await loadSourceTable({ device, length: 600 * 4096, chunkSize: 4096, cacheFile });
    const reader = await IndexReader.open(cacheFile);
    try {
      expect(await reader.read(600)).toEqual(entriesOf(chunks));
    } finally {
      reader.close();
    }
  });

  it('a probe finds a related slot and scores an unrelated one at zero', async () => {
    const device = path.join(dir, 'slot-b');
    const chunks = Array.from({ length: 2000 }, () => randomBytes(4096));
    await fs.writeFile(device, Buffer.concat(chunks));
    const related = path.join(dir, 'related.idx');
    // The target: the same image with a tenth of its chunks changed, in another order.
    const target = chunks.map((c, i) => (i % 10 === 0 ? randomBytes(4096) : c)).reverse();
    await writeIndex(related, 2000 * 4096, entriesOf(target));
    const probe = { device, length: 2000 * 4096, chunkSize: 4096 };
    const hit = await probeOverlap({ ...probe, indexFile: related });
    expect(hit.sampled).toBe(256);
    expect(hit.found).toBeGreaterThan(200);

    const unrelated = path.join(dir, 'unrelated.idx');
    await writeIndex(
      unrelated,
      2000 * 4096,
      entriesOf(Array.from({ length: 2000 }, () => randomBytes(4096))),
    );
    expect(await probeOverlap({ ...probe, indexFile: unrelated })).toEqual({ sampled: 256, found: 0 });
  });

  it('a probe counts each sample once, however often the slot and the index repeat its chunk', async () => {
    // The first half of the slot is zeros (an image's free space): about half the samples are the
    // same chunk, and the index lists it a thousand times.
    const device = path.join(dir, 'slot-c');
    const chunks = Array.from({ length: 2000 }, (_, i) =>
      i < 1000 ? Buffer.alloc(4096) : randomBytes(4096),
    );
    await fs.writeFile(device, Buffer.concat(chunks));
    const indexFile = path.join(dir, 'zeros.idx');
    const target = chunks.map((c, i) => (i >= 1000 && i % 10 === 0 ? randomBytes(4096) : c));
    await writeIndex(indexFile, 2000 * 4096, entriesOf(target));
    const sampledChunks = Array.from({ length: 256 }, (_, k) => Math.floor(((k + 0.5) * 2000) / 256));
    const kept = sampledChunks.filter((c) => c < 1000 || c % 10 !== 0).length;
    expect(kept).toBeLessThan(256);
    expect(await probeOverlap({ device, length: 2000 * 4096, chunkSize: 4096, indexFile })).toEqual({
      sampled: 256,
      found: kept,
    });
  });
});
