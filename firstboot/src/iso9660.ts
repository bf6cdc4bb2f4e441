/**
 * Just enough ISO 9660 (ECMA-119) to find `ovf-env.xml` in the root directory of the CD-ROM a
 * hypervisor attaches for the OVF environment's ISO transport — without mounting anything.
 * The Joliet tree (UCS-2 names, `-J`) is preferred where there is one; otherwise the primary
 * tree's names, where `ovf-env.xml` may appear as the level-1 `OVF_ENV.XML;1`.
 * The disc is untrusted: every record, extent and length is checked against the device size.
 * Pure: no `node:*` imports; the bytes come through {@link BlockReader}.
 */
import { ClgwError } from '@clgw/core/errors.js';

/** A device or file read by offset (a CD-ROM drive, or an ISO file in tests). */
export interface BlockReader {
  /** What errors name: `/dev/sr0`, a file path. */
  name: string;
  /** Bytes the device holds. */
  size: number;
  /** Up to `length` bytes at `offset` (fewer only at the end of the device). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export interface IsoEntry {
  /** The file identifier as recorded (`OVF_ENV.XML;1`, or Joliet's `ovf-env.xml`). */
  name: string;
  directory: boolean;
  /** Recorded in more than one extent (never the case for a small file). */
  multiExtent: boolean;
  /** Byte offset of the content on the device. */
  offset: number;
  size: number;
}

const SECTOR = 2048;
/** Volume descriptors before the terminator: a handful in practice. */
const MAX_DESCRIPTORS = 32;
/** The root directory of an environment CD holds a few entries; this is generous. */
const MAX_DIRECTORY_BYTES = 1024 * 1024;

function isoError(dev: BlockReader, message: string): ClgwError {
  return new ClgwError('ISO_INVALID', `${dev.name}: ${message}`, { details: { device: dev.name } });
}

async function readExact(
  dev: BlockReader,
  offset: number,
  length: number,
  what: string,
): Promise<Uint8Array> {
  if (offset + length > dev.size)
    throw isoError(
      dev,
      `${what} (bytes ${offset}-${offset + length}) lies beyond the end (${dev.size} bytes)`,
    );
  const bytes = await dev.read(offset, length);
  if (bytes.length !== length) throw isoError(dev, `short read of ${what} at byte ${offset}`);
  return bytes;
}

const u16 = (b: Uint8Array, at: number): number => b[at]! | (b[at + 1]! << 8);
const u32 = (b: Uint8Array, at: number): number =>
  (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)) + b[at + 3]! * 2 ** 24;
const ascii = (b: Uint8Array, at: number, length: number): string =>
  String.fromCharCode(...b.subarray(at, at + length));

function ucs2(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i + 1 < b.length; i += 2) s += String.fromCharCode((b[i]! << 8) | b[i + 1]!);
  return s;
}

interface Volume {
  joliet: boolean;
  blockSize: number;
  root: IsoEntry;
}

/** One directory record at `at` in `buf` (its length byte already known to be non-zero). */
function directoryRecord(
  dev: BlockReader,
  buf: Uint8Array,
  at: number,
  volume: Pick<Volume, 'joliet' | 'blockSize'>,
): IsoEntry & { raw: Uint8Array } {
  const length = buf[at]!;
  const idLength = buf[at + 32] ?? 0;
  if (length < 34 || at + length > buf.length || 33 + idLength > length)
    throw isoError(dev, `malformed directory record (length ${length}, identifier length ${idLength})`);
  const raw = buf.subarray(at + 33, at + 33 + idLength);
  const flags = buf[at + 25]!;
  // Content starts after the extended attribute record, if the file has one.
  const offset = (u32(buf, at + 2) + buf[at + 1]!) * volume.blockSize;
  const size = u32(buf, at + 10);
  if (offset + size > dev.size)
    throw isoError(dev, `extent of ${size} bytes at byte ${offset} lies beyond the end (${dev.size} bytes)`);
  return {
    name: volume.joliet ? ucs2(raw) : ascii(raw, 0, raw.length),
    directory: (flags & 0x02) !== 0,
    multiExtent: (flags & 0x80) !== 0,
    offset,
    size,
    raw,
  };
}

