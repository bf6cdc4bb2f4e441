/**
 * One release's root filesystem tree: a copy of the cached base with Node.js, the built agent,
 * portal, console and recovery, our systemd units and the configuration on top.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { isPatchLevel } from '@clgw/core/system/os-release.js';
import { supportCaPublicKeys } from '../release/support-ca.js';
import type { Repo } from './rootfs.js';
import { run } from './run.js';
import { verifyTreeUnits } from './units.js';

/** The workspaces that run on the appliance (image/ is vendor-side tooling). */
export const APPLIANCE_WORKSPACES = [
  'core',
  'agent',
  'firstboot',
  'console-tui',
  'portal',
  'recovery',
] as const;

/**
 * Units the image enables; ssh.service ships disabled (the technician turns it on for 24 h). The
 * portal's socket, not its service: systemd listens on port 80 and starts the portal at the first
 * connection.
 */
const ENABLED_UNITS = [
  'clgw-agent.service',
  'clgw-console-home.service',
  'clgw-console-menu.service',
  'clgw-firstboot.service',
  'clgw-hostname.service',
  'clgw-portal.socket',
  'clgw-recovery.service',
  'systemd-networkd.service',
  'systemd-resolved.service',
  'podman.socket',
  'avahi-daemon.service',
];
/**
 * The console owns tty1 and tty2: no login prompt there (the serial console keeps its getty).
 * Podman runs on demand (podman.socket, for the agent); its own boot-time services would restart
 * or auto-update containers behind the agent's back, which alone decides what runs.
 */
const DISABLED_UNITS = [
  'ssh.service',
  'getty@tty1.service',
  'podman.service',
  'podman-restart.service',
  'podman-auto-update.service',
  'podman-auto-update.timer',
];

/**
 * Debian's units of VMware Tools (package open-vm-tools): checked with ours in the tree, since
 * clgw-firstboot.service is ordered after open-vm-tools.service (a cycle there would cost the
 * first boot its network settings).
 */
const VMWARE_TOOLS_UNITS = ['open-vm-tools.service', 'vgauth.service'];

/** Commands on PATH: the workspace bin scripts. */
const COMMANDS: Record<string, string> = {
  clgw: 'agent/bin/clgw.js',
  'clgw-agent': 'agent/bin/clgw-agent.js',
  'clgw-log-download': 'agent/bin/clgw-log-download.js',
  'clgw-console': 'console-tui/bin/clgw-console.js',
  'clgw-portal': 'portal/bin/clgw-portal.js',
};

export interface TreeOptions {
  repo: Repo;
  base: string;
  /** productionModules(): package.json + node_modules of the appliance workspaces. */
  app: string;
  node: string;
  out: string;
  version: string;
  /** /etc/clgw/agent.json (no `platform`: the ESP says which image this is). */
  agentConfig: Record<string, unknown>;
  /** Release signing root(s) the appliance trusts (PEM). */
  trustPem: string;
  /**
   * The support CA's public key(s) (OpenSSH, one a line): sshd's TrustedUserCAKeys for the
   * `support` account. Never the private key (checked).
   */
  supportCaPub: string;
  /** Extra CA for the download server, written to /etc/clgw/download-ca.pem (a lab mirror). */
  downloadCaPem?: string;
  /**
   * A release that cannot start (its /sbin/init exits): the kernel panics and reboots, and GRUB's
   * try counter takes the appliance back to the previous slot. For the end-to-end run only.
   */
  brokenInit?: boolean;
  /**
   * A lab image for the QEMU end-to-end run: mounts the host directory QEMU shares with the tag
   * `clgw-e2e` (9p) at /run/clgw-e2e, where the agent's power-cut points are armed
   * (CLGW_CRASH_DIR, core/src/platform/crashpoint.ts) and tty1's text is copied every second;
   * the journal goes to the serial console. Never in a product image.
   */
  lab?: boolean;
}

