/**
 * The scenarios the power-cut test runs, what a technician does in each, and what the appliance
 * must look like at the end — as a function of what the cuts hit.
 *
 * Extension point: a scenario is one entry of {@link SCENARIOS}. A settings change joins as a
 * scenario whose `request` is the API call that makes it and whose `expect().network` names the
 * files the data partition must then hold ({@link TreeExpectation} with a digest map), as
 * `network-change` does; SSH access (a later issue) joins the same way.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  type NetworkInput,
  type NetworkSettings,
  renderHostname,
  renderNetworkUnit,
  validateNetworkSettings,
} from '@clgw/core/network/settings.js';
import type { AppliancePaths, SlotName } from '@clgw/core/platform/paths.js';
import type { ContainerName } from '@clgw/core/release/schema.js';

/**
 * The files of the data partition's `network/` directory for these settings, exactly as the agent
 * saves and renders them (the simulator's LAN port is eth0), so a seeded appliance is consistent.
 */
function networkFiles(settings: NetworkSettings): Record<string, string> {
  return {
    'network/settings.json': `${JSON.stringify(settings, null, 2)}\n`,
    'network/10-clgw.network': renderNetworkUnit(settings, 'eth0'),
    'network/hostname': renderHostname(settings),
  };
}

const SEEDED_NETWORK = validateNetworkSettings({
  hostname: 'gateway-hq',
  mode: 'static',
  address: '10.0.0.20',
  netmask: '24',
  gateway: '10.0.0.1',
  dns: '10.0.0.53',
});

/** The technician's change in `network-change`: another address, another hostname. */
const NEW_NETWORK_INPUT: NetworkInput = {
  hostname: 'gateway-branch',
  mode: 'static',
  address: '192.168.40.7',
  netmask: '255.255.255.0',
  gateway: '192.168.40.1',
  dns: '192.168.40.53, 9.9.9.9',
};

function digests(files: Record<string, string>, top: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [rel, content] of Object.entries(files)) {
    out[rel.slice(top.length + 1)] = createHash('sha256').update(content).digest('hex');
  }
  return out;
}

export type ScenarioName =
  | 'update'
  | 'update-with-calls'
  | 'rollback'
  | 'critical'
  | 'factory-reset'
  | 'data-reset'
  | 'data-reset-during-update'
  | 'update-again'
  | 'network-change'
  | 'hostile-check'
  | 'trust-update'
  | 'container-upgrade'
  | 'container-rollback';

/** Appliance roots prepared once per run and copied for every case (see harness.ts). */
export type TemplateName =
  /** Factory 1.0.0 on slot A, onboarded; the mirror offers 1.1.0. */
  | 'fresh'
  /** Factory 1.0.0 on slot A, onboarded; the mirror offers a 1.1.0 that fails its health check. */
  | 'fresh-broken'
  /** `fresh` after its update: 1.1.0 committed on slot B. */
  | 'committed';

/**
 * What the mirror offers: 1.1.0, a 1.1.0 that fails its health check, or 1.2.0; a signed compat.yaml
 * built to exhaust the YAML parser (`hostile`); 1.1.0 re-published with a revocation list and a
 * root rotation in its envelope (`trust`, {@link TRUST_REVOKED}); or 1.1.0 with the service
 * containers of {@link CONTAINER_TREES}.
 */
export type TreeName = 'good' | 'broken' | 'next' | 'hostile' | 'trust' | ContainerTreeName;

export type ContainerTreeName = 'containers-base' | 'containers' | 'containers-broken';

/** One service container a tree's compat.yaml names (a stand-in image; `broken`: never healthy). */
export interface ContainerOffer {
  service: ContainerName;
  version: string;
  broken?: boolean;
}

/**
 * The container trees: the `good` tree (gateway OS 1.1.0) whose compat.yaml also names these
 * containers for every platform. `containers-base` is what a container scenario's appliance
 * installs before its first power-on; the others are what its mirror then offers.
 */
