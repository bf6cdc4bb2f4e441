import { createHash, type Hash } from 'node:crypto';
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '../errors.js';
import { execFile } from '../platform/exec.js';
import type { HttpClient } from '../platform/http.js';

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
  /** Every this many bytes: fsync the device, then await onCheckpoint(offset). Default 8 MiB. */
  checkpointBytes?: number;
  /** Persist the durable offset; the download goes on only after it resolves (persist before acting). */
  onCheckpoint?: (offset: number) => Promise<void>;
  /** Bytes of this artifact written so far, including a resumed prefix. */
  onProgress?: (written: number) => void;
  signal?: AbortSignal;
}

const MIB = 1024 * 1024;
const DEFAULT_CHECKPOINT_BYTES = 8 * MIB;
const IO_CHUNK = MIB;

/**
 * Streams an artifact into a slot device: response body → SHA-256 in flight → positional writes
 * from offset 0, with back-pressure and a fixed-size write buffer, so memory does not grow with the
 * artifact. The device is opened `r+` (never created, never truncated): the same code writes a
 * block device on the appliance and a fixed-size file in the simulator.
 *
 * Resume: the first `resumeOffset` bytes are re-hashed from the device and only the rest is asked
 * for (Range); a server that ignores Range restarts the write from 0. Every `checkpointBytes` the
 * device is fsynced and `onCheckpoint` persists the offset before more is written; an interrupted
 * download (transient error, abort) records what it durably wrote before it fails, and a digest
 * mismatch records 0, so a resume never trusts bad bytes.
 *
 * Fails with SLOT_ACTIVE, NO_SPACE (before writing when the device is too small; or ENOSPC),
 * SIZE_EXCEEDED, ARTIFACT_TRUNCATED, HASH_MISMATCH, SLOT_WRITE_FAILED or the client's network codes.
 */
export async function writeArtifact(
  http: HttpClient,
  target: ArtifactTarget,
  opts: WriteOptions,
): Promise<{ downloadedBytes: number }> {
  const { url, size, device } = target;
  const expected = target.sha256.toLowerCase();
  const signal = opts.signal;
  const checkpointBytes = Math.max(1, opts.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES);
  const onCheckpoint = opts.onCheckpoint ?? (async () => undefined);

  await refuseActiveDevice(device, opts.activeDevices);
  const capacity = await deviceCapacity(device);
  if (capacity < size) {
    throw new ClgwError(
      'NO_SPACE',
      `artifact ${url} (${size} bytes) does not fit slot device ${device} (${capacity} bytes)`,
      { details: { device, url, size, capacity } },
    );
  }

  const handle = await openDevice(device, 'r+');
  try {
    let resume = Math.min(Math.max(0, Math.floor(opts.resumeOffset ?? 0)), size);
    let hash = createHash('sha256');
    if (resume > 0) {
      await hashDevice(handle, device, resume, hash, signal);
      if (resume === size) {
        if (hash.digest('hex') === expected) {
          opts.onProgress?.(size);
          return { downloadedBytes: 0 };
        }
        // The journal says "all written" but the bytes disagree: start over rather than trust them.
        await onCheckpoint(0);
        resume = 0;
        hash = createHash('sha256');
      }
    }
    signal?.throwIfAborted();

    const { stream, start } = await http.openStream(url, {
      offset: resume,
      expectedSize: size,
      ...(signal ? { signal } : {}),
    });
    if (start !== resume) hash = createHash('sha256');
    let lastCheckpoint = start;
    let downloadedBytes = 0;
    const checkpoint = async (offset: number) => {
      await writer.sync();
      await onCheckpoint(offset);
      lastCheckpoint = offset;
    };
    const writer = new PositionalWriter(
      handle,
      device,
      start,
      Math.min(IO_CHUNK, checkpointBytes),
      async () => {
        opts.onProgress?.(writer.flushed);
        if (writer.flushed - lastCheckpoint >= checkpointBytes) await checkpoint(writer.flushed);
      },
    );

    try {
      for await (const data of stream) {
        const chunk = data as Buffer;
        if (writer.position + chunk.length > size) {
          throw new ClgwError(
            'SIZE_EXCEEDED',
            `${url} sent more than the ${size} bytes expected; nothing past ${size} was written to ${device}`,
            { details: { url, device, size } },
          );
        }
        hash.update(chunk);
        downloadedBytes += chunk.length;
        await writer.add(chunk);
      }
      if (writer.position < size) {
        throw new ClgwError(
          'ARTIFACT_TRUNCATED',
          `download of ${url} ended after ${writer.position} of ${size} bytes`,
          { transient: true, details: { url, device, received: writer.position, expected: size } },
        );
      }
    } catch (e) {
      stream.destroy();
      const interrupted = signal?.aborted || (e instanceof ClgwError && e.transient);
      if (interrupted)
        await keepProgress(e, async () => {
          await writer.flush();
          if (writer.flushed > lastCheckpoint) await checkpoint(writer.flushed);
        });
      throw e;
    }

    await writer.flush();
    await writer.sync();
    opts.onProgress?.(size);
    const actual = hash.digest('hex');
    if (actual !== expected) {
      await onCheckpoint(0);
      throw new ClgwError(
        'HASH_MISMATCH',
        `SHA-256 of ${url} is ${actual}, expected ${expected} (written to ${device}; it will be downloaded again)`,
        { details: { url, device, expected, actual } },
      );
    }
    if (lastCheckpoint < size) await onCheckpoint(size);
    return { downloadedBytes };
  } finally {
    await handle.close();
  }
}

