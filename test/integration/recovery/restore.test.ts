/**
 * The recovery program (`recovery/dist/main.js`, a real process) on a simulated appliance: a full
 * factory restore, a torn boot environment, power cuts (SIGKILL) at several instants followed by
 * a restart, and refusals (corrupt factory image, bad manifest, slot too small) that write nothing.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { defaultGrubenv } from '@clgw/core/slot/bootchooser.js';
import { readGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { afterEach, describe, expect, it } from 'vitest';
import { bootOnce } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, testImages, type World } from '../../support/appliance.js';
import {
  ALARMS,
  cutRecoveryAt,
  expectRestored,
  REASON,
  runRecoveryProgram,
  sha256,
  slotDigests,
  treeDigest,
  useAppliance,
} from './support.js';

let world: World | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

describe('factory restore', () => {
  it('restores slot A, erases the data partition but the alarm history, resets the boot environment and asks for a reboot', async () => {
    world = await makeWorld();
    const factory = await testImages('1.0.0');
    const used = await useAppliance(world.paths, { reason: REASON });
    expect(used.slots.root_a).not.toBe(sha256(await fs.readFile(factory.root)));

    const run = await runRecoveryProgram(world.root);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    await expectRestored(world.paths, factory, { reason: REASON, alarms: ALARMS, scribbledTail: true });

    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.every((l) => l.startsWith('recovery: '))).toBe(true);
    expect(lines).toContain('recovery: verifying factory images (version 1.0.0)…');
    for (const pct of [0, 50, 100]) expect(lines).toContain(`recovery: writing root.img: ${pct}%`);

    // The recovery's own log survives the erase: it lives on the recovery partition.
    const log = (await fs.readFile(path.join(world.paths.recoveryPartition, 'recovery.log'), 'utf8'))
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log[0]).toMatchObject({ msg: 'recovery starting', reason: REASON });
    expect(log.at(-1)).toMatchObject({ msg: 'recovery completed', factoryVersion: '1.0.0' });

    // The next boot comes up on slot A.
    expect(await bootOnce(world.root)).toMatchObject({ kind: 'booted', slot: 'A' });
  });

  it('without an alarm history the data partition is left with the record only; the reason defaults to "requested"', async () => {
    world = await makeWorld();
    await useAppliance(world.paths);
    await fs.rm(world.paths.alarms);
    const run = await runRecoveryProgram(world.root);
    expect(run.code).toBe(0);
    await expectRestored(world.paths, await testImages('1.0.0'), { reason: 'requested' });
  });

  it('the image layout, where the log directory is a link into the data partition: erased once, the link kept', async () => {
    world = await makeWorld();
    await useAppliance(world.paths, { reason: REASON });
    const inData = path.join(world.paths.dataDir, 'log');
    await fs.rm(world.paths.logDir, { recursive: true });
    await fs.mkdir(inData);
    await fs.writeFile(path.join(inData, 'clgw.log'), '{"msg":"old log"}\n');
    await fs.symlink(inData, world.paths.logDir);

    const run = await runRecoveryProgram(world.root);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect((await fs.lstat(world.paths.logDir)).isSymbolicLink()).toBe(true);
    expect((await fs.readdir(world.paths.dataDir)).sort()).toEqual(['alarms.json', 'recovery.json']);
  });

  it('a torn boot environment makes GRUB choose recovery, which writes a good default one', async () => {
    world = await makeWorld();
    await useAppliance(world.paths);
    const torn = Buffer.alloc(1024);
    for (let i = 0; i < torn.length; i++) torn[i] = (i * 7919) % 251;
    await fs.writeFile(world.paths.grubenv, torn);
    expect(await bootOnce(world.root)).toMatchObject({ kind: 'recovery' });

    const run = await runRecoveryProgram(world.root);
    expect(run.code).toBe(0);
    await expectRestored(world.paths, await testImages('1.0.0'), {
      reason: 'no bootable slot',
      alarms: ALARMS,
    });
    expect(Object.fromEntries(await readGrubenv(world.paths.grubenv))).toEqual(
      Object.fromEntries(defaultGrubenv()),
    );
    expect(await bootOnce(world.root)).toMatchObject({ kind: 'booted', slot: 'A' });
  });
});

describe('power cut during the factory restore', () => {
  const device = (w: World, kind: 'boot' | 'root') => w.paths.partition(kind, 'A');
  const points: [string, (w: World) => string, (w: World, grubenv: Uint8Array) => Promise<void>][] = [
    [
      'after stashing the alarm history, before writing boot_a',
      (w) => `recovery: writing boot.img to ${device(w, 'boot')}…`,
      async (w) => {
        expect(await fs.readFile(path.join(w.paths.recoveryPartition, 'carry/alarms.json'), 'utf8')).toBe(
          ALARMS,
        );
      },
    ],
    [
      'half-way through the root copy',
      () => 'recovery: writing root.img: 50%',
      async (w) => {
        // Half of root.img is on root_a, the rest not yet.
        const image = await fs.readFile((await testImages('1.0.0')).root);
        const part = await fs.readFile(device(w, 'root'));
        expect(part.subarray(0, image.length / 2).equals(image.subarray(0, image.length / 2))).toBe(true);
        expect(part.subarray(0, image.length).equals(image)).toBe(false);
      },
    ],
    [
      'after the data erase, before the alarm history is back',
      () => 'recovery: restoring the alarm history…',
      async (w) => {
        expect(await fs.readdir(w.paths.dataDir)).toEqual([]);
        expect(await fs.readdir(w.paths.logDir)).toEqual([]);
      },
    ],
    [
      'after the stash is removed, before the boot environment is reset',
      () => 'recovery: writing the default boot environment (slot A)…',
      async (w) => {
        await expect(fs.stat(path.join(w.paths.recoveryPartition, 'carry'))).rejects.toThrow();
        expect(await fs.readFile(w.paths.alarms, 'utf8')).toBe(ALARMS);
      },
    ],
  ];

  it.each(points)(
    '%s: the box goes back into recovery and the next run completes',
    async (_name, line, check) => {
      world = await makeWorld();
      const w = world;
      const used = await useAppliance(w.paths, { reason: REASON });
      await cutRecoveryAt(w.root, line(w));
      await check(w, used.grubenv);
      // Until the last step the request stands: GRUB chooses recovery again.
      expect(Buffer.from(await fs.readFile(w.paths.grubenv))).toEqual(Buffer.from(used.grubenv));
      expect(await bootOnce(w.root)).toMatchObject({ kind: 'recovery' });

      const run = await runRecoveryProgram(w.root);
      expect(run.code).toBe(0);
      await expectRestored(w.paths, await testImages('1.0.0'), { reason: REASON, alarms: ALARMS });
    },
  );

  it('several cuts in a row (root copy, after the erase, after the record) still end in the same state', async () => {
    world = await makeWorld();
    await useAppliance(world.paths, { reason: REASON });
    await cutRecoveryAt(world.root, 'recovery: writing root.img: 30%');
    await cutRecoveryAt(world.root, 'recovery: restoring the alarm history…');
    await cutRecoveryAt(world.root, 'recovery: removing the alarm stash…');
    await cutRecoveryAt(world.root, 'recovery: writing root.img: 90%');
    const run = await runRecoveryProgram(world.root);
    expect(run.code).toBe(0);
    await expectRestored(world.paths, await testImages('1.0.0'), { reason: REASON, alarms: ALARMS });
  });
});

describe('refusals: nothing is written and the box stays in recovery', () => {
  async function expectUntouched(
    w: World,
    before: { grubenv: Uint8Array; slots: Record<string, string> },
    data: Record<string, string>,
  ) {
    expect(await slotDigests(w.paths)).toEqual(before.slots);
    expect(Buffer.from(await fs.readFile(w.paths.grubenv))).toEqual(Buffer.from(before.grubenv));
    expect(await treeDigest(w.paths.dataDir)).toEqual(data);
    await expect(fs.stat(path.join(w.paths.recoveryPartition, 'carry'))).rejects.toThrow();
    await expect(fs.stat(w.paths.rebootRequest)).rejects.toThrow();
  }

  it('a corrupt factory root image: RECOVERY_IMAGE_INVALID naming the file, expected and actual digests', async () => {
    world = await makeWorld();
    const used = await useAppliance(world.paths, { reason: REASON });
    const data = await treeDigest(world.paths.dataDir);
    const image = path.join(world.paths.recoveryPartition, 'root.img');
    const manifest = JSON.parse(
      await fs.readFile(path.join(world.paths.recoveryPartition, 'manifest.json'), 'utf8'),
    );
    const bytes = await fs.readFile(image);
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff; // eight bits flipped near the end
    await fs.writeFile(image, bytes);

    const run = await runRecoveryProgram(world.root);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('RECOVERY_IMAGE_INVALID');
    expect(run.stderr).toContain(image);
    expect(run.stderr).toContain(`expected ${manifest.root.sha256}`);
    expect(run.stderr).toContain(sha256(bytes));
    await expectUntouched(world, used, data);
    expect(await bootOnce(world.root)).toMatchObject({ kind: 'recovery' });
  });

  it('a truncated factory boot image: RECOVERY_IMAGE_INVALID with both sizes', async () => {
    world = await makeWorld();
    const used = await useAppliance(world.paths);
    const data = await treeDigest(world.paths.dataDir);
    const image = path.join(world.paths.recoveryPartition, 'boot.img');
    const size = (await fs.stat(image)).size;
    await fs.truncate(image, size - 4096);
    const run = await runRecoveryProgram(world.root);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `RECOVERY_IMAGE_INVALID: factory image ${image} is ${size - 4096} bytes, expected ${size}`,
    );
    await expectUntouched(world, used, data);
  });

  it('a manifest naming a file outside the recovery partition: RECOVERY_MANIFEST_INVALID', async () => {
    world = await makeWorld();
    const used = await useAppliance(world.paths);
    const data = await treeDigest(world.paths.dataDir);
    const file = path.join(world.paths.recoveryPartition, 'manifest.json');
    const manifest = JSON.parse(await fs.readFile(file, 'utf8'));
    manifest.root.file = '../root_b';
    await fs.writeFile(file, JSON.stringify(manifest));
    const run = await runRecoveryProgram(world.root);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('RECOVERY_MANIFEST_INVALID');
    expect(run.stderr).toContain('root.file');
    await expectUntouched(world, used, data);
  });

  it('a missing manifest: RECOVERY_MANIFEST_INVALID naming it', async () => {
    world = await makeWorld();
    const used = await useAppliance(world.paths);
    const data = await treeDigest(world.paths.dataDir);
    const file = path.join(world.paths.recoveryPartition, 'manifest.json');
    await fs.rm(file);
    const run = await runRecoveryProgram(world.root);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`RECOVERY_MANIFEST_INVALID: factory manifest ${file} does not exist`);
    await expectUntouched(world, used, data);
  });

  it('a root slot smaller than the factory image: NO_SPACE before boot_a is written', async () => {
    world = await makeWorld();
    const rootA = world.paths.partition('root', 'A');
    await fs.truncate(rootA, 1024 * 1024);
    const used = await useAppliance(world.paths);
    const data = await treeDigest(world.paths.dataDir);
    const run = await runRecoveryProgram(world.root);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('NO_SPACE');
    expect(run.stderr).toContain(rootA);
    await expectUntouched(world, used, data);
  });
});
