/**
 * The power-cut torture test: runs each scenario on a simulated appliance through the boot
 * emulator, cuts the power (every process of the appliance SIGKILLed, un-synced bytes lost) at
 * every persisted step and at random instants inside long writes, powers it on again, lets it run
 * to the end and checks the invariants. README.md in this directory explains the model.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isClgwError } from '@clgw/core/errors.js';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { type AppliancePaths, appliancePaths, type SlotName } from '@clgw/core/platform/paths.js';
import type { ContainerName } from '@clgw/core/release/schema.js';
import { describeSlots } from '@clgw/core/slot/bootchooser.js';
import { readGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { AgentClient } from '../../agent/src/api/client.js';
import { readContainersState } from '../../agent/src/containers/state.js';
import { readSlotStatus, type SlotStatus } from '../../agent/src/slot/status.js';
import { CRITICAL_PHASE_ALARM, readAlarms } from '../../agent/src/state/alarms.js';
import { readJournal } from '../../agent/src/state/journal-file.js';
import { readStoredRevocations } from '../../agent/src/state/revocations.js';
import { readStoredRotation } from '../../agent/src/state/root-rotation.js';
import { collectStatus, type Status } from '../../agent/src/status.js';
import { publishContainers } from '../../image/src/release/build.js';
import { revokeCertificates, rotateRoot, signDocument } from '../../image/src/release/index.js';
import { engineUnavailable } from '../../scripts/lib/engine.js';
import { type Mirror, startMirror } from '../../scripts/lib/mirror.js';
import { runAppliance } from '../../scripts/sim/boot-emulator.js';
import { buildStandin, type StandinArchive } from '../../scripts/standins.js';
import { makeWorld, REPO, testImages, type World } from '../support/appliance.js';
import { CaseEngine, checkContainers, containerRun, engineConfig, installContainers } from './containers.js';
import { type ArmSpec, CrashDir, killTree, processState, signal, sleep, waitFrozen } from './crash.js';
import { applyDurabilityLoss, FsRecord } from './durability.js';
import { applyLoss, RecoveryWrites } from './loss.js';
import { Rng, seedOf } from './rng.js';
import {
  CONTAINER_TREES,
  type ContainerTreeName,
  type Expected,
  type Outcome,
  SCENARIO_NAMES,
  SCENARIOS,
  type Scenario,
  type ScenarioName,
  seededDigests,
  seedUserData,
  type TemplateName,
  TRUST_REVOKED,
  type TreeExpectation,
  type TreeName,
  treeDigest,
} from './scenarios.js';
import { type CallersRecord, CaseVoice, callers, writeEslStandin } from './voice.js';

/** The boot emulator's own guard against a boot loop, per power-on. */
const MAX_BOOTS_PER_POWER_ON = 10;
/** Invariant 5: boots from the last power-on to the end (the worst path is alarm → recovery → factory → new slot). */
export const BOOTS_TO_FINISH = 6;
/** Power-ons per case (the cuts plus the one that runs to the end); more means a loop. */
const MAX_POWER_ONS = 5;
/** One power-on must reach the end (or the next cut) within this. */
const POWER_ON_TIMEOUT_MS = 120_000;
/** Settled but not where it should be for this long: it will not get there by itself. */
const STUCK_MS = 8_000;
/** The paced mirror (random cuts inside the download): 26 MiB of artifacts take about 0.8 s. */
const PACED_BYTES_PER_SECOND = 32 * 1024 * 1024;

/** Where the cut falls. `point` counts crash points from arming (for `critical`: after its first cut). */
export type CutSpec =
  | { kind: 'none' }
  | { kind: 'point'; n: number }
  /** When the download's progress reaches `bytes` (of boot + root), then `delayMs` later. */
  | { kind: 'offset'; bytes: number; delayMs: number }
  /** When the recovery program reports `percent` of `file` written, then `delayMs` later. */
  | { kind: 'recovery'; file: 'boot.img' | 'root.img'; percent: number; delayMs: number }
  /** This long after arming (or, for `critical`, after the power-on that follows its first cut). */
  | { kind: 'time'; ms: number }
  /** Voice scenarios: `delayMs` after the appliance is first seen waiting for the calls up. */
  | { kind: 'calls'; delayMs: number };

export interface CaseSpec {
  key: string;
  scenario: ScenarioName;
  cut: CutSpec;
}

/** 0 is the harness itself failing; 1–9 are the invariants of README.md. */
export interface Violation {
  invariant: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;
  message: string;
}

export interface CutRecord {
  what: string;
  victim: 'agent' | 'recovery';
  /** The durable journal at the cut hit the critical phase. */
  critical: boolean;
  journal: string;
  grubenv: string;
  /** What the loss model destroyed. */
  lost: string;
  /** Container scenarios: the containers the engine holds when the power comes back. */
  engine?: string;
}

export interface CaseResult {
  key: string;
  scenario: ScenarioName;
  /** The run's seed (the case's own PRNG is derived from it and the key). */
  seed: number;
  cuts: CutRecord[];
  /** The planned cut never came (the run ended first). */
  missed: boolean;
  violations: Violation[];
  boots: number;
  /** The boot emulator's narration (each line prefixed with its power-on), for failure reports. */
  narration: string[];
  /** Crash points counted from arming to the end (for `critical`: after its first cut). */
  points: number;
  /** Their labels in order, `#n label` (cut-free passes only). */
  trace: string[];
  /** Milliseconds from arming (as above) to the end. */
  armedMs: number;
  ms: number;
}

interface Release {
  version: string;
  bootSize: number;
  rootSize: number;
  bootSha: string;
  rootSha: string;
}

