import { ClgwError } from '../errors.js';

/**
 * The chunk index of a boot or root artifact (`<artifact>.idx`) and its chunk pack
 * (`<artifact>.pack`), published beside it and signed through compat.yaml (size and SHA-256 of
 * both are in the artifact's `index` entry). They let an appliance download only the chunks its
 * active slot does not already hold (adaptive update), compressed. Pure: no I/O here.
 *
 * Index layout: a 20-byte header — `CLGWIDX2` (8 ASCII bytes), the chunk size (u32 big-endian),
 * the artifact's size (u64 big-endian) — then the entries, compressed as one raw deflate stream
 * (RFC 1951): per chunk of the artifact in order, 12 bytes —
 *   - the first 8 bytes of the chunk's SHA-256 (the last chunk is short when the size is not a
 *     multiple of the chunk size), and
 *   - the chunk's stored length in the pack (u32 big-endian): the chunk's own length when it is
 *     stored as it is, less when it is stored raw-deflated.
 * The pack is the stored chunks back to back: chunk i starts at the sum of the stored lengths of
 * the chunks before it, so the index alone says which byte range of the pack holds any run of
 * chunks, and a plain static mirror serves it with Range requests.
 *
 * Why 8 bytes of SHA-256 are enough: the per-chunk digest only chooses where a chunk comes from
 * (the active slot, which chunk of it) and catches a bad chunk early. It never decides what ends
 * up installed: the slot is read back and its whole SHA-256 compared with compat.yaml's before it
 * can boot (verifying). A chunk that matches 64 bits of digest without being the right chunk —
 * by chance about 2^-64 per lookup, or crafted by whoever controls the mirror at ~2^64 work —
 * therefore costs a failed read-back and a full download on the next attempt, never a bad slot.
 * 32 bytes a chunk would make the index 0.8 % of the artifact (4 MiB for 512 MiB), which a small
 * update pays in full; 12 bytes, deflated (free space repeats one entry), make it ~0.15–0.3 %.
 *
 * 4 KiB chunks line up with ext4 blocks, so a changed block costs one chunk and a file that moved
 * is still found chunk by chunk. Larger chunks would shrink the index, but each scattered 4 KiB
 * change would then cost a whole chunk: with 1 % of the blocks changed at random, 64 KiB chunks
 * already mean ~15 % of the image downloaded.
 */

export const INDEX_MAGIC = 'CLGWIDX2';
export const INDEX_HEADER_BYTES = 20;
/** Bytes of a chunk's digest in an index: the first 8 bytes of its SHA-256. */
export const CHUNK_HASH_BYTES = 8;
/** Bytes of one entry: the digest, then the stored length (u32). */
export const INDEX_ENTRY_BYTES = 12;
export const DEFAULT_CHUNK_SIZE = 4096;
/** Smaller chunks make the index larger than most changes; larger ones lose the point. */
export const MIN_CHUNK_SIZE = 4096;
export const MAX_CHUNK_SIZE = 1024 * 1024;

/** A power of two from MIN_CHUNK_SIZE to MAX_CHUNK_SIZE. */
export function isValidChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

/** Chunks in an artifact of `size` bytes. */
export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/** Length of chunk `chunk` of an artifact of `size` bytes (the last one may be short). */
export function chunkLength(chunk: number, size: number, chunkSize: number): number {
  return Math.min(chunkSize, size - chunk * chunkSize);
}

/** Bytes of the entries of the index of an artifact of `size` bytes, before compression. */
export function indexEntriesBytes(size: number, chunkSize: number): number {
  return INDEX_ENTRY_BYTES * chunkCount(size, chunkSize);
}

/**
 * The most an index file of an artifact of `size` bytes can take: the header and the entries
 * deflated, at worst (incompressible) zlib's deflateBound of them.
 */
export function maxIndexSize(size: number, chunkSize: number): number {
  const raw = indexEntriesBytes(size, chunkSize);
  return (
    INDEX_HEADER_BYTES +
    raw +
    Math.floor(raw / 4096) +
    Math.floor(raw / 16384) +
    Math.floor(raw / 33554432) +
    13
  );
}

/** Stored length of entry `i` of `entries` (a run of entries, the first at index 0). */
export function storedLength(entries: Uint8Array, i: number): number {
  const at = i * INDEX_ENTRY_BYTES + CHUNK_HASH_BYTES;
  return (
    (((entries[at] as number) << 24) |
      ((entries[at + 1] as number) << 16) |
      ((entries[at + 2] as number) << 8) |
      (entries[at + 3] as number)) >>>
    0
  );
}

/**
 * Checks a run of entries (the first is chunk `first` of the artifact): every stored length is
 * from 1 to the chunk's own length. Returns their sum (the bytes of the pack they cover);
 * INDEX_INVALID naming `source` and the chunk otherwise.
 */
export function checkEntries(
  entries: Uint8Array,
  first: number,
  header: IndexHeader,
  source: string,
): number {
  const count = entries.length / INDEX_ENTRY_BYTES;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const stored = storedLength(entries, i);
    const length = chunkLength(first + i, header.artifactSize, header.chunkSize);
    if (stored < 1 || stored > length)
      throw new ClgwError(
        'INDEX_INVALID',
        `chunk index ${source} gives chunk ${first + i} a stored length of ${stored} bytes (1…${length} expected)`,
        { details: { file: source, chunk: first + i, stored } },
      );
    sum += stored;
  }
  return sum;
}

export interface IndexHeader {
  chunkSize: number;
  artifactSize: number;
}

export function encodeIndexHeader(h: IndexHeader): Buffer {
  const out = Buffer.alloc(INDEX_HEADER_BYTES);
  out.write(INDEX_MAGIC, 0, 'ascii');
  out.writeUInt32BE(h.chunkSize, 8);
  out.writeBigUInt64BE(BigInt(h.artifactSize), 12);
  return out;
}

/**
 * Reads an index header; INDEX_INVALID naming `source` when it is not one, or (given `expect`)
 * when it describes another chunk size or artifact size.
 */
export function parseIndexHeader(bytes: Uint8Array, source: string, expect?: IndexHeader): IndexHeader {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string) =>
    new ClgwError('INDEX_INVALID', `chunk index ${source} ${why}`, { details: { file: source } });
  if (b.length < INDEX_HEADER_BYTES || b.toString('ascii', 0, 8) !== INDEX_MAGIC)
    throw bad(`does not start with the ${INDEX_MAGIC} header`);
  const chunkSize = b.readUInt32BE(8);
  const artifactSize = Number(b.readBigUInt64BE(12));
  if (!isValidChunkSize(chunkSize)) throw bad(`has an invalid chunk size ${chunkSize}`);
  if (!Number.isSafeInteger(artifactSize) || artifactSize < 1)
    throw bad(`has an invalid artifact size ${artifactSize}`);
  if (expect && (expect.chunkSize !== chunkSize || expect.artifactSize !== artifactSize))
    throw bad(
      `describes ${artifactSize} bytes in ${chunkSize}-byte chunks, not ${expect.artifactSize} bytes in ${expect.chunkSize}-byte chunks`,
    );
  return { chunkSize, artifactSize };
}
