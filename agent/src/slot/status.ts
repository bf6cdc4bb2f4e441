import { ClgwError } from '@clgw/core/errors.js';
import { readJsonFile, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import type { SlotName } from '@clgw/core/platform/paths.js';
import * as z from 'zod';

/** What was installed into each slot (RAUC's slot status), kept on the data partition. */
const slotRecord = z
  .object({
    version: z.string(),
    /** Absent for a slot the agent found already installed (the factory slot). */
    bootSha256: z.string().optional(),
    rootSha256: z.string().optional(),
    /** Bytes of each artifact in the slot (absent in records of older agents too). */
    bootSize: z.number().int().positive().optional(),
    rootSize: z.number().int().positive().optional(),
    installedAt: z.string().optional(),
  })
  .strict();

const slotStatusSchema = z.object({ A: slotRecord.optional(), B: slotRecord.optional() }).strict();

export type SlotRecord = z.infer<typeof slotRecord>;
export type SlotStatus = z.infer<typeof slotStatusSchema>;

export async function readSlotStatus(file: string): Promise<SlotStatus> {
  const raw = await readJsonFile(file);
  if (raw === undefined) return {};
  const parsed = slotStatusSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ClgwError('STATE_INVALID', `${file}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {
      details: { file },
    });
  }
  return parsed.data;
}

export async function writeSlotRecord(
  file: string,
  slot: SlotName,
  record: SlotRecord | undefined,
): Promise<void> {
  const status = await readSlotStatus(file);
  if (record) status[slot] = record;
  else delete status[slot];
  await writeJsonAtomic(file, status);
}
