import { inflateRawSync, constants as zlib } from 'node:zlib';
import { ClgwError } from '@clgw/core/errors.js';
import { storedLength } from '@clgw/core/release/chunk-index.js';

/** One Range response of a chunk pack: which chunks it carries, and where they go. */
export interface PackRange {
  url: string;
  /** The response's bytes in the pack, for the error when it sends more. */
  start: number;
  end: number;
  /** Its chunks: `first … first + count - 1`. */
  first: number;
  count: number;
  /** Index entries of the window, chunk `entriesFirst` at the start. */
  entries: Buffer;
  entriesFirst: number;
  chunkSize: number;
  /** Length of a chunk of the artifact (the last may be short). */
  lengthOf: (chunk: number) => number;
}

/** What the caller does with a full buffer: `filled` chunks in it, `wire` bytes they took on the wire. */
export type PackBatch = (filled: number, wire: number, broken: ReadonlySet<number>) => Promise<void>;

/**
 * The stored chunks of a pack response, put back together across the pieces the network delivers
 * (a stored chunk may be split between two) and inflated, each in its place in `buffer`; each time
 * the buffer holds as many chunks as fit, or the last one, `batch` takes them. A chunk that does
 * not inflate, or inflates to another length, is left in `broken` (the caller fetches it from the
 * artifact); a response with more than its chunks is SIZE_EXCEEDED.
 */
export class PackChunks {
  private chunk: number;
  private partialUsed = 0;
  private filled = 0;
  private wire = 0;
  private readonly perBuffer: number;
  readonly broken = new Set<number>();

  constructor(
    private readonly range: PackRange,
    private readonly buffer: Buffer,
    /** Holds a stored chunk split across pieces: one chunk long. */
    private readonly partial: Buffer,
    private readonly batch: PackBatch,
  ) {
    this.chunk = range.first;
    this.perBuffer = Math.floor(buffer.length / range.chunkSize);
  }

  /** Places the stored chunks of a piece, handing the buffer over whenever it is full. */
  take(piece: Buffer): Promise<void> | undefined {
    const { first, count, entries, entriesFirst, url, start, end } = this.range;
    for (let offset = 0; offset < piece.length; ) {
      if (this.chunk >= first + count)
        throw new ClgwError('SIZE_EXCEEDED', `${url} sent more than bytes ${start}-${end}`, {
          details: { url, start, end },
        });
      const stored = storedLength(entries, this.chunk - entriesFirst);
      const n = Math.min(stored - this.partialUsed, piece.length - offset);
      if (this.partialUsed === 0 && n === stored) this.place(piece.subarray(offset, offset + n));
      else {
        piece.copy(this.partial, this.partialUsed, offset, offset + n);
        this.partialUsed += n;
        if (this.partialUsed === stored) {
          this.place(this.partial.subarray(0, stored));
          this.partialUsed = 0;
        }
      }
      offset += n;
      if (this.filled > 0 && (this.filled === this.perBuffer || this.chunk === first + count)) {
        // The piece is valid only during the call: what is left of it waits as a copy.
        const rest = offset < piece.length ? Buffer.from(piece.subarray(offset)) : undefined;
        return this.flush().then(() => (rest ? this.take(rest) : undefined));
      }
    }
    return undefined;
  }

  /** Hands over what the buffer still holds, after the response ended. */
  async end(): Promise<void> {
    if (this.filled > 0) await this.flush();
  }

  private async flush(): Promise<void> {
    const { filled, wire } = this;
    this.filled = 0;
    this.wire = 0;
    await this.batch(filled, wire, this.broken);
  }

  /** One stored chunk, complete: into the buffer, inflated when it was deflated. */
  private place(stored: Buffer): void {
    const { chunkSize, lengthOf } = this.range;
    const length = lengthOf(this.chunk);
    const into = this.buffer.subarray(this.filled * chunkSize, this.filled * chunkSize + length);
    if (stored.length === length) stored.copy(into);
    else {
      try {
        // An output buffer of the chunk's length and a byte (so that a full one does not make
        // zlib start another), not the default 16 KiB: each is garbage until the next scavenge,
        // and a pack of a few thousand chunks left megabytes of them pending (measured: 16 KiB
        // per call by default, 4 KiB with this).
        const inflated = inflateRawSync(stored, {
          maxOutputLength: length,
          chunkSize: Math.max(zlib.Z_MIN_CHUNK, length + 1),
        });
        if (inflated.length === length) inflated.copy(into);
        else this.broken.add(this.chunk);
      } catch {
        this.broken.add(this.chunk);
      }
    }
    this.wire += stored.length;
    this.filled++;
    this.chunk++;
  }
}
