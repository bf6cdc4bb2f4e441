import { type SerializedError, serializedErrorSchema } from '@clgw/core/errors.js';
import type { SlotName } from '@clgw/core/platform/paths.js';
import * as z from 'zod';

/**
 * The update journal: the update machine's persisted snapshot on the data partition. It is written
 * (atomically) before every effect starts, so after a power cut or crash the agent knows exactly
 * which step was under way; `resumeStep` says what that means.
 */
export const UPDATE_STATES = [
  'idle',
  'checking',
  'downloading',
  'verifying',
  'installing',
  'waitingForCalls',
  'lastLook',
  'switching',
  'rebooting',
  'confirming',
  'rollingBack',
  'recovering',
  'factoryResetting',
  'committed',
  'rolledBack',
  'failed',
] as const;
export type UpdateState = (typeof UPDATE_STATES)[number];

export const JOURNAL_SCHEMA = 1;

/**
 * How many times in a row a check may be started and cut off (the agent crashed, was killed or lost
 * power while checking) before a start gives it up instead of running it again: a document that
 * crashes the agent would otherwise crash it at every start, for good.
 */
export const MAX_CHECK_ATTEMPTS = 3;

export type Trigger = 'boot' | 'window' | 'user';

export interface ArtifactRef {
  path: string;
  size: number;
  sha256: string;
  /** Its chunk index and chunk pack, when the release publishes them (adaptive update). */
  index?: {
    path: string;
    chunkSize: number;
    size: number;
    sha256: string;
    pack?: { path: string; size: number; sha256: string };
  };
}

/** What an update installs, fixed when the check accepted a signed release. */
export interface UpdateTarget {
  version: string;
  serial: number;
  platform: string;
  slot: SlotName;
  sourceSlot: SlotName;
  sourceVersion: string;
  /** The release's OS patch level (compat.yaml), which the booted root must declare. */
  osPatchLevel?: string;
  artifacts: { boot: ArtifactRef; root: ArtifactRef };
}

/**
 * Why the recovery system is asked to reset the appliance to factory default: a power cut in
 * the critical phase, a boot environment that cannot be read, or a technician's factory reset.
 */
export const RECOVERY_REASONS = ['critical-phase-failed', 'boot-environment-torn', 'factory-reset'] as const;
export type RecoveryReason = (typeof RECOVERY_REASONS)[number];

/**
 * A wait for the site's calls to end before something that drops them: the reboot into the new
 * slot (`update`), a technician's Reboot (`reboot`) — set on entering `waitingForCalls`, cleared on
 * leaving it, so an older agent after a rollback never meets it — or the swap of a `freeswitch` or
 * `tunnel` container (`containers`, kept in the container upgrade's state).
 */
export interface CallWait {
  for: 'update' | 'reboot' | 'containers';
  /** When the wait began. */
  since: string;
  /** Past this, the agent restarts whatever the calls; absent until planned (see planCallWait). */
  deadline?: string;
  /**
   * How long the voice service may fail to answer before its silence counts as no calls: a voice
   * service that is down carries no calls, a glitch of a few polls must not look like zero.
   */
  unknownGraceMs?: number;
  /** Calls up at the last poll; null while unknown (not asked yet, or the voice service failed). */
  active: number | null;
  /** Since when the voice service has failed to answer, without an answer in between. */
  unknownSince?: string;
  /** Why the last poll failed. */
  error?: SerializedError;
}

export interface UpdateResult {
  /**
   * `halted`: the last look before switching found the release withdrawn, replaced or no longer
   * named, and it was discarded (the box keeps its release; nothing failed).
   */
  outcome: 'committed' | 'rolledBack' | 'halted' | 'failed';
  version: string;
  at: string;
  message: string;
  error?: SerializedError;
}

/**
 * What the last check found; kept apart so a boot-time check never hides an update's result. A
 * check that could not be done (the server unreachable, a document refused) is `failed`: nothing
 * was downloaded or installed, so it is a warning, never an update error.
 */
