/**
 * Test harness for the update agent: a real simulated appliance (partition files, grubenv,
 * data directory), a real signed release tree served by the real HTTPS mirror, and the agent
 * composed exactly as main.ts composes it (only the reboot port records instead of exiting).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { type Clock, systemClock } from '@clgw/core/platform/clock.js';
import { fileLogger } from '@clgw/core/platform/log.js';
import { type AppliancePaths, appliancePaths } from '@clgw/core/platform/paths.js';
import { Agent } from '../../agent/src/agent.js';
import { composeDeps } from '../../agent/src/compose.js';
import type { Deps } from '../../agent/src/deps.js';
import { readJournal } from '../../agent/src/state/journal-file.js';
import { buildRelease, type DevKeys, generateDevKeys } from '../../image/src/release/index.js';
import { type Mirror, startMirror } from '../../scripts/lib/mirror.js';
import { createAppliance } from '../../scripts/sim/appliance.js';
import { bootOnce } from '../../scripts/sim/boot-emulator.js';
import { buildReleaseImages, type ReleaseImages } from '../../scripts/sim/images.js';

export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const CACHE = path.join(REPO, '.cache/test');

let keys: DevKeys | undefined;
/** One development key set per test process (RSA key generation is the slow part). */
export function testKeys(): DevKeys {
  keys ??= generateDevKeys({ bits: 2048 });
  return keys;
}

/** Small release images (cached across runs in .cache/test/images). */
export async function testImages(
  version: string,
  opts: { brokenHealth?: boolean } = {},
): Promise<ReleaseImages> {
  const outDir = path.join(CACHE, 'images');
  await fs.mkdir(outDir, { recursive: true });
  return buildReleaseImages({ version, outDir, payloadMiB: 2, ...opts });
}

export async function tempDir(prefix: string): Promise<string> {
  await fs.mkdir(CACHE, { recursive: true });
  return fs.mkdtemp(path.join(os.tmpdir(), `clgw-${prefix}-`));
}

export interface World {
  dir: string;
  tree: string;
  root: string;
  paths: AppliancePaths;
  mirror: Mirror;
  keys: DevKeys;
  /** Publishes a release into the tree (signed with the test keys unless given others). */
  publish(
    version: string,
    opts?: {
      broken?: boolean;
      platforms?: ('physical' | 'virtual' | 'kvm')[];
      minSourceVersion?: string;
      keys?: DevKeys;
      now?: number;
      expiresInDays?: number;
      /** Publish chunk indexes (adaptive updates); default true, as `clgw-release build` does. */
      chunkIndex?: boolean;
    },
  ): Promise<void>;
  close(): Promise<void>;
}

/**
 * A mirror serving a release tree and a factory-fresh virtual appliance on 1.0.0, booted into
 * slot A by the boot emulator's bootloader pass.
 */
export async function makeWorld(
  opts: {
    config?: Record<string, unknown>;
    platform?: 'physical' | 'virtual' | 'kvm';
    trustMirror?: boolean;
    /** Run the first bootloader pass (for in-process agents); false when the boot emulator runs it. */
    boot?: boolean;
    /** Pace every mirror response body to about this many bytes per second (a visible download). */
    mirrorRate?: number;
    /** What the factory installed into slot A (default: the small test images of 1.0.0). */
    factory?: ReleaseImages;
    /** Size of each root partition (default 24 MiB). */
    rootSlotMiB?: number;
    /** The support CA's public key the simulated appliance's sshd trusts (none: no certificate is). */
    supportCaPub?: string;
  } = {},
): Promise<World> {
  const dir = await tempDir('world');
  const tree = path.join(dir, 'mirror');
  await fs.mkdir(tree, { recursive: true });
  const mirror = await startMirror({
    tree,
    tlsDir: path.join(CACHE, 'tls'),
    rateBytesPerSecond: opts.mirrorRate,
  });
  const k = testKeys();
  const root = path.join(dir, 'appliance');
  await createAppliance({
    root,
    factory: opts.factory ?? (await testImages('1.0.0')),
    platform: opts.platform ?? 'virtual',
    baseUrl: `${mirror.url}/`,
    releaseRootPem: k.root.certPem,
    mirrorCaPem: opts.trustMirror === false ? undefined : mirror.caPem,
    bootSlotMiB: 16,
    rootSlotMiB: opts.rootSlotMiB ?? 24,
    supportCaPub: opts.supportCaPub,
    config: { updateAtBoot: false, ...opts.config },
  });
  if (opts.boot !== false) await bootOnce(root);
  return {
    dir,
    tree,
    root,
    paths: appliancePaths(root),
    mirror,
    keys: k,
    publish: async (version, p = {}) => {
      const images = await testImages(version, { brokenHealth: p.broken });
      await buildRelease({
        tree,
        keys: p.keys ?? k,
        version,
        platforms: p.platforms ?? ['physical', 'virtual', 'kvm'],
        boot: images.boot,
        root: images.root,
        minSourceVersion: p.minSourceVersion ?? '1.0.0',
        now: p.now,
        expiresInDays: p.expiresInDays,
        chunkIndex: p.chunkIndex,
      });
    },
    close: async () => {
      await mirror.close();
      // Retried: a write the stopped agent or portal had under way can land in var/ while the tree
      // is being removed (seen once: ENOTEMPTY on appliance/var), which is no fault of the test.
      await fs.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    },
  };
}

