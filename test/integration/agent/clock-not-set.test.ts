/**
 * An appliance whose clock NTP has not set yet (no RTC: it reads 1970): the check is deferred and
 * says so, naming the clock — never TLS or the certificate chain, which is what a clock that far
 * behind breaks next — fetches nothing, changes nothing, and runs again once the clock is set.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { ManualClock } from '@clgw/core/platform/clock.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLOCK_POLL_MS } from '../../../agent/src/agent.js';
import { startApiServer } from '../../../agent/src/api/server.js';
import { simPatchLevel } from '../../../scripts/sim/images.js';
import {
  fingerprint,
  makeWorld,
  type RunningAgent,
  startAgent,
  testKeys,
  until,
  type World,
} from '../../support/appliance.js';
import { runClgw, unwrap } from '../../support/cli.js';

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

async function hash(file: string): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(file).catch(() => Buffer.from('(absent)')))
    .digest('hex');
}

/** Both slots, grubenv and the data partition's update history: what a deferred check leaves. */
async function everything(w: World): Promise<Record<string, string>> {
  return {
    ...(await fingerprint(w.paths)),
    boot_b: await hash(w.paths.partition('boot', 'B')),
    root_b: await hash(w.paths.partition('root', 'B')),
    history: await hash(w.paths.history),
  };
}

describe('the clock not set (no NTP yet)', () => {
  it('at 1970 the check is deferred naming the clock, changes nothing, and runs again once the clock is set', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    const clock = new ManualClock(0); // 1970-01-01T00:00:00Z: no RTC, NTP not answered yet
    running = await startAgent(world, { clock });
    const before = await everything(world);

    await running.agent.request({ type: 'update' });
    expect(await running.agent.waitSettled(AbortSignal.timeout(30_000))).toBe('idle');
    const status = await running.agent.status();
    expect(status.check?.outcome).toBe('failed');
    const error = status.check?.error;
    expect(error?.code, JSON.stringify(error)).toBe('CLOCK_NOT_SET');
    expect(error?.transient).toBe(true);
    expect(error?.message).toBe(
      `the clock is not set (no NTP yet): update deferred; it reads 1970-01-01T00:00:00.000Z, earlier than 2025-09-30, a day before this gateway OS's packages were taken (CLGW_PATCH_LEVEL ${simPatchLevel('1.0.0')})`,
    );
    expect(error?.message).not.toMatch(/TLS|certificate|chain/i);
    expect(status.error).toBeNull();
    expect(status.result).toBeNull();
    // Deferred before anything was fetched: with this clock TLS would have failed first.
    expect(world.mirror.paths()).toEqual([]);
    expect(await everything(world)).toEqual(before);
    const persisted = await until(async () => {
      const j = JSON.parse(await fs.readFile(world!.paths.journal, 'utf8'));
      return j.check?.error?.code === 'CLOCK_NOT_SET' ? j : undefined;
    }, 'the deferred check to be persisted');
    expect(persisted.state).toBe('idle');

    // The clock moves, still before the floor: the agent looks every minute and waits on.
    await until(() => clock.waiting() > 0, 'the agent to wait for the clock');
    clock.advance(CLOCK_POLL_MS);
    await until(() => clock.waiting() > 0, 'the agent to wait for the clock again');
    expect(world.mirror.paths()).toEqual([]);
    expect((await running.agent.status()).check).toEqual(status.check);

    // NTP sets the clock: within a minute the agent runs the deferred update by itself, as the
    // technician asked it — checks, downloads, installs and asks for the reboot.
    clock.advance(Date.now() - clock.now());
    await until(() => running!.reboots.length > 0, 'the deferred update to ask for its reboot', 60_000);
    const after = await running.agent.status();
    expect(after.check).toMatchObject({ outcome: 'available', version: '1.1.0' });
    expect(after.target).toEqual({ version: '1.1.0', slot: 'B' });
    expect(after.error).toBeNull();
    expect(running.agent.journal).toMatchObject({ trigger: 'user', install: true });
  });

  it('an update window deferred at 1970 runs by itself once NTP sets the clock', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    const clock = new ManualClock(Date.UTC(1970, 0, 1, 2, 0)); // the window at 02:00 of a clock not set
    running = await startAgent(world, { clock });
    const before = await everything(world);
    void running.agent.windowUpdate();
    const deferred = await until(async () => {
      const s = await running!.agent.status();
      return s.state === 'idle' && s.check?.error?.code === 'CLOCK_NOT_SET' ? s : undefined;
    }, 'the window run to be deferred');
    expect(deferred.check?.message).toContain('it reads 1970-01-01T02:00:00.000Z');
    expect(await everything(world)).toEqual(before);
    await until(() => clock.waiting() > 0, 'the agent to wait for the clock');

    clock.advance(Date.now() - clock.now());
    await until(
      () => running!.reboots.length > 0,
      'the window run to install and ask for its reboot',
      60_000,
    );
    const after = await running.agent.status();
    expect(after.check).toMatchObject({ outcome: 'available', version: '1.1.0' });
    expect(after.target).toEqual({ version: '1.1.0', slot: 'B' });
    expect(await fs.readFile(world.paths.logFile, 'utf8')).toContain(
      'the clock is set: running the check it deferred again',
    );
  });

  it('a container upgrade at 1970 is deferred the same way, before anything is fetched', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    running = await startAgent(world, { clock: new ManualClock(Date.UTC(1970, 0, 1, 0, 5)) });
    await expect(running.agent.upgradeContainers({ trigger: 'user' })).rejects.toMatchObject({
      code: 'CLOCK_NOT_SET',
      message: expect.stringContaining('it reads 1970-01-01T00:05:00.000Z, earlier than'),
    });
    expect(world.mirror.paths()).toEqual([]);
  });

  it("the CLI follows the agent's clock: `clgw update` at 1970 ends with the deferral, and status tells its time", async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    running = await startAgent(world, { clock: new ManualClock(0) });
    const api = await startApiServer(running.agent, world.paths.socket, running.deps.log);
    try {
      // The CLI waits for a check stamped after it asked: by the agent's clock (1970), not its own
      // (which would wait for ever). Killed after 30 s if it does.
      const update = await runClgw(world.root, ['update'], 30_000);
      expect(update.code, update.stderr).toBe(1);
      expect(unwrap(update.stderr)).toContain(
        'clgw: CLOCK_NOT_SET: the clock is not set (no NTP yet): update deferred; it reads 1970-01-01T00:00:00.000Z',
      );
      expect(unwrap(update.stderr)).toContain(
        "The gateway's clock is not set (no NTP yet), so the update was deferred.",
      );

      const json = await runClgw(world.root, ['status', '--json']);
      expect(JSON.parse(json.stdout)).toMatchObject({
        source: 'agent',
        now: '1970-01-01T00:00:00.000Z',
        check: { outcome: 'failed', at: '1970-01-01T00:00:00.000Z', error: { code: 'CLOCK_NOT_SET' } },
      });
      const text = await runClgw(world.root, ['status']);
      expect(unwrap(text.stdout)).toMatch(
        /last check: +The clock is not set \(no NTP yet\): update deferred; .* will try again once its clock is set \(1970-01-01 00:00 UTC\)/,
      );
    } finally {
      await api.close();
    }
  });
});
