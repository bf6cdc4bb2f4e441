/**
 * Filesystem images (boot, root, ESP, recovery, data) and the raw GPT disk made of them — all
 * built as plain files (`mkfs.ext4 -d`, `mkfs.vfat -C` + `mcopy`, `sgdisk` on a sparse file),
 * no loop devices, no mounts.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import type { Platform } from '@clgw/core/release/schema.js';
import { defaultGrubenv } from '@clgw/core/slot/bootchooser.js';
import { serializeGrubenv } from '@clgw/core/slot/grubenv.js';
import { hashFile } from '../release/build.js';
import { buildBiosCore, buildEfiImage, patchBiosBoot } from './grub.js';
import { type DiskPlan, ESP_BYTES, MIB, partition, planDisk, SECTOR, sgdiskArgs } from './layout.js';
import { run } from './run.js';

/** Fixed file times inside every filesystem image: the same tree gives the same bytes. */
const FAKE_TIME = '1767225600';

const roundMiB = (n: number) => Math.ceil(n / MIB) * MIB;

async function treeBytes(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-s', '--block-size=1', dir]);
  return Number(stdout.split('\t')[0]);
}

/** A UUID derived from a name: reproducible filesystems (ext4's UUID and directory hash seed). */
function nameUuid(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** `mkfs.ext4 -d`: a filesystem image of exactly `bytes` holding `dir`. */
export async function mkfsExt4(
  dir: string,
  image: string,
  label: string,
  bytes: number,
  seed: string,
): Promise<void> {
  await fs.rm(image, { force: true });
  const uuid = nameUuid(seed);
  await run(
    'mkfs.ext4',
    [
      '-q',
      '-F',
      '-L',
      label,
      '-U',
      uuid,
      '-E',
      `hash_seed=${uuid}`,
      '-m',
      '0',
      '-d',
      dir,
      image,
      `${bytes / 1024}k`,
    ],
    { env: { ...process.env, E2FSPROGS_FAKE_TIME: FAKE_TIME } },
  ).catch((e: Error) => {
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `mkfs.ext4 of ${dir} into ${image} (${bytes} bytes) failed: ${e.message}`,
      {
        cause: e,
        details: { dir, image, bytes },
      },
    );
  });
}

/** An ext4 image sized for `dir` plus `slack` (fraction) and `extra` bytes, whole MiB. */
export async function fitExt4(
  dir: string,
  image: string,
  label: string,
  seed: string,
  slack = 0.15,
  extra = 16 * MIB,
): Promise<number> {
  const bytes = roundMiB((await treeBytes(dir)) * (1 + slack) + extra);
  await mkfsExt4(dir, image, label, bytes, seed);
  return bytes;
}

/** The boot image of a release: the kernel and initramfs, as grub.cfg's entries load them. */
export async function buildBootImage(
  kernel: { vmlinuz: string; initrd: string },
  out: string,
  version: string,
) {
  const stage = `${out}.d`;
  await fs.rm(stage, { recursive: true, force: true });
  await fs.mkdir(stage, { recursive: true });
  await fs.copyFile(kernel.vmlinuz, path.join(stage, 'vmlinuz'));
  await fs.copyFile(kernel.initrd, path.join(stage, 'initrd.img'));
  await fitExt4(stage, out, 'boot', `clgw-boot-${version}`, 0.1, 4 * MIB);
  await fs.rm(stage, { recursive: true, force: true });
}

/** The root image of a release: its tree, mounted read-only, so only a little room is kept. */
export async function buildRootImage(tree: string, out: string, version: string): Promise<void> {
  await fitExt4(tree, out, 'clgw-root', `clgw-root-${version}`, 0.05, 16 * MIB);
}

/** The ESP: GRUB (UEFI image, configuration, grubenv) and the platform this disk was made for. */
export async function buildEsp(repo: string, work: string, out: string, platform: Platform): Promise<void> {
  const stage = path.join(work, `esp-${platform}`);
  await fs.rm(stage, { recursive: true, force: true });
  await fs.mkdir(path.join(stage, 'EFI/BOOT'), { recursive: true });
  await fs.mkdir(path.join(stage, 'grub'), { recursive: true });
  await fs.mkdir(path.join(stage, 'clgw'), { recursive: true });
  await buildEfiImage(path.join(stage, 'EFI/BOOT/BOOTX64.EFI'));
  for (const f of ['grub.cfg', 'slot-select.cfg']) {
    await fs.copyFile(path.join(repo, 'image/grub', f), path.join(stage, 'grub', f));
  }
  // save_env cannot create the block, nor can the agent (both write it in place, see
  // core/src/slot/grubenv-file.ts); it must exist, 1024 bytes, before the first boot.
  await fs.writeFile(path.join(stage, 'grub/grubenv'), serializeGrubenv(defaultGrubenv()));
  await fs.writeFile(path.join(stage, 'clgw/platform'), `${platform}\n`);
  await fs.rm(out, { force: true });
  await run('mkfs.vfat', ['-C', '-n', 'ESP', '-i', '2bd1c1a0', out, String(ESP_BYTES / 1024)]);
  await run(
    'mcopy',
    ['-s', '-m', '-i', out, ...(await fs.readdir(stage)).map((n) => path.join(stage, n)), '::'],
    {
      env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
    },
  );
  await fs.rm(stage, { recursive: true, force: true });
}

