/**
 * The runner's order and its refusals, with every effect faked: what runs before what, and that
 * a bad factory image stops everything before the first write.
 */

import { ManualClock } from '@clgw/core/platform/clock.js';
import { memoryLogger } from '@clgw/core/platform/log.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { defaultGrubenv, requestRecovery } from '@clgw/core/slot/bootchooser.js';
import { serializeGrubenv } from '@clgw/core/slot/grubenv.js';
import { describe, expect, it } from 'vitest';
import type { RecoveryEffects } from '../../../recovery/src/effects.js';
import { recoveryLayout } from '../../../recovery/src/plan.js';
import { runRecovery } from '../../../recovery/src/run.js';

const MANIFEST = JSON.stringify({
  schema: 1,
  version: '1.0.0',
  boot: { file: 'boot.img', size: 100, sha256: 'a'.repeat(64) },
  root: { file: 'root.img', size: 1000, sha256: 'b'.repeat(64) },
});

interface Fake {
  effects: RecoveryEffects;
  calls: string[];
  records: unknown[];
  bootEnvs: Map<string, string>[];
}

/** Effects that record each call; `fail` makes the named call throw the given error. */
function fakeEffects(
  opts: { manifest?: string; dataAlarms?: boolean; stash?: boolean; fail?: Record<string, Error> } = {},
): Fake {
  const calls: string[] = [];
  const records: unknown[] = [];
  const bootEnvs: Map<string, string>[] = [];
  const call = async (name: string) => {
    calls.push(name);
    const err = opts.fail?.[name];
    if (err) throw err;
  };
  const effects: RecoveryEffects = {
    readBootBlock: async () => serializeGrubenv(requestRecovery(defaultGrubenv())),
    readManifest: async () => opts.manifest ?? MANIFEST,
    survey: async () => ({ dataAlarms: opts.dataAlarms ?? true, stash: opts.stash ?? false }),
    verifyImage: (file) => call(`verifyImage ${file}`),
    checkCapacity: (file) => call(`checkCapacity ${file}`),
    stashAlarms: () => call('stashAlarms'),
    writeImage: async (file, _device, size, _sha, onProgress) => {
      await call(`writeImage ${file}`);
      for (let done = 0; done <= size; done += size / 4) onProgress?.(done);
    },
    verifyDevice: (device) => call(`verifyDevice ${device.split('/').pop()}`),
    eraseData: () => call('eraseData'),
    restoreAlarms: () => call('restoreAlarms'),
    writeRecord: async (record) => {
      records.push(record);
      await call('writeRecord');
    },
    removeStash: () => call('removeStash'),
    writeBootEnv: async (vars) => {
      bootEnvs.push(new Map(vars));
      await call('writeBootEnv');
    },
    reboot: (mode) => call(`reboot ${mode}`),
  };
  return { effects, calls, records, bootEnvs };
}

const layout = recoveryLayout(appliancePaths('/sim'));

function deps(fake: Fake, out: string[] = []) {
  return {
    layout,
    effects: fake.effects,
    clock: new ManualClock(Date.UTC(2026, 2, 1, 12, 0, 0)),
    log: memoryLogger(),
    out: (l: string) => void out.push(l),
    reboot: 'simulator' as const,
  };
}

describe('runRecovery', () => {
  it('runs the steps in order and withdraws the request only at the end', async () => {
    const fake = fakeEffects();
    const result = await runRecovery(deps(fake));
    expect(fake.calls).toEqual([
      'verifyImage boot.img',
      'verifyImage root.img',
      'checkCapacity boot.img',
      'checkCapacity root.img',
      'stashAlarms',
      'writeImage boot.img',
      'verifyDevice boot_a',
      'writeImage root.img',
      'verifyDevice root_a',
      'eraseData',
      'restoreAlarms',
      'writeRecord',
      'removeStash',
      'writeBootEnv',
      'reboot simulator',
    ]);
    expect(result).toMatchObject({ factoryVersion: '1.0.0', reason: 'requested' });
    expect(fake.records).toEqual([
      { completedAt: '2026-03-01T12:00:00.000Z', factoryVersion: '1.0.0', reason: 'requested' },
    ]);
    expect([...fake.bootEnvs[0]!]).toEqual([...defaultGrubenv()]);
  });

  it('prints plain progress lines with percentages for the copies', async () => {
    const out: string[] = [];
    await runRecovery(deps(fakeEffects(), out));
    expect(out.every((l) => l.startsWith('recovery: '))).toBe(true);
    expect(out).toContain('recovery: verifying factory images (version 1.0.0)…');
    for (const pct of [0, 50, 100]) expect(out).toContain(`recovery: writing root.img: ${pct}%`);
    expect(out.filter((l) => l === 'recovery: writing boot.img: 100%')).toHaveLength(1);
  });

  it('a bad factory image stops the run before anything is written', async () => {
    const bad = Object.assign(new Error('factory image /sim/…/root.img has SHA-256 c…, expected b…'), {
      code: 'RECOVERY_IMAGE_INVALID',
    });
    const fake = fakeEffects({ fail: { 'verifyImage root.img': bad } });
    const run = deps(fake);
    await expect(runRecovery(run)).rejects.toBe(bad);
    expect(fake.calls).toEqual(['verifyImage boot.img', 'verifyImage root.img']);
    expect(run.log.lines.at(-1)).toMatchObject({ level: 'error', msg: 'recovery failed' });
  });

  it('an invalid manifest stops the run before any step', async () => {
    const fake = fakeEffects({ manifest: '{"schema":1}' });
    await expect(runRecovery(deps(fake))).rejects.toMatchObject({ code: 'RECOVERY_MANIFEST_INVALID' });
    expect(fake.calls).toEqual([]);
  });

  it('a failed read-back leaves the boot environment alone', async () => {
    const fake = fakeEffects({ fail: { 'verifyDevice root_a': new Error('read-back mismatch') } });
    await expect(runRecovery(deps(fake))).rejects.toThrow('read-back mismatch');
    expect(fake.calls).not.toContain('eraseData');
    expect(fake.calls).not.toContain('writeBootEnv');
  });

  it('restarted after a cut that left the stash, restores from the stash without stashing again', async () => {
    const fake = fakeEffects({ dataAlarms: false, stash: true });
    await runRecovery(deps(fake));
    expect(fake.calls).not.toContain('stashAlarms');
    expect(fake.calls.indexOf('restoreAlarms')).toBe(fake.calls.indexOf('eraseData') + 1);
  });
});
