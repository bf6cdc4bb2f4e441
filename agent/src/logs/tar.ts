/**
 * A small ustar writer: regular files and directories only, names up to 255 bytes (ustar's
 * prefix + name), no links, no special files, no setuid bits. Enough for the log archive, whose
 * entries the archive builder chooses itself; written so a file that grows while it is read (a
 * live log) still yields a valid archive: exactly the size in the header is written.
 */
import type { FileHandle } from 'node:fs/promises';

const BLOCK = 512;

export interface TarEntry {
  /** Relative name, `/`-separated, no `..`, no leading `/`. */
  name: string;
  type: 'file' | 'dir';
  /** Permission bits (0o644 / 0o755); setuid, setgid and sticky bits are dropped. */
  mode: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
  /** Bytes of content (0 for a directory). */
  size: number;
}

/** Whether ustar can name this entry (splitting it at a `/` into prefix ≤ 155 and name ≤ 100 bytes). */
export function ustarNameFits(name: string): boolean {
  return splitName(name) !== undefined;
}

function splitName(full: string): { prefix: string; name: string } | undefined {
  const bytes = Buffer.byteLength(full);
  if (bytes <= 100) return { prefix: '', name: full };
  if (bytes > 256) return undefined;
  for (let i = full.lastIndexOf('/'); i > 0; i = full.lastIndexOf('/', i - 1)) {
    const prefix = full.slice(0, i);
    const name = full.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0)
      return { prefix, name };
  }
  return undefined;
}

function octal(buf: Buffer, value: number, offset: number, length: number): void {
  // length - 1 digits and a NUL, as tar(1) writes them.
  const text = Math.max(0, Math.floor(value))
    .toString(8)
    .padStart(length - 1, '0');
  if (text.length > length - 1)
    throw new RangeError(`value ${value} does not fit a ${length}-byte tar field`);
  buf.write(`${text}\0`, offset, length, 'ascii');
}

/** The 512-byte ustar header of one entry. */
export function tarHeader(entry: TarEntry): Buffer {
  const fullName = entry.type === 'dir' && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name;
  const split = splitName(fullName);
  if (!split) throw new RangeError(`tar entry name too long: ${entry.name}`);
  const h = Buffer.alloc(BLOCK);
  h.write(split.name, 0, 100, 'utf8');
  octal(h, entry.mode & 0o777, 100, 8);
  octal(h, 0, 108, 8); // uid
  octal(h, 0, 116, 8); // gid
  octal(h, entry.type === 'dir' ? 0 : entry.size, 124, 12);
  octal(h, entry.mtimeMs / 1000, 136, 12);
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h.write(entry.type === 'dir' ? '5' : '0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  h.write(split.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** Zero bytes that pad `size` bytes of content to a whole block. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** The end of an archive: two zero blocks. */
export const TAR_END = Buffer.alloc(2 * BLOCK);

/**
 * The content of a regular file, exactly `size` bytes: a file that grew since it was measured
 * is cut at `size`; one that shrank is padded with zeros. Yields 64 KiB chunks (bounded memory).
 * Resolves to the bytes actually read from the file.
 */
export async function* fileContent(handle: FileHandle, size: number): AsyncGenerator<Buffer, number> {
  const chunk = 64 * 1024;
  let done = 0;
  let read = 0;
  while (done < size) {
    const want = Math.min(chunk, size - done);
    const buf = Buffer.alloc(want);
    const { bytesRead } = read === done ? await handle.read(buf, 0, want, done) : { bytesRead: 0 };
    read += bytesRead;
    // A shorter read than asked at end of file: the rest stays zero.
    yield buf;
    done += want;
  }
  return read;
}
