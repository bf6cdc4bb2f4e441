/**
 * What a factory restore does, in which order — decided from the manifest and what is on disk,
 * without touching anything. Every step is safe to run again, and the whole plan is made afresh
 * at every start, so a power cut at any instant just means running it again from the top:
 *
 *  1. verify both factory images (size, SHA-256) and that each fits its slot — nothing is
 *     written before both pass;
 *  2. stash the alarm history on the recovery partition (it must survive the erase);
 *  3. write boot.img → boot_a and root.img → root_a, each read back and hashed;
 *  4. erase the data partition (data directory and logs);
 *  5. put the alarm history back, record the recovery, drop the stash;
 *  6. LAST, write the default boot environment: until then the request (or the torn/unbootable
 *     block) that brought the box here still stands, so a cut before it leads back here;
 *  7. reboot.
 *
 * Pure: no `node:*` imports.
 */
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { BOOTCHOOSER_VARS, defaultGrubenv, selectBootFromBlock } from '@clgw/core/slot/bootchooser.js';
import { grubReadEnv } from '@clgw/core/slot/grubenv.js';
import { type FactoryManifest, IMAGE_KINDS, type ImageKind, MANIFEST_FILE } from './manifest.js';

/** Where the recovery system reads and writes, all derived from {@link AppliancePaths}. */
export interface RecoveryLayout {
  /** The recovery partition (a directory in the simulator, the mounted partition on the box). */
  partition: string;
  manifest: string;
  /** The recovery system's own log: on the recovery partition, because step 4 erases the data partition's. */
  log: string;
  /** Where the alarm history waits while the data partition is erased. */
  stashDir: string;
  stash: string;
  /** The alarm history on the data partition (kept across a factory reset). */
  dataAlarms: string;
  /** The record of the last completed recovery, on the data partition. */
  record: string;
  grubenv: string;
  /** Directories whose content the erase removes (the directories themselves stay). */
  eraseDirs: string[];
  /** The simulator's reboot port (the agent's too: `AppliancePaths.rebootRequest`). */
  rebootRequest: string;
  /** A factory image's path on the recovery partition (the name comes from the validated manifest). */
  image(file: string): string;
  /** The slot A partition a factory image is written to. */
  device(kind: ImageKind): string;
}

/** The recovery paths of an appliance root; POSIX joins only, the appliance being Linux. */
export function recoveryLayout(paths: AppliancePaths): RecoveryLayout {
  const part = paths.recoveryPartition;
  const stashDir = `${part}/carry`;
  return {
    partition: part,
    manifest: `${part}/${MANIFEST_FILE}`,
    log: `${part}/recovery.log`,
    stashDir,
    stash: `${stashDir}/alarms.json`,
    dataAlarms: paths.alarms,
    record: paths.recoveryRecord,
    grubenv: paths.grubenv,
    eraseDirs: [paths.dataDir, paths.logDir],
    rebootRequest: paths.rebootRequest,
    image: (file) => `${part}/${file}`,
    device: (kind) => paths.partition(kind, 'A'),
  };
}

/** What is on disk at the start of a run (the only facts the plan depends on besides the manifest). */
export interface RecoverySurvey {
  /** `<data>/alarms.json` is a regular file. */
  dataAlarms: boolean;
  /** The stash `<recovery>/carry/alarms.json` exists (an earlier run was cut after stashing). */
  stash: boolean;
}

/** How the recovery system reboots: `systemctl reboot`, or the simulator's reboot request file. */
export type RebootMode = 'systemd' | 'simulator';

/** `<data>/recovery.json`: that a factory reset happened, when, to what, and why. */
export interface RecoveryRecord {
  completedAt: string;
  factoryVersion: string;
  reason: string;
}

export type RecoveryStep =
  | { kind: 'verifyImage'; image: ImageKind; file: string; size: number; sha256: string }
  | { kind: 'checkCapacity'; image: ImageKind; file: string; device: string; size: number }
  | { kind: 'stashAlarms' }
  | { kind: 'writeImage'; image: ImageKind; file: string; device: string; size: number; sha256: string }
  | { kind: 'verifyDevice'; image: ImageKind; device: string; size: number; sha256: string }
  | { kind: 'eraseData' }
  | { kind: 'restoreAlarms' }
  /** The executor adds `completedAt` from its clock when it runs the step. */
  | { kind: 'writeRecord'; factoryVersion: string; reason: string }
  | { kind: 'removeStash' }
  | { kind: 'writeBootEnv'; vars: Map<string, string> }
  | { kind: 'reboot'; mode: RebootMode; reason: string };

export type RecoveryStepKind = RecoveryStep['kind'];

export interface PlanInput {
  manifest: FactoryManifest;
  layout: RecoveryLayout;
  survey: RecoverySurvey;
  /** Why recovery runs (see {@link recoveryReason}). */
  reason: string;
  reboot: RebootMode;
}

