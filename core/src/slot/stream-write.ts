/**
 * An artifact written into the inactive slot while it downloads: the body streamed from the mirror
 * through SHA-256 into aligned buffers and onto the device, durable at each checkpoint so a cut
 * resumes where the disk says it stopped.
 */
import { createHash } from 'node:crypto';
import type { promises as fs } from 'node:fs';
import { ClgwError } from '../errors.js';
import type { HttpClient } from '../platform/http.js';
import { checkSlotTarget, openDevice, writeFailure } from './device.js';
import {
  borrowBuffers,
  DIRECT_ALIGN,
  directAligned,
  IO_BUFFER,
  openDirect,
  returnBuffers,
} from './direct-io.js';
import { hashDevice, ReadBehind } from './read-back.js';

/** One artifact of a release and the slot partition it goes into. */
export interface ArtifactTarget {
  url: string;
  size: number;
  /** Hex SHA-256 of the whole artifact. */
  sha256: string;
  /** Slot partition path: a block device on the appliance, a fixed-size regular file in the simulator. */
  device: string;
}

export interface WriteOptions {
  /** Devices of the booted slot: refused (SLOT_ACTIVE) before anything is opened. */
  activeDevices: readonly string[];
  /** Bytes already durably written (from the persisted journal). */
  resumeOffset?: number;
  /**
   * Least distance between checkpoints: once this many more bytes are written, the device is
   * fsynced and then onCheckpoint(offset) called, in the background. Default 8 MiB.
   */
  checkpointBytes?: number;
  /**
   * And least time between the starts of two checkpoints, by `now` (default 0: by bytes alone).
   * Each checkpoint is an fsync of the slot and an atomic journal write (three more fsyncs); at
   * hundreds of MB/s, one every 8 MiB makes the download wait on the disk's flushes — and on every
   * other file's dirty data — dozens of times a second, for a resume point that a second of
   * download would redo anyway.
   */
  checkpointIntervalMs?: number;
  now?: () => number;
  /**
   * Persists a durable offset. Called one at a time with increasing offsets (0 when the bytes on the
   * device proved wrong), each only after every byte below it was written and then fsynced; the full
   * size once the digest matched (or when an interrupted download had written every byte: a resume
   * re-hashes the slot then). Writing goes on while it runs; a rejection fails the download.
   */
  onCheckpoint?: (offset: number) => Promise<void>;
  /** Bytes of this artifact written so far, including a resumed prefix. */
  onProgress?: (written: number) => void;
  signal?: AbortSignal;
  /**
   * Where the artifact's SHA-256 is checked. `stream` (the default): on the bytes as they arrive —
   * HASH_MISMATCH names the server — and a resume first re-hashes what the slot holds.
   * `read-back`: on the bytes the device holds, read back behind the write (ReadBehind) while the
   * download goes on, so every byte is hashed once, from the medium, and the check ends moments
   * after the last write; the result's `readBack` says whether they matched — a mismatch is left to
   * the caller, who reads the slot back once more to say why (the agent's verify phase). Either
   * way an artifact the journal says is complete (`resumeOffset` = size) is re-hashed from the
   * device to know whether to download it at all.
   */
  digestCheck?: 'stream' | 'read-back';
}

const MIB = 1024 * 1024;

const DEFAULT_CHECKPOINT_BYTES = 8 * MIB;

/**
 * Bytes of each of the two write buffers (borrowBuffers): IO_BUFFER, or less for closer
 * checkpoints, always whole O_DIRECT blocks. One is written while the other fills from the
 * network, so the receive + hash and the disk overlap; the write path holds no more whatever the
 * artifact's size.
 */
const writeBufferSize = (checkpointBytes: number) =>
  Math.max(DIRECT_ALIGN, Math.floor(Math.min(IO_BUFFER, checkpointBytes) / DIRECT_ALIGN) * DIRECT_ALIGN);

/** What writeArtifact did. */
export interface WriteResult {
  downloadedBytes: number;
  /**
   * Whether every byte of the artifact was read back from the device (O_DIRECT where it can be)
   * and their SHA-256 matched: with `digestCheck: 'read-back'`, or an artifact found complete.
   */
  readBack: boolean;
}

