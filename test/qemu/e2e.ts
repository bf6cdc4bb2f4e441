/**
 * `make e2e`: the appliance's images proven in QEMU (issue #7). Builds the lab images (the
 * product images plus the lab hooks of image/src/build/tree.ts) as a raw disk and an OVA, serves
 * the release tree over HTTPS on the host (the guest reaches it at 10.0.2.2), boots each disk
 * with an ovf-env.xml on a CD-ROM, and asserts on the serial log, tty1's text and the portal's
 * status API:
 *
 *  1. UEFI (issue #17): the OVA's own disk (platform `virtual`), taken out of the .ova and
 *     converted to qcow2 (the KVM image's format), boots under OVMF; its first boot applies the
 *     OVF environment from the CD-ROM, a SATA one here (machine.ts; QEMU cannot play VMware's
 *     guestinfo, so that read fails and the CD-ROM is next), and the agent updates 1.0.0 → 1.1.0
 *     through the EFI GRUB into slot B and commits (the containers are not waited for). Its own
 *     machine and disk; powered off after.
 *  2. BIOS, the raw disk from here on: first boot applies the OVF environment (static address,
 *     hostname); tty1 shows the address
 *  3. the agent updates 1.0.0 → 1.1.0 into slot B, reboots, commits; the containers start
 *  4. a broken 1.2.0 (its init exits: the kernel panics) is rolled back by GRUB's try counter
 *  5. QEMU is killed inside the critical phase of the update to 1.3.0 → the next boot raises
 *     CLGW_ALARM_CRITICAL_PHASE_FAILED, the recovery system restores the factory release, and
 *     the update runs again to 1.3.0
 *
 * Both machines have the Small profile's memory (1 GiB; two vCPUs, not its one: TCG emulates each
 * vCPU on a host core, and one would make the run far longer). Issue #21: each step prints the
 * memory of the clgw processes (PSS, sampled every second inside the guest by the lab image,
 * test/qemu/memory.ts) and the MemAvailable minimum; the run ends with the highest over all steps,
 * the idle figure, and the times a customer waits for (power-on to the portal answering, a full
 * update, a factory reset), on the host's clock under TCG.
 *
 * Each step prints `step k/n passed in <s> s`; the last line is `e2e: passed <k>/<n> steps in
 * <s> s`. Work files in .cache/e2e (serial logs: .cache/e2e/run/uefi/serial.log for step 1,
 * .cache/e2e/run/serial.log for the others). Environment: E2E_MIRROR_PORT (default 18443, baked
 * into the lab image's base URL), E2E_KEEP=1 keeps QEMU's disks after the run, E2E_STEPS=N runs
 * only the first N steps (1: the UEFI step alone; 2 adds the BIOS first boot; the last line then
 * counts N).
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from '@clgw/core/platform/exec.js';
import type { Status } from '../../agent/src/status.js';
import {
  buildDisks,
  buildReleaseImages,
  type ImageOptions,
  type ReleaseImages,
} from '../../image/src/build/build.js';
import { buildRelease, publishContainers } from '../../image/src/release/build.js';
import {
  type DevKeys,
  ensureDevSupportCa,
  generateDevKeys,
  loadKeys,
  saveKeys,
} from '../../image/src/release/index.js';
import { startMirror } from '../../scripts/lib/mirror.js';
import { ensureMirrorPki, MIRROR_NAMES } from '../../scripts/lib/mirror-pki.js';
import { buildStandin } from '../../scripts/standins.js';
import { beforeKernel, Machine, type MachineOptions, serialTail } from './machine.js';
import { describeMemory, type MemorySample, parseMemoryLog, summarize } from './memory.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WORK = path.join(REPO, '.cache/e2e');
const RUN = path.join(WORK, 'run');
const MIRROR_PORT = Number(process.env.E2E_MIRROR_PORT ?? 18443);
/** Where QEMU's user network puts the host (the guest's gateway) and the guest's static address. */
const HOST_FROM_GUEST = '10.0.2.2';
const GUEST_IP = '10.0.2.20';
const HOSTNAME = 'e2e-gateway';
const PLATFORMS = ['physical', 'virtual', 'kvm'] as const;
const MIN = 60_000;
/** Silence on the serial line after the guest's reboot that counts as a hung firmware (see until). */
const FIRMWARE_HANG_MS = 3 * MIN;
/** Issue #21's goal for every clgw process together, at any moment (MiB of PSS). */
const PSS_GOAL_MIB = 128;
/** How many steps there are (the last line's count when the run fails before the first). */
const ALL_STEPS = 5;
/** E2E_STEPS: how many of the steps to run, from the first (all when unset). */
const STEPS = process.env.E2E_STEPS === undefined ? undefined : Number(process.env.E2E_STEPS);
if (STEPS !== undefined && !(Number.isInteger(STEPS) && STEPS >= 1)) {
  process.stderr.write(
    `e2e: E2E_STEPS=${process.env.E2E_STEPS}: expected a whole number of steps, 1 or more\n`,
  );
  process.exit(2);
}

