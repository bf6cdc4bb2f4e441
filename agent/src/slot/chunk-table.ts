/**
 * Where a chunk of given content lies in the active slot: an open-addressing hash table (linear
 * probing, load at most three quarters) in one typed array, 8 bytes a slot — 4 bytes of the chunk's
 * digest (bytes 4–7 of its SHA-256; bytes 0–3 choose where probing starts) and the chunk's
 * number + 1 (0: empty). No strings, no object per chunk: ~11 bytes per chunk of the active
 * artifact, 1.3 MiB for 512 MiB in 4 KiB chunks.
 *
 * A hit means "probably there": only 4 bytes are compared (a false hit is ~2^-32 per probe), and
 * the slot may have changed since it was indexed. Whoever copies a chunk found here hashes what it
 * read and compares that with the 8-byte digest it wanted, so a false hit costs a fetch.
 * Pure: no I/O.
 */
export class ChunkTable {
  private readonly slots: Uint32Array;
  private readonly capacity: number;
  /** Distinct chunk contents stored (identical chunks — zero blocks — are stored once). */
  size = 0;

  /** Bytes a table for `chunks` chunks takes: 4/3 × chunks slots (16 at least), 8 bytes each. */
  static bytesFor(chunks: number): number {
    return capacityFor(chunks) * 8;
  }

  constructor(readonly capacityChunks: number) {
    this.capacity = capacityFor(capacityChunks);
    this.slots = new Uint32Array(this.capacity * 2);
  }

  /** Records that chunk number `chunk` has the digest at `hashes[offset…offset+8)`; the first one stays. */
  add(hashes: Uint8Array, offset: number, chunk: number): void {
    const tag = word(hashes, offset + 4);
    for (let i = this.start(hashes, offset); ; i = this.next(i)) {
      const at = i * 2;
      if (this.slots[at + 1] === 0) {
        // Beyond its size the table would fill up and probing slow down: a caller's sizing error.
        if (this.size >= this.capacityChunks)
          throw new RangeError(`chunk table full (${this.capacityChunks})`);
        this.slots[at] = tag;
        this.slots[at + 1] = chunk + 1;
        this.size++;
        return;
      }
      if (this.slots[at] === tag) return;
    }
  }

  /** The number of a chunk whose digest is probably `hashes[offset…offset+8)`, or -1. */
  find(hashes: Uint8Array, offset: number): number {
    const tag = word(hashes, offset + 4);
    for (let i = this.start(hashes, offset); ; i = this.next(i)) {
      const at = i * 2;
      const chunk = this.slots[at + 1] as number;
      if (chunk === 0) return -1;
      if (this.slots[at] === tag) return chunk - 1;
    }
  }

  /**
   * Where probing starts: the first 4 digest bytes scaled to the capacity (multiply and shift
   * rather than a mask, so the capacity need not be a power of two: at 512 MiB the next power of
   * two took 2 MiB instead of 1.3). Exact in a double up to 2^21 slots (16 MiB, the most the
   * agent builds); the bounds keep a larger table's rounding from probing past its end.
   */
  private start(hashes: Uint8Array, offset: number): number {
    return Math.min(this.capacity - 1, Math.floor((word(hashes, offset) * this.capacity) / 4294967296));
  }

  private next(i: number): number {
    return i + 1 >= this.capacity ? 0 : i + 1;
  }
}

/**
 * Slots for `chunks` chunks: at most three quarters full — linear probing then takes ~2.5 probes
 * to find a chunk and ~8.5 to miss one.
 */
function capacityFor(chunks: number): number {
  return Math.max(16, Math.ceil((chunks * 4) / 3));
}

/** Little-endian u32 at `offset` (the bytes of a hash are uniformly distributed: any order will do). */
function word(b: Uint8Array, offset: number): number {
  return (
    ((b[offset] as number) |
      ((b[offset + 1] as number) << 8) |
      ((b[offset + 2] as number) << 16) |
      ((b[offset + 3] as number) << 24)) >>>
    0
  );
}
