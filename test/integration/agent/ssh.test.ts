/**
 * SSH access with a real OpenSSH server (sshd -D on loopback, files under the appliance root):
 * on for 24 hours by the simulated clock, the expiry surviving an agent restart, off on request;
 * the window kept without the agent (sshd and a logged-in session end when it closes); a start
 * that fails (port taken, unusable host key) reported with where and why, and rolled back; an
 * enable cut short rolled back at the next start; and the CLI, with no forwarding through a
 * login whatever the certificate permits.
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isClgwError } from '@clgw/core/errors.js';
import { ManualClock } from '@clgw/core/platform/clock.js';
import { fileLogger } from '@clgw/core/platform/log.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readApplianceId } from '../../../agent/src/ssh/appliance-id.js';
import { readSsh, SshAccess, type SshServer, simulatorSsh, sshBanner } from '../../../agent/src/ssh/ssh.js';
import { issueSupportCert } from '../../../image/src/release/support-ca.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { REPO, until, type World } from '../../support/appliance.js';
import { runClgw, unwrap } from '../../support/cli.js';
import { recordSkip } from '../../support/skip.js';
import {
  greeting,
  newKey,
  run,
  signDirectly,
  sshArgs,
  sshLogin,
  sshToolsMissing,
  supportWorld,
} from '../../support/ssh.js';

const skip =
  sshToolsMissing() ??
  ((await run('getent', ['passwd', 'support'])).code !== 0
    ? 'the system user support is missing (scripts/setup console makes it)'
    : undefined);
if (skip) recordSkip('test/integration/agent/ssh.test.ts', skip);

let world: World;
let port: number;
let server: SshServer;
let clock: ManualClock;
let keys: string;
let ca: string;

/** Waits until the access's timer loop sleeps again after a clock move. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5000 && clock.waiting() === 0; i++) await new Promise((r) => setTimeout(r, 1));
}

function access(): SshAccess {
  const paths = appliancePaths(world.root);
  return new SshAccess({ paths, clock, log: fileLogger({ file: paths.logFile, clock }), server });
}

/** A support certificate for this appliance, as support would get one. */
async function supportCert(name: string): Promise<{ key: string; cert: string }> {
  const key = await newKey(keys, name);
  const id = await readApplianceId(world.paths.applianceId);
  const { file } = await issueSupportCert({
    ca,
    principals: [`appliance-${id}`],
    hours: 1,
    identity: `${name}@support`,
    publicKey: `${key}.pub`,
  });
  return { key, cert: file };
}

/** PIDs of processes whose command line mentions `text` (the test's own sshd and sessions). */
async function processesWith(text: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) found.push(Number(name));
  }
  return found;
}

