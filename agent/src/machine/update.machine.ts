import type { SerializedError } from '@clgw/core/errors.js';
import { assign, fromCallback, fromPromise, setup } from 'xstate';
import type { LastLook } from '../release/policy.js';
import { answerCallWait, type CallWaitEnd } from '../voice/call-wait.js';
import {
  type CallWait,
  type CheckResult,
  initialJournal,
  type Journal,
  type ResumeStep,
  resumeStep,
  type Trigger,
  type UpdateResult,
  type UpdateState,
  type UpdateTarget,
} from './journal.js';

/** What a check found. */
export type CheckOutcome =
  /** `published`: the older release compat.yaml names, when the running one is newer (kept). */
  | { kind: 'upToDate'; version: string; published?: string }
  | { kind: 'available'; target: UpdateTarget }
  | { kind: 'rejected'; version: string; message: string }
  /** A release under a staged rollout whose cohort this appliance is not (yet) in: nothing to do. */
  | { kind: 'notOffered'; version: string; percent: number }
  /**
   * The release compat.yaml names is withdrawn: not installed (`running: false`), or running here
   * and kept (`running: true`) — a withdrawal is not a downgrade.
   */
  | { kind: 'withdrawn'; version: string; reason: string; running: boolean };

/** What confirming the booted slot after a reboot decided. */
export type ConfirmOutcome =
  | { kind: 'committed'; version: string }
  /** The bootloader fell back with no health check failed: switch to the new slot once more. */
  | { kind: 'switchAgain'; reason: SerializedError }
  | { kind: 'rollback'; reason: SerializedError }
  | { kind: 'rolledBack'; version: string; reason: SerializedError };

/** A planned wait for calls: when it ends whatever the calls, and how long silence may last. */
export interface CallWaitPlan {
  deadline: string;
  unknownGraceMs: number;
}

/**
 * The effects the update machine invokes. Each is idempotent (safe to run again after a cut),
 * receives the journal that was persisted just before it started, and throws a ClgwError.
 * The machine itself imports nothing from node: it is the pure core; `main.ts` injects these.
 */
export interface UpdateEffects {
  /** Persist the journal atomically (before every effect, and on entering a settled state). */
  persist(journal: Journal): Promise<void>;
  /** Health-check the booted slot at start-up and mark it good when it passes. */
  startup(journal: Journal, signal: AbortSignal): Promise<void>;
  check(journal: Journal, signal: AbortSignal): Promise<CheckOutcome>;
  /**
   * Streams the artifacts into the target slot. `checkpoint` reports offsets that are durable
   * (fsynced and persisted), so the machine's journal never falls behind the disk's.
   */
  download(journal: Journal, signal: AbortSignal, checkpoint: (written: Written) => void): Promise<void>;
  verify(journal: Journal, signal: AbortSignal): Promise<void>;
  install(journal: Journal, signal: AbortSignal): Promise<void>;
  /**
   * The last look before switching: is the installed target still what compat.yaml offers? A
   * document that cannot be fetched or judged is `unjudged`; it never throws for that.
   */
  lastLook(journal: Journal, signal: AbortSignal): Promise<LastLook>;
  /** The critical phase: switch the boot environment to the target slot. */
  switchBoot(journal: Journal, signal: AbortSignal): Promise<void>;
  reboot(journal: Journal): Promise<void>;
  /** The wait's deadline and grace, or null when no voice service is configured. Never throws. */
  planCallWait(journal: Journal): Promise<CallWaitPlan | null>;
  /** How many calls the voice service has up; throws (VOICE_*) when it cannot tell. */
  countCalls(journal: Journal, signal: AbortSignal): Promise<number>;
  /** The pause between two polls of the voice service, on the injected clock. */
  pauseCalls(signal: AbortSignal): Promise<void>;
  /** Says in the log why a wait for calls ended (and how many calls the restart cuts). */
  callWaitEnded(journal: Journal, how: CallWaitEnd): void;
  confirm(journal: Journal, signal: AbortSignal): Promise<ConfirmOutcome>;
  /** Mark the target slot bad so the next boot returns to the source slot. */
  rollBack(journal: Journal, signal: AbortSignal): Promise<void>;
  /**
   * Hand the appliance to the recovery system (factory reset) and reboot; after a cut in the
   * critical phase or with a torn boot environment it first raises the alarm.
   */
  recover(journal: Journal): Promise<void>;
}

