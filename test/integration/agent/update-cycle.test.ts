/**
 * The whole update on a simulated appliance: A → B, reboot through the boot emulator's
 * bootloader pass, health check, commit; a broken release rolled back; a slot that never comes
 * up left behind by the bootloader itself.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseCompat } from '@clgw/core/release/parse.js';
import { readGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { afterEach, describe, expect, it } from 'vitest';
import { renderCompat } from '../../../image/src/release/build.js';
import { signDocument } from '../../../image/src/release/sign.js';
import { bootOnce } from '../../../scripts/sim/boot-emulator.js';
import {
  fingerprint,
  makeWorld,
  type RunningAgent,
  startAgent,
  until,
  type World,
} from '../../support/appliance.js';

let world: World | undefined;
let running: RunningAgent | undefined;

afterEach(async () => {
  await running?.stop();
  await world?.close();
  running = undefined;
  world = undefined;
});

/** Lets the running agent reboot: stop it, run the bootloader pass, start the agent again. */
async function reboot(w: World): Promise<{ slot: string }> {
  await until(() => (running?.reboots.length ?? 0) > 0, 'the agent to ask for a reboot');
  await running!.stop();
  const outcome = await bootOnce(w.root);
  running = await startAgent(w);
  return { slot: outcome.kind === 'booted' ? outcome.slot : outcome.kind };
}

async function env(w: World): Promise<Record<string, string>> {
  return Object.fromEntries(await readGrubenv(w.paths.grubenv));
}

