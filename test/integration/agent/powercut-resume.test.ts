/**
 * A download killed half-way (the agent process gets SIGKILL, as in a power cut of the agent
 * alone) resumes after the restart with an HTTP Range request for the rest only, and the update
 * still ends committed — on the real agent process run by the boot emulator.
 */
import { promises as fs } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import type { Status } from '../../../agent/src/status.js';
import { AGENT_MAIN, runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, until, type World } from '../../support/appliance.js';

let world: World | undefined;
let appliance: ReturnType<typeof runAppliance> | undefined;

afterEach(async () => {
  await appliance?.stop();
  await world?.close();
  appliance = undefined;
  world = undefined;
});

describe('power cut during the download', () => {
  it('resumes with Range from the last durable offset and fetches only the rest', async () => {
    await fs.access(AGENT_MAIN); // built by `make test`
    world = await makeWorld({ config: { updateAtBoot: true }, boot: false });
    // Without chunk indexes: this is the streaming download's resume (adaptive-resume.test.ts has the other).
    await world.publish('1.1.0', { chunkIndex: false });
    const rootPath = '/releases/1.1.0/root.img';
    const size = (await fs.stat(`${world.tree}${rootPath}`)).size;
    world.mirror.setFault(rootPath, { drip: 3 * 1024 * 1024 });

    appliance = runAppliance({ root: world.root, say: () => undefined });
    const w = world;
    const durable = await until(async () => {
      const j = JSON.parse(await fs.readFile(w.paths.journal, 'utf8'));
      return j.state === 'downloading' && j.written?.root > 0 ? (j.written.root as number) : undefined;
    }, 'a durable checkpoint of root.img');
    expect(durable).toBeLessThan(size);

    const pid = appliance.agentPid();
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    w.mirror.setFault(rootPath, undefined);
    w.mirror.resetStats();

    const client = new AgentClient(w.paths.socket, 5000);
    const status = await until<Status>(async () => {
      const s = await client.status();
      // Committed, then (it is a boot) the agent checks again and settles.
      return s.highestVersion === '1.1.0' && ['committed', 'idle'].includes(s.state) ? s : undefined;
    }, 'the update to commit after the restart');
    expect(status).toMatchObject({ bootedSlot: 'B', gatewayVersion: '1.1.0' });

    const stats = w.mirror.stats(rootPath);
    expect(stats.ranges[0]).toBe(`bytes=${durable}-`);
    expect(stats.bytes).toBe(size - durable);
    expect(stats.requests).toBe(1);
  });
});
