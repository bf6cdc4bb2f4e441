import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError, isClgwError } from '@clgw/core/errors.js';
import { writeFileAtomicWith } from '@clgw/core/platform/atomic.js';
import type { HttpClient } from '@clgw/core/platform/http.js';
import { bufferingSink } from '@clgw/core/platform/http-body.js';
import type { PartitionKind, SlotName } from '@clgw/core/platform/paths.js';
import {
  CHUNK_HASH_BYTES,
  checkEntries,
  chunkCount,
  INDEX_ENTRY_BYTES,
  type IndexHeader,
} from '@clgw/core/release/chunk-index.js';
import type { ChunkIndexRef } from '@clgw/core/release/schema.js';
import { chunkDigest, hashDeviceChunks } from '@clgw/core/slot/chunk-hash.js';
import { borrowBuffers, returnBuffers, wholeChunks } from '@clgw/core/slot/direct-io.js';
import { fillEntry, IndexReader, writeIndexFile } from '@clgw/core/slot/index-file.js';
import { ChunkTable } from './chunk-table.js';

/**
 * Chunk indexes on the data partition (adaptive updates): the index of each slot's content, so the
 * next update need not read the whole active slot again, and the target's index while it installs.
 * A file is named by slot, partition and the SHA-256 of the artifact it describes, and is used only
 * while slot-status says the slot holds that artifact; a slot that changes gets a new name, and
 * every download prunes the names it does not use. A stale or damaged entry can cost bytes but not
 * correctness: every chunk copied from the active slot is hashed and compared when it is read.
 */

/** `<dir>/<slot>-<kind>-<artifact sha256>.idx`. */
export function indexCacheFile(dir: string, slot: SlotName, kind: PartitionKind, sha256: string): string {
  return path.join(dir, `${slot}-${kind}-${sha256}.idx`);
}

/** Removes every file of the cache but `keep` (older slots' indexes, temp files of cut writes). */
export async function pruneIndexCache(dir: string, keep: readonly string[]): Promise<void> {
  const names = await fs.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  const kept = new Set(keep.map((f) => path.basename(f)));
  for (const name of names) if (!kept.has(name)) await fs.rm(path.join(dir, name), { force: true });
}

/**
 * Makes `file` hold the target artifact's chunk index: kept when an earlier attempt left it there
 * intact (its SHA-256 is compat.yaml's), else streamed from `url` and checked against compat.yaml's
 * SHA-256 and the artifact's size before it is atomically put in place; either way its entries are
 * then read through once (the sum of their stored lengths must be the pack's size, when there is
 * a pack). INDEX_INVALID when the file is not that index; the client's network codes when it
 * cannot be had.
 */
export async function fetchChunkIndex(
  http: HttpClient,
  url: string,
  ref: ChunkIndexRef,
  artifactSize: number,
  file: string,
  signal?: AbortSignal,
): Promise<void> {
  if ((await fileSha256(file)) !== ref.sha256) {
    await writeFileAtomicWith(file, async (handle) => {
      const hash = createHash('sha256');
      const buffer = Buffer.allocUnsafe(64 * 1024);
      const sink = bufferingSink(buffer, async (length) => {
        for (let done = 0; done < length; )
          done += (await handle.write(buffer, done, length - done)).bytesWritten;
      });
      await http.receive(url, { expectedSize: ref.size, ...(signal ? { signal } : {}) }, () => undefined, {
        data: (chunk) => {
          hash.update(chunk);
          return sink.data(chunk);
        },
      });
      await sink.end();
      const actual = hash.digest('hex');
      if (actual !== ref.sha256)
        throw new ClgwError(
          'INDEX_INVALID',
          `chunk index ${url}: SHA-256 is ${actual}, compat.yaml says ${ref.sha256}`,
          { details: { url, expected: ref.sha256, actual } },
        );
    });
  }
  // Signed and intact, yet it must also describe this artifact the way compat.yaml says.
  const header = { chunkSize: ref.chunkSize, artifactSize };
  const reader = await IndexReader.open(file, header);
  try {
    const batch = Buffer.allocUnsafe(BATCH_CHUNKS * INDEX_ENTRY_BYTES);
    let packed = 0;
    while (reader.position < reader.chunks) {
      const first = reader.position;
      const entries = await reader.read(Math.min(BATCH_CHUNKS, reader.chunks - first), batch);
      packed += checkEntries(entries, first, header, url);
    }
    await reader.finish();
    if (ref.pack && packed !== ref.pack.size)
      throw new ClgwError(
        'INDEX_INVALID',
        `chunk index ${url} places ${packed} bytes in the pack, compat.yaml says ${ref.pack.size}`,
        { details: { url, packed, packSize: ref.pack.size } },
      );
  } finally {
    reader.close();
  }
}

