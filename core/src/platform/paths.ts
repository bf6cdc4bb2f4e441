import path from 'node:path';

export type SlotName = 'A' | 'B';
export type PartitionKind = 'boot' | 'root';

/**
 * Every host path the agent touches, resolved under one appliance root. On the appliance the
 * root is `/`; in development and tests it is a directory with the same tree, partitions being
 * regular files. Nothing else in the agent builds a host path by hand.
 */
export interface AppliancePaths {
  root: string;
  /** Agent configuration shipped with the root filesystem (base URL, platform, trust). */
  config: string;
  /** Release signing root(s) the appliance trusts — the only trust anchors. */
  trustedRoots: string;
  /** The GRUB environment block on the ESP. */
  grubenv: string;
  /**
   * The platform this disk was made for (`physical`, `virtual`, `kvm`), written on the ESP by the
   * image builder: the raw, qcow2 and OVA images share one root filesystem (and so one release),
   * and only this file tells them apart. `platform` in agent.json, when set, wins.
   */
  platformFile: string;
  /** Partition device (block device on the appliance, regular file in the simulator). */
  partition(kind: PartitionKind, slot: SlotName): string;
  /** The recovery partition (factory images). */
  recoveryPartition: string;
  /** Mount point of the data partition: survives updates, erased by a factory reset. */
  dataDir: string;
  /** The update machine's persisted snapshot (journal of the update in progress). */
  journal: string;
  /** Facts that must outlive any single update: highest version installed, last serial seen. */
  history: string;
  /**
   * The highest-numbered root-signed revocation list seen (release/revocation.ts): it only grows,
   * and applies to every later compat.yaml, with or without a list in its envelope.
   */
  revocations: string;
  /**
   * The adopted root rotation (release/root-rotation.ts): a new release root vouched for by the
   * image's pinned root, trusted beside it until the stated overlap ends, then instead of it. The
   * image's roots stay the floor: a factory reset erases this and the next check adopts it again.
   */
  rootRotation: string;
  /** Per-slot record of what was installed (RAUC's slot status). */
  slotStatus: string;
  /** Chunk indexes of what the slots hold or are getting (adaptive updates), named by slot and content. */
  chunkIndexes: string;
  /** Alarm history (survives a factory reset: the recovery system carries it over). */
  alarms: string;
  /** Data stored during onboarding (account link, PBX settings, tokens, advanced settings): what a data reset erases. */
  onboardingDir: string;
  /** Present while a data reset is under way, so a cut in the middle is finished at the next start. */
  dataResetMarker: string;
  /**
   * The network settings the technician chose (one JSON file: the truth), and what the agent
   * renders from it for systemd-networkd and the hostname. All on the data partition: they
   * survive updates and a data reset; a factory reset erases them (back to DHCP). The image links
   * `/etc/systemd/network/10-clgw.network` and `/etc/hostname` here.
   */
  networkDir: string;
  networkSettings: string;
  networkUnit: string;
  hostnameFile: string;
  /** Present while SSH access is on: when it was turned on and when it turns itself off. */
  sshState: string;
  /**
   * The SSH host private key, made at the first "Enable SSH" (`ssh.service`'s drop-in and
   * `sshd_config.d/clgw.conf` name it here, so a host key survives updates).
   */
  sshDir: string;
  /**
   * This appliance's ID (random, made once by the agent): a support certificate must name the
   * principal `appliance-<id>` to be accepted here.
   */
  applianceId: string;
  /**
   * The support CA's public key(s) sshd trusts for user certificates (TrustedUserCAKeys). Part of
   * the root filesystem, so the signed release carries it and an update can rotate it.
   */
  supportCa: string;
  /** The last startup diagnostics report. */
  diagnostics: string;
  /** The HTTP(S) proxy setting (mode 0600: it may hold a password). */
  proxy: string;
  /** The update window (time, zone, spread), this appliance's spread seed, the last window run. */
  schedule: string;
  /** The container upgrade's state (run under way, last results, rejected versions). */
  containersState: string;
  /** Downloaded image archives, kept until loaded (named by their SHA-256). */
  containerArchives: string;
  /** Each service container's own data, mounted at `/data` (`<dir>/<service>`). */
  containerData: string;
  /** Podman's storage (images, layers, containers): `graphroot` in the image's `containers/storage.conf`. */
  containerStorage: string;
  /** Written by the recovery system when it restored the factory state. */
  recoveryRecord: string;
  /**
   * What the first boot found in the OVF environment and applied (written once per data
   * partition: its presence means first boot is done, so a factory reset runs it again).
   */
  firstBoot: string;
  logDir: string;
  /**
   * Where the logs are kept on the appliance: `/var` is a tmpfs, so tmpfiles.d links the log
   * directory here, onto the data partition (in the simulator the log directory is a real one).
   */
  logStore: string;
  logFile: string;
  runDir: string;
  /** Log archives behind the temporary download links (a reboot clears them). */
  logArchives: string;
  /** The copies a log archive is being made from (on disk: /run is RAM). */
  logSnapshots: string;
  /**
   * The simulator's reboot port: a program that wants the appliance restarted leaves this file
   * (its content: why) and exits; the boot emulator reboots. On the appliance it is `systemctl reboot`.
   */
  rebootRequest: string;
  /** The root-only API (CLI, consoles). */
  socket: string;
  /** The narrow API the portal process may use (api/portal-contract.ts): owner root, group the portal's. */
  portalSocket: string;
  /** Where the portal answers (from the configuration): the log download links name it. */
  portalUrl: string;
  cmdline: string;
  osRelease: string;
  /** Health hooks shipped by the running root filesystem. */
  healthHooks: string;
}

