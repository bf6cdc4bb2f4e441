/**
 * The appliance disk's GPT layout, decided from the sizes of what goes on it. Pure.
 *
 * Partition numbers are fixed because GRUB reads the slots by number (grub.cfg): a boot
 * image's filesystem label cannot say which slot it is in (the same artifact goes into boot_a
 * or boot_b), and GRUB 2.06 cannot search by GPT partition name. Everything else (the kernel's
 * initramfs, fstab, the agent) finds partitions by their GPT name.
 */
import { ClgwError } from '@clgw/core/errors.js';

export const MIB = 1024 * 1024;
export const SECTOR = 512;

/** GPT type codes as sgdisk spells them. */
const TYPE = {
  biosBoot: 'EF02',
  esp: 'EF00',
  linux: '8300',
} as const;

export interface PartitionPlan {
  number: number;
  /** GPT partition name (PARTLABEL). */
  name: string;
  type: string;
  firstSector: number;
  sizeBytes: number;
}

export interface DiskPlan {
  sizeBytes: number;
  partitions: PartitionPlan[];
}

/** What the disk must hold; every size in bytes, rounded up to whole MiB by the plan. */
export interface DiskContent {
  /** Each boot slot: room for this release's boot image and the next ones'. */
  bootSlotBytes: number;
  rootSlotBytes: number;
  recoveryBytes: number;
  dataBytes: number;
}

/** The names in the order of their partition numbers (1…8). */
export const PARTITION_NAMES = [
  'bios',
  'esp',
  'boot_a',
  'boot_b',
  'root_a',
  'root_b',
  'recovery',
  'data',
] as const;
export type PartitionName = (typeof PARTITION_NAMES)[number];

export const ESP_BYTES = 32 * MIB;
/** GRUB's BIOS core image lives in its own partition (GPT leaves no gap after the MBR). */
export const BIOS_BOOT_BYTES = 1 * MIB;

const roundMiB = (n: number) => Math.ceil(n / MIB) * MIB;

export function planDisk(content: DiskContent): DiskPlan {
  for (const [key, value] of Object.entries(content)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new ClgwError(
        'IMAGE_BUILD_FAILED',
        `disk layout: ${key} must be a positive byte count, got ${value}`,
        {
          details: { [key]: value },
        },
      );
    }
  }
  const sizes: Record<PartitionName, number> = {
    bios: BIOS_BOOT_BYTES,
    esp: ESP_BYTES,
    boot_a: roundMiB(content.bootSlotBytes),
    boot_b: roundMiB(content.bootSlotBytes),
    root_a: roundMiB(content.rootSlotBytes),
    root_b: roundMiB(content.rootSlotBytes),
    recovery: roundMiB(content.recoveryBytes),
    data: roundMiB(content.dataBytes),
  };
  const types: Record<PartitionName, string> = {
    bios: TYPE.biosBoot,
    esp: TYPE.esp,
    boot_a: TYPE.linux,
    boot_b: TYPE.linux,
    root_a: TYPE.linux,
    root_b: TYPE.linux,
    recovery: TYPE.linux,
    data: TYPE.linux,
  };
  // 1 MiB in front (protective MBR, GPT header and entries); 1 MiB behind for the backup GPT.
  let offset = MIB;
  const partitions = PARTITION_NAMES.map((name, i) => {
    const p: PartitionPlan = {
      number: i + 1,
      name,
      type: types[name],
      firstSector: offset / SECTOR,
      sizeBytes: sizes[name],
    };
    offset += sizes[name];
    return p;
  });
  return { sizeBytes: offset + MIB, partitions };
}

/** `sgdisk` arguments that create exactly this table on an empty file. */
export function sgdiskArgs(plan: DiskPlan, file: string): string[] {
  const args = ['--clear'];
  for (const p of plan.partitions) {
    const last = p.firstSector + p.sizeBytes / SECTOR - 1;
    args.push(
      `--new=${p.number}:${p.firstSector}:${last}`,
      `--typecode=${p.number}:${p.type}`,
      `--change-name=${p.number}:${p.name}`,
    );
  }
  return [...args, file];
}

export function partition(plan: DiskPlan, name: PartitionName): PartitionPlan {
  const p = plan.partitions.find((q) => q.name === name);
  if (!p) throw new ClgwError('INTERNAL', `disk layout has no partition ${name}`);
  return p;
}
