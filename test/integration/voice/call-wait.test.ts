/**
 * Call-aware restarts (issue #22) with the real agent, the loopback HTTPS mirror and the freeswitch
 * stand-in on a private Podman engine (its event socket on loopback, the call count set inside the
 * container): an update waits for the calls to end before its reboot, past its deadline restarts
 * and says how many calls it cut, a technician's "Reboot now" must name the calls it cuts, and an
 * agent stopped while waiting goes on waiting with the same deadline.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeWorld, type RunningAgent, startAgent, until, type World } from '../../support/appliance.js';
import { engineSkipReason, startEngine, type TestEngine } from '../../support/engine.js';
import { recordSkip } from '../../support/skip.js';
import { startVoiceStandin, type VoiceStandin } from '../../support/voice.js';

const unavailable = await engineSkipReason();
if (unavailable) recordSkip('test/integration/voice/call-wait.test.ts', unavailable);

const PASSWORD = 'Pbx-Secret-42';
const NAME = 'clgw-call-wait-freeswitch';

let world: World | undefined;
let running: RunningAgent | undefined;

afterEach(async () => {
  await running?.stop();
  await world?.close();
  running = undefined;
  world = undefined;
});

async function logLines(w: World): Promise<Record<string, unknown>[]> {
  return (await fs.readFile(w.paths.logFile, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe.skipIf(unavailable !== undefined)('an update on a gateway carrying calls', () => {
  let engine: TestEngine | undefined;
  let voice: VoiceStandin | undefined;
  let eslPort: number;
  const setCalls = (calls: number) => voice!.setCalls(calls);

  /** A world whose agent asks the stand-in (password file beside agent.json) every 100 ms. */
  async function callWorld(voice: Record<string, unknown> = {}): Promise<World> {
    const w = await makeWorld({
      config: {
        voice: { port: eslPort, passwordFile: 'etc/clgw/voice-password', pollMs: 100, ...voice },
      },
    });
    await fs.writeFile(path.join(w.root, 'etc/clgw/voice-password'), `${PASSWORD}\n`, { mode: 0o600 });
    await w.publish('1.1.0');
    return w;
  }

  beforeAll(async () => {
    engine = await startEngine();
    voice = await startVoiceStandin(engine, NAME, PASSWORD);
    eslPort = voice.eslPort;
  });

  afterAll(async () => {
    await voice?.remove();
    await engine?.stop();
  });

  it('waits with 2 calls up, says so, and restarts the moment they end', async () => {
    await setCalls(2);
    world = await callWorld();
    running = await startAgent(world);
    const r = running;
    await r.agent.request({ type: 'update' });
    const waiting = await until(async () => {
      const s = await r.agent.status();
      return s.state === 'waitingForCalls' && s.calls?.active === 2 ? s : undefined;
    }, 'the update waiting for 2 calls');
    // The deadline's time; its date too when that is not today (a run near midnight UTC).
    const deadline = new Date(waiting.calls!.deadline!).toISOString();
    expect(waiting.phase).toMatch(
      new RegExp(
        `^Waiting for 2 active calls to end before restarting — at the latest (${deadline.slice(0, 10)} )?${deadline.slice(11, 16)} UTC$`,
      ),
    );
    expect(waiting.calls).toMatchObject({ for: 'update', active: 2 });
    // The slot is written and verified; only the switch and the reboot wait.
    expect(waiting.target?.version).toBe('1.1.0');
    await new Promise((res) => setTimeout(res, 500));
    expect(r.reboots).toEqual([]);
    await setCalls(1);
    await until(
      async () => ((await r.agent.status()).calls?.active === 1 ? true : undefined),
      'one call left',
    );
    expect(r.reboots).toEqual([]);
    await setCalls(0);
    await until(() => r.reboots.length > 0, 'the reboot into slot B');
    expect(r.reboots).toEqual(['update']);
    const ended = (await logLines(world)).find((l) => l.msg === 'no call is up: restarting');
    expect(ended).toMatchObject({ for: 'update', active: 0 });
    // The password is never written to the log.
    expect(await fs.readFile(world.paths.logFile, 'utf8')).not.toContain(PASSWORD);
  });

  it('past its deadline it restarts and logs the calls it cut', async () => {
    await setCalls(3);
    // No update window: the deadline is this many minutes after the wait began (0: at once).
    world = await callWorld({ deadlineAfterWindowMinutes: 0 });
    running = await startAgent(world);
    const r = running;
    await r.agent.request({ type: 'update' });
    await until(() => r.reboots.length > 0, 'the reboot into slot B');
    const cut = (await logLines(world)).find((l) => String(l.msg).startsWith('the deadline for calls'));
    expect(cut).toMatchObject({
      level: 'warn',
      msg: 'the deadline for calls to end has passed: restarting, cutting 3 active call(s)',
      active: 3,
    });
  });

  it('"Reboot now" must name the calls it cuts; then it restarts at once', async () => {
    await setCalls(2);
    world = await callWorld();
    running = await startAgent(world);
    const r = running;
    await r.agent.request({ type: 'update' });
    await until(
      async () => ((await r.agent.status()).calls?.active === 2 ? true : undefined),
      'waiting for 2',
    );
    const refused = await r.agent.request({ type: 'rebootNow', calls: 1 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ClgwError);
    expect(refused).toMatchObject({
      code: 'CALLS_CHANGED',
      message: expect.stringContaining('2 call(s) are up now, not 1'),
    });
    expect(r.reboots).toEqual([]);
    await r.agent.request({ type: 'rebootNow', calls: 2 });
    await until(() => r.reboots.length > 0, 'the reboot into slot B');
    expect(
      (await logLines(world)).some(
        (l) => l.msg === 'a technician confirmed "Reboot now": restarting, cutting 2 active call(s)',
      ),
    ).toBe(true);
  });

  it('an agent stopped while waiting goes on waiting after its start, with the same deadline', async () => {
    await setCalls(1);
    world = await callWorld();
    running = await startAgent(world);
    const first = running;
    await first.agent.request({ type: 'update' });
    const before = await until(async () => {
      const s = await first.agent.status();
      return s.calls?.active === 1 ? s : undefined;
    }, 'waiting for 1 call');
    await first.stop();
    running = undefined;
    running = await startAgent(world, { settle: false });
    const r = running;
    const after = await until(async () => {
      const s = await r.agent.status();
      return s.state === 'waitingForCalls' && s.calls?.active === 1 ? s : undefined;
    }, 'waiting again after the restart');
    expect(after.calls?.deadline).toBe(before.calls?.deadline);
    await setCalls(0);
    await until(() => r.reboots.length > 0, 'the reboot into slot B');
    expect(r.reboots).toEqual(['update']);
  });
});
