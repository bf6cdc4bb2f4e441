/**
 * A download that a transient failure stops is resumed by the agent itself, from its last durable
 * offset, after a wait (issue #21: a customer's link that goes down for a while must not need a
 * technician's Retry); one that keeps failing without progress ends the update as before.
 */
import { promises as fs } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
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

const ROOT = '/releases/1.1.0/root.img';

async function logLines(w: World): Promise<Record<string, unknown>[]> {
  return (await fs.readFile(w.paths.logFile, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('a download stopped by a transient failure', () => {
  it('is resumed by the agent from where it stopped, and the update goes on to its reboot', async () => {
    world = await makeWorld({ config: { http: { retries: 0, resumeDelaysMs: [300, 300] } } });
    // The whole image in one response (no chunk index), cut by a reset half-way.
    await world.publish('1.1.0', { chunkIndex: false });
    const size = (await fs.stat(`${world.tree}${ROOT}`)).size;
    const cut = Math.floor(size / 2);
    world.mirror.setFault(ROOT, { dropConnectionAt: cut, times: 1 });
    running = await startAgent(world);
    await running.agent.request({ type: 'update' });
    // Downloaded, verified, switched: it asks for its reboot, never having been in `failed`.
    const r = running;
    await until(() => r.reboots.length > 0, 'the reboot into slot B');
    expect(r.reboots).toEqual(['update']);
    expect((await r.agent.status()).result).toBeNull();
    const states = (await logLines(world)).filter(
      (l) => l.msg === 'download interrupted: resuming it by itself',
    );
    expect(states).toHaveLength(1);
    // A reset mid-body: got reports the response cut short (ARTIFACT_TRUNCATED) or the socket's error.
    expect(states[0]).toMatchObject({ resume: 1, waitMs: 300, error: { transient: true } });

    const served = world.mirror.stats(ROOT);
    expect(served.requests).toBe(2);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(served.ranges[1] ?? '')?.[1]);
    // Everything received before the reset was kept: only what the reset threw away in flight
    // (the kernel's buffers) is sent again.
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(cut);
    expect(served.bytes - size).toBe(cut - resumedAt);
  });

  it('fails the update after the last wait when no attempt gets anywhere', async () => {
    world = await makeWorld({ config: { http: { retries: 0, resumeDelaysMs: [100, 200] } } });
    await world.publish('1.1.0', { chunkIndex: false });
    world.mirror.setFault(ROOT, { status: 503 });
    running = await startAgent(world);
    const before = await fingerprint(world.paths);
    await running.agent.request({ type: 'update' });
    expect(await running.agent.waitSettled(AbortSignal.timeout(60_000))).toBe('failed');
    const status = await running.agent.status();
    expect(status.error).toMatchObject({ code: 'HTTP_STATUS', transient: true });
    expect(world.mirror.stats(ROOT).requests).toBe(3);
    const waits = (await logLines(world)).filter(
      (l) => l.msg === 'download interrupted: resuming it by itself',
    );
    expect(waits.map((l) => [l.resume, l.waitMs])).toEqual([
      [1, 100],
      [2, 200],
    ]);
    expect(await fingerprint(world.paths)).toEqual(before);
  });
});
