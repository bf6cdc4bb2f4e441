/**
 * The appliance's SSH server port (`systemdSsh`) without a systemd to drive: the commands it runs
 * are recorded (and answered) in order, the window's drop-in is a real file, and
 * `systemd-analyze verify` reads it with Debian's own ssh.service. What systemd then does with
 * RuntimeMaxSec only the image in QEMU shows.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { ManualClock } from '@clgw/core/platform/clock.js';
import { memoryLogger } from '@clgw/core/platform/log.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSsh, SshAccess, systemdSsh, windowDropIn } from '../../../agent/src/ssh/ssh.js';
import { recordSkip } from '../../support/skip.js';

let dir: string;
const WINDOW = {
  expiresAt: '2026-11-22T10:00:00.000Z',
  seconds: 86_399,
  account: 'support',
  applianceId: 'k3m9x2pq7rtw',
};

/** A recording `run`: answers `systemctl show` with `active`, fails where told to. */
function recorder(opts: { active?: () => string; fail?: Record<string, string> } = {}) {
  const calls: string[] = [];
  const run = async (bin: string, args: string[]) => {
    const line = `${bin} ${args.join(' ')}`;
    calls.push(line);
    const failure = Object.entries(opts.fail ?? {}).find(([prefix]) => line.startsWith(prefix));
    if (failure) throw new ClgwError('INTERNAL', `${line}: exit 1`, { details: { stderr: failure[1] } });
    if (line.startsWith('systemctl show'))
      return { stdout: `${opts.active?.() ?? 'inactive'}\n`, stderr: '' };
    if (line.startsWith('journalctl')) return { stdout: 'sshd: fatal: no hostkeys available\n', stderr: '' };
    return { stdout: '', stderr: '' };
  };
  return { calls, run };
}

