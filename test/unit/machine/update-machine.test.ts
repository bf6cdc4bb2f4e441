import { ClgwError } from '@clgw/core/errors.js';
import { describe, expect, it } from 'vitest';
import { createActor, waitFor } from 'xstate';
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import {
  initialJournal,
  type Journal,
  journalSchema,
  MAX_CHECK_ATTEMPTS,
  resumeStep,
  UPDATE_STATES,
  type UpdateTarget,
} from '../../../agent/src/machine/journal.js';
import {
  type CheckOutcome,
  type ConfirmOutcome,
  createUpdateMachine,
  type UpdateEffects,
} from '../../../agent/src/machine/update.machine.js';

const NOW = Date.UTC(2026, 10, 21);
const target: UpdateTarget = {
  version: '1.1.0',
  serial: 2,
  platform: 'virtual',
  slot: 'B',
  sourceSlot: 'A',
  sourceVersion: '1.0.0',
  artifacts: {
    boot: { path: 'releases/1.1.0/boot.img', size: 10, sha256: 'a'.repeat(64) },
    root: { path: 'releases/1.1.0/root.img', size: 20, sha256: 'b'.repeat(64) },
  },
};

/** Effects that record what ran, in order, with the journal state persisted before each. */
function recordingEffects(overrides: Partial<UpdateEffects> = {}) {
  const log: string[] = [];
  const persisted: Journal[] = [];
  const effects: UpdateEffects = {
    persist: async (j) => {
      persisted.push(j);
      log.push(`persist:${j.state}`);
    },
    startup: async () => void log.push('startup'),
    check: async (): Promise<CheckOutcome> => {
      log.push('check');
      return { kind: 'available', target };
    },
    download: async () => void log.push('download'),
    verify: async () => void log.push('verify'),
    install: async () => void log.push('install'),
    lastLook: async () => {
      log.push('lastLook');
      return { kind: 'offered' };
    },
    switchBoot: async () => void log.push('switchBoot'),
    reboot: async () => void log.push('reboot'),
    confirm: async (): Promise<ConfirmOutcome> => {
      log.push('confirm');
      return { kind: 'committed', version: '1.1.0' };
    },
    rollBack: async () => void log.push('rollBack'),
    recover: async () => void log.push('recover'),
    // No voice service unless a test says otherwise: nothing waits.
    planCallWait: async () => null,
    countCalls: async () => 0,
    pauseCalls: async () => {},
    callWaitEnded: (_j, how) => void log.push(`calls:${how}`),
    ...overrides,
  };
  return { effects, log, persisted };
}

function start(effects: UpdateEffects, journal?: Journal) {
  const actor = createActor(createUpdateMachine(effects), { input: { journal, now: () => NOW } });
  actor.start();
  return actor;
}

describe('resume table', () => {
  const expected: Record<string, string> = {
    idle: 'startup',
    checking: 'checking',
    downloading: 'downloading',
    verifying: 'verifying',
    installing: 'installing',
    switching: 'criticalInterrupted',
    rebooting: 'confirming',
    confirming: 'confirming',
    rollingBack: 'confirming',
    waitingForCalls: 'startup',
    lastLook: 'lastLook',
    recovering: 'recovering',
    factoryResetting: 'factoryResetting',
    committed: 'startup',
    rolledBack: 'startup',
    failed: 'startup',
  };
  it.each(UPDATE_STATES.map((s) => [s, expected[s]]))('%s resumes as %s', (state, step) => {
    const j: Journal = { ...initialJournal(NOW), state, target };
    expect(resumeStep(j)).toBe(step);
  });

  it('a switch whose end was recorded resumes by confirming, not as a failed critical phase', () => {
    const j: Journal = {
      ...initialJournal(NOW),
      state: 'switching',
      target,
      critical: { enteredAt: 'x', leftAt: 'y' },
    };
    expect(resumeStep(j)).toBe('confirming');
  });

  it('a reboot without a target (a user reboot) starts normally', () => {
    expect(resumeStep({ ...initialJournal(NOW), state: 'rebooting' })).toBe('startup');
  });

  it('a check is resumed until it has been cut off MAX_CHECK_ATTEMPTS times, then given up', () => {
    const checking: Journal = { ...initialJournal(NOW), state: 'checking' };
    expect(MAX_CHECK_ATTEMPTS).toBe(3);
    // A journal written before the count existed has none: resumed.
    expect(resumeStep(checking)).toBe('checking');
    expect(resumeStep({ ...checking, checkAttempts: 2 })).toBe('checking');
    expect(resumeStep({ ...checking, checkAttempts: 3 })).toBe('checkAbandoned');
  });
});