/** The steps of one run, in order (see the module comment for why this order). */
export function planRecovery(input: PlanInput): RecoveryStep[] {
  const { manifest, layout, survey } = input;
  const images = IMAGE_KINDS.map((image) => ({ image, ...manifest[image], device: layout.device(image) }));
  const steps: RecoveryStep[] = [];
  for (const i of images) {
    steps.push({ kind: 'verifyImage', image: i.image, file: i.file, size: i.size, sha256: i.sha256 });
  }
  for (const i of images) {
    steps.push({ kind: 'checkCapacity', image: i.image, file: i.file, device: i.device, size: i.size });
  }
  // A stash left by a cut run is the original history: the data partition's copy may already be
  // the restored one (or erased), so an existing stash is never overwritten.
  if (survey.dataAlarms && !survey.stash) steps.push({ kind: 'stashAlarms' });
  for (const i of images) {
    steps.push({ kind: 'writeImage', ...i });
    steps.push({ kind: 'verifyDevice', image: i.image, device: i.device, size: i.size, sha256: i.sha256 });
  }
  steps.push({ kind: 'eraseData' });
  if (survey.dataAlarms || survey.stash) steps.push({ kind: 'restoreAlarms' });
  steps.push({ kind: 'writeRecord', factoryVersion: manifest.version, reason: input.reason });
  // Always: also clears a temp file a cut left in the stash directory.
  steps.push({ kind: 'removeStash' });
  steps.push({ kind: 'writeBootEnv', vars: defaultGrubenv() });
  steps.push({
    kind: 'reboot',
    mode: input.reboot,
    reason: `factory restore to ${manifest.version} completed`,
  });
  return steps;
}

/** The longest reason kept from grubenv (a block is 1 KiB; the record should stay a one-liner). */
const MAX_REASON = 200;

/**
 * Why recovery runs, from the grubenv bytes GRUB saw (undefined = no file): the agent's
 * `CLGW_RECOVERY_REASON` when it left one, else "requested" for `CLGW_RECOVERY=1`, else
 * "no bootable slot" (no slot OK and untried, or a block GRUB could not use). The block is read
 * as GRUB reads it, so a torn block still yields what came before the tear.
 */
export function recoveryReason(block: Uint8Array | undefined): string {
  const vars = block === undefined ? undefined : grubReadEnv(block);
  const given = vars?.get('CLGW_RECOVERY_REASON')?.trim();
  if (given) return given.length > MAX_REASON ? `${given.slice(0, MAX_REASON)}…` : given;
  if (vars?.get('CLGW_RECOVERY') === '1') return 'requested';
  return 'no bootable slot';
}

/** The bootloader's own account of the choice (for the log): the same rules as GRUB's. */
export function bootloaderAccount(block: Uint8Array | undefined): string {
  const choice = selectBootFromBlock(block);
  const vars = block === undefined ? undefined : grubReadEnv(block, BOOTCHOOSER_VARS);
  const seen = vars === undefined ? 'unreadable' : [...vars].map(([k, v]) => `${k}=${v}`).join(' ');
  return choice.target === 'recovery'
    ? `${choice.reason} [grubenv: ${seen}]`
    : `GRUB would boot slot ${choice.target} (${choice.reason}); recovery was started anyway [grubenv: ${seen}]`;
}

/**
 * Progress in whole tens of percent, for plain progress lines: the next mark to print once
 * `done` of `total` bytes are through, or undefined when `done` has not reached a new mark since
 * `shown`.
 */
export function progressMark(done: number, total: number, shown: number): number | undefined {
  const pct = total <= 0 ? 100 : Math.floor((Math.min(done, total) / total) * 10) * 10;
  return pct > shown ? pct : undefined;
}

/** One plain line for what a step is about to do. */
export function describeStep(step: RecoveryStep): string {
  switch (step.kind) {
    case 'verifyImage':
      return `verifying factory image ${step.file} (${step.size} bytes)…`;
    case 'checkCapacity':
      return `checking that ${step.file} fits ${step.device}…`;
    case 'stashAlarms':
      return 'keeping the alarm history aside…';
    case 'writeImage':
      return `writing ${step.file} to ${step.device}…`;
    case 'verifyDevice':
      return `reading back ${step.device}…`;
    case 'eraseData':
      return 'erasing the data partition…';
    case 'restoreAlarms':
      return 'restoring the alarm history…';
    case 'writeRecord':
      return `recording the factory restore to ${step.factoryVersion}…`;
    case 'removeStash':
      return 'removing the alarm stash…';
    case 'writeBootEnv':
      return 'writing the default boot environment (slot A)…';
    case 'reboot':
      return `rebooting (${step.mode})…`;
  }
}
