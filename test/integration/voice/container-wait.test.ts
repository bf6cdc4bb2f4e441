/**
 * A container upgrade of `freeswitch` waits for the site's calls to end before it stops the old
 * container, as the update waits before its reboot (issue #22): the real agent, the loopback mirror,
 * the freeswitch stand-in the agent itself installed on a private Podman engine (its event socket
 * on the port agent.json names), the call count set inside the running container.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probe } from '../../../agent/src/containers/probe.js';
import { publishContainers } from '../../../image/src/release/build.js';
import { buildStandin, type StandinArchive } from '../../../scripts/standins.js';
import { makeWorld, type RunningAgent, startAgent, until, type World } from '../../support/appliance.js';
import { engineSkipReason, startEngine, type TestEngine } from '../../support/engine.js';
import { freePort } from '../../support/ports.js';
import { recordSkip } from '../../support/skip.js';
import { setStandinCalls } from '../../support/voice.js';

const skip = await engineSkipReason();
if (skip) recordSkip('test/integration/voice/container-wait.test.ts', skip);

let engine: TestEngine | undefined;
let world: World | undefined;
let running: RunningAgent | undefined;
let httpPort: number;
const archives: StandinArchive[] = [];

async function publish(archive: StandinArchive): Promise<void> {
  await publishContainers({
    tree: world!.tree,
    keys: world!.keys,
    platforms: ['virtual'],
    containers: [
      {
        name: 'freeswitch',
        version: archive.reference.split(':')[1]!,
        image: archive.reference,
        archive: archive.file,
      },
    ],
  });
}

const setCalls = (calls: number) => setStandinCalls(engine!, 'clgw-freeswitch', calls);

describe.skipIf(skip !== undefined)('a freeswitch container upgrade on a gateway carrying calls', () => {
  beforeAll(async () => {
    engine = await startEngine();
    httpPort = await freePort();
    world = await makeWorld({
      config: {
        engineSocket: engine.socket,
        containerPorts: { tunnel: await freePort(), micloud: await freePort(), freeswitch: httpPort },
        containerHealthTimeoutMs: 10_000,
        profile: 'small',
        // The stand-in's default password (FreeSWITCH's own): the agent tells it only the port.
        voice: { port: await freePort(), passwordFile: 'etc/clgw/voice-password', pollMs: 100 },
      },
    });
    await fs.writeFile(path.join(world.root, 'etc/clgw/voice-password'), 'ClueCon\n', { mode: 0o600 });
    await world.publish('1.0.0');
    const out = path.join(world.dir, 'standins');
    for (const v of ['1.10.8', '1.10.9'])
      archives.push(await buildStandin({ service: 'freeswitch', version: v, out }));
    running = await startAgent(world);
    await publish(archives[0]!);
    const state = await running.agent.upgradeContainers({ trigger: 'user' });
    expect(state.last.freeswitch).toMatchObject({ outcome: 'installed', version: '1.10.8' });
  }, 180_000);

  afterAll(async () => {
    await running?.stop();
    await world?.close();
    await engine?.stop();
  }, 120_000);

  it('waits with 2 calls up, keeps the old container serving, and swaps once they end', async () => {
    await setCalls(2);
    await publish(archives[1]!);
    const r = running!;
    const upgrade = r.agent.upgradeContainers({ trigger: 'user' });
    const waiting = await until(async () => {
      const s = await r.agent.status();
      return s.calls?.active === 2 ? s : undefined;
    }, 'the container upgrade waiting for 2 calls');
    expect(waiting.calls?.for).toBe('containers');
    expect(waiting.phase).toMatch(
      /^Waiting for 2 active calls to end before restarting the voice service — at the latest /,
    );
    await new Promise((res) => setTimeout(res, 500));
    // The old container still serves: nothing was stopped.
    expect((await probe(httpPort, '/version')).body).toBe('freeswitch 1.10.8');
    await setCalls(0);
    const state = await upgrade;
    expect(state.last.freeswitch).toMatchObject({ outcome: 'upgraded', version: '1.10.9', from: '1.10.8' });
    expect(state.run).toBeUndefined();
    expect((await probe(httpPort, '/version')).body).toBe('freeswitch 1.10.9');
    expect((await r.agent.status()).calls).toBeNull();
    const log = await fs.readFile(world!.paths.logFile, 'utf8');
    expect(log).toContain('"msg":"no call is up: restarting","for":"containers"');
  });
});