/**
 * Streams an artifact into a slot device: response body → SHA-256 in flight (or read back behind
 * the write: `digestCheck`) → positional writes from offset 0, through a small ring of
 * reused buffers with one write in flight while the next buffer fills, and back-pressure (the
 * response is not read while every buffer waits for the disk), so memory does not grow with the
 * artifact. Whole aligned buffers go to the device with O_DIRECT where it allows (direct-io.ts),
 * the rest through the page cache. The device is opened `r+` (never created, never truncated): the
 * same code writes a block device on the appliance and a fixed-size file in the simulator.
 *
 * Resume: the first `resumeOffset` bytes are re-hashed from the device (before the download when
 * checked in flight, during it when read back) and only the rest is asked for (Range); a server
 * that ignores Range restarts the write from 0. At least `checkpointBytes` apart, a background
 * checkpoint fsyncs the device and then has `onCheckpoint` persist the offset (persist before
 * acting: the journal never claims bytes that are not durable). An interrupted download (transient
 * error, abort) records what it durably wrote before it fails, and a digest mismatch records 0, so
 * a resume never trusts bad bytes.
 *
 * Fails with SLOT_ACTIVE, NO_SPACE (before writing when the device is too small; or ENOSPC),
 * SIZE_EXCEEDED, ARTIFACT_TRUNCATED, HASH_MISMATCH (when checked in flight), SLOT_WRITE_FAILED
 * (a write, or a read back, failed), the client's network codes, or whatever `onCheckpoint`
 * rejected with.
 */
export async function writeArtifact(
  http: HttpClient,
  target: ArtifactTarget,
  opts: WriteOptions,
): Promise<WriteResult> {
  const { url, size, device } = target;
  const expected = target.sha256.toLowerCase();
  const signal = opts.signal;
  const checkpointBytes = Math.max(1, opts.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES);
  const onCheckpoint = opts.onCheckpoint ?? (async () => undefined);

  await checkSlotTarget(target, opts.activeDevices);

  const handle = await openDevice(device, 'r+');
  const direct = await openDirect(device);
  const buffers = borrowBuffers();
  /** Reading back behind the write (`read-back`); one a restarted write left behind, stopping. */
  let behind: ReadBehind | undefined;
  const retired: Promise<void>[] = [];
  try {
    let resume = Math.min(Math.max(0, Math.floor(opts.resumeOffset ?? 0)), size);
    let hash = createHash('sha256');
    const inFlight = opts.digestCheck !== 'read-back';
    if (resume === size || (resume > 0 && inFlight)) {
      await hashDevice({ handle, direct }, buffers, device, resume, hash, { signal });
      if (resume === size) {
        if (hash.digest('hex') === expected) {
          opts.onProgress?.(size);
          return { downloadedBytes: 0, readBack: true };
        }
        // The journal says "all written" but the bytes disagree: start over rather than trust them.
        await onCheckpoint(0);
        resume = 0;
        hash = createHash('sha256');
      }
    }
    signal?.throwIfAborted();

    let downloadedBytes = 0;
    // A failed background write or checkpoint stops the download at once, not at the next piece.
    const stop = new AbortController();
    let writer: SlotWriter | undefined;
    const startWriter = (start: number): SlotWriter => {
      if (start !== resume) hash = createHash('sha256');
      if (!inFlight) {
        // A server that ignored Range rewrites the prefix: what was read of it counts no more.
        if (behind) retired.push(behind.stop());
        behind = new ReadBehind({ handle, direct, device, size, start, onFailure: (e) => stop.abort(e) });
      }
      const read = behind;
      writer = new SlotWriter({
        handle,
        direct,
        buffers: buffers.map((b) => b.subarray(0, writeBufferSize(checkpointBytes))),
        device,
        start,
        size,
        checkpointBytes,
        checkpointIntervalMs: opts.checkpointIntervalMs ?? 0,
        now: opts.now ?? Date.now,
        onCheckpoint,
        onProgress: (written) => {
          read?.advance(written);
          opts.onProgress?.(written);
        },
        onFailure: (e) => stop.abort(e),
      });
      return writer;
    };
    try {
      await http.receive(
        url,
        {
          offset: resume,
          expectedSize: size,
          signal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal,
        },
        startWriter,
        {
          data: (chunk) => {
            const w = writer as SlotWriter;
            if (w.position + chunk.length > size) {
              throw new ClgwError(
                'SIZE_EXCEEDED',
                `${url} sent more than the ${size} bytes expected; nothing past ${size} was written to ${device}`,
                { details: { url, device, size } },
              );
            }
            if (inFlight) hash.update(chunk);
            downloadedBytes += chunk.length;
            return w.add(chunk);
          },
        },
      );
      // receive() names the start before it resolves, even with nothing left to fetch.
      writer ??= startWriter(size);
      if (writer.position < size) {
        throw new ClgwError(
          'ARTIFACT_TRUNCATED',
          `download of ${url} ended after ${writer.position} of ${size} bytes`,
          { transient: true, details: { url, device, received: writer.position, expected: size } },
        );
      }
      await writer.finish();
    } catch (caught) {
      if (!writer) throw caught;
      // A failed background write, checkpoint or read back is the cause, not the abort it provoked.
      const e = writer.failed ? writer.failure : behind?.failed ? behind.failure : caught;
      const interrupted = !writer.failed && (signal?.aborted || (e instanceof ClgwError && e.transient));
      // Either way nothing may still run on the handle once it is closed.
      const w = writer;
      if (interrupted) await keepProgress(e, () => w.record());
      else await w.settle();
      throw e;
    }

    await writer.sync();
    opts.onProgress?.(size);
    const actual = inFlight && hash.digest('hex');
    if (actual && actual !== expected) {
      await onCheckpoint(0);
      throw new ClgwError(
        'HASH_MISMATCH',
        `SHA-256 of ${url} is ${actual}, expected ${expected} (written to ${device}; it will be downloaded again)`,
        { details: { url, device, expected, actual } },
      );
    }
    const readBack = behind ? await behind.finish(expected) : false;
    if (writer.durable < size) await onCheckpoint(size);
    return { downloadedBytes, readBack };
  } finally {
    // Every path here has waited for its writes, and waits here for its reads: nothing still uses
    // the buffers or the handles.
    if (behind) retired.push(behind.stop());
    await Promise.all(retired);
    returnBuffers(buffers);
    await direct?.close();
    await handle.close();
  }
}