/** The lab image's additions (see TreeOptions.lab). */
const LAB_FILES: Record<string, string> = {
  'etc/systemd/system/clgw-agent.service.d/lab.conf':
    "# Lab image only: power-cut points armed by the end-to-end run through the shared directory\n# (the agent's sandbox keeps the tree read-only: the share is writable for the trace).\n[Unit]\nRequiresMountsFor=/run/clgw-e2e\n[Service]\nEnvironment=CLGW_CRASH_DIR=/run/clgw-e2e/crash CLGW_LOG_ECHO=1\nReadWritePaths=-/run/clgw-e2e\n",
  'etc/systemd/system/clgw-lab-screen.service': [
    '# Lab image only: tty1 as text (/dev/vcs1, 80x25, no newlines) for the end-to-end run.',
    '[Unit]',
    'Description=clgw lab: copy tty1 to the shared directory',
    'RequiresMountsFor=/run/clgw-e2e',
    '[Service]',
    "ExecStart=/bin/sh -c 'while :; do cat /dev/vcs1 > /run/clgw-e2e/tty1.tmp && mv /run/clgw-e2e/tty1.tmp /run/clgw-e2e/tty1.txt; sleep 1; done'",
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n'),
  // Issue #21: the memory of every process in a clgw unit, as the end-to-end run reports it
  // (image/lab/memory.sh).
  'etc/systemd/system/clgw-lab-memory.service': [
    '# Lab image only: samples the memory of the clgw processes for the end-to-end run.',
    '[Unit]',
    "Description=clgw lab: sample the clgw processes' memory to the shared directory",
    'RequiresMountsFor=/run/clgw-e2e',
    '# Started first: the first boot runs once, early, and briefly.',
    'Before=clgw-firstboot.service',
    '[Service]',
    'ExecStart=/bin/sh /usr/lib/clgw-lab/memory.sh',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n'),
  'etc/systemd/journald.conf.d/lab.conf':
    "# Lab image only: the whole journal on the serial console, for the end-to-end run's log.\n[Journal]\nForwardToConsole=yes\nMaxLevelConsole=info\n",
};
const LAB_UNITS = ['clgw-lab-screen.service', 'clgw-lab-memory.service'];
const LAB_FSTAB =
  'clgw-e2e  /run/clgw-e2e  9p  trans=virtio,version=9p2000.L,nofail,x-systemd.device-timeout=5s  0  0\n';

export function osRelease(version: string, patchLevel: string): string {
  return [
    'NAME="CloudLink Gateway OS"',
    'ID=clgw',
    'ID_LIKE=debian',
    `VERSION_ID=${version}`,
    `VERSION="${version} (bookworm)"`,
    'VERSION_CODENAME=bookworm',
    `PRETTY_NAME="CloudLink Gateway OS ${version}"`,
    // The vendor field os-release(5) allows: what "Operating System Patch Level" shows (SPEC §7).
    `CLGW_PATCH_LEVEL=${patchLevel}`,
    '',
  ].join('\n');
}

/**
 * The OS patch level of a root tree: the date of dpkg's last recorded change, which is when its
 * packages (security fixes included) were taken from the archive. dpkg.log is in the build
 * machine's local time, so the date may be a day off UTC's — good enough for a patch level.
 */
export async function patchLevelOfTree(root: string): Promise<string> {
  const logFile = path.join(root, 'var/log/dpkg.log');
  const text = await fs.readFile(logFile, 'utf8').catch((e: Error) => {
    throw new ClgwError('IMAGE_BUILD_FAILED', `cannot read ${logFile} for the OS patch level: ${e.message}`, {
      cause: e,
    });
  });
  const dates = text.match(/^\d{4}-\d{2}-\d{2}(?= )/gm);
  const last = dates?.at(-1);
  if (!last || !isPatchLevel(last))
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `${logFile} records no dated package change (the OS patch level)`,
    );
  return last;
}

async function copyInto(src: string, dest: string): Promise<void> {
  await fs.mkdir(dest, { recursive: true });
  await run('cp', ['-a', '--reflink=auto', `${src}/.`, dest]);
}

async function replaceWithSymlink(target: string, at: string): Promise<void> {
  await fs.rm(at, { recursive: true, force: true });
  await fs.mkdir(path.dirname(at), { recursive: true });
  await fs.symlink(target, at);
}

/**
 * Mitel support's account and the one sshd's principals command runs as (SPEC §9), made in the
 * tree's own /etc/passwd (the root filesystem is read-only on the appliance):
 *  - `support`: a system account with a shell; password field `*` (no password, none can be
 *    set; `!` would read as locked), no authorized_keys — sshd lets it in only with a support
 *    certificate (etc/ssh/sshd_config.d/clgw.conf); home on the volatile /var
 *    (usr/lib/tmpfiles.d/clgw.conf makes it at boot); root through sudo (etc/sudoers.d/clgw-support);
 *  - `clgw-sshauth`: no shell, no home; runs only AuthorizedPrincipalsCommand, so nothing else
 *    running on the appliance shares its user.
 */
async function addSupportAccounts(tree: string): Promise<void> {
  const system = ['--root', tree, '--system', '--user-group', '--no-create-home'];
  await run('useradd', [
    ...system,
    '--shell',
    '/bin/bash',
    '--home-dir',
    '/var/lib/clgw-support',
    '--comment',
    'Mitel support (SSH certificate only)',
    '--password',
    '*',
    'support',
  ]);
  await run('useradd', [
    ...system,
    '--shell',
    '/usr/sbin/nologin',
    '--home-dir',
    '/nonexistent',
    '--comment',
    'clgw sshd principals command',
    'clgw-sshauth',
  ]);
  // sudo ignores a sudoers file that is not root's or is writable by others; the repository's
  // copy has whoever checked it out as owner.
  const sudoers = path.join(tree, 'etc/sudoers.d/clgw-support');
  await fs.chown(sudoers, 0, 0);
  await fs.chmod(sudoers, 0o440);
}

export async function assembleTree(o: TreeOptions): Promise<string> {
  const at = (...p: string[]) => path.join(o.out, ...p);
  await fs.rm(o.out, { recursive: true, force: true });
  await copyInto(o.base, o.out);
  await fs.rm(at('.clgw-base-complete'));

  await fs.copyFile(o.node, at('usr/bin/node'));
  await fs.chmod(at('usr/bin/node'), 0o755);

  const lib = at('usr/lib/clgw');
  await fs.mkdir(lib, { recursive: true });
  await copyInto(path.join(o.app, 'node_modules'), path.join(lib, 'node_modules'));
  await fs.copyFile(path.join(o.app, 'package.json'), path.join(lib, 'package.json'));
  for (const w of APPLIANCE_WORKSPACES) {
    const src = path.join(o.repo.dir, w);
    await fs.mkdir(path.join(lib, w), { recursive: true });
    await fs.copyFile(path.join(src, 'package.json'), path.join(lib, w, 'package.json'));
    await copyInto(path.join(src, 'dist'), path.join(lib, w, 'dist'));
    const bin = path.join(src, 'bin');
    if (
      await fs.stat(bin).then(
        () => true,
        () => false,
      )
    )
      await copyInto(bin, path.join(lib, w, 'bin'));
  }
  // The units run the bundled daemons, which tsc alone does not make.
  for (const bundle of [
    'agent/dist/clgw-agent.mjs',
    'portal/dist/clgw-portal.mjs',
    'console-tui/dist/clgw-console.mjs',
  ]) {
    if (
      !(await fs.stat(path.join(lib, bundle)).then(
        () => true,
        () => false,
      ))
    )
      throw new Error(`${path.join(o.repo.dir, bundle)} is missing: run make build`);
  }
  for (const [name, target] of Object.entries(COMMANDS)) {
    await replaceWithSymlink(`../lib/clgw/${target}`, at('usr/bin', name));
  }

  await copyInto(path.join(o.repo.dir, 'image/rootfs/overlay'), o.out);
  for (const unit of await fs.readdir(path.join(o.repo.dir, 'image/systemd'))) {
    await fs.copyFile(path.join(o.repo.dir, 'image/systemd', unit), at('etc/systemd/system', unit));
  }
  // Our system users (usr/lib/sysusers.d/clgw.conf, from the overlay): the root is read-only on
  // the appliance, where systemd-sysusers cannot add them at boot, so they are in the image's
  // /etc/passwd and /etc/group from the start. The image's own systemd-sysusers writes them.
  await run('chroot', [o.out, 'systemd-sysusers', 'clgw.conf']);
  await run('systemctl', [`--root=${o.out}`, 'enable', ...ENABLED_UNITS]);
  await run('systemctl', [`--root=${o.out}`, 'disable', ...DISABLED_UNITS]);
  await copyInto(path.join(o.repo.dir, 'image/avahi/services'), at('etc/avahi/services'));
  await fs.copyFile(
    path.join(o.repo.dir, 'image/avahi/avahi-daemon.conf'),
    at('etc/avahi/avahi-daemon.conf'),
  );

  await fs.mkdir(at('etc/clgw/trust'), { recursive: true });
  const config: Record<string, unknown> = { ...o.agentConfig };
  if (o.downloadCaPem) {
    await fs.writeFile(at('etc/clgw/download-ca.pem'), o.downloadCaPem);
    config.downloadCa = 'etc/clgw/download-ca.pem';
  }
  await fs.writeFile(at('etc/clgw/agent.json'), `${JSON.stringify(config, null, 2)}\n`);
  await fs.writeFile(at('etc/clgw/trust/release-roots.pem'), o.trustPem);
  await fs.mkdir(at('usr/share/clgw/trust'), { recursive: true });
  await fs.writeFile(
    at('usr/share/clgw/trust/support-ca.pub'),
    supportCaPublicKeys(o.supportCaPub, 'the support CA public key'),
  );
  await addSupportAccounts(o.out);
  await fs.writeFile(at('usr/lib/os-release'), osRelease(o.version, await patchLevelOfTree(o.base)));
  await replaceWithSymlink('../usr/lib/os-release', at('etc/os-release'));

  // The read-only root points at the data partition for what the technician or the agent changes.
  await replaceWithSymlink('/var/clgw/network/hostname', at('etc/hostname'));
  await replaceWithSymlink('/var/clgw/network/10-clgw.network', at('etc/systemd/network/10-clgw.network'));
  await replaceWithSymlink('../run/systemd/resolve/stub-resolv.conf', at('etc/resolv.conf'));
  // Empty: systemd makes a machine ID at every boot (a read-only root cannot keep one).
  await fs.writeFile(at('etc/machine-id'), '');
  await fs.rm(at('var/lib/dbus/machine-id'), { force: true });
  for (const dir of ['var/clgw', 'boot/efi']) await fs.mkdir(at(dir), { recursive: true });

  if (o.lab) {
    for (const [file, text] of Object.entries(LAB_FILES)) {
      await fs.mkdir(path.dirname(at(file)), { recursive: true });
      await fs.writeFile(at(file), text);
    }
    await fs.mkdir(at('usr/lib/clgw-lab'), { recursive: true });
    await fs.copyFile(path.join(o.repo.dir, 'image/lab/memory.sh'), at('usr/lib/clgw-lab/memory.sh'));
    await fs.appendFile(at('etc/fstab'), `# lab image\n${LAB_FSTAB}`);
    for (const unit of LAB_UNITS) await run('systemctl', [`--root=${o.out}`, 'enable', unit]);
  }
  // Our units with the Debian units and drop-ins of this very tree: no ordering cycle, no
  // missing program, no bad key (units.ts). Before brokenInit takes the tree's init away.
  const ours = await fs.readdir(path.join(o.repo.dir, 'image/systemd'));
  const vmware: string[] = [];
  for (const u of VMWARE_TOOLS_UNITS) {
    if (
      await fs.stat(at('usr/lib/systemd/system', u)).then(
        () => true,
        () => false,
      )
    )
      vmware.push(u);
  }
  await verifyTreeUnits(o.out, [...ours, ...(o.lab ? LAB_UNITS : []), ...vmware]);
  if (o.brokenInit) {
    await fs.rm(at('usr/sbin/init'), { force: true });
    await fs.writeFile(
      at('usr/sbin/init'),
      '#!/bin/sh\necho "clgw: this release is broken on purpose (end-to-end run): init exits"\nexit 1\n',
      { mode: 0o755 },
    );
  }
  return o.out;
}
