/**
 * The grubenv file on the ESP (`AppliancePaths.grubenv`): strict read, atomic write.
 *
 * The agent never edits the block in place the way GRUB's `save_env` does: it writes a complete
 * new block to a temp file and renames it over the old one, so a power cut leaves the old or the
 * new block. GRUB finds the file by name at every boot, so a new inode is fine for it.
 */
import { ClgwError } from '../errors.js';
import { readAtMost, writeFileAtomic } from '../platform/atomic.js';
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

/**
 * Writes the variables as a complete block (insertion order), atomically: temp file → fsync →
 * rename → fsync directory. GRUBENV_INVALID when a name/value cannot be stored or they do not fit.
 */
export async function writeGrubenv(file: string, vars: ReadonlyMap<string, string>): Promise<void> {
  await writeFileAtomic(file, serializeGrubenv(vars));
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