describe('update machine paths (xstate/graph)', () => {
  const { effects } = recordingEffects();
  const machine = createUpdateMachine(effects);
  const failure = { code: 'HTTP_STATUS', message: 'HTTP 500', transient: true };
  const events = [
    { type: 'CHECK', install: true, trigger: 'user' },
    { type: 'RETRY' },
    { type: 'REBOOT' },
    { type: 'FACTORY_RESET' },
    { type: 'xstate.done.actor.startup' },
    { type: 'xstate.done.actor.check', output: { kind: 'available', target } },
    { type: 'xstate.done.actor.check', output: { kind: 'upToDate', version: '1.0.0' } },
    { type: 'DOWNLOADED' },
    { type: 'xstate.done.actor.verify' },
    { type: 'xstate.done.actor.install' },
    { type: 'xstate.done.actor.lastLook', output: { kind: 'offered' } },
    { type: 'xstate.done.actor.lastLook', output: { kind: 'halted', message: 'withdrawn', reason: 'bad' } },
    { type: 'xstate.done.actor.switchBoot' },
    { type: 'xstate.done.actor.confirm', output: { kind: 'committed', version: '1.1.0' } },
    { type: 'xstate.done.actor.confirm', output: { kind: 'rollback', reason: failure } },
    { type: 'xstate.done.actor.confirm', output: { kind: 'rolledBack', version: '1.1.0', reason: failure } },
    { type: 'xstate.done.actor.confirm', output: { kind: 'switchAgain', reason: failure } },
    { type: 'xstate.done.actor.rollBack' },
    { type: 'xstate.error.actor.check', error: failure },
    { type: 'DOWNLOAD_FAILED', error: failure },
    { type: 'CHECKPOINT', written: { boot: 10, root: 0 } },
    { type: 'xstate.error.actor.verify', error: failure },
    { type: 'CALLS_PLANNED', plan: { deadline: new Date(NOW + 3_600_000).toISOString(), unknownGraceMs: 0 } },
    { type: 'CALLS', active: 0 },
    { type: 'CALLS', active: 2 },
    { type: 'REBOOT_NOW' },
  ] as never[];
  // States are told apart by name (and whether the check installs), not by timestamps.
  const serializeState = (s: { value: unknown; context: { journal: Journal } }) =>
    JSON.stringify([
      s.value,
      s.context.journal.install ?? false,
      s.context.journal.calls?.for,
      s.context.journal.calls?.deadline !== undefined,
    ]);
  const from = (journal?: Journal) =>
    ({ events, serializeState, input: { now: () => NOW, journal } }) as never;
  const reached = (journal?: Journal) =>
    new Set(getShortestPaths(machine, from(journal)).map((p) => String(p.state.value)));

  it('a fresh start reaches every state up to the reboot, failed and a factory reset', () => {
    expect([...reached()].sort()).toEqual(
      [
        'checking',
        'downloading',
        'factoryResetting',
        'failed',
        'idle',
        'installing',
        'lastLook',
        'rebooting',
        'startup',
        'switching',
        'verifying',
        'waitingForCalls',
      ].sort(),
    );
  });

  it('after an update reboot it reaches confirming, committed, rollingBack and rolledBack', () => {
    const afterReboot: Journal = { ...initialJournal(NOW), state: 'rebooting', target, reboot: 'update' };
    const states = reached(afterReboot);
    for (const s of [
      'confirming',
      'committed',
      'switching',
      'rollingBack',
      'rebooting',
      'rolledBack',
      'failed',
    ]) {
      expect(states, s).toContain(s);
    }
  });

  it('every path to the update reboot writes, verifies, installs and switches, in that order', () => {
    const paths = getSimplePaths(machine, {
      ...(from() as object),
      toState: (s: { value: unknown; context: { journal: Journal } }) =>
        s.value === 'rebooting' && s.context.journal.reboot === 'update',
    } as never);
    expect(paths.length).toBeGreaterThan(0);
    for (const p of paths) {
      const states = p.steps.map((s) => String(s.state.value));
      let last = -1;
      for (const name of [
        'checking',
        'downloading',
        'verifying',
        'installing',
        'waitingForCalls',
        'lastLook',
        'switching',
        'rebooting',
      ]) {
        const at = states.indexOf(name);
        expect(at, `${name} in ${states.join(' → ')}`).toBeGreaterThan(last);
        last = at;
      }
    }
  });
});