describe('systemdSsh (the appliance)', () => {
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-ssh-systemd-'));
  });
  afterAll(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('start: the window drop-in first, then daemon-reload and start; an unchanged window is left alone', async () => {
    const dropIn = path.join(dir, 'start/clgw-window.conf');
    let active = 'inactive';
    const r = recorder({ active: () => active });
    const server = systemdSsh({ account: 'support', port: 22, run: r.run, dropIn });
    await server.start(WINDOW);
    expect(r.calls).toEqual([
      'systemctl show --property=ActiveState --value ssh.service',
      'systemctl daemon-reload',
      'systemctl start ssh.service',
    ]);
    const text = await fs.readFile(dropIn, 'utf8');
    expect(text).toBe(windowDropIn(WINDOW));
    for (const line of [
      '# clgw SSH window until 2026-11-22T10:00:00.000Z',
      '[Service]',
      'RuntimeMaxSec=86399',
      'Restart=no',
      'KillMode=control-group',
      'ExecStopPost=-/usr/bin/loginctl terminate-user support',
    ])
      expect(text.split('\n')).toContain(line);

    // The agent restarts within the same window: sshd and support's sessions stay.
    active = 'active';
    r.calls.length = 0;
    await server.start({ ...WINDOW, seconds: 80_000 });
    expect(r.calls).toEqual(['systemctl show --property=ActiveState --value ssh.service']);

    // Running within another window (or started by someone else): stopped, then started anew.
    r.calls.length = 0;
    await server.start({ ...WINDOW, expiresAt: '2026-11-23T10:00:00.000Z' });
    expect(r.calls).toEqual([
      'systemctl show --property=ActiveState --value ssh.service',
      'systemctl stop ssh.service',
      'loginctl terminate-user support',
      'systemctl daemon-reload',
      'systemctl daemon-reload',
      'systemctl start ssh.service',
    ]);
    expect((await fs.readFile(dropIn, 'utf8')).split('\n')[0]).toBe(
      '# clgw SSH window until 2026-11-23T10:00:00.000Z',
    );
  });

  it('stop: the unit, support’s sessions ("not logged in" is fine), the drop-in', async () => {
    const dropIn = path.join(dir, 'stop/clgw-window.conf');
    await fs.mkdir(path.dirname(dropIn), { recursive: true });
    await fs.writeFile(dropIn, windowDropIn(WINDOW));
    const r = recorder({
      fail: {
        'loginctl terminate-user':
          'Failed to terminate user support: User ID 999 is not logged in or lingering',
      },
    });
    await systemdSsh({ account: 'support', port: 22, run: r.run, dropIn }).stop();
    expect(r.calls).toEqual([
      'systemctl stop ssh.service',
      'loginctl terminate-user support',
      'systemctl daemon-reload',
    ]);
    expect(existsSync(dropIn)).toBe(false);

    const broken = recorder({
      fail: { 'loginctl terminate-user': 'Failed to connect to bus: No such file' },
    });
    await expect(
      systemdSsh({ account: 'support', port: 22, run: broken.run, dropIn }).stop(),
    ).rejects.toThrow('loginctl terminate-user support failed: Failed to connect to bus');
  });

  it('a failed start says what the journal says; SshAccess rolls back and stops it again', async () => {
    const root = path.join(dir, 'appliance');
    const paths = appliancePaths(root);
    await fs.mkdir(paths.dataDir, { recursive: true });
    const dropIn = path.join(dir, 'failed/clgw-window.conf');
    const r = recorder({ fail: { 'systemctl start': 'Job for ssh.service failed.' } });
    const access = new SshAccess({
      paths,
      clock: new ManualClock(Date.parse('2026-11-21T10:00:00Z')),
      log: memoryLogger(),
      server: systemdSsh({ account: 'support', port: 22, run: r.run, dropIn }),
    });
    await expect(access.enable()).rejects.toMatchObject({
      code: 'SSH_FAILED',
      message:
        'SSH access not enabled (sshd on 127.0.0.1:22): systemctl start ssh.service failed: sshd: fatal: no hostkeys available',
    });
    expect(r.calls.slice(-4)).toEqual([
      'journalctl -u ssh.service -n 3 -o cat --no-pager',
      'systemctl stop ssh.service',
      'loginctl terminate-user support',
      'systemctl daemon-reload',
    ]);
    expect(await readSsh(paths.sshState)).toBeUndefined();
    expect(existsSync(dropIn)).toBe(false);
    expect((await access.view()).enabled).toBe(false);
  });

  it('sshd started but not answering: rolled back the same way, naming where it should answer', async () => {
    const paths = appliancePaths(path.join(dir, 'appliance2'));
    await fs.mkdir(paths.dataDir, { recursive: true });
    const r = recorder();
    const access = new SshAccess({
      paths,
      clock: new ManualClock(Date.parse('2026-11-21T10:00:00Z')),
      log: memoryLogger(),
      server: systemdSsh({
        account: 'support',
        port: 2022,
        run: r.run,
        dropIn: path.join(dir, 'x/clgw.conf'),
      }),
      answers: async () => {
        throw new ClgwError('SSH_FAILED', 'sshd did not answer within 5 s (ECONNREFUSED)');
      },
    });
    await expect(access.enable()).rejects.toThrow(
      'SSH access not enabled (sshd on 127.0.0.1:2022): sshd did not answer within 5 s (ECONNREFUSED)',
    );
    expect(r.calls).toContain('systemctl stop ssh.service');
    expect(await readSsh(paths.sshState)).toBeUndefined();
  });
});

const debianUnit = '/lib/systemd/system/ssh.service';
const verifySkip =
  existsSync('/usr/bin/systemd-analyze') && existsSync(debianUnit)
    ? undefined
    : 'systemd-analyze or Debian’s ssh.service is missing (scripts/setup console installs systemd, openssh-server)';
if (verifySkip) recordSkip('test/integration/agent/ssh-systemd.test.ts', verifySkip);

describe.skipIf(verifySkip)('the window drop-in with Debian’s ssh.service', () => {
  it('passes systemd-analyze verify without a word (a misspelled key would be named)', async () => {
    const units = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-ssh-unit-'));
    try {
      await fs.copyFile(debianUnit, path.join(units, 'ssh.service'));
      await fs.mkdir(path.join(units, 'ssh.service.d'));
      const verify = (text: string) =>
        fs
          .writeFile(path.join(units, 'ssh.service.d/clgw-window.conf'), text)
          .then(
            () =>
              new Promise<string>((resolve) =>
                execFile(
                  'systemd-analyze',
                  ['verify', path.join(units, 'ssh.service')],
                  { env: { ...process.env, SYSTEMD_UNIT_PATH: `${units}:` } },
                  (_e, stdout, stderr) => resolve(`${stdout}${stderr}`.trim()),
                ),
              ),
          );
      expect(await verify(windowDropIn(WINDOW))).toBe('');
      expect(await verify(windowDropIn(WINDOW).replace('RuntimeMaxSec', 'RuntimeMaxSecs'))).toContain(
        "Unknown key 'RuntimeMaxSecs'",
      );
    } finally {
      await fs.rm(units, { recursive: true, force: true });
    }
  });
});
