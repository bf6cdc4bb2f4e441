/**
 * A slot read back from its device and hashed: proof that what the disk holds is the artifact,
 * before the slot is recorded or booted.
 */
import { createHash, type Hash } from 'node:crypto';
import type { promises as fs } from 'node:fs';
import { ClgwError } from '../errors.js';
import { openDevice } from './device.js';
import {
  borrowBuffers,
  DIRECT_ALIGN,
  directAligned,
  IO_BUFFER,
  openDirect,
  returnBuffers,
  roundUpToBlock,
} from './direct-io.js';

export interface VerifyOptions {
  signal?: AbortSignal;
  /**
   * Bytes read back and hashed so far, rising to `size`: told once per read buffer (IO_BUFFER),
   * as the write reports once per written buffer, so a long read-back shows its progress.
   */
  onProgress?: (read: number) => void;
}

/**
 * Reads back exactly `size` bytes of a slot device and compares their SHA-256; READBACK_MISMATCH
 * names the device, both digests, or how short the device was. Read with O_DIRECT where the
 * device allows it: the bytes come from the medium, not from pages still cached from the write.
 */
export async function verifyArtifactOnDevice(
  device: string,
  size: number,
  sha256: string,
  opts: VerifyOptions = {},
): Promise<void> {
  const handle = await openDevice(device, 'r');
  const direct = await openDirect(device, 'r');
  const buffers = borrowBuffers();
  try {
    const hash = createHash('sha256');
    const read = await hashDevice({ handle, direct }, buffers, device, size, hash, {
      signal: opts.signal,
      exact: false,
      onProgress: opts.onProgress,
    });
    if (read < size) {
      throw new ClgwError(
        'READBACK_MISMATCH',
        `read-back of ${device}: only ${read} of ${size} bytes could be read`,
        { details: { device, size, read } },
      );
    }
    const actual = hash.digest('hex');
    const expected = sha256.toLowerCase();
    if (actual !== expected) {
      throw new ClgwError(
        'READBACK_MISMATCH',
        `read-back of ${device}: SHA-256 of its first ${size} bytes is ${actual}, expected ${expected}`,
        { details: { device, size, expected, actual } },
      );
    }
  } finally {
    returnBuffers(buffers);
    await direct?.close();
    await handle.close();
  }
}

/**
 * Feeds the bytes of a device from `from` (default 0) up to `length` to `hash`; returns the offset
 * reached (below `length` only at end of device). With `exact` (the default), a short device is an
 * error. Two buffers: the next piece is read (O_DIRECT where it can be, in whole blocks) while the
 * last one is hashed; `onProgress` is told the offset reached after each piece.
 */
export async function hashDevice(
  handles: { handle: fs.FileHandle; direct: fs.FileHandle | undefined },
  buffers: readonly [Buffer, Buffer],
  device: string,
  length: number,
  hash: Hash,
  opts: { from?: number; signal?: AbortSignal; exact?: boolean; onProgress?: (read: number) => void },
): Promise<number> {
  const { from = 0, signal, exact = true, onProgress } = opts;
  let direct = handles.direct;
  const read = async (buffer: Buffer, offset: number): Promise<number> => {
    const want = Math.min(buffer.length, length - offset);
    // O_DIRECT reads whole blocks: the buffer holds IO_BUFFER, so the rounded length fits.
    for (;;) {
      const whole = roundUpToBlock(want);
      const h = direct && directAligned(offset, whole) ? direct : undefined;
      try {
        const { bytesRead } = await (h ?? handles.handle).read(buffer, 0, h ? whole : want, offset);
        return Math.min(bytesRead, want);
      } catch (e) {
        if (h && (e as NodeJS.ErrnoException).code === 'EINVAL') {
          direct = undefined;
          continue;
        }
        const err = e as NodeJS.ErrnoException;
        throw new ClgwError(
          'SLOT_WRITE_FAILED',
          `cannot read slot device ${device} at offset ${offset}: ${err.message}`,
          { cause: e, details: { device, offset, errno: err.code } },
        );
      }
    }
  };
  let offset = from;
  let turn = 0;
  let pending = offset < length ? read(buffers[0], offset) : undefined;
  while (pending) {
    const bytesRead = await pending;
    pending = undefined;
    // Checked with no read in flight, so nothing runs on the handles once the caller closes them.
    signal?.throwIfAborted();
    if (bytesRead === 0) {
      if (!exact) return offset;
      throw new ClgwError(
        'SLOT_WRITE_FAILED',
        `slot device ${device} ends at ${offset} bytes, before the ${length} bytes already written`,
        { details: { device, offset, length } },
      );
    }
    const filled = buffers[turn % 2] as Buffer;
    offset += bytesRead;
    turn++;
    if (offset < length) pending = read(buffers[turn % 2] as Buffer, offset);
    hash.update(filled.subarray(0, bytesRead));
    onProgress?.(offset);
  }
  return offset;
}

