/**
 * The appliance's root filesystem: Debian bookworm minbase (debootstrap) with the packages of
 * image/rootfs/packages.txt, trimmed, with our software and configuration on top.
 *
 * Two stages, both cached under the build directory:
 *  - the *base* (debootstrap + trimming + initramfs): keyed by the package list, rebuilt only
 *    when that changes (minutes; everything after it takes seconds);
 *  - the *tree* of one release: a copy of the base with Node.js, the built agent, console and
 *    recovery, the systemd units and the configuration (image/rootfs/overlay/ and generated files).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { machineMirror } from './apt-sources.js';
import { run } from './run.js';
import { APPLIANCE_WORKSPACES } from './tree.js';

export const SUITE = 'bookworm';

export interface Repo {
  /** The repository root (built workspaces under agent/, console-tui/, recovery/). */
  dir: string;
}

const exists = (p: string) =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );

/** The package names of image/rootfs/packages.txt (comments and blank lines dropped). */
export function parsePackageList(text: string): string[] {
  const names = text
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
  for (const n of names) {
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(n)) {
      throw new ClgwError(
        'IMAGE_BUILD_FAILED',
        `image/rootfs/packages.txt: "${n}" is not a Debian package name`,
      );
    }
  }
  return names;
}

/**
 * Kernel module directories no appliance needs (sound, graphics, wireless, media…): ~60 % of
 * the modules' size. Disks, NICs, USB, filesystems and netfilter stay.
 */
const UNNEEDED_MODULES = [
  'sound',
  'drivers/gpu',
  'drivers/media',
  'drivers/infiniband',
  'drivers/net/wireless',
  'drivers/staging',
  'drivers/iio',
  'drivers/bluetooth',
  'drivers/isdn',
  'drivers/comedi',
  'drivers/mtd',
  'drivers/input/touchscreen',
  'drivers/input/joystick',
  'drivers/net/can',
  'drivers/net/ethernet/mellanox',
  'drivers/net/ethernet/qlogic',
  'drivers/net/ethernet/chelsio',
  'drivers/net/ethernet/sfc',
  'drivers/scsi/lpfc',
  'drivers/scsi/qla2xxx',
  'drivers/scsi/bfa',
  'net/wireless',
  'net/mac80211',
  'net/bluetooth',
];

/** What the base removes: documentation, translations, apt's caches (the root is read-only). */
const UNNEEDED_PATHS = [
  'usr/share/doc',
  'usr/share/man',
  'usr/share/info',
  'usr/share/lintian',
  'var/cache/apt',
  'var/lib/apt/lists',
  'var/cache/debconf/templates.dat-old',
  'usr/lib/x86_64-linux-gnu/gconv',
];

async function withChrootMounts<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const mounted: string[] = [];
  try {
    for (const [fsType, target] of [
      ['proc', 'proc'],
      ['sysfs', 'sys'],
    ] as const) {
      const at = path.join(dir, target);
      await run('mount', ['-t', fsType, fsType, at]);
      mounted.push(at);
    }
    const dev = path.join(dir, 'dev');
    await run('mount', ['--bind', '/dev', dev]);
    mounted.push(dev);
    return await fn();
  } finally {
    for (const at of mounted.reverse()) await run('umount', ['-l', at]).catch(() => undefined);
  }
}

/**
 * The cached base: debootstrap, trimmed, initramfs regenerated for the appliance's disks. Built
 * in a temporary directory and renamed into place, so an interrupted build is never taken for a
 * finished one.
 */
