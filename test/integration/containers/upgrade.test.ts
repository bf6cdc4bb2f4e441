/**
 * Container upgrades by the agent against a real Podman engine, with the stand-in images
 * published on the loopback mirror through a signed compat.yaml: first install, upgrade with its
 * downtime, rollback of a never-healthy release, and the faults — each leaving the running
 * containers untouched.
 */
import { createWriteStream, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { archiveForLoad, inspectImageArchive } from '@clgw/core/containers/archive.js';
import type { ContainerName } from '@clgw/core/release/schema.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../../agent/src/containers/engine.js';
import { LABELS } from '../../../agent/src/containers/engine-port.js';
import { probe } from '../../../agent/src/containers/probe.js';
import { startInstalledContainers } from '../../../agent/src/containers/run.js';
import { publishContainers } from '../../../image/src/release/build.js';
import { buildStandin, type StandinArchive } from '../../../scripts/standins.js';
import { makeWorld, type RunningAgent, startAgent, until, type World } from '../../support/appliance.js';
import { engineSkipReason, startEngine, type TestEngine } from '../../support/engine.js';
import { freePort } from '../../support/ports.js';
import { recordSkip } from '../../support/skip.js';

const skip = await engineSkipReason();
if (skip) recordSkip('test/integration/containers/upgrade.test.ts', skip);

let engine: TestEngine;
let world: World;
let running: RunningAgent;
const ports: Record<string, number> = {};
const archives: Record<string, StandinArchive> = {};

/** Publishes this container set for the virtual platform (a new signed compat.yaml). */
async function publish(
  set: [ContainerName, string, { image?: string; file?: string; imageId?: string | null }?][],
): Promise<void> {
  await publishContainers({
    tree: world.tree,
    keys: world.keys,
    platforms: ['virtual'],
    containers: set.map(([name, key, over]) => ({
      name,
      version: archives[key]!.reference.split(':')[1]!.replace(/-broken$/, ''),
      image: over?.image ?? archives[key]!.reference,
      archive: over?.file ?? archives[key]!.file,
      ...(over?.imageId !== undefined ? { imageId: over.imageId } : {}),
    })),
  });
}

/** Every image the engine holds, by ID, with its tags: what a refused archive must leave alone. */
async function images(): Promise<string[]> {
  const body = await new Promise<string>((resolve, reject) => {
    http
      .get({ socketPath: engine.socket, path: '/v1.41/images/json?all=true' }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
  return (JSON.parse(body) as { Id: string; RepoTags?: string[] | null }[])
    .map((i) => `${i.Id} ${[...(i.RepoTags ?? [])].sort().join(',')}`)
    .sort();
}

async function version(service: string): Promise<string> {
  return (await probe(ports[service]!, '/version')).body;
}

async function fails(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected the container upgrade to fail');
}

describe.skipIf(skip)('container upgrades on Podman', () => {
  beforeAll(async () => {
    engine = await startEngine();
    ports.tunnel = await freePort();
    ports.micloud = await freePort();
    world = await makeWorld({
      config: {
        engineSocket: engine.socket,
        containerPorts: { tunnel: ports.tunnel, micloud: ports.micloud, freeswitch: await freePort() },
        containerHealthTimeoutMs: 6000,
        profile: 'small',
      },
    });
    await world.publish('1.0.0');
    const out = path.join(world.dir, 'standins');
    for (const [key, service, v, broken] of [
      ['tunnel-1.0', 'tunnel', '1.0.0', false],
      ['tunnel-1.1', 'tunnel', '1.1.0', false],
      ['tunnel-1.2', 'tunnel', '1.2.0', true],
      ['tunnel-1.3', 'tunnel', '1.3.0', false],
      ['tunnel-1.4', 'tunnel', '1.4.0', false],
      ['micloud-1.0', 'micloud', '1.0.0', false],
      ['micloud-1.1', 'micloud', '1.1.0', false],
    ] as const) {
      archives[key] = await buildStandin({ service, version: v, broken, out });
    }
    running = await startAgent(world);
  }, 180_000);

  afterAll(async () => {
    await running?.stop();
    await world?.close();
    await engine?.stop();
  }, 120_000);

  it('installs the containers compat.yaml names, healthy, with the profile limits', async () => {
    await publish([
      ['tunnel', 'tunnel-1.0'],
      ['micloud', 'micloud-1.0'],
    ]);
    const state = await running.agent.upgradeContainers({ trigger: 'user' });
    expect(state.lastRun?.outcome).toBe('done');
    expect(state.last.tunnel).toMatchObject({ outcome: 'installed', version: '1.0.0' });
    expect(state.last.micloud).toMatchObject({ outcome: 'installed', version: '1.0.0' });
    expect(await version('tunnel')).toBe('tunnel 1.0.0');
    expect(await version('micloud')).toBe('micloud 1.0.0');
    const view = await running.agent.containers();
    expect(view.containers.map((c) => [c.service, c.version, c.state, c.health])).toEqual([
      ['tunnel', '1.0.0', 'running', 'healthy'],
      ['micloud', '1.0.0', 'running', 'healthy'],
    ]);
    const info = await createEngine(engine.socket).inspectContainer('clgw-tunnel');
    expect(info?.spec.memoryBytes).toBe(256 * 1024 * 1024);
    expect(info?.spec.env).toContain(`PORT=${ports.tunnel}`);
    expect(info?.spec.volumes).toEqual([
      { host: path.join(world.paths.containerData, 'tunnel'), container: '/data', readOnly: false },
    ]);
    // The archive cache is emptied once the images are loaded.
    expect(await fs.readdir(world.paths.containerArchives)).toEqual([]);
  });

  it('upgrades one container beside the other, keeps its configuration, and measures the downtime', async () => {
    await publish([
      ['tunnel', 'tunnel-1.1'],
      ['micloud', 'micloud-1.0'],
    ]);
    const state = await running.agent.upgradeContainers({ trigger: 'user' });
    expect(state.last.tunnel).toMatchObject({ outcome: 'upgraded', version: '1.1.0', from: '1.0.0' });
    expect(state.last.tunnel?.downtimeMs).toBeGreaterThan(0);
    expect(state.last.micloud).toMatchObject({ outcome: 'installed', version: '1.0.0' }); // untouched
    expect(await version('tunnel')).toBe('tunnel 1.1.0');
    const e = createEngine(engine.socket);
    expect(await e.inspectContainer('clgw-tunnel-next')).toBeUndefined();
    const info = await e.inspectContainer('clgw-tunnel');
    expect(info?.labels[LABELS.version]).toBe('1.1.0');
    expect(info?.spec.env).toContain(`PORT=${ports.tunnel}`);
    const status = await running.agent.status();
    expect(status.containers.tunnel?.downtimeMs).toBe(state.last.tunnel?.downtimeMs);
  });

  it('a new container that never becomes healthy is rolled back: the old one serves again', async () => {
    await publish([
      ['tunnel', 'tunnel-1.2'],
      ['micloud', 'micloud-1.0'],
    ]);
    const state = await running.agent.upgradeContainers({ trigger: 'user' });
    expect(state.lastRun?.outcome).toBe('done');
    expect(state.last.tunnel).toMatchObject({ outcome: 'rolledBack', version: '1.1.0', attempted: '1.2.0' });
    expect(state.last.tunnel?.error?.message).toContain('did not become healthy');
    expect(state.rejected.tunnel?.map((r) => r.version)).toEqual(['1.2.0']);
    expect(await version('tunnel')).toBe('tunnel 1.1.0');
    expect(await createEngine(engine.socket).inspectContainer('clgw-tunnel-next')).toBeUndefined();
    // Not tried again by itself…
    const again = await running.agent.upgradeContainers({ trigger: 'boot' });
    expect(again.last.tunnel?.at).toBe(state.last.tunnel?.at);
    expect(await version('tunnel')).toBe('tunnel 1.1.0');
  });

  it('refuses a tampered archive, an archive holding another image, and a file that is not a tar', async () => {
    const e = createEngine(engine.socket);
    const before = (await e.inspectContainer('clgw-tunnel'))?.id;
    // The archive on the mirror is not the one compat.yaml describes.
    await publish([
      ['tunnel', 'tunnel-1.3'],
      ['micloud', 'micloud-1.0'],
    ]);
    const published = path.join(world.tree, 'containers/tunnel/1.3.0.tar');
    const good = await fs.readFile(published);
    const tampered = Buffer.from(good);
    tampered[tampered.length - 2000] = (tampered[tampered.length - 2000] ?? 0) ^ 0xff;
    await fs.writeFile(published, tampered);
    const hash = await fails(running.agent.upgradeContainers({ trigger: 'user' }));
    expect(hash.code).toBe('HASH_MISMATCH');
    expect(hash.message).toContain('containers/tunnel/1.3.0.tar');
    await fs.writeFile(published, good);

    // compat.yaml declares an image the archive does not hold.
    await publishContainers({
      tree: world.tree,
      keys: world.keys,
      platforms: ['virtual'],
      containers: [
        {
          name: 'tunnel',
          version: '1.4.0',
          image: 'localhost/tunnel-standin:1.4.0',
          archive: archives['tunnel-1.3']!.file,
          imageId: null, // a pipeline that lied: its builder would have refused this
        },
        {
          name: 'micloud',
          version: '1.0.0',
          image: archives['micloud-1.0']!.reference,
          archive: archives['micloud-1.0']!.file,
        },
      ],
    });
    const mismatch = await fails(running.agent.upgradeContainers({ trigger: 'user' }));
    expect(mismatch.code).toBe('IMAGE_MISMATCH');
    expect(mismatch.message).toContain('localhost/tunnel-standin:1.3.0');
    expect(mismatch.message).toContain('not localhost/tunnel-standin:1.4.0');

    // An archive that is not a tar at all.
    const junk = path.join(world.dir, 'junk.tar');
    await fs.writeFile(junk, 'this is not a tar archive\n'.repeat(100));
    await publishContainers({
      tree: world.tree,
      keys: world.keys,
      platforms: ['virtual'],
      containers: [
        {
          name: 'tunnel',
          version: '1.5.0',
          image: 'localhost/tunnel-standin:1.5.0',
          archive: junk,
          imageId: null,
        },
        {
          name: 'micloud',
          version: '1.0.0',
          image: archives['micloud-1.0']!.reference,
          archive: archives['micloud-1.0']!.file,
        },
      ],
    });
    const notTar = await fails(running.agent.upgradeContainers({ trigger: 'user' }));
    expect(notTar.code).toBe('IMAGE_INVALID');

    // Through all of it the running container was never touched.
    expect((await e.inspectContainer('clgw-tunnel'))?.id).toBe(before);
    expect(await version('tunnel')).toBe('tunnel 1.1.0');
  });

  it('removes a -next container a cut left behind (name collision) and upgrades', async () => {
    const e = createEngine(engine.socket);
    const old = await e.inspectContainer('clgw-tunnel');
    await e.createContainer({ ...old!.spec, name: 'clgw-tunnel-next' }); // stale: still 1.1.0
    await publish([
      ['tunnel', 'tunnel-1.3'],
      ['micloud', 'micloud-1.0'],
    ]);
    const state = await running.agent.upgradeContainers({ trigger: 'user' });
    expect(state.last.tunnel).toMatchObject({ outcome: 'upgraded', version: '1.3.0', from: '1.1.0' });
    expect(await version('tunnel')).toBe('tunnel 1.3.0');
  });

  it('at boot, installed containers that were stopped (power off) start again without the mirror', async () => {
    const e = createEngine(engine.socket);
    await e.stopContainer('clgw-tunnel', 0);
    await e.stopContainer('clgw-micloud', 0);
    await startInstalledContainers({ engine: e, log: running.deps.log });
    expect((await e.inspectContainer('clgw-tunnel'))?.running).toBe(true);
    expect((await e.inspectContainer('clgw-micloud'))?.running).toBe(true);
    await until(
      async () => ((await probe(ports.tunnel!, '/health')).status === 200 ? true : undefined),
      'tunnel healthy',
    );
  });

  it("an archive that names another service's image is refused before the engine sees it; images are known by ID", async () => {
    const e = createEngine(engine.socket);
    const before = await images();
    const micloud = await e.inspectContainer('clgw-micloud');
    // A signed tunnel release whose archive tags the installed micloud image (a broken pipeline).
    const tunnel14 = archives['tunnel-1.4']!;
    const mislabelled = path.join(world.dir, 'mislabelled.tar');
    const held = await inspectImageArchive(tunnel14.file);
    await pipeline(
      Readable.from(archiveForLoad(tunnel14.file, held, [archives['micloud-1.0']!.reference]).read()),
      createWriteStream(mislabelled),
    );
    await publish([
      ['tunnel', 'tunnel-1.4', { file: mislabelled, imageId: null }],
      ['micloud', 'micloud-1.0'],
    ]);
    const refused = await fails(running.agent.upgradeContainers({ trigger: 'user' }));
    expect(refused.code).toBe('IMAGE_MISMATCH');
    expect(refused.message).toContain(
      `holds ${archives['micloud-1.0']!.reference}, not ${tunnel14.reference} as compat.yaml declares`,
    );
    // The engine never saw it: every image and tag as it was, micloud's container untouched.
    expect(await images()).toEqual(before);
    expect((await e.inspectContainer('clgw-micloud'))?.id).toBe(micloud?.id);
    expect(await version('micloud')).toBe('micloud 1.0.0');

    // A tag that points at another image (what a load by an older agent could leave) is not taken
    // for the image compat.yaml signs: the genuine micloud 1.1.0 is loaded and runs.
    const micloud11 = archives['micloud-1.1']!;
    await e.tagImage(archives['tunnel-1.3']!.imageId, micloud11.reference);
    await publish([
      ['tunnel', 'tunnel-1.3'],
      ['micloud', 'micloud-1.1'],
    ]);
    const state = await running.agent.upgradeContainers({ trigger: 'user' });
    expect(state.last.micloud).toMatchObject({ outcome: 'upgraded', version: '1.1.0', from: '1.0.0' });
    expect(await version('micloud')).toBe('micloud 1.1.0');
    expect((await e.inspectImage(micloud11.reference))?.id).toBe(micloud11.imageId);
    expect((await e.inspectContainer('clgw-micloud'))?.imageId).toBe(micloud11.imageId);
    expect(await e.inspectImage('localhost/clgw-incoming-micloud:load')).toBeUndefined();

    // A container that answers another service's version is not healthy: "tunnel 1.4.0" is not
    // micloud 1.4.0. Rolled back; micloud 1.1.0 serves again.
    await publish([
      ['tunnel', 'tunnel-1.3'],
      ['micloud', 'tunnel-1.4'],
    ]);
    const wrong = await running.agent.upgradeContainers({ trigger: 'user' });
    expect(wrong.last.micloud).toMatchObject({ outcome: 'rolledBack', version: '1.1.0', attempted: '1.4.0' });
    expect(wrong.last.micloud?.error?.message).toContain('"tunnel 1.4.0", expected "micloud 1.4.0"');
    expect(await version('micloud')).toBe('micloud 1.1.0');
  });

  it('with the engine not running: a clear error naming the socket, nothing half-done', async () => {
    const w = await makeWorld({ config: { engineSocket: path.join(engine.dir, 'absent.sock') } });
    try {
      await fs.cp(path.join(world.tree), w.tree, { recursive: true });
      const other = await startAgent(w);
      try {
        const e = await fails(other.agent.upgradeContainers({ trigger: 'boot' }));
        expect(e.code).toBe('ENGINE_UNAVAILABLE');
        expect(e.message).toContain('absent.sock');
        const status = await other.agent.containers();
        expect(status.engine.reachable).toBe(false);
      } finally {
        await other.stop();
      }
    } finally {
      await w.close();
    }
  });
});