/** The primary volume and, where there is one, the Joliet supplementary volume. */
async function volumes(dev: BlockReader): Promise<{ primary: Volume; joliet?: Volume }> {
  let primary: Volume | undefined;
  let joliet: Volume | undefined;
  for (let i = 0; ; i++) {
    if (i === MAX_DESCRIPTORS) throw isoError(dev, `no volume descriptor set terminator in ${i} sectors`);
    const sector = 16 + i;
    const d = await readExact(dev, sector * SECTOR, SECTOR, `volume descriptor at sector ${sector}`);
    if (ascii(d, 1, 5) !== 'CD001')
      throw isoError(dev, `no ISO 9660 volume descriptor at sector ${sector} (no "CD001")`);
    const type = d[0];
    if (type === 255) break;
    // Joliet: a supplementary descriptor whose escape sequence names UCS-2 level 1, 2 or 3.
    const isJoliet = type === 2 && d[88] === 0x25 && d[89] === 0x2f && [0x40, 0x43, 0x45].includes(d[90]!);
    if ((type === 1 && !primary) || (isJoliet && !joliet)) {
      const blockSize = u16(d, 128);
      if (![512, 1024, 2048].includes(blockSize))
        throw isoError(dev, `logical block size ${blockSize} at sector ${sector} is not 512, 1024 or 2048`);
      const volume = { joliet: isJoliet, blockSize };
      const root = directoryRecord(dev, d, 156, volume);
      if (!root.directory)
        throw isoError(dev, `root directory record at sector ${sector} is not a directory`);
      if (isJoliet) joliet = { ...volume, root };
      else primary = { ...volume, root };
    }
  }
  if (!primary) throw isoError(dev, 'no primary volume descriptor');
  return { primary, ...(joliet ? { joliet } : {}) };
}

/** The root directory's entries (without `.` and `..`), from the Joliet tree where there is one. */
export async function isoRootEntries(dev: BlockReader): Promise<{ joliet: boolean; entries: IsoEntry[] }> {
  const { primary, joliet } = await volumes(dev);
  const volume = joliet ?? primary;
  const { root } = volume;
  if (root.size > MAX_DIRECTORY_BYTES)
    throw isoError(dev, `root directory is ${root.size} bytes (at most ${MAX_DIRECTORY_BYTES})`);
  const buf = await readExact(dev, root.offset, root.size, 'root directory');
  const entries: IsoEntry[] = [];
  for (let at = 0; at < buf.length; ) {
    // A zero length byte pads the rest of the sector: records never cross a sector boundary.
    if (buf[at] === 0) {
      at = (Math.floor(at / SECTOR) + 1) * SECTOR;
      continue;
    }
    const { raw, ...entry } = directoryRecord(dev, buf, at, volume);
    at += buf[at]!;
    // The first two records are the directory itself (identifier 0x00) and its parent (0x01).
    if (raw.length === 1 && raw[0]! <= 1) continue;
    entries.push(entry);
  }
  return { joliet: volume.joliet, entries };
}

/**
 * Whether a root-directory name is the OVF environment file: `ovf-env.xml` in any case, without
 * a `;1` version suffix, also as ISO level 1 writes it (`OVF_ENV.XML`).
 */
export function isOvfEnvName(name: string): boolean {
  const plain = name
    .replace(/;[0-9]+$/, '')
    .replace(/\.$/, '')
    .toLowerCase();
  return plain === 'ovf-env.xml' || plain === 'ovf_env.xml';
}

/**
 * The content of `ovf-env.xml` in the root directory; undefined when the disc has none (some
 * other CD). OVF_ENV_INVALID when the file is larger than `maxBytes` or there are two of them.
 */
export async function readOvfEnvFromIso(
  dev: BlockReader,
  maxBytes: number,
): Promise<{ name: string; data: Uint8Array } | undefined> {
  const found = (await isoRootEntries(dev)).entries.filter((e) => !e.directory && isOvfEnvName(e.name));
  if (found.length === 0) return undefined;
  const names = found.map((e) => e.name).join(', ');
  if (found.length > 1)
    throw new ClgwError('OVF_ENV_INVALID', `${dev.name}: more than one OVF environment file (${names})`);
  const file = found[0]!;
  if (file.size > maxBytes)
    throw new ClgwError(
      'OVF_ENV_INVALID',
      `${dev.name}: ${file.name} is ${file.size} bytes (at most ${maxBytes})`,
      { details: { device: dev.name, size: file.size } },
    );
  if (file.multiExtent) throw isoError(dev, `${file.name} is recorded in several extents`);
  return { name: file.name, data: await readExact(dev, file.offset, file.size, file.name) };
}
