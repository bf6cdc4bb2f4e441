import { once } from 'node:events';
import { createReadStream, promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import { createDeflateRaw, createInflateRaw } from 'node:zlib';
import { ClgwError, isClgwError } from '../errors.js';
import { GarbageGauge } from '../platform/memory.js';
import {
  chunkCount,
  encodeIndexHeader,
  INDEX_ENTRY_BYTES,
  INDEX_HEADER_BYTES,
  type IndexHeader,
  parseIndexHeader,
} from '../release/chunk-index.js';

/**
 * Reading and writing chunk index files (format in release/chunk-index.ts): the entries are one
 * raw deflate stream, read and written as streams, so memory stays at zlib's window and one batch
 * of entries whatever the artifact's size.
 */

/**
 * Reads the entries of an index file in order, a batch at a time. INDEX_INVALID naming the file
 * when it is not an index of `expect`, its deflate stream is damaged, or it holds fewer or more
 * entries than the artifact has chunks (`finish`).
 */
export class IndexReader {
  readonly chunks: number;
  /** Entries handed out so far. */
  position = 0;
  private readonly body: AsyncIterator<Buffer>;
  private pending: Buffer = Buffer.alloc(0);
  private readonly gauge = new GarbageGauge(256 * 1024);

  private constructor(
    private readonly file: string,
    readonly header: IndexHeader,
    private readonly stream: Readable,
  ) {
    this.chunks = chunkCount(header.artifactSize, header.chunkSize);
    this.body = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** Opens `file` and checks its header (against `expect` when given). */
  static async open(file: string, expect?: IndexHeader): Promise<IndexReader> {
    const handle = await fs.open(file, 'r');
    const header = Buffer.alloc(INDEX_HEADER_BYTES);
    try {
      await handle.read(header, 0, INDEX_HEADER_BYTES, 0);
    } finally {
      await handle.close();
    }
    const parsed = parseIndexHeader(header, file, expect);
    const source = createReadStream(file, { start: INDEX_HEADER_BYTES, highWaterMark: 64 * 1024 });
    const inflate = createInflateRaw();
    source.on('error', (e) => inflate.destroy(e));
    source.pipe(inflate);
    return new IndexReader(file, parsed, inflate);
  }

  /** The next `count` entries (INDEX_ENTRY_BYTES each) into `into` (allocated when not given). */
  async read(count: number, into?: Buffer): Promise<Buffer> {
    const want = count * INDEX_ENTRY_BYTES;
    const out = into && into.length >= want ? into.subarray(0, want) : Buffer.allocUnsafe(want);
    if (this.position + count > this.chunks) throw this.invalid(`lists only ${this.chunks} chunks`);
    let filled = 0;
    while (filled < want) {
      if (this.pending.length === 0) {
        const next = await this.next();
        if (next === undefined)
          throw this.invalid(`ends before chunk ${this.position + Math.floor(filled / INDEX_ENTRY_BYTES)}`);
        this.pending = next;
      }
      const n = this.pending.copy(out, filled);
      filled += n;
      this.pending = this.pending.subarray(n);
    }
    this.position += count;
    return out;
  }

  /** Checks that every entry was read and nothing follows them, then closes. */
  async finish(): Promise<void> {
    try {
      if (this.position !== this.chunks) throw this.invalid(`was read only to chunk ${this.position}`);
      if (this.pending.length > 0 || (await this.next()) !== undefined)
        throw this.invalid(`lists more than the artifact's ${this.chunks} chunks`);
    } finally {
      this.close();
    }
  }

  close(): void {
    this.stream.destroy();
  }

  private async next(): Promise<Buffer | undefined> {
    try {
      for (;;) {
        const r = await this.body.next();
        if (r.done) return undefined;
        this.gauge.received(r.value.length);
        if (r.value.length > 0) return r.value;
      }
    } catch (e) {
      if (isClgwError(e)) throw e;
      throw this.invalid(`cannot be read: ${(e as Error).message}`, e);
    }
  }

  private invalid(why: string, cause?: unknown): ClgwError {
    return new ClgwError('INDEX_INVALID', `chunk index ${this.file} ${why}`, {
      ...(cause ? { cause } : {}),
      details: { file: this.file },
    });
  }
}

/**
 * Writes an index through `handle` (an empty file, e.g. writeFileAtomicWith's): the header, then
 * whatever entries `produce` pushes, deflated as they come (level 1 for an index made on the
 * appliance, the best level for a published one). The caller syncs and closes the handle.
 */
export async function writeIndexFile(
  handle: fs.FileHandle,
  header: IndexHeader,
  produce: (push: (entries: Buffer) => Promise<void>) => Promise<void>,
  level = 1,
): Promise<void> {
  await handle.write(encodeIndexHeader(header), 0, INDEX_HEADER_BYTES, 0);
  const deflate = createDeflateRaw({ level });
  let at = INDEX_HEADER_BYTES;
  let writing: Promise<void> = Promise.resolve();
  let failure: unknown;
  deflate.on('data', (out: Buffer) => {
    const position = at;
    at += out.length;
    writing = writing.then(async () => {
      for (let done = 0; done < out.length; )
        done += (await handle.write(out, done, out.length - done, position + done)).bytesWritten;
    });
    writing.catch((e: unknown) => {
      failure ??= e;
      deflate.destroy(e instanceof Error ? e : new Error(String(e)));
    });
  });
  const ended = once(deflate, 'end');
  try {
    await produce(async (entries) => {
      if (failure) throw failure;
      if (!deflate.write(entries)) await once(deflate, 'drain');
    });
    deflate.end();
    await ended;
  } catch (e) {
    deflate.destroy();
    ended.catch(() => undefined);
    await writing.catch(() => undefined);
    throw failure ?? e;
  }
  await writing;
}

/** Entry `i`: the first bytes of a chunk's digest (chunkDigest) and its length in the pack (its own where nothing is packed). */
export function fillEntry(entries: Buffer, i: number, digest: string, length: number): void {
  const at = i * INDEX_ENTRY_BYTES;
  entries.write(digest, at, INDEX_ENTRY_BYTES - 4, 'latin1');
  entries.writeUInt32BE(length, at + INDEX_ENTRY_BYTES - 4);
}
