import { appliancePaths } from '@clgw/core/platform/paths.js';
import { defaultGrubenv, requestRecovery } from '@clgw/core/slot/bootchooser.js';
import { serializeGrubenv } from '@clgw/core/slot/grubenv.js';
import { describe, expect, it } from 'vitest';
import type { FactoryManifest } from '../../../recovery/src/manifest.js';
import {
  planRecovery,
  progressMark,
  type RecoverySurvey,
  recoveryLayout,
  recoveryReason,
} from '../../../recovery/src/plan.js';

const manifest: FactoryManifest = {
  schema: 1,
  version: '1.0.0',
  boot: { file: 'boot.img', size: 4096, sha256: 'a'.repeat(64) },
  root: { file: 'root.img', size: 8192, sha256: 'b'.repeat(64) },
};
const paths = appliancePaths('/sim');
const layout = recoveryLayout(paths);

function plan(survey: RecoverySurvey) {
  return planRecovery({ manifest, layout, survey, reason: 'requested', reboot: 'simulator' });
}

describe('recovery layout', () => {
  it('keeps its own files on the recovery partition and writes slot A', () => {
    expect(layout.manifest).toBe('/sim/dev/disk/by-partlabel/recovery/manifest.json');
    expect(layout.log).toBe('/sim/dev/disk/by-partlabel/recovery/recovery.log');
    expect(layout.stash).toBe('/sim/dev/disk/by-partlabel/recovery/carry/alarms.json');
    expect(layout.dataAlarms).toBe('/sim/var/clgw/alarms.json');
    expect(layout.record).toBe('/sim/var/clgw/recovery.json');
    expect(layout.eraseDirs).toEqual(['/sim/var/clgw', '/sim/var/log/clgw']);
    expect(layout.rebootRequest).toBe('/sim/run/clgw/reboot-request');
    expect(layout.device('boot')).toBe(paths.partition('boot', 'A'));
    expect(layout.device('root')).toBe(paths.partition('root', 'A'));
    expect(layout.image('root.img')).toBe('/sim/dev/disk/by-partlabel/recovery/root.img');
  });
});

describe('step planning', () => {
  it('verifies both images and both capacities before anything is written, and resets the boot environment last before the reboot', () => {
    const kinds = plan({ dataAlarms: true, stash: false }).map((s) => s.kind);
    expect(kinds).toEqual([
      'verifyImage',
      'verifyImage',
      'checkCapacity',
      'checkCapacity',
      'stashAlarms',
      'writeImage',
      'verifyDevice',
      'writeImage',
      'verifyDevice',
      'eraseData',
      'restoreAlarms',
      'writeRecord',
      'removeStash',
      'writeBootEnv',
      'reboot',
    ]);
  });

  it('writes boot then root, each from its manifest entry to slot A', () => {
    const writes = plan({ dataAlarms: false, stash: false }).filter((s) => s.kind === 'writeImage');
    expect(writes).toEqual([
      { kind: 'writeImage', image: 'boot', device: layout.device('boot'), ...manifest.boot },
      { kind: 'writeImage', image: 'root', device: layout.device('root'), ...manifest.root },
    ]);
  });

  it('without any alarm history neither stashes nor restores', () => {
    const kinds = plan({ dataAlarms: false, stash: false }).map((s) => s.kind);
    expect(kinds).not.toContain('stashAlarms');
    expect(kinds).not.toContain('restoreAlarms');
    expect(kinds).toContain('removeStash');
  });

  it('never overwrites a stash left by a cut run, and restores from it', () => {
    for (const dataAlarms of [true, false]) {
      const kinds = plan({ dataAlarms, stash: true }).map((s) => s.kind);
      expect(kinds).not.toContain('stashAlarms');
      expect(kinds.indexOf('restoreAlarms')).toBeGreaterThan(kinds.indexOf('eraseData'));
    }
  });

  it('resets to the default boot environment and records the factory version and reason', () => {
    const steps = planRecovery({
      manifest,
      layout,
      survey: { dataAlarms: false, stash: false },
      reason: 'critical phase failed',
      reboot: 'systemd',
    });
    expect(steps.find((s) => s.kind === 'writeRecord')).toEqual({
      kind: 'writeRecord',
      factoryVersion: '1.0.0',
      reason: 'critical phase failed',
    });
    const env = steps.find((s) => s.kind === 'writeBootEnv');
    expect(env?.kind === 'writeBootEnv' && [...env.vars]).toEqual([...defaultGrubenv()]);
    expect(steps.at(-1)).toMatchObject({ kind: 'reboot', mode: 'systemd' });
  });
});

describe('recovery reason', () => {
  const block = (vars: Map<string, string>) => serializeGrubenv(vars);

  it('takes the agent’s CLGW_RECOVERY_REASON when there is one', () => {
    const vars = requestRecovery(defaultGrubenv());
    vars.set('CLGW_RECOVERY_REASON', 'CLGW_ALARM_CRITICAL_PHASE_FAILED');
    expect(recoveryReason(block(vars))).toBe('CLGW_ALARM_CRITICAL_PHASE_FAILED');
  });

  it('says "requested" for a bare CLGW_RECOVERY=1', () => {
    expect(recoveryReason(block(requestRecovery(defaultGrubenv())))).toBe('requested');
  });

  it('says "no bootable slot" for a block without a bootable slot, a garbage block or none', () => {
    const none = defaultGrubenv();
    none.set('A_OK', '0');
    expect(recoveryReason(block(none))).toBe('no bootable slot');
    expect(recoveryReason(new Uint8Array(1024).fill(0x41))).toBe('no bootable slot');
    expect(recoveryReason(undefined)).toBe('no bootable slot');
  });

  it('reads a torn block as GRUB does: the lines before the tear count', () => {
    const whole = block(requestRecovery(defaultGrubenv()));
    const text = new TextDecoder().decode(whole);
    const cut = text.indexOf('CLGW_RECOVERY=1\n') + 'CLGW_RECOVERY=1\n'.length;
    expect(recoveryReason(whole.slice(0, cut + 3))).toBe('requested');
  });
});

describe('progress marks', () => {
  it('advances in tens of percent and never repeats a mark', () => {
    const shown: number[] = [];
    let last = -1;
    for (let done = 0; done <= 1000; done += 37) {
      const m = progressMark(done, 1000, last);
      if (m !== undefined) {
        shown.push(m);
        last = m;
      }
    }
    const m = progressMark(1000, 1000, last);
    if (m !== undefined) shown.push(m);
    expect(shown).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  });
});
