import type { Deps } from '../deps.js';
import type { UpdateEffects } from '../machine/update.machine.js';
import { countCalls, logCallWaitEnded, planCallWait } from '../voice/wait.js';
import { checkForRelease, lastLookAtRelease } from './check.js';
import { confirmBoot } from './confirm.js';
import { downloadResuming } from './download-resume.js';
import { recordSlot } from './record-slot.js';
import { handOverToRecovery } from './recover.js';
import { rollBack } from './roll-back.js';
import { startup } from './startup.js';
import { switchBoot } from './switch-boot.js';
import { verifyRelease } from './verify.js';

/** The update machine's effects, bound to the appliance's dependencies. */
export function updateEffects(deps: Deps): UpdateEffects {
  return {
    persist: (j) => deps.persistJournal(j),
    startup: () => startup(deps),
    check: (j, s) => checkForRelease(deps, j, s),
    download: (j, s, checkpoint) => downloadResuming(deps, j, s, checkpoint),
    verify: (j, s) => verifyRelease(deps, j, s),
    // "install" in the machine: the bytes were written and read back already; this records the slot.
    install: (j) => recordSlot(deps, j),
    lastLook: (j, s) => lastLookAtRelease(deps, j, s),
    switchBoot: (j) => switchBoot(deps, j),
    reboot: async (j) => {
      deps.progress.clear();
      await deps.log.flush();
      await deps.reboot.reboot(j.reboot ?? 'update');
    },
    planCallWait: () => planCallWait(deps),
    countCalls: (_j, s) => countCalls(deps, s),
    pauseCalls: (s) => deps.clock.sleep(deps.config.voice?.pollMs ?? 0, s),
    callWaitEnded: (j, how) => logCallWaitEnded(deps, j.calls, how),
    confirm: (j) => confirmBoot(deps, j),
    rollBack: (j) => rollBack(deps, j),
    recover: (j) => handOverToRecovery(deps, j),
  };
}
