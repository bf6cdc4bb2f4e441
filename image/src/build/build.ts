/**
 * `make image`: the appliance's release images and disks.
 *
 *   release images  boot-<v>.img (kernel + initramfs, ext4) and root-<v>.img (the root tree, ext4):
 *                   what the mirror publishes and what slot A of the disks holds — the same files
 *   disks           clgw-<v>.img (raw, physical), clgw-<v>.qcow2 (KVM), clgw-<v>.ova (VMware): one
 *                   GPT layout, differing only in the ESP's platform file
 *   release tree    (optional) compat.yaml + artifacts for the mirror, from the same images
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Platform } from '@clgw/core/release/schema.js';
import { buildOva } from '../ova/ova.js';
import { OVA_FIRMWARE } from '../ova/ovf.js';
import { buildRelease, type DevKeys, SUPPORT_CA_FILES } from '../release/index.js';
import {
  assembleDisk,
  buildBootImage,
  buildEsp,
  buildRecoveryImage,
  buildRootImage,
  DATA_BYTES,
  type DiskParts,
  mkfsExt4,
  planFor,
} from './disk.js';
import { buildBase, kernelFiles, nodeBinary, productionModules, type Repo } from './rootfs.js';
import { run } from './run.js';
import { assembleTree } from './tree.js';

/** The end of every output's name when the images trust development keys. */
export const DEV_KEYS_SUFFIX = '-devkeys';

/**
 * The framed notice of a build with development keys (printed by `make image` without KEYS, at
 * the start and at the end): such images trust a release root and a support CA made on the build
 * machine and must never reach a customer. `supportCaGenerated`: this build made that support CA
 * (there was none in `keysDir`).
 */
export function devKeysNotice(keysDir: string, opts: { supportCaGenerated?: boolean } = {}): string {
  const lines = [
    'DEVELOPMENT KEYS - NOT FOR CUSTOMERS',
    '',
    'These images trust a development release root and a development support',
    `CA (SSH logins as support) made on this machine (${keysDir});`,
    `their names end in ${DEV_KEYS_SUFFIX}.`,
    ...(opts.supportCaGenerated
      ? [`This build generated that support CA: ${path.join(keysDir, SUPPORT_CA_FILES.key)}.`]
      : []),
    "A customer's appliance needs images built with the vendor's keys:",
    `make image KEYS=DIR (clgw-release keys; DIR holds ${SUPPORT_CA_FILES.pub}).`,
  ];
  const width = Math.max(...lines.map((l) => l.length));
  const bar = '!'.repeat(width + 6);
  return `\n${[bar, ...lines.map((l) => `!! ${l.padEnd(width)} !!`), bar].join('\n')}\n\n`;
}

export type DiskFormat = 'raw' | 'qcow2' | 'ova';
export const DISK_FORMATS: readonly DiskFormat[] = ['raw', 'qcow2', 'ova'];
/** Which platform each disk format is made for (SPEC §1: physical box, KVM, VMware). */
export const FORMAT_PLATFORM: Record<DiskFormat, Platform> = {
  raw: 'physical',
  qcow2: 'kvm',
  ova: 'virtual',
};

export interface ImageOptions {
  repo: Repo;
  /** Outputs: release images, disks. */
  out: string;
  /** Cached base and production modules (shared by every build). */
  cache: string;
  version: string;
  keys: DevKeys;
  /** The support CA's public key(s), trusted by sshd for the support account (support-ca.ts). */
  supportCaPub: string;
  /** /etc/clgw/agent.json besides the defaults (a lab mirror's base URL, say). */
  agentConfig?: Record<string, unknown>;
  downloadCaPem?: string;
  /** The QEMU end-to-end run's lab image (tree.ts: TreeOptions.lab). */
  lab?: boolean;
  /**
   * `keys` are development keys: every output's name ends in {@link DEV_KEYS_SUFFIX} (`make image`
   * without KEYS, the end-to-end run), so such an image is never taken for a customer's.
   */
  devKeys?: boolean;
  log?: (line: string) => void;
}

/**
 * The file names of one release's images and root tree in the output directory:
 * `boot-<v>[-broken][-devkeys].img`, `root-….img`, `tree-…`.
 */
export function releaseImageNames(o: { version: string; devKeys?: boolean; brokenInit?: boolean }): {
  boot: string;
  root: string;
  tree: string;
} {
  const name = `${o.version}${o.brokenInit ? '-broken' : ''}${o.devKeys ? DEV_KEYS_SUFFIX : ''}`;
  return { boot: `boot-${name}.img`, root: `root-${name}.img`, tree: `tree-${name}` };
}