export interface CheckResult {
  /**
   * `notOffered`: a release under a staged rollout whose cohort this appliance is not in.
   * `withdrawn`: the release named is withdrawn by the vendor (not installed, or kept if running).
   */
  outcome: 'upToDate' | 'available' | 'rejected' | 'notOffered' | 'withdrawn' | 'failed';
  /** The release found (`available`, `rejected`, `notOffered`, `withdrawn`), or the one running; empty when the check failed. */
  version: string;
  at: string;
  message: string;
  /** The rollout's percentage (`notOffered`). */
  percent?: number;
  /** `upToDate` with a running release newer than the one compat.yaml names (it was removed). */
  published?: string;
  /** Why the check failed. */
  error?: SerializedError;
}

export interface Journal {
  schema: typeof JOURNAL_SCHEMA;
  state: UpdateState;
  trigger?: Trigger;
  /** Install when a release is found (false: check only). */
  install?: boolean;
  /** Retry a release that was rolled back on this appliance before (technician's explicit request). */
  force?: boolean;
  target?: UpdateTarget;
  /**
   * Bytes of each artifact durably written into the target slot (fsynced before recorded); and the
   * artifacts whose SHA-256 is to be checked on the bytes as they arrive: a download checked only
   * by the read-back afterwards wrote them wrong, and checking in flight tells whether the server
   * sent other bytes (HASH_MISMATCH) or the disk did not keep them (READBACK_MISMATCH); and the
   * artifacts the download already read back from the slot, whole and matching (so the verify
   * phase does not read them again), marked by the download that read them. Both lists are
   * dropped once the read-back passes, before any switch: an older agent (after a rollback), whose
   * schema does not know them, never meets them.
   */
  written?: {
    boot: number;
    root: number;
    checkInFlight?: ('boot' | 'root')[];
    readBack?: ('boot' | 'root')[];
  };
  /**
   * The critical phase: set when switching the boot environment starts, `leftAt` when it is done.
   * An `enteredAt` without `leftAt` at start-up means the switch was cut off.
   */
  critical?: { enteredAt: string; leftAt?: string };
  /**
   * How many times the boot environment has been switched to the target slot in this update: the
   * first switch, plus one for each retry after the bootloader fell back without the new slot
   * having failed its health check (a power cut during its first boot looks exactly like that).
   */
  switches?: number;
  /** Set while rebooting back to the source slot after the new one failed its health check. */
  rollback?: { reason: SerializedError };
  /** Why the appliance is being handed to the recovery system (factory reset). */
  recovery?: { reason: RecoveryReason };
  /** Why the machine is rebooting: an update, a rollback, or a user's request. */
  reboot?: 'update' | 'rollback' | 'user';
  error?: SerializedError;
  result?: UpdateResult;
  check?: CheckResult;
  /**
   * Set while `checking` only: how many times this check has been started without finishing,
   * counting the run under way (persisted before it starts). A start that finds `checking` with
   * MAX_CHECK_ATTEMPTS gives the check up. Absent in every other state, so an older agent (after a
   * rollback), whose schema does not know it, never meets it in a journal it resumes.
   */
  checkAttempts?: number;
  /** Set while `waitingForCalls` only. */
  calls?: CallWait;
  updatedAt: string;
}

