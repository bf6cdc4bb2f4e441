import { promises as fs } from 'node:fs';
import { reconcileNetwork } from '@clgw/core/network/network.js';
import { markGood } from '@clgw/core/slot/bootchooser.js';
import { grubenvEqual } from '@clgw/core/slot/grubenv.js';
import { readGrubenv, writeGrubenv } from '@clgw/core/slot/grubenv-file.js';
import type { Deps } from '../deps.js';
import { readBootedSlot } from '../slot/booted.js';
import { readSlotStatus, writeSlotRecord } from '../slot/status.js';
import { updateAlarms } from '../state/alarms.js';
import { dataReset, dataResetPending } from '../system/data-reset.js';
import { checkHealth } from './health.js';

/**
 * Every boot: the bootloader marked the slot it started as being tried (`<slot>_TRY=1`, or counted
 * a last-resort boot in `LAST_GOOD_TRIES`). Once the health check passes the slot is marked good
 * again (and the last resort's count reset); if it fails it is left as tried, so the next boot
 * falls back to the other slot, or — a bounded number of times — tries this one again.
 */
export async function startup(deps: Deps): Promise<void> {
  if (await dataResetPending(deps.paths))
    await dataReset(deps.paths, deps.log, 'finishing a data reset cut off by a restart');
  await noteRecovery(deps);
  await reconcileNetwork(deps);
  const slot = await readBootedSlot(deps.paths);
  const health = await checkHealth(deps, { slot });
  // A slot nobody recorded (the factory install, or after a data reset) is recorded as found.
  if (!(await readSlotStatus(deps.paths.slotStatus))[slot]) {
    await writeSlotRecord(deps.paths.slotStatus, slot, { version: health.version });
  }
  const env = await readGrubenv(deps.paths.grubenv);
  const good = markGood(env, slot);
  if (!grubenvEqual(good, env)) await writeGrubenv(deps.paths.grubenv, good);
}

/** After the recovery system ran: the alarms that led to it are marked recovered. */
async function noteRecovery(deps: Deps): Promise<void> {
  const record = await fs.readFile(deps.paths.recoveryRecord, 'utf8').catch(() => undefined);
  if (!record) return;
  const at = new Date(deps.clock.now()).toISOString();
  const alarms = await updateAlarms(deps.paths.alarms, (list) =>
    list.map((a) => (a.clearedAt || a.recoveredAt ? a : { ...a, recoveredAt: at })),
  );
  await fs.rm(deps.paths.recoveryRecord, { force: true });
  deps.log.warn('started after a factory reset by the recovery system', {
    record: record.trim(),
    activeAlarms: alarms.filter((a) => !a.clearedAt).map((a) => a.code),
  });
}