export const CONTAINER_TREES: Record<ContainerTreeName, ContainerOffer[]> = {
  'containers-base': [
    { service: 'tunnel', version: '1.0.0' },
    { service: 'micloud', version: '1.0.0' },
  ],
  containers: [
    { service: 'tunnel', version: '1.1.0' },
    { service: 'micloud', version: '1.1.0' },
  ],
  'containers-broken': [
    { service: 'tunnel', version: '1.2.0', broken: true },
    { service: 'micloud', version: '1.1.0' },
  ],
};

/** The serial the `trust` tree's revocation list revokes (no certificate of the run has it). */
export const TRUST_REVOKED = 'c0ffee0001';

/** Data written before the first power-on (relative to the data partition `var/clgw/`). */
export const USER_DATA: Record<string, string | Buffer> = {
  'onboarding/account-link.json': '{"customer":"acme","site":"hq"}\n',
  'onboarding/pbx/settings.json': '{"type":"MiVoice Business","host":"10.0.0.5"}\n',
  'onboarding/tokens/portal.token': Buffer.from(
    createHash('sha256').update('clgw powercut token').digest().toString('hex'),
  ),
  'onboarding/advanced.json': '{"sipTls":true}\n',
  ...networkFiles(SEEDED_NETWORK),
};

/** Writes {@link USER_DATA} (fsynced: it was there long before the test). */
export async function seedUserData(paths: AppliancePaths): Promise<void> {
  for (const [rel, content] of Object.entries(USER_DATA)) {
    const file = path.join(paths.dataDir, rel);
    await fs.mkdir(path.dirname(file), { recursive: true });
    const h = await fs.open(file, 'w');
    try {
      await h.writeFile(content);
      await h.sync();
    } finally {
      await h.close();
    }
  }
}

/** Relative path → SHA-256 of every regular file under `dir` (symlinks as their target). */
export async function treeDigest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isSymbolicLink()) out[path.relative(dir, p)] = `-> ${await fs.readlink(p)}`;
      else
        out[path.relative(dir, p)] = createHash('sha256')
          .update(await fs.readFile(p))
          .digest('hex');
    }
  };
  await walk(dir);
  return out;
}

/** The digests {@link USER_DATA} has under one top directory (`onboarding`, `network`). */
export function seededDigests(top: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [rel, content] of Object.entries(USER_DATA)) {
    if (!rel.startsWith(`${top}/`)) continue;
    out[rel.slice(top.length + 1)] = createHash('sha256').update(content).digest('hex');
  }
  return out;
}

/** A service container at the end: `clgw-<service>` running and healthy, and containers.json. */
export interface ContainerExpectation {
  /** What it runs: its version label, its image (the version's stand-in) and `GET /version`. */
  version: string;
  /** containers.json's last result for the service (`from` checked when given). */
  last: { outcome: 'installed' | 'upgraded' | 'rolledBack'; version: string; from?: string };
  /** The versions containers.json remembers as failed here. */
  rejected: string[];
}

/** `intact`: as seeded, byte for byte; `erased`: empty or gone; or exactly these files. */
export type TreeExpectation = 'intact' | 'erased' | { files: Record<string, string> };

/** What happened during one case, as far as the expectations depend on it. */
export interface Outcome {
  /**
   * Switches the cuts interrupted: a cut whose durable journal is `switching`, entered and not
   * left; the same interrupted switch found again by a later cut counts once.
   */
  criticalCuts: number;
}

