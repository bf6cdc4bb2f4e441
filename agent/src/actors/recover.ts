import { defaultGrubenv, requestRecovery } from '@clgw/core/slot/bootchooser.js';
import { readGrubenv, writeOrCreateGrubenv } from '@clgw/core/slot/grubenv-file.js';
import type { Deps } from '../deps.js';
import type { Journal } from '../machine/journal.js';
import { CRITICAL_PHASE_ALARM, raise, updateAlarms } from '../state/alarms.js';

/** Tells the recovery system why it runs (shown on its console and in its record). */
export const RECOVERY_REASON_VAR = 'CLGW_RECOVERY_REASON';

const ALARM_TEXT: Record<string, string> = {
  'critical-phase-failed':
    'power was lost while the update switched the boot environment; the appliance resets itself to factory default and updates again',
  'boot-environment-torn':
    'the boot environment could not be read; the appliance resets itself to factory default and updates again',
};

/**
 * Hands the appliance to the recovery system: raises CLGW_ALARM_CRITICAL_PHASE_FAILED when it is
 * not the technician's own factory reset, asks for recovery in the boot environment
 * (`CLGW_RECOVERY=1`; a torn block is overwritten in place by a fresh one that asks for it, a
 * missing or wrong-size file created anew), and reboots.
 * Idempotent: after a cut it runs again and raises the alarm once.
 */
export async function handOverToRecovery(deps: Deps, journal: Journal): Promise<void> {
  const reason = journal.recovery?.reason ?? 'factory-reset';
  const at = new Date(deps.clock.now()).toISOString();
  const text = ALARM_TEXT[reason];
  if (text) {
    await updateAlarms(deps.paths.alarms, (alarms) => raise(alarms, CRITICAL_PHASE_ALARM, text, at));
    deps.log.error(`alarm ${CRITICAL_PHASE_ALARM}: ${text}`, { reason, error: journal.error });
  } else {
    deps.log.warn('factory reset requested; handing over to the recovery system', { reason });
  }
  const env = await readGrubenv(deps.paths.grubenv).catch(() => defaultGrubenv());
  const request = requestRecovery(env);
  request.set(RECOVERY_REASON_VAR, reason);
  // In place; only a missing or wrong-size file is made anew (GRUB could not use it anyway).
  if ((await writeOrCreateGrubenv(deps.paths.grubenv, request)) === 'created') {
    deps.log.warn('grubenv was missing or of the wrong size: created anew', { file: deps.paths.grubenv });
  }
  deps.progress.clear();
  await deps.log.flush();
  await deps.reboot.reboot('recovery');
}
