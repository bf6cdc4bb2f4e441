/**
 * The whole path after a power cut in the critical phase, on the real processes run by the boot
 * emulator: alarm → recovery system (factory reset) → the agent updates again by itself → commit;
 * the alarm stays in the history, marked recovered and cleared.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import type { Status } from '../../../agent/src/status.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, until, type World } from '../../support/appliance.js';

let world: World | undefined;
let appliance: ReturnType<typeof runAppliance> | undefined;

afterEach(async () => {
  await appliance?.stop();
  await world?.close();
  appliance = undefined;
  world = undefined;
});

describe('power cut in the critical phase', () => {
  it('raises the alarm, resets to factory through the recovery system and updates again', async () => {
    world = await makeWorld({ boot: false, config: { updateAtBoot: true } });
    await world.publish('1.1.0');
    const { paths } = world;
    // Onboarding data that the factory reset erases.
    await fs.mkdir(paths.onboardingDir, { recursive: true });
    await fs.writeFile(path.join(paths.onboardingDir, 'account-link.json'), '{"customer":"acme"}');
    // The journal as a cut inside the switch leaves it: critical phase entered, never left.
    const now = new Date().toISOString();
    const compat = await fs.readFile(path.join(world.tree, 'compat.yaml'), 'utf8');
    const sha = (kind: string) =>
      new RegExp(`${kind}:\\s*\\n\\s*path: (\\S+)\\n\\s*size: (\\d+)\\n\\s*sha256: (\\w+)`).exec(compat)!;
    const [boot, root] = [sha('boot'), sha('root')];
    await writeJsonAtomic(paths.journal, {
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
          boot: { path: boot[1], size: Number(boot[2]), sha256: boot[3] },
          root: { path: root[1], size: Number(root[2]), sha256: root[3] },
        },
      },
      critical: { enteredAt: now },
      updatedAt: now,
    });

    const lines: string[] = [];
    appliance = runAppliance({ root: world.root, say: (l) => lines.push(l), maxBoots: 8 });
    const client = new AgentClient(paths.socket, 5000);
    const status = await until<Status>(
      async () => {
        const s = await client.status();
        return s.highestVersion === '1.1.0' && ['idle', 'committed'].includes(s.state) ? s : undefined;
      },
      `the re-update to commit (boot log: ${lines.join(' | ')})`,
      120_000,
    );

    expect(status).toMatchObject({ bootedSlot: 'B', gatewayVersion: '1.1.0' });
    expect(lines.some((l) => l.includes('recovery'))).toBe(true);
    expect(appliance.boots()).toBeLessThanOrEqual(5);
    const alarm = status.alarms.find((a) => a.code === 'CLGW_ALARM_CRITICAL_PHASE_FAILED');
    expect(alarm).toBeDefined();
    expect(alarm?.recoveredAt).toBeDefined();
    expect(alarm?.clearedAt).toBeDefined();
    // The factory reset erased the onboarding data.
    expect(await fs.readdir(paths.onboardingDir).catch(() => [])).toEqual([]);
  });
});