/**
 * An artifact's SHA-256 computed from what the device holds, read back behind its writer (the
 * streamed download, the adaptive install): a piece is read (O_DIRECT where it can be, so from the
 * medium, not from cached pages) once every write below its end has completed and at least
 * IO_BUFFER bytes wait, while the writing goes on; what was written before it started (a resumed
 * prefix) is read first. What a read returns does not depend on an fsync, so this reads what the
 * verify phase's read-back after the last fsync would — without a pass of its own after the
 * download. A failed read is told to `onFailure`, which fails the writing.
 */
export class ReadBehind {
  failed = false;
  failure: unknown;
  private readonly hash = createHash('sha256');
  /** Bytes below this offset are hashed. */
  private hashed = 0;
  /** Bytes below this offset are written (and may be read). */
  private written: number;
  private finishing = false;
  private reading: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private buffers: [Buffer, Buffer] | undefined = borrowBuffers();

  constructor(
    private readonly o: {
      handle: fs.FileHandle;
      direct: fs.FileHandle | undefined;
      device: string;
      size: number;
      /** Bytes already written when it starts. */
      start: number;
      onFailure: (e: unknown) => void;
    },
  ) {
    this.written = o.start;
    this.pump();
  }

  /** Every write below `written` has completed (a lower offset than before changes nothing). */
  advance(written: number): void {
    this.written = Math.max(this.written, written);
    this.pump();
  }

  /** Reads the rest (every byte is written); whether the SHA-256 of all of them is `expected`. */
  async finish(expected: string): Promise<boolean> {
    this.finishing = true;
    this.written = this.o.size;
    this.pump();
    while (this.reading) await this.reading;
    if (this.failed) throw this.failure;
    return this.hash.digest('hex') === expected;
  }

  /** Stops reading and hands the buffers back once no read runs. */
  async stop(): Promise<void> {
    this.abort.abort();
    while (this.reading) await this.reading;
    if (this.buffers) returnBuffers(this.buffers);
    this.buffers = undefined;
  }

  private pump(): void {
    // Whole blocks until the end, so every piece can be read O_DIRECT (hashDevice reads aligned
    // pieces so, from an aligned start).
    const to = this.finishing ? this.written : this.written - (this.written % DIRECT_ALIGN);
    if (this.reading || this.failed || !this.buffers || this.abort.signal.aborted) return;
    if (to === this.hashed || (to - this.hashed < IO_BUFFER && !this.finishing)) return;
    const { handle, direct, device } = this.o;
    this.reading = hashDevice({ handle, direct }, this.buffers, device, to, this.hash, {
      from: this.hashed,
      signal: this.abort.signal,
    }).then(
      () => {
        this.hashed = to;
        this.reading = undefined;
        this.pump();
      },
      (e: unknown) => {
        this.reading = undefined;
        if (this.abort.signal.aborted) return;
        this.failed = true;
        this.failure = e;
        this.o.onFailure(e);
      },
    );
  }
}