/**
 * Reads back exactly `size` bytes of a slot device and compares their SHA-256; READBACK_MISMATCH
 * names the device, both digests, or how short the device was.
 */
export async function verifyArtifactOnDevice(
  device: string,
  size: number,
  sha256: string,
  signal?: AbortSignal,
): Promise<void> {
  const handle = await openDevice(device, 'r');
  try {
    const hash = createHash('sha256');
    const read = await hashDevice(handle, device, size, hash, signal, false);
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
    await handle.close();
  }
}

/**
 * Size of a slot device in bytes: a regular file's size, or a block device's from
 * `/sys/class/block/<name>/size` × 512 (symlinks such as /dev/disk/by-partlabel/* resolved),
 * falling back to `blockdev --getsize64`.
 */
export async function deviceCapacity(device: string): Promise<number> {
  const st = await statDevice(device);
  if (st.isFile()) return st.size;
  if (!st.isBlockDevice()) {
    throw new ClgwError(
      'SLOT_WRITE_FAILED',
      `slot device ${device} is neither a block device nor a regular file`,
      {
        details: { device },
      },
    );
  }
  const real = await fs.realpath(device);
  try {
    const sectors = (await fs.readFile(`/sys/class/block/${path.basename(real)}/size`, 'utf8')).trim();
    if (/^\d+$/.test(sectors)) return Number(sectors) * 512;
  } catch {
    // No sysfs entry (e.g. a container without /sys): ask the kernel through blockdev below.
  }
  const { stdout } = await execFile('blockdev', ['--getsize64', real]);
  const bytes = stdout.trim();
  if (!/^\d+$/.test(bytes)) {
    throw new ClgwError('SLOT_WRITE_FAILED', `blockdev --getsize64 ${real} printed "${bytes}", not a size`, {
      details: { device, real },
    });
  }
  return Number(bytes);
}

/** Writes whole chunks at increasing offsets through one reused buffer, so memory stays fixed. */
class PositionalWriter {
  /** Bytes accepted (buffered or written) — where the next chunk lands. */
  position: number;
  /** Bytes handed to the device. */
  flushed: number;
  private readonly buffer: Buffer;
  private used = 0;

  constructor(
    private readonly handle: fs.FileHandle,
    private readonly device: string,
    start: number,
    bufferSize: number,
    /** Runs after each full buffer reached the device (progress, checkpoints). */
    private readonly afterFlush: () => Promise<void>,
  ) {
    this.position = start;
    this.flushed = start;
    this.buffer = Buffer.allocUnsafe(bufferSize);
  }

  /** Buffers a chunk, writing out (and running afterFlush for) every buffer it fills. */
  async add(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const n = chunk.copy(this.buffer, this.used, offset);
      this.used += n;
      offset += n;
      this.position += n;
      if (this.used === this.buffer.length) {
        await this.flush();
        await this.afterFlush();
      }
    }
  }

  async flush(): Promise<void> {
    let done = 0;
    while (done < this.used) {
      try {
        const { bytesWritten } = await this.handle.write(this.buffer, done, this.used - done, this.flushed);
        done += bytesWritten;
        this.flushed += bytesWritten;
      } catch (e) {
        throw writeFailure(e, this.device, this.flushed);
      }
    }
    this.used = 0;
  }

  async sync(): Promise<void> {
    try {
      await this.handle.sync();
    } catch (e) {
      throw writeFailure(e, this.device, this.flushed);
    }
  }
}