/** What every case shares: mirrors, templates, the releases an appliance may legitimately boot. */
export interface Env {
  work: string;
  templates: Record<TemplateName, string>;
  /** The mirror serving `tree`; `paced` slows the artifacts down (random cuts inside the download). */
  baseUrl(tree: TreeName, paced: boolean): string;
  releases: Release[];
  /** Factory image sizes by file name (the recovery program's slot writes). */
  factorySizes: Record<string, number>;
  /** Bytes of a release download (boot + root; every test release has the same sizes). */
  downloadBytes: number;
  /** The image reference of a service's stand-in (what compat.yaml names for that version). */
  imageOf(service: ContainerName, version: string): string;
  /** The event socket stand-in's program (when a voice scenario runs). */
  eslStandin?: string;
  close(): Promise<void>;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function release(version: string, broken = false): Promise<Release> {
  const images = await testImages(version, { brokenHealth: broken });
  const boot = await fs.readFile(images.boot);
  const root = await fs.readFile(images.root);
  return {
    version,
    bootSize: boot.length,
    rootSize: root.length,
    bootSha: sha256(boot),
    rootSha: sha256(root),
  };
}

async function copyTree(from: string, to: string): Promise<void> {
  await execFile('cp', ['-a', '--sparse=always', from, to]);
}

async function patchConfig(paths: AppliancePaths, patch: Record<string, unknown>): Promise<void> {
  const config = JSON.parse(await fs.readFile(paths.config, 'utf8')) as Record<string, unknown>;
  await writeJsonAtomic(paths.config, { ...config, ...patch });
}

/**
 * Builds the mirrors and the template appliance roots: three release trees (1.1.0, a 1.1.0 that
 * fails its health check, 1.2.0), each served at full speed and paced, and the container trees
 * (the 1.1.0 tree whose compat.yaml also names the stand-in containers of `CONTAINER_TREES`);
 * `fresh`/`fresh-broken` are factory appliances with onboarding data and network configuration;
 * `committed` is `fresh` after its update (run without cuts and checked like any case).
 */
export async function setupEnv(
  say: (line: string) => void = () => undefined,
  opts: { containers?: boolean; voice?: boolean } = {},
): Promise<Env> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-pc-'));
  const worlds: World[] = [];
  const mirrors: Mirror[] = [];
  const close = async () => {
    for (const m of mirrors) await m.close();
    for (const w of worlds) await w.close();
    await fs.rm(work, { recursive: true, force: true });
  };
  try {
    const tlsDir = path.join(REPO, '.cache/test/tls');
    const mirrorOf: Record<string, string> = {};
    const trees: [TreeName, string, boolean][] = [
      ['good', '1.1.0', false],
      ['broken', '1.1.0', true],
      ['next', '1.2.0', false],
    ];
    const worldOf: Partial<Record<TreeName, World>> = {};
    for (const [tree, version, isBroken] of trees) {
      const w = await makeWorld({ boot: false, config: { updateAtBoot: true } });
      worlds.push(w);
      await w.publish(version, { broken: isBroken });
      worldOf[tree] = w;
      const paced = await startMirror({ tree: w.tree, tlsDir, rateBytesPerSecond: PACED_BYTES_PER_SECOND });
      mirrors.push(paced);
      mirrorOf[`${tree}`] = `${w.mirror.url}/`;
      mirrorOf[`${tree} paced`] = `${paced.url}/`;
    }
    const good = worldOf.good!;
    const broken = worldOf.broken!;
    // The 1.1.0 tree with a signed compat.yaml built to exhaust the parser (issue #19).
    const hostileTree = path.join(work, 'hostile-tree');
    await copyTree(good.tree, hostileTree);
    const deep = Buffer.from(`schema: 1\nx: ${'['.repeat(40_000)}${']'.repeat(40_000)}\n`);
    await fs.writeFile(path.join(hostileTree, 'compat.yaml'), deep);
    await fs.writeFile(path.join(hostileTree, 'compat.yaml.sig'), signDocument(deep, good.keys));
    const hostile = await startMirror({ tree: hostileTree, tlsDir });
    mirrors.push(hostile);
    mirrorOf.hostile = `${hostile.url}/`;
    mirrorOf['hostile paced'] = mirrorOf.hostile;
    // The 1.1.0 tree re-published twice by the vendor's offline root: a revocation list, then a
    // root rotation — both carried in compat.yaml.sig from then on (issue #23).
    const trustTree = path.join(work, 'trust-tree');
    await copyTree(good.tree, trustTree);
    const rootKeyPem = good.keys.root.keyPem!;
    await revokeCertificates({ tree: trustTree, keys: good.keys, rootKeyPem, serials: [TRUST_REVOKED] });
    await rotateRoot({
      tree: trustTree,
      keys: good.keys,
      rootKeyPem,
      newRootOut: path.join(work, 'trust-new-root'),
    });
    const trust = await startMirror({ tree: trustTree, tlsDir });
    mirrors.push(trust);
    mirrorOf.trust = `${trust.url}/`;
    mirrorOf['trust paced'] = mirrorOf.trust;
    // Only when a container scenario runs (the stand-ins need Debian's busybox-static).
    const standins = opts.containers
      ? await containerTrees(work, good, mirrors, mirrorOf, tlsDir)
      : new Map<string, StandinArchive>();

    const templates = {
      fresh: path.join(work, 't-fresh'),
      'fresh-broken': path.join(work, 't-fresh-broken'),
      committed: path.join(work, 't-committed'),
    };
    await copyTree(good.root, templates.fresh);
    await copyTree(broken.root, templates['fresh-broken']);
    await seedUserData(appliancePaths(templates.fresh));
    await seedUserData(appliancePaths(templates['fresh-broken']));

    const releases = [
      await release('1.0.0'),
      await release('1.1.0'),
      await release('1.1.0', true),
      await release('1.2.0'),
    ];
    const factory = releases[0]!;
    const next = releases[1]!;
    const env: Env = {
      work,
      templates,
      baseUrl: (tree, isPaced) => mirrorOf[isPaced ? `${tree} paced` : tree]!,
      releases,
      factorySizes: { 'boot.img': factory.bootSize, 'root.img': factory.rootSize },
      downloadBytes: next.bootSize + next.rootSize,
      imageOf: (service, version) => {
        const a = standins.get(`${service} ${version}`);
        if (!a) throw new Error(`no stand-in for ${service} ${version} in CONTAINER_TREES`);
        return a.reference;
      },
      ...(opts.voice ? { eslStandin: await writeEslStandin(work) } : {}),
      close,
    };

    say('powercut: preparing the committed template (1.1.0 on slot B)');
    await copyTree(templates.fresh, templates.committed);
    const prep = await runOnRoot(
      env,
      templates.committed,
      { key: 'template', scenario: 'update', cut: { kind: 'none' } },
      0,
    );
    if (prep.violations.length > 0) {
      throw new Error(`the committed template did not come out right: ${describeViolations(prep)}`);
    }
    // What is left of that run besides the appliance's disks: its tmpfs and the crash counters.
    await fs.rm(appliancePaths(templates.committed).runDir, { recursive: true, force: true });
    await fs.rm(`${templates.committed}.crash`, { recursive: true, force: true });
    return env;
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The container trees of {@link CONTAINER_TREES}: the stand-in archives (built once per run into
 * .cache/test/standins; deterministic, so the files are the same each run), each tree a copy of
 * the `good` tree with the containers published into it. Serials: the base tree's above the good
 * tree's (which the templates accepted), the offered trees' above the base tree's (which the
 * cases accept when their containers are installed). Served at full speed only (no downloads to
 * cut inside). Returns the archives by `service version`.
 */
async function containerTrees(
  work: string,
  good: World,
  mirrors: Mirror[],
  mirrorOf: Record<string, string>,
  tlsDir: string,
): Promise<Map<string, StandinArchive>> {
  const out = path.join(REPO, '.cache/test/standins');
  const standins = new Map<string, StandinArchive>();
  let baseSerial: number | undefined;
  // The base tree first: the others' serial follows from its.
  const names = Object.keys(CONTAINER_TREES) as ContainerTreeName[];
  for (const name of ['containers-base' as const, ...names.filter((n) => n !== 'containers-base')]) {
    const offers = CONTAINER_TREES[name];
    const tree = path.join(work, `tree-${name}`);
    await copyTree(good.tree, tree);
    const containers = [];
    for (const o of offers) {
      const archive = await buildStandin({ service: o.service, version: o.version, broken: o.broken, out });
      standins.set(`${o.service} ${o.version}`, archive);
      containers.push({
        name: o.service,
        version: o.version,
        image: archive.reference,
        archive: archive.file,
      });
    }
    const { compat } = await publishContainers({
      tree,
      keys: good.keys,
      platforms: ['physical', 'virtual', 'kvm'],
      containers,
      ...(baseSerial === undefined ? {} : { serial: baseSerial + 1 }),
    });
    baseSerial ??= compat.serial;
    const mirror = await startMirror({ tree, tlsDir });
    mirrors.push(mirror);
    mirrorOf[name] = `${mirror.url}/`;
    mirrorOf[`${name} paced`] = `${mirror.url}/`;
  }
  return standins;
}

/** Whether the durable state is inside the critical phase with the boot environment already switched. */
async function criticalAndSwitched(paths: AppliancePaths): Promise<boolean> {
  const j = await readJournal(paths.journal).catch(() => undefined);
  if (!j?.target || j.state !== 'switching' || !j.critical?.enteredAt || j.critical.leftAt) return false;
  const env = await readGrubenv(paths.grubenv).catch(() => undefined);
  const slot = j.target.slot;
  return env?.get('ORDER')?.split(' ')[0] === slot && env.get(`${slot}_OK`) === '1';
}

function describeJournal(j: Awaited<ReturnType<typeof readJournal>>): string {
  if (!j) return 'none';
  const parts: string[] = [j.state];
  if (j.target) parts.push(`${j.target.version}→${j.target.slot}`);
  if (j.written) parts.push(`written=${j.written.boot}/${j.written.root}`);
  if (j.critical) parts.push(`critical=${j.critical.leftAt ? 'left' : 'entered'}`);
  if (j.recovery) parts.push(`recovery=${j.recovery.reason}`);
  if (j.rollback) parts.push('rollback');
  return parts.join(' ');
}

/** Which release a slot holds (both partitions byte for byte), memoized by the files' size and mtime. */
class SlotContent {
  private readonly memo = new Map<string, string | undefined>();

