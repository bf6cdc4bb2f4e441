/**
 * The recovery system inside the boot emulator: GRUB chooses recovery, the emulator runs the
 * recovery program, and the box comes up on slot A with the factory release and the agent
 * running — also after a power cut (SIGKILL) in the middle of the restore. A bad factory image
 * keeps the box in recovery with the error.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import { readAlarms } from '../../../agent/src/state/alarms.js';
import type { Status } from '../../../agent/src/status.js';
import { AGENT_MAIN, RECOVERY_MAIN, runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, testImages, until, type World } from '../../support/appliance.js';
import { REASON, sha256, useAppliance, waitStopped } from './support.js';

let world: World | undefined;
let appliance: ReturnType<typeof runAppliance> | undefined;

afterEach(async () => {
  await appliance?.stop();
  await world?.close();
  appliance = undefined;
  world = undefined;
});

async function expectUpOnFactoryA(w: World): Promise<Status> {
  const client = new AgentClient(w.paths.socket, 5000);
  const status = await until<Status>(async () => {
    const s = await client.status();
    return s.state === 'idle' ? s : undefined;
  }, 'the agent to start after the recovery');
  expect(status).toMatchObject({ bootedSlot: 'A', gatewayVersion: '1.0.0' });
  const factory = await testImages('1.0.0');
  const image = await fs.readFile(factory.root);
  const part = await fs.readFile(w.paths.partition('root', 'A'));
  expect(sha256(part.subarray(0, image.length))).toBe(sha256(image));
  // The alarm that led here is still in the history (the agent marks it recovered).
  const alarms = await readAlarms(w.paths.alarms);
  expect(alarms.map((a) => a.code)).toContain('CLGW_ALARM_CRITICAL_PHASE_FAILED');
  // Onboarding data and network configuration are gone.
  await expect(fs.stat(path.join(w.paths.dataDir, 'onboarding'))).rejects.toThrow();
  await expect(fs.stat(path.join(w.paths.dataDir, 'network'))).rejects.toThrow();
  return status;
}

describe('recovery in the boot emulator', () => {
  it('a box whose boot environment asks for recovery comes up on slot A with the factory release', async () => {
    await fs.access(AGENT_MAIN); // built by `make test`
    await fs.access(RECOVERY_MAIN);
    world = await makeWorld({ boot: false });
    await useAppliance(world.paths, { reason: REASON });
    const said: string[] = [];
    appliance = runAppliance({ root: world.root, say: (l) => void said.push(l) });
    await expectUpOnFactoryA(world);
    expect(appliance.boots()).toBe(2);
    expect(said[0]).toMatch(/^boot 1: GRUB chose the recovery system .*starting clgw-recovery$/);
    expect(said).toContain('recovery completed and requested a reboot');
    expect(said.some((l) => l.startsWith('boot 2: GRUB chose slot A'))).toBe(true);
  });

  it('a power cut in the middle of the root copy: the next boot runs the recovery again and the box comes up on A', async () => {
    world = await makeWorld({ boot: false });
    await useAppliance(world.paths, { reason: REASON });
    appliance = runAppliance({
      root: world.root,
      say: () => undefined,
      env: { CLGW_RECOVERY_STOP_AFTER: 'recovery: writing root.img: 50%' },
    });
    const a = appliance;
    const first = await until(() => a.recoveryPid(), 'the recovery to start');
    await waitStopped(first, 'half of root.img');
    process.kill(first, 'SIGKILL');

    // Same request, same stop point on the second run: let that one go on.
    const second = await until(() => {
      const pid = a.recoveryPid();
      return pid !== undefined && pid !== first ? pid : undefined;
    }, 'the recovery to start again');
    await waitStopped(second, 'half of root.img (second run)');
    process.kill(second, 'SIGCONT');

    await expectUpOnFactoryA(world);
    expect(appliance.boots()).toBe(3);
  });

  it('a corrupt factory image keeps the box in recovery and says why', async () => {
    world = await makeWorld({ boot: false });
    await useAppliance(world.paths, { reason: REASON });
    const image = path.join(world.paths.recoveryPartition, 'boot.img');
    const bytes = await fs.readFile(image);
    bytes[0] = bytes[0]! ^ 0x01;
    await fs.writeFile(image, bytes);
    appliance = runAppliance({ root: world.root, say: () => undefined });
    const why = await appliance.done;
    expect(why).toMatch(
      /^recovery failed: clgw-recovery: RECOVERY_IMAGE_INVALID: factory image .*boot\.img has SHA-256/,
    );
    expect(appliance.boots()).toBe(1);
    expect(appliance.agentPid()).toBeUndefined();
  });
});