/** The file names of a factory release's disks, `clgw-<v>[-devkeys].{img,qcow2,ova}`, and the OVA's VM name. */
export function diskNames(o: { version: string; devKeys?: boolean }): Record<DiskFormat, string> & {
  vm: string;
} {
  const vm = `clgw-${o.version}${o.devKeys ? DEV_KEYS_SUFFIX : ''}`;
  return { raw: `${vm}.img`, qcow2: `${vm}.qcow2`, ova: `${vm}.ova`, vm };
}

export interface ReleaseImages {
  version: string;
  boot: string;
  root: string;
  /** The root tree the images were made from (kept: the recovery partition reuses it). */
  tree: string;
}

/** The boot and root images of one release (`brokenInit`: a release that cannot start). */
export async function buildReleaseImages(o: ImageOptions & { brokenInit?: boolean }): Promise<ReleaseImages> {
  const log = o.log ?? (() => undefined);
  const base = await buildBase(o.repo, o.cache, log);
  const app = await productionModules(o.repo, o.cache, log);
  const node = await nodeBinary();
  const tag = `${o.version}${o.brokenInit ? '-broken' : ''}`;
  const names = releaseImageNames(o);
  await fs.mkdir(o.out, { recursive: true });
  const tree = path.join(o.out, names.tree);
  log(`root tree ${tag} (Node ${node.version})`);
  await assembleTree({
    repo: o.repo,
    base,
    app,
    node: node.file,
    out: tree,
    version: o.version,
    agentConfig: { reboot: 'systemd', ...o.agentConfig },
    trustPem: o.keys.root.certPem,
    supportCaPub: o.supportCaPub,
    downloadCaPem: o.downloadCaPem,
    brokenInit: o.brokenInit,
    lab: o.lab,
  });
  const boot = path.join(o.out, names.boot);
  const root = path.join(o.out, names.root);
  await buildBootImage(await kernelFiles(base), boot, tag);
  await buildRootImage(tree, root, tag);
  log(`release images ${path.basename(boot)} ${path.basename(root)}`);
  return { version: o.version, boot, root, tree };
}

/** The three disks of a factory release. */
export async function buildDisks(
  o: ImageOptions & { release: ReleaseImages; formats?: readonly DiskFormat[] },
): Promise<Partial<Record<DiskFormat, string>>> {
  const log = o.log ?? (() => undefined);
  const work = path.join(o.out, 'work');
  await fs.mkdir(work, { recursive: true });
  const kernel = await kernelFiles(await buildBase(o.repo, o.cache, log));
  const recovery = path.join(work, 'recovery.img');
  log('recovery partition (factory images + the recovery system)');
  await buildRecoveryImage({
    tree: o.release.tree,
    kernel,
    boot: o.release.boot,
    root: o.release.root,
    version: o.version,
    out: recovery,
  });
  const data = path.join(work, 'data.img');
  const empty = path.join(work, 'data.d');
  await fs.mkdir(empty, { recursive: true });
  await mkfsExt4(empty, data, 'data', DATA_BYTES, `clgw-data-${o.version}`);
  const plan = await planFor({ boot: o.release.boot, root: o.release.root, recovery, data });

  const names = diskNames(o);
  const outputs: Partial<Record<DiskFormat, string>> = {};
  for (const format of o.formats ?? DISK_FORMATS) {
    const platform = FORMAT_PLATFORM[format];
    const esp = path.join(work, `esp-${platform}.img`);
    await buildEsp(o.repo.dir, work, esp, platform);
    const parts: DiskParts = { esp, boot: o.release.boot, root: o.release.root, recovery, data };
    const raw = format === 'raw' ? path.join(o.out, names.raw) : path.join(work, `disk-${platform}.img`);
    log(`disk ${path.basename(raw)} for ${platform}`);
    await assembleDisk(plan, parts, raw, work);
    if (format === 'raw') outputs.raw = raw;
    if (format === 'qcow2') {
      const file = path.join(o.out, names.qcow2);
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, `${file}.tmp`]);
      await fs.rename(`${file}.tmp`, file);
      outputs.qcow2 = file;
    }
    if (format === 'ova') {
      const file = path.join(o.out, names.ova);
      await buildOva({
        rawDisk: raw,
        outFile: file,
        version: o.version,
        name: names.vm,
        // UEFI, Secure Boot off (the reasons are at OVA_FIRMWARE in ova/ovf.ts).
        firmware: OVA_FIRMWARE,
      });
      outputs.ova = file;
    }
    if (format !== 'raw') await fs.rm(raw, { force: true });
  }
  return outputs;
}

/** Publishes release images into a mirror tree for every platform (the disks' release, or a later one). */
export async function publish(
  tree: string,
  keys: DevKeys,
  release: ReleaseImages,
  minSourceVersion: string,
): Promise<void> {
  await buildRelease({
    tree,
    keys,
    version: release.version,
    platforms: ['physical', 'virtual', 'kvm'],
    boot: release.boot,
    root: release.root,
    minSourceVersion,
  });
}