interface SlotWriterOptions {
  handle: fs.FileHandle;
  /** The same device opened with O_DIRECT, for aligned writes (absent where it cannot be). */
  direct: fs.FileHandle | undefined;
  /** Two aligned buffers of the same size, a multiple of DIRECT_ALIGN. */
  buffers: Buffer[];
  device: string;
  /** Offset of the first byte. */
  start: number;
  /** The artifact's size: background checkpoints stay below it (the whole is claimed once verified). */
  size: number;
  checkpointBytes: number;
  checkpointIntervalMs: number;
  now: () => number;
  onCheckpoint: (offset: number) => Promise<void>;
  onProgress: ((written: number) => void) | undefined;
  /** Told once, of the first background write, fsync or onCheckpoint that failed. */
  onFailure: (e: unknown) => void;
}

/**
 * Writes chunks at increasing offsets through a ring of reused buffers: while one buffer is being
 * written the next fills, and a caller finding every buffer busy waits (back-pressure). Buffers
 * end at multiples of their size on the device (the first one after an unaligned resume is
 * shorter), so every write but the first and the last is an aligned O_DIRECT one. Writes run
 * one after another in offset order, so "every byte below `written` is written" holds at any
 * moment; from it, checkpoints (fsync, then onCheckpoint) run in the background, one at a time,
 * a checkpoint due while one runs being folded into the next.
 */
