/**
 * An adaptive (delta) install killed half-way (SIGKILL of the real agent process, run by the boot
 * emulator) re-plans from what the target slot holds after the restart, fetches only what is still
 * missing, and the update ends committed — with fewer bytes downloaded, in all, than the image.
 */
import { promises as fs } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import type { Status } from '../../../agent/src/status.js';
import { buildRelease } from '../../../image/src/release/index.js';
import { AGENT_MAIN, runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, until, type World } from '../../support/appliance.js';
import { deltaImages } from '../../support/delta-images.js';

let world: World | undefined;
let appliance: ReturnType<typeof runAppliance> | undefined;

afterEach(async () => {
  await appliance?.stop();
  await world?.close();
  appliance = undefined;
  world = undefined;
});

describe('power cut during an adaptive install', () => {
  it('resumes from what the slot holds and downloads less than the image in all', async () => {
    await fs.access(AGENT_MAIN); // built by `make test`
    const { base, upgraded } = await deltaImages('resume');
    world = await makeWorld({ config: { updateAtBoot: true }, boot: false, factory: base, rootSlotMiB: 64 });
    const w = world;
    await buildRelease({
      tree: w.tree,
      keys: w.keys,
      version: '1.1.0',
      platforms: ['virtual'],
      boot: upgraded.boot,
      root: upgraded.root,
      minSourceVersion: '1.0.0',
    });
    // Fetched chunks come from the root image's chunk pack.
    const packPath = '/releases/1.1.0/root.img.pack';
    const size = (await fs.stat(upgraded.root)).size;
    // The changed file lies past 39 MiB: copies carry the durable offset beyond 8 MiB, then the
    // ranges of the new file crawl.
    w.mirror.setFault(packPath, { drip: 256 * 1024 });

    appliance = runAppliance({ root: w.root, say: () => undefined });
    const durable = await until(async () => {
      const j = JSON.parse(await fs.readFile(w.paths.journal, 'utf8'));
      return j.state === 'downloading' && j.written?.root > 0 ? (j.written.root as number) : undefined;
    }, 'a durable checkpoint of root.img');
    await until(() => w.mirror.stats(packPath).bytes > 256 * 1024, 'the new file on its way');
    const pid = appliance.agentPid();
    expect(pid).toBeDefined();
    process.kill(pid!, 'SIGKILL');
    const before = w.mirror.stats(packPath).bytes;
    w.mirror.setFault(packPath, undefined);

    const client = new AgentClient(w.paths.socket, 5000);
    const status = await until<Status>(async () => {
      const s = await client.status();
      return s.highestVersion === '1.1.0' && ['committed', 'idle'].includes(s.state) ? s : undefined;
    }, 'the update to commit after the restart');
    expect(status).toMatchObject({ bootedSlot: 'B', gatewayVersion: '1.1.0' });

    const stats = w.mirror.stats(packPath);
    expect(durable).toBeLessThan(size);
    expect(stats.bytes - before).toBeGreaterThan(0);
    expect(stats.bytes).toBeLessThan(size / 4);
    const log = (await fs.readFile(w.paths.logFile, 'utf8')).split('\n').filter(Boolean);
    const resumed = log
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'writing artifact into slot' && l.artifact === 'root');
    expect(resumed.at(-1)?.resumeFrom).toBeGreaterThan(0);
    const done = log
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'artifact written into slot' && l.artifact === 'root');
    expect(done).toMatchObject({ mode: 'delta', totalBytes: size });
    expect(done?.reusedBytes).toBeGreaterThanOrEqual(durable);
  });
});
