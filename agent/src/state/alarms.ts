import { ClgwError } from '@clgw/core/errors.js';
import { readJsonFile, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import * as z from 'zod';

/** A power cut hit the critical phase (or the boot environment was torn): the box resets itself. */
export const CRITICAL_PHASE_ALARM = 'CLGW_ALARM_CRITICAL_PHASE_FAILED';
export const ALARM_CODES = [CRITICAL_PHASE_ALARM] as const;
export type AlarmCode = (typeof ALARM_CODES)[number];

const alarmSchema = z
  .object({
    code: z.enum(ALARM_CODES),
    message: z.string(),
    raisedAt: z.string(),
    /** The recovery system restored the factory state. */
    recoveredAt: z.string().optional(),
    /** The condition is over (the re-update after the recovery committed). */
    clearedAt: z.string().optional(),
  })
  .strict();

export type Alarm = z.infer<typeof alarmSchema>;

/**
 * The alarm history on the data partition (`alarms.json`). The recovery system carries this file
 * over a factory reset, so an alarm stays in the history after the recovery it caused.
 */
export async function readAlarms(file: string): Promise<Alarm[]> {
  const raw = await readJsonFile(file);
  if (raw === undefined) return [];
  const parsed = z.array(alarmSchema).max(1000).safeParse(raw);
  if (!parsed.success) {
    throw new ClgwError('STATE_INVALID', `${file}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {
      details: { file },
    });
  }
  return parsed.data;
}

/** Applies `change` to the history and writes it back atomically (keeping the newest 100). */
export async function updateAlarms(file: string, change: (alarms: Alarm[]) => Alarm[]): Promise<Alarm[]> {
  const current = await readAlarms(file);
  const next = change(current).slice(-100);
  if (JSON.stringify(next) !== JSON.stringify(current)) await writeJsonAtomic(file, next);
  return next;
}

/** Raises an alarm unless the same one is already active (raising twice after a cut is one alarm). */
export function raise(alarms: Alarm[], code: AlarmCode, message: string, at: string): Alarm[] {
  if (alarms.some((a) => a.code === code && !a.clearedAt && !a.recoveredAt)) return alarms;
  return [...alarms, { code, message, raisedAt: at }];
}

export function activeAlarms(alarms: Alarm[]): Alarm[] {
  return alarms.filter((a) => !a.clearedAt);
}

/** The condition behind recovered alarms is over: the appliance runs the current release again. */
export function clearRecovered(alarms: Alarm[], at: string): Alarm[] {
  return alarms.map((a) => (a.recoveredAt && !a.clearedAt ? { ...a, clearedAt: at } : a));
}
