import { ClgwError, type SerializedError, serializeError } from '@clgw/core/errors.js';
import { compareVersions } from '@clgw/core/release/schema.js';
import { markBad, markGood } from '@clgw/core/slot/bootchooser.js';
import { grubenvEqual } from '@clgw/core/slot/grubenv.js';
import { readGrubenv, writeGrubenv } from '@clgw/core/slot/grubenv-file.js';
import type { Deps } from '../deps.js';
import type { Journal, UpdateTarget } from '../machine/journal.js';
import type { ConfirmOutcome } from '../machine/update.machine.js';
import { readBootedSlot } from '../slot/booted.js';
import { clearRecovered, updateAlarms } from '../state/alarms.js';
import { updateHistory } from '../state/history.js';
import { checkHealth } from './health.js';

/**
 * How many times the new slot is booted before a fallback without a failed health check rejects
 * the release: a power cut in its first boot must not throw the update away, a release whose
 * kernel never comes up must not loop.
 */
export const TARGET_BOOTS = 3;

/**
 * After the reboot: commits the new slot when it came up healthy, asks for a rollback when its
 * health check failed, and recognises a rollback that already happened (we rebooted back on
 * purpose, or the bootloader fell back {@link TARGET_BOOTS} times; before that a fallback switches
 * to the new slot again). The slot that runs in the end is health-checked and marked good.
 */
export async function confirmBoot(deps: Deps, journal: Journal): Promise<ConfirmOutcome> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'confirming without a target release in the journal');
  const booted = await readBootedSlot(deps.paths);

  if (journal.rollback) {
    if (booted === target.slot) return { kind: 'rollback', reason: journal.rollback.reason };
    await settleOnSource(deps, journal, journal.rollback.reason);
    return { kind: 'rolledBack', version: target.version, reason: journal.rollback.reason };
  }

  if (booted !== target.slot) {
    const switches = journal.switches ?? 1;
    const reason: SerializedError = {
      code: 'HEALTH_CHECK_FAILED',
      message: `slot ${target.slot} (gateway OS ${target.version}) did not come up (${switches} of ${TARGET_BOOTS} boots); the bootloader fell back to slot ${booted}`,
      transient: false,
      details: { slot: target.slot, booted, switches },
    };
    if (switches < TARGET_BOOTS) {
      // No health check failed: the power may have gone off during the new slot's first boot.
      // The source slot must be a confirmed fallback again before switching away from it.
      await confirmSource(deps, target);
      deps.log.warn('the bootloader fell back before the new slot confirmed itself; switching to it again', {
        slot: target.slot,
        version: target.version,
        switches,
      });
      return { kind: 'switchAgain', reason };
    }
    await settleOnSource(deps, journal, reason);
    return { kind: 'rolledBack', version: target.version, reason };
  }

  try {
    await checkHealth(deps, { slot: target.slot, version: target.version, patchLevel: target.osPatchLevel });
  } catch (e) {
    const reason = serializeError(e);
    deps.log.error('the new slot failed its health check; rolling back', {
      slot: target.slot,
      error: reason,
    });
    return { kind: 'rollback', reason };
  }
  const env = await readGrubenv(deps.paths.grubenv);
  await writeGrubenv(deps.paths.grubenv, markGood(env, target.slot));
  await updateHistory(deps.paths.history, (h) => ({
    ...h,
    highestVersion:
      h.highestVersion && compareVersions(h.highestVersion, target.version) >= 0
        ? h.highestVersion
        : target.version,
  }));
  await updateAlarms(deps.paths.alarms, (a) => clearRecovered(a, new Date(deps.clock.now()).toISOString()));
  deps.log.info('update committed', { slot: target.slot, version: target.version });
  return { kind: 'committed', version: target.version };
}

/** The source slot passes its health check and is marked good (the last resort again). */
async function confirmSource(deps: Deps, target: UpdateTarget): Promise<void> {
  await checkHealth(deps, { slot: target.sourceSlot, version: target.sourceVersion });
  const env = await readGrubenv(deps.paths.grubenv);
  await writeGrubenv(deps.paths.grubenv, markGood(env, target.sourceSlot));
}

/**
 * Back on the source slot: remember the release as rejected here, make sure the target slot is
 * marked bad, then check and mark the source good.
 */
async function settleOnSource(deps: Deps, journal: Journal, reason: SerializedError): Promise<void> {
  const target = journal.target!;
  await updateHistory(deps.paths.history, (h) => ({
    ...h,
    rejected: [
      ...h.rejected.filter((r) => r.version !== target.version),
      {
        version: target.version,
        at: new Date(deps.clock.now()).toISOString(),
        code: reason.code,
        message: reason.message,
      },
    ],
  }));
  // Marked bad here too: the power may have gone off before the roll-back step could do it.
  const env = await readGrubenv(deps.paths.grubenv);
  const bad = markBad(env, target.slot);
  if (!grubenvEqual(bad, env)) await writeGrubenv(deps.paths.grubenv, bad);
  await confirmSource(deps, target);
  deps.log.warn('rolled back', { to: target.sourceSlot, version: target.sourceVersion, reason });
}
