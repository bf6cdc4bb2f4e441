/**
 * Creates a simulated appliance root: the same tree the agent sees on the box, with partitions
 * as fixed-size regular files under dev/disk/by-partlabel, the ESP's grubenv, the data partition
 * directory, and the agent's configuration pointing at a local mirror.
 */
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { defaultGrubenv } from '@clgw/core/slot/bootchooser.js';
import { createGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { supportCaPublicKeys } from '../../image/src/release/support-ca.js';
import { writeFactoryManifest } from '../../recovery/src/factory.js';
import { freePorts } from '../lib/ports.js';
import type { ReleaseImages } from './images.js';

export interface ApplianceOptions {
  root: string;
  factory: ReleaseImages;
  platform: 'physical' | 'virtual' | 'kvm';
  baseUrl: string;
  /** PEM of the release signing root the appliance pins. */
  releaseRootPem: string;
  /** PEM of the CA that signed the mirror's TLS certificate. */
  mirrorCaPem?: string;
  /**
   * The support CA's public key(s) (OpenSSH), put where the image has them
   * (usr/share/clgw/trust/support-ca.pub) for the simulator's sshd; never the private key
   * (checked). Absent: no certificate is accepted.
   */
  supportCaPub?: string;
  bootSlotMiB?: number;
  rootSlotMiB?: number;
  /** Extra agent configuration (timeouts, updateAtBoot…). */
  config?: Record<string, unknown>;
}

async function partition(file: string, sizeBytes: number, image?: string): Promise<void> {
  const h = await fs.open(file, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    await h.truncate(sizeBytes);
    if (image) {
      const data = await fs.readFile(image);
      if (data.length > sizeBytes) throw new Error(`${image} (${data.length} bytes) does not fit ${file}`);
      await h.write(data, 0, data.length, 0);
    }
    await h.sync();
  } finally {
    await h.close();
  }
}

/** (Re)creates the appliance root as the factory left it: slot A holds the factory release. */
export async function createAppliance(opts: ApplianceOptions): Promise<void> {
  const paths = appliancePaths(opts.root);
  await fs.rm(opts.root, { recursive: true, force: true });
  const bootSize = (opts.bootSlotMiB ?? 32) * 1024 * 1024;
  const rootSize = (opts.rootSlotMiB ?? 96) * 1024 * 1024;
  await fs.mkdir(path.dirname(paths.partition('boot', 'A')), { recursive: true });
  await partition(paths.partition('boot', 'A'), bootSize, opts.factory.boot);
  await partition(paths.partition('root', 'A'), rootSize, opts.factory.root);
  await partition(paths.partition('boot', 'B'), bootSize);
  await partition(paths.partition('root', 'B'), rootSize);

  // The recovery partition keeps the factory images (used by the recovery system).
  const recovery = paths.recoveryPartition;
  await fs.mkdir(recovery, { recursive: true });
  await fs.copyFile(opts.factory.boot, path.join(recovery, 'boot.img'));
  await fs.copyFile(opts.factory.root, path.join(recovery, 'root.img'));
  // What the recovery system checks the images against before it writes a slot from them.
  await writeFactoryManifest(recovery, opts.factory.version);

  await fs.mkdir(path.dirname(paths.grubenv), { recursive: true });
  // As the image builder does: GRUB's save_env and the agent only ever write it in place.
  await createGrubenv(paths.grubenv, defaultGrubenv());
  await fs.mkdir(paths.dataDir, { recursive: true });
  await fs.mkdir(paths.logDir, { recursive: true });
  await fs.mkdir(path.dirname(paths.cmdline), { recursive: true });

  await writeFileAtomic(paths.trustedRoots, opts.releaseRootPem);
  if (opts.supportCaPub !== undefined)
    await writeFileAtomic(
      paths.supportCa,
      supportCaPublicKeys(opts.supportCaPub, 'the support CA public key'),
    );
  // Every port the simulated appliance listens on is free now, so that two simulated appliances
  // on one machine (a demo beside a test run) never answer for each other.
  const [sshPort, portalPort, tunnel, micloud, freeswitch] = await freePorts(5);
  const config: Record<string, unknown> = {
    platform: opts.platform,
    baseUrl: opts.baseUrl,
    reboot: 'simulator',
    // The simulated appliance has no LAN port: network changes are saved and rendered, not
    // applied to an interface (tests that need one configure a network namespace).
    networkApply: 'none',
    // Diagnostics stay on loopback: the mirror is the download host; nobody answers NTP on port 9.
    diagnostics: { ntpServer: '127.0.0.1:9' },
    // "Enable SSH access" runs a real sshd on loopback with its files under the root; support
    // logs in as the machine's `support` user (scripts/setup console makes it).
    ssh: { server: 'simulator', port: sshPort },
    // The portal: its own process, started by the boot emulator or a test.
    portal: { host: '127.0.0.1', port: portalPort },
    // The service containers' health ports for a first install (host network, like the appliance).
    containerPorts: { tunnel, micloud, freeswitch },
    ...opts.config,
  };
  if (opts.mirrorCaPem) {
    await writeFileAtomic(path.join(opts.root, 'etc/clgw/trust/mirror-ca.pem'), opts.mirrorCaPem);
    config.downloadCa = 'etc/clgw/trust/mirror-ca.pem';
  }
  await writeJsonAtomic(paths.config, config);
}
