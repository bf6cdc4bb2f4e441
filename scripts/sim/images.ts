/**
 * Builds the simulated gateway OS release images: real ext4 filesystems made with
 * `mkfs.ext4 -d` from a staged directory, so the boot emulator can read them like a bootloader
 * and kernel would (with debugfs) and the agent writes real filesystem images into its slots.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from '@clgw/core/platform/exec.js';

export interface ReleaseImages {
  version: string;
  boot: string;
  root: string;
}

export interface ImageOptions {
  version: string;
  outDir: string;
  /** A release whose health hook fails after boot (the demo's broken release). */
  brokenHealth?: boolean;
  /** Size of the filler payload in the root image, to make downloads realistic. */
  payloadMiB?: number;
}

/** Deterministic filler bytes per version (no two releases share content, yet rebuilds match). */
function payload(version: string, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let block = createHash('sha256').update(`clgw-payload-${version}`).digest();
  for (let off = 0; off < bytes; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

async function mkfs(dir: string, image: string, label: string, sizeMiB: number): Promise<void> {
  await fs.rm(image, { force: true });
  await execFile(
    'mkfs.ext4',
    ['-q', '-F', '-L', label, '-d', dir, '-E', 'root_owner=0:0', image, `${sizeMiB}M`],
    {
      env: { ...process.env, E2FSPROGS_FAKE_TIME: '1767225600' },
    },
  );
}

/**
 * The simulated release's OS patch level: a month per minor release, so an update visibly brings
 * newer patches (1.0.0: 2025-10-01, 1.1.0: 2025-11-01).
 */
export function simPatchLevel(version: string): string {
  const [major = 1, minor = 0] = version.split('.').map(Number);
  return new Date(Date.UTC(2025, 9 + (major - 1) * 12 + minor, 1)).toISOString().slice(0, 10);
}

/**
 * Bumped whenever what the images hold changes, so images cached by an older checkout are not
 * reused (r2: os-release carries CLGW_PATCH_LEVEL).
 */
const CONTENT_REVISION = 'r2';

/** Builds `boot-<v>.<rev>.img` and `root-<v>.<rev>.img` in outDir (reused when present). */
export async function buildReleaseImages(opts: ImageOptions): Promise<ReleaseImages> {
  const tag = `${opts.version}${opts.brokenHealth ? '-broken' : ''}.${CONTENT_REVISION}`;
  const boot = path.join(opts.outDir, `boot-${tag}.img`);
  const root = path.join(opts.outDir, `root-${tag}.img`);
  const exists = await Promise.all(
    [boot, root].map((f) =>
      fs.stat(f).then(
        () => true,
        () => false,
      ),
    ),
  );
  if (exists.every(Boolean)) return { version: opts.version, boot, root };

  const stage = path.join(opts.outDir, `stage-${tag}`);
  await fs.rm(stage, { recursive: true, force: true });
  const bootDir = path.join(stage, 'boot');
  const rootDir = path.join(stage, 'root');
  await fs.mkdir(bootDir, { recursive: true });
  await fs.mkdir(path.join(rootDir, 'etc'), { recursive: true });
  await fs.mkdir(path.join(rootDir, 'usr/lib/clgw/health.d'), { recursive: true });
  await fs.mkdir(path.join(rootDir, 'usr/share/clgw'), { recursive: true });

  // The simulator has no kernel to boot; the boot partition carries a marked stand-in that the
  // boot emulator requires, so a release with a broken boot partition does not boot.
  await fs.writeFile(path.join(bootDir, 'vmlinuz'), `clgw simulated kernel for gateway OS ${opts.version}\n`);
  await fs.writeFile(path.join(bootDir, 'initrd.img'), payload(`${opts.version}-initrd`, 2 * 1024 * 1024));

  await fs.writeFile(
    path.join(rootDir, 'etc/os-release'),
    [
      'NAME="CloudLink Gateway OS"',
      'ID=clgw',
      `VERSION_ID=${opts.version}`,
      `PRETTY_NAME="CloudLink Gateway OS ${opts.version}"`,
      `CLGW_PATCH_LEVEL=${simPatchLevel(opts.version)}`,
      '',
    ].join('\n'),
  );
  await fs.writeFile(
    path.join(rootDir, 'usr/lib/clgw/health.d/10-os-release'),
    [
      '#!/bin/sh',
      '# The running root must identify itself as a CloudLink Gateway OS.',
      'grep -q "^ID=clgw$" "$CLGW_ROOT/etc/os-release" || { echo "os-release does not say ID=clgw" >&2; exit 1; }',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  if (opts.brokenHealth) {
    await fs.writeFile(
      path.join(rootDir, 'usr/lib/clgw/health.d/50-services'),
      [
        '#!/bin/sh',
        '# Deliberately broken release for the demo and tests: its services never come up.',
        'echo "cloudlink-tunnel.service failed to start: exit status 1" >&2',
        'exit 1',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
  }
  await fs.writeFile(
    path.join(rootDir, 'usr/share/clgw/payload.bin'),
    payload(opts.version, (opts.payloadMiB ?? 40) * 1024 * 1024),
  );

  await mkfs(bootDir, boot, 'boot', 8);
  await mkfs(rootDir, root, 'root', (opts.payloadMiB ?? 40) + 16);
  await fs.rm(stage, { recursive: true, force: true });
  return { version: opts.version, boot, root };
}