describe('update machine at run time', () => {
  it('persists the journal with the next state before every effect', async () => {
    const rec = recordingEffects();
    const actor = start(rec.effects);
    await waitFor(actor, (s) => s.value === 'idle');
    actor.send({ type: 'CHECK', install: true, trigger: 'user' });
    await waitFor(actor, (s) => s.value === 'rebooting');
    await new Promise((r) => setTimeout(r, 10));
    expect(rec.log).toEqual([
      'startup',
      'persist:idle',
      'persist:checking',
      'check',
      'persist:downloading',
      'download',
      'persist:verifying',
      'verify',
      'persist:installing',
      'install',
      // No voice service configured: the wait is planned as nothing and left at once.
      'persist:waitingForCalls',
      'calls:noVoice',
      'persist:lastLook',
      'lastLook',
      'persist:switching',
      'switchBoot',
      'persist:rebooting',
      'reboot',
    ]);
    expect(rec.persisted.find((j) => j.state === 'switching')!.calls).toBeUndefined();
    const switching = rec.persisted.find((j) => j.state === 'switching')!;
    expect(switching.critical?.enteredAt).toBeDefined();
    expect(switching.critical?.leftAt).toBeUndefined();
    const rebooting = rec.persisted.find((j) => j.state === 'rebooting')!;
    expect(rebooting.critical?.leftAt).toBeDefined();
    expect(rebooting.target?.version).toBe('1.1.0');
  });

  it('after the reboot it confirms and commits', async () => {
    const rec = recordingEffects();
    const journal: Journal = { ...initialJournal(NOW), state: 'rebooting', target, reboot: 'update' };
    const actor = start(rec.effects, journal);
    await waitFor(actor, (s) => s.value === 'committed');
    expect(rec.log.slice(0, 2)).toEqual(['persist:confirming', 'confirm']);
    expect(actor.getSnapshot().context.journal.result?.outcome).toBe('committed');
  });

  it('a failed health check marks the slot bad and reboots; after it, the rollback is recorded', async () => {
    const reason = { code: 'HEALTH_CHECK_FAILED' as const, message: 'hook failed', transient: false };
    const rec = recordingEffects({
      confirm: async () => ({ kind: 'rollback', reason }),
    });
    const actor = start(rec.effects, { ...initialJournal(NOW), state: 'rebooting', target });
    await waitFor(actor, (s) => s.value === 'rebooting');
    await new Promise((r) => setTimeout(r, 10));
    expect(rec.log).toEqual([
      'persist:confirming',
      'persist:rollingBack',
      'rollBack',
      'persist:rebooting',
      'reboot',
    ]);
    const last = rec.persisted.at(-1)!;
    expect(last.rollback?.reason.code).toBe('HEALTH_CHECK_FAILED');

    const after = recordingEffects({
      confirm: async () => ({ kind: 'rolledBack', version: '1.1.0', reason }),
    });
    const again = start(after.effects, last);
    await waitFor(again, (s) => s.value === 'rolledBack');
    expect(again.getSnapshot().context.journal.result?.outcome).toBe('rolledBack');
  });

  it('a fallback without a failed health check switches to the new slot again, counting the switches', async () => {
    const reason = { code: 'HEALTH_CHECK_FAILED' as const, message: 'fell back', transient: false };
    const rec = recordingEffects({
      confirm: async () => {
        rec.log.push('confirm');
        return { kind: 'switchAgain', reason };
      },
    });
    const journal: Journal = {
      ...initialJournal(NOW),
      state: 'rebooting',
      target,
      reboot: 'update',
      switches: 1,
    };
    const actor = start(rec.effects, journal);
    await waitFor(actor, (s) => s.value === 'rebooting');
    await new Promise((r) => setTimeout(r, 10));
    expect(rec.log).toEqual([
      'persist:confirming',
      'confirm',
      'persist:switching',
      'switchBoot',
      'persist:rebooting',
      'reboot',
    ]);
    const switching = rec.persisted.find((j) => j.state === 'switching')!;
    expect(switching).toMatchObject({ switches: 2, critical: { enteredAt: expect.any(String) } });
    expect(switching.critical?.leftAt).toBeUndefined();
    expect(rec.persisted.at(-1)).toMatchObject({ state: 'rebooting', switches: 2, reboot: 'update' });
  });

  it('an effect error lands in failed with its code; RETRY checks again, REBOOT reboots', async () => {
    const rec = recordingEffects({
      download: async () => {
        throw new ClgwError('HASH_MISMATCH', 'sha256 of root.img is wrong');
      },
    });
    const actor = start(rec.effects);
    await waitFor(actor, (s) => s.value === 'idle');
    actor.send({ type: 'CHECK', install: true, trigger: 'user' });
    await waitFor(actor, (s) => s.value === 'failed');
    const j = actor.getSnapshot().context.journal;
    expect(j.error?.code).toBe('HASH_MISMATCH');
    expect(rec.persisted.at(-1)?.state).toBe('failed');
    actor.send({ type: 'RETRY' });
    await waitFor(actor, (s) => s.value === 'failed' && rec.log.filter((l) => l === 'check').length === 2);
    actor.send({ type: 'REBOOT' });
    await waitFor(actor, (s) => s.value === 'rebooting');
  });

  it('a check that cannot be done is a warning: back to idle, the last update untouched', async () => {
    const rec = recordingEffects({
      check: async () => {
        throw new ClgwError('CONNECTION_REFUSED', 'connection to 10.0.0.9:443 refused');
      },
    });
    const actor = start(rec.effects, {
      ...initialJournal(NOW),
      result: { outcome: 'committed', version: '1.1.0', at: new Date(NOW).toISOString(), message: 'ok' },
    });
    await waitFor(actor, (s) => s.value === 'idle');
    actor.send({ type: 'CHECK', install: true, trigger: 'user' });
    await waitFor(actor, (s) => s.value === 'idle' && s.context.journal.check !== undefined);
    const j = actor.getSnapshot().context.journal;
    expect(j.check).toMatchObject({
      outcome: 'failed',
      message: 'connection to 10.0.0.9:443 refused',
      error: { code: 'CONNECTION_REFUSED' },
    });
    expect(j.error).toBeUndefined();
    expect(j.result?.outcome).toBe('committed');
    expect(rec.persisted.map((p) => p.state)).not.toContain('failed');
    expect(rec.persisted.at(-1)).toMatchObject({ state: 'idle', check: { outcome: 'failed' } });
  });

  it('a Retry whose check cannot be done goes back to the failed update, Retry and Reboot still offered', async () => {
    let checks = 0;
    const rec = recordingEffects({
      check: async () => {
        checks += 1;
        if (checks === 1) return { kind: 'available', target };
        throw new ClgwError('DNS_LOOKUP_FAILED', 'download.example: no such host');
      },
      download: async () => {
        throw new ClgwError('HASH_MISMATCH', 'sha256 of root.img is wrong');
      },
    });
    const actor = start(rec.effects);
    await waitFor(actor, (s) => s.value === 'idle');
    actor.send({ type: 'CHECK', install: true, trigger: 'user' });
    await waitFor(actor, (s) => s.value === 'failed');
    actor.send({ type: 'RETRY' });
    await waitFor(actor, (s) => s.value === 'failed' && s.context.journal.check?.outcome === 'failed');
    const j = actor.getSnapshot().context.journal;
    expect(j.error?.code).toBe('HASH_MISMATCH');
    expect(j.check?.error?.code).toBe('DNS_LOOKUP_FAILED');
    expect(actor.getSnapshot().can({ type: 'RETRY' })).toBe(true);
    expect(actor.getSnapshot().can({ type: 'REBOOT' })).toBe(true);
  });

  it('a check cut off at every start is run three times, then given up: idle, CHECK_INTERRUPTED', async () => {
    // Each run of the check never ends: the process "dies" during it (the actor is stopped) and the
    // next start resumes from the journal persisted before it, as after a crash.
    let journal: Journal | undefined;
    const counts: (number | undefined)[] = [];
    for (let run = 1; run <= 3; run++) {
      const rec = recordingEffects({ check: () => new Promise<never>(() => undefined) });
      const actor = run === 1 ? start(rec.effects) : start(rec.effects, journal);
      if (run === 1) {
        await waitFor(actor, (s) => s.value === 'idle');
        actor.send({ type: 'CHECK', install: true, trigger: 'boot' });
      }
      await waitFor(actor, (s) => s.value === 'checking');
      journal = rec.persisted.at(-1)!;
      expect(journal.state).toBe('checking');
      expect(journalSchema.safeParse(journal).success).toBe(true);
      counts.push(journal.checkAttempts);
      actor.stop();
    }
    expect(counts).toEqual([1, 2, 3]);

    const rec = recordingEffects();
    const actor = start(rec.effects, journal);
    await waitFor(actor, (s) => s.value === 'idle');
    await new Promise((r) => setTimeout(r, 10));
    // Persisted before anything else happens, and the check not run a fourth time.
    expect(rec.log).toEqual(['startup', 'persist:idle']);
    const given = rec.persisted.at(-1)!;
    expect(given.check).toMatchObject({
      outcome: 'failed',
      message:
        'the check of compat.yaml was interrupted 3 times in a row (the agent stopped during it each ' +
        'time), so it was given up',
      error: { code: 'CHECK_INTERRUPTED', transient: false, details: { attempts: 3 } },
    });
    expect(given.checkAttempts).toBeUndefined();
    expect(given.error).toBeUndefined();
    expect(journalSchema.safeParse(given).success).toBe(true);

    // The next check (a window's, a user's) starts counting afresh, and ends clearing its count.
    actor.send({ type: 'CHECK', install: false, trigger: 'window' });
    await waitFor(actor, (s) => s.value === 'idle' && s.context.journal.check?.outcome === 'available');
    expect(rec.persisted.find((j) => j.state === 'checking')?.checkAttempts).toBe(1);
    await new Promise((r) => setTimeout(r, 10));
    expect(rec.persisted.at(-1)).toMatchObject({ state: 'idle', check: { outcome: 'available' } });
    expect(rec.persisted.at(-1)?.checkAttempts).toBeUndefined();
  });

  it('a Retry of a failed update whose check is given up goes back to the failed update', async () => {
    const error = {
      code: 'HASH_MISMATCH' as const,
      message: 'sha256 of root.img is wrong',
      transient: false,
    };
    const rec = recordingEffects();
    const actor = start(rec.effects, {
      ...initialJournal(NOW),
      state: 'checking',
      install: true,
      trigger: 'user',
      target,
      error,
      checkAttempts: 3,
    });
    await waitFor(actor, (s) => s.value === 'failed');
    const j = actor.getSnapshot().context.journal;
    expect(j.error).toEqual(error);
    expect(j.check?.error?.code).toBe('CHECK_INTERRUPTED');
    expect(j.checkAttempts).toBeUndefined();
    expect(rec.log).not.toContain('check');
    expect(actor.getSnapshot().can({ type: 'RETRY' })).toBe(true);
  });

  it('a start whose health check fails while a check was under way drops the count', async () => {
    const rec = recordingEffects({
      startup: async () => {
        throw new ClgwError('HEALTH_CHECK_FAILED', 'hook failed');
      },
    });
    const actor = start(rec.effects, { ...initialJournal(NOW), state: 'checking', checkAttempts: 2 });
    await waitFor(actor, (s) => s.value === 'failed');
    await new Promise((r) => setTimeout(r, 10));
    expect(rec.persisted.at(-1)).toMatchObject({ state: 'failed', error: { code: 'HEALTH_CHECK_FAILED' } });
    expect(rec.persisted.at(-1)?.checkAttempts).toBeUndefined();
  });

  it('a cut in the critical phase hands over to the recovery system with CRITICAL_PHASE_FAILED', async () => {
    const rec = recordingEffects();
    const actor = start(rec.effects, {
      ...initialJournal(NOW),
      state: 'switching',
      target,
      critical: { enteredAt: new Date(NOW).toISOString() },
    });
    await waitFor(actor, () => rec.log.includes('recover'));
    expect(actor.getSnapshot().value).toBe('recovering');
    const persisted = rec.persisted.at(-1)!;
    expect(persisted).toMatchObject({ state: 'recovering', recovery: { reason: 'critical-phase-failed' } });
    expect(persisted.error?.code).toBe('CRITICAL_PHASE_FAILED');
    expect(rec.log).not.toContain('switchBoot');
  });

  it('a torn boot environment at start-up hands over to the recovery system', async () => {
    const rec = recordingEffects({
      startup: async () => {
        throw new ClgwError('GRUBENV_INVALID', 'grubenv: wrong header');
      },
    });
    const actor = start(rec.effects);
    await waitFor(actor, () => rec.log.includes('recover'));
    expect(rec.persisted.at(-1)).toMatchObject({
      state: 'recovering',
      recovery: { reason: 'boot-environment-torn' },
    });
  });

  it('a factory reset is accepted when settled and refused while an update runs', async () => {
    const rec = recordingEffects({ download: () => new Promise(() => undefined) });
    const actor = start(rec.effects);
    await waitFor(actor, (s) => s.value === 'idle');
    actor.send({ type: 'CHECK', install: true, trigger: 'user' });
    await waitFor(actor, (s) => s.value === 'downloading');
    expect(actor.getSnapshot().can({ type: 'FACTORY_RESET' })).toBe(false);

    const idle = start(recordingEffects().effects);
    await waitFor(idle, (s) => s.value === 'idle');
    idle.send({ type: 'FACTORY_RESET' });
    await waitFor(idle, (s) => s.value === 'factoryResetting');
    expect(idle.getSnapshot().context.journal.recovery).toEqual({ reason: 'factory-reset' });
  });

  it('check only (install: false) records that a release is available and stays idle', async () => {
    const rec = recordingEffects();
    const actor = start(rec.effects);
    await waitFor(actor, (s) => s.value === 'idle');
    actor.send({ type: 'CHECK', install: false, trigger: 'user' });
    await waitFor(actor, (s) => s.value === 'idle' && s.context.journal.check !== undefined);
    expect(actor.getSnapshot().context.journal.check?.outcome).toBe('available');
    expect(rec.log).not.toContain('download');
  });

  it('a failed download keeps its durable offsets, and retrying the same release resumes from them', async () => {
    const starts: number[] = [];
    let attempt = 0;
    const rec = recordingEffects({
      download: async (j, _signal, checkpoint) => {
        starts.push(j.written?.root ?? -1);
        if (attempt++ === 0) {
          checkpoint({ boot: 10, root: 8 });
          throw new ClgwError('CONNECTION_RESET', 'connection reset by 127.0.0.1:443', { transient: true });
        }
      },
    });
    const actor = start(rec.effects);
    await waitFor(actor, (s) => s.value === 'idle');
    actor.send({ type: 'CHECK', install: true, trigger: 'user' });
    await waitFor(actor, (s) => s.value === 'failed');
    expect(rec.persisted.at(-1)?.written).toEqual({ boot: 10, root: 8 });
    actor.send({ type: 'RETRY' });
    await waitFor(actor, (s) => s.value === 'rebooting');
    expect(starts).toEqual([0, 8]);
  });

  it('a read-back that asks for it downloads that artifact again, checked in flight, once', async () => {
    const downloads: Journal['written'][] = [];
    let verifies = 0;
    const mismatch = (details: Record<string, unknown>) =>
      new ClgwError('READBACK_MISMATCH', 'read-back of root_b: SHA-256 differs', { details });
    const run = async (second: 'pass' | 'fail' | 'asksAgain') => {
      downloads.length = 0;
      verifies = 0;
      const rec = recordingEffects({
        download: async (j) => void downloads.push(j.written),
        verify: async () => {
          verifies++;
          if (verifies === 1) throw mismatch({ artifact: 'root', downloadAgain: 'root' });
          if (second === 'fail') throw mismatch({ artifact: 'root' });
          if (second === 'asksAgain') throw mismatch({ artifact: 'root', downloadAgain: 'root' });
        },
      });
      const actor = start(rec.effects);
      await waitFor(actor, (s) => s.value === 'idle');
      actor.send({ type: 'CHECK', install: true, trigger: 'user' });
      await waitFor(actor, (s) => s.value === 'rebooting' || s.value === 'failed');
      return { actor, rec };
    };

    const passed = await run('pass');
    expect(passed.actor.getSnapshot().value).toBe('rebooting');
    // The second download starts with the root at 0, to be checked in flight; the boot kept.
    expect(downloads).toEqual([
      { boot: 0, root: 0 },
      { boot: 10, root: 0, checkInFlight: ['root'] },
    ]);
    expect(
      passed.rec.persisted.find((j) => j.state === 'downloading' && j.written?.checkInFlight),
    ).toBeDefined();
    // Once read back right, the mark is gone: the journal an older agent may meet never has it.
    expect(passed.rec.persisted.filter((j) => j.state === 'installing').map((j) => j.written)).toEqual([
      { boot: 10, root: 20 },
    ]);

    const failed = await run('fail');
    expect(failed.actor.getSnapshot().value).toBe('failed');
    expect(downloads).toHaveLength(2);
    expect(failed.actor.getSnapshot().context.journal.error).toMatchObject({ code: 'READBACK_MISMATCH' });

    // The machine itself holds it to one more download, whatever the read-back asks.
    const capped = await run('asksAgain');
    expect(capped.actor.getSnapshot().value).toBe('failed');
    expect(downloads).toHaveLength(2);
  });

  it('what the download read back reaches the verify phase, and is forgotten once verified', async () => {
    const seen: Journal['written'][] = [];
    const rec = recordingEffects({
      download: async (_j, _signal, checkpoint) =>
        checkpoint({ boot: 10, root: 20, readBack: ['boot', 'root'] }),
      verify: async (j) => void seen.push(j.written),
    });
    const actor = start(rec.effects);
    await waitFor(actor, (s) => s.value === 'idle');
    actor.send({ type: 'CHECK', install: true, trigger: 'user' });
    await waitFor(actor, (s) => s.value === 'rebooting');
    expect(seen).toEqual([{ boot: 10, root: 20, readBack: ['boot', 'root'] }]);
    // Persisted when the download ends, so a cut before the verify phase ends still knows it.
    expect(rec.persisted.filter((j) => j.state === 'verifying').map((j) => j.written)).toContainEqual({
      boot: 10,
      root: 20,
      readBack: ['boot', 'root'],
    });
    expect(rec.persisted.filter((j) => j.state === 'installing').map((j) => j.written)).toEqual([
      { boot: 10, root: 20 },
    ]);
  });

  it('an update cut off before the switch first marks the booted slot good, then resumes its step', async () => {
    const rec = recordingEffects();
    const actor = start(rec.effects, {
      ...initialJournal(NOW),
      state: 'downloading',
      target,
      written: { boot: 10, root: 4 },
    });
    await waitFor(actor, (s) => s.value === 'rebooting');
    expect(rec.log.slice(0, 3)).toEqual(['startup', 'persist:downloading', 'download']);
  });
});