const started = Date.now();
const t = () => `${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s`;
const say = (line: string) => process.stdout.write(`[${t()}] ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ovfEnv(): string {
  const prop = (k: string, v: string) => `      <Property oe:key="${k}" oe:value="${v}"/>`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1"',
    '     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"',
    '     xmlns:ve="http://www.vmware.com/schema/ovfenv" oe:id="" ve:vCenterId="vm-e2e">',
    '   <PlatformSection><Kind>QEMU (end-to-end run)</Kind></PlatformSection>',
    '   <PropertySection>',
    prop('cl.hostname', HOSTNAME),
    prop('cl.ip0', GUEST_IP),
    prop('cl.netmask0', '255.255.255.0'),
    prop('cl.gateway0', HOST_FROM_GUEST),
    prop('cl.dns0', '10.0.2.3'),
    '   </PropertySection>',
    '</Environment>',
    '',
  ].join('\n');
}

/** The portal's status (through QEMU's forwarded port), or undefined while it does not answer. */
async function portalStatus(port: number): Promise<Status | undefined> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (value: Status | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(value);
    };
    // One deadline for the whole exchange: QEMU's forwarded port can stall mid-response (a reboot).
    const timer = setTimeout(() => finish(undefined), 15_000);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/api/status',
        headers: { host: GUEST_IP },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', () => finish(undefined));
        res.on('end', () => {
          try {
            finish(res.statusCode === 200 ? JSON.parse(Buffer.concat(chunks).toString()).status : undefined);
          } catch {
            finish(undefined);
          }
        });
      },
    );
    req.on('error', () => finish(undefined));
    req.end();
  });
}

class StepFailed extends Error {}

interface Step {
  name: string;
  /** The machine the step runs (its serial log is named when the step fails). */
  vm: Machine;
  run: () => Promise<void>;
}

async function main(): Promise<number> {
  await fs.mkdir(WORK, { recursive: true });
  const steps: Step[] = [];
  const keysDir = path.join(WORK, 'keys');
  const keys: DevKeys = await loadKeys(keysDir).catch(async () => {
    const k = generateDevKeys();
    await saveKeys(keysDir, k, { overwrite: true });
    return k;
  });
  const tlsDir = path.join(WORK, 'tls');
  const pki = await ensureMirrorPki(tlsDir, [...MIRROR_NAMES, HOST_FROM_GUEST]);

  // --- images: the factory disk (1.0.0) and three later releases, all lab images -------------
  const out = path.join(WORK, 'images');
  const options: ImageOptions = {
    repo: { dir: REPO },
    out,
    cache: path.join(REPO, '.cache/image'),
    version: '1.0.0',
    keys,
    // Development keys: their development support CA beside them, made at the first run.
    supportCaPub: (await ensureDevSupportCa(keysDir)).publicKey,
    agentConfig: { baseUrl: `https://${HOST_FROM_GUEST}:${MIRROR_PORT}/`, containerHealthTimeoutMs: 180_000 },
    downloadCaPem: pki.ca.certPem,
    lab: true,
    // The run's own keys (.cache/e2e/keys): development keys, and the images are named so.
    devKeys: true,
    log: say,
  };
  say('building the lab images (the base is cached in .cache/image)');
  const factory = await buildReleaseImages(options);
  // The raw disk (physical) for the BIOS steps, the OVA (virtual) for the UEFI step.
  const { raw, ova } = await buildDisks({ ...options, release: factory, formats: ['raw', 'ova'] });
  const releases: Record<string, ReleaseImages> = {};
  for (const [version, brokenInit] of [
    ['1.1.0', false],
    ['1.2.0', true],
    ['1.3.0', false],
  ] as const) {
    releases[version] = await buildReleaseImages({ ...options, version, brokenInit });
    await fs.rm(releases[version]!.tree, { recursive: true, force: true });
  }
  await fs.rm(factory.tree, { recursive: true, force: true });

  // --- the mirror ---------------------------------------------------------------------------
  const tree = path.join(WORK, 'mirror');
  await fs.rm(tree, { recursive: true, force: true });
  await fs.mkdir(tree, { recursive: true });
  const publish = (r: ReleaseImages) =>
    buildRelease({
      tree,
      keys,
      version: r.version,
      platforms: [...PLATFORMS],
      boot: r.boot,
      root: r.root,
      minSourceVersion: '1.0.0',
    });
  await publish(releases['1.1.0']!);
  const standins = path.join(WORK, 'standins');
  const tunnel = await buildStandin({ service: 'tunnel', version: '1.0.0', out: standins });
  const micloud = await buildStandin({ service: 'micloud', version: '1.0.0', out: standins });
  await publishContainers({
    tree,
    keys,
    platforms: [...PLATFORMS],
    containers: [tunnel, micloud].map((c) => ({
      name: c.reference.includes('tunnel') ? ('tunnel' as const) : ('micloud' as const),
      version: '1.0.0',
      image: c.reference,
      archive: c.file,
    })),
  });
  const mirror = await startMirror({ tree, tlsDir, port: MIRROR_PORT, host: '127.0.0.1' });
  say(`mirror ${mirror.url} (the guest: https://${HOST_FROM_GUEST}:${MIRROR_PORT}/)`);

  // --- the machine --------------------------------------------------------------------------
  await fs.rm(RUN, { recursive: true, force: true });
  await fs.mkdir(RUN, { recursive: true });
  const disk = path.join(RUN, 'disk.qcow2');
  await execFile('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', raw!, disk]);
  const isoDir = path.join(RUN, 'iso');
  await fs.mkdir(isoDir);
  await fs.writeFile(path.join(isoDir, 'ovf-env.xml'), ovfEnv());
  const iso = path.join(RUN, 'ovf-env.iso');
  await execFile('xorriso', ['-as', 'mkisofs', '-quiet', '-J', '-R', '-V', 'OVF ENV', '-o', iso, isoDir]);
  const share = path.join(RUN, 'share');
  const portalPort = MIRROR_PORT + 1;
  const machine: Omit<MachineOptions, 'disk' | 'share' | 'serialLog'> = {
    iso,
    portalPort,
    guestIp: GUEST_IP,
    memoryMiB: 1024,
  };
  const vm = new Machine({ ...machine, disk, share, serialLog: path.join(RUN, 'serial.log') });
  // The UEFI step's machine: its own directory (serial log, QMP socket, OVMF's variables, disk).
  const efiRun = path.join(RUN, 'uefi');
  await fs.mkdir(efiRun);
  const efiDisk = path.join(efiRun, 'disk.qcow2');
  const efiVm = new Machine({
    ...machine,
    firmware: 'efi',
    disk: efiDisk,
    share: path.join(efiRun, 'share'),
    serialLog: path.join(efiRun, 'serial.log'),
  });
  /** The machine of the step that runs (the one `until` watches). */
  let current = vm;

  // --- what a customer waits for (issue #21, point 6), on the host's clock ------------------
  const times: string[] = [];
  const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(0)} s`;
  /** The last power-on whose portal has not answered yet. */
  let poweredOn: { at: number; what: string } | undefined;
  const powerOn = async (what: string) => {
    await current.start();
    poweredOn = { at: Date.now(), what };
  };
  /** Updates seen downloading (by machine and version), and whether their commit was timed yet. */
  const updates = new Map<string, { at: number; from: string | null; timed: boolean }>();
  /** Set by step 5 at its power-on: the recovery's factory reset, until 1.0.0 answers. */
  let factoryReset: number | undefined;
  const track = (s: Status) => {
    if (poweredOn) {
      times.push(`${poweredOn.what}: power-on to the portal answering ${seconds(poweredOn.at)}`);
      poweredOn = undefined;
    }
    if (factoryReset !== undefined && s.gatewayVersion === '1.0.0') {
      times.push(
        `factory reset: power-on after the cut → recovery → 1.0.0 answering ${seconds(factoryReset)}`,
      );
      factoryReset = undefined;
    }
    const machineName = current === vm ? 'BIOS' : 'UEFI';
    // From the download: a target is also shown while the recovery system runs (step 5), which
    // is the factory reset's time, not the update's.
    if (s.target && s.state === 'downloading' && !updates.has(`${machineName} ${s.target.version}`)) {
      updates.set(`${machineName} ${s.target.version}`, {
        at: Date.now(),
        from: s.gatewayVersion,
        timed: false,
      });
    }
    const update =
      s.result?.outcome === 'committed' ? updates.get(`${machineName} ${s.result.version}`) : undefined;
    if (update && !update.timed) {
      times.push(
        `${machineName}: update ${update.from} → ${s.result?.version}, first seen downloading → committed ${seconds(update.at)}`,
      );
      update.timed = true;
    }
  };

  /** Every step's memory samples, and the idle ones step 3 takes at its end. */
  const allSamples: MemorySample[] = [];
  let idle: ReturnType<typeof summarize>;

  let last: Status | undefined;
  const status = async () => {
    const s = await portalStatus(portalPort);
    if (s) {
      last = s;
      track(s);
    }
    return s;
  };
  /**
   * OVMF under TCG with two vCPUs has been seen to hang for good after the guest's own reboot:
   * once (2026-12-06) with `reboot: machine restart` the last serial line, one vCPU spinning in
   * the firmware's DXE phase, the other halted, nothing printed — not even `BdsDxe` — for 30 min;
   * once in CI the same day, with nothing from the guest for 37 min after its update. Our software
   * is not running then (the firmware never reaches GRUB or the kernel), so the harness does what
   * a board's reset line does: when the serial line has been silent for FIRMWARE_HANG_MS and the
   * guest is between a restart (or power-on) and its kernel's first line, it resets the machine,
   * says so, and counts it; a second hang in one wait fails the step.
   */
  let serialSeen = { length: -1, at: Date.now() };
  let firmwareResets = 0;
  const firmwareHung = async (): Promise<boolean> => {
    const serial = await current.serial();
    if (serial.length !== serialSeen.length) {
      serialSeen = { length: serial.length, at: Date.now() };
      return false;
    }
    return Date.now() - serialSeen.at > FIRMWARE_HANG_MS && beforeKernel(serial);
  };
  /** Polls the portal until `ok` holds (an unreachable portal counts as not yet). */
  const until = async (what: string, ok: (s: Status) => boolean, timeoutMs: number): Promise<Status> => {
    const deadline = Date.now() + timeoutMs;
    let seen = '';
    let shown = Date.now();
    let resets = 0;
    while (Date.now() < deadline) {
      if (!current.running) throw new StepFailed(`QEMU exited while waiting for ${what}`);
      if (await firmwareHung()) {
        if (++resets > 1)
          throw new StepFailed(`the firmware hung again after a reboot while waiting for ${what}`);
        firmwareResets++;
        say(
          `  the firmware hung (no serial output for ${FIRMWARE_HANG_MS / 1000} s, no kernel since the last restart): reset (QMP system_reset)`,
        );
        await current.reset();
        serialSeen = { length: -1, at: Date.now() };
      }
      const s = await status();
      if (s) {
        const line = `${s.gatewayVersion} slot ${s.bootedSlot} ${s.state}${s.progress ? ` ${JSON.stringify(s.progress)}` : ''}`;
        if (line !== seen || Date.now() - shown > MIN) {
          say(`  status: ${line}`);
          shown = Date.now();
        }
        seen = line;
        if (ok(s)) return s;
      }
      await sleep(3000);
    }
    throw new StepFailed(
      `timed out after ${timeoutMs / 1000} s waiting for ${what}; last status: ${JSON.stringify(last)}`,
    );
  };
  const serialCount = async (text: string) => (await vm.serial()).split(text).length - 1;
  /** The agent checks for a release at every boot: the technician power-cycles the box. */
  const powerCycle = async () => {
    await vm.powerButton();
    await powerOn('BIOS power cycle');
  };

  /** The OVF environment's settings are the appliance's (the first boot applied them). */
  const assertOvfApplied = (s: Status) => {
    const net = s.network.settings;
    if (net.hostname !== HOSTNAME || net.ipv4.mode !== 'static' || net.ipv4.address !== GUEST_IP) {
      throw new StepFailed(`network settings are not the OVF environment's: ${JSON.stringify(s.network)}`);
    }
  };
  const committed = (version: string) => (s: Status) =>
    s.bootedSlot === 'B' && s.result?.outcome === 'committed' && s.result.version === version;

  steps.push({
    name: "UEFI: the OVA's disk (as qcow2) under OVMF: OVF first boot, update 1.0.0 → 1.1.0 via EFI GRUB",
    vm: efiVm,
    run: async () => {
      // The .ova is a ustar archive: .ovf, .mf, then the streamOptimized VMDK vSphere imports.
      const { stdout } = await execFile('tar', ['-tf', ova!]);
      const vmdk = stdout.split('\n').find((n) => n.endsWith('.vmdk'));
      if (!vmdk) throw new StepFailed(`${ova} holds no .vmdk: ${stdout.trim()}`);
      await execFile('tar', ['-xf', ova!, '-C', efiRun, vmdk]);
      await execFile('qemu-img', ['convert', '-f', 'vmdk', '-O', 'qcow2', path.join(efiRun, vmdk), efiDisk]);
      await fs.rm(path.join(efiRun, vmdk));
      await powerOn('UEFI first boot');
      const s = await until('the portal on the OVF address', () => true, 15 * MIN);
      assertOvfApplied(s);
      if (s.platform !== 'virtual') throw new StepFailed(`the OVA's disk says platform ${s.platform}`);
      await until('1.1.0 committed in slot B', committed('1.1.0'), 40 * MIN);
      // The first boot and the update's reboot into slot B both came through OVMF and the EFI
      // GRUB: OVMF's boot manager names what it starts, and the kernel (console=ttyS0) prints its
      // firmware, at every boot. Either line may lose characters on the emulated serial port
      // under load (once "efi: EFI v2.70  EDK II", without its "by"): the larger count holds.
      const serial = await efiVm.serial();
      const count = (re: RegExp) => serial.match(re)?.length ?? 0;
      const uefiBoots = Math.max(count(/BdsDxe: starting Boot/g), count(/efi: EFI v\d/g));
      if (uefiBoots < 2) throw new StepFailed(`the serial log shows ${uefiBoots} UEFI boots, not 2`);
      say(`  ${uefiBoots} boots under OVMF (the serial log: "BdsDxe: starting Boot…", "efi: EFI v…")`);
      await efiVm.powerCut();
    },
  });
  steps.push({
    name: 'first boot applies the OVF environment; tty1 shows the address',
    vm,
    run: async () => {
      await powerOn('BIOS first boot');
      const s = await until('the portal on the OVF address', () => true, 15 * MIN);
      assertOvfApplied(s);
      const deadline = Date.now() + 2 * MIN;
      let screen: string | undefined;
      while (Date.now() < deadline) {
        screen = await vm.tty1();
        if (screen?.includes(GUEST_IP)) break;
        await sleep(2000);
      }
      if (!screen?.includes(GUEST_IP))
        throw new StepFailed(`tty1 does not show ${GUEST_IP}:\n${screen ?? '(nothing)'}`);
      say(
        `  tty1:\n${screen
          .split('\n')
          .slice(0, 12)
          .map((l) => `    | ${l}`)
          .join('\n')}`,
      );
    },
  });
  steps.push({
    name: 'the agent updates 1.0.0 → 1.1.0 into slot B, reboots, commits; the containers start',
    vm,
    run: async () => {
      await until('1.1.0 committed in slot B', committed('1.1.0'), 40 * MIN);
      const s = await until(
        'tunnel and micloud 1.0.0 installed',
        (x) => x.containers.tunnel?.version === '1.0.0' && x.containers.micloud?.version === '1.0.0',
        20 * MIN,
      );
      say(`  containers: ${JSON.stringify(s.containers)}`);
      // Idle: the update done, the containers up, nothing asked of the appliance.
      const from = (await vm.memoryLog()).length;
      await sleep(20_000);
      idle = summarize(parseMemoryLog((await vm.memoryLog()).slice(from)));
    },
  });
  steps.push({
    name: "a broken 1.2.0 is rolled back by GRUB's try counter",
    vm,
    run: async () => {
      await publish(releases['1.2.0']!);
      const before = await serialCount('broken on purpose');
      await powerCycle();
      const s = await until(
        '1.2.0 rolled back',
        (x) => x.result?.version === '1.2.0' && x.result.outcome === 'rolledBack',
        60 * MIN,
      );
      const tries = (await serialCount('broken on purpose')) - before;
      if (tries < 1) throw new StepFailed('the serial log never shows the broken 1.2.0 starting');
      if (s.gatewayVersion !== '1.1.0' || s.bootedSlot !== 'B') {
        throw new StepFailed(
          `after the rollback the appliance runs ${s.gatewayVersion} in slot ${s.bootedSlot}`,
        );
      }
      say(`  1.2.0 was started ${tries} times by GRUB and fell back to slot B each time`);
    },
  });
  steps.push({
    name: 'a power cut in the critical phase → alarm, recovery to factory, the update runs again',
    vm,
    run: async () => {
      await publish(releases['1.3.0']!);
      const crash = path.join(share, 'crash');
      await fs.mkdir(crash, { recursive: true });
      await fs.rm(path.join(crash, 'trace'), { force: true });
      await fs.writeFile(path.join(crash, 'armed'), 'label:critical phase entered\n');
      await powerCycle();
      const deadline = Date.now() + 40 * MIN;
      for (;;) {
        const trace = await fs.readFile(path.join(crash, 'trace'), 'utf8').catch(() => '');
        if (trace.includes('critical phase entered')) break;
        if (Date.now() > deadline)
          throw new StepFailed('the update to 1.3.0 never reached the critical phase');
        await status();
        await sleep(500);
      }
      await vm.powerCut();
      say('  power cut: the agent was frozen at "critical phase entered"');
      await fs.rm(path.join(crash, 'armed'));
      // The update that runs again after the recovery is timed from its own start.
      updates.delete('BIOS 1.3.0');
      await powerOn('BIOS after the power cut');
      factoryReset = Date.now();
      await until('1.3.0 committed after the recovery', committed('1.3.0'), 60 * MIN);
      const s = await until(
        'the alarm raised and recovered',
        (x) =>
          x.alarms.some(
            (a) => a.code === 'CLGW_ALARM_CRITICAL_PHASE_FAILED' && (a.recoveredAt || a.clearedAt),
          ),
        5 * MIN,
      );
      const serial = await vm.serial();
      for (const expected of ['CLGW_ALARM_CRITICAL_PHASE_FAILED', 'booting recovery']) {
        if (!serial.includes(expected)) throw new StepFailed(`the serial log never shows "${expected}"`);
      }
      say(`  alarms: ${JSON.stringify(s.alarms)}`);
    },
  });

  // E2E_STEPS: the first N steps only (each step starts from where the previous one left off).
  steps.splice(STEPS ?? steps.length);
  let passed = 0;
  try {
    for (const step of steps) {
      say(`step ${passed + 1}/${steps.length}: ${step.name}`);
      const stepStarted = Date.now();
      current = step.vm;
      const memoryFrom = (await step.vm.memoryLog()).length;
      let failed = false;
      try {
        await step.run();
      } catch (e) {
        say(`FAILED: ${(e as Error).message}`);
        say(`serial log: ${step.vm.o.serialLog}, its last lines:`);
        for (const line of serialTail(await step.vm.serial(), 25)) say(`  | ${line}`);
        failed = true;
      }
      const samples = parseMemoryLog((await step.vm.memoryLog()).slice(memoryFrom));
      allSamples.push(...samples);
      const summary = summarize(samples);
      say(`  memory: ${summary ? describeMemory(summary) : 'no samples'}`);
      if (failed) break;
      passed++;
      say(`step ${passed}/${steps.length} passed in ${((Date.now() - stepStarted) / 1000).toFixed(0)} s`);
    }
  } finally {
    await efiVm.powerCut();
    await vm.powerCut();
    await mirror.close();
    if (!process.env.E2E_KEEP) for (const d of [disk, efiDisk]) await fs.rm(d, { force: true });
  }
  const overall = summarize(allSamples);
  if (overall) {
    const peakMiB = overall.peak.totalKiB / 1024;
    say(`memory over all steps (1 GiB guest): ${describeMemory(overall)}`);
    say(
      `  goal: clgw processes ≤ ${PSS_GOAL_MIB} MiB PSS at any moment: ${peakMiB <= PSS_GOAL_MIB ? 'met' : 'NOT met'}`,
    );
  }
  if (idle) say(`memory at idle (step 3's end, 20 s): ${describeMemory(idle)}`);
  for (const line of times) say(`time (TCG, 2 vCPUs): ${line}`);
  if (firmwareResets > 0) say(`firmware hangs after a reboot, reset by the harness: ${firmwareResets}`);
  process.stdout.write(
    `e2e: passed ${passed}/${steps.length} steps in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
  );
  return passed === steps.length ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`e2e: ${(e as Error).stack ?? e}\n`);
    process.stdout.write(
      `e2e: passed 0/${Math.min(STEPS ?? ALL_STEPS, ALL_STEPS)} steps in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
    );
    process.exit(1);
  },
);