/** The appliance at the end of a case. */
export interface Expected {
  /** The slot it runs from; undefined where either is right (the newest release in whichever slot). */
  slot: SlotName | undefined;
  version: string;
  /** How the last update attempt ended (journal `result`). */
  result: { outcome: 'committed' | 'rolledBack'; version: string };
  onboarding: TreeExpectation;
  network: TreeExpectation;
  /** Critical-phase alarms end cleared (the appliance runs the release it updated to again). */
  alarmsCleared: boolean;
  /** The service containers (exactly these, no `-next`); undefined: the scenario has none. */
  containers?: Partial<Record<ContainerName, ContainerExpectation>>;
  /** How the last check ended, where the scenario is about the check itself. */
  check?: { outcome: 'failed'; code: string };
  /**
   * The trust the appliance ends with (invariant 8): its last check up to date, the stored
   * revocation list verifying and revoking these serials, the stored root rotation verifying.
   */
  trust?: { revoked: string[]; rotated: boolean };
}

/** A technician's request through the local API, made once the appliance is idle. */
export interface TechnicianRequest {
  endpoint: string;
  body: Record<string, unknown>;
  /**
   * When the request counts as carried out: `ack` — the API answered 2xx (the work is done by
   * then); `recovery` — the recovery system ran after it (the answer only says "accepted").
   * Until then the technician asks again whenever the appliance is idle on a later power-on.
   */
  takesEffect: 'ack' | 'recovery';
  /**
   * When it is first made: once the appliance is idle after its boot-time check (default), or
   * as soon as it downloads a release. Asked again (until it takes effect) whenever idle.
   */
  when?: 'idle' | 'downloading';
}

export interface Scenario {
  name: ScenarioName;
  summary: string;
  template: TemplateName;
  /** What the mirror offers. */
  tree: TreeName;
  platform: 'physical' | 'virtual' | 'kvm';
  /** Where the counting of crash points starts: the first power-on, or the technician's request. */
  armAt: 'power-on' | 'request';
  request?: TechnicianRequest;
  /**
   * `critical`: every case first cuts the power inside the critical phase (boot environment
   * already switched, journal not yet out of it), then cuts once more where the case says.
   */
  firstCut?: 'critical';
  /** A release is downloaded (random cuts at byte offsets of the download apply). */
  downloads: boolean;
  /** The recovery program runs (random cuts inside its slot writes apply). */
  recovers: boolean;
  /**
   * The case has its own container engine, with the containers of the `containers-base` tree
   * installed and running before the first power-on; every cut also takes the engine down.
   */
  containers?: boolean;
  /**
   * The case has a voice service (voice.ts) with 2 calls up at every power-on, until the
   * appliance is seen waiting for them (invariant 7).
   */
  voice?: boolean;
  expect(o: Outcome): Expected;
}

const RESET_ALL = { onboarding: 'erased', network: 'erased' } as const;
const KEEP_ALL = { onboarding: 'intact', network: 'intact' } as const;

/** The gateway OS side of the container scenarios: 1.1.0 stays committed on slot B, data intact. */
const OS_UNCHANGED = {
  slot: 'B',
  version: '1.1.0',
  result: { outcome: 'committed', version: '1.1.0' },
  ...KEEP_ALL,
  alarmsCleared: true,
} as const;