describe('waiting for calls before a restart', () => {
  const MIN = 60_000;
  const installed: Journal = {
    ...initialJournal(NOW),
    state: 'installing',
    target,
    written: { boot: 10, root: 20 },
  };
  /** A pause that lasts until the wait is left (the machine aborts it). */
  const forever = (signal: AbortSignal) =>
    new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));

  /** Runs from an interrupted install (resumed) with a clock the pauses move forward. */
  function run(o: {
    counts: (number | Error)[];
    deadlineMin?: number;
    graceMin?: number;
    pauseMin?: number;
    journal?: Journal;
    pause?: (signal: AbortSignal) => Promise<void>;
    effects?: Partial<UpdateEffects>;
  }) {
    let now = NOW;
    const asked: number[] = [];
    const ended: Journal[] = [];
    const rec = recordingEffects({
      planCallWait: async () => {
        rec.log.push('plan');
        return {
          deadline: new Date(now + (o.deadlineMin ?? 60) * MIN).toISOString(),
          unknownGraceMs: (o.graceMin ?? 5) * MIN,
        };
      },
      countCalls: async () => {
        const next = o.counts.length > 1 ? o.counts.shift()! : o.counts[0]!;
        asked.push(now);
        if (next instanceof Error) throw next;
        return next;
      },
      pauseCalls:
        o.pause ??
        (async () => {
          now += (o.pauseMin ?? 1) * MIN;
        }),
      callWaitEnded: (j, how) => {
        ended.push(j);
        rec.log.push(`calls:${how}`);
      },
      ...o.effects,
    });
    const actor = createActor(createUpdateMachine(rec.effects), {
      input: { journal: o.journal ?? installed, now: () => now },
    });
    actor.start();
    return { actor, rec, asked, ended, now: () => now };
  }
  const unreachable = new ClgwError('VOICE_UNREACHABLE', 'cannot reach 127.0.0.1:8021: ECONNREFUSED', {
    transient: true,
  });

  it('persists the wait with its deadline, polls, and restarts the moment no call is up', async () => {
    const r = run({ counts: [2, 1, 0] });
    await waitFor(r.actor, (s) => s.value === 'rebooting');
    expect(r.asked).toHaveLength(3);
    expect(r.rec.log).toContain('calls:clear');
    const waits = r.rec.persisted.filter((j) => j.state === 'waitingForCalls');
    // Persisted on entering, then again with the plan before the first poll.
    expect(waits.map((j) => j.calls?.deadline === undefined)).toEqual([true, false]);
    expect(waits[1]!.calls).toMatchObject({ for: 'update', active: null, unknownGraceMs: 5 * MIN });
    expect(Date.parse(waits[1]!.calls!.deadline!)).toBe(NOW + 60 * MIN);
    expect(r.rec.log.indexOf('calls:clear')).toBeLessThan(r.rec.log.indexOf('persist:switching'));
    const switching = r.rec.persisted.find((j) => j.state === 'switching')!;
    expect(switching.calls).toBeUndefined();
  });

  it('shows the calls up while it waits, in the live journal', async () => {
    const r = run({ counts: [2], pause: forever });
    await waitFor(r.actor, (s) => s.context.journal.calls?.active === 2);
    expect(r.actor.getSnapshot().value).toBe('waitingForCalls');
    r.actor.stop();
  });

  it('past the deadline it restarts and says how many calls it cut', async () => {
    const r = run({ counts: [2], deadlineMin: 30, pauseMin: 10 });
    await waitFor(r.actor, (s) => s.value === 'rebooting');
    expect(r.rec.log).toContain('calls:deadline');
    expect(r.ended[0]!.calls?.active).toBe(2);
    // Asked at 0, 10, 20 and 30 minutes: the answer at the deadline still counts 2.
    expect(r.asked.map((t) => (t - NOW) / MIN)).toEqual([0, 10, 20, 30]);
  });

  it('an unreachable voice service is unknown, not zero, until its silence outlasts the grace', async () => {
    const r = run({ counts: [unreachable, 3, unreachable], graceMin: 20, pauseMin: 10, deadlineMin: 600 });
    await waitFor(r.actor, (s) => s.value === 'rebooting');
    expect(r.rec.log).toContain('calls:voiceSilent');
    // One failure, an answer (3 calls: the grace starts over), then silent at 20, 30 and 40 min.
    expect(r.asked.map((t) => (t - NOW) / MIN)).toEqual([0, 10, 20, 30, 40]);
    expect(r.ended[0]!.calls).toMatchObject({ active: null, error: { code: 'VOICE_UNREACHABLE' } });
  });

  it('a confirmed "Reboot now" restarts at once', async () => {
    const r = run({ counts: [2], pause: forever });
    await waitFor(r.actor, (s) => s.context.journal.calls?.active === 2);
    r.actor.send({ type: 'REBOOT_NOW' });
    await waitFor(r.actor, (s) => s.value === 'rebooting');
    expect(r.rec.log).toContain('calls:override');
    expect(r.ended[0]!.calls?.active).toBe(2);
  });

  it('a power cut while waiting resumes the same wait, deadline and all, after start-up', async () => {
    const deadline = new Date(NOW + 7 * MIN).toISOString();
    const cut: Journal = {
      ...installed,
      state: 'waitingForCalls',
      calls: {
        for: 'update',
        since: new Date(NOW - MIN).toISOString(),
        deadline,
        unknownGraceMs: 0,
        active: 4,
      },
    };
    expect(resumeStep(cut)).toBe('waitingForCalls');
    const r = run({ counts: [4], journal: cut, pauseMin: 5 });
    await waitFor(r.actor, (s) => s.value === 'rebooting');
    expect(r.rec.log.slice(0, 2)).toEqual(['startup', 'persist:waitingForCalls']);
    expect(r.rec.log).not.toContain('plan');
    expect(r.rec.log).toContain('calls:deadline');
    expect(r.asked.map((t) => (t - NOW) / MIN)).toEqual([0, 5, 10]);
  });

  it("a technician's Reboot after a failed update waits too; a cut during it is the reboot", async () => {
    const downloading: Journal = { ...installed, state: 'downloading' };
    const r = run({
      counts: [1, 0],
      journal: downloading,
      effects: {
        download: async () => {
          throw new ClgwError('HTTP_STATUS', 'HTTP 500', { transient: true });
        },
      },
    });
    await waitFor(r.actor, (s) => s.value === 'failed');
    r.actor.send({ type: 'REBOOT' });
    await waitFor(r.actor, (s) => s.value === 'rebooting');
    expect(r.rec.log).toContain('calls:clear');
    const wait = r.rec.persisted.filter((j) => j.state === 'waitingForCalls').at(-1)!;
    expect(wait.calls?.for).toBe('reboot');
    expect(resumeStep(wait)).toBe('startup');
    expect(r.rec.persisted.at(-1)).toMatchObject({ state: 'rebooting', reboot: 'user' });
  });

  it('the journal schema keeps the wait', () => {
    const j: Journal = {
      ...installed,
      state: 'waitingForCalls',
      calls: { for: 'update', since: 'a', deadline: 'b', unknownGraceMs: 1, active: null, unknownSince: 'c' },
    };
    expect(journalSchema.parse(j)).toEqual(j);
  });
});