/**
 * The chunks of the first `length` bytes of the active slot's `device`, in a ChunkTable: read from
 * `cacheFile` when it holds that index, else hashed from the device (and then written to
 * `cacheFile`, atomically, when one is given). Memory: the table, and one batch of entries.
 */
export async function loadSourceTable(opts: {
  device: string;
  length: number;
  chunkSize: number;
  cacheFile?: string;
  signal?: AbortSignal;
}): Promise<ChunkTable> {
  const header: IndexHeader = { chunkSize: opts.chunkSize, artifactSize: opts.length };
  const cached = opts.cacheFile ? await readIndexFile(opts.cacheFile, header) : undefined;
  if (cached) return cached;
  const table = new ChunkTable(chunkCount(opts.length, opts.chunkSize));
  const build = async (push?: (entries: Buffer) => Promise<void>) => {
    const handle = await fs.open(opts.device, 'r').catch((e: NodeJS.ErrnoException) => {
      throw new ClgwError(
        'SLOT_WRITE_FAILED',
        `cannot open slot device ${opts.device} for reading: ${e.message}`,
        { cause: e, details: { device: opts.device, errno: e.code } },
      );
    });
    // Read into the aligned pair the install borrows next (slot/direct-io.ts).
    const pair = borrowBuffers();
    try {
      const window = BATCH_CHUNKS * opts.chunkSize;
      const entries = Buffer.allocUnsafe(BATCH_CHUNKS * INDEX_ENTRY_BYTES);
      const buffer = wholeChunks(pair[0], opts.chunkSize);
      for (let from = 0; from < opts.length; from += window) {
        const length = Math.min(window, opts.length - from);
        const first = from / opts.chunkSize;
        await hashDeviceChunks(
          handle,
          opts.device,
          { from, length, chunkSize: opts.chunkSize, buffer },
          (digest, chunk) => {
            const i = chunk - first;
            fillEntry(entries, i, digest, Math.min(opts.chunkSize, opts.length - chunk * opts.chunkSize));
            table.add(entries, i * INDEX_ENTRY_BYTES, chunk);
          },
          opts.signal,
        );
        await push?.(entries.subarray(0, chunkCount(length, opts.chunkSize) * INDEX_ENTRY_BYTES));
      }
    } finally {
      returnBuffers(pair);
      await handle.close();
    }
  };
  if (opts.cacheFile) await writeFileAtomicWith(opts.cacheFile, (h) => writeIndexFile(h, header, build));
  else await build();
  return table;
}

/** How many of the chunks an index file lists `table` probably holds (see ChunkTable.find). */
export async function countFound(indexFile: string, table: ChunkTable): Promise<number> {
  const reader = await IndexReader.open(indexFile);
  try {
    const batch = Buffer.allocUnsafe(BATCH_CHUNKS * INDEX_ENTRY_BYTES);
    let found = 0;
    while (reader.position < reader.chunks) {
      const n = Math.min(BATCH_CHUNKS, reader.chunks - reader.position);
      const entries = await reader.read(n, batch);
      for (let i = 0; i < n; i++) if (table.find(entries, i * INDEX_ENTRY_BYTES) >= 0) found++;
    }
    return found;
  } finally {
    reader.close();
  }
}

