import { ClgwError } from '@clgw/core/errors.js';
import {
  checkEntries,
  chunkCount,
  chunkLength,
  encodeIndexHeader,
  INDEX_ENTRY_BYTES,
  indexEntriesBytes,
  isValidChunkSize,
  maxIndexSize,
  parseIndexHeader,
  storedLength,
} from '@clgw/core/release/chunk-index.js';
import { validateCompat } from '@clgw/core/release/schema.js';
import { describe, expect, it } from 'vitest';
import { sampleCompat } from '../../fixtures/release/compat.js';

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ClgwError);
    return `${(e as ClgwError).code}: ${(e as ClgwError).message}`;
  }
  throw new Error('expected an error');
}

describe('chunk index format', () => {
  it('sizes: 12 bytes of entry per chunk before deflate, the last chunk short', () => {
    expect(chunkCount(8192, 4096)).toBe(2);
    expect(chunkCount(8193, 4096)).toBe(3);
    expect(chunkLength(2, 8193, 4096)).toBe(1);
    expect(indexEntriesBytes(8193, 4096)).toBe(3 * INDEX_ENTRY_BYTES);
    // The trade-off of 4 KiB chunks: 1.5 MiB of entries for a 512 MiB image, before deflate.
    expect(indexEntriesBytes(512 * 1024 * 1024, 4096)).toBe(1.5 * 1024 * 1024);
    // At worst (incompressible entries) deflate adds a little, never more than zlib's bound.
    const bound = maxIndexSize(512 * 1024 * 1024, 4096);
    expect(bound).toBeGreaterThan(20 + 1.5 * 1024 * 1024);
    expect(bound).toBeLessThan(20 + 1.51 * 1024 * 1024);
  });

  it('entries: stored lengths from 1 to the chunk length; their sum is the pack they cover', () => {
    const entries = Buffer.alloc(3 * INDEX_ENTRY_BYTES);
    entries.writeUInt32BE(4096, 8); // stored as it is
    entries.writeUInt32BE(17, 20); // deflated
    entries.writeUInt32BE(1, 32); // the short last chunk (1 byte), as it is
    const header = { chunkSize: 4096, artifactSize: 8193 };
    expect(storedLength(entries, 1)).toBe(17);
    expect(checkEntries(entries, 0, header, 'x.idx')).toBe(4096 + 17 + 1);
    entries.writeUInt32BE(2, 32);
    expect(code(() => checkEntries(entries, 0, header, 'x.idx'))).toBe(
      'INDEX_INVALID: chunk index x.idx gives chunk 2 a stored length of 2 bytes (1…1 expected)',
    );
    entries.writeUInt32BE(0, 20);
    expect(code(() => checkEntries(entries, 0, header, 'x.idx'))).toContain('chunk 1 a stored length of 0');
  });

  it('chunk sizes are powers of two from 4 KiB to 1 MiB', () => {
    expect([4096, 65536, 1048576].every(isValidChunkSize)).toBe(true);
    expect([0, 512, 4095, 6144, 2097152, 4096.5].some(isValidChunkSize)).toBe(false);
  });

  it('a header round-trips, and one for another artifact or chunk size is refused', () => {
    const header = encodeIndexHeader({ chunkSize: 4096, artifactSize: 5 * 1024 ** 3 + 1 });
    expect(header.toString('ascii', 0, 8)).toBe('CLGWIDX2');
    expect(parseIndexHeader(header, 'root.img.idx')).toEqual({
      chunkSize: 4096,
      artifactSize: 5 * 1024 ** 3 + 1,
    });
    expect(code(() => parseIndexHeader(header, 'root.img.idx', { chunkSize: 4096, artifactSize: 42 }))).toBe(
      'INDEX_INVALID: chunk index root.img.idx describes 5368709121 bytes in 4096-byte chunks, not 42 bytes in 4096-byte chunks',
    );
  });

  it('refuses what is not an index header', () => {
    expect(code(() => parseIndexHeader(Buffer.from('not an index at all!'), 'x.idx'))).toContain(
      'does not start with the CLGWIDX2 header',
    );
    expect(code(() => parseIndexHeader(Buffer.alloc(4), 'x.idx'))).toContain('INDEX_INVALID');
    const odd = encodeIndexHeader({ chunkSize: 4096, artifactSize: 1 });
    odd.writeUInt32BE(1000, 8);
    expect(code(() => parseIndexHeader(odd, 'x.idx'))).toContain('invalid chunk size 1000');
    const empty = encodeIndexHeader({ chunkSize: 4096, artifactSize: 1 });
    empty.writeBigUInt64BE(0n, 12);
    expect(code(() => parseIndexHeader(empty, 'x.idx'))).toContain('invalid artifact size 0');
  });
});

describe('compat.yaml: the chunk index entry', () => {
  const withIndex = (index: unknown) => {
    const doc = sampleCompat();
    const root = doc.platforms.virtual!.release.artifacts.root!;
    root.index = index;
    return doc;
  };
  const size = 67108864;
  const pack = { path: 'releases/1.1.0/root.img.pack', size: size / 2, sha256: 'd'.repeat(64) };
  const good = {
    path: 'releases/1.1.0/root.img.idx',
    chunkSize: 4096,
    size: 70000,
    sha256: 'c'.repeat(64),
    pack,
  };

  it('is optional, and accepted when its sizes fit its artifact; its pack is optional too', () => {
    expect(validateCompat(sampleCompat()).platforms.virtual?.release.artifacts.root.index).toBeUndefined();
    expect(validateCompat(withIndex(good)).platforms.virtual?.release.artifacts.root.index).toEqual(good);
    const { pack: _, ...bare } = good;
    expect(validateCompat(withIndex(bare)).platforms.virtual?.release.artifacts.root.index).toEqual(bare);
  });

  it('is refused with sizes that cannot belong to the artifact, a bad chunk size, path or key', () => {
    const most = maxIndexSize(size, 4096);
    expect(code(() => validateCompat(withIndex({ ...good, size: most + 1 })))).toContain(
      `platforms.virtual.release.artifacts.root.index.size: expected at most ${most} bytes for a ${size}-byte artifact in 4096-byte chunks`,
    );
    expect(code(() => validateCompat(withIndex({ ...good, pack: { ...pack, size: size + 1 } })))).toContain(
      `root.index.pack.size: expected 16384 to ${size} bytes`,
    );
    expect(code(() => validateCompat(withIndex({ ...good, pack: { ...pack, size: 100 } })))).toContain(
      'root.index.pack.size: expected 16384',
    );
    expect(code(() => validateCompat(withIndex({ ...good, pack: { ...pack, path: '/x' } })))).toContain(
      'root.index.pack.path: unsafe path',
    );
    expect(code(() => validateCompat(withIndex({ ...good, chunkSize: 3000 })))).toContain(
      'root.index.chunkSize: expected a power of two from 4096 to 1048576',
    );
    expect(code(() => validateCompat(withIndex({ ...good, path: '../root.idx' })))).toContain(
      'root.index.path: unsafe path',
    );
    expect(code(() => validateCompat(withIndex({ ...good, sha256: 'C'.repeat(64) })))).toContain(
      'root.index.sha256: expected 64 lowercase hex digits',
    );
    expect(code(() => validateCompat(withIndex({ ...good, blocks: 1 })))).toContain('unknown key "blocks"');
  });
});
