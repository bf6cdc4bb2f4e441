/**
 * tty1 while an update waits for the site's calls to end (issue #22): the console in tmux
 * (TERM=linux, 80x25) against a real agent on a simulated appliance whose voice service is the
 * freeswitch stand-in on a private Podman engine, 2 calls up. The screen says how many calls and
 * until when; `clgw status` says the same at 80 columns; tty2's "Reboot now" asks for the number of
 * calls it cuts. Captures go to .cache/test/console/.
 */
import { execFile as execFileCb } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, REPO, until, type World } from '../../support/appliance.js';
import { engineSkipReason, startEngine, type TestEngine } from '../../support/engine.js';
import { recordSkip } from '../../support/skip.js';
import { Tmux, tmuxPath } from '../../support/tmux.js';
import { startVoiceStandin, type VoiceStandin } from '../../support/voice.js';

const execFile = promisify(execFileCb);
const SHOTS = path.join(REPO, '.cache/test/console');
const CLI = path.join(REPO, 'agent/dist/cli/clgw.js');
const NAME = 'clgw-console-call-wait-freeswitch';
const PASSWORD = 'Console-Calls-7';

const missing = [
  tmuxPath ? undefined : 'tmux is not installed (scripts/setup console installs it)',
  await engineSkipReason(),
].filter((m): m is string => m !== undefined);
if (missing.length) recordSkip('test/e2e/console/call-wait.test.ts', missing.join('; '));

let world: World | undefined;
let appliance: ReturnType<typeof runAppliance> | undefined;
let engine: TestEngine | undefined;
const tmux = new Tmux('console-calls', SHOTS);

let voice: VoiceStandin | undefined;
const setCalls = (calls: number) => voice!.setCalls(calls);

describe.skipIf(missing.length > 0)('tty1 while an update waits for calls to end', () => {
  beforeAll(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    engine = await startEngine();
    voice = await startVoiceStandin(engine, NAME, PASSWORD);
    const eslPort = voice.eslPort;
    await setCalls(2);

    world = await makeWorld({
      boot: false,
      config: {
        // The update is the test's own request, not the agent's at its start.
        updateAtBoot: false,
        voice: { port: eslPort, passwordFile: 'etc/clgw/voice-password', pollMs: 200 },
      },
    });
    await fs.writeFile(path.join(world.root, 'etc/clgw/voice-password'), `${PASSWORD}\n`, { mode: 0o600 });
    await world.publish('1.1.0');
    appliance = runAppliance({ root: world.root, say: () => undefined });
    const client = new AgentClient(world.paths.socket, 10_000);
    await until(
      async () => ((await client.status()).state === 'idle' ? true : undefined),
      'the agent to start',
    );
    await tmux.start('home', world.root);
    // The start's own work (diagnostics, the containers at boot) may still hold it briefly: BUSY.
    await until(() => client.post('/v1/update').then(() => true), 'the update accepted', 30_000);
  }, 180_000);

  afterAll(async () => {
    await tmux.close();
    await appliance?.stop();
    await world?.close();
    await voice?.remove();
    await engine?.stop();
  });

  /**
   * The wait's deadline as the agent words it: its hh:mm, and its date in front when that is not
   * today's (a run near midnight UTC); words may wrap anywhere.
   */
  async function deadlineWords(): Promise<string> {
    const client = new AgentClient(world!.paths.socket, 10_000);
    const at = await until(
      async () => (await client.status()).calls?.deadline ?? undefined,
      "the wait's deadline",
      240_000,
    );
    const iso = new Date(at).toISOString();
    return `(${iso.slice(0, 10)}\\s+)?${iso.slice(11, 16)} UTC`;
  }

  it('tty1 names the calls it waits for and the latest time it restarts', async () => {
    // The sentence as tty1 wraps it at 80 columns.
    const words = 'Waiting for 2 active calls to end before restarting - at the latest'.split(' ');
    const screen = await tmux.waitFor(
      'home',
      new RegExp(`${words.join('\\s+')}\\s+${await deadlineWords()}`),
      240_000,
    );
    expect(screen).toMatch(/Update: +ready to restart into 1\.1\.0/);
    const shot = await tmux.save('home', 'home-waiting-for-calls');
    expect(shot.split('\n').every((l) => /^[\x20-\x7e]*$/.test(l))).toBe(true);
  }, 300_000);

  it('clgw status says the same, within 80 columns', async () => {
    const { stdout } = await execFile(process.execPath, [CLI, 'status'], {
      env: { ...process.env, CLGW_ROOT: world!.root, COLUMNS: '80' },
    });
    expect(stdout).toMatch(/^update state: waitingForCalls$/m);
    // Wrapped at 80 columns under its label, as every long status line is.
    const words = 'Waiting for 2 active calls to end before restarting — at the latest'.split(' ');
    expect(stdout).toMatch(new RegExp(`^calls: +${words.join('\\s+')}\\s+${await deadlineWords()}$`, 'm'));
    await fs.writeFile(path.join(SHOTS, 'clgw-status-waiting-for-calls.txt'), stdout);
    for (const line of stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
  });

  it('tty2 offers "Reboot now", confirmed by typing the number of calls it cuts', async () => {
    await tmux.start('menu', world!.root);
    await tmux.waitFor('menu', 'Reboot now, cutting 2 active calls');
    await tmux.keys('menu', 'Up', 'Up', 'Up', 'Up', 'Up', 'Enter');
    await tmux.waitFor('menu', 'Type 2 and press Enter to confirm');
    await tmux.save('menu', 'menu-reboot-now');
    // Any other number is not a confirmation.
    await tmux.keys('menu', 'text:1', 'Enter');
    await tmux.waitFor('menu', 'Cancelled.');
    const client = new AgentClient(world!.paths.socket, 10_000);
    expect((await client.status()).state).toBe('waitingForCalls');
    await tmux.keys('menu', 'Enter');
    await tmux.waitFor('menu', 'Type 2 and press Enter to confirm');
    await tmux.keys('menu', 'text:2', 'Enter');
    await tmux.waitFor('menu', 'Reboot started: the gateway restarts now.');
    await until(
      async () => {
        const s = await client.status().catch(() => undefined);
        return s && s.state !== 'waitingForCalls' ? true : undefined;
      },
      'the wait to end',
      120_000,
    );
  });
});
