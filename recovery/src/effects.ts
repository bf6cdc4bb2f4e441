/**
 * The recovery system's effects on real files and devices. Each one is idempotent (running it
 * twice leaves what running it once does) and durable before it returns, so the runner may be
 * cut anywhere and started again from the top.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { fsyncDir, readAtMost, writeFileAtomic, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { crashpoint } from '@clgw/core/platform/crashpoint.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { deviceCapacity } from '@clgw/core/slot/device.js';
import { writeOrCreateGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { verifyArtifactOnDevice } from '@clgw/core/slot/read-back.js';
import { MAX_MANIFEST_BYTES } from './manifest.js';
import type { RebootMode, RecoveryLayout, RecoveryRecord, RecoverySurvey } from './plan.js';

/** Bytes done so far of the current image. */
export type ProgressFn = (done: number) => void;

/** What the runner needs done; {@link nodeRecoveryEffects} is the real thing, tests inject fakes. */
export interface RecoveryEffects {
  /** The grubenv bytes as GRUB sees them; undefined when there is no readable file. */
  readBootBlock(): Promise<Uint8Array | undefined>;
  /** The manifest's text; RECOVERY_MANIFEST_INVALID when it is missing, unreadable or too large. */
  readManifest(): Promise<string>;
  survey(): Promise<RecoverySurvey>;
  /** RECOVERY_IMAGE_INVALID naming the file, expected and actual when size or SHA-256 disagree. */
  verifyImage(file: string, size: number, sha256: string, onProgress?: ProgressFn): Promise<void>;
  /** NO_SPACE when `size` bytes do not fit `device`. */
  checkCapacity(file: string, device: string, size: number): Promise<void>;
  stashAlarms(): Promise<void>;
  /** Copies the image to the start of `device` (positional writes, r+), fsync; hashed on the way. */
  writeImage(
    file: string,
    device: string,
    size: number,
    sha256: string,
    onProgress?: ProgressFn,
  ): Promise<void>;
  /** READBACK_MISMATCH when the device's first `size` bytes do not hash to `sha256`. */
  verifyDevice(device: string, size: number, sha256: string): Promise<void>;
  eraseData(): Promise<void>;
  restoreAlarms(): Promise<void>;
  writeRecord(record: RecoveryRecord): Promise<void>;
  removeStash(): Promise<void>;
  writeBootEnv(vars: ReadonlyMap<string, string>): Promise<void>;
  reboot(mode: RebootMode, reason: string): Promise<void>;
}

const IO_CHUNK = 1024 * 1024;
/** GRUB reads the whole file; anything beyond this is garbage as far as the reason goes. */
const MAX_BLOCK_READ = 64 * 1024;