export type Written = NonNullable<Journal['written']>;

export type UpdateEvent =
  | { type: 'CHECK'; install: boolean; trigger: Trigger; force?: boolean }
  | { type: 'RETRY' }
  | { type: 'REBOOT' }
  | { type: 'FACTORY_RESET' }
  /** A technician's "Reboot now" while waiting for calls, confirmed (see Agent.request). */
  | { type: 'REBOOT_NOW' }
  // Internal: sent back by the download actor.
  | { type: 'CHECKPOINT'; written: Written }
  | { type: 'DOWNLOADED' }
  | { type: 'DOWNLOAD_FAILED'; error: unknown }
  // Internal: sent back by the calls watcher.
  | { type: 'CALLS_PLANNED'; plan: CallWaitPlan | null }
  | { type: 'CALLS'; active: number | null; error?: SerializedError }
  | { type: 'CALLS_FAILED'; error: unknown };

export interface MachineInput {
  journal?: Journal;
  now: () => number;
}

interface Context {
  journal: Journal;
  now: () => number;
}

/** A check that found nothing because it could not be done: what the views show as a warning. */
function failedCheck(now: number, error: SerializedError): CheckResult {
  return { outcome: 'failed', version: '', at: new Date(now).toISOString(), message: error.message, error };
}

/** The machine state names that are not themselves journal states. */
const TRANSIENT = new Set(['resume', 'startup', 'criticalInterrupted']);

function stamp(context: Context, patch: Partial<Journal>): Journal {
  return { ...context.journal, ...patch, updatedAt: new Date(context.now()).toISOString() };
}

function result(
  context: Context,
  outcome: UpdateResult['outcome'],
  version: string,
  message: string,
  error?: SerializedError,
): UpdateResult {
  return {
    outcome,
    version,
    at: new Date(context.now()).toISOString(),
    message,
    ...(error ? { error } : {}),
  };
}

/** Same release into the same slot: the bytes already written into that slot are still good. */
function sameRelease(a: UpdateTarget | undefined, b: UpdateTarget): boolean {
  return (
    a !== undefined &&
    a.slot === b.slot &&
    a.artifacts.boot.sha256 === b.artifacts.boot.sha256 &&
    a.artifacts.root.sha256 === b.artifacts.root.sha256
  );
}

/** A wait for calls, as it begins (planned by the watcher's first step). */
function beginCallWait(context: Context, what: CallWait['for']): CallWait {
  return { for: what, since: new Date(context.now()).toISOString(), active: null };
}

function checkResult(context: Context, o: CheckOutcome): CheckResult {
  const at = new Date(context.now()).toISOString();
  switch (o.kind) {
    case 'upToDate':
      return o.published === undefined
        ? { outcome: 'upToDate', version: o.version, at, message: `gateway OS ${o.version} is up to date` }
        : {
            outcome: 'upToDate',
            version: o.version,
            at,
            message: `this gateway runs gateway OS ${o.version}, newer than ${o.published} that the vendor publishes now; it keeps running it until a newer release is published`,
            published: o.published,
          };
    case 'available':
      return {
        outcome: 'available',
        version: o.target.version,
        at,
        message: `gateway OS ${o.target.version} is available`,
      };
    case 'rejected':
      return { outcome: 'rejected', version: o.version, at, message: o.message };
    case 'notOffered':
      return {
        outcome: 'notOffered',
        version: o.version,
        at,
        message: `gateway OS ${o.version} is available but not yet offered to this gateway (rollout ${o.percent} %)`,
        percent: o.percent,
      };
    case 'withdrawn':
      return {
        outcome: 'withdrawn',
        version: o.version,
        at,
        message: o.running
          ? `gateway OS ${o.version} was withdrawn by the vendor (${o.reason}); this gateway keeps running it until a newer release is published`
          : `gateway OS ${o.version} was withdrawn by the vendor (${o.reason}): not installed`,
      };
  }
}