/** The factory manifest on the recovery partition (recovery/src/manifest.ts). */
export async function factoryManifest(version: string, boot: string, root: string): Promise<string> {
  const b = await hashFile(boot);
  const r = await hashFile(root);
  return `${JSON.stringify(
    {
      schema: 1,
      version,
      boot: { file: 'boot.img', size: b.size, sha256: b.sha256 },
      root: { file: 'root.img', size: r.size, sha256: r.sha256 },
    },
    null,
    2,
  )}\n`;
}

/**
 * The recovery partition: the factory release's root tree (it boots as the recovery system) plus
 * /factory with the factory boot and root images and their manifest, and the kernel to boot it.
 */
export async function buildRecoveryImage(o: {
  tree: string;
  kernel: { vmlinuz: string; initrd: string };
  boot: string;
  root: string;
  version: string;
  out: string;
}): Promise<number> {
  const stage = `${o.out}.d`;
  await fs.rm(stage, { recursive: true, force: true });
  // Hard links: nothing in the stage is modified, only added to.
  await run('cp', ['-al', o.tree, stage]);
  await fs.mkdir(path.join(stage, 'factory'), { recursive: true });
  await fs.link(o.boot, path.join(stage, 'factory/boot.img'));
  await fs.link(o.root, path.join(stage, 'factory/root.img'));
  await fs.writeFile(
    path.join(stage, 'factory/manifest.json'),
    await factoryManifest(o.version, o.boot, o.root),
  );
  await fs.copyFile(o.kernel.vmlinuz, path.join(stage, 'vmlinuz'));
  await fs.copyFile(o.kernel.initrd, path.join(stage, 'initrd.img'));
  const bytes = await fitExt4(stage, o.out, 'recovery', `clgw-recovery-${o.version}`, 0.1, 64 * MIB);
  await fs.rm(stage, { recursive: true, force: true });
  return bytes;
}

export interface DiskParts {
  esp: string;
  boot: string;
  root: string;
  recovery: string;
  data: string;
}

/** Room each slot keeps for later releases (the images of this one are smaller). */
export const BOOT_SLOT_BYTES = 128 * MIB;
export const ROOT_SLOT_BYTES = 1024 * MIB;
export const DATA_BYTES = 1024 * MIB;

export async function sizeOf(file: string): Promise<number> {
  return (await fs.stat(file)).size;
}

/** Plans the disk for these parts (the slots at least as large as the images). */
export async function planFor(parts: Omit<DiskParts, 'esp'>): Promise<DiskPlan> {
  return planDisk({
    bootSlotBytes: Math.max(BOOT_SLOT_BYTES, await sizeOf(parts.boot)),
    rootSlotBytes: Math.max(ROOT_SLOT_BYTES, await sizeOf(parts.root)),
    recoveryBytes: await sizeOf(parts.recovery),
    dataBytes: await sizeOf(parts.data),
  });
}

async function writeAt(disk: string, file: string, offset: number, limit: number): Promise<void> {
  const size = await sizeOf(file);
  if (size > limit) {
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `${file} (${size} bytes) does not fit its partition (${limit} bytes)`,
      {
        details: { file, size, limit },
      },
    );
  }
  await run('dd', [
    `if=${file}`,
    `of=${disk}`,
    `bs=${MIB}`,
    `seek=${offset}`,
    'oflag=seek_bytes',
    'conv=notrunc,sparse',
    'status=none',
  ]);
}

/**
 * The raw disk: GPT (sgdisk), GRUB for BIOS (MBR code + core.img in the BIOS boot partition) and
 * UEFI (on the ESP), slot A = the factory release, slot B empty (not bootable until an update
 * writes it), the recovery partition and an empty data partition.
 */
export async function assembleDisk(
  plan: DiskPlan,
  parts: DiskParts,
  out: string,
  work: string,
): Promise<void> {
  const tmp = `${out}.tmp`;
  await fs.rm(tmp, { force: true });
  await (await fs.open(tmp, 'w')).close();
  await fs.truncate(tmp, plan.sizeBytes);
  await run('sgdisk', sgdiskArgs(plan, tmp));

  const bios = partition(plan, 'bios');
  const core = await buildBiosCore(path.join(work, 'core.img'), partition(plan, 'esp').number);
  if (core.length > bios.sizeBytes) {
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `GRUB core.img (${core.length} bytes) exceeds the BIOS boot partition`,
    );
  }
  const patched = await patchBiosBoot(core, bios.firstSector);
  const fd = await fs.open(tmp, 'r+');
  try {
    await fd.write(patched.mbrCode, 0, patched.mbrCode.length, 0);
    await fd.write(patched.core, 0, patched.core.length, bios.firstSector * SECTOR);
    await fd.sync();
  } finally {
    await fd.close();
  }
  const place = async (name: Parameters<typeof partition>[1], file: string) => {
    const p = partition(plan, name);
    await writeAt(tmp, file, p.firstSector * SECTOR, p.sizeBytes);
  };
  await place('esp', parts.esp);
  await place('boot_a', parts.boot);
  await place('root_a', parts.root);
  await place('recovery', parts.recovery);
  await place('data', parts.data);
  await run('sgdisk', ['-v', tmp]);
  await fs.rename(tmp, out);
}