class SlotWriter {
  /** Bytes accepted (buffered or written): where the next chunk lands. */
  position: number;
  /** Every write below this offset has completed. */
  written: number;
  /** The last offset onCheckpoint persisted (at first: where writing started). */
  durable: number;
  /** Whether a background write, fsync or onCheckpoint failed; `failure` is what it threw. */
  failed = false;
  failure: unknown;
  private readonly buffers: Buffer[];
  private readonly bufferSize: number;
  /** Each buffer's last write: the buffer may be refilled once it settled… */
  private readonly busy: Promise<void>[];
  /** …which it has when this is false. */
  private readonly writing: boolean[];
  private index = 0;
  private used = 0;
  /** Bytes the buffer being filled takes: up to the next multiple of bufferSize on the device. */
  private capacity: number;
  /** Cleared when the device refuses an O_DIRECT write after all: the rest goes buffered. */
  private direct: fs.FileHandle | undefined;
  /** The last write queued; each write starts when the one before it completed. */
  private tail: Promise<void> = Promise.resolve();
  private checkpointing: Promise<void> | undefined;
  /** Offset of the last checkpoint started, and when it started. */
  private checkpointed: number;
  private checkpointedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly o: SlotWriterOptions) {
    this.position = o.start;
    this.written = o.start;
    this.durable = o.start;
    this.checkpointed = o.start;
    this.direct = o.direct;
    this.bufferSize = (o.buffers[0] as Buffer).length;
    this.capacity = this.bufferSize - (o.start % this.bufferSize);
    this.buffers = o.buffers;
    this.busy = this.buffers.map(() => Promise.resolve());
    this.writing = this.buffers.map(() => false);
  }

  /**
   * Copies a chunk into the buffers, queueing a write for every buffer it fills. Returns a promise
   * only when it has to wait for a buffer still on its way to the disk (back-pressure): the common
   * case costs the download no await, ~32,000 of them per 512 MiB of 16 KiB TLS records. The
   * caller may reuse `chunk` once this returns.
   */
  add(chunk: Buffer): Promise<void> | undefined {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.used === 0 && this.writing[this.index]) {
        // A copy: the chunk is only valid during this call (the client reuses its read buffer).
        const rest = Buffer.from(chunk.subarray(offset));
        return (this.busy[this.index] as Promise<void>).then(() => this.add(rest));
      }
      if (this.failed) throw this.failure;
      const buffer = this.buffers[this.index] as Buffer;
      const n = chunk.copy(
        buffer,
        this.used,
        offset,
        Math.min(chunk.length, offset + this.capacity - this.used),
      );
      this.used += n;
      offset += n;
      this.position += n;
      if (this.used === this.capacity) this.submit();
    }
    return undefined;
  }

  /** Writes what is buffered and waits for every write and checkpoint; throws the first failure. */
  async finish(): Promise<void> {
    if (this.used > 0 && !this.failed) this.submit();
    await this.settle();
    if (this.failed) throw this.failure;
  }

  /** Waits until no write or checkpoint runs any more; failures stay in `failure`. */
  async settle(): Promise<void> {
    await this.tail.catch(() => undefined);
    while (this.checkpointing) await this.checkpointing;
  }

  /** After an interruption: writes what is buffered, then persists what is durably written. */
  async record(): Promise<void> {
    await this.finish();
    if (this.written > this.durable) await this.checkpoint(this.written);
  }

  async sync(): Promise<void> {
    try {
      await this.o.handle.sync();
    } catch (e) {
      throw writeFailure(e, this.o.device, this.written);
    }
  }

  private submit(): void {
    const buffer = this.buffers[this.index] as Buffer;
    const length = this.used;
    const at = this.position - length;
    const write = this.tail.then(() => this.writeAt(buffer, length, at));
    // Registered before anyone awaits `write`, so `failed` is set by the time they see the error.
    write.catch((e: unknown) => this.fail(e));
    const index = this.index;
    const settled = () => {
      this.writing[index] = false;
    };
    write.then(settled, settled);
    this.tail = write;
    this.busy[index] = write;
    this.writing[index] = true;
    this.index = (this.index + 1) % this.buffers.length;
    this.used = 0;
    this.capacity = this.bufferSize;
  }

  private async writeAt(buffer: Buffer, length: number, at: number): Promise<void> {
    // After a failed checkpoint nothing more is written (the rejection also skips later writes).
    if (this.failed) throw this.failure;
    let done = 0;
    while (done < length) {
      const direct = directAligned(at + done, length - done) ? this.direct : undefined;
      try {
        const { bytesWritten } = await (direct ?? this.o.handle).write(
          buffer,
          done,
          length - done,
          at + done,
        );
        done += bytesWritten;
      } catch (e) {
        // EINVAL from an O_DIRECT write: the device's blocks are larger than DIRECT_ALIGN, or the
        // buffers are not aligned after all (no WebAssembly): the rest goes through the page cache.
        if (direct && (e as NodeJS.ErrnoException).code === 'EINVAL') {
          this.direct = undefined;
          continue;
        }
        throw writeFailure(e, this.o.device, at + done);
      }
    }
    this.written = at + length;
    this.o.onProgress?.(this.written);
    this.maybeCheckpoint();
  }

  /**
   * Starts a checkpoint at `written` when one is due and none runs. One that comes due meanwhile
   * is started when the running one ends, at the `written` of that moment (coalesced).
   */
  private maybeCheckpoint(): void {
    const offset = this.written;
    if (this.checkpointing !== undefined || this.failed) return;
    if (offset >= this.o.size || offset - this.checkpointed < this.o.checkpointBytes) return;
    const now = this.o.now();
    if (now - this.checkpointedAt < this.o.checkpointIntervalMs) return;
    this.checkpointed = offset;
    this.checkpointedAt = now;
    this.checkpointing = this.checkpoint(offset).then(
      () => {
        this.checkpointing = undefined;
        this.maybeCheckpoint();
      },
      (e: unknown) => {
        this.checkpointing = undefined;
        this.fail(e);
      },
    );
  }

  /**
   * Persist before acting: called when every write below `offset` has completed, so the fsync it
   * starts covers them all, and the offset is persisted only after that fsync returned.
   */
  private async checkpoint(offset: number): Promise<void> {
    await this.sync();
    await this.o.onCheckpoint(offset);
    this.durable = offset;
  }

  private fail(e: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.failure = e;
    this.o.onFailure(e);
  }
}

/** Runs the "record what was durably written" step of a failed download without hiding the failure. */
export async function keepProgress(original: unknown, record: () => Promise<void>): Promise<void> {
  try {
    await record();
  } catch (e) {
    const why = original instanceof Error ? original.message : String(original);
    const code = e instanceof ClgwError ? e.code : 'SLOT_WRITE_FAILED';
    const message = e instanceof Error ? e.message : String(e);
    throw new ClgwError(code, `${message} (while recording progress after: ${why})`, {
      cause: original,
      details: e instanceof ClgwError ? e.details : {},
    });
  }
}