/**
 * The artifact a failed read-back asks to download again (verify.ts), if any — never one already
 * downloaded again checked in flight: one more download per artifact, whatever the verify says.
 */
function downloadAgain(context: Context, event: { error?: unknown }): 'boot' | 'root' | undefined {
  const e = errorOf(event);
  const kind = e.details?.downloadAgain;
  if (e.code !== 'READBACK_MISMATCH' || (kind !== 'boot' && kind !== 'root')) return undefined;
  return context.journal.written?.checkInFlight?.includes(kind) ? undefined : kind;
}

function errorOf(event: { error?: unknown }): SerializedError {
  const e = event.error as Partial<SerializedError> & { message?: string };
  if (e && typeof e.code === 'string' && typeof e.message === 'string') {
    return {
      code: e.code as SerializedError['code'],
      message: e.message,
      transient: Boolean(e.transient),
      ...(e.details ? { details: e.details } : {}),
    };
  }
  return { code: 'INTERNAL', message: e?.message ?? String(event.error), transient: false };
}

/**
 * Builds the update machine around injected effects.
 *
 * idle → checking → downloading → verifying → installing → waitingForCalls → lastLook → switching
 * (critical) → rebooting → confirming → committed | rollingBack → rebooting → rolledBack; a last look
 * that finds the release halted → idle, the target forgotten; any effect failing →
 * failed, from which RETRY checks again and REBOOT restarts the appliance (after waiting for calls
 * too). Every effect is wrapped so that the journal (with the state about to run) is persisted
 * before the effect starts.
 */
