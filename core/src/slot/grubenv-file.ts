/**
 * The grubenv file on the ESP (`AppliancePaths.grubenv`): strict read, in-place write.
 *
 * grubenv lives on the ESP, a FAT file system (`/boot/efi/grub/grubenv`, see image/grub/grub.cfg).
 * There a rename is not atomic: vfat rewrites the target's directory entry, frees the old
 * clusters in the FAT and marks the temp file's entry deleted — several unordered sector writes
 * without a journal, so a power cut among them can leave two entries cross-linked to one cluster
 * chain or an entry whose clusters were freed. So the agent writes grubenv the way GRUB's own
 * `save_env` does at every boot: **in place**, over the file's existing sectors, never touching
 * the FAT or the directory (same inode, same clusters, same size; no temp file, no rename).
 *
 * Why a torn in-place write still leaves the old or the new variables, never a mix: a single
 * 512-byte sector write is atomic on the disks we target, and {@link serializeGrubenv} puts the
 * header and every variable line in the block's first sector (`GRUBENV_SECTOR`); the second
 * is `#` padding, the same in every block we write. A cut leaves sector 0 old or new, and either
 * parses to a whole variable set.
 *
 * The file is never created or resized here ({@link writeGrubenv}, like `save_env`, refuses a
 * missing or wrong-size file): the image builder puts it on the ESP, {@link createGrubenv} makes
 * it where something must (the simulator's appliance, test fixtures), and
 * {@link writeOrCreateGrubenv} lets the two last-resort writers (the recovery system, the agent's
 * hand-over to it) replace a missing or wrong-size file.
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '../errors.js';
import { readAtMost, writeFileAtomic } from '../platform/atomic.js';
import { crashpoint } from '../platform/crashpoint.js';
import { GRUBENV_SIZE, grubenvEqual, parseGrubenv, serializeGrubenv } from './grubenv.js';

/**
 * Reads and strictly parses the grubenv file. Throws GRUBENV_INVALID naming the file when it is
 * missing, unreadable, of the wrong size, or torn/garbled (see `parseGrubenv`).
 */
export async function readGrubenv(file: string): Promise<Map<string, string>> {
  let block: Uint8Array;
  try {
    block = await readAtMost(file, GRUBENV_SIZE + 1);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'does not exist' : `cannot be read: ${err.message}`;
    throw new ClgwError('GRUBENV_INVALID', `grubenv ${file} ${why}`, {
      cause: e,
      details: { file, errno: err.code },
    });
  }
  try {
    return parseGrubenv(block, `grubenv ${file}`);
  } catch (e) {
    if (e instanceof ClgwError) {
      throw new ClgwError(e.code, e.message, { cause: e, details: { ...e.details, file } });
    }
    throw e;
  }
}

/** Why {@link writeGrubenvBlock} refused to write: `details.problem` of its GRUBENV_INVALID. */
export type GrubenvWriteProblem = 'missing' | 'size' | 'not-a-file' | 'unopenable';

function notWritable(
  file: string,
  why: string,
  problem: GrubenvWriteProblem,
  details: Record<string, unknown> = {},
  cause?: unknown,
): ClgwError {
  return new ClgwError(
    'GRUBENV_INVALID',
    `grubenv ${file} ${why}; it is written in place and never created or resized here (GRUB's save_env cannot either), not written`,
    { cause, details: { file, problem, ...details } },
  );
}

/**
 * Writes `block` over the existing file in place, as GRUB's `save_env` does: opened without
 * O_CREAT and O_TRUNC, the whole block written at offset 0, fsync, close. No temp file, no rename,
 * no directory change: the file keeps its inode and its clusters on the ESP.
 *
 * Throws GRUBENV_INVALID (`details.problem`, see {@link GrubenvWriteProblem}) naming the file when
 * it does not exist, is not a regular file, or is not exactly `block.length` bytes — nothing is
 * created or written then. The agent's blocks are always {@link GRUBENV_SIZE} bytes; the boot
 * emulator passes whatever GRUB's save_env made of the file, which keeps the file's size. A write
 * or fsync failure is NO_SPACE or INTERNAL naming the file, as for `writeFileAtomic`.
 */