/** The effects on the appliance described by `layout`. */
export function nodeRecoveryEffects(layout: RecoveryLayout): RecoveryEffects {
  return {
    readBootBlock: async () => {
      try {
        return await readAtMost(layout.grubenv, MAX_BLOCK_READ);
      } catch {
        // Missing or unreadable: GRUB would see no usable block either; the reason says so.
        return undefined;
      }
    },

    readManifest: async () => {
      let bytes: Uint8Array;
      try {
        bytes = await readAtMost(layout.manifest, MAX_MANIFEST_BYTES + 1);
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        const why = err.code === 'ENOENT' ? 'does not exist' : `cannot be read: ${err.message}`;
        throw new ClgwError('RECOVERY_MANIFEST_INVALID', `factory manifest ${layout.manifest} ${why}`, {
          cause: e,
          details: { file: layout.manifest, errno: err.code },
        });
      }
      if (bytes.length > MAX_MANIFEST_BYTES) {
        throw new ClgwError(
          'RECOVERY_MANIFEST_INVALID',
          `factory manifest ${layout.manifest} is larger than ${MAX_MANIFEST_BYTES} bytes`,
          { details: { file: layout.manifest } },
        );
      }
      return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    },

    survey: async () => ({
      // Only a regular file is history worth keeping; anything else there is erased with the rest.
      dataAlarms: await isRegularFile(layout.dataAlarms),
      stash: await isRegularFile(layout.stash),
    }),

    verifyImage: async (file, size, sha256, onProgress) => {
      const source = layout.image(file);
      const handle = await openImage(source);
      try {
        const actualSize = (await handle.stat()).size;
        if (actualSize !== size) {
          throw imageInvalid(source, `is ${actualSize} bytes, expected ${size}`, {
            expected: { size },
            actual: { size: actualSize },
          });
        }
        const hash = createHash('sha256');
        await readImage(handle, source, size, (chunk, done) => {
          hash.update(chunk);
          onProgress?.(done);
        });
        const actual = hash.digest('hex');
        if (actual !== sha256) {
          throw imageInvalid(source, `has SHA-256 ${actual}, expected ${sha256}`, {
            expected: { sha256 },
            actual: { sha256: actual },
          });
        }
      } finally {
        await handle.close();
      }
    },

    checkCapacity: async (file, device, size) => {
      const capacity = await deviceCapacity(device);
      if (capacity < size) {
        throw new ClgwError(
          'NO_SPACE',
          `factory image ${layout.image(file)} (${size} bytes) does not fit ${device} (${capacity} bytes)`,
          { details: { file: layout.image(file), device, size, capacity } },
        );
      }
    },

    stashAlarms: () => copyFileAtomic(layout.dataAlarms, layout.stash),

    writeImage: async (file, device, size, sha256, onProgress) => {
      const source = layout.image(file);
      const src = await openImage(source);
      try {
        // r+: the slot is an existing partition (or fixed-size file) — never created or truncated.
        const dst = await fs.open(device, 'r+').catch((e: NodeJS.ErrnoException) => {
          throw new ClgwError('SLOT_WRITE_FAILED', `cannot open ${device} for writing: ${e.message}`, {
            cause: e,
            details: { device, errno: e.code },
          });
        });
        try {
          const hash = createHash('sha256');
          await readImage(src, source, size, async (chunk, done) => {
            hash.update(chunk);
            await writeFully(dst, device, chunk, done - chunk.length);
            crashpoint(`recovery wrote ${file} ${done}`);
            onProgress?.(done);
          });
          await dst.sync().catch((e: NodeJS.ErrnoException) => {
            throw new ClgwError('SLOT_WRITE_FAILED', `cannot fsync ${device}: ${e.message}`, {
              cause: e,
              details: { device, errno: e.code },
            });
          });
          crashpoint(`recovery synced ${path.basename(device)}`);
          // The image was verified before; bytes that differ now mean the recovery partition
          // itself cannot be read reliably — the read-back would not catch that.
          const actual = hash.digest('hex');
          if (actual !== sha256) {
            throw imageInvalid(source, `changed while being copied: SHA-256 ${actual}, expected ${sha256}`, {
              expected: { sha256 },
              actual: { sha256: actual },
            });
          }
        } finally {
          await dst.close();
        }
      } finally {
        await src.close();
      }
    },

    verifyDevice: (device, size, sha256) => verifyArtifactOnDevice(device, size, sha256),

    eraseData: async () => {
      for (const dir of await distinctRealDirs(layout.eraseDirs)) {
        for (const entry of await fs.readdir(dir)) {
          // rm does not follow symlinks: a link is removed, never what it points to.
          await fs.rm(path.join(dir, entry), { recursive: true, force: true });
          crashpoint(`recovery erased ${entry}`);
        }
        await fsyncDir(dir);
      }
    },

    restoreAlarms: () => copyFileAtomic(layout.stash, layout.dataAlarms),

    writeRecord: (record) => writeJsonAtomic(layout.record, record),

    removeStash: async () => {
      await fs.rm(layout.stashDir, { recursive: true, force: true });
      await fsyncDir(layout.partition);
    },

    // In place; a missing or wrong-size file (GRUB chose recovery because of it) is made anew.
    writeBootEnv: async (vars) => {
      await writeOrCreateGrubenv(layout.grubenv, vars);
    },

    reboot: async (mode, reason) => {
      if (mode === 'systemd') {
        await execFile('systemctl', ['reboot']);
        return;
      }
      await writeFileAtomic(layout.rebootRequest, `${reason}\n`);
    },
  };
}

function imageInvalid(file: string, what: string, facts: Record<string, unknown>): ClgwError {
  return new ClgwError('RECOVERY_IMAGE_INVALID', `factory image ${file} ${what}`, {
    details: { file, ...facts },
  });
}

