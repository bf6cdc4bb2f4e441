/**
 * The image's support access as sshd and sudo read it: the sshd drop-in
 * (etc/ssh/sshd_config.d/clgw.conf) through `sshd -T` — support only, certificates of the support
 * CA only, bound by our principals command, no forwarding, VERBOSE logging — and the sudoers drop-in through
 * `visudo -c`. That sshd and sudo then behave so on the booted image only QEMU shows.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';

const OVERLAY = path.join(REPO, 'image/rootfs/overlay');
const missing = [
  existsSync('/usr/sbin/sshd') ? undefined : 'sshd (scripts/setup console installs openssh-server)',
  existsSync('/usr/sbin/visudo') ? undefined : 'visudo (scripts/setup console installs sudo)',
].filter((m): m is string => m !== undefined);
if (missing.length)
  recordSkip('test/integration/image/support-access.test.ts', `missing ${missing.join(', ')}`);

function run(bin: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) =>
    execFile(bin, args, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` }),
    ),
  );
}

describe.skipIf(missing.length > 0)('support access in the image', () => {
  it('sshd: support only, no passwords or keys, certificates of the support CA bound by our command, no forwarding', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-sshd-t-'));
    try {
      // The appliance's host key is made at the first "Enable SSH access": a stand-in here.
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'hostkey')]);
      const { code, output } = await run('/usr/sbin/sshd', [
        '-T',
        '-f',
        path.join(OVERLAY, 'etc/ssh/sshd_config.d/clgw.conf'),
        '-o',
        `HostKey=${path.join(dir, 'hostkey')}`,
      ]);
      expect(code).toBe(0);
      const effective = output.split('\n');
      for (const line of [
        'allowusers support',
        'permitrootlogin no',
        'passwordauthentication no',
        'kbdinteractiveauthentication no',
        'authenticationmethods publickey',
        'authorizedkeysfile none',
        'trustedusercakeys /usr/share/clgw/trust/support-ca.pub',
        'authorizedprincipalscommand /usr/bin/node /usr/lib/clgw/agent/dist/ssh/principals-command.js %u %t %k',
        'authorizedprincipalscommanduser clgw-sshauth',
        'loglevel VERBOSE',
        'hostkey /var/clgw/ssh/ssh_host_ed25519_key',
        // No forwarding of any kind into the customer's LAN or to local sockets.
        'allowtcpforwarding no',
        'allowstreamlocalforwarding no',
        'allowagentforwarding no',
        'x11forwarding no',
        'permittunnel no',
      ])
        expect(effective).toContain(line);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
    // Said in the drop-in itself, not left to defaults: Debian's sshd_config says X11Forwarding yes
    // below its Include of the drop-ins, and sshd takes the first value it reads.
    const settings = (await fs.readFile(path.join(OVERLAY, 'etc/ssh/sshd_config.d/clgw.conf'), 'utf8'))
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    for (const line of [
      'AllowTcpForwarding no',
      'AllowStreamLocalForwarding no',
      'AllowAgentForwarding no',
      'X11Forwarding no',
      'PermitTunnel no',
    ])
      expect(settings).toContain(line);
    // The command is the built agent's, which the image has under /usr/lib/clgw/agent/dist.
    expect(existsSync(path.join(REPO, 'agent/dist/ssh/principals-command.js'))).toBe(true);
  });

  it('sudo: support runs anything as root without a password, every command logged on the data partition', async () => {
    const file = path.join(OVERLAY, 'etc/sudoers.d/clgw-support');
    const check = await run('/usr/sbin/visudo', ['-c', '-f', file]);
    expect(check).toEqual({ code: 0, output: `${file}: parsed OK\n` });
    const rules = (await fs.readFile(file, 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
    expect(rules).toEqual([
      'Defaults:support logfile=/var/log/clgw/sudo.log',
      'Defaults:support !lecture',
      'support ALL=(ALL:ALL) NOPASSWD: ALL',
    ]);
    // The check itself catches a mistake.
    const broken = path.join(os.tmpdir(), `clgw-sudoers-${process.pid}`);
    await fs.writeFile(broken, 'support ALL=(ALL:ALL) NOPASSWD ALL\n');
    try {
      expect((await run('/usr/sbin/visudo', ['-c', '-f', broken])).code).not.toBe(0);
    } finally {
      await fs.rm(broken, { force: true });
    }
  });

  it('the account’s home on the volatile /var, and sudo in the package list', async () => {
    const tmpfiles = await fs.readFile(path.join(OVERLAY, 'usr/lib/tmpfiles.d/clgw.conf'), 'utf8');
    expect(tmpfiles).toContain('\nd /var/lib/clgw-support 0750 support support -\n');
    const packages = (await fs.readFile(path.join(REPO, 'image/rootfs/packages.txt'), 'utf8')).split('\n');
    expect(packages).toContain('openssh-server');
    expect(packages).toContain('sudo');
  });
});
