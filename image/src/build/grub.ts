/**
 * GRUB for the appliance disk, without grub-install (it needs loop devices): `grub-mkimage` for
 * BIOS (core.img in the BIOS boot partition, boot.img's first 440 bytes in the protective MBR)
 * and for UEFI (EFI/BOOT/BOOTX64.EFI on the ESP). Both read grub.cfg, slot-select.cfg and
 * grubenv from the ESP's /grub directory.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { SECTOR } from './layout.js';
import { run } from './run.js';

const GRUB_LIB = '/usr/lib/grub';

/**
 * Built into both images, so grub.cfg's `insmod`s never have to load a module from disk (the ESP
 * carries no module directory: one thing less to get out of step with the core image).
 */
const COMMON_MODULES = [
  'part_gpt',
  'part_msdos',
  'fat',
  'ext2',
  'normal',
  'configfile',
  'search',
  'search_label',
  'search_fs_uuid',
  'loadenv',
  'test',
  'echo',
  'regexp',
  'linux',
  'serial',
  'terminal',
  'sleep',
  'reboot',
  'halt',
];

/** BIOS: core.img that reads its configuration from (hd0,gpt<espNumber>)/grub. */
export async function buildBiosCore(out: string, espNumber: number): Promise<Buffer> {
  await run('grub-mkimage', [
    '-O',
    'i386-pc',
    '-d',
    path.join(GRUB_LIB, 'i386-pc'),
    '-p',
    `(hd0,gpt${espNumber})/grub`,
    '-o',
    out,
    'biosdisk',
    ...COMMON_MODULES,
  ]);
  return fs.readFile(out);
}

/** UEFI: the removable-media path every firmware boots; $root is the ESP it was loaded from. */
export async function buildEfiImage(out: string): Promise<void> {
  await run('grub-mkimage', [
    '-O',
    'x86_64-efi',
    '-d',
    path.join(GRUB_LIB, 'x86_64-efi'),
    '-p',
    '/grub',
    '-o',
    out,
    'efi_gop',
    'efi_uga',
    ...COMMON_MODULES,
  ]);
}

/** Where GRUB's BIOS images keep the sector numbers grub-install would patch. */
const BOOT_KERNEL_SECTOR = 0x5c;
/** diskboot.img (core.img's first sector) ends with its block list: start (8), length (2), segment (2). */
const DISKBOOT_LIST_START = SECTOR - 12;
/** boot.img's code ends where the MBR's disk signature and partition table begin. */
const MBR_CODE_BYTES = 440;

/**
 * Patches core.img and boot.img for a core written at `coreSector` (what grub-install's
 * grub-bios-setup does): boot.img loads core's first sector from there, which loads the rest.
 * Returns the MBR code bytes (to write over sector 0 up to the disk signature, keeping the
 * protective MBR's partition table) and the patched core.
 */
export async function patchBiosBoot(
  core: Buffer,
  coreSector: number,
): Promise<{ mbrCode: Buffer; core: Buffer }> {
  const boot = await fs.readFile(path.join(GRUB_LIB, 'i386-pc/boot.img'));
  if (boot.length !== SECTOR) {
    throw new ClgwError('IMAGE_BUILD_FAILED', `GRUB boot.img is ${boot.length} bytes, expected ${SECTOR}`);
  }
  const patchedCore = Buffer.from(core);
  const listedSectors = patchedCore.readUInt16LE(DISKBOOT_LIST_START + 8);
  // grub-mkimage fills in the length (sectors after the first) and leaves the start at its default.
  if (listedSectors !== Math.ceil(core.length / SECTOR) - 1) {
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `core.img's block list says ${listedSectors} sectors, the image has ${Math.ceil(core.length / SECTOR) - 1} after the first`,
    );
  }
  patchedCore.writeBigUInt64LE(BigInt(coreSector + 1), DISKBOOT_LIST_START);
  const mbrCode = Buffer.from(boot.subarray(0, MBR_CODE_BYTES));
  mbrCode.writeBigUInt64LE(BigInt(coreSector), BOOT_KERNEL_SECTOR);
  return { mbrCode, core: patchedCore };
}