describe('A/B update on the simulated appliance', () => {
  it('installs 1.1.0 into slot B, reboots, passes its health check and commits', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    running = await startAgent(world);
    const activeBefore = await fingerprint(world.paths);
    // The progress as the status (CLI, portal, console) would show it at each report.
    const verifying: { bytes: number; total: number }[] = [];
    const tracker = running.deps.progress;
    for (const method of ['start', 'update'] as const) {
      const call = tracker[method].bind(tracker) as (...args: unknown[]) => void;
      (tracker[method] as (...args: unknown[]) => void) = (...args) => {
        call(...args);
        const p = tracker.snapshot();
        if (p?.phase === 'verifying 1.1.0') verifying.push({ bytes: p.bytes, total: p.total });
      };
    }

    await running.agent.request({ type: 'update' });
    await until(() => running!.reboots.length > 0, 'reboot');
    // Both artifacts were read back behind their writes as they downloaded: the verify phase has
    // nothing left to read, and says 100 % from its start.
    expect(verifying.length).toBeGreaterThan(0);
    expect(verifying.every((p) => p.total > 0 && p.bytes === p.total)).toBe(true);
    await running.deps.log.flush();
    const verified = (await fs.readFile(world.paths.logFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .find((l) => l.msg === 'slot verified by read-back');
    expect(verified).toMatchObject({ readBackByDownload: ['boot', 'root'] });
    // Before the reboot: B written and first in ORDER, A untouched.
    expect(await env(world)).toMatchObject({ ORDER: 'B A', B_OK: '1', B_TRY: '0', A_OK: '1' });
    const after = await fingerprint(world.paths);
    expect(after.boot_a).toBe(activeBefore.boot_a);
    expect(after.root_a).toBe(activeBefore.root_a);
    const journal = JSON.parse(await fs.readFile(world.paths.journal, 'utf8'));
    expect(journal.state).toBe('rebooting');
    expect(journal.critical.enteredAt).toBeDefined();
    expect(journal.critical.leftAt).toBeDefined();

    const { slot } = await reboot(world);
    expect(slot).toBe('B');
    expect(await running.agent.waitSettled()).toBe('committed');
    const status = await running.agent.status();
    expect(status).toMatchObject({
      bootedSlot: 'B',
      gatewayVersion: '1.1.0',
      osPatchLevel: '2025-11-01',
      highestVersion: '1.1.0',
    });
    expect(status.slots.B).toMatchObject({ version: '1.1.0', ok: true, try: false, booted: true });
    expect(status.slots.A).toMatchObject({ version: '1.0.0', ok: true });
    expect(await env(world)).toMatchObject({ ORDER: 'B A', B_OK: '1', B_TRY: '0' });

    // The next check finds nothing newer.
    await running.agent.request({ type: 'check' });
    await running.agent.waitSettled();
    expect((await running.agent.status()).check?.outcome).toBe('upToDate');
  });

  it('rolls back a release whose root declares other patches than its compat.yaml promised', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    // The vendor's document says one patch level, the image another: signed, and still a lie.
    const file = path.join(world.tree, 'compat.yaml');
    const compat = parseCompat(await fs.readFile(file));
    expect(compat.platforms.virtual?.release.osPatchLevel).toBe('2025-11-01');
    compat.platforms.virtual!.release.osPatchLevel = '2030-01-01';
    const document = Buffer.from(renderCompat(compat));
    await fs.writeFile(file, document);
    await fs.writeFile(path.join(world.tree, 'compat.yaml.sig'), signDocument(document, world.keys));

    running = await startAgent(world);
    expect((await running.agent.status()).osPatchLevel).toBe('2025-10-01');
    await running.agent.request({ type: 'update' });
    expect((await reboot(world)).slot).toBe('B');
    expect((await reboot(world)).slot).toBe('A');
    expect(await running.agent.waitSettled()).toBe('rolledBack');
    const status = await running.agent.status();
    expect(status.result?.error?.message).toContain(
      'slot B declares OS patch level 2025-11-01, compat.yaml promised 2030-01-01',
    );
    expect(status).toMatchObject({ gatewayVersion: '1.0.0', osPatchLevel: '2025-10-01' });
  });

  it('rolls back a release whose health check fails, and does not retry it automatically', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    running = await startAgent(world);
    await running.agent.request({ type: 'update' });
    await reboot(world);
    expect(await running.agent.waitSettled()).toBe('committed');

    await world.publish('1.2.0', { broken: true });
    await running.agent.request({ type: 'update' });
    const into = await reboot(world); // into the new release on slot A
    expect(into.slot).toBe('A');
    const back = await reboot(world); // its health check failed: back to B
    expect(back.slot).toBe('B');
    expect(await running.agent.waitSettled()).toBe('rolledBack');

    const status = await running.agent.status();
    expect(status).toMatchObject({ bootedSlot: 'B', gatewayVersion: '1.1.0', highestVersion: '1.1.0' });
    expect(status.result?.outcome).toBe('rolledBack');
    expect(status.result?.error?.code).toBe('HEALTH_CHECK_FAILED');
    expect(status.result?.message).toContain('cloudlink-tunnel.service failed to start');
    expect(await env(world)).toMatchObject({ ORDER: 'B A', A_OK: '0', B_OK: '1', B_TRY: '0' });

    // An automatic (boot-time) attempt skips the rejected release; --force would retry it.
    await running.agent.request({ type: 'update', trigger: 'boot' });
    await running.agent.waitSettled();
    const again = await running.agent.status();
    expect(again.check?.outcome).toBe('rejected');
    expect(again.check?.message).toContain('rolled back on this appliance');
    expect(again.result?.outcome).toBe('rolledBack');
    expect(running.reboots).toHaveLength(0);
  });

  it("a power cut during the new slot's first boot: the bootloader falls back, the agent switches again and commits", async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    running = await startAgent(world);
    await running.agent.request({ type: 'update' });
    await until(() => running!.reboots.length > 0, 'reboot');
    await running.stop();
    // B boots, and the power goes off before its agent confirms it: B stays "being tried".
    expect(await bootOnce(world.root)).toMatchObject({ kind: 'booted', slot: 'B' });
    expect(await env(world)).toMatchObject({ B_TRY: '1' });
    // Power on: GRUB skips the tried slot and boots A. No health check failed, so B gets another boot.
    expect(await bootOnce(world.root)).toMatchObject({ kind: 'booted', slot: 'A' });
    running = await startAgent(world);
    await until(() => running!.reboots.length > 0, 'the agent to switch to B again and reboot');
    expect(await env(world)).toMatchObject({ ORDER: 'B A', A_OK: '1', A_TRY: '0', B_OK: '1', B_TRY: '0' });
    expect(running.agent.journal).toMatchObject({ state: 'rebooting', switches: 2 });
    expect(await reboot(world)).toEqual({ slot: 'B' });
    expect(await running.agent.waitSettled()).toBe('committed');
    expect(await running.agent.status()).toMatchObject({ bootedSlot: 'B', gatewayVersion: '1.1.0' });
    expect(await env(world)).toMatchObject({ B_OK: '1', B_TRY: '0', LAST_GOOD: 'B', LAST_GOOD_TRIES: '0' });
  });

  it('when the new slot never comes up, the agent tries it three times, then records the rollback', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    running = await startAgent(world);
    await running.agent.request({ type: 'update' });
    for (let boot = 1; boot <= 3; boot++) {
      await until(() => running!.reboots.length > 0, `reboot ${boot}`);
      await running.stop();
      // Boot B, but its agent never runs (a crash before the health check): B stays "being tried".
      expect(await bootOnce(world.root)).toMatchObject({ kind: 'booted', slot: 'B' });
      expect(await env(world)).toMatchObject({ B_TRY: '1' });
      // Power cycle: GRUB skips the tried slot and boots A.
      expect(await bootOnce(world.root)).toMatchObject({ kind: 'booted', slot: 'A' });
      running = await startAgent(world);
    }
    expect(await running.agent.waitSettled()).toBe('rolledBack');
    const status = await running.agent.status();
    expect(status.result?.message).toContain('did not come up (3 of 3 boots)');
    expect(status.result?.message).toContain('bootloader fell back to slot A');
    expect(status).toMatchObject({ bootedSlot: 'A', gatewayVersion: '1.0.0' });
    expect(await env(world)).toMatchObject({ A_OK: '1', A_TRY: '0', B_OK: '0', LAST_GOOD: 'A' });
  });

  it("the update window's run installs the release it finds (trigger window)", async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    running = await startAgent(world);
    void running.agent.windowUpdate();
    expect(await reboot(world)).toEqual({ slot: 'B' });
    expect(await running.agent.waitSettled()).toBe('committed');
    expect(running.agent.journal).toMatchObject({ trigger: 'window', result: { outcome: 'committed' } });
  });
});
