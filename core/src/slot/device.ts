/**
 * A slot's device: never one of the booted slot's, large enough, opened the way its kind needs
 * (block device or file), and every failure of it named with the device and offset. The streamed
 * write, the read-back, the adaptive update and the recovery system all go through it.
 */
import { promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '../errors.js';
import { execFile } from '../platform/exec.js';
import type { ArtifactTarget } from './stream-write.js';

/**
 * Before anything is opened for writing: SLOT_ACTIVE when the target is part of the booted slot,
 * NO_SPACE when the artifact does not fit it.
 */
export async function checkSlotTarget(
  target: ArtifactTarget,
  activeDevices: readonly string[],
): Promise<void> {
  const { url, size, device } = target;
  await refuseActiveDevice(device, activeDevices);
  const capacity = await deviceCapacity(device);
  if (capacity < size) {
    throw new ClgwError(
      'NO_SPACE',
      `artifact ${url} (${size} bytes) does not fit slot device ${device} (${capacity} bytes)`,
      { details: { device, url, size, capacity } },
    );
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

/** A failed slot write as NO_SPACE (ENOSPC, EFBIG) or SLOT_WRITE_FAILED, naming the device and offset. */
export function writeFailure(e: unknown, device: string, offset: number): ClgwError {
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

/** Opens a slot device (never creating or truncating it); SLOT_WRITE_FAILED naming it when that fails. */
export async function openDevice(device: string, flags: 'r' | 'r+'): Promise<fs.FileHandle> {
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
 * SLOT_ACTIVE when `device` is one of the booted slot's devices — by name, by resolved path (e.g.
 * through /dev/disk/by-partlabel links), or by identity (block device number, or inode).
 */
export async function refuseActiveDevice(device: string, active: readonly string[]): Promise<void> {
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
