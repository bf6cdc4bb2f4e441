/**
 * Factory reset, data reset and the critical-phase alarm on the agent's side: what is asked of
 * the recovery system, what is erased and kept, and what is refused.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { memoryLogger } from '@clgw/core/platform/log.js';
import { readGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../agent/src/agent.js';
import { composeDeps } from '../../../agent/src/compose.js';
import type { Journal } from '../../../agent/src/machine/journal.js';
import { readAlarms } from '../../../agent/src/state/alarms.js';
import { writeJournal } from '../../../agent/src/state/journal-file.js';
import { makeWorld, type RunningAgent, startAgent, until, type World } from '../../support/appliance.js';

let world: World | undefined;
let running: RunningAgent | undefined;

afterEach(async () => {
  await running?.stop();
  await world?.close();
  running = undefined;
  world = undefined;
});

async function treeDigest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      // A journal write in flight (temp file of writeFileAtomic) is not data.
      else if (/^\..*\.tmp$/.test(e.name)) continue;
      else
        out[path.relative(dir, p)] = createHash('sha256')
          .update(await fs.readFile(p))
          .digest('hex');
    }
  };
  await walk(dir);
  return out;
}

async function onboard(w: World): Promise<void> {
  const data = w.paths.dataDir;
  await fs.mkdir(path.join(data, 'onboarding/pbx'), { recursive: true });
  await fs.writeFile(path.join(data, 'onboarding/account-link.json'), '{"customer":"acme"}');
  await fs.writeFile(path.join(data, 'onboarding/tokens.json'), '{"refresh":"secret"}');
  await fs.writeFile(path.join(data, 'onboarding/pbx/settings.json'), '{"type":"MiVoice"}');
  await fs.mkdir(path.join(data, 'network'), { recursive: true });
  await fs.writeFile(path.join(data, 'network/10-eth0.network'), '[Match]\nName=eth0\n[Network]\nDHCP=yes\n');
}

describe('data reset', () => {
  it('erases the onboarding data and keeps software, network config and update state byte-for-byte', async () => {
    world = await makeWorld();
    await onboard(world);
    running = await startAgent(world);
    const slotsBefore = await Promise.all(
      ['boot', 'root'].map((k) =>
        fs.readFile(world!.paths.partition(k as 'boot', 'A')).then((b) => b.length),
      ),
    );
    const before = await treeDigest(world.paths.dataDir);
    await running.agent.request({ type: 'dataReset' });
    const after = await treeDigest(world.paths.dataDir);

    for (const f of Object.keys(before)) {
      if (f.startsWith('onboarding/')) expect(after[f], f).toBeUndefined();
      else if (f !== 'update-journal.json') expect(after[f], f).toBe(before[f]);
    }
    expect(await fs.readdir(world.paths.onboardingDir)).toEqual([]);
    expect(after['network/10-eth0.network']).toBeDefined();
    const slotsAfter = await Promise.all(
      ['boot', 'root'].map((k) =>
        fs.readFile(world!.paths.partition(k as 'boot', 'A')).then((b) => b.length),
      ),
    );
    expect(slotsAfter).toEqual(slotsBefore);
  });

  it('a data reset cut off half-way is finished at the next start', async () => {
    world = await makeWorld();
    await onboard(world);
    await fs.writeFile(world.paths.dataResetMarker, 'requested\n');
    running = await startAgent(world);
    expect(await fs.readdir(world.paths.onboardingDir)).toEqual([]);
    await expect(fs.stat(world.paths.dataResetMarker)).rejects.toThrow();
    expect(await fs.readFile(path.join(world.paths.dataDir, 'network/10-eth0.network'), 'utf8')).toContain(
      'eth0',
    );
  });

  it('is refused during the critical phase', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    await onboard(world);
    const log = memoryLogger();
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const deps = await composeDeps({
      paths: world.paths,
      clock: systemClock,
      log,
      reboot: { reboot: async () => undefined },
    });
    // Hold the journal write that opens the critical phase, so requests arrive inside it.
    const agent = new Agent(
      {
        ...deps,
        persistJournal: async (j: Journal) => {
          if (j.state === 'switching') await held;
          await writeJournal(world!.paths.journal, j);
        },
      },
      undefined,
    );
    agent.start();
    await agent.waitSettled();
    await agent.request({ type: 'update' });
    await until(() => agent.state === 'switching', 'the critical phase');
    await expect(agent.request({ type: 'dataReset' })).rejects.toMatchObject({
      code: 'NOT_ALLOWED',
      message: expect.stringContaining('critical phase'),
    });
    await expect(agent.request({ type: 'factoryReset' })).rejects.toMatchObject({ code: 'NOT_ALLOWED' });
    expect((await fs.readdir(world.paths.onboardingDir)).length).toBe(3);
    release();
    await until(() => agent.state === 'rebooting', 'the reboot');
    await agent.stop();
  });
});

describe('factory reset', () => {
  it('is refused on a virtual appliance with a message to redeploy', async () => {
    world = await makeWorld({ platform: 'virtual' });
    running = await startAgent(world);
    await expect(running.agent.request({ type: 'factoryReset' })).rejects.toMatchObject({
      code: 'NOT_ALLOWED',
      message: expect.stringContaining('redeploy'),
    });
    expect((await readGrubenv(world.paths.grubenv)).get('CLGW_RECOVERY')).not.toBe('1');
  });

  it('on a physical appliance asks the recovery system to run and reboots, without an alarm', async () => {
    world = await makeWorld({ platform: 'physical' });
    running = await startAgent(world);
    await running.agent.request({ type: 'factoryReset' });
    await until(() => running!.reboots.length > 0, 'the reboot');
    const env = await readGrubenv(world.paths.grubenv);
    expect(env.get('CLGW_RECOVERY')).toBe('1');
    expect(env.get('CLGW_RECOVERY_REASON')).toBe('factory-reset');
    expect(await readAlarms(world.paths.alarms)).toEqual([]);
  });
});

describe('CLGW_ALARM_CRITICAL_PHASE_FAILED', () => {
  it('a journal that entered the critical phase and never left it raises the alarm and asks for recovery', async () => {
    world = await makeWorld();
    const now = new Date().toISOString();
    await writeJsonAtomic(world.paths.journal, {
      schema: 1,
      state: 'switching',
      target: {
        version: '1.1.0',
        serial: 1,
        platform: 'virtual',
        slot: 'B',
        sourceSlot: 'A',
        sourceVersion: '1.0.0',
        artifacts: {
          boot: { path: 'releases/1.1.0/boot.img', size: 1, sha256: 'a'.repeat(64) },
          root: { path: 'releases/1.1.0/root.img', size: 1, sha256: 'b'.repeat(64) },
        },
      },
      critical: { enteredAt: now },
      updatedAt: now,
    });
    running = await startAgent(world);
    await until(() => running!.reboots.length > 0, 'the reboot into recovery');
    const alarms = await readAlarms(world.paths.alarms);
    expect(alarms).toHaveLength(1);
    expect(alarms[0]).toMatchObject({ code: 'CLGW_ALARM_CRITICAL_PHASE_FAILED' });
    const env = await readGrubenv(world.paths.grubenv);
    expect(env.get('CLGW_RECOVERY')).toBe('1');
    expect(env.get('CLGW_RECOVERY_REASON')).toBe('critical-phase-failed');
    const status = await running.agent.status();
    expect(status.alarms[0]?.code).toBe('CLGW_ALARM_CRITICAL_PHASE_FAILED');
    expect(status.error?.code).toBe('CRITICAL_PHASE_FAILED');

    // Restarted again before the reboot happened: still one alarm.
    await running.stop();
    running = await startAgent(world);
    await until(() => running!.reboots.length > 0, 'the reboot into recovery again');
    expect(await readAlarms(world.paths.alarms)).toHaveLength(1);
  });

  it('a torn boot environment found at start-up raises the alarm and asks for recovery with a fresh block', async () => {
    world = await makeWorld();
    await fs.writeFile(world.paths.grubenv, Buffer.alloc(1024, 0x41));
    running = await startAgent(world);
    await until(() => running!.reboots.length > 0, 'the reboot into recovery');
    const env = await readGrubenv(world.paths.grubenv);
    expect(env.get('CLGW_RECOVERY')).toBe('1');
    expect(env.get('CLGW_RECOVERY_REASON')).toBe('boot-environment-torn');
    expect((await readAlarms(world.paths.alarms))[0]?.code).toBe('CLGW_ALARM_CRITICAL_PHASE_FAILED');
  });
});