export function createUpdateMachine(effects: UpdateEffects) {
  /** The effect, preceded by persisting the journal it runs under. */
  const persisted = <T>(run: (j: Journal, s: AbortSignal) => Promise<T>) =>
    fromPromise<T, Journal>(async ({ input, signal }) => {
      await effects.persist(input);
      return run(input, signal);
    });

  /** Input for an effect: the journal as it will stand while the effect runs. */
  const under =
    (state: UpdateState) =>
    ({ context }: { context: Context }): Journal =>
      stamp(context, { state });

  /** What every settled state (idle, committed, rolledBack, failed) accepts. */
  const settledEvents = {
    CHECK: { target: 'checking', actions: 'acceptCheck' },
    FACTORY_RESET: { target: 'factoryResetting', actions: 'acceptFactoryReset' },
  } as const;

  /** Hand the appliance to the recovery system; the process ends with the reboot. */
  const handOver = (state: 'recovering' | 'factoryResetting') =>
    ({
      invoke: {
        id: 'recover',
        src: 'recover',
        input: under(state),
        onError: { target: 'failed', actions: 'recordFailure' },
      },
    }) as const;

  /**
   * Leaving the wait for calls when `when` holds: into the last look before the switch for an
   * update (a technician's "Reboot now" too), into the reboot for a technician's Reboot. The log says why first (`how`, else the poll's answer's verdict);
   * the wait is then cleared from the journal.
   */
  const proceed = (when: (a: { context: Context; event: UpdateEvent }) => boolean, how?: CallWaitEnd) =>
    (['update', 'reboot'] as const).map((what) => ({
      guard: (a: { context: Context; event: UpdateEvent }) =>
        a.context.journal.calls?.for === what && when(a),
      target: what === 'update' ? 'lastLook' : 'rebooting',
      actions: [{ type: 'endCallWait', params: how } as const, 'clearCalls' as const],
    }));

  return setup({
    types: {
      context: {} as Context,
      events: {} as UpdateEvent,
      input: {} as MachineInput,
    },
    actors: {
      persist: fromPromise<void, Journal>(({ input }) => effects.persist(input)),
      // Start-up changes nothing the journal records, so nothing to persist before it.
      startup: fromPromise<void, Journal>(({ input, signal }) => effects.startup(input, signal)),
      check: persisted((j, s) => effects.check(j, s)),
      download: fromCallback<UpdateEvent, Journal>(({ input, sendBack }) => {
        const abort = new AbortController();
        effects
          .persist(input)
          .then(() =>
            effects.download(input, abort.signal, (written) => sendBack({ type: 'CHECKPOINT', written })),
          )
          .then(
            () => sendBack({ type: 'DOWNLOADED' }),
            (error: unknown) => sendBack({ type: 'DOWNLOAD_FAILED', error }),
          );
        return () => abort.abort();
      }),
      /**
       * The wait for calls: plans it once (its deadline persisted before anything else), then
       * asks the voice service every poll and sends each answer to the machine, which decides.
       */
      watchCalls: fromCallback<UpdateEvent, Journal>(({ input, sendBack }) => {
        const abort = new AbortController();
        const { signal } = abort;
        const send = (event: UpdateEvent) => {
          if (!signal.aborted) sendBack(event);
        };
        const watch = async () => {
          await effects.persist(input);
          if (input.calls?.deadline === undefined) {
            send({ type: 'CALLS_PLANNED', plan: await effects.planCallWait(input) });
            return;
          }
          while (!signal.aborted) {
            try {
              send({ type: 'CALLS', active: await effects.countCalls(input, signal) });
            } catch (error) {
              send({ type: 'CALLS', active: null, error: errorOf({ error }) });
            }
            await effects.pauseCalls(signal);
          }
        };
        watch().catch((error: unknown) => send({ type: 'CALLS_FAILED', error }));
        return () => abort.abort();
      }),
      verify: persisted((j, s) => effects.verify(j, s)),
      install: persisted((j, s) => effects.install(j, s)),
      lastLook: persisted((j, s) => effects.lastLook(j, s)),
      switchBoot: persisted((j, s) => effects.switchBoot(j, s)),
      reboot: persisted((j) => effects.reboot(j)),
      confirm: persisted((j, s) => effects.confirm(j, s)),
      rollBack: persisted((j, s) => effects.rollBack(j, s)),
      recover: persisted((j) => effects.recover(j)),
    },
    guards: {
      resumesTo: ({ context }, step: ResumeStep) => resumeStep(context.journal) === step,
    },
    actions: {
      acceptCheck: assign(({ context, event }) => {
        if (event.type !== 'CHECK') return {};
        return {
          journal: stamp(context, {
            install: event.install,
            trigger: event.trigger,
            force: event.force ?? false,
            error: undefined,
            checkAttempts: undefined,
          }),
        };
      }),
      acceptFactoryReset: assign(({ context }) => ({
        journal: stamp(context, { recovery: { reason: 'factory-reset' }, error: undefined }),
      })),
      recordCheckFailure: assign(({ context, event }) => {
        const check = failedCheck(context.now(), errorOf(event as { error?: unknown }));
        return { journal: stamp(context, { check }) };
      }),
      /**
       * A check cut off MAX_CHECK_ATTEMPTS times in a row is not run a fourth time: whatever stops
       * the agent during it (a signed document that exhausts its memory, say) would stop it at every
       * start. Recorded as a failed check; the next is the next update window's, start's or user's.
       */
      abandonCheck: assign(({ context }) => {
        const attempts = context.journal.checkAttempts ?? 0;
        const error: SerializedError = {
          code: 'CHECK_INTERRUPTED',
          message:
            `the check of compat.yaml was interrupted ${attempts} times in a row (the agent stopped ` +
            'during it each time), so it was given up',
          transient: false,
          details: { attempts },
        };
        return {
          journal: stamp(context, { check: failedCheck(context.now(), error), checkAttempts: undefined }),
        };
      }),
      endCallWait: ({ context, event }, how: CallWaitEnd | undefined) => {
        const a =
          event.type === 'CALLS'
            ? answerCallWait(context.journal.calls!, context.now(), event.active, event.error)
            : undefined;
        effects.callWaitEnded(
          { ...context.journal, calls: a?.calls ?? context.journal.calls },
          how ?? a?.end ?? 'override',
        );
      },
      clearCalls: assign(({ context }) => ({ journal: stamp(context, { calls: undefined }) })),
      forgetTarget: assign(({ context }) => ({ journal: stamp(context, { target: undefined }) })),
      recordFailure: assign(({ context, event }) => {
        const error = errorOf(event as { error?: unknown });
        return {
          journal: stamp(context, {
            error,
            result: result(context, 'failed', context.journal.target?.version ?? '', error.message, error),
          }),
        };
      }),
    },
  }).createMachine({
    id: 'update',
    context: ({ input }) => ({ journal: input.journal ?? initialJournal(input.now()), now: input.now }),
    initial: 'resume',
    states: {
      /** The resume table, applied once at start-up. */
      resume: {
        always: [
          // An update cut off before the switch runs on the source slot, which this boot must
          // still mark good: start-up first, then the interrupted step (see startup.onDone).
          { guard: { type: 'resumesTo', params: 'criticalInterrupted' }, target: 'criticalInterrupted' },
          { guard: { type: 'resumesTo', params: 'confirming' }, target: 'confirming' },
          { guard: { type: 'resumesTo', params: 'recovering' }, target: 'recovering' },
          { guard: { type: 'resumesTo', params: 'factoryResetting' }, target: 'factoryResetting' },
          { target: 'startup' },
        ],
      },
      startup: {
        invoke: {
          id: 'startup',
          src: 'startup',
          input: ({ context }) => context.journal,
          onDone: [
            // A check given up goes where a failed check goes: back to the failed update it retried
            // (Retry and Reboot still offered), else idle.
            {
              guard: ({ context }) =>
                resumeStep(context.journal) === 'checkAbandoned' && context.journal.error !== undefined,
              target: 'failed',
              actions: 'abandonCheck',
            },
            {
              guard: { type: 'resumesTo', params: 'checkAbandoned' },
              target: 'idle',
              actions: ['abandonCheck', 'forgetTarget'],
            },
            { guard: { type: 'resumesTo', params: 'checking' }, target: 'checking' },
            { guard: { type: 'resumesTo', params: 'downloading' }, target: 'downloading' },
            { guard: { type: 'resumesTo', params: 'verifying' }, target: 'verifying' },
            { guard: { type: 'resumesTo', params: 'installing' }, target: 'installing' },
            { guard: { type: 'resumesTo', params: 'waitingForCalls' }, target: 'waitingForCalls' },
            {
              // The wait ended before the cut, but the power cut itself restarted the site's
              // phones, which call again: a new wait, then the last look.
              guard: { type: 'resumesTo', params: 'lastLook' },
              target: 'waitingForCalls',
              actions: assign(({ context }) => ({
                journal: stamp(context, { calls: beginCallWait(context, 'update') }),
              })),
            },
            { target: 'idle' },
          ],
          onError: [
            {
              // A boot environment that cannot be read can neither be trusted nor repaired in
              // place: the recovery system rebuilds it.
              guard: ({ event }) => errorOf(event).code === 'GRUBENV_INVALID',
              target: 'recovering',
              actions: assign(({ context, event }) => ({
                journal: stamp(context, {
                  recovery: { reason: 'boot-environment-torn' },
                  error: errorOf(event),
                  checkAttempts: undefined,
                }),
              })),
            },
            {
              // A booted slot that fails its health check is not marked good (the bootloader falls
              // back at the next boot); the agent stays up so the technician can see why.
              target: 'failed',
              actions: assign(({ context, event }) => {
                const error = errorOf(event);
                return {
                  journal: stamp(context, {
                    error,
                    result: result(context, 'failed', '', error.message, error),
                    checkAttempts: undefined,
                  }),
                };
              }),
            },
          ],
        },
      },
      idle: {
        invoke: { id: 'persist', src: 'persist', input: under('idle') },
        on: settledEvents,
      },
      checking: {
        // Counted in the journal persisted before the check starts, so a run that never ends is
        // counted too (see resumeStep); cleared whichever way the check ends.
        entry: assign(({ context }) => ({
          journal: stamp(context, { checkAttempts: (context.journal.checkAttempts ?? 0) + 1 }),
        })),
        exit: assign(({ context }) => ({ journal: stamp(context, { checkAttempts: undefined }) })),
        invoke: {
          id: 'check',
          src: 'check',
          input: under('checking'),
          onDone: [
            {
              guard: ({ context, event }) =>
                event.output.kind === 'available' && context.journal.install === true,
              target: 'downloading',
              actions: assign(({ context, event }) => ({
                journal: stamp(context, {
                  target: event.output.kind === 'available' ? event.output.target : undefined,
                  // Retrying the same release resumes its download where the last attempt stopped.
                  written:
                    event.output.kind === 'available' &&
                    sameRelease(context.journal.target, event.output.target)
                      ? context.journal.written
                      : { boot: 0, root: 0 },
                  error: undefined,
                  critical: undefined,
                  switches: undefined,
                  rollback: undefined,
                  check: checkResult(context, event.output),
                }),
              })),
            },
            {
              target: 'idle',
              actions: assign(({ context, event }) => ({
                journal: stamp(context, {
                  check: checkResult(context, event.output),
                  target: undefined,
                  error: undefined,
                }),
              })),
            },
          ],
          // Nothing was downloaded or installed: a warning, and the box stays where it was. A
          // technician's Retry of a failed update goes back to that failure (Retry and Reboot
          // stay offered); any other check goes back to idle.
          onError: [
            {
              guard: ({ context }) => context.journal.error !== undefined,
              target: 'failed',
              actions: 'recordCheckFailure',
            },
            { target: 'idle', actions: ['recordCheckFailure', 'forgetTarget'] },
          ],
        },
      },
      downloading: {
        invoke: { id: 'download', src: 'download', input: under('downloading') },
        on: {
          CHECKPOINT: {
            actions: assign(({ context, event }) => ({
              journal: stamp(context, { written: event.written }),
            })),
          },
          DOWNLOADED: {
            target: 'verifying',
            actions: assign(({ context }) => {
              const a = context.journal.target!.artifacts;
              return {
                journal: stamp(context, {
                  written: { ...context.journal.written, boot: a.boot.size, root: a.root.size },
                }),
              };
            }),
          },
          DOWNLOAD_FAILED: { target: 'failed', actions: 'recordFailure' },
        },
      },
      verifying: {
        invoke: {
          id: 'verify',
          src: 'verify',
          input: under('verifying'),
          onDone: {
            target: 'installing',
            actions: assign(({ context }) => {
              const a = context.journal.target!.artifacts;
              return { journal: stamp(context, { written: { boot: a.boot.size, root: a.root.size } }) };
            }),
          },
          onError: [
            {
              // Written without its SHA-256 checked in flight and found wrong: once more, checked.
              guard: ({ context, event }) => downloadAgain(context, event) !== undefined,
              target: 'downloading',
              actions: assign(({ context, event }) => {
                const kind = downloadAgain(context, event)!;
                const written = { boot: 0, root: 0, ...context.journal.written, [kind]: 0 };
                return {
                  journal: stamp(context, {
                    written: { ...written, checkInFlight: [...(written.checkInFlight ?? []), kind] },
                  }),
                };
              }),
            },
            { target: 'failed', actions: 'recordFailure' },
          ],
        },
      },
      installing: {
        invoke: {
          id: 'install',
          src: 'install',
          input: under('installing'),
          onDone: {
            target: 'waitingForCalls',
            actions: assign(({ context }) => ({
              journal: stamp(context, { calls: beginCallWait(context, 'update') }),
            })),
          },
          onError: { target: 'failed', actions: 'recordFailure' },
        },
      },
      /**
       * Before anything that drops the site's calls: poll the voice service until no call is up,
       * its silence outlasts the grace, the deadline passes, or a technician confirms "Reboot
       * now". Persisted with its deadline, so a cut resumes the same wait.
       */
      waitingForCalls: {
        invoke: { id: 'watchCalls', src: 'watchCalls', input: under('waitingForCalls') },
        on: {
          CALLS_PLANNED: [
            ...proceed(({ event }) => event.type === 'CALLS_PLANNED' && event.plan === null, 'noVoice'),
            {
              // Entered again so the watcher starts over from the journal with its plan persisted.
              target: 'waitingForCalls',
              reenter: true,
              actions: assign(({ context, event }) => ({
                journal: stamp(context, {
                  calls: { ...context.journal.calls!, ...(event.type === 'CALLS_PLANNED' ? event.plan : {}) },
                }),
              })),
            },
          ],
          CALLS: [
            ...proceed(
              ({ context, event }) =>
                event.type === 'CALLS' &&
                answerCallWait(context.journal.calls!, context.now(), event.active, event.error).end !==
                  undefined,
            ),
            {
              actions: assign(({ context, event }) => {
                if (event.type !== 'CALLS') return {};
                const { calls } = answerCallWait(
                  context.journal.calls!,
                  context.now(),
                  event.active,
                  event.error,
                );
                return { journal: stamp(context, { calls }) };
              }),
            },
          ],
          REBOOT_NOW: proceed(() => true, 'override'),
          CALLS_FAILED: {
            target: 'failed',
            actions: ['recordFailure', 'clearCalls'],
          },
        },
      },
      /**
       * The last look before the critical phase: the wait for calls can last hours, and a release
       * the vendor withdrew (or replaced, or stopped naming) meanwhile must not be switched to. A
       * halted release is discarded — the target forgotten, the result says why — and the box is
       * idle: nothing is wrong with it, it keeps running its release. The downloaded slot stays as
       * it was, never bootable (only the switch makes it so); the next check starts over.
       *
       * A document that cannot be fetched or judged now (the mirror unreachable, a signature that
       * no longer verifies, an expired or stale document) does not hold the update back: the
       * release was verified when it was downloaded, and a network blip must not keep a ready
       * update hostage for another window. The effect says so in the log.
       */
      lastLook: {
        invoke: {
          id: 'lastLook',
          src: 'lastLook',
          input: under('lastLook'),
          onDone: [
            {
              guard: ({ event }) => event.output.kind === 'halted',
              target: 'idle',
              actions: assign(({ context, event }) => {
                const v = context.journal.target?.version ?? '';
                const o = event.output;
                const message =
                  o.kind !== 'halted'
                    ? ''
                    : o.reason !== undefined
                      ? `the vendor withdrew ${v} before this gateway switched to it (${o.reason}): discarded`
                      : `${o.message}: ${v} was discarded before this gateway switched to it`;
                return {
                  journal: stamp(context, {
                    result: result(context, 'halted', v, message),
                    target: undefined,
                    written: undefined,
                    error: undefined,
                  }),
                };
              }),
            },
            { target: 'switching' },
          ],
          // The effect reports what it cannot judge rather than throwing; whatever else it throws
          // is no reason to hold the update either (above).
          onError: 'switching',
        },
      },
      /** The critical phase: entered and left with the journal marking both ends. */
      switching: {
        entry: assign(({ context }) => ({
          journal: stamp(context, {
            critical: { enteredAt: new Date(context.now()).toISOString() },
            switches: (context.journal.switches ?? 0) + 1,
          }),
        })),
        invoke: {
          id: 'switchBoot',
          src: 'switchBoot',
          input: under('switching'),
          onDone: {
            target: 'rebooting',
            actions: assign(({ context }) => ({
              journal: stamp(context, {
                critical: { ...context.journal.critical!, leftAt: new Date(context.now()).toISOString() },
                reboot: 'update',
              }),
            })),
          },
          onError: { target: 'failed', actions: 'recordFailure' },
        },
      },
      /** A cut in the critical phase: alarm, then factory reset through the recovery system. */
      criticalInterrupted: {
        always: {
          target: 'recovering',
          actions: assign(({ context }) => {
            const version = context.journal.target?.version ?? '';
            const error: SerializedError = {
              code: 'CRITICAL_PHASE_FAILED',
              message: `the update to ${version || '?'} was interrupted while switching the boot environment`,
              transient: false,
            };
            return {
              journal: stamp(context, {
                error,
                recovery: { reason: 'critical-phase-failed' },
                result: result(context, 'failed', version, error.message, error),
              }),
            };
          }),
        },
      },
      /** Handing over to the recovery system (alarm first when it is not the user's request). */
      recovering: handOver('recovering'),
      /** A technician's factory reset: the same hand-over, without an alarm. */
      factoryResetting: handOver('factoryResetting'),
      rebooting: {
        invoke: { id: 'reboot', src: 'reboot', input: under('rebooting') },
      },
      confirming: {
        invoke: {
          id: 'confirm',
          src: 'confirm',
          input: under('confirming'),
          onDone: [
            {
              guard: ({ event }) => event.output.kind === 'committed',
              target: 'committed',
              actions: assign(({ context }) => {
                const v = context.journal.target!.version;
                return {
                  journal: stamp(context, {
                    result: result(context, 'committed', v, `gateway OS ${v} is installed and committed`),
                    reboot: undefined,
                    error: undefined,
                  }),
                };
              }),
            },
            { guard: ({ event }) => event.output.kind === 'switchAgain', target: 'switching' },
            {
              guard: ({ event }) => event.output.kind === 'rollback',
              target: 'rollingBack',
              actions: assign(({ context, event }) => ({
                journal: stamp(context, {
                  rollback: { reason: event.output.kind === 'rollback' ? event.output.reason : errorOf({}) },
                }),
              })),
            },
            {
              target: 'rolledBack',
              actions: assign(({ context, event }) => {
                const o = event.output;
                const reason = o.kind === 'rolledBack' ? o.reason : errorOf({});
                const v = context.journal.target!.version;
                return {
                  journal: stamp(context, {
                    result: result(
                      context,
                      'rolledBack',
                      v,
                      `gateway OS ${v} was rolled back: ${reason.message}`,
                      reason,
                    ),
                    reboot: undefined,
                  }),
                };
              }),
            },
          ],
          onError: { target: 'failed', actions: 'recordFailure' },
        },
      },
      rollingBack: {
        invoke: {
          id: 'rollBack',
          src: 'rollBack',
          input: under('rollingBack'),
          onDone: {
            target: 'rebooting',
            actions: assign(({ context }) => ({ journal: stamp(context, { reboot: 'rollback' }) })),
          },
          onError: { target: 'failed', actions: 'recordFailure' },
        },
      },
      committed: {
        invoke: { id: 'persist', src: 'persist', input: under('committed') },
        on: settledEvents,
      },
      rolledBack: {
        invoke: { id: 'persist', src: 'persist', input: under('rolledBack') },
        on: settledEvents,
      },
      failed: {
        invoke: { id: 'persist', src: 'persist', input: under('failed') },
        on: {
          ...settledEvents,
          RETRY: {
            target: 'checking',
            // The failure stays recorded until the check succeeds: a check that fails again goes
            // back to it.
            actions: assign(({ context }) => ({
              journal: stamp(context, { install: true, trigger: 'user', checkAttempts: undefined }),
            })),
          },
          REBOOT: {
            target: 'waitingForCalls',
            actions: assign(({ context }) => ({
              journal: stamp(context, {
                reboot: 'user',
                target: undefined,
                calls: beginCallWait(context, 'reboot'),
              }),
            })),
          },
        },
      },
    },
  });
}

export type UpdateMachine = ReturnType<typeof createUpdateMachine>;

/** The journal state a machine state stands for (transient start-up states map to idle). */
export function journalStateOf(value: string): UpdateState {
  return TRANSIENT.has(value) ? 'idle' : (value as UpdateState);
}
