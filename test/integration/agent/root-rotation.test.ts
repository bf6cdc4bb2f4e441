import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type DevKeys,
  generateRootCa,
  issueIntermediate,
  issueSigningCert,
  ROOT_ROTATION_FILE,
  republishCompat,
  runReleaseCommand,
  saveKeys,
  signRootRotation,
  treeRotationFile,
} from '../../../image/src/release/index.js';
import {
  fingerprintAll,
  makeWorld,
  type RunningAgent,
  startAgent,
  testKeys,
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

beforeAll(() => {
  testKeys();
});

/** The update's own record changes with every check, refused or not. */
const CHANGED_BY_A_CHECK = new Set(['update-journal.json']);

/** Both slots, grubenv and every file on the data partition a refusal must leave alone. */
const appliance = (w: World) => fingerprintAll(w.paths, CHANGED_BY_A_CHECK);

async function check(): Promise<{ outcome?: string; code?: string; message?: string }> {
  await running!.agent.request({ type: 'check' });
  await running!.agent.waitSettled(AbortSignal.timeout(60_000));
  const status = await running!.agent.status();
  expect(status.state).toBe('idle');
  return {
    outcome: status.check?.outcome,
    code: status.check?.error?.code,
    message: status.check?.error?.message,
  };
}

interface Published {
  document: Buffer;
  envelope: Buffer;
}

async function published(w: World): Promise<Published> {
  return {
    document: await fs.readFile(path.join(w.tree, 'compat.yaml')),
    envelope: await fs.readFile(path.join(w.tree, 'compat.yaml.sig')),
  };
}

async function publishFiles(w: World, files: Published): Promise<void> {
  await fs.writeFile(path.join(w.tree, 'compat.yaml'), files.document);
  await fs.writeFile(path.join(w.tree, 'compat.yaml.sig'), files.envelope);
}

describe('root rotation', () => {
  it('adopts the new root, accepts both roots during the overlap, only the new one after it', async () => {
    world = await makeWorld();
    const old = world.keys;
    await world.publish('1.1.0');

    // The vendor: a new root, vouched for by the old root's key, with an overlap of a few seconds;
    // signing moves under the new root (new intermediate and signing certificate).
    const newRoot = generateRootCa({ bits: 2048 });
    const intermediate = issueIntermediate(newRoot, { bits: 2048 });
    const underNew: DevKeys = {
      root: { certPem: newRoot.certPem },
      intermediate,
      signing: issueSigningCert(intermediate, { bits: 2048 }),
    };
    // Long enough for an agent start and a check under load, short enough to wait out.
    const overlapMs = 12_000;
    const overlapUntil = new Date(Math.ceil((Date.now() + overlapMs) / 1000) * 1000)
      .toISOString()
      .replace('.000Z', 'Z');
    const rotation = signRootRotation(newRoot.certPem, old.root, overlapUntil).signed;
    await fs.writeFile(
      path.join(world.tree, ROOT_ROTATION_FILE),
      JSON.stringify(treeRotationFile(rotation, old.root.certPem)),
    );
    await republishCompat({ tree: world.tree, keys: old });
    const oldSigned = await published(world);
    expect(JSON.parse(oldSigned.envelope.toString()).rootRotation).toEqual(rotation);

    // During the overlap: the old root's chain is accepted, and the rotation stored on the way.
    running = await startAgent(world);
    expect(await check()).toMatchObject({ outcome: 'available' });
    expect(JSON.parse(await fs.readFile(world.paths.rootRotation, 'utf8'))).toEqual(rotation);
    await running.deps.log.flush();
    expect(await fs.readFile(world.paths.logFile, 'utf8')).toContain('release root rotation adopted');

    // …and the new root's chain too.
    await republishCompat({ tree: world.tree, keys: underNew });
    const newSigned = await published(world);
    expect(JSON.parse(newSigned.envelope.toString()).rootRotation).toEqual(rotation);
    expect(await check()).toMatchObject({ outcome: 'available' });

    // After the overlap: the old root's chain is refused, saying why, and nothing is touched.
    await new Promise((r) => setTimeout(r, Date.parse(overlapUntil) - Date.now() + 1_500));
    await republishCompat({ tree: world.tree, keys: old });
    const oldAfter = await published(world);
    await publishFiles(world, oldAfter);
    const untouched = await appliance(world);
    const refused = await check();
    expect(refused.outcome).toBe('failed');
    expect(refused.code).toBe('CHAIN_INVALID');
    expect(refused.message).toMatch(/ends at the old release root .* whose overlap ended at /);
    expect(refused.message).toContain(overlapUntil);
    expect(await appliance(world)).toEqual(untouched);

    // A replay from the overlap (rotation and all), and an agent started afresh: still refused.
    await running.stop();
    running = await startAgent(world);
    await publishFiles(world, oldSigned);
    expect(await check()).toMatchObject({ code: 'CHAIN_INVALID' });
    expect(await appliance(world)).toEqual(untouched);

    // The new root's chain is accepted after the overlap.
    await republishCompat({ tree: world.tree, keys: underNew });
    expect(await check()).toMatchObject({ outcome: 'available' });

    // A factory reset erases the data partition: the image's (old) root is the floor, and the
    // rotation comes back with the next envelope — also after the overlap, since it is still
    // vouched for by that root.
    await running.stop();
    await fs.rm(world.paths.rootRotation);
    running = await startAgent(world);
    await republishCompat({ tree: world.tree, keys: underNew });
    expect(await check()).toMatchObject({ outcome: 'available' });
    expect(JSON.parse(await fs.readFile(world.paths.rootRotation, 'utf8'))).toEqual(rotation);
  });

  it('refuses a forged rotation and a corrupt stored one, naming them, touching nothing', async () => {
    world = await makeWorld();
    const old = world.keys;
    await world.publish('1.1.0');
    const newRoot = generateRootCa({ bits: 2048 });
    // Vouched for by the intermediate (an online key): not by a pinned root.
    const forged = signRootRotation(newRoot.certPem, old.intermediate, '2099-01-01T00:00:00Z').signed;
    const good = await published(world);
    const envelope = JSON.parse(good.envelope.toString()) as object;
    await publishFiles(world, {
      document: good.document,
      envelope: Buffer.from(JSON.stringify({ ...envelope, rootRotation: forged })),
    });
    running = await startAgent(world);
    const untouched = await appliance(world);
    const a = await check();
    expect(a.code).toBe('SIGNATURE_INVALID');
    expect(a.message).toContain('the root rotation in compat.yaml.sig does not verify');
    expect(await appliance(world)).toEqual(untouched);
    await expect(fs.access(world.paths.rootRotation)).rejects.toThrow();

    await publishFiles(world, good);
    await fs.writeFile(world.paths.rootRotation, '{"cert":');
    const corrupt = await appliance(world);
    const b = await check();
    expect(b.code).toBe('SIGNATURE_INVALID');
    expect(b.message).toContain(`the stored root rotation ${world.paths.rootRotation} is not UTF-8 JSON`);
    expect(await appliance(world)).toEqual(corrupt);
  });

  it('clgw-release rotate-root: needs the old root key, writes the rotation and re-signs compat.yaml', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    const keysDir = path.join(world.dir, 'keys');
    const caDir = path.join(world.dir, 'keys-ca');
    await saveKeys(keysDir, world.keys, { caDir });
    const newRootOut = path.join(world.dir, 'new-root');
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
    const args = ['rotate-root', '--keys', keysDir, '--tree', world.tree, '--new-root-out', newRootOut];
    expect(await runReleaseCommand([...args, '--ca', world.dir], io)).toBe(1);
    expect(out.join('\n')).toContain(`its private key ${path.join(world.dir, 'root.key')} cannot be read`);
    out.length = 0;
    const before = JSON.parse(await fs.readFile(path.join(world.tree, 'compat.yaml.sig'), 'utf8'));
    expect(before.rootRotation).toBeUndefined();
    expect(await runReleaseCommand([...args, '--overlap-days', '30'], io), out.join('\n')).toBe(0);
    const { previousRoot, ...rotation } = JSON.parse(
      await fs.readFile(path.join(world.tree, ROOT_ROTATION_FILE), 'utf8'),
    );
    expect(previousRoot.trim()).toBe(world.keys.root.certPem.replace(/\r\n/g, '\n').trim());
    const after = JSON.parse(await fs.readFile(path.join(world.tree, 'compat.yaml.sig'), 'utf8'));
    expect(after.rootRotation).toEqual(rotation);
    expect((await fs.stat(path.join(newRootOut, 'root.key'))).mode & 0o777).toBe(0o600);
    expect(out.join('\n')).toMatch(/re-signed with the rotation, serial \d+/);
    // The appliance adopts it, and the old chain is still accepted (30 days of overlap).
    running = await startAgent(world);
    expect(await check()).toMatchObject({ outcome: 'available' });
    expect(JSON.parse(await fs.readFile(world.paths.rootRotation, 'utf8'))).toEqual(rotation);
    // A second rotation of the same root is refused.
    expect(await runReleaseCommand([...args.slice(0, -1), path.join(world.dir, 'again')], io)).toBe(1);
    expect(out.join('\n')).toContain('already holds a root rotation');
  });
});