export const SCENARIOS: Record<ScenarioName, Scenario> = {
  update: {
    name: 'update',
    summary: '1.0.0 → 1.1.0: download, verify, install, switch, reboot, confirm, commit',
    template: 'fresh',
    tree: 'good',
    platform: 'virtual',
    armAt: 'power-on',
    downloads: true,
    recovers: false,
    // A cut in the critical phase means alarm, factory reset (everything erased), update again.
    expect: (o) => ({
      slot: 'B',
      version: '1.1.0',
      result: { outcome: 'committed', version: '1.1.0' },
      ...(o.criticalCuts > 0 ? RESET_ALL : KEEP_ALL),
      alarmsCleared: true,
    }),
  },
  'update-with-calls': {
    name: 'update-with-calls',
    summary: '1.0.0 → 1.1.0 with 2 calls up at every power-on: the restart waits until they end',
    template: 'fresh',
    tree: 'good',
    platform: 'virtual',
    armAt: 'power-on',
    downloads: true,
    recovers: false,
    voice: true,
    expect: (o) => SCENARIOS.update.expect(o),
  },
  rollback: {
    name: 'rollback',
    summary: '1.0.0 → broken 1.1.0: its health check fails, back to 1.0.0 on slot A',
    template: 'fresh-broken',
    tree: 'broken',
    platform: 'kvm',
    armAt: 'power-on',
    downloads: true,
    recovers: false,
    // After a factory reset the broken release is tried (and rolled back) again; the alarm stays
    // uncleared because the appliance never runs the release it was updating to.
    expect: (o) => ({
      slot: 'A',
      version: '1.0.0',
      result: { outcome: 'rolledBack', version: '1.1.0' },
      ...(o.criticalCuts > 0 ? RESET_ALL : KEEP_ALL),
      alarmsCleared: false,
    }),
  },
  critical: {
    name: 'critical',
    summary:
      'a cut inside the critical phase, then a second cut anywhere in the alarm, recovery and re-update',
    template: 'fresh',
    tree: 'good',
    platform: 'virtual',
    armAt: 'power-on',
    firstCut: 'critical',
    downloads: true,
    recovers: true,
    expect: () => ({
      slot: 'B',
      version: '1.1.0',
      result: { outcome: 'committed', version: '1.1.0' },
      ...RESET_ALL,
      alarmsCleared: true,
    }),
  },
  'factory-reset': {
    name: 'factory-reset',
    summary: 'on 1.1.0: factory reset (recovery system restores 1.0.0), then the update to 1.1.0 again',
    template: 'committed',
    tree: 'good',
    platform: 'physical',
    armAt: 'request',
    request: { endpoint: '/v1/factory-reset', body: { confirm: true }, takesEffect: 'recovery' },
    downloads: true,
    recovers: true,
    expect: () => ({
      slot: 'B',
      version: '1.1.0',
      result: { outcome: 'committed', version: '1.1.0' },
      ...RESET_ALL,
      alarmsCleared: true,
    }),
  },
  'data-reset': {
    name: 'data-reset',
    summary: 'on 1.1.0: data reset (onboarding data erased, network configuration kept)',
    template: 'committed',
    tree: 'good',
    platform: 'physical',
    armAt: 'request',
    request: { endpoint: '/v1/data-reset', body: { confirm: true }, takesEffect: 'ack' },
    downloads: false,
    recovers: false,
    expect: (o) => ({
      slot: 'B',
      version: '1.1.0',
      result: { outcome: 'committed', version: '1.1.0' },
      ...(o.criticalCuts > 0 ? RESET_ALL : { onboarding: 'erased', network: 'intact' }),
      alarmsCleared: true,
    }),
  },
  'data-reset-during-update': {
    name: 'data-reset-during-update',
    summary: '1.0.0 → 1.1.0 with a data reset requested while the release downloads',
    template: 'fresh',
    tree: 'good',
    platform: 'physical',
    armAt: 'power-on',
    request: { endpoint: '/v1/data-reset', body: { confirm: true }, takesEffect: 'ack', when: 'downloading' },
    downloads: true,
    recovers: false,
    expect: (o) => ({
      slot: 'B',
      version: '1.1.0',
      result: { outcome: 'committed', version: '1.1.0' },
      ...(o.criticalCuts > 0 ? RESET_ALL : { onboarding: 'erased', network: 'intact' }),
      alarmsCleared: true,
    }),
  },
  'update-again': {
    name: 'update-again',
    summary: '1.1.0 on B → 1.2.0 into slot A, which holds the good 1.0.0 fallback until it is overwritten',
    template: 'committed',
    tree: 'next',
    platform: 'virtual',
    armAt: 'power-on',
    downloads: true,
    recovers: false,
    // 1.2.0 lands in slot A — or in slot B when the appliance came back on slot A (a factory
    // reset, or a fallback) before it updated.
    expect: (o) => ({
      slot: undefined,
      version: '1.2.0',
      result: { outcome: 'committed', version: '1.2.0' },
      ...(o.criticalCuts > 0 ? RESET_ALL : KEEP_ALL),
      alarmsCleared: true,
    }),
  },
  'network-change': {
    name: 'network-change',
    summary: 'on 1.1.0: a technician sets another static address and hostname',
    template: 'committed',
    tree: 'good',
    platform: 'virtual',
    armAt: 'request',
    request: { endpoint: '/v1/network', body: { ...NEW_NETWORK_INPUT }, takesEffect: 'ack' },
    downloads: false,
    recovers: false,
    expect: (o) => ({
      slot: 'B',
      version: '1.1.0',
      result: { outcome: 'committed', version: '1.1.0' },
      ...(o.criticalCuts > 0
        ? RESET_ALL
        : {
            onboarding: 'intact' as const,
            network: { files: digests(networkFiles(validateNetworkSettings(NEW_NETWORK_INPUT)), 'network') },
          }),
      alarmsCleared: true,
    }),
  },
  'hostile-check': {
    name: 'hostile-check',
    summary: 'on 1.1.0: the mirror serves a signed compat.yaml nested 40,000 deep; refused, never a loop',
    template: 'committed',
    tree: 'hostile',
    platform: 'virtual',
    armAt: 'power-on',
    downloads: false,
    recovers: false,
    // Cut while checking, each power-on resumes the check; the document is refused before the
    // parser builds it, so the appliance ends idle with the check failed and nothing else changed.
    expect: () => ({ ...OS_UNCHANGED, check: { outcome: 'failed', code: 'YAML_INVALID' } }),
  },
  'trust-update': {
    name: 'trust-update',
    summary:
      'on 1.1.0: the boot-time check adopts a root-signed revocation list and a root rotation from the envelope',
    template: 'committed',
    tree: 'trust',
    platform: 'virtual',
    armAt: 'power-on',
    downloads: false,
    recovers: false,
    // Cut while it adopts them, each power-on checks again and adopts what is not stored yet; the
    // appliance must end trusting the vendor (the check up to date) and never a revoked key.
    expect: () => ({ ...OS_UNCHANGED, trust: { revoked: [TRUST_REVOKED], rotated: true } }),
  },
  'container-upgrade': {
    name: 'container-upgrade',
    summary: 'on 1.1.0 with tunnel and micloud 1.0.0 running: the boot-time container upgrade to 1.1.0',
    template: 'committed',
    tree: 'containers',
    platform: 'virtual',
    armAt: 'power-on',
    downloads: false,
    recovers: false,
    containers: true,
    // No gateway OS update, so no critical phase: the OS side ends as it started.
    expect: () => ({
      ...OS_UNCHANGED,
      containers: {
        tunnel: {
          version: '1.1.0',
          last: { outcome: 'upgraded', version: '1.1.0', from: '1.0.0' },
          rejected: [],
        },
        micloud: {
          version: '1.1.0',
          last: { outcome: 'upgraded', version: '1.1.0', from: '1.0.0' },
          rejected: [],
        },
      },
    }),
  },
  'container-rollback': {
    name: 'container-rollback',
    summary:
      'as container-upgrade, but tunnel 1.2.0 never becomes healthy: rolled back to 1.0.0, micloud to 1.1.0',
    template: 'committed',
    tree: 'containers-broken',
    platform: 'physical',
    armAt: 'power-on',
    downloads: false,
    recovers: false,
    containers: true,
    expect: () => ({
      ...OS_UNCHANGED,
      containers: {
        tunnel: {
          version: '1.0.0',
          last: { outcome: 'rolledBack', version: '1.0.0' },
          rejected: ['1.2.0'],
        },
        micloud: {
          version: '1.1.0',
          last: { outcome: 'upgraded', version: '1.1.0', from: '1.0.0' },
          rejected: [],
        },
      },
    }),
  },
};

export const SCENARIO_NAMES = Object.keys(SCENARIOS) as ScenarioName[];