/** Runs the "record what was durably written" step of a failed download without hiding the failure. */
async function keepProgress(original: unknown, record: () => Promise<void>): Promise<void> {
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

function writeFailure(e: unknown, device: string, offset: number): ClgwError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOSPC' || err.code === 'EFBIG') {
    return new ClgwError('NO_SPACE', `slot device ${device} is full at offset ${offset}: ${err.message}`, {
      cause: e,
      details: { device, offset, errno: err.code },
    });
  }
  return new ClgwError(
    'SLOT_WRITE_FAILED',
    `cannot write slot device ${device} at offset ${offset}: ${err.message}`,
    {
      cause: e,
      details: { device, offset, errno: err.code },
    },
  );
}

async function statDevice(device: string): Promise<Stats> {
  try {
    return await fs.stat(device);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ClgwError('SLOT_WRITE_FAILED', `slot device ${device} is not usable: ${err.message}`, {
      cause: e,
      details: { device, errno: err.code },
    });
  }
}

async function openDevice(device: string, flags: 'r' | 'r+'): Promise<fs.FileHandle> {
  try {
    return await fs.open(device, flags);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ClgwError(
      'SLOT_WRITE_FAILED',
      `cannot open slot device ${device} for ${flags === 'r' ? 'reading' : 'writing'}: ${err.message}`,
      { cause: e, details: { device, errno: err.code } },
    );
  }
}

/**
 * Feeds the first `length` bytes of a device to `hash`; returns how many were read (fewer only at
 * end of device). With `exact`, a short device is an error.
 */
async function hashDevice(
  handle: fs.FileHandle,
  device: string,
  length: number,
  hash: Hash,
  signal?: AbortSignal,
  exact = true,
): Promise<number> {
  const buffer = Buffer.allocUnsafe(Math.min(IO_CHUNK, Math.max(1, length)));
  let offset = 0;
  while (offset < length) {
    signal?.throwIfAborted();
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, length - offset), offset));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new ClgwError(
        'SLOT_WRITE_FAILED',
        `cannot read slot device ${device} at offset ${offset}: ${err.message}`,
        {
          cause: e,
          details: { device, offset, errno: err.code },
        },
      );
    }
    if (bytesRead === 0) {
      if (!exact) return offset;
      throw new ClgwError(
        'SLOT_WRITE_FAILED',
        `slot device ${device} ends at ${offset} bytes, before the ${length} bytes already written`,
        { details: { device, offset, length } },
      );
    }
    hash.update(buffer.subarray(0, bytesRead));
    offset += bytesRead;
  }
  return offset;
}

/**
 * SLOT_ACTIVE when `device` is one of the booted slot's devices — by name, by resolved path (e.g.
 * through /dev/disk/by-partlabel links), or by identity (block device number, or inode).
 */
async function refuseActiveDevice(device: string, active: readonly string[]): Promise<void> {
  const mine = await identify(device);
  for (const other of active) {
    const theirs = await identify(other).catch(() => undefined);
    const same =
      other === device ||
      (theirs !== undefined &&
        (theirs.real === mine?.real ||
          (mine !== undefined &&
            (mine.block
              ? theirs.block && theirs.rdev === mine.rdev
              : theirs.dev === mine.dev && theirs.ino === mine.ino))));
    if (same) {
      throw new ClgwError(
        'SLOT_ACTIVE',
        `refusing to write ${device}: it is ${other === device ? '' : `the same device as ${other}, `}part of the booted slot`,
        { details: { device, active: [...active] } },
      );
    }
  }
}

/** What makes two paths the same device. */
async function identify(
  device: string,
): Promise<{ real: string; block: boolean; rdev: number; dev: number; ino: number } | undefined> {
  try {
    const st = await fs.stat(device);
    return {
      real: await fs.realpath(device),
      block: st.isBlockDevice(),
      rdev: st.rdev,
      dev: st.dev,
      ino: st.ino,
    };
  } catch {
    return undefined;
  }
}