/**
 * A cheap look at whether the active slot has anything the target needs, before indexing it
 * whole: the digests of `samples` chunks spread evenly over its first `length` bytes, and how
 * many of them the target's index lists. An unrelated slot (another image, a factory slot of
 * another build) scores about none, and the artifact is then streamed at once; a slot holding an
 * older build of the image scores about its share of unchanged blocks. Reads `samples` chunks of
 * the device and the index once; memory: the samples' digests.
 */
export async function probeOverlap(opts: {
  device: string;
  length: number;
  chunkSize: number;
  indexFile: string;
  samples?: number;
  signal?: AbortSignal;
}): Promise<{ sampled: number; found: number }> {
  const cs = opts.chunkSize;
  const chunks = chunkCount(opts.length, cs);
  const wanted = Math.min(chunks, opts.samples ?? PROBE_SAMPLES);
  // The samples' digests (as far as the index keeps them, chunkDigest strings) and how many samples
  // have each: an image's zero chunks are many, and are looked up once.
  const samples = new Map<string, number>();
  const handle = await fs.open(opts.device, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new ClgwError(
      'SLOT_WRITE_FAILED',
      `cannot open slot device ${opts.device} for reading: ${e.message}`,
      {
        cause: e,
        details: { device: opts.device, errno: e.code },
      },
    );
  });
  const buffer = Buffer.allocUnsafe(cs);
  try {
    for (let k = 0; k < wanted; k++) {
      opts.signal?.throwIfAborted();
      const chunk = Math.floor(((k + 0.5) * chunks) / wanted);
      const length = Math.min(cs, opts.length - chunk * cs);
      const { bytesRead } = await handle.read(buffer, 0, length, chunk * cs);
      const digest = chunkDigest(buffer.subarray(0, bytesRead)).slice(0, CHUNK_HASH_BYTES);
      samples.set(digest, (samples.get(digest) ?? 0) + 1);
    }
  } finally {
    await handle.close();
  }
  const reader = await IndexReader.open(opts.indexFile);
  let found = 0;
  try {
    const batch = Buffer.allocUnsafe(BATCH_CHUNKS * INDEX_ENTRY_BYTES);
    while (samples.size > 0 && reader.position < reader.chunks) {
      const n = Math.min(BATCH_CHUNKS, reader.chunks - reader.position);
      const entries = await reader.read(n, batch);
      for (let i = 0; i < n; i++) {
        const at = i * INDEX_ENTRY_BYTES;
        const digest = entries.toString('latin1', at, at + CHUNK_HASH_BYTES);
        const count = samples.get(digest);
        if (count === undefined) continue;
        // Found once is enough: later copies in the index cost a map miss.
        found += count;
        samples.delete(digest);
      }
    }
  } finally {
    reader.close();
  }
  return { sampled: wanted, found };
}

/** Chunks of the active slot the probe hashes: 1 MiB of reads in 4 KiB chunks. */
const PROBE_SAMPLES = 256;

/** Entries read from an index, or hashed into one, per batch. */
const BATCH_CHUNKS = 2048;

/** The table of an index file; undefined when it is absent or not the index `expect` describes. */
async function readIndexFile(file: string, expect: IndexHeader): Promise<ChunkTable | undefined> {
  let reader: IndexReader;
  try {
    reader = await IndexReader.open(file, expect);
  } catch {
    return undefined;
  }
  try {
    const table = new ChunkTable(reader.chunks);
    const batch = Buffer.allocUnsafe(BATCH_CHUNKS * INDEX_ENTRY_BYTES);
    while (reader.position < reader.chunks) {
      const first = reader.position;
      const n = Math.min(BATCH_CHUNKS, reader.chunks - first);
      const entries = await reader.read(n, batch);
      for (let i = 0; i < n; i++) table.add(entries, i * INDEX_ENTRY_BYTES, first + i);
    }
    await reader.finish();
    return table;
  } catch (e) {
    if (isClgwError(e)) return undefined;
    throw e;
  } finally {
    reader.close();
  }
}

/** SHA-256 of a file, or undefined when it does not exist. */
async function fileSha256(file: string): Promise<string | undefined> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return hash.digest('hex');
}