  constructor(private readonly releases: Release[]) {}

  async held(paths: AppliancePaths, slot: SlotName): Promise<string | undefined> {
    const files = [paths.partition('boot', slot), paths.partition('root', slot)];
    const stats = await Promise.all(files.map((f) => fs.stat(f)));
    const key = files.map((f, i) => `${f}:${stats[i]!.size}:${stats[i]!.mtimeMs}`).join('|');
    if (this.memo.has(key)) return this.memo.get(key);
    const [boot, root] = await Promise.all(files.map((f) => fs.readFile(f)));
    const held = this.releases.find(
      (r) =>
        sha256(boot!.subarray(0, r.bootSize)) === r.bootSha &&
        sha256(root!.subarray(0, r.rootSize)) === r.rootSha,
    )?.version;
    this.memo.set(key, held);
    return held;
  }
}

/**
 * Invariant 1: the slot GRUB just chose (`chosen`) and every slot it may boot next (by GRUB's own
 * rules: `describeSlots(...).bootable` unless recovery is requested, and `next`, which includes
 * the last resort) is marked good and holds a
 * complete release — boot and root of one known release, byte for byte — and slot-status, when it
 * has a record for it, names that release. Checked at every boot and after every cut (once the
 * un-synced bytes are gone), so a slot that is written while still bootable is caught even when
 * nothing happens to boot it.
 */
async function checkBootable(
  paths: AppliancePaths,
  content: SlotContent,
  when: string,
  chosen?: SlotName,
): Promise<string[]> {
  const out: string[] = [];
  const vars = await readGrubenv(paths.grubenv).catch(() => undefined);
  if (!vars) return out; // GRUB goes to recovery; invariant 2 judges the end.
  const d = describeSlots(vars);
  const slots: SlotStatus = await readSlotStatus(paths.slotStatus).catch(() => ({}));
  for (const slot of ['A', 'B'] as const) {
    const what = slot === chosen ? `GRUB chose slot ${slot}, which` : `slot ${slot} (bootable)`;
    if (slot === chosen && !d[slot].ok) {
      out.push(`${when}: GRUB chose slot ${slot} without ${slot}_OK=1`);
      continue;
    }
    // Bootable untried, or GRUB's next choice (which may be the last good slot as the last resort).
    if (slot !== chosen && (d.recovery || !d[slot].bootable) && d.next !== slot) continue;
    const held = await content.held(paths, slot);
    if (!held) out.push(`${when}: ${what} holds no complete release`);
    else if (slots[slot] && slots[slot].version !== held) {
      out.push(`${when}: ${what} holds ${held} but slot-status says ${slots[slot].version}`);
    }
  }
  return out;
}

function treeMatches(
  actual: Record<string, string>,
  expected: TreeExpectation,
  top: string,
): string | undefined {
  const want = expected === 'intact' ? seededDigests(top) : expected === 'erased' ? {} : expected.files;
  const a = JSON.stringify(Object.entries(actual).sort());
  const w = JSON.stringify(Object.entries(want).sort());
  if (a === w) return undefined;
  const names = Object.keys(actual).sort().join(', ') || 'nothing';
  return `${top}/ should be ${typeof expected === 'string' ? expected : 'as given'} but holds ${names}${expected === 'intact' && Object.keys(actual).length === Object.keys(want).length ? ' (content differs)' : ''}`;
}

function checkAsExpected(s: Status, check: NonNullable<Expected['check']>): boolean {
  return s.check?.outcome === check.outcome && s.check?.error?.code === check.code;
}

/** Invariants 2–6 on the powered-off appliance (its container engine still running) at the end of a case. */
async function checkEnd(
  env: Env,
  paths: AppliancePaths,
  sc: Scenario,
  st: CaseState,
  bootsAfterLastPowerOn: number,
): Promise<Violation[]> {
  const out: Violation[] = [];
  const v = (invariant: Violation['invariant'], message: string) => out.push({ invariant, message });
  const exp = sc.expect(st);
  if (st.voice && st.voice.callers.waits === 0) v(7, 'the update never waited for the calls up');
  const status = await collectStatus(paths);
  if (status.state !== 'idle') v(2, `the journal ends in state ${status.state}`);
  if ((exp.slot && status.bootedSlot !== exp.slot) || status.gatewayVersion !== exp.version) {
    v(
      2,
      `ends on slot ${status.bootedSlot} with ${status.gatewayVersion}, expected ${exp.slot ? `slot ${exp.slot} with ` : ''}${exp.version}`,
    );
  }
  if (status.result?.outcome !== exp.result.outcome || status.result.version !== exp.result.version) {
    v(
      2,
      `last result ${status.result?.outcome} ${status.result?.version}, expected ${exp.result.outcome} ${exp.result.version}`,
    );
  }
  if (exp.check && !checkAsExpected(status, exp.check)) {
    v(
      2,
      `last check ${status.check?.outcome} ${status.check?.error?.code ?? ''}, expected ${exp.check.outcome} ${exp.check.code}`,
    );
  }
  const vars = await readGrubenv(paths.grubenv).catch(() => undefined);
  const slot = status.bootedSlot;
  if (!vars) v(2, 'the boot environment cannot be read');
  else if (slot && (vars.get(`${slot}_OK`) !== '1' || vars.get(`${slot}_TRY`) !== '0')) {
    v(
      2,
      `grubenv has ${slot}_OK=${vars.get(`${slot}_OK`)} ${slot}_TRY=${vars.get(`${slot}_TRY`)} for the booted slot`,
    );
  } else if (vars.get('CLGW_RECOVERY') === '1') v(2, 'grubenv still asks for recovery');
  // Settled, no slot is still on trial: one left `_OK=1 _TRY=1` can never be fallen back to.
  for (const s of ['A', 'B'] as const) {
    if (s !== slot && vars?.get(`${s}_OK`) === '1' && vars.get(`${s}_TRY`) !== '0') {
      v(
        2,
        `grubenv leaves slot ${s} marked good but tried (${s}_OK=1 ${s}_TRY=${vars.get(`${s}_TRY`)}): no fallback`,
      );
    }
  }
  const slots: SlotStatus = await readSlotStatus(paths.slotStatus).catch(() => ({}));
  const record = slot ? slots[slot] : undefined;
  if (record?.version !== status.gatewayVersion) {
    v(
      2,
      `slot-status says slot ${slot} holds ${record?.version ?? 'nothing'}, it runs ${status.gatewayVersion}`,
    );
  }

  const onboarding = treeMatches(await treeDigest(paths.onboardingDir), exp.onboarding, 'onboarding');
  if (onboarding) v(3, onboarding);
  const network = treeMatches(await treeDigest(path.join(paths.dataDir, 'network')), exp.network, 'network');
  if (network) v(3, network);

  const alarms = (await readAlarms(paths.alarms).catch(() => [])).filter(
    (a) => a.code === CRITICAL_PHASE_ALARM,
  );
  if (alarms.length !== st.criticalCuts) {
    v(
      4,
      `${alarms.length} ${CRITICAL_PHASE_ALARM} raised, the cuts interrupted ${st.criticalCuts} switch(es)`,
    );
  }
  if (alarms.some((a) => !a.recoveredAt)) v(4, `${CRITICAL_PHASE_ALARM} not marked recovered`);
  if (alarms.some((a) => Boolean(a.clearedAt) !== exp.alarmsCleared)) {
    v(4, `${CRITICAL_PHASE_ALARM} ${exp.alarmsCleared ? 'not cleared' : 'cleared'} at the end`);
  }
  const recoveryExpected = st.criticalCuts > 0 || sc.request?.takesEffect === 'recovery';
  if (recoveryExpected !== st.recoveryBoots > 0) {
    v(
      4,
      `the recovery system ran ${st.recoveryBoots} time(s), ${recoveryExpected ? 'expected' : 'not expected'}`,
    );
  }

  if (bootsAfterLastPowerOn > BOOTS_TO_FINISH) {
    v(5, `${bootsAfterLastPowerOn} boots from the last power-on to the end (at most ${BOOTS_TO_FINISH})`);
  }

  if (exp.containers) {
    if (!st.engine) v(0, 'a container scenario ran without its engine');
    else for (const m of await checkContainers(paths, st.engine, exp.containers, env.imageOf)) v(6, m);
  }
  if (exp.trust) for (const m of await checkTrust(paths, status, exp.trust)) v(8, m);
  return out;
}

/**
 * Invariant 8: the appliance ends trusting the vendor — its last check up to date, so neither
 * adoption left it trusting nothing — and never a revoked key: the stored list verifies against
 * the pinned roots and revokes `revoked`; the stored rotation verifies (read as the agent reads
 * them, so a torn or unverifiable file fails here as it would refuse every update).
 */
async function checkTrust(
  paths: AppliancePaths,
  status: Status,
  exp: NonNullable<Expected['trust']>,
): Promise<string[]> {
  const out: string[] = [];
  if (status.check?.outcome !== 'upToDate')
    out.push(`the last check ended ${status.check?.outcome ?? 'never'}: ${status.check?.message ?? ''}`);
  const roots = await fs.readFile(paths.trustedRoots, 'utf8');
  const list = await readStoredRevocations(paths.revocations, roots).catch((e: Error) => e);
  if (list instanceof Error) out.push(`the stored revocation list: ${list.message}`);
  else if (!list) out.push('no revocation list stored');
  else {
    const missing = exp.revoked.filter((serial) => !list.list.serials.includes(serial));
    if (missing.length > 0) out.push(`the stored revocation list does not revoke ${missing.join(', ')}`);
  }
  const rotation = await readStoredRotation(paths.rootRotation, roots, Date.now()).catch((e: Error) => e);
  if (rotation instanceof Error) out.push(`the stored root rotation: ${rotation.message}`);
  else if (exp.rotated && !rotation) out.push('no root rotation stored');
  return out;
}

interface CaseState extends Outcome {
  content: SlotContent;
  /** `critical.enteredAt` of each interrupted switch a cut found (a later cut may find the same one). */
  criticalEpisodes: Set<string>;
  narration: string[];
  cuts: CutRecord[];
  violations: Violation[];
  boots: number;
  recoveryBoots: number;
  armedAt: number | undefined;
  /** The count of crash points at the first (critical) cut: `point` cuts count from there. */
  base: number;
  firstCutPending: boolean;
  cutPending: boolean;
  request: { issued: boolean; acked: boolean; acceptedOn: number; recoverySince: boolean };
  /** The case's container engine (container scenarios). */
  engine: CaseEngine | undefined;
  /** The case's voice service and what its callers saw (`voice` scenarios). */
  voice: { service: CaseVoice; callers: CallersRecord } | undefined;
}

type PowerOnEnd =
  | { kind: 'cut' }
  | { kind: 'end' }
  | { kind: 'stopped'; why: string }
  | { kind: 'stuck' | 'timeout'; status: Status | undefined };

/** Runs one case on a fresh copy of its template; never throws (a harness failure is invariant 0). */
export async function runCase(env: Env, spec: CaseSpec, runSeed: number): Promise<CaseResult> {
  const started = Date.now();
  const dir = await fs.mkdtemp(path.join(env.work, 'c'));
  try {
    const root = path.join(dir, 'r');
    await copyTree(env.templates[SCENARIOS[spec.scenario].template], root);
    return await runOnRoot(env, root, spec, runSeed);
  } catch (e) {
    return {
      key: spec.key,
      scenario: spec.scenario,
      seed: runSeed,
      cuts: [],
      missed: true,
      violations: [{ invariant: 0, message: `harness error: ${(e as Error).stack ?? String(e)}` }],
      boots: 0,
      narration: [],
      points: 0,
      trace: [],
      armedMs: 0,
      ms: Date.now() - started,
    };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function runOnRoot(env: Env, root: string, spec: CaseSpec, runSeed: number): Promise<CaseResult> {
  const started = Date.now();
  const sc = SCENARIOS[spec.scenario];
  const seed = runSeed;
  const rng = new Rng(seedOf(runSeed, spec.key));
  const paths = appliancePaths(root);
  const crash = new CrashDir(path.join(path.dirname(root), `${path.basename(root)}.crash`));
  await fs.rm(crash.dir, { recursive: true, force: true });
  await patchConfig(paths, {
    platform: sc.platform,
    baseUrl: env.baseUrl(sc.tree, spec.cut.kind === 'offset'),
  });
  const st: CaseState = {
    content: new SlotContent(env.releases),
    criticalCuts: 0,
    criticalEpisodes: new Set(),
    narration: [],
    cuts: [],
    violations: [],
    boots: 0,
    recoveryBoots: 0,
    armedAt: undefined,
    base: 0,
    firstCutPending: sc.firstCut !== undefined,
    cutPending: spec.cut.kind !== 'none',
    request: { issued: false, acked: false, acceptedOn: -1, recoverySince: false },
    engine: undefined,
    voice: undefined,
  };
  const armSpec = (): ArmSpec =>
    st.firstCutPending ? 'step' : st.cutPending && spec.cut.kind === 'point' ? st.base + spec.cut.n : 'count';

  let endedAt = Date.now();
  let lastPowerOnBoots = 0;
  let result: PowerOnEnd = { kind: 'stopped', why: 'never powered on' };
  try {
    if (sc.containers) await setUpContainers(env, paths, sc, spec, st, `${root}.engine`);
    if (sc.voice) {
      if (!env.eslStandin)
        throw new Error('a voice scenario in a run set up without the event socket stand-in');
      const service = await CaseVoice.start(env.eslStandin, `${root}.voice`, paths);
      st.voice = { service, callers: { waits: 0, deadline: undefined, waiting: false } };
      await patchConfig(paths, service.config());
    }
    for (let powerOn = 0; ; powerOn++) {
      if (powerOn >= MAX_POWER_ONS) {
        st.violations.push({ invariant: 5, message: `still not finished after ${MAX_POWER_ONS} power-ons` });
        break;
      }
      if (st.engine && powerOn > 0) {
        // The power comes back: the engine starts (with the appliance) before the agent does.
        await st.engine.start();
        const last = st.cuts.at(-1);
        if (last) last.engine = `${last.engine}; at power-on: ${await st.engine.describe()}`;
      }
      if (sc.armAt === 'power-on' && powerOn === 0) await crash.arm(armSpec());
      if (sc.armAt === 'power-on' && (powerOn === 0 || (sc.firstCut && st.cuts.length === 1))) {
        st.armedAt = Date.now();
      }
      const boots = { n: 0 };
      result = await powerOnce(env, paths, sc, spec, st, crash, rng, armSpec, powerOn, boots);
      lastPowerOnBoots = boots.n;
      endedAt = Date.now();
      if (result.kind !== 'cut') break;
      // The next power-on: a further cut planned (after the first one of `critical`), or count only.
      await crash.arm(armSpec());
    }
    if (result.kind === 'end') {
      st.violations.push(...(await checkEnd(env, paths, sc, st, lastPowerOnBoots)));
    } else if (result.kind === 'stopped') {
      st.violations.push({
        invariant: result.why.startsWith('stopped after') || result.why.includes('keeps failing') ? 5 : 2,
        message: `the appliance stopped by itself: ${result.why}`,
      });
    } else if (result.kind === 'stuck' || result.kind === 'timeout') {
      const s = result.status;
      st.violations.push({
        invariant: 2,
        message: `${result.kind === 'stuck' ? 'settled' : 'timed out'} in state ${s?.state ?? '(agent down)'} on slot ${s?.bootedSlot} with ${s?.gatewayVersion}${s?.error ? `: ${s.error.code}: ${s.error.message}` : ''}${sc.containers ? `; ${await describeContainerRun(paths)}` : ''}`,
      });
    }
    if (sc.firstCut && st.firstCutPending) {
      st.violations.push({ invariant: 0, message: 'the run never reached the critical phase (first cut)' });
    }
  } catch (e) {
    st.violations.push({ invariant: 0, message: `harness error: ${(e as Error).stack ?? String(e)}` });
  } finally {
    await st.engine?.close().catch((e: Error) => {
      st.violations.push({ invariant: 0, message: `harness error: closing the engine: ${e.stack ?? e}` });
    });
    await st.voice?.service.close();
  }
  return {
    key: spec.key,
    scenario: spec.scenario,
    seed,
    cuts: st.cuts,
    missed: st.cutPending,
    violations: st.violations,
    boots: st.boots,
    narration: st.narration,
    points: (await crash.count()) - st.base,
    trace:
      spec.cut.kind === 'none'
        ? (await crash.trace()).filter((p) => p.n > st.base).map((p) => `#${p.n - st.base} ${p.label}`)
        : [],
    armedMs: st.armedAt === undefined ? 0 : endedAt - st.armedAt,
    ms: Date.now() - started,
  };
}

/**
 * Before the first power-on of a container scenario: the case's engine, the appliance pointed at
 * it (socket, health ports, a 5 s health deadline), the `containers-base` containers installed
 * by the agent's own code from that tree's mirror, then the mirror switched to the scenario's.
 */
async function setUpContainers(
  env: Env,
  paths: AppliancePaths,
  sc: Scenario,
  spec: CaseSpec,
  st: CaseState,
  dir: string,
): Promise<void> {
  st.engine = await CaseEngine.create(dir);
  await patchConfig(paths, { ...engineConfig(st.engine), baseUrl: env.baseUrl('containers-base', false) });
  await installContainers(
    paths,
    CONTAINER_TREES['containers-base'].map((o) => o.service),
  );
  await patchConfig(paths, { baseUrl: env.baseUrl(sc.tree, spec.cut.kind === 'offset') });
}

/** containers.json's run and last run, for a report. */
async function describeContainerRun(paths: AppliancePaths): Promise<string> {
  const c = await readContainersState(paths.containersState).catch((e: Error) => e);
  if (c instanceof Error) return `containers.json unreadable: ${c.message}`;
  const step = c.run?.step as { kind?: string; service?: string } | undefined;
  const run = c.run ? `run under way${step ? ` at ${step.kind} ${step.service}` : ''}` : 'no run under way';
  const last = c.lastRun
    ? `last run ${c.lastRun.outcome} at ${c.lastRun.at}${c.lastRun.error ? ` (${c.lastRun.error.code}: ${c.lastRun.error.message})` : ''}`
    : 'no run recorded';
  return `containers: ${run}, ${last}`;
}

/** One power-on of the appliance, until a cut, the end, or a failure to get there. */
async function powerOnce(
  env: Env,
  paths: AppliancePaths,
  sc: Scenario,
  spec: CaseSpec,
  st: CaseState,
  crash: CrashDir,
  rng: Rng,
  armSpec: () => ArmSpec,
  powerOn: number,
  boots: { n: number },
): Promise<PowerOnEnd> {
  const writes = new RecoveryWrites(env.factorySizes);
  const content = st.content;
  const poweredOnAt = Date.now();
  let recoveryMark: { file: string; percent: number } | undefined;
  // What the appliance's processes change on disk, from each boot on (a boot follows a reboot,
  // which syncs, or a cut whose loss has been applied: either way everything before it is durable).
  const record = new FsRecord(path.join(crash.dir, 'fs'), paths);
  const appliance = runAppliance({
    root: paths.root,
    portal: false,
    env: { ...crash.env(), ...record.env() },
    maxBoots: MAX_BOOTS_PER_POWER_ON,
    say: (line) => {
      st.narration.push(`[${powerOn}] ${line}`);
      writes.line(line);
      const m = /^recovery: writing (\S+): (\d+)%$/.exec(line);
      if (m) recoveryMark = { file: m[1]!, percent: Number(m[2]) };
    },
    onBoot: async (o, n) => {
      await record.reset();
      boots.n = n;
      st.boots++;
      if (o.kind === 'recovery') {
        st.recoveryBoots++;
        if (st.request.issued) st.request.recoverySince = true;
      }
      if (o.kind === 'noKernel') {
        st.violations.push({
          invariant: 1,
          message: `boot ${st.boots}: GRUB chose slot ${o.slot}, which holds no kernel`,
        });
      }
      const when = `boot ${st.boots}`;
      for (const m of await checkBootable(paths, content, when, o.kind === 'booted' ? o.slot : undefined)) {
        st.violations.push({ invariant: 1, message: m });
      }
    },
  });
  const client = new AgentClient(paths.socket, 5000);
  // The first watcher to claim the power-on decides how it ends; the others see it and return.
  let claimed = false;
  const claim = () => {
    if (claimed) return false;
    claimed = true;
    return true;
  };
  const live = () => !claimed;
  let settle: (end: PowerOnEnd) => void = () => undefined;
  const ended = new Promise<PowerOnEnd>((resolve) => {
    settle = resolve;
  });
  let stopped = false;
  void appliance.done.then((why) => {
    stopped = true;
    if (claim()) settle({ kind: 'stopped', why });
  });

  const livePid = async (): Promise<number | undefined> => {
    const pid = appliance.agentPid() ?? appliance.recoveryPid();
    if (pid === undefined) return undefined;
    const state = await processState(pid);
    return state === undefined || state === 'Z' ? undefined : pid;
  };

  /**
   * Power off now, at `pid` if it still runs, else at the next program the emulator starts (a
   * stop requested while the emulator is between programs would be missed by it). The process is
   * frozen first; the emulator is told to stop before anything can make it go on; then the process
   * tree is killed. Returns the process that was cut.
   */
  const powerOff = async (
    pid?: number,
  ): Promise<{ pid: number; victim: 'agent' | 'recovery' } | undefined> => {
    for (let first = pid; !stopped; first = undefined) {
      const p = first ?? (await livePid());
      if (p !== undefined && signal(p, 'SIGSTOP') && (await waitFrozen(p))) {
        const victim = p === appliance.recoveryPid() ? 'recovery' : 'agent';
        const stopping = appliance.stop();
        await killTree(p);
        await stopping;
        return { pid: p, victim };
      }
      await sleep(5);
    }
    return undefined;
  };

  /** The power goes at this instant: the process tree dies, then the emulator, then un-synced bytes. */
  const cut = async (pid: number, what: string): Promise<void> => {
    if (!claim()) return;
    const victim = (await powerOff(pid))?.victim ?? 'agent';
    // The containers go down with the power too, before anything else is looked at.
    const killed = st.engine ? await st.engine.cut() : undefined;
    // What the file system made durable: the journal and grubenv below are what the next power-on finds.
    // At a crash point every loss the rules allow happens at once; elsewhere one at random.
    const durability = await applyDurabilityLoss(
      paths.root,
      record.dir,
      rng,
      spec.cut.kind === 'point' || st.firstCutPending ? 'worst' : 'random',
    );
    for (const message of durability.violations) st.violations.push({ invariant: 9, message });
    const journal = await readJournal(paths.journal).catch(() => undefined);
    // No wait for calls in the durable journal: the next one (after the last look, say) is a new
    // wait with a deadline of its own.
    if (st.voice && !journal?.calls) st.voice.callers.deadline = undefined;
    const critical =
      journal?.state === 'switching' && !!journal.critical?.enteredAt && !journal.critical.leftAt;
    // The same interrupted switch found again by a later cut is one critical-phase failure, not two.
    if (critical) st.criticalEpisodes.add(journal.critical!.enteredAt);
    st.criticalCuts = st.criticalEpisodes.size;
    const grubenv = await readGrubenv(paths.grubenv).then(
      (vars) => [...vars].map(([k, val]) => `${k}=${val}`).join(' '),
      () => 'unreadable',
    );
    const loss = await applyLoss(paths, rng, victim === 'recovery' ? writes.take() : []);
    for (const m of await checkBootable(paths, content, `after the cut at ${what}`)) {
      st.violations.push({ invariant: 1, message: m });
    }
    st.cuts.push({
      what,
      victim,
      critical,
      journal: describeJournal(journal),
      grubenv,
      lost:
        [
          ...durability.lost,
          ...loss.ranges.map((r) => `${path.basename(r.file)}[${r.from},${r.to})`),
          ...loss.tempFiles.map((t) => path.basename(t)),
        ].join(' ') || 'nothing',
      ...(killed !== undefined ? { engine: `${killed} processes killed` } : {}),
    });
    if (st.firstCutPending) st.firstCutPending = false;
    else st.cutPending = false;
    settle({ kind: 'cut' });
  };

  const cutWatcher = async (): Promise<void> => {
    if (st.firstCutPending) {
      // Step through the crash points until the durable state is inside the critical phase.
      for (let n = (await crash.count()) + 1; live(); ) {
        const p = await crash.point(n);
        if (!p) {
          await sleep(2);
          continue;
        }
        if (!(await waitFrozen(p.pid))) {
          n++;
          continue;
        }
        if (await criticalAndSwitched(paths)) {
          st.base = p.n;
          return cut(p.pid, `first cut #${p.n} ${p.label}`);
        }
        signal(p.pid, 'SIGCONT');
        n++;
      }
      return;
    }
    if (!st.cutPending) return;
    const c = spec.cut;
    switch (c.kind) {
      case 'none':
        return;
      case 'point': {
        const target = st.base + c.n;
        while (live()) {
          const p = await crash.point(target);
          if (p) {
            await waitFrozen(p.pid);
            return cut(p.pid, `#${c.n} ${p.label}`);
          }
          await sleep(3);
        }
        return;
      }
      case 'offset': {
        let seen = false;
        while (live()) {
          const s = await client.status().catch(() => undefined);
          const bytes = s?.state === 'downloading' ? (s.progress?.bytes ?? 0) : undefined;
          if (bytes !== undefined) seen = true;
          if ((bytes !== undefined && bytes >= c.bytes) || (seen && s && s.state !== 'downloading')) {
            await sleep(c.delayMs);
            const pid = await livePid();
            if (pid !== undefined && live()) {
              return cut(
                pid,
                `download at ${bytes ?? 'its end'} bytes (target ${c.bytes}, +${c.delayMs} ms)`,
              );
            }
          }
          await sleep(5);
        }
        return;
      }
      case 'recovery': {
        while (live()) {
          if (recoveryMark?.file === c.file && recoveryMark.percent >= c.percent) {
            await sleep(c.delayMs);
            const pid = appliance.recoveryPid();
            if (pid !== undefined && live()) {
              return cut(pid, `recovery writing ${c.file} at ${c.percent}% +${c.delayMs} ms`);
            }
          }
          await sleep(2);
        }
        return;
      }
      case 'calls': {
        while (live()) {
          if (st.voice?.callers.waiting) {
            await sleep(c.delayMs);
            const pid = await livePid();
            if (pid !== undefined && live()) return cut(pid, `waiting for the calls +${c.delayMs} ms`);
          }
          await sleep(5);
        }
        return;
      }
      case 'time': {
        while (live()) {
          if (st.armedAt !== undefined && Date.now() >= st.armedAt + c.ms) {
            const pid = await livePid();
            if (pid !== undefined && live()) return cut(pid, `${c.ms} ms after arming`);
          }
          await sleep(2);
        }
        return;
      }
    }
  };

  const requestDone = () =>
    !sc.request || (sc.request.takesEffect === 'ack' ? st.request.acked : st.request.recoverySince);

  /**
   * Settled after this power-on's boot-time check, durably: where the technician acts (so
   * counting starts at a steady state) and where a case can end.
   */
  const settledHere = async (s: Status | undefined): Promise<boolean> => {
    if (s?.state !== 'idle' || !s.check || Date.parse(s.check.at) < poweredOnAt) return false;
    return (await readJournal(paths.journal).catch(() => undefined))?.state === 'idle';
  };

  const technician = async (): Promise<void> => {
    const req = sc.request;
    if (!req) return;
    while (live() && !requestDone()) {
      await sleep(50);
      if (req.takesEffect === 'recovery' && st.request.acceptedOn === powerOn) continue;
      const s = await client.status().catch(() => undefined);
      const ready = (req.when === 'downloading' && s?.state === 'downloading') || (await settledHere(s));
      if (!ready) continue;
      if (!live()) return;
      if (st.armedAt === undefined) {
        await crash.arm(armSpec());
        st.armedAt = Date.now();
      }
      st.request.issued = true;
      try {
        await client.post(req.endpoint, req.body);
        st.request.acked = true;
        st.request.acceptedOn = powerOn;
      } catch (e) {
        // Refused while busy: ask again shortly. Unreachable: the power went during the request.
        if (isClgwError(e) && (e.code === 'BUSY' || e.code === 'NOT_ALLOWED')) await sleep(200);
      }
    }
  };

  const endWatcher = async (): Promise<void> => {
    let wrongSince: number | undefined;
    while (live()) {
      await sleep(100);
      const s = await client.status().catch(() => undefined);
      if (!s || !live()) continue;
      const exp = sc.expect(st);
      // Container scenarios: idle is settled only once this power-on's container run has ended.
      const containers = sc.containers ? await containerRun(paths, poweredOnAt) : 'done';
      const settled = s.state === 'failed' || (s.state === 'idle' && containers !== 'running');
      const right =
        s.state === 'idle' &&
        containers === 'done' &&
        (!exp.slot || s.bootedSlot === exp.slot) &&
        s.gatewayVersion === exp.version &&
        s.result?.outcome === exp.result.outcome &&
        s.result.version === exp.result.version &&
        (!exp.check || checkAsExpected(s, exp.check));
      // The end is the idle after this power-on's boot-time check: the idle before it (the
      // durable journal may be idle from before the cut) is followed by that check.
      if (right && requestDone() && (await settledHere(s))) {
        if (claim()) settle({ kind: 'end' });
        return;
      }
      // Settled in the wrong place (failed, or idle elsewhere once nothing is left to ask for).
      if (settled && !right && (s.state === 'failed' || requestDone())) {
        wrongSince ??= Date.now();
        if (Date.now() - wrongSince > STUCK_MS && claim()) settle({ kind: 'stuck', status: s });
      } else wrongSince = undefined;
    }
  };

  const timer = setTimeout(() => {
    if (!claim()) return;
    void client
      .status()
      .catch(() => undefined)
      .then((status) => settle({ kind: 'timeout', status }));
  }, POWER_ON_TIMEOUT_MS);
  const calls = st.voice
    ? callers(st.voice.service, st.voice.callers, {
        live,
        status: () => client.status().catch(() => undefined),
        resets: () => st.criticalCuts,
        // The calls stay up until a cut planned in the wait has come.
        hold: () => st.cutPending && spec.cut.kind === 'calls',
        violation: (message) => st.violations.push({ invariant: 7, message }),
      })
    : undefined;
  const watchers = [cutWatcher(), technician(), endWatcher(), ...(calls ? [calls] : [])];
  const end = await ended;
  clearTimeout(timer);
  // At the end the agent is idle and shuts down cleanly; otherwise (it may even be frozen at a
  // crash point, deaf to SIGTERM) the power goes.
  if (end.kind === 'end') await appliance.stop();
  else if (end.kind !== 'cut') await powerOff();
  await Promise.allSettled(watchers);
  return end;
}

export function describeViolations(r: CaseResult): string {
  return r.violations.map((v) => `invariant ${v.invariant}: ${v.message}`).join('; ');
}

/** One line for a failing case: what to rerun, where it was cut, what broke, the state at the cut. */
export function failureLine(r: CaseResult): string {
  const cuts = r.cuts.map(
    (c) =>
      `${c.what} [${c.victim}; journal ${c.journal}; grubenv ${c.grubenv}; lost ${c.lost}${c.engine ? `; engine ${c.engine}` : ''}]`,
  );
  return `FAIL ${r.key} seed=${r.seed} cut=${cuts.join(' then ') || 'none'} :: ${describeViolations(r)}`;
}

/** Parses a case key back (`update#17`, `update@offset=123+4ms`, `factory-reset@recovery=root.img:30%+5ms`, `rollback@t=2500ms`). */
export function parseCaseKey(key: string): CaseSpec {
  const m =
    /^([a-z-]+)(?:#(\d+)|@offset=(\d+)\+(\d+)ms|@recovery=(boot\.img|root\.img):(\d+)%\+(\d+)ms|@t=(\d+)ms|@calls\+(\d+)ms|#none)$/.exec(
      key,
    );
  if (!m || !SCENARIO_NAMES.includes(m[1] as ScenarioName)) throw new Error(`not a case key: ${key}`);
  const scenario = m[1] as ScenarioName;
  if (m[2]) return { key, scenario, cut: { kind: 'point', n: Number(m[2]) } };
  if (m[3]) return { key, scenario, cut: { kind: 'offset', bytes: Number(m[3]), delayMs: Number(m[4]) } };
  if (m[5]) {
    return {
      key,
      scenario,
      cut: {
        kind: 'recovery',
        file: m[5] as 'boot.img' | 'root.img',
        percent: Number(m[6]),
        delayMs: Number(m[7]),
      },
    };
  }
  if (m[8]) return { key, scenario, cut: { kind: 'time', ms: Number(m[8]) } };
  if (m[9]) return { key, scenario, cut: { kind: 'calls', delayMs: Number(m[9]) } };
  return { key, scenario, cut: { kind: 'none' } };
}

/** The key of a case (inverse of {@link parseCaseKey}). */
export function caseKey(scenario: ScenarioName, cut: CutSpec): string {
  switch (cut.kind) {
    case 'none':
      return `${scenario}#none`;
    case 'point':
      return `${scenario}#${cut.n}`;
    case 'offset':
      return `${scenario}@offset=${cut.bytes}+${cut.delayMs}ms`;
    case 'recovery':
      return `${scenario}@recovery=${cut.file}:${cut.percent}%+${cut.delayMs}ms`;
    case 'time':
      return `${scenario}@t=${cut.ms}ms`;
    case 'calls':
      return `${scenario}@calls+${cut.delayMs}ms`;
  }
}

/** What a cut-free pass of a scenario measured: crash points and time from arming to the end. */
export interface Pass {
  scenario: ScenarioName;
  points: number;
  armedMs: number;
  result: CaseResult;
}

/**
 * The cases for `cuts` cuts: every crash point of every scenario first (when there are fewer
 * cuts than points: four fifths of them spread evenly over each scenario's points), then random
 * cuts — at byte offsets of the download, inside the recovery program's slot writes, at random
 * instants — in rotation over the scenarios.
 */
export function planCases(
  env: Env,
  passes: Pass[],
  cuts: number,
  rng: Rng,
  taken = new Set<string>(),
): CaseSpec[] {
  const out: CaseSpec[] = [];
  const add = (scenario: ScenarioName, cut: CutSpec): boolean => {
    const key = caseKey(scenario, cut);
    if (taken.has(key)) return false;
    taken.add(key);
    out.push({ key, scenario, cut });
    return true;
  };
  const total = passes.reduce((s, p) => s + p.points, 0);
  if (cuts < total) {
    // Fewer cuts than points: four fifths spread evenly over each scenario's points, the rest
    // random, so that every kind of cut is in every run.
    const points = Math.ceil(cuts * 0.8);
    let left = points;
    passes.forEach((p, i) => {
      const quota = i === passes.length - 1 ? left : Math.min(left, Math.round((points * p.points) / total));
      left -= quota;
      for (let j = 0; j < quota; j++)
        add(p.scenario, { kind: 'point', n: 1 + Math.floor((j * p.points) / quota) });
    });
  } else {
    for (const p of passes) for (let n = 1; n <= p.points; n++) add(p.scenario, { kind: 'point', n });
  }
  const kinds: { scenario: ScenarioName; kind: 'offset' | 'recovery' | 'time' | 'calls'; armedMs: number }[] =
    [];
  for (const p of passes) {
    const sc = SCENARIOS[p.scenario];
    kinds.push({ scenario: p.scenario, kind: 'time', armedMs: p.armedMs });
    if (sc.downloads) kinds.push({ scenario: p.scenario, kind: 'offset', armedMs: p.armedMs });
    if (sc.recovers) kinds.push({ scenario: p.scenario, kind: 'recovery', armedMs: p.armedMs });
    if (sc.voice) kinds.push({ scenario: p.scenario, kind: 'calls', armedMs: p.armedMs });
  }
  for (let i = 0, tries = 0; out.length < cuts && kinds.length > 0 && tries < cuts * 20; tries++) {
    const k = kinds[i % kinds.length]!;
    let cut: CutSpec;
    if (k.kind === 'offset')
      cut = { kind: 'offset', bytes: rng.int(0, env.downloadBytes), delayMs: rng.int(0, 25) };
    else if (k.kind === 'recovery') {
      cut = {
        kind: 'recovery',
        file: rng.next() < 0.3 ? 'boot.img' : 'root.img',
        percent: 10 * rng.int(0, 10),
        delayMs: rng.int(0, 15),
      };
    } else if (k.kind === 'calls') cut = { kind: 'calls', delayMs: rng.int(0, 300) };
    else cut = { kind: 'time', ms: rng.int(0, Math.max(1, k.armedMs)) };
    if (add(k.scenario, cut)) i++;
  }
  return out;
}

/** Runs `jobs` cases at a time; `each` sees every result as it comes. */
export async function runPool(
  env: Env,
  cases: CaseSpec[],
  seed: number,
  jobs: number,
  each: (r: CaseResult) => void,
): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const spec = cases[next++]!;
      const r = await runCase(env, spec, seed);
      results.push(r);
      each(r);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  return results;
}

export interface PowercutOptions {
  cuts: number;
  seed: number;
  scenarios?: ScenarioName[];
  /** Run exactly these case keys instead of a plan. */
  only?: string[];
  /** Only count: print every scenario's crash points (`<scenario> #n label`) and stop. */
  listPoints?: boolean;
  jobs?: number;
  /** A failing case's line (and the summary lines). */
  out?: (line: string) => void;
  /** Progress for a human watching. */
  progress?: (line: string) => void;
}

export interface PowercutSummary {
  cuts: number;
  survived: number;
  missed: number;
  failed: CaseResult[];
  /** Cut-free passes that failed (the scenario itself does not hold). */
  passFailures: CaseResult[];
  seconds: number;
  results: CaseResult[];
  passes: Pass[];
  /** Scenarios the default rotation left out, and why (a container engine truly cannot run here). */
  leftOut?: { scenarios: ScenarioName[]; reason: string };
}

/** A case that counts as a cut: the cut came. */
const counts = (r: CaseResult): boolean => !r.missed && r.cuts.length > 0;

/**
 * `n` more cases: crash points not cut yet (round robin over the scenarios), then what
 * {@link planCases} draws at random.
 */
function topUp(env: Env, passes: Pass[], n: number, rng: Rng, taken: Set<string>): CaseSpec[] {
  const out: CaseSpec[] = [];
  for (let n1 = 1, added = true; out.length < n && added; n1++) {
    added = false;
    for (const p of passes) {
      if (out.length >= n || n1 > p.points) continue;
      added = true;
      const cut: CutSpec = { kind: 'point', n: n1 };
      const key = caseKey(p.scenario, cut);
      if (taken.has(key)) continue;
      taken.add(key);
      out.push({ key, scenario: p.scenario, cut });
    }
  }
  if (out.length < n)
    out.push(...planCases(env, passes, n - out.length, rng, taken).filter((c) => c.cut.kind !== 'point'));
  return out;
}

/** The whole run: environment, one cut-free pass per scenario, the planned cuts, a summary. */
export async function runPowercut(opts: PowercutOptions): Promise<PowercutSummary> {
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const progress = opts.progress ?? (() => undefined);
  const jobs = opts.jobs ?? 2;
  const started = Date.now();
  let names = opts.scenarios ?? SCENARIO_NAMES;
  // The container scenarios run a real Podman. Where none can run at all (not Linux, not root, no
  // cgroups; a missing podman is no reason) the default rotation leaves them out and says why.
  let leftOut: PowercutSummary['leftOut'];
  const reason = opts.scenarios || opts.only ? undefined : await engineUnavailable();
  if (reason) {
    leftOut = { scenarios: names.filter((n) => SCENARIOS[n].containers), reason };
    names = names.filter((n) => !SCENARIOS[n].containers);
    out(`powercut: left out ${leftOut.scenarios.join(', ')}: ${reason}`);
  }
  const inRun = opts.only ? opts.only.map((k) => parseCaseKey(k).scenario) : names;
  const env = await setupEnv(progress, {
    containers: inRun.some((n) => SCENARIOS[n].containers),
    voice: inRun.some((n) => SCENARIOS[n].voice),
  });
  try {
    let cases: CaseSpec[];
    const passes: Pass[] = [];
    const passFailures: CaseResult[] = [];
    if (opts.only) {
      cases = opts.only.map(parseCaseKey);
    } else {
      progress(`powercut: counting the crash points of ${names.join(', ')}`);
      const passResults = await runPool(
        env,
        names.map((scenario) => ({ key: `${scenario}#none`, scenario, cut: { kind: 'none' } })),
        opts.seed,
        jobs,
        () => undefined,
      );
      for (const scenario of names) {
        const r = passResults.find((p) => p.scenario === scenario)!;
        if (r.violations.length > 0) {
          passFailures.push(r);
          out(failureLine(r));
          continue;
        }
        passes.push({ scenario, points: r.points, armedMs: r.armedMs, result: r });
        progress(`powercut: ${scenario}: ${r.points} crash points, ${r.armedMs} ms from arming to the end`);
      }
      if (opts.listPoints) {
        for (const p of passes) for (const line of p.result.trace) out(`${p.scenario} ${line}`);
        return { ...summarize([], passes, passFailures, names, started, jobs, out), leftOut };
      }
      cases = planCases(env, passes, opts.cuts, new Rng(opts.seed));
    }

    const results: CaseResult[] = [];
    const taken = new Set(cases.map((c) => c.key));
    const rng = new Rng(seedOf(opts.seed, 'top-up'));
    let done = 0;
    let failing = 0;
    const report = (r: CaseResult) => {
      done++;
      if (r.violations.length > 0) {
        failing++;
        out(failureLine(r));
      }
      if (done % 25 === 0) {
        progress(
          `powercut: ${done} cases, ${failing} failing, ${((Date.now() - started) / 1000).toFixed(0)} s`,
        );
      }
    };
    results.push(...(await runPool(env, cases, opts.seed, jobs, report)));
    // Cuts that never came (a timed cut planned after the run ended, as on a loaded machine) are
    // replaced: first by crash points not cut yet, which always come (the pass counted them), then
    // by random ones. Counted as the summary counts them, so the total is what was asked for.
    for (let round = 0; !opts.only && round < 5; round++) {
      const cutCount = results.filter(counts).length;
      if (cutCount >= opts.cuts || passes.length === 0) break;
      const more = topUp(env, passes, opts.cuts - cutCount, rng, taken);
      if (more.length === 0) break;
      results.push(...(await runPool(env, more, opts.seed, jobs, report)));
    }

    return { ...summarize(results, passes, passFailures, names, started, jobs, out), leftOut };
  } finally {
    await env.close();
  }
}

/** A failing case's class: the durable journal state at its (last) cut and what broke, numbers and paths elided. */
export function failureClass(r: CaseResult): string {
  const state = r.cuts.at(-1)?.journal.split(' ')[0] ?? 'no cut';
  const what = r.violations
    .map((v) => `${v.invariant}: ${v.message.replace(/\/\S*\//g, '').replace(/\d+/g, 'N')}`)
    .join('; ');
  return `cut in ${state} → ${what}`;
}

/** The per-scenario and per-class summary lines, and the figures. */
function summarize(
  results: CaseResult[],
  passes: Pass[],
  passFailures: CaseResult[],
  names: ScenarioName[],
  started: number,
  jobs: number,
  out: (line: string) => void,
): PowercutSummary {
  const cutResults = results.filter(counts);
  const failed = results.filter((r) => r.violations.length > 0);
  const seconds = (Date.now() - started) / 1000;
  for (const scenario of names) {
    const mine = cutResults.filter((r) => r.scenario === scenario);
    const pass = passes.find((p) => p.scenario === scenario);
    const critical = mine.filter((r) =>
      r.cuts.some((c) => c.critical && !c.what.startsWith('first cut')),
    ).length;
    out(
      `powercut: ${scenario}: ${pass ? `${pass.points} crash points; ` : ''}cuts=${mine.length} survived=${mine.filter((r) => r.violations.length === 0).length} (in the critical phase: ${critical})`,
    );
  }
  const classes = new Map<string, CaseResult[]>();
  for (const r of failed) classes.set(failureClass(r), [...(classes.get(failureClass(r)) ?? []), r]);
  for (const [cls, rs] of [...classes].sort((a, b) => b[1].length - a[1].length)) {
    out(
      `powercut: failing ${rs.length}× ${cls} (e.g. ${rs
        .slice(0, 3)
        .map((r) => r.key)
        .join(', ')})`,
    );
  }
  const missed = results.filter((r) => r.missed).length;
  const cutSecs = cutResults.reduce((s, r) => s + r.ms, 0) / 1000;
  out(
    `powercut: ${seconds.toFixed(0)} s wall, ${(cutSecs / Math.max(1, cutResults.length)).toFixed(2)} s per cut (${(seconds / Math.max(1, cutResults.length)).toFixed(2)} s wall per cut, ${jobs} jobs); ${missed} planned cut(s) never came (run ended first), replaced`,
  );
  return {
    cuts: cutResults.length,
    survived: cutResults.filter((r) => r.violations.length === 0).length,
    missed,
    failed,
    passFailures,
    seconds,
    results,
    passes,
  };
}