describe.skipIf(skip)('SSH access', () => {
  beforeAll(async () => {
    ({ keys, ca, port, world } = await supportWorld('ssh-keys'));
    server = simulatorSsh(world.paths, { port });
  });

  afterAll(async () => {
    await server?.stop();
    await world?.close();
    if (keys) await fs.rm(keys, { recursive: true, force: true });
  });

  it('turns a real sshd on for 24 hours, and off when the time is up', async () => {
    clock = new ManualClock(Date.parse('2026-11-21T10:00:00Z'));
    const ssh = access();
    await ssh.start();
    expect(await greeting(port)).toBe('ECONNREFUSED');
    const view = await ssh.enable();
    const id = await readApplianceId(world.paths.applianceId);
    expect(id).toMatch(/^[0-9a-hjkmnp-tv-z]{12}$/);
    expect(view).toEqual({
      enabled: true,
      expiresAt: '2026-11-22T10:00:00.000Z',
      secondsLeft: 86_400,
      account: 'support',
      principal: `appliance-${id}`,
    });
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

  it('an sshd that dies while access is on is said so, not shown as ON', async () => {
    clock = new ManualClock(Date.parse('2026-11-21T10:00:00Z'));
    const ssh = access();
    await ssh.start();
    await ssh.enable();
    expect(await ssh.view()).toMatchObject({ enabled: true, running: true });
    expect(sshBanner(await ssh.view(), clock.now())).toMatch(/^SSH access is ON until /);
    // sshd ends (killed, crashed) behind the agent's back.
    const pid = Number((await fs.readFile(path.join(world.paths.runDir, 'sshd.pid'), 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    await until(async () => ((await greeting(port)) === 'ECONNREFUSED' ? true : undefined), 'sshd to end');
    clock.advance(6_000); // past the few seconds a liveness answer is kept
    const view = await ssh.view();
    expect(view).toMatchObject({ enabled: true, running: false });
    expect(sshBanner(view, clock.now())).toBe(
      'SSH access is on, but sshd is not running: turn SSH access off and on again',
    );
    await ssh.disable();
    ssh.stop();
  });

  it('the expiry survives an agent restart; time run out while it was down means off at start', async () => {
    clock = new ManualClock(Date.parse('2026-11-21T10:00:00Z'));
    const first = access();
    await first.start();
    await first.enable();
    const window = (await fs.readFile(path.join(world.paths.runDir, 'ssh-window.pid'), 'utf8')).trim();
    first.stop(); // the agent restarts; sshd keeps running, as ssh.service does
    clock.advance(2 * 3600_000);
    const second = access();
    await second.start();
    expect((await second.view()).secondsLeft).toBe(22 * 3600);
    expect(await greeting(port)).toMatch(/^SSH-2\.0-OpenSSH/);
    // The same sshd (support's open sessions stay): the window was the one it runs in.
    expect((await fs.readFile(path.join(world.paths.runDir, 'ssh-window.pid'), 'utf8')).trim()).toBe(window);
    // Turning it on again keeps the window: 24 hours are counted from the first time.
    expect((await second.enable()).expiresAt).toBe('2026-11-22T10:00:00.000Z');
    second.stop();
    clock.advance(23 * 3600_000); // the appliance was off past the expiry
    const third = access();
    await third.start();
    expect((await third.view()).enabled).toBe(false);
    expect(await greeting(port)).toBe('ECONNREFUSED');
    third.stop();
  });

  it('the window holds without the agent: sshd and a logged-in session end when it closes', async () => {
    // SSH access on with 6 seconds left, restored by an agent that then goes away.
    clock = new ManualClock(Date.now());
    const { key, cert } = await supportCert('window');
    const id = await readApplianceId(world.paths.applianceId);
    await fs.writeFile(
      world.paths.sshState,
      JSON.stringify({
        enabledAt: new Date(clock.now() - 3600_000).toISOString(),
        expiresAt: new Date(clock.now() + 6000).toISOString(),
        phase: 'on',
        account: 'support',
        principal: `appliance-${id}`,
      }),
    );
    const agent = access();
    await agent.start();
    agent.stop();
    const session = spawn('ssh', sshArgs(port, key, cert, ['echo', 'in;', 'exec', 'sleep', '120']));
    let out = '';
    session.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const ended = new Promise<number | null>((r) => session.once('exit', (code) => r(code)));
    await until(async () => (out.includes('in') ? true : undefined), 'the session to start', 10_000);
    expect(await processesWith('sleep\x00120')).not.toEqual([]);
    // No agent: the window process ends sshd and the session at the expiry.
    expect(
      await Promise.race([ended, new Promise((r) => setTimeout(() => r('still running'), 15_000))]),
    ).toBe(255);
    // The session ends a moment before sshd's listener does (a connection in between is reset).
    await until(async () => ((await greeting(port)) === 'ECONNREFUSED' ? true : undefined), 'sshd to stop');
    expect(await processesWith('sleep\x00120')).toEqual([]);
    expect(await fs.readFile(path.join(world.paths.logDir, 'sshd.log'), 'utf8')).toMatch(
      /the SSH window closed \(\S+\): ending sshd and every session it opened/,
    );
    // The next agent start finds the time run out and removes the state.
    clock.advance(10_000);
    const next = access();
    await next.start();
    next.stop();
    expect(await readSsh(world.paths.sshState)).toBeUndefined();
  }, 60_000);

  it('a port already taken: SSH_FAILED naming 127.0.0.1:port and why; nothing left on', async () => {
    clock = new ManualClock(Date.now());
    const taken = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => taken.listen(port, '127.0.0.1', r));
    try {
      const ssh = access();
      const error = await ssh.enable().catch((e: unknown) => e);
      expect(isClgwError(error) && error.code).toBe('SSH_FAILED');
      expect((error as Error).message).toMatch(
        new RegExp(
          `^SSH access not enabled \\(sshd on 127\\.0\\.0\\.1:${port}\\): sshd did not start: Bind to port ${port} on 127\\.0\\.0\\.1 failed: Address already in use\\.$`,
        ),
      );
      expect(await readSsh(world.paths.sshState)).toBeUndefined();
      expect((await ssh.view()).enabled).toBe(false);
      expect(await processesWith(path.join(world.root, 'etc/clgw/ssh/sshd_config'))).toEqual([]);
      expect(await fs.readFile(world.paths.logFile, 'utf8')).toContain(
        'SSH access not enabled (rolled back)',
      );
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });

  it('an sshd that cannot start (its host key unusable): reported and rolled back', async () => {
    clock = new ManualClock(Date.now());
    const hostKey = path.join(world.root, 'etc/clgw/ssh/ssh_host_ed25519_key');
    const good = await fs.readFile(hostKey);
    await fs.writeFile(hostKey, 'not a key\n', { mode: 0o600 });
    try {
      const error = await access()
        .enable()
        .catch((e: unknown) => e);
      expect((error as Error).message).toMatch(
        new RegExp(
          `^SSH access not enabled \\(sshd on 127\\.0\\.0\\.1:${port}\\): sshd did not start: Unable to load host key .*ssh_host_ed25519_key`,
          'i',
        ),
      );
      expect(await readSsh(world.paths.sshState)).toBeUndefined();
      expect(await greeting(port)).toBe('ECONNREFUSED');
    } finally {
      await fs.writeFile(hostKey, good, { mode: 0o600 });
    }
  });

  it('an enable cut short before sshd answered is rolled back at the next start', async () => {
    clock = new ManualClock(Date.now());
    await fs.writeFile(
      world.paths.sshState,
      JSON.stringify({
        enabledAt: new Date(clock.now()).toISOString(),
        expiresAt: new Date(clock.now() + 24 * 3600_000).toISOString(),
        phase: 'starting',
      }),
    );
    const ssh = access();
    expect((await ssh.view()).enabled).toBe(false); // never said to be on
    await ssh.start();
    ssh.stop();
    expect(await readSsh(world.paths.sshState)).toBeUndefined();
    expect(await greeting(port)).toBe('ECONNREFUSED');
    expect(await fs.readFile(world.paths.logFile, 'utf8')).toContain(
      'the agent stopped while SSH access was being enabled',
    );
  });

  it('clgw ssh on / status / off on the running appliance; a failed start is exit 1 with the reason', async () => {
    const appliance = runAppliance({ root: world.root, say: () => undefined });
    try {
      const clgw = (args: string[]) => runClgw(world.root, args);
      // `clgw status` answers from disk without the agent: wait for the agent's own answer.
      await until(async () => ((await clgw(['ssh'])).code === 0 ? true : undefined), 'the agent');
      expect((await clgw(['ssh'])).stdout).toBe('SSH access is disabled\n');
      const id = await readApplianceId(world.paths.applianceId);
      const on = await clgw(['ssh', 'on']);
      expect(on.stdout).toBe(
        `${/^SSH access is ON until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(23 h 59 min left\)\n/.exec(on.stdout)?.[0]}For support: user support, certificate principal appliance-${id}\n`,
      );
      expect(await greeting(port)).toMatch(/^SSH-2\.0-OpenSSH/);
      const status = (await clgw(['status'])).stdout;
      expect(status).toContain('ssh:          SSH access is ON until ');
      expect(unwrap(status)).toContain(` For support: user support, certificate principal appliance-${id}\n`);
      // A login with a certificate: the session runs as support.
      const { key, cert } = await supportCert('cli');
      const login = await sshLogin(port, key, cert, ['id', '-un']);
      expect(login).toMatchObject({ code: 0, stdout: 'support\n' });
      expect(await fs.readFile(path.join(world.paths.logDir, 'sshd.log'), 'utf8')).toMatch(
        /Accepted certificate ID "cli@support" \(serial \d+\) signed by ED25519 CA/,
      );
      // No tunnel into the LAN: not with support-cert's certificate (the pty alone), nor with one
      // the CA signed with every permission (sshd's AllowTcpForwarding no).
      const lan = net.createServer((c) => c.end('forwarded\n'));
      await new Promise<void>((r) => lan.listen(0, '127.0.0.1', r));
      let reached = 0;
      lan.on('connection', () => {
        reached += 1;
      });
      try {
        const wideKey = await newKey(keys, 'wide');
        const wide = await signDirectly(ca, wideKey, {
          principals: ['clgw-support', `appliance-${id}`],
          validity: '-5m:+1h',
          identity: 'wide@support',
        });
        expect((await run('ssh-keygen', ['-L', '-f', wide])).stdout).toContain('permit-port-forwarding');
        const target = `127.0.0.1:${(lan.address() as net.AddressInfo).port}`;
        for (const [k, c] of [
          [key, cert],
          [wideKey, wide],
        ] as const) {
          expect((await sshLogin(port, k, c, ['id', '-un'])).stdout, c).toBe('support\n');
          const tunnel = await run('ssh', ['-W', target, ...sshArgs(port, k, c, [])], 30_000);
          expect(tunnel.code, c).toBe(255);
          expect(tunnel.stdout, c).toBe('');
        }
        expect(reached).toBe(0);
      } finally {
        await new Promise((r) => lan.close(r));
      }
      expect((await clgw(['ssh', 'off'])).stdout).toBe('SSH access is disabled\n');
      expect(await greeting(port)).toBe('ECONNREFUSED');
      expect((await clgw(['ssh', 'sideways'])).code).toBe(2);

      const taken = net.createServer((s) => s.destroy());
      await new Promise<void>((r) => taken.listen(port, '127.0.0.1', r));
      try {
        const failed = await clgw(['ssh', 'on']);
        expect(failed.code).toBe(1);
        expect(unwrap(failed.stderr)).toMatch(
          new RegExp(
            `SSH_FAILED: SSH access not enabled \\(sshd on 127\\.0\\.0\\.1:${port}\\): sshd did not start: .*Address already in use`,
          ),
        );
        expect((await clgw(['ssh'])).stdout).toBe('SSH access is disabled\n');
      } finally {
        await new Promise((r) => taken.close(r));
      }
    } finally {
      await appliance.stop();
    }
    expect(existsSync(path.join(REPO, 'agent/dist/ssh/principals-command.js'))).toBe(true);
  });
});
