/**
 * Container upgrade faults that need their own engine: the engine dying in the middle of an
 * upgrade (really killed, between two steps) and a full disk while the image archive downloads.
 * Each ends in a clear error with nothing half-done, and the next run converges.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from '@clgw/core/platform/exec.js';
import type { ContainerRef } from '@clgw/core/release/schema.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../../agent/src/containers/engine.js';
import type { EnginePort } from '../../../agent/src/containers/engine-port.js';
import { probe } from '../../../agent/src/containers/probe.js';
import { readContainersState } from '../../../agent/src/containers/state.js';
import { upgradeContainers } from '../../../agent/src/containers/upgrade.js';
import type { Deps } from '../../../agent/src/deps.js';
import { publishContainers } from '../../../image/src/release/build.js';
import { enginePaths, ping, startEngineIn } from '../../../scripts/lib/engine.js';
import { buildStandin } from '../../../scripts/standins.js';
import { makeWorld, type RunningAgent, startAgent, type World } from '../../support/appliance.js';
import { engineSkipReason, startEngine, type TestEngine } from '../../support/engine.js';
import { freePort } from '../../support/ports.js';
import { recordSkip } from '../../support/skip.js';

const skip = await engineSkipReason();
if (skip) recordSkip('test/integration/containers/faults.test.ts', skip);

let engine: TestEngine;
let world: World;
let running: RunningAgent;
let port: number;

/** Publishes tunnel `version` and returns compat.yaml's (verified-format) container list. */
async function publishTunnel(version: string): Promise<ContainerRef[]> {
  const standin = await buildStandin({ service: 'tunnel', version, out: path.join(world.dir, 'standins') });
  const { compat } = await publishContainers({
    tree: world.tree,
    keys: world.keys,
    platforms: ['virtual'],
    containers: [{ name: 'tunnel', version, image: standin.reference, archive: standin.file }],
  });
  return compat.platforms.virtual!.containers;
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('expected the container upgrade to fail');
}

/** Kills the engine's service process the way a crash would (SIGKILL), and waits until it is gone. */
async function killEngine(): Promise<void> {
  const pid = Number((await fs.readFile(enginePaths(engine.dir).pidFile, 'utf8')).trim());
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && (await ping(engine.socket, 200)); i++)
    await new Promise((r) => setTimeout(r, 50));
}

describe.skipIf(skip)('container upgrade faults', () => {
  beforeAll(async () => {
    engine = await startEngine();
    port = await freePort();
    world = await makeWorld({
      config: {
        engineSocket: engine.socket,
        containerPorts: { tunnel: port, micloud: await freePort(), freeswitch: await freePort() },
        containerHealthTimeoutMs: 6000,
        profile: 'small',
      },
    });
    await world.publish('1.0.0');
    running = await startAgent(world);
    await publishTunnel('1.0.0');
    await running.agent.upgradeContainers({ trigger: 'user' });
    expect((await probe(port, '/version')).body).toBe('tunnel 1.0.0');
  }, 180_000);

  afterAll(async () => {
    await running?.stop();
    await world?.close();
    await engine?.stop();
  }, 120_000);

  it('the engine dies between two steps: ENGINE_UNAVAILABLE, the step kept; the next run converges', async () => {
    const targets = await publishTunnel('1.1.0');
    const real = createEngine(engine.socket);
    // The real engine, killed for real just before the new container is started.
    const dying: EnginePort = {
      ...real,
      startContainer: async (name) => {
        if (name === 'clgw-tunnel-next') await killEngine();
        return real.startContainer(name);
      },
    };
    const deps: Deps = { ...running.deps, engine: dying };
    const e = await failure(upgradeContainers(deps, { trigger: 'user', targets }));
    expect(e.code).toBe('ENGINE_UNAVAILABLE');
    expect(e.message).toContain(engine.socket);
    const kept = await readContainersState(world.paths.containersState);
    expect(kept.run?.step).toMatchObject({ kind: 'start', name: 'clgw-tunnel-next' });
    expect(kept.run?.services.tunnel).toMatchObject({ intent: 'upgrade', from: '1.0.0', to: '1.1.0' });
    expect(kept.lastRun).toMatchObject({ outcome: 'failed', error: { code: 'ENGINE_UNAVAILABLE' } });

    await startEngineIn(engine.dir); // the engine comes back (systemd restarts it on the appliance)
    const state = await upgradeContainers(
      { ...running.deps, engine: createEngine(engine.socket) },
      { trigger: 'user', targets },
    );
    expect(state.run).toBeUndefined();
    expect(state.last.tunnel).toMatchObject({ outcome: 'upgraded', version: '1.1.0', from: '1.0.0' });
    expect(state.last.tunnel?.downtimeMs).toBeGreaterThan(0);
    expect((await probe(port, '/version')).body).toBe('tunnel 1.1.0');
    expect(await createEngine(engine.socket).inspectContainer('clgw-tunnel-next')).toBeUndefined();
  });

  it('a full disk while the image archive downloads: NO_SPACE naming the directory, nothing touched', async (ctx) => {
    const dir = world.paths.containerArchives;
    await fs.mkdir(dir, { recursive: true });
    try {
      await execFile('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
    } catch (e) {
      recordSkip(
        'test/integration/containers/faults.test.ts (disk full)',
        `cannot mount a small tmpfs: ${(e as Error).message}`,
      );
      ctx.skip();
    }
    try {
      const before = (await createEngine(engine.socket).inspectContainer('clgw-tunnel'))?.id;
      await publishTunnel('1.2.0');
      const e = await failure(running.agent.upgradeContainers({ trigger: 'user' }));
      expect(e.code).toBe('NO_SPACE');
      expect(e.message).toContain(dir);
      expect(await fs.readdir(dir)).toEqual([]); // the partial archive is gone
      expect((await createEngine(engine.socket).inspectContainer('clgw-tunnel'))?.id).toBe(before);
      expect((await probe(port, '/version')).body).toBe('tunnel 1.1.0');
    } finally {
      await execFile('umount', [dir]);
    }
  });
});