export async function writeGrubenvBlock(file: string, block: Uint8Array): Promise<void> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_WRONLY);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw notWritable(file, 'does not exist', 'missing', { errno: err.code }, e);
    throw notWritable(
      file,
      `cannot be opened for writing: ${err.message}`,
      'unopenable',
      { errno: err.code },
      e,
    );
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw notWritable(file, 'is not a regular file', 'not-a-file');
    if (stat.size !== block.length) {
      const expected =
        block.length === GRUBENV_SIZE
          ? `a GRUB environment block is exactly ${GRUBENV_SIZE}`
          : `the block to write is ${block.length}`;
      throw notWritable(file, `is ${stat.size} bytes, ${expected}`, 'size', {
        size: stat.size,
        expected: block.length,
      });
    }
    let done = 0;
    while (done < block.length) {
      const { bytesWritten } = await handle.write(block, done, block.length - done, done);
      done += bytesWritten;
    }
    crashpoint(`written ${path.basename(file)}`);
    await handle.sync();
    crashpoint(`synced ${path.basename(file)}`);
  } catch (e) {
    if (e instanceof ClgwError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new ClgwError(
      err.code === 'ENOSPC' ? 'NO_SPACE' : 'INTERNAL',
      `cannot write ${file}: ${err.message}`,
      {
        cause: e,
        details: { file },
      },
    );
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Writes the variables as a complete block (insertion order) in place over the existing file
 * ({@link writeGrubenvBlock}): a power cut leaves the old or the new variables, because they all
 * live in the block's first `GRUBENV_SECTOR`-byte sector. GRUBENV_INVALID when a name/value
 * cannot be stored, they do not fit in that sector, or the file is missing or not exactly
 * {@link GRUBENV_SIZE} bytes (never created or repaired here; see {@link createGrubenv}).
 */
export async function writeGrubenv(file: string, vars: ReadonlyMap<string, string>): Promise<void> {
  await writeGrubenvBlock(file, serializeGrubenv(vars));
}

/**
 * Creates the grubenv file (or replaces it whole) with `writeFileAtomic`: temp file, fsync, rename,
 * fsync the directory. Only for making the file where none is relied on yet — the simulator's
 * appliance, test fixtures — since on the ESP's FAT the rename is not atomic; every later write
 * goes through {@link writeGrubenv}. (The image builder stages the file and copies it onto the
 * ESP image.)
 */
export async function createGrubenv(file: string, vars: ReadonlyMap<string, string>): Promise<void> {
  await writeFileAtomic(file, serializeGrubenv(vars));
}

/**
 * {@link writeGrubenv}, or {@link createGrubenv} when the file is missing or of the wrong size —
 * for the last-resort writers that must leave a usable block whatever they find (the recovery
 * system's final write, the agent's hand-over to it). A file in that state is broken already, so
 * the non-atomic rename on FAT cannot make it worse than GRUB finds it. Returns which it did.
 */
export async function writeOrCreateGrubenv(
  file: string,
  vars: ReadonlyMap<string, string>,
): Promise<'written' | 'created'> {
  const block = serializeGrubenv(vars);
  try {
    await writeGrubenvBlock(file, block);
    return 'written';
  } catch (e) {
    const problem = e instanceof ClgwError && e.code === 'GRUBENV_INVALID' ? e.details.problem : undefined;
    if (problem !== 'missing' && problem !== 'size') throw e;
  }
  await writeFileAtomic(file, block);
  return 'created';
}

/**
 * Read → change → write, skipping the write when the change leaves the content as it was (e.g.
 * `disableSlot` on an already disabled slot). Returns the variables now in the file.
 */
export async function updateGrubenv(
  file: string,
  change: (vars: Map<string, string>) => Map<string, string>,
): Promise<{ vars: Map<string, string>; changed: boolean }> {
  const before = await readGrubenv(file);
  const after = change(new Map(before));
  if (grubenvEqual(before, after)) return { vars: after, changed: false };
  await writeGrubenv(file, after);
  return { vars: after, changed: true };
}