export async function buildBase(repo: Repo, cacheDir: string, log: (line: string) => void): Promise<string> {
  const listText = await fs.readFile(path.join(repo.dir, 'image/rootfs/packages.txt'), 'utf8');
  const packages = parsePackageList(listText);
  const key = createHash('sha256')
    .update(`${SUITE}\n${packages.join('\n')}\n${UNNEEDED_MODULES.join(',')}\n${UNNEEDED_PATHS.join(',')}\n`)
    .digest('hex')
    .slice(0, 16);
  const base = path.join(cacheDir, `base-${key}`);
  if (await exists(path.join(base, '.clgw-base-complete'))) return base;

  // debootstrap (minutes) leaves a marker, so a later step that fails does not redo it.
  const tmp = `${base}.tmp`;
  if (!(await exists(path.join(tmp, '.clgw-debootstrap-complete')))) {
    await fs.rm(tmp, { recursive: true, force: true });
    const mirror = await machineMirror(SUITE);
    log(
      `debootstrap ${SUITE} minbase with ${packages.length} packages (takes a few minutes; cached as ${base})`,
    );
    await run('debootstrap', [
      '--variant=minbase',
      `--include=${packages.join(',')}`,
      SUITE,
      tmp,
      mirror,
    ]).catch((e: Error) => {
      throw new ClgwError(
        'IMAGE_BUILD_FAILED',
        `debootstrap failed (see ${tmp}/debootstrap/debootstrap.log): ${e.message.split(':')[0]}`,
        { cause: e, details: { dir: tmp } },
      );
    });
    await fs.writeFile(path.join(tmp, '.clgw-debootstrap-complete'), '');
  }

  // What the mirror resolved, recorded in the image (two builds can be compared).
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
  const { stdout: lock } = await run('chroot', [tmp, 'dpkg-query', '-W', '-f=${Package} ${Version}\\n']);
  await fs.mkdir(path.join(tmp, 'usr/share/clgw'), { recursive: true });
  await fs.writeFile(path.join(tmp, 'usr/share/clgw/packages.lock'), lock);

  for (const p of UNNEEDED_PATHS) await fs.rm(path.join(tmp, p), { recursive: true, force: true });
  const kernels = await fs.readdir(path.join(tmp, 'usr/lib/modules'));
  if (kernels.length !== 1) {
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `expected one kernel in ${tmp}/usr/lib/modules, found ${kernels.join(', ')}`,
    );
  }
  const kver = kernels[0]!;
  for (const p of UNNEEDED_MODULES) {
    await fs.rm(path.join(tmp, 'usr/lib/modules', kver, 'kernel', p), { recursive: true, force: true });
  }
  await run('chroot', [tmp, 'depmod', kver]);
  // Every disk controller the appliance may sit on (virtio, SATA, SCSI incl. VMware's, NVMe);
  // "dep" cannot work in a chroot that is not the machine.
  await fs.writeFile(
    path.join(tmp, 'etc/initramfs-tools/conf.d/clgw.conf'),
    '# clgw: the initramfs must find root_a/root_b by PARTLABEL on any supported machine.\nMODULES=most\nCOMPRESS=gzip\n',
  );
  await withChrootMounts(tmp, () => run('chroot', [tmp, 'update-initramfs', '-u', '-k', kver]));
  // Host keys made by the package would be the same on every appliance: made at first use instead.
  for (const f of await fs.readdir(path.join(tmp, 'etc/ssh'))) {
    if (f.startsWith('ssh_host_')) await fs.rm(path.join(tmp, 'etc/ssh', f));
  }
  await fs.rm(path.join(tmp, '.clgw-debootstrap-complete'));
  await fs.writeFile(path.join(tmp, '.clgw-base-complete'), '');
  await fs.rm(base, { recursive: true, force: true });
  await fs.rename(tmp, base);
  return base;
}

/** The kernel and initramfs of a base (the boot image's content). */
export async function kernelFiles(
  base: string,
): Promise<{ vmlinuz: string; initrd: string; version: string }> {
  const names = await fs.readdir(path.join(base, 'boot'));
  const vmlinuz = names.find((n) => n.startsWith('vmlinuz-'));
  const initrd = names.find((n) => n.startsWith('initrd.img-'));
  if (!vmlinuz || !initrd) {
    throw new ClgwError('IMAGE_BUILD_FAILED', `no vmlinuz-*/initrd.img-* in ${base}/boot`, {
      details: { dir: base },
    });
  }
  return {
    vmlinuz: path.join(base, 'boot', vmlinuz),
    initrd: path.join(base, 'boot', initrd),
    version: vmlinuz.slice('vmlinuz-'.length),
  };
}

/** Node 20: Debian bookworm's nodejs is 18, so the image brings the build machine's Node 20 binary. */
export const NODE_MAJOR = 20;

export async function nodeBinary(): Promise<{ file: string; version: string }> {
  const { stdout } = await run('node', ['-p', 'process.execPath + " " + process.version']);
  const [file, version] = stdout.trim().split(' ') as [string, string];
  if (!version.startsWith(`v${NODE_MAJOR}.`)) {
    throw new ClgwError(
      'IMAGE_BUILD_FAILED',
      `the image ships Node ${NODE_MAJOR}; the build machine's ${file} is ${version}`,
      {
        details: { file, version },
      },
    );
  }
  return { file, version };
}

/**
 * The production dependencies of the agent, console and recovery (no dev tools), installed once
 * per package-lock.json from npm's cache into `<cache>/app-<hash>/node_modules`.
 */
export async function productionModules(
  repo: Repo,
  cacheDir: string,
  log: (line: string) => void,
): Promise<string> {
  const lockText = await fs.readFile(path.join(repo.dir, 'package-lock.json'));
  const key = createHash('sha256').update(lockText).digest('hex').slice(0, 16);
  const dir = path.join(cacheDir, `app-${key}`);
  if (await exists(path.join(dir, '.clgw-complete'))) return dir;
  const tmp = `${dir}.tmp`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  const root = JSON.parse(await fs.readFile(path.join(repo.dir, 'package.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  const workspaces = [...APPLIANCE_WORKSPACES];
  await fs.writeFile(
    path.join(tmp, 'package.json'),
    JSON.stringify({ ...root, workspaces, devDependencies: {}, scripts: {} }, null, 2),
  );
  await fs.writeFile(path.join(tmp, 'package-lock.json'), lockText);
  for (const w of workspaces) {
    await fs.mkdir(path.join(tmp, w), { recursive: true });
    const pkg = JSON.parse(await fs.readFile(path.join(repo.dir, w, 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    await fs.writeFile(
      path.join(tmp, w, 'package.json'),
      JSON.stringify({ ...pkg, devDependencies: {} }, null, 2),
    );
  }
  log("npm install --omit=dev (the image's production dependencies)");
  await run(
    'npm',
    [
      'install',
      '--omit=dev',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--loglevel=error',
    ],
    { cwd: tmp, maxBuffer: 16 * 1024 * 1024 },
  );
  await fs.writeFile(path.join(tmp, '.clgw-complete'), '');
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(tmp, dir);
  return dir;
}