const slotSchema = z.enum(['A', 'B']);
const artifactSchema = z
  .object({
    path: z.string(),
    size: z.number().int().nonnegative(),
    sha256: z.string(),
    index: z
      .object({
        path: z.string(),
        chunkSize: z.number().int().positive(),
        size: z.number().int().positive(),
        sha256: z.string(),
        pack: z
          .object({ path: z.string(), size: z.number().int().positive(), sha256: z.string() })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
const errorSchema = serializedErrorSchema;

export const callWaitSchema = z
  .object({
    for: z.enum(['update', 'reboot', 'containers']),
    since: z.string(),
    deadline: z.string().optional(),
    unknownGraceMs: z.number().int().nonnegative().optional(),
    active: z.number().int().nonnegative().nullable(),
    unknownSince: z.string().optional(),
    error: errorSchema.optional(),
  })
  .strict();

export const journalSchema = z
  .object({
    schema: z.literal(JOURNAL_SCHEMA),
    state: z.enum(UPDATE_STATES),
    trigger: z.enum(['boot', 'window', 'user']).optional(),
    install: z.boolean().optional(),
    force: z.boolean().optional(),
    target: z
      .object({
        version: z.string(),
        serial: z.number().int(),
        platform: z.string(),
        slot: slotSchema,
        sourceSlot: slotSchema,
        sourceVersion: z.string(),
        osPatchLevel: z.string().optional(),
        artifacts: z.object({ boot: artifactSchema, root: artifactSchema }).strict(),
      })
      .strict()
      .optional(),
    written: z
      .object({
        boot: z.number().int().nonnegative(),
        root: z.number().int().nonnegative(),
        checkInFlight: z.array(z.enum(['boot', 'root'])).optional(),
        readBack: z.array(z.enum(['boot', 'root'])).optional(),
      })
      .strict()
      .optional(),
    critical: z.object({ enteredAt: z.string(), leftAt: z.string().optional() }).strict().optional(),
    switches: z.number().int().positive().optional(),
    rollback: z.object({ reason: errorSchema }).strict().optional(),
    recovery: z
      .object({ reason: z.enum(RECOVERY_REASONS) })
      .strict()
      .optional(),
    reboot: z.enum(['update', 'rollback', 'user']).optional(),
    error: errorSchema.optional(),
    result: z
      .object({
        outcome: z.enum(['committed', 'rolledBack', 'halted', 'failed']),
        version: z.string(),
        at: z.string(),
        message: z.string(),
        error: errorSchema.optional(),
      })
      .strict()
      .optional(),
    check: z
      .object({
        outcome: z.enum(['upToDate', 'available', 'rejected', 'notOffered', 'withdrawn', 'failed']),
        version: z.string(),
        at: z.string(),
        message: z.string(),
        percent: z.number().min(0).max(100).optional(),
        published: z.string().optional(),
        error: errorSchema.optional(),
      })
      .strict()
      .optional(),
    checkAttempts: z.number().int().positive().optional(),
    calls: callWaitSchema.optional(),
    updatedAt: z.string(),
  })
  .strict();

export function initialJournal(now: number): Journal {
  return { schema: JOURNAL_SCHEMA, state: 'idle', updatedAt: new Date(now).toISOString() };
}

/** Where the machine goes at start-up, given the state the journal was left in. */
export type ResumeStep =
  | 'startup'
  | 'checking'
  | 'checkAbandoned'
  | 'downloading'
  | 'verifying'
  | 'installing'
  | 'waitingForCalls'
  | 'lastLook'
  | 'criticalInterrupted'
  | 'confirming'
  | 'recovering'
  | 'factoryResetting';

/**
 * The resume table. Each interrupted state maps to the step that is safe to run next:
 * a check is repeated — unless it was cut off MAX_CHECK_ATTEMPTS times already, then it is given
 * up; a download resumes from its durable offsets; verify and install are redone (they are
 * idempotent); a wait for calls to end before the reboot into the new slot goes on waiting, with
 * its deadline (a wait before a technician's Reboot is over: the cut rebooted); a last look is
 * taken again (it changes nothing but the journal, after it); a switch that was
 * cut off is the critical phase failing; after a reboot the new slot is confirmed. Settled states
 * start normally.
 */
export function resumeStep(journal: Journal): ResumeStep {
  switch (journal.state) {
    case 'checking':
      return (journal.checkAttempts ?? 0) >= MAX_CHECK_ATTEMPTS ? 'checkAbandoned' : 'checking';
    case 'downloading':
      return 'downloading';
    case 'verifying':
      return 'verifying';
    case 'installing':
      return 'installing';
    case 'waitingForCalls':
      return journal.calls?.for === 'update' && journal.target ? 'waitingForCalls' : 'startup';
    case 'lastLook':
      return journal.target ? 'lastLook' : 'startup';
    case 'switching':
      // The grubenv write is atomic (in place, every variable in its first 512-byte sector, which
      // the disk writes whole), but the journal cannot tell whether it happened before the cut.
      return journal.critical?.leftAt ? 'confirming' : 'criticalInterrupted';
    case 'recovering':
      return 'recovering';
    case 'factoryResetting':
      return 'factoryResetting';
    case 'rebooting':
    case 'confirming':
    case 'rollingBack':
      return journal.target ? 'confirming' : 'startup';
    case 'idle':
    case 'committed':
    case 'rolledBack':
    case 'failed':
      return 'startup';
  }
}