export interface RunningAgent {
  agent: Agent;
  deps: Deps;
  /** The reason of every reboot the agent asked for (refused ones too, see startAgent). */
  reboots: string[];
  stop(): Promise<void>;
}

/** How the in-process agent is started. */
export interface AgentOptions {
  /**
   * Reboots for which the reboot port fails, as `systemctl reboot` can (the reason is recorded
   * first): a Factory Reset whose hand-over to the recovery system then fails back to `failed`.
   */
  rebootFails?: (reason: string) => boolean;
  /**
   * The agent's clock (default: the system's), as main.ts would pass it: e.g. a ManualClock at
   * 1970 for an appliance whose clock NTP has not set yet. Its log is stamped by it too.
   */
  clock?: Clock;
  /**
   * Wait for its start to settle (default): false returns at once, for an agent that resumes a
   * state that never settles by itself (waiting for calls to end).
   */
  settle?: boolean;
}

/** Starts the agent in this process on the world's appliance, from its persisted journal. */
export async function startAgent(world: World, opts: AgentOptions = {}): Promise<RunningAgent> {
  const reboots: string[] = [];
  const clock = opts.clock ?? systemClock;
  const log = fileLogger({ file: world.paths.logFile, clock });
  const deps = await composeDeps({
    paths: world.paths,
    clock,
    log,
    reboot: {
      reboot: async (reason) => {
        reboots.push(reason);
        if (opts.rebootFails?.(reason))
          throw new ClgwError('INTERNAL', `reboot (${reason}) failed: the test's reboot port refused it`);
      },
    },
  });
  const agent = new Agent(deps, await readJournal(world.paths.journal));
  agent.start();
  // Started up when it settles — or when it asks for a reboot (confirming a failed slot).
  await new Promise<void>((resolve) => {
    if (opts.settle === false) return resolve();
    const timer = setInterval(() => reboots.length > 0 && done(), 20);
    const done = () => {
      clearInterval(timer);
      resolve();
    };
    void agent.waitSettled().then(done);
  });
  return {
    agent,
    deps,
    reboots,
    stop: async () => {
      await agent.stop();
      await log.flush();
    },
  };
}

/** SHA-256 of each file that a failed update must leave untouched. */
export async function fingerprint(paths: AppliancePaths): Promise<Record<string, string>> {
  const files = {
    boot_a: paths.partition('boot', 'A'),
    root_a: paths.partition('root', 'A'),
    grubenv: paths.grubenv,
  };
  const out: Record<string, string> = {};
  for (const [name, file] of Object.entries(files)) {
    out[name] = createHash('sha256')
      .update(await fs.readFile(file))
      .digest('hex');
  }
  return out;
}

/**
 * {@link fingerprint} plus slot B and every file on the data partition but those named in `except`
 * (relative to it): what a refused operation must leave byte for byte as it was.
 */
export async function fingerprintAll(
  paths: AppliancePaths,
  except: ReadonlySet<string>,
): Promise<Record<string, string>> {
  const out = await fingerprint(paths);
  const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  for (const kind of ['boot', 'root'] as const)
    out[`${kind}_b`] = sha256(await fs.readFile(paths.partition(kind, 'B')));
  for (const entry of await fs.readdir(paths.dataDir, { recursive: true, withFileTypes: true })) {
    const name = path.relative(paths.dataDir, path.join(entry.parentPath, entry.name));
    if (entry.isFile() && !except.has(name))
      out[name] = sha256(await fs.readFile(path.join(paths.dataDir, name)));
  }
  return out;
}

/** Polls `probe` until it returns something other than undefined/false (errors count as not yet). */
export async function until<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  ms = 90_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve()
      .then(probe)
      .catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
