/**
 * SSH access with a real OpenSSH server (sshd -D on loopback, files under the appliance root):
 * on for 24 hours by the simulated clock, the expiry surviving an agent restart, off on request,
 * and the CLI.
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../agent/src/platform/clock.js';
import { fileLogger } from '../../../agent/src/platform/log.js';
import { appliancePaths } from '../../../agent/src/platform/paths.js';
import { readSsh, SshAccess, type SshServer, simulatorSsh } from '../../../agent/src/ssh/ssh.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, until, type World } from '../../support/appliance.js';
import { runClgw } from '../../support/cli.js';
import { freePort } from '../../support/ports.js';
import { recordSkip } from '../../support/skip.js';

const skip = await fs.access('/usr/sbin/sshd').then(
  () => undefined,
  () => 'OpenSSH server (sshd) is not installed (scripts/setup installs openssh-server)',
);
if (skip) recordSkip('test/integration/agent/ssh.test.ts', skip);

/** The first line sshd sends, or the connection error's code. */
function greeting(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(3000, () => s.destroy(new Error('ETIMEDOUT')));
    s.once('data', (d) => {
      resolve(d.toString().split('\r\n')[0]!);
      s.destroy();
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

let world: World;
let port: number;
let server: SshServer;
let clock: ManualClock;

/** Waits until the access's timer loop sleeps again after a clock move. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5000 && clock.waiting() === 0; i++) await new Promise((r) => setTimeout(r, 1));
}

function access(): SshAccess {
  const paths = appliancePaths(world.root);
  return new SshAccess({ paths, clock, log: fileLogger({ file: paths.logFile, clock }), server });
}

describe.skipIf(skip)('SSH access', () => {
  beforeAll(async () => {
    port = await freePort();
    world = await makeWorld({ boot: false, config: { ssh: { server: 'simulator', port } } });
    server = simulatorSsh(world.paths, port);
  });

  afterAll(async () => {
    await server?.stop();
    await world?.close();
  });

  it('turns a real sshd on for 24 hours, and off when the time is up', async () => {
    clock = new ManualClock(Date.parse('2026-11-21T10:00:00Z'));
    const ssh = access();
    await ssh.start();
    expect(await greeting(port)).toBe('ECONNREFUSED');
    const view = await ssh.enable();
    expect(view).toEqual({ enabled: true, expiresAt: '2026-11-22T10:00:00.000Z', secondsLeft: 86_400 });
    expect(await greeting(port)).toMatch(/^SSH-2\.0-OpenSSH/);
    await settle();
    for (let m = 0; m < 24 * 60 - 1; m++) {
      clock.advance(60_000);
      await settle();
    }
    expect(await greeting(port)).toMatch(/^SSH-2\.0-OpenSSH/); // 23 h 59 min: still on
    clock.advance(60_000);
    await settle();
    await until(async () => ((await greeting(port)) === 'ECONNREFUSED' ? true : undefined), 'sshd to stop');
    expect(await readSsh(world.paths.sshState)).toBeUndefined();
    expect(await fs.readFile(world.paths.logFile, 'utf8')).toContain('24 hours are up');
    ssh.stop();
  }, 120_000);

  it('the expiry survives an agent restart; time run out while it was down means off at start', async () => {
    clock = new ManualClock(Date.parse('2026-11-21T10:00:00Z'));
    const first = access();
    await first.start();
    await first.enable();
    first.stop(); // the agent restarts; sshd keeps running, as ssh.service does
    clock.advance(2 * 3600_000);
    const second = access();
    await second.start();
    expect((await second.view()).secondsLeft).toBe(22 * 3600);
    expect(await greeting(port)).toMatch(/^SSH-2\.0-OpenSSH/);
    second.stop();
    clock.advance(23 * 3600_000); // the appliance was off past the expiry
    const third = access();
    await third.start();
    expect(await third.view()).toEqual({ enabled: false, expiresAt: null, secondsLeft: null });
    expect(await greeting(port)).toBe('ECONNREFUSED');
    third.stop();
  });

  it('clgw ssh on / status / off on the running appliance', async () => {
    const appliance = runAppliance({ root: world.root, say: () => undefined });
    try {
      const clgw = (args: string[]) => runClgw(world.root, args);
      // `clgw status` answers from disk without the agent: wait for the agent's own answer.
      await until(async () => ((await clgw(['ssh'])).code === 0 ? true : undefined), 'the agent');
      expect((await clgw(['ssh'])).stdout).toBe('SSH access is disabled\n');
      const on = await clgw(['ssh', 'on']);
      expect(on.stdout).toMatch(/^SSH access is enabled: 24 h 0 min left \(until \S+\)\n$/);
      expect(await greeting(port)).toMatch(/^SSH-2\.0-OpenSSH/);
      expect((await clgw(['status'])).stdout).toContain('ssh:          SSH access is enabled: 2');
      expect((await clgw(['ssh', 'off'])).stdout).toBe('SSH access is disabled\n');
      expect(await greeting(port)).toBe('ECONNREFUSED');
      expect((await clgw(['ssh', 'sideways'])).code).toBe(2);
    } finally {
      await appliance.stop();
    }
    expect(path.isAbsolute(world.paths.sshState)).toBe(true);
  });
});