export function appliancePaths(root: string): AppliancePaths {
  const r = path.resolve(root);
  const at = (...parts: string[]) => path.join(r, ...parts);
  const dataDir = at('var/clgw');
  return {
    root: r,
    config: at('etc/clgw/agent.json'),
    trustedRoots: at('etc/clgw/trust/release-roots.pem'),
    grubenv: at('boot/efi/grub/grubenv'),
    platformFile: at('boot/efi/clgw/platform'),
    partition: (kind, slot) => at('dev/disk/by-partlabel', `${kind}_${slot.toLowerCase()}`),
    recoveryPartition: at('dev/disk/by-partlabel/recovery'),
    dataDir,
    journal: path.join(dataDir, 'update-journal.json'),
    history: path.join(dataDir, 'history.json'),
    revocations: path.join(dataDir, 'revocations.json'),
    rootRotation: path.join(dataDir, 'root-rotation.json'),
    slotStatus: path.join(dataDir, 'slot-status.json'),
    chunkIndexes: path.join(dataDir, 'chunk-index'),
    alarms: path.join(dataDir, 'alarms.json'),
    onboardingDir: path.join(dataDir, 'onboarding'),
    dataResetMarker: path.join(dataDir, 'data-reset.pending'),
    recoveryRecord: path.join(dataDir, 'recovery.json'),
    firstBoot: path.join(dataDir, 'firstboot.json'),
    sshState: path.join(dataDir, 'ssh.json'),
    sshDir: path.join(dataDir, 'ssh'),
    applianceId: path.join(dataDir, 'appliance-id'),
    supportCa: at('usr/share/clgw/trust/support-ca.pub'),
    diagnostics: path.join(dataDir, 'diagnostics.json'),
    proxy: path.join(dataDir, 'proxy.json'),
    schedule: path.join(dataDir, 'schedule.json'),
    containersState: path.join(dataDir, 'containers.json'),
    containerArchives: path.join(dataDir, 'containers/archives'),
    containerData: path.join(dataDir, 'containers/data'),
    containerStorage: path.join(dataDir, 'containers/storage'),
    networkDir: path.join(dataDir, 'network'),
    networkSettings: path.join(dataDir, 'network/settings.json'),
    networkUnit: path.join(dataDir, 'network/10-clgw.network'),
    hostnameFile: path.join(dataDir, 'network/hostname'),
    logDir: at('var/log/clgw'),
    logStore: path.join(dataDir, 'log'),
    logSnapshots: path.join(dataDir, 'log-snapshots'),
    logFile: at('var/log/clgw/clgw.log'),
    runDir: at('run/clgw'),
    logArchives: at('run/clgw/logs'),
    rebootRequest: at('run/clgw/reboot-request'),
    socket: at('run/clgw/agent.sock'),
    portalSocket: at('run/clgw/portal.sock'),
    portalUrl: at('run/clgw/portal-url'),
    cmdline: at('proc/cmdline'),
    osRelease: at('etc/os-release'),
    healthHooks: at('usr/lib/clgw/health.d'),
  };
}

export function otherSlot(slot: SlotName): SlotName {
  return slot === 'A' ? 'B' : 'A';
}