async function openImage(file: string): Promise<fs.FileHandle> {
  try {
    const handle = await fs.open(file, constants.O_RDONLY);
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw imageInvalid(file, 'is not a regular file', {});
    }
    return handle;
  } catch (e) {
    if (e instanceof ClgwError) throw e;
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'does not exist' : `cannot be opened: ${err.message}`;
    throw new ClgwError('RECOVERY_IMAGE_INVALID', `factory image ${file} ${why}`, {
      cause: e,
      details: { file, errno: err.code },
    });
  }
}

/**
 * The directories to erase, each once, by their real paths. On the appliance the log directory is
 * a link into the data partition (/var/log/clgw → /var/clgw/log): erased with the data directory,
 * and never reached through the link, which that erase leaves dangling (a cut after it, too).
 */
async function distinctRealDirs(dirs: readonly string[]): Promise<string[]> {
  const real: string[] = [];
  for (const dir of dirs) {
    await fs.mkdir(dir, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
      // A dangling link: what it pointed to is gone already.
      if (e.code !== 'ENOENT' && e.code !== 'EEXIST') throw e;
    });
    const resolved = await fs.realpath(dir).catch(() => undefined);
    if (resolved) real.push(resolved);
  }
  return real.filter((d, i) => !real.some((o, j) => (o === d && j < i) || d.startsWith(`${o}/`)));
}

/**
 * Reads exactly `size` bytes of an image through one reused buffer (memory does not grow with
 * the image), handing each chunk and the running total to `each` before reading on.
 */
async function readImage(
  handle: fs.FileHandle,
  file: string,
  size: number,
  each: (chunk: Buffer, done: number) => void | Promise<void>,
): Promise<void> {
  const buffer = Buffer.allocUnsafe(Math.min(IO_CHUNK, Math.max(1, size)));
  let offset = 0;
  while (offset < size) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - offset), offset));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new ClgwError(
        'RECOVERY_IMAGE_INVALID',
        `factory image ${file} cannot be read at offset ${offset}: ${err.message}`,
        { cause: e, details: { file, offset, errno: err.code } },
      );
    }
    if (bytesRead === 0) {
      throw imageInvalid(file, `ends after ${offset} bytes, expected ${size}`, {
        expected: { size },
        actual: { size: offset },
      });
    }
    offset += bytesRead;
    await each(buffer.subarray(0, bytesRead), offset);
  }
}

async function writeFully(handle: fs.FileHandle, device: string, chunk: Buffer, at: number): Promise<void> {
  let done = 0;
  while (done < chunk.length) {
    try {
      const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, at + done);
      done += bytesWritten;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const code = err.code === 'ENOSPC' || err.code === 'EFBIG' ? 'NO_SPACE' : 'SLOT_WRITE_FAILED';
      throw new ClgwError(code, `cannot write ${device} at offset ${at + done}: ${err.message}`, {
        cause: e,
        details: { device, offset: at + done, errno: err.code },
      });
    }
  }
}

/**
 * Copies a file so that after a power cut the target holds the old or the new content, never a
 * mix — `writeFileAtomic`'s recipe for content that is copied rather than held in memory: the
 * kernel copies into a temp file beside the target, fsync, rename, fsync the directory.
 */
export async function copyFileAtomic(from: string, to: string): Promise<void> {
  const dir = path.dirname(to);
  await fs.mkdir(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(to)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await fs.copyFile(from, temp, constants.COPYFILE_EXCL);
    crashpoint(`written ${path.basename(to)}`);
    const handle = await fs.open(temp, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    crashpoint(`synced ${path.basename(to)}`);
    await fs.rename(temp, to);
    crashpoint(`renamed ${path.basename(to)}`);
  } catch (e) {
    await fs.rm(temp, { force: true }).catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    throw new ClgwError(
      err.code === 'ENOSPC' ? 'NO_SPACE' : 'INTERNAL',
      `cannot copy ${from} to ${to}: ${err.message}`,
      {
        cause: e,
        details: { from, to, errno: err.code },
      },
    );
  }
  await fsyncDir(dir);
}

async function isRegularFile(file: string): Promise<boolean> {
  try {
    return (await fs.lstat(file)).isFile();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw e;
  }
}