describe('the last look before switching', () => {
  const waiting: Journal = {
    ...initialJournal(NOW),
    state: 'waitingForCalls',
    trigger: 'window',
    install: true,
    target,
    written: { boot: 10, root: 20 },
    calls: { for: 'update', since: new Date(NOW).toISOString(), active: null },
  };
  const withdrawn = {
    kind: 'halted',
    message: 'the vendor withdrew 1.1.0 (calls drop)',
    reason: 'calls drop',
  } as const;

  it('still offered: on to the switch, the look persisted before it ran', async () => {
    const rec = recordingEffects();
    const actor = start(rec.effects, waiting);
    await waitFor(actor, (s) => s.value === 'rebooting');
    const at = rec.log.indexOf('lastLook');
    expect(rec.log.slice(at - 1, at + 3)).toEqual([
      'persist:lastLook',
      'lastLook',
      'persist:switching',
      'switchBoot',
    ]);
    const look = rec.persisted.find((j) => j.state === 'lastLook')!;
    expect(look.target).toEqual(target);
    expect(look.calls).toBeUndefined();
  });

  it('withdrawn: idle, the target forgotten, the result says why, nothing switched', async () => {
    const rec = recordingEffects({
      lastLook: async () => {
        rec.log.push('lastLook');
        return withdrawn;
      },
    });
    const actor = start(rec.effects, waiting);
    await waitFor(actor, (s) => s.value === 'idle' && s.context.journal.result !== undefined);
    await new Promise((r) => setTimeout(r, 10));
    expect(rec.log).not.toContain('switchBoot');
    const j = actor.getSnapshot().context.journal;
    expect(j.target).toBeUndefined();
    expect(j.error).toBeUndefined();
    expect(j.result).toMatchObject({
      outcome: 'halted',
      version: '1.1.0',
      message: 'the vendor withdrew 1.1.0 before this gateway switched to it (calls drop): discarded',
    });
    expect(j.result?.error).toBeUndefined();
    // Persisted as settled, so a restart starts normally.
    const last = rec.persisted.at(-1)!;
    expect(last).toMatchObject({ state: 'idle', result: { outcome: 'halted' } });
    expect(last.target).toBeUndefined();
    expect(journalSchema.parse(last)).toEqual(last);
    expect(resumeStep(last)).toBe('startup');
  });

  it("replaced or no longer named: discarded with the document's words", async () => {
    const rec = recordingEffects({
      lastLook: async () => ({
        kind: 'halted',
        message: 'compat.yaml (serial 3) now names 1.0.1 instead of 1.1.0',
      }),
    });
    const actor = start(rec.effects, waiting);
    await waitFor(actor, (s) => s.value === 'idle' && s.context.journal.result !== undefined);
    expect(actor.getSnapshot().context.journal.result?.message).toBe(
      'compat.yaml (serial 3) now names 1.0.1 instead of 1.1.0: 1.1.0 was discarded before this gateway switched to it',
    );
  });

  it('the document unreachable or unjudged (or the look throwing): on to the switch', async () => {
    for (const lastLook of [
      async () => ({ kind: 'unjudged', message: 'cannot reach mirror' }) as const,
      async () => {
        throw new ClgwError('HTTP_STATUS', 'HTTP 500', { transient: true });
      },
    ]) {
      const rec = recordingEffects({ lastLook });
      const actor = start(rec.effects, waiting);
      await waitFor(actor, (s) => s.value === 'rebooting');
      expect(rec.log).toContain('switchBoot');
      expect(actor.getSnapshot().context.journal.error).toBeUndefined();
    }
  });

  it('a confirmed "Reboot now" goes through the last look too', async () => {
    const forever = (signal: AbortSignal) =>
      new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    const rec = recordingEffects({
      planCallWait: async () => ({ deadline: new Date(NOW + 3_600_000).toISOString(), unknownGraceMs: 0 }),
      countCalls: async () => 2,
      pauseCalls: forever,
      lastLook: async () => {
        rec.log.push('lastLook');
        return withdrawn;
      },
    });
    const actor = start(rec.effects, waiting);
    await waitFor(actor, (s) => s.context.journal.calls?.active === 2);
    actor.send({ type: 'REBOOT_NOW' });
    await waitFor(actor, (s) => s.value === 'idle' && s.context.journal.result !== undefined);
    expect(rec.log).toContain('calls:override');
    expect(rec.log).not.toContain('switchBoot');
    expect(actor.getSnapshot().context.journal.result?.outcome).toBe('halted');
  });

  it('a cut during the last look waits for calls again (the phones came back with the power), then looks again', async () => {
    const cut: Journal = { ...waiting, state: 'lastLook', calls: undefined };
    expect(resumeStep(cut)).toBe('lastLook');
    expect(resumeStep({ ...cut, target: undefined })).toBe('startup');
    const rec = recordingEffects();
    const actor = start(rec.effects, cut);
    await waitFor(actor, (s) => s.value === 'rebooting');
    const wait = rec.persisted.find((j) => j.state === 'waitingForCalls');
    expect(wait?.calls).toMatchObject({ for: 'update', since: new Date(NOW).toISOString() });
    const order = ['startup', 'persist:waitingForCalls', 'lastLook', 'switchBoot'].map((e) =>
      rec.log.indexOf(e),
    );
    expect(
      order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1]!)),
      rec.log.join(' '),
    ).toBe(true);
  });
});
