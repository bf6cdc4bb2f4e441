import { promises as fs } from 'node:fs';
import { ClgwError } from '@clgw/core/errors.js';
import type { AppliancePaths, SlotName } from '@clgw/core/platform/paths.js';
import { bootedSlotFromCmdline } from './cmdline.js';

/** The slot the bootloader started, from the kernel command line (`clgw.slot=A|B`). */
export async function readBootedSlot(paths: AppliancePaths): Promise<SlotName> {
  let text: string;
  try {
    text = await fs.readFile(paths.cmdline, 'utf8');
  } catch (e) {
    throw new ClgwError(
      'BOOTED_SLOT_UNKNOWN',
      `cannot read the kernel command line ${paths.cmdline}: ${(e as Error).message}`,
      {
        cause: e,
        details: { file: paths.cmdline },
      },
    );
  }
  const slot = bootedSlotFromCmdline(text);
  if (!slot) {
    throw new ClgwError(
      'BOOTED_SLOT_UNKNOWN',
      `the kernel command line in ${paths.cmdline} has no clgw.slot=A|B`,
      {
        details: { file: paths.cmdline, cmdline: text.trim() },
      },
    );
  }
  return slot;
}
