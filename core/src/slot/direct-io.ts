import { constants, promises as fs } from 'node:fs';

/**
 * Writing a slot past the page cache (O_DIRECT).
 *
 * A slot is written once and not read again until the read-back, so passing its bytes through
 * the page cache only costs: every page is allocated, copied into, later written back and then
 * evicts something the appliance was using (700 MB through a 256 MiB-budget box). With O_DIRECT the
 * device reads the bytes straight from our write buffers: on the 2-vCPU development VM a
 * download into the slot ran at 1.5× the rate of the buffered path, whose page faults on fresh
 * memory competed with TLS for the CPU. The kernel requires the buffer's address, the offset and
 * the length to be multiples of the device's logical block size; DIRECT_ALIGN (4 KiB) covers
 * 512-byte and 4 KiB devices. Whatever cannot be written that way (an unaligned head after a
 * resume, the artifact's last partial block, a filesystem or device that refuses O_DIRECT) goes
 * through an ordinary descriptor of the same device: both reach the same inode, so one fsync
 * makes either durable.
 */
export const DIRECT_ALIGN = 4096;

/** Whether `offset` and `length` suit an O_DIRECT transfer. */
export const directAligned = (offset: number, length: number) =>
  offset % DIRECT_ALIGN === 0 && length % DIRECT_ALIGN === 0 && length > 0;

/** `n` rounded up to whole O_DIRECT blocks. */
export const roundUpToBlock = (n: number) => Math.ceil(n / DIRECT_ALIGN) * DIRECT_ALIGN;

/**
 * Opens a slot device with O_DIRECT, for writing (`r+`) or reading; undefined when it cannot be
 * (tmpfs and some other filesystems refuse the flag with EINVAL; the caller then uses its
 * ordinary descriptor, whose open reports any real error).
 */
export async function openDirect(
  device: string,
  flags: 'r' | 'r+' = 'r+',
): Promise<fs.FileHandle | undefined> {
  if (constants.O_DIRECT === undefined) return undefined;
  try {
    return await fs.open(
      device,
      (flags === 'r' ? constants.O_RDONLY : constants.O_RDWR) | constants.O_DIRECT,
    );
  } catch {
    return undefined;
  }
}

const WASM_PAGE = 64 * 1024;

/** The one piece of the WebAssembly API used here (the agent's TypeScript libraries omit it). */
type WasmMemory = new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer };

/**
 * `count` buffers of `size` bytes (a multiple of DIRECT_ALIGN) whose addresses are multiples of
 * DIRECT_ALIGN. Node's Buffer allocator promises no alignment (a 1 MiB buffer from malloc sits
 * 16 bytes past a page boundary); a WebAssembly memory is allocated by V8 in whole pages, so its
 * start is page-aligned, and the buffers are consecutive slices of one. Without WebAssembly (node
 * run with --jitless) they are ordinary buffers, which an O_DIRECT write refuses with EINVAL, and
 * the writers fall back to the page cache.
 */
export function alignedBuffers(count: number, size: number): Buffer[] {
  if (size <= 0 || size % DIRECT_ALIGN !== 0)
    throw new RangeError(`aligned buffer size ${size} is not a positive multiple of ${DIRECT_ALIGN}`);
  const Memory = (globalThis as { WebAssembly?: { Memory: WasmMemory } }).WebAssembly?.Memory;
  if (!Memory) return Array.from({ length: count }, () => Buffer.allocUnsafe(size));
  const pages = Math.ceil((count * size) / WASM_PAGE);
  const memory = new Memory({ initial: pages, maximum: pages });
  return Array.from({ length: count }, (_, i) => Buffer.from(memory.buffer, i * size, size));
}

/** Bytes of each buffer in the pair borrowBuffers lends. */
export const IO_BUFFER = 1024 * 1024;

/** Pairs handed back, kept for the next borrower (see borrowBuffers). */
const spares: [Buffer, Buffer][] = [];

/**
 * A pair of aligned IO_BUFFER-byte buffers: one is read or written while the other is filled or
 * hashed. Up to two pairs are kept between uses (the agent writes one artifact at a time, and reads
 * it back behind the write with a second pair; a third user at the same moment gets a pair of its
 * own): a fresh WebAssembly memory per use
 * would stay resident until the next full garbage collection, and the write's and the read-back's
 * pairs side by side were 4 MiB of the agent's peak. Indexing the active slot and an adaptive
 * install's copies read into it too: buffers of their own, then this pair at the read-back, were
 * ~2 MiB of an adaptive update's peak.
 */
export function borrowBuffers(): [Buffer, Buffer] {
  return spares.pop() ?? (alignedBuffers(2, IO_BUFFER) as [Buffer, Buffer]);
}

/** Hands a pair back once no read or write on it can still be running. */
export function returnBuffers(pair: [Buffer, Buffer]): void {
  if (spares.length < 2 && !spares.includes(pair)) spares.push(pair);
}

/**
 * The longest start of `buffer` that holds whole chunks of `chunkSize` bytes, or a buffer of one
 * chunk of its own when a chunk is larger than `buffer`.
 */
export function wholeChunks(buffer: Buffer, chunkSize: number): Buffer {
  if (chunkSize > buffer.length) return Buffer.allocUnsafe(chunkSize);
  return buffer.subarray(0, buffer.length - (buffer.length % chunkSize));
}
