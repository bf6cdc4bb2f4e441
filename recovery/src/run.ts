/**
 * The factory restore, start to end: read why we are here and what the factory images are,
 * plan, then run each step with a progress line on the console and a JSON line in the recovery
 * log. The effects and the clock are injected, so the order is testable without a disk.
 */
import { serializeError } from '@clgw/core/errors.js';
import type { Clock } from '@clgw/core/platform/clock.js';
import { crashpoint } from '@clgw/core/platform/crashpoint.js';
import type { Logger } from '@clgw/core/platform/log.js';
import type { RecoveryEffects } from './effects.js';
import { type FactoryManifest, parseManifest } from './manifest.js';
import {
  bootloaderAccount,
  describeStep,
  planRecovery,
  progressMark,
  type RebootMode,
  type RecoveryLayout,
  type RecoveryStep,
  recoveryReason,
} from './plan.js';

export interface RecoveryDeps {
  layout: RecoveryLayout;
  effects: RecoveryEffects;
  clock: Clock;
  /** The recovery log (bounded; on the recovery partition). */
  log: Logger;
  /** One plain progress line (the console the technician is looking at). */
  out: (line: string) => void;
  reboot: RebootMode;
}

export interface RecoveryResult {
  factoryVersion: string;
  reason: string;
  /** The kinds of the steps run, in order. */
  steps: RecoveryStep['kind'][];
}

/**
 * Runs one factory restore. Throws (after logging it) the first step's error: the boot
 * environment is then as it was, so the box comes back into recovery — the error codes that
 * matter are RECOVERY_MANIFEST_INVALID and RECOVERY_IMAGE_INVALID (nothing written),
 * NO_SPACE, SLOT_WRITE_FAILED and READBACK_MISMATCH.
 */
export async function runRecovery(deps: RecoveryDeps): Promise<RecoveryResult> {
  const { effects, log, out } = deps;
  const say = (line: string) => out(`recovery: ${line}`);
  try {
    const block = await effects.readBootBlock();
    const reason = recoveryReason(block);
    say(`starting factory restore (reason: ${reason})`);
    log.info('recovery starting', { reason, bootloader: bootloaderAccount(block) });

    say('reading the factory manifest…');
    const manifest: FactoryManifest = parseManifest(await effects.readManifest(), deps.layout.manifest);
    const survey = await effects.survey();
    const steps = planRecovery({ manifest, layout: deps.layout, survey, reason, reboot: deps.reboot });
    log.info('recovery planned', {
      factoryVersion: manifest.version,
      survey,
      steps: steps.map((s) => s.kind),
    });
    say(`verifying factory images (version ${manifest.version})…`);

    for (const step of steps) {
      crashpoint(`recovery ${step.kind} ${'image' in step ? step.image : ''}`);
      say(describeStep(step));
      log.info('recovery step', { step: step.kind, ...stepFacts(step) });
      await runStep(step, deps, say);
    }
    log.info('recovery completed', { factoryVersion: manifest.version, reason });
    return { factoryVersion: manifest.version, reason, steps: steps.map((s) => s.kind) };
  } catch (e) {
    log.error('recovery failed', { error: serializeError(e) });
    throw e;
  }
}

async function runStep(step: RecoveryStep, deps: RecoveryDeps, say: (line: string) => void): Promise<void> {
  const { effects } = deps;
  switch (step.kind) {
    case 'verifyImage':
      await effects.verifyImage(step.file, step.size, step.sha256);
      say(`${step.file}: size and SHA-256 match the manifest`);
      return;
    case 'checkCapacity':
      await effects.checkCapacity(step.file, step.device, step.size);
      return;
    case 'stashAlarms':
      await effects.stashAlarms();
      return;
    case 'writeImage': {
      let shown = -1;
      const progress = (done: number) => {
        const mark = progressMark(done, step.size, shown);
        if (mark === undefined) return;
        shown = mark;
        say(`writing ${step.file}: ${mark}%`);
      };
      progress(0);
      await effects.writeImage(step.file, step.device, step.size, step.sha256, progress);
      return;
    }
    case 'verifyDevice':
      await effects.verifyDevice(step.device, step.size, step.sha256);
      say(`${step.device}: read-back matches`);
      return;
    case 'eraseData':
      await effects.eraseData();
      return;
    case 'restoreAlarms':
      await effects.restoreAlarms();
      return;
    case 'writeRecord':
      await effects.writeRecord({
        completedAt: new Date(deps.clock.now()).toISOString(),
        factoryVersion: step.factoryVersion,
        reason: step.reason,
      });
      return;
    case 'removeStash':
      await effects.removeStash();
      return;
    case 'writeBootEnv':
      await effects.writeBootEnv(step.vars);
      say('boot environment reset: slot A, recovery request cleared');
      return;
    case 'reboot':
      // The log first: after a real reboot nothing more gets written.
      await deps.log.flush();
      await effects.reboot(step.mode, step.reason);
      return;
  }
}

/** The facts of a step worth a log line (paths, sizes, digests — no Maps). */
function stepFacts(step: RecoveryStep): Record<string, unknown> {
  if (step.kind === 'writeBootEnv') return { vars: Object.fromEntries(step.vars) };
  const { kind: _kind, ...facts } = step;
  return facts;
}
