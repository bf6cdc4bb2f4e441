import crypto, { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { ClgwError } from '../errors.js';
import { CHUNK_HASH_BYTES } from '../release/chunk-index.js';

/**
 * SHA-256 of one chunk as a 'binary' (latin1) string, one character per byte, for where digests
 * are made by the hundred thousand (hashing a slot) and dropped at once. `crypto.hash` (Node ≥
 * 20.12) does it in one call, without a Hash object whose native state waits for the garbage
 * collector. A string lives in the JavaScript heap and goes with the next young-generation
 * collection; a Buffer is an ArrayBuffer outside it besides (2.4 MiB of them pending at the peak
 * of an adaptive update, measured with heaptrack).
 */
export function chunkDigest(data: Uint8Array): string {
  return typeof crypto.hash === 'function'
    ? crypto.hash('sha256', data, 'binary')
    : createHash('sha256').update(data).digest('binary');
}

/** Whether a chunkDigest begins with the CHUNK_HASH_BYTES at `entries[at…]` (see chunk-index.ts). */
export function digestIs(digest: string, entries: Uint8Array, at: number): boolean {
  for (let k = 0; k < CHUNK_HASH_BYTES; k++) if (digest.charCodeAt(k) !== entries[at + k]) return false;
  return true;
}

/** Whether `data` has the digest at `entries[at…at + CHUNK_HASH_BYTES)`. */
export function digestMatches(data: Uint8Array, entries: Uint8Array, at: number): boolean {
  return digestIs(chunkDigest(data), entries, at);
}

/**
 * Cuts a byte stream into fixed-size chunks and hashes each (SHA-256), whatever the sizes of the
 * pieces it is fed: the chunk index of an artifact (publisher) or of a slot (appliance).
 */
export class ChunkHasher {
  private hash: Hash = createHash('sha256');
  private filled = 0;
  private index = 0;

  constructor(
    private readonly chunkSize: number,
    private readonly onChunk: (digest: string, chunk: number) => void,
  ) {}

  update(data: Buffer): void {
    let at = 0;
    // Whole chunks at once when the data is aligned (reads of a slot are).
    const cs = this.chunkSize;
    let digest = '';
    while (this.filled === 0 && data.length - at >= cs) {
      const chunk = data.subarray(at, at + cs);
      // A slot's free space is runs of identical (zero) blocks: comparing with the chunk before
      // costs a tenth of hashing it again.
      if (at === 0 || !chunk.equals(data.subarray(at - cs, at))) digest = chunkDigest(chunk);
      this.onChunk(digest, this.index++);
      at += cs;
    }
    while (at < data.length) {
      const n = Math.min(this.chunkSize - this.filled, data.length - at);
      this.hash.update(data.subarray(at, at + n));
      this.filled += n;
      at += n;
      if (this.filled === this.chunkSize) this.emit();
    }
  }

  /** Emits the short last chunk, if any. */
  end(): void {
    if (this.filled > 0) this.emit();
  }

  private emit(): void {
    this.onChunk(this.hash.digest('binary'), this.index++);
    this.hash = createHash('sha256');
    this.filled = 0;
  }
}

const READ_BYTES = 1024 * 1024;

/**
 * Hashes bytes [from, from + length) of an open slot device chunk by chunk (`from` on a chunk
 * boundary); `onChunk` gets each digest and the chunk's number in the device. Reads up to 1 MiB at
 * a time into `buffer` (one of its own when none is given). A device shorter than that range fails
 * with SLOT_WRITE_FAILED.
 */
export async function hashDeviceChunks(
  handle: FileHandle,
  device: string,
  range: { from: number; length: number; chunkSize: number; buffer?: Buffer },
  onChunk: (digest: string, chunk: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  const first = range.from / range.chunkSize;
  const hasher = new ChunkHasher(range.chunkSize, (digest, i) => onChunk(digest, first + i));
  const buffer = range.buffer ?? Buffer.allocUnsafe(READ_BYTES);
  const end = range.from + range.length;
  for (let at = range.from; at < end; ) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle
      .read(buffer, 0, Math.min(buffer.length, end - at), at)
      .catch((e: NodeJS.ErrnoException) => {
        throw new ClgwError('SLOT_WRITE_FAILED', `cannot read ${device} at offset ${at}: ${e.message}`, {
          cause: e,
          details: { device, offset: at, errno: e.code },
        });
      });
    if (bytesRead === 0)
      throw new ClgwError('SLOT_WRITE_FAILED', `${device} ends at offset ${at}, before ${end}`, {
        details: { device, offset: at, length: end },
      });
    hasher.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  hasher.end();
}
