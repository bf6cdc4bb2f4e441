/**
 * `make bench`: the update path measured side by side with its peers, in one run on one machine
 * over the same files and the same loopback HTTPS mirror (scripts/lib/mirror.ts).
 *
 * 1 Full install of a 512 MiB root image (incompressible bytes), published as `clgw-release build`
 *   publishes every release (chunk index and chunk pack beside it), onto an appliance whose active
 *   slot holds an unrelated image (the factory one):
 *     agent   fresh simulated appliance, boot pass, `node agent/dist/clgw-agent.mjs` with updateAtBoot;
 *             the root artifact's window from its log: index download, the probe of the active
 *             slot (it holds nothing the release needs), then download+hash+write+fsync
 *     RAUC    RAUC 1.8 installs a bundle of the same image from the same mirror into a raw slot
 *             that is a file (scripts/bench/rauc.ts, configs in scripts/bench/rauc/)
 *     limit   the slowest of mirror read (curl), SHA-256 (openssl dgst) and slot write, each alone,
 *             and a reference C pipeline doing all three at once (scripts/bench/stages.ts)
 *     CPU     user+system CPU-seconds per GB installed: the agent's whole process, RAUC's process
 *             tree, the reference pipeline (from /proc)
 * 2 Delta: two pairs of real ext4 images of the same size (scripts/bench/delta-images.ts), ~1 % of
 *   4 KiB blocks changed scattered, and one package upgraded. Bytes the mirror served: to the agent
 *   updating slot A (old) to the new release, and to `casync extract --seed=old` (scripts/bench/casync.ts).
 * 3 Peak RSS of the agent during 1 and 2 (its log's maxRssKiB, VmHWM, and /proc VmHWM sampled every
 *   50 ms), with the largest anonymous and file-backed parts sampled.
 * 4 A customer's link (as root; scripts/bench/link.ts): the full install and both delta cases by the
 *   agent, RAUC and casync from a network namespace behind a shaped veth, and a full install whose
 *   link goes down for 30 s half-way (the extra bytes its resume cost); and a stand-in voice call
 *   (scripts/bench/voice.ts: 50 RTP packets/s of 172 bytes each way, as G.711 at 20 ms) across the
 *   link alone, then during a full install by the agent without and with a download budget of
 *   80 % of the link (issue #22): its loss and RFC 3550 jitter, and the update's time.
 *
 * Each figure is a median of BENCH_RUNS runs (default 3) with min and max; stages are interleaved
 * run by run, so drift in the machine's load touches all alike. Prints a table (MB = 10^6 bytes),
 * whether each goal is met (reported, never fatal) and, as its last line, one JSON object. Exits
 * non-zero only when something broke, naming it. Environment: BENCH_RUNS, BENCH_ARTIFACT_MIB
 * (default 512; the delta images are as large), BENCH_NODE_ARGS (extra node options for the agent),
 * BENCH_SETTLE_MS (pause, after a sync, before each stage that writes a slot, default 3000; see `settle`),
 * BENCH_LINK_MBIT (the link's rate, default 50; 0 skips 4), BENCH_LINK_MIB (its images' size, default
 * BENCH_ARTIFACT_MIB), BENCH_LINK_RUNS (default BENCH_RUNS).
 * Inputs are kept in .cache/bench and reused; appliance roots and slot files are removed after
 * use; every process the bench starts, it stops.
 */

import type { ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import {
  buildRelease,
  type DevKeys,
  generateDevKeys,
  loadKeys,
  saveKeys,
} from '../image/src/release/index.js';
import { mbps, summarise } from './bench/agent-log.js';
import { type AgentRunOptions, type AgentSample, agentRun } from './bench/agent-run.js';
import { type CasyncSample, type CasyncStore, casyncExtract, ensureCasyncStore } from './bench/casync.js';
import {
  BENCH,
  BenchBroken,
  envInt,
  killAll,
  MIB,
  mirrorTrustDir,
  RUNS,
  say,
  seconds,
  setSettleMs,
  settleDelayMs,
} from './bench/common.js';
import { type DeltaImages, ensureDeltaImages, newContentFloor } from './bench/delta-images.js';
import { closeAllLinks, createLink, type Link, linkUrl } from './bench/link.js';
import {
  ensureRaucBundle,
  type RaucBundle,
  type RaucPeer,
  type RaucSample,
  startRauc,
} from './bench/rauc.js';
import {
  concurrentStage,
  curlStage,
  mirrorStage,
  nodeSha256Stage,
  opensslStage,
  pipelineStage,
  type StageInput,
  sha256Stage,
  type Timed,
  writeStage,
} from './bench/stages.js';
import {
  type CallStats,
  callAlone,
  callDuringUpdate,
  type DirectionStats,
  VOICE,
  VOICE_PACKET_BYTES,
  worse,
} from './bench/voice.js';
import { type Mirror, startMirror } from './lib/mirror.js';
import { AGENT_MAIN, AGENT_NODE_OPTIONS } from './sim/boot-emulator.js';
import { buildReleaseImages, type ReleaseImages } from './sim/images.js';

const FACTORY_VERSION = '1.0.0';
const VERSION = '2.0.0';
const ROOT_REL = `releases/${VERSION}/root.img`;
const GOAL = {
  limitRatio: 0.9,
  pipelineRatio: 0.9,
  cpuVsPipeline: 1.3,
  rssMiB: 64,
  delta1pctShare: 0.05,
  /** Issue #21, point 4 (it was 1.5 under #8). */
  vsCasync: 0.67,
  linkShare: 0.9,
  linkDelta1pctShare: 0.05,
  resumeExtraBytes: MIB,
  /** Issue #22: a call beside a budgeted download, and what the budget may cost the download. */
  voiceLossPct: 0.5,
  voiceJitterMs: 20,
  voiceSlowdown: 1.3,
};
/** Loss on the customer's link, mirror → appliance (%). */
const LINK_LOSS_PCT = 0.2;
const LINK_OUTAGE_MS = 30_000;
/**
 * `clgw retry` requests the bench makes should the outage fail the update: the agent resumes a
 * download stopped by a transient failure by itself (agent/src/actors/download-resume.ts), so
 * none is expected; the run line says whether one was needed.
 */
const LINK_RETRIES = 5;
/** The download budget of the voice runs, as a share of the link's rate (issue #22). */
const VOICE_BUDGET_SHARE = 0.8;
/** How long the call's baseline (the call alone on the link) is counted. */
const VOICE_ALONE_SECONDS = 10;
const TOOLS: [string, string][] = [
  ['mkfs.ext4', 'e2fsprogs'],
  ['debugfs', 'e2fsprogs'],
  ['sha256sum', 'coreutils'],
  ['openssl', 'openssl'],
  ['casync', 'casync'],
  ['rauc', 'rauc'],
  ['mksquashfs', 'squashfs-tools, which rauc bundle runs'],
  ['dbus-daemon', 'dbus-daemon'],
  ['dbus-send', 'dbus-bin'],
  ['unshare', 'util-linux'],
];

type DeltaCase = '1pct' | 'pkg';
const CASES: DeltaCase[] = ['1pct', 'pkg'];
const CASE_LABEL: Record<DeltaCase, string> = { '1pct': '1 % of blocks', pkg: 'package upgrade' };

// ---------------------------------------------------------------------------------------------
// Preparation (cached in .cache/bench)

async function missingTools(): Promise<string[]> {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  const missing: string[] = [];
  for (const [bin, pkg] of TOOLS) {
    let found = false;
    for (const d of dirs) {
      if (
        await fs.access(path.join(d, bin), fs.constants.X_OK).then(
          () => true,
          () => false,
        )
      ) {
        found = true;
        break;
      }
    }
    if (!found) missing.push(`${bin} (Debian ${pkg})`);
  }
  return missing;
}

async function devKeys(): Promise<DevKeys> {
  const dir = path.join(BENCH, 'keys');
  try {
    return await loadKeys(dir);
  } catch {
    const keys = generateDevKeys({ bits: 2048 });
    await saveKeys(dir, keys, { overwrite: true });
    return keys;
  }
}

/**
 * The incompressible root artifact of the full install, written straight into the release tree
 * (publishing a file onto itself only hashes it): AES-256-CTR keystream under a fixed key, so
 * every machine and every run gets the same bytes. A stamp says which generator and size made it.
 */
async function ensureRootArtifact(base: string, file: string, bytes: number): Promise<void> {
  const stampFile = path.join(base, 'root-artifact.json');
  const stamp = JSON.stringify({ generator: 'aes-256-ctr/clgw-bench/v1', bytes, file });
  const current = await fs.readFile(stampFile, 'utf8').catch(() => '');
  const size = await fs.stat(file).then(
    (s) => s.size,
    () => -1,
  );
  if (current === stamp && size === bytes) return;

  const t0 = process.hrtime.bigint();
  await fs.rm(stampFile, { force: true });
  await fs.mkdir(path.dirname(file), { recursive: true });
  const key = createHash('sha256').update('clgw bench root artifact').digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(4 * MIB);
  const temp = `${file}.tmp`;
  const h = await fs.open(temp, 'w');
  try {
    for (let off = 0; off < bytes; ) {
      const data = cipher.update(zeros.subarray(0, Math.min(zeros.length, bytes - off)));
      for (let done = 0; done < data.length; ) {
        const { bytesWritten } = await h.write(data, done, data.length - done, off + done);
        done += bytesWritten;
      }
      off += data.length;
    }
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.rename(temp, file);
  await writeFileAtomic(stampFile, stamp);
  say(`prepare: generated ${bytes / MIB} MiB root artifact in ${seconds(t0).toFixed(1)} s`);
}

/** A release tree the mirror serves: its factory release, and the root it publishes as 2.0.0. */
interface Scenario {
  tree: string;
  factory: ReleaseImages;
  rootFile: string;
  rootBytes: number;
  rootSha256: string;
  bootBytes: number;
}

/** Publishes 2.0.0 (boot + root) into a tree with clgw-release's library, as a fresh signed document. */
async function publish(tree: string, keys: DevKeys, boot: string, root: string, factory: ReleaseImages) {
  await fs.rm(path.join(tree, 'compat.yaml'), { force: true });
  await fs.rm(path.join(tree, 'compat.yaml.sig'), { force: true });
  const built = await buildRelease({
    tree,
    keys,
    version: VERSION,
    platforms: ['virtual'],
    boot,
    root,
    minSourceVersion: FACTORY_VERSION,
  });
  return {
    tree,
    factory,
    rootFile: path.join(tree, ROOT_REL),
    rootBytes: built.artifacts.root.size,
    rootSha256: built.artifacts.root.sha256,
    bootBytes: built.artifacts.boot.size,
  } satisfies Scenario;
}

interface Prepared {
  keys: DevKeys;
  full: Scenario;
  delta: Record<
    DeltaCase,
    Scenario & {
      store: CasyncStore;
      changedBlocks: number;
      floor: Awaited<ReturnType<typeof newContentFloor>>;
    }
  >;
  images: DeltaImages;
  bundle: RaucBundle;
}

/** The inputs in `base` (.cache/bench, or .cache/bench/link for the link's own size). */
async function prepare(artifactMiB: number, base: string = BENCH): Promise<Prepared> {
  const trees = path.join(base, 'trees');
  const imagesDir = path.join(base, 'images');
  await fs.mkdir(imagesDir, { recursive: true });
  const fullTree = path.join(trees, 'full');
  const treeOf = (c: DeltaCase) => path.join(trees, `delta-${c}`);
  const [keys, factory, target, images] = await Promise.all([
    devKeys(),
    buildReleaseImages({ version: FACTORY_VERSION, outDir: imagesDir, payloadMiB: 2 }),
    buildReleaseImages({ version: VERSION, outDir: imagesDir, payloadMiB: 1 }),
    ensureDeltaImages({
      workDir: path.join(base, 'delta'),
      new1pct: path.join(treeOf('1pct'), ROOT_REL),
      newPkg: path.join(treeOf('pkg'), ROOT_REL),
      imageMiB: artifactMiB,
    }),
    ensureRootArtifact(base, path.join(fullTree, ROOT_REL), artifactMiB * MIB),
  ]);
  const full = await publish(fullTree, keys, target.boot, path.join(fullTree, ROOT_REL), factory);
  const deltaFactory: ReleaseImages = { version: FACTORY_VERSION, boot: factory.boot, root: images.old.file };
  const delta = {} as Prepared['delta'];
  for (const c of CASES) {
    const tree = treeOf(c);
    const s = await publish(tree, keys, target.boot, path.join(tree, ROOT_REL), deltaFactory);
    const img = c === '1pct' ? images.new1pct : images.newPkg;
    if (s.rootSha256 !== img.sha256)
      throw new BenchBroken(`${s.rootFile} has sha256 ${s.rootSha256}, the image built was ${img.sha256}`);
    delta[c] = {
      ...s,
      store: await ensureCasyncStore(tree, s.rootFile, s.rootSha256),
      changedBlocks: img.changedBlocks,
      floor: await newContentFloor(images.old.file, img.file, images.imageBytes, path.join(base, 'delta')),
    };
  }
  const bundle = await ensureRaucBundle({
    tree: fullTree,
    image: full.rootFile,
    imageSha256: full.rootSha256,
    version: VERSION,
    workDir: path.join(base, 'rauc'),
  });
  return { keys, full, delta, images, bundle };
}

// ---------------------------------------------------------------------------------------------
// A customer's link (scripts/bench/link.ts)

interface LinkSamples {
  link: Link['shape'];
  artifactMiB: number;
  rootBytes: number;
  full: AgentSample[];
  resume: AgentSample[];
  /** Root bytes served beyond the same run's uninterrupted install. */
  resumeExtra: number[];
  /** The same, as bytes the appliance's end of the link received (Link.received). */
  resumeExtraLink: number[];
  rauc: RaucSample[];
  delta: Record<DeltaCase, AgentSample[]>;
  casync: Record<DeltaCase, CasyncSample[]>;
  /** The agent's download budget in the voice runs, Mbit/s. */
  voiceBudgetMbit: number;
  voice: VoiceSample[];
}

type VoiceCase = 'alone' | 'free' | 'budget';
/** One run of the stand-in call: alone, then beside a full install without and with the budget. */
type VoiceSample = Record<VoiceCase, CallStats> & {
  /** The agent's whole update (checking → rebooting), as the other link runs measure it. */
  freeSeconds: number;
  budgetSeconds: number;
  /** Packets of every flow the link dropped across each case (Link.drops). */
  drops: Record<VoiceCase, { queue: number; loss: number }>;
};

/**
 * Full install, both delta cases and a full install with a 30 s outage half-way, by the agent,
 * RAUC and casync, each from the appliance side of a shaped link, then the stand-in call (alone,
 * and beside a full install without and with the download budget); `runs` times, interleaved.
 */
async function linkPhase(o: {
  keys: DevKeys;
  artifactMiB: number;
  runs: number;
  mbit: number;
  lossPct: number;
  outageMs: number;
  nodeArgs: string[];
  p: Prepared;
}): Promise<LinkSamples> {
  const { p } = o;
  const slotMiB = o.artifactMiB + 8;
  const tlsDir = path.join(BENCH, 'tls');
  const out: LinkSamples = {
    link: { mbit: o.mbit, lossPct: o.lossPct, rttMs: 0 },
    artifactMiB: o.artifactMiB,
    rootBytes: p.full.rootBytes,
    full: [],
    resume: [],
    resumeExtra: [],
    resumeExtraLink: [],
    rauc: [],
    delta: { '1pct': [], pkg: [] },
    casync: { '1pct': [], pkg: [] },
    voiceBudgetMbit: VOICE_BUDGET_SHARE * o.mbit,
    voice: [],
  };
  const link = await createLink({ mbit: o.mbit, lossPct: o.lossPct });
  out.link = link.shape;
  const mirrors: Mirror[] = [];
  let rauc: RaucPeer | undefined;
  try {
    const start = async (tree: string) => {
      const m = await startMirror({ tree, tlsDir, host: link.mirrorHost });
      mirrors.push(m);
      return { mirror: m, baseUrl: linkUrl(link, m.port) };
    };
    const full = await start(p.full.tree);
    const delta = {} as Record<DeltaCase, Awaited<ReturnType<typeof start>>>;
    for (const c of CASES) delta[c] = await start(p.delta[c].tree);
    const trustDir = await mirrorTrustDir(path.join(RUNS, 'trust-link'), full.mirror.caPem);
    rauc = await startRauc({
      runDir: path.join(RUNS, 'rauc-link'),
      slotBytes: slotMiB * MIB,
      trustDir,
      cert: p.bundle.cert,
      mirror: full.mirror,
      bundle: p.bundle,
      imageBytes: p.full.rootBytes,
      imageSha256: p.full.rootSha256,
      netns: link.netns,
      baseUrl: full.baseUrl,
    });
    const applianceRoot = (label: string) => path.join(RUNS, `appliance-link-${label}`);
    const agent = (
      label: string,
      m: typeof full,
      s: Scenario,
      more: Pick<AgentRunOptions, 'during' | 'beforeAgent' | 'retries' | 'config'> = {},
    ) =>
      agentRun(applianceRoot(label), {
        label: `link-${label}`,
        mirror: m.mirror,
        baseUrl: m.baseUrl,
        netns: link.netns,
        factory: s.factory,
        releaseRootPem: o.keys.root.certPem,
        slotMiB,
        nodeArgs: o.nodeArgs,
        version: VERSION,
        rootBytes: s.rootBytes,
        rootSha256: s.rootSha256,
        // The outage and voice runs are timed as a whole.
        installTimings: s === p.full && !more.during,
        ...more,
      });
    /** An agent run, with the bytes the appliance's end of the link received during it. */
    const counted = async (run: () => Promise<AgentSample>) => {
      const before = await link.received();
      const sample = await run();
      return { sample, received: (await link.received()) - before };
    };
    for (let i = 1; i <= o.runs; i++) {
      const { sample: a, received: aLink } = await counted(() => agent(`full-${i}`, full, p.full));
      out.full.push(a);
      const r = await rauc.install(i);
      out.rauc.push(r);
      // Half-way through the root artifact (by bytes the mirror sent), the link goes down.
      let outageAt = -1;
      const half = (child: ChildProcess) => async () => {
        while (child.exitCode === null && child.signalCode === null) {
          const sent = full.mirror.stats(`/${ROOT_REL}`).bytes;
          if (sent >= p.full.rootBytes / 2) {
            outageAt = sent;
            await link.outage(o.outageMs);
            return;
          }
          await new Promise((res) => setTimeout(res, 100));
        }
      };
      const { sample: b, received: bLink } = await counted(() =>
        // A failed download may be retried (see LINK_RETRIES).
        agent(`resume-${i}`, full, p.full, { during: (child) => half(child)(), retries: LINK_RETRIES }),
      );
      if (outageAt < 0) throw new BenchBroken(`link resume run ${i}: the install ended before half-way`);
      out.resume.push(b);
      out.resumeExtra.push(b.served.root - a.served.root);
      out.resumeExtraLink.push(bLink - aLink);
      say(
        `link run ${i}/${o.runs} full: agent update ${a.updateSeconds.toFixed(2)} s (root ${mbps(p.full.rootBytes, a.installSeconds!).toFixed(2)} MB/s); ` +
          `RAUC ${r.seconds.toFixed(2)} s; with a ${o.outageMs / 1000} s outage at ${outageAt} bytes: ` +
          `${b.updateSeconds.toFixed(2)} s, root served ${b.served.root} vs ${a.served.root} bytes (${b.served.requests} requests), ` +
          `link received ${bLink} vs ${aLink} bytes` +
          `${b.retried ? `; ${b.retried} Retry request(s) after: ${b.failures.join(' | ')}` : '; no Retry needed'}`,
      );
      for (const c of CASES) {
        const d = p.delta[c];
        const ad = await agent(`${c}-${i}`, delta[c], d);
        out.delta[c].push(ad);
        const cs = await casyncExtract({
          mirror: delta[c].mirror,
          baseUrl: delta[c].baseUrl,
          netns: link.netns,
          store: d.store,
          seed: p.images.old.file,
          out: path.join(RUNS, `casync-link-${c}-${i}.img`),
          trustDir,
          imageBytes: d.rootBytes,
          imageSha256: d.rootSha256,
        });
        out.casync[c].push(cs);
        say(
          `link run ${i}/${o.runs} ${CASE_LABEL[c]}: agent ${ad.updateSeconds.toFixed(2)} s (${ad.served.total - ad.served.boot} bytes), ` +
            `casync extract ${cs.seconds.toFixed(2)} s (${cs.bytes} bytes)`,
        );
      }
      // The stand-in call: alone (this machine's floor), then beside a full install by the agent
      // without and with its download budget.
      const dropsAcross = async <T>(run: () => Promise<T>) => {
        const before = await link.drops();
        const value = await run();
        const after = await link.drops();
        return { value, drops: { queue: after.queue - before.queue, loss: after.loss - before.loss } };
      };
      const alone = await dropsAcross(() => callAlone(link, VOICE_ALONE_SECONDS));
      const voiceRun = async (label: string, budgetMbit?: number) => {
        const {
          value: { call, result },
          drops,
        } = await dropsAcross(() =>
          callDuringUpdate(link, appliancePaths(applianceRoot(label)).logFile, (hooks) =>
            agent(label, full, p.full, {
              ...hooks,
              ...(budgetMbit === undefined ? {} : { config: { downloadBudgetMbit: budgetMbit } }),
            }),
          ),
        );
        return { call, seconds: result.updateSeconds, drops };
      };
      const free = await voiceRun(`voice-free-${i}`);
      const budget = await voiceRun(`voice-budget-${i}`, out.voiceBudgetMbit);
      out.voice.push({
        alone: alone.value,
        free: free.call,
        budget: budget.call,
        freeSeconds: free.seconds,
        budgetSeconds: budget.seconds,
        drops: { alone: alone.drops, free: free.drops, budget: budget.drops },
      });
      const line = (c: CallStats, drops: { queue: number; loss: number }) => {
        const d = (x: DirectionStats) =>
          `loss ${x.lost}/${x.expected} (${x.lossPct.toFixed(2)} %), jitter ${x.jitterMs.toFixed(2)} ms ` +
          `(mean ${x.jitterMeanMs.toFixed(2)})`;
        return (
          `to the appliance ${d(c.toAppliance)}, from it ${d(c.fromAppliance)} over ${c.windowSeconds.toFixed(1)} s; ` +
          `the link dropped ${drops.queue} packet(s) at the shaper's queue, ${drops.loss} by its loss rule (all flows)`
        );
      };
      say(`link run ${i}/${o.runs} voice alone: ${line(alone.value, alone.drops)}`);
      say(
        `link run ${i}/${o.runs} voice, update without budget ${free.seconds.toFixed(2)} s: ${line(free.call, free.drops)}`,
      );
      say(
        `link run ${i}/${o.runs} voice, update with a ${out.voiceBudgetMbit} Mbit/s budget ${budget.seconds.toFixed(2)} s: ` +
          line(budget.call, budget.drops),
      );
    }
  } finally {
    await rauc?.stop();
    for (const m of mirrors) await m.close();
    await link.close();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Report

const f1 = (n: number) => n.toFixed(1);
const round = (n: number, digits: number) => Number(n.toFixed(digits));
const mb = (bytes: number) => bytes / 1e6;

function table(
  title: string,
  unit: string,
  /** `digits`: decimals shown (default 1). */
  rows: { label: string; values: number[]; extra?: string; digits?: number }[],
): void {
  const width = Math.max(...rows.map((r) => r.label.length), title.length);
  say(`${title.padEnd(width)}  ${`median ${unit}`.padStart(13)}  ${'min'.padStart(8)}  ${'max'.padStart(8)}`);
  say(`${'-'.repeat(width)}  ${'-'.repeat(13)}  ${'-'.repeat(8)}  ${'-'.repeat(8)}`);
  for (const r of rows) {
    const s = summarise(r.values);
    const f = (n: number) => n.toFixed(r.digits ?? 1);
    say(
      `${r.label.padEnd(width)}  ${f(s.median).padStart(13)}  ${f(s.min).padStart(8)}  ${f(s.max).padStart(8)}` +
        (r.extra ? `  ${r.extra}` : ''),
    );
  }
}

/** [min, max] of samples, rounded like the medians beside them. */
const range = (xs: number[]) => {
  const s = summarise(xs);
  return [round(s.min, 3), round(s.max, 3)];
};

const verdict = (ok: boolean | null) => (ok === null ? 'not measured' : ok ? 'met' : 'NOT met');

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const runs = envInt('BENCH_RUNS', 3, 1);
  const artifactMiB = envInt('BENCH_ARTIFACT_MIB', 512, 1);
  const slotMiB = artifactMiB + 8;
  setSettleMs(envInt('BENCH_SETTLE_MS', 3000, 0));
  const nodeArgs = [
    ...AGENT_NODE_OPTIONS,
    ...(process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
  ];
  await fs.stat(AGENT_MAIN).catch(() => {
    throw new BenchBroken(`${AGENT_MAIN} is missing: build first (make build)`);
  });
  const missing = await missingTools();
  if (missing.length)
    throw new BenchBroken(
      `missing on this machine: ${missing.join(', ')}; scripts/setup's bench group is meant to install them`,
    );
  const asRoot = process.getuid?.() === 0;

  await fs.rm(RUNS, { recursive: true, force: true });
  await fs.mkdir(RUNS, { recursive: true, mode: 0o700 });
  await fs.mkdir(BENCH, { recursive: true });
  // The first benchmark's tree (.cache/bench/mirror) is replaced by .cache/bench/trees.
  await fs.rm(path.join(BENCH, 'mirror'), { recursive: true, force: true });
  for (const name of await fs.readdir(BENCH))
    if (/^agent-.*-failed\.log$/.test(name)) await fs.rm(path.join(BENCH, name), { force: true });
  const t0 = process.hrtime.bigint();
  const p = await prepare(artifactMiB);
  say(
    `prepare: ${path.relative(process.cwd(), BENCH) || BENCH} ready in ${seconds(t0).toFixed(1)} s ` +
      `(root ${artifactMiB} MiB, sha256 ${p.full.rootSha256.slice(0, 12)}…; RAUC bundle ${p.bundle.bytes} bytes)`,
  );

  const tlsDir = path.join(BENCH, 'tls');
  const mirrors: Mirror[] = [];
  let rauc: RaucPeer | undefined;
  const agentFull: AgentSample[] = [];
  const raucRuns: RaucSample[] = [];
  const stage = {
    curl: [] as Timed[],
    openssl: [] as Timed[],
    pipeline: [] as Timed[],
    mirror: [] as number[],
    sha256: [] as number[],
    write: [] as number[],
    nodeSha256: [] as number[],
    both: [] as number[],
  };
  const agentDelta: Record<DeltaCase, AgentSample[]> = { '1pct': [], pkg: [] };
  const casync: Record<DeltaCase, CasyncSample[]> = { '1pct': [], pkg: [] };
  let raucRssKiB = 0;
  const load = os.loadavg()[0]!;
  const linkMbit = envInt('BENCH_LINK_MBIT', 50, 0);
  const linkMiB = envInt('BENCH_LINK_MIB', artifactMiB, 1);
  const linkRuns = envInt('BENCH_LINK_RUNS', runs, 1);
  let linked: LinkSamples | undefined;
  try {
    // One mirror per tree, started one after the other (they share the test CA in tlsDir).
    const fullMirror = await startMirror({ tree: p.full.tree, tlsDir });
    mirrors.push(fullMirror);
    const deltaMirror = {} as Record<DeltaCase, Mirror>;
    for (const c of CASES) {
      deltaMirror[c] = await startMirror({ tree: p.delta[c].tree, tlsDir });
      mirrors.push(deltaMirror[c]);
    }
    const trustDir = await mirrorTrustDir(path.join(RUNS, 'trust'), fullMirror.caPem);
    const input: StageInput = {
      mirror: fullMirror,
      urlPath: `/${ROOT_REL}`,
      file: p.full.rootFile,
      bytes: p.full.rootBytes,
      sha256: p.full.rootSha256,
      slotBytes: slotMiB * MIB,
    };
    if (asRoot)
      rauc = await startRauc({
        runDir: path.join(RUNS, 'rauc'),
        slotBytes: slotMiB * MIB,
        trustDir,
        cert: p.bundle.cert,
        mirror: fullMirror,
        bundle: p.bundle,
        imageBytes: p.full.rootBytes,
        imageSha256: p.full.rootSha256,
      });
    else say('RAUC: not run: it loop-mounts its bundle, which needs root');

    for (let i = 1; i <= runs; i++) {
      // Interleaved, so drift in the machine's load touches every stage alike.
      const a = await agentRun(path.join(RUNS, `appliance-full-${i}`), {
        label: `full-run-${i}`,
        mirror: fullMirror,
        factory: p.full.factory,
        releaseRootPem: p.keys.root.certPem,
        slotMiB,
        nodeArgs,
        version: VERSION,
        rootBytes: p.full.rootBytes,
        rootSha256: p.full.rootSha256,
        installTimings: true,
      });
      agentFull.push(a);
      stage.curl.push(await curlStage(input));
      stage.openssl.push(await opensslStage(input));
      stage.pipeline.push(await pipelineStage(i, input));
      stage.mirror.push(await mirrorStage(input));
      stage.sha256.push(await sha256Stage(input));
      stage.write.push(await writeStage(i, input));
      stage.nodeSha256.push(await nodeSha256Stage(input));
      stage.both.push(await concurrentStage(i, input));
      const r = rauc ? await rauc.install(i) : undefined;
      if (r) raucRuns.push(r);
      say(
        `run ${i}/${runs} full: agent install (read-back included) ${a.installSeconds!.toFixed(2)} s, verify phase ${a.verifySeconds!.toFixed(2)} s, ` +
          `update ${a.updateSeconds.toFixed(2)} s, served ${a.served.total} bytes (boot ${a.served.boot}), peak RSS ${f1(Math.max(a.peakRssKiBLog, a.peakRssKiBSampled) / 1024)} MiB (anonymous ${f1(a.peakAnonKiB / 1024)}); ` +
          `agent CPU ${a.cpuSeconds.toFixed(2)} s; ` +
          `RAUC ${r ? `${r.seconds.toFixed(2)} s (CPU ${r.cpuSeconds.toFixed(2)} s)` : 'not run'}; ` +
          `curl ${stage.curl.at(-1)!.seconds.toFixed(2)} s, openssl ${stage.openssl.at(-1)!.seconds.toFixed(2)} s, ` +
          `pipeline ${stage.pipeline.at(-1)!.seconds.toFixed(2)} s (CPU ${stage.pipeline.at(-1)!.cpuSeconds.toFixed(2)} s); ` +
          `mirror (agent client) ${stage.mirror.at(-1)!.toFixed(2)} s, ` +
          `sha256sum ${stage.sha256.at(-1)!.toFixed(2)} s, write ${stage.write.at(-1)!.toFixed(2)} s, ` +
          `node sha256 ${stage.nodeSha256.at(-1)!.toFixed(2)} s, read ∥ write ${stage.both.at(-1)!.toFixed(2)} s`,
      );
      for (const c of CASES) {
        const d = p.delta[c];
        const ad = await agentRun(path.join(RUNS, `appliance-${c}-${i}`), {
          label: `delta-${c}-run-${i}`,
          mirror: deltaMirror[c],
          factory: d.factory,
          releaseRootPem: p.keys.root.certPem,
          slotMiB,
          nodeArgs,
          version: VERSION,
          rootBytes: d.rootBytes,
          rootSha256: d.rootSha256,
          installTimings: false,
        });
        agentDelta[c].push(ad);
        const cs = await casyncExtract({
          mirror: deltaMirror[c],
          store: d.store,
          seed: p.images.old.file,
          out: path.join(RUNS, `casync-${c}-${i}.img`),
          trustDir,
          imageBytes: d.rootBytes,
          imageSha256: d.rootSha256,
        });
        casync[c].push(cs);
        say(
          `run ${i}/${runs} ${CASE_LABEL[c]}: agent ${ad.served.total - ad.served.boot} bytes ` +
            `(root ${ad.served.root}, compat ${ad.served.compat}, other ${ad.served.other}; boot ${ad.served.boot} not counted; ` +
            `${ad.served.requests} requests) in ${ad.updateSeconds.toFixed(2)} s, peak RSS ` +
            `${f1(Math.max(ad.peakRssKiBLog, ad.peakRssKiBSampled) / 1024)} MiB (anonymous ${f1(ad.peakAnonKiB / 1024)}); casync ${cs.bytes} bytes ` +
            `(${cs.chunksFetched} chunks, ${cs.chunkBytesUncompressed} uncompressed) in ${cs.seconds.toFixed(2)} s`,
        );
      }
    }
    if (rauc) raucRssKiB = await rauc.peakRssKiB();
    await rauc?.stop();
    for (const m of mirrors.splice(0)) await m.close();

    if (!asRoot) say('link: not run: network namespaces and tc need root');
    else if (linkMbit === 0) say('link: not run (BENCH_LINK_MBIT=0)');
    else {
      const lp = linkMiB === artifactMiB ? p : await prepare(linkMiB, path.join(BENCH, 'link'));
      linked = await linkPhase({
        keys: p.keys,
        artifactMiB: linkMiB,
        runs: linkRuns,
        mbit: linkMbit,
        lossPct: LINK_LOSS_PCT,
        outageMs: LINK_OUTAGE_MS,
        nodeArgs,
        p: lp,
      });
    }
  } finally {
    await rauc?.stop();
    for (const m of mirrors) await m.close();
    await fs.rm(RUNS, { recursive: true, force: true });
  }

  // ---- full install
  const bytes = p.full.rootBytes;
  const install = agentFull.map((a) => mbps(bytes, a.installSeconds!));
  const verify = summarise(agentFull.map((a) => a.verifySeconds!));
  const raucRates = raucRuns.map((r) => mbps(bytes, r.seconds));
  const curlMBps = stage.curl.map((s) => mbps(bytes, s.seconds));
  const opensslMBps = stage.openssl.map((s) => mbps(bytes, s.seconds));
  const pipelineMBps = stage.pipeline.map((s) => mbps(bytes, s.seconds));
  const mirrorMBps = stage.mirror.map((s) => mbps(bytes, s));
  const shaMBps = stage.sha256.map((s) => mbps(bytes, s));
  const writeMBps = stage.write.map((s) => mbps(bytes, s));
  const nodeShaMBps = stage.nodeSha256.map((s) => mbps(bytes, s));
  const bothMBps = stage.both.map((s) => mbps(bytes, s));
  const raucPhases = raucRuns.flatMap((r) => (r.phases ? [r.phases] : []));

  say('');
  say(
    `${artifactMiB} MiB root image (${bytes} bytes), ${runs} run(s), ${os.cpus().length} CPUs, ` +
      `load average ${load.toFixed(2)} at start${nodeArgs.length ? `, agent node args: ${nodeArgs.join(' ')}` : ''}; ` +
      'MB = 10^6 bytes. The machine is shared: figures are as seen, noise included.',
  );
  say('');
  table('1. full install', 'MB/s', [
    { label: 'agent install (index+probe, download+write+fsync, read-back)', values: install },
    ...(raucRates.length
      ? [{ label: 'RAUC 1.8 install (own HTTPS download, check, copy, fsync)', values: raucRates }]
      : []),
    { label: 'limit: mirror read (curl → /dev/null)', values: curlMBps },
    { label: 'limit: SHA-256 (openssl dgst -sha256 on the file)', values: opensslMBps },
    { label: 'limit: slot write (1 MiB O_DIRECT pwrite + fsync)', values: writeMBps },
    { label: 'reference pipeline: curl | tee >(openssl) | dd oflag=direct', values: pipelineMBps },
    { label: 'info: mirror read (HTTPS, agent client)', values: mirrorMBps },
    { label: 'info: sha256sum (coreutils)', values: shaMBps },
    { label: 'info: node:crypto sha256 (agent hash)', values: nodeShaMBps },
    { label: 'info: mirror read ∥ slot write, one process', values: bothMBps },
    ...(raucPhases.length === raucRuns.length && raucPhases.length
      ? [
          {
            label: 'info: RAUC download phase (libcurl → TMPDIR)',
            values: raucPhases.map((x) => mbps(p.bundle.bytes, x.downloadSeconds)),
          },
          {
            label: 'info: RAUC slot copy + fsync phase',
            values: raucPhases.map((x) => mbps(bytes, x.copySeconds)),
          },
        ]
      : []),
  ]);
  const modes = [...new Set(agentFull.map((a) => a.rootMode))].join(', ');
  say(
    'agent: the release carries a chunk index and pack, as every release does; the active slot (an unrelated ' +
      `factory image) is probed for chunks the release needs (root written: ${modes}; "full" = streamed whole)`,
  );
  const update = summarise(agentFull.map((a) => a.updateSeconds));
  say(
    `agent whole update (checking → rebooting, boot + root + read-back verify): median ${update.median.toFixed(2)} s ` +
      `(min ${update.min.toFixed(2)}, max ${update.max.toFixed(2)}); its verify phase after the download ` +
      `${verify.median.toFixed(2)} s (${verify.min.toFixed(2)}–${verify.max.toFixed(2)}): the download read both ` +
      'artifacts back behind its writes, the phase reads back only what it did not',
  );
  if (raucRuns.length) {
    const rs = summarise(raucRuns.map((r) => r.seconds));
    say(
      `RAUC whole install (rauc install https://… to exit): median ${rs.median.toFixed(2)} s ` +
        `(min ${rs.min.toFixed(2)}, max ${rs.max.toFixed(2)}); bundle ${p.bundle.bytes} bytes (plain format), ` +
        `RAUC service VmHWM ${f1(raucRssKiB / 1024)} MiB`,
    );
  }
  say(
    'slot writes: fresh ftruncate-made files like slot B, same filesystem as the slots, page cache not dropped; ' +
      `each writing stage (agent and RAUC included) starts after a sync and ${settleDelayMs()} ms idle`,
  );

  // ---- CPU per GB
  const gb = (n: number) => n / 1e9;
  const installedBytes = bytes + p.full.bootBytes;
  const agentCpu = agentFull.map((a) => a.cpuSeconds / gb(installedBytes));
  const raucCpu = raucRuns.map((r) => r.cpuSeconds / gb(bytes));
  const pipelineCpu = stage.pipeline.map((s) => s.cpuSeconds / gb(bytes));
  say('');
  table('CPU per GB installed (user+system)', 's/GB', [
    {
      label: 'agent: whole process, check to reboot request (boot+root, read-back verify)',
      values: agentCpu,
    },
    ...(raucCpu.length
      ? [{ label: 'RAUC: service + client + their children, one install', values: raucCpu }]
      : []),
    { label: 'reference pipeline: bash, curl, tee, openssl, dd', values: pipelineCpu },
    { label: 'info: curl alone', values: stage.curl.map((s) => s.cpuSeconds / gb(bytes)) },
    { label: 'info: openssl dgst alone', values: stage.openssl.map((s) => s.cpuSeconds / gb(bytes)) },
  ]);
  say(
    `CPU from /proc: the agent's and the pipeline's from the bench's reaped-children totals across their lives; ` +
      `RAUC's from its service's and dbus-daemon's /proc/PID/stat (own + waited-for children) and the client's. ` +
      `The agent writes and reads back both artifacts, boot and root, hashing each byte once (${installedBytes} bytes per GB figure's denominator; RAUC and the pipeline: ${bytes})`,
  );

  // ---- delta
  const imageBytes = p.images.imageBytes;
  const agentBytes = (c: DeltaCase) => agentDelta[c].map((a) => a.served.total - a.served.boot);
  const casyncBytes = (c: DeltaCase) => casync[c].map((s) => s.bytes);
  const pct = (n: number) => `${((100 * n) / imageBytes).toFixed(2)} % of the image`;
  say('');
  table(`2. delta: bytes downloaded (image ${imageBytes} bytes)`, 'MB', [
    ...CASES.flatMap((c) => [
      {
        label: `${CASE_LABEL[c]}: agent (mirror-served, boot artifact not counted)`,
        values: agentBytes(c).map(mb),
        extra: pct(summarise(agentBytes(c)).median),
      },
      {
        label: `${CASE_LABEL[c]}: casync (index + chunk files)`,
        values: casyncBytes(c).map(mb),
        extra: pct(summarise(casyncBytes(c)).median),
      },
    ]),
    { label: 'full image', values: [mb(imageBytes)], extra: pct(imageBytes) },
  ]);
  for (const c of CASES) {
    const cs = casync[c].at(-1)!;
    const d = p.delta[c];
    const upd = summarise(agentDelta[c].map((a) => a.updateSeconds));
    const ext = summarise(casync[c].map((s) => s.seconds));
    say(
      `${CASE_LABEL[c]}: ${d.changedBlocks} of ${p.images.totalBlocks} 4 KiB blocks differ (${pct(d.changedBlocks * 4096)}); ` +
        `casync fetched ${cs.chunksFetched} of ${d.store.index.chunks} chunks, ${cs.chunkBytesUncompressed} bytes ` +
        `uncompressed (store ${d.store.storeBytes} bytes); agent update ${upd.median.toFixed(2)} s, casync extract ` +
        `${ext.median.toFixed(2)} s (medians)`,
    );
  }
  const up = p.images.upgraded;
  say(
    `images: ${p.images.files} files in ${p.images.packages} packages; upgraded ${up.name}: ${up.filesOld} → ` +
      `${up.filesNew} files, ${up.bytesOld} → ${up.bytesNew} bytes`,
  );

  // ---- the customer's link
  const L = linked;
  const linkMBpsNominal = L ? (L.link.mbit * 1e6) / 8 / 1e6 : undefined;
  const linkFullRates = L ? L.full.map((a) => mbps(L.rootBytes, a.installSeconds!)) : [];
  const linkFullSecs = L ? L.full.map((a) => a.updateSeconds) : [];
  const linkDelta1Secs = L ? L.delta['1pct'].map((a) => a.updateSeconds) : [];
  // The call: per run, the worse of its two directions (loss and jitter each); medians over runs.
  const V = L?.voice.length ? L.voice : undefined;
  type Case = VoiceCase;
  const voiceLoss = (c: Case) => (V ? V.map((v) => worse(v[c]).lossPct) : []);
  const voiceJitter = (c: Case) => (V ? V.map((v) => worse(v[c]).jitterMs) : []);
  const voiceSecs = (c: 'free' | 'budget') =>
    V ? V.map((v) => (c === 'free' ? v.freeSeconds : v.budgetSeconds)) : [];
  const medianOr = (xs: number[]) => (xs.length ? summarise(xs).median : undefined);
  const voice = V
    ? {
        lossPctFree: medianOr(voiceLoss('free'))!,
        jitterMsFree: medianOr(voiceJitter('free'))!,
        downloadSecondsFree: medianOr(voiceSecs('free'))!,
        lossPctBudget: medianOr(voiceLoss('budget'))!,
        jitterMsBudget: medianOr(voiceJitter('budget'))!,
        downloadSecondsBudget: medianOr(voiceSecs('budget'))!,
        lossPctAlone: medianOr(voiceLoss('alone'))!,
        jitterMsAlone: medianOr(voiceJitter('alone'))!,
      }
    : undefined;
  /** Medians of one direction's figures, per case. */
  const voiceDirection = (d: 'toAppliance' | 'fromAppliance') => {
    const m = (c: Case, k: 'lossPct' | 'jitterMs' | 'jitterMeanMs') =>
      summarise(V!.map((v) => v[c][d][k])).median;
    return {
      lossPctAlone: round(m('alone', 'lossPct'), 3),
      jitterMsAlone: round(m('alone', 'jitterMs'), 2),
      jitterMeanMsAlone: round(m('alone', 'jitterMeanMs'), 2),
      lossPctFree: round(m('free', 'lossPct'), 3),
      jitterMsFree: round(m('free', 'jitterMs'), 2),
      jitterMeanMsFree: round(m('free', 'jitterMeanMs'), 2),
      lossPctBudget: round(m('budget', 'lossPct'), 3),
      jitterMsBudget: round(m('budget', 'jitterMs'), 2),
      jitterMeanMsBudget: round(m('budget', 'jitterMeanMs'), 2),
    };
  };
  /** Median packets of all flows the link dropped per case: at the shaper's queue, by the loss rule. */
  const voiceDrops = (c: Case) => ({
    queue: summarise(V!.map((v) => v.drops[c].queue)).median,
    loss: summarise(V!.map((v) => v.drops[c].loss)).median,
  });
  // ---- memory, goals, JSON
  const rssOf = (xs: AgentSample[]) =>
    Math.max(...xs.map((a) => Math.max(a.peakRssKiBLog, a.peakRssKiBSampled))) / 1024;
  const rssFull = rssOf(agentFull);
  const rssDelta = rssOf([...agentDelta['1pct'], ...agentDelta.pkg]);
  const peakRssMiB = Math.max(rssFull, rssDelta);
  const allRuns = [...agentFull, ...agentDelta['1pct'], ...agentDelta.pkg];
  const rssLog = Math.max(...allRuns.map((a) => a.peakRssKiBLog)) / 1024;
  const anonMiB = Math.max(...allRuns.map((a) => a.peakAnonKiB)) / 1024;
  const fileMiB = Math.max(...allRuns.map((a) => a.peakFileKiB)) / 1024;

  const installMBps = summarise(install).median;
  const limits = {
    curl: summarise(curlMBps).median,
    openssl: summarise(opensslMBps).median,
    write: summarise(writeMBps).median,
  };
  const pipeMBps = summarise(pipelineMBps).median;
  const ratioVsPipeline = installMBps / pipeMBps;
  const cpuSecPerGB = summarise(agentCpu).median;
  const raucCpuSecPerGB = raucCpu.length ? summarise(raucCpu).median : undefined;
  const pipelineCpuSecPerGB = summarise(pipelineCpu).median;
  const linkFullSeconds = L ? summarise(linkFullSecs).median : undefined;
  const linkFullMBps = L ? summarise(linkFullRates).median : undefined;
  const linkDelta1pctSeconds = L ? summarise(linkDelta1Secs).median : undefined;
  const resumeExtraBytes = L ? summarise(L.resumeExtra).median : undefined;
  const resumeExtraLinkBytes = L ? summarise(L.resumeExtraLink).median : undefined;
  const [limitName, limitMBps] = Object.entries(limits).sort((a, b) => a[1] - b[1])[0]!;
  const ratio = installMBps / limitMBps;
  const raucMBps = raucRates.length ? summarise(raucRates).median : undefined;
  const concurrentMBps = summarise(bothMBps).median;
  const med = (xs: number[]) => summarise(xs).median;
  const delta1 = med(agentBytes('1pct'));
  const cas1 = med(casyncBytes('1pct'));
  const deltaP = med(agentBytes('pkg'));
  const casP = med(casyncBytes('pkg'));
  const goals = {
    limit: ratio >= GOAL.limitRatio,
    pipeline: ratioVsPipeline >= GOAL.pipelineRatio,
    cpu: cpuSecPerGB <= GOAL.cpuVsPipeline * pipelineCpuSecPerGB,
    linkFull: linkFullMBps === undefined ? null : linkFullMBps >= GOAL.linkShare * linkMBpsNominal!,
    linkDelta1pct:
      linkDelta1pctSeconds === undefined
        ? null
        : linkDelta1pctSeconds <= GOAL.linkDelta1pctShare * linkFullSeconds!,
    // What the customer's link carried again (the mirror's count also has what it wrote into the
    // dead connection's socket buffers, which never crossed the link).
    resume: resumeExtraLinkBytes === undefined ? null : resumeExtraLinkBytes <= GOAL.resumeExtraBytes,
    voice:
      voice === undefined
        ? null
        : voice.lossPctBudget <= GOAL.voiceLossPct &&
          voice.jitterMsBudget <= GOAL.voiceJitterMs &&
          voice.downloadSecondsBudget <= GOAL.voiceSlowdown * voice.downloadSecondsFree,
    rauc: raucMBps === undefined ? null : installMBps >= raucMBps,
    rss: peakRssMiB <= GOAL.rssMiB,
    delta1pct: delta1 <= GOAL.delta1pctShare * imageBytes,
    casync1pct: delta1 <= GOAL.vsCasync * cas1,
    casyncPkg: deltaP <= GOAL.vsCasync * casP,
  };

  say('');
  say(
    `3. agent peak RSS: ${f1(peakRssMiB)} MiB (full install ${f1(rssFull)}, delta ${f1(rssDelta)}; log maxRssKiB ${f1(rssLog)})`,
  );
  say(
    `   largest sampled: anonymous ${f1(anonMiB)} MiB, file-backed ${f1(fileMiB)} MiB (pages of node's own binary ` +
      'and libraries, shared by every node process on the box)',
  );
  if (L) {
    say('');
    say(
      `4. a customer's link: ${L.link.mbit} Mbit/s (tbf), ${L.link.lossPct} % loss mirror → appliance (iptables ` +
        `statistic in the namespace), no added delay (this kernel has no sch_netem: RTT is the veth's, < 1 ms); ` +
        `${L.artifactMiB} MiB images, ${L.full.length} run(s); agent, RAUC's service and casync in the namespace`,
    );
    table('link: seconds', 's', [
      { label: 'agent full install: whole update (checking → rebooting)', values: linkFullSecs },
      { label: 'RAUC full install (rauc install, download included)', values: L.rauc.map((r) => r.seconds) },
      {
        label: `agent full install, link down ${LINK_OUTAGE_MS / 1000} s half-way`,
        values: L.resume.map((a) => a.updateSeconds),
      },
      ...CASES.flatMap((c) => [
        {
          label: `agent delta, ${CASE_LABEL[c]}: whole update`,
          values: L.delta[c].map((a) => a.updateSeconds),
        },
        { label: `casync extract, ${CASE_LABEL[c]}`, values: L.casync[c].map((x) => x.seconds) },
      ]),
    ]);
    table('link: rates and bytes', '', [
      { label: `agent root download+write, MB/s (link ${f1(linkMBpsNominal!)} MB/s)`, values: linkFullRates },
      { label: 'RAUC whole install, MB/s', values: L.rauc.map((r) => mbps(L.rootBytes, r.seconds)) },
      {
        label: 'resume: root bytes served beyond an uninterrupted run, KiB',
        values: L.resumeExtra.map((x) => x / 1024),
      },
    ]);
    if (V) {
      const budget = `${L.voiceBudgetMbit} Mbit/s budget`;
      say('');
      // Lines and tables of this part fit 80 columns.
      say(
        `voice: a stand-in call on the same link, ${VOICE.packetsPerSecond} RTP packets/s of ${VOICE_PACKET_BYTES} ` +
          'bytes each way',
      );
      say(`(G.711 PCMU, 20 ms): alone for ${VOICE_ALONE_SECONDS} s, then over the agent's download`);
      say(`(downloading → verifying) of a full install without and with a ${L.voiceBudgetMbit} Mbit/s`);
      say(
        `budget (${VOICE_BUDGET_SHARE * 100} % of the link). Loss from sequence numbers; jitter per RFC 3550`,
      );
      say('§6.4.1, its largest value over the window.');
      table('link: voice (worse direction)', '', [
        { label: 'loss %, call alone', values: voiceLoss('alone'), digits: 2 },
        { label: 'loss %, update without budget', values: voiceLoss('free'), digits: 2 },
        { label: `loss %, update, ${budget}`, values: voiceLoss('budget'), digits: 2 },
        { label: 'jitter ms, call alone', values: voiceJitter('alone'), digits: 2 },
        { label: 'jitter ms, update without budget', values: voiceJitter('free'), digits: 2 },
        { label: `jitter ms, update, ${budget}`, values: voiceJitter('budget'), digits: 2 },
        { label: 'update s, without budget', values: voiceSecs('free'), digits: 2 },
        { label: `update s, ${budget}`, values: voiceSecs('budget'), digits: 2 },
      ]);
      // 37 + 3 × 11 columns: the table above's width, within 80.
      const row = (label: string, cells: (string | number)[]) =>
        say(
          label.padEnd(37) +
            cells.map((x) => (typeof x === 'number' ? x.toFixed(2) : x).padStart(11)).join(''),
        );
      row('by direction (medians)', ['alone', 'no budget', 'budget']);
      for (const [d, name] of [
        ['toAppliance', 'to the appliance'],
        ['fromAppliance', 'from the appliance'],
      ] as const) {
        const x = voiceDirection(d);
        row(`${name.padEnd(20)}loss %`, [x.lossPctAlone, x.lossPctFree, x.lossPctBudget]);
        row(`${''.padEnd(20)}jitter ms`, [x.jitterMsAlone, x.jitterMsFree, x.jitterMsBudget]);
        row(`${''.padEnd(20)}mean jitter ms`, [
          x.jitterMeanMsAlone,
          x.jitterMeanMsFree,
          x.jitterMeanMsBudget,
        ]);
      }
      const dropped = (c: Case) => `${voiceDrops(c).queue} / ${voiceDrops(c).loss}`;
      row('link drops, all flows: queue / loss', [dropped('alone'), dropped('free'), dropped('budget')]);
      say('(to the appliance: shaped and lossy as the download; from it: beside its ACKs)');
    }
  }
  say('');
  say('goals (reported, never fatal):');
  say(
    `  full install ≥ ${GOAL.limitRatio}× the limit: agent ${f1(installMBps)} / ${limitName} ${f1(limitMBps)} = ` +
      `${ratio.toFixed(3)} → ${verdict(goals.limit)}`,
  );
  say(
    `  full install ≥ ${GOAL.pipelineRatio}× the reference pipeline: agent ${f1(installMBps)} / pipeline ${f1(pipeMBps)} = ` +
      `${ratioVsPipeline.toFixed(3)} → ${verdict(goals.pipeline)}`,
  );
  say(
    `  agent CPU per GB ≤ ${GOAL.cpuVsPipeline}× the pipeline's: ${cpuSecPerGB.toFixed(2)} / ${pipelineCpuSecPerGB.toFixed(2)} s/GB = ` +
      `${(cpuSecPerGB / pipelineCpuSecPerGB).toFixed(2)}× → ${verdict(goals.cpu)}`,
  );
  say(
    `  link: full install ≥ ${GOAL.linkShare}× the link's rate: ${linkFullMBps === undefined ? 'link not run' : `${linkFullMBps.toFixed(2)} / ${linkMBpsNominal!.toFixed(2)} MB/s = ${(linkFullMBps / linkMBpsNominal!).toFixed(3)}`} → ${verdict(goals.linkFull)}`,
  );
  say(
    `  link: 1 % delta ≤ ${GOAL.linkDelta1pctShare * 100} % of the full install's time: ${linkDelta1pctSeconds === undefined ? 'link not run' : `${linkDelta1pctSeconds.toFixed(2)} / ${linkFullSeconds!.toFixed(2)} s = ${((100 * linkDelta1pctSeconds) / linkFullSeconds!).toFixed(1)} %`} → ${verdict(goals.linkDelta1pct)}`,
  );
  say(
    `  link: resume after a ${LINK_OUTAGE_MS / 1000} s outage costs ≤ 1 MiB extra on the link: ${resumeExtraLinkBytes === undefined ? 'link not run' : `${resumeExtraLinkBytes} bytes received (the mirror served ${resumeExtraBytes} more)`} → ${verdict(goals.resume)}`,
  );
  say(
    `  link: voice with a download budget of ${VOICE_BUDGET_SHARE * 100} % of the link: loss ≤ ${GOAL.voiceLossPct} %, ` +
      `jitter ≤ ${GOAL.voiceJitterMs} ms, update ≤ ${GOAL.voiceSlowdown}× the unbudgeted: ` +
      (voice === undefined
        ? 'link not run'
        : `${voice.lossPctBudget.toFixed(2)} %, ${voice.jitterMsBudget.toFixed(2)} ms (worse direction), ` +
          `${voice.downloadSecondsBudget.toFixed(2)} / ${voice.downloadSecondsFree.toFixed(2)} s = ` +
          `${(voice.downloadSecondsBudget / voice.downloadSecondsFree).toFixed(2)}×`) +
      ` → ${verdict(goals.voice)}`,
  );
  say(
    `  full install ≥ RAUC: ${raucMBps === undefined ? 'RAUC not run' : `agent ${f1(installMBps)} / RAUC ${f1(raucMBps)} = ${(installMBps / raucMBps).toFixed(3)}`} → ${verdict(goals.rauc)}`,
  );
  say(`  peak RSS ≤ ${GOAL.rssMiB} MiB: ${f1(peakRssMiB)} MiB → ${verdict(goals.rss)}`);
  say(
    `  delta ≤ ${GOAL.delta1pctShare * 100} % of the image (1 % case): ${pct(delta1)} → ${verdict(goals.delta1pct)}`,
  );
  say(
    `  delta ≤ ${GOAL.vsCasync}× casync (1 % case): ${(delta1 / cas1).toFixed(2)}× → ${verdict(goals.casync1pct)}`,
  );
  say(
    `  delta ≤ ${GOAL.vsCasync}× casync (package case): ${(deltaP / casP).toFixed(2)}× → ${verdict(goals.casyncPkg)}`,
  );
  for (const c of CASES) {
    const { floor } = p.delta[c];
    say(
      `  ${CASE_LABEL[c]}: blocks the old image does not hold ${floor.blocks} (${floor.rawBytes} bytes), ` +
        `xz -9e of them ${floor.xzBytes} bytes — the floor; agent ${(med(agentBytes(c)) / floor.xzBytes).toFixed(2)}×, ` +
        `casync ${(med(casyncBytes(c)) / floor.xzBytes).toFixed(2)}× of it`,
    );
  }
  say(`  agent / (mirror read ∥ slot write) = ${(installMBps / concurrentMBps).toFixed(3)} (information)`);
  say(
    JSON.stringify({
      installMBps: round(installMBps, 1),
      limitMBps: round(limitMBps, 1),
      raucMBps: raucMBps === undefined ? null : round(raucMBps, 1),
      ratio: round(ratio, 3),
      ratioVsRauc: raucMBps === undefined ? null : round(installMBps / raucMBps, 3),
      peakRssMiB: round(peakRssMiB, 1),
      pipelineMBps: round(pipeMBps, 1),
      ratioVsPipeline: round(ratioVsPipeline, 3),
      cpuSecPerGB: round(cpuSecPerGB, 2),
      raucCpuSecPerGB: raucCpuSecPerGB === undefined ? null : round(raucCpuSecPerGB, 2),
      pipelineCpuSecPerGB: round(pipelineCpuSecPerGB, 2),
      linkMbit: L ? L.link.mbit : null,
      linkLossPct: L ? L.link.lossPct : null,
      linkRttMs: L ? L.link.rttMs : null,
      linkArtifactBytes: L ? L.rootBytes : null,
      linkFullSeconds: linkFullSeconds === undefined ? null : round(linkFullSeconds, 2),
      linkFullMBps: linkFullMBps === undefined ? null : round(linkFullMBps, 2),
      linkDelta1pctSeconds: linkDelta1pctSeconds === undefined ? null : round(linkDelta1pctSeconds, 2),
      linkDeltaPkgSeconds: L ? round(summarise(L.delta.pkg.map((a) => a.updateSeconds)).median, 2) : null,
      linkRaucSeconds: L ? round(summarise(L.rauc.map((r) => r.seconds)).median, 2) : null,
      linkCasync1pctSeconds: L ? round(summarise(L.casync['1pct'].map((x) => x.seconds)).median, 2) : null,
      resumeExtraBytes: resumeExtraBytes === undefined ? null : resumeExtraBytes,
      resumeExtraLinkBytes: resumeExtraLinkBytes === undefined ? null : resumeExtraLinkBytes,
      resumeRetries: L ? Math.max(...L.resume.map((a) => a.retried)) : null,
      resumeSeconds: L ? round(summarise(L.resume.map((a) => a.updateSeconds)).median, 2) : null,
      // Loss and jitter: the worse direction; by direction below.
      voice:
        voice === undefined
          ? null
          : {
              lossPctFree: round(voice.lossPctFree, 3),
              jitterMsFree: round(voice.jitterMsFree, 2),
              downloadSecondsFree: round(voice.downloadSecondsFree, 2),
              lossPctBudget: round(voice.lossPctBudget, 3),
              jitterMsBudget: round(voice.jitterMsBudget, 2),
              downloadSecondsBudget: round(voice.downloadSecondsBudget, 2),
              budgetMbit: L!.voiceBudgetMbit,
              linkMbit: L!.link.mbit,
              linkLossPct: L!.link.lossPct,
              linkRttMs: L!.link.rttMs,
              lossPctAlone: round(voice.lossPctAlone, 3),
              jitterMsAlone: round(voice.jitterMsAlone, 2),
              direction: 'worse',
              byDirection: {
                toAppliance: voiceDirection('toAppliance'),
                fromAppliance: voiceDirection('fromAppliance'),
              },
              linkDrops: {
                alone: voiceDrops('alone'),
                free: voiceDrops('free'),
                budget: voiceDrops('budget'),
              },
              ranges: {
                lossPctFree: range(voiceLoss('free')),
                jitterMsFree: range(voiceJitter('free')),
                downloadSecondsFree: range(voiceSecs('free')),
                lossPctBudget: range(voiceLoss('budget')),
                jitterMsBudget: range(voiceJitter('budget')),
                downloadSecondsBudget: range(voiceSecs('budget')),
              },
            },
      ranges: {
        installMBps: range(install),
        pipelineMBps: range(pipelineMBps),
        cpuSecPerGB: range(agentCpu),
        raucCpuSecPerGB: raucCpu.length ? range(raucCpu) : null,
        pipelineCpuSecPerGB: range(pipelineCpu),
        ...(L
          ? {
              linkFullSeconds: range(linkFullSecs),
              linkDelta1pctSeconds: range(linkDelta1Secs),
              resumeExtraBytes: range(L.resumeExtra),
              resumeExtraLinkBytes: range(L.resumeExtraLink),
            }
          : {}),
      },
      peakRssMiBFull: round(rssFull, 1),
      peakRssMiBDelta: round(rssDelta, 1),
      peakAnonMiB: round(anonMiB, 1),
      peakFileMiB: round(fileMiB, 1),
      imageBytes,
      deltaBytes1pct: delta1,
      casyncBytes1pct: cas1,
      deltaBytesPkg: deltaP,
      casyncBytesPkg: casP,
      changedBlocks1pct: p.delta['1pct'].changedBlocks,
      changedBlocksPkg: p.delta.pkg.changedBlocks,
      floorBytes1pct: p.delta['1pct'].floor.xzBytes,
      floorBytesPkg: p.delta.pkg.floor.xzBytes,
      goals,
      limitStage: limitName,
      verifyPhaseSeconds: round(verify.median, 2),
      curlMBps: round(limits.curl, 1),
      opensslMBps: round(limits.openssl, 1),
      mirrorMBps: round(summarise(mirrorMBps).median, 1),
      sha256MBps: round(summarise(shaMBps).median, 1),
      writeMBps: round(limits.write, 1),
      nodeSha256MBps: round(summarise(nodeShaMBps).median, 1),
      concurrentMBps: round(concurrentMBps, 1),
      ratioVsConcurrent: round(installMBps / concurrentMBps, 3),
      updateSeconds: round(update.median, 2),
      artifactBytes: bytes,
      runs,
      loadAverage: round(load, 2),
      ...(nodeArgs.length ? { agentNodeArgs: nodeArgs.join(' ') } : {}),
    }),
  );
}

let interrupting = false;

async function interrupted(sig: NodeJS.Signals): Promise<void> {
  interrupting = true;
  killAll();
  await closeAllLinks().catch(() => undefined);
  await fs.rm(RUNS, { recursive: true, force: true }).catch(() => undefined);
  process.stderr.write(`bench: stopped by ${sig}\n`);
  process.exit(130);
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, (s) => void interrupted(s));

main().then(
  () => process.exit(0),
  async (e: unknown) => {
    // A stage broken by the interrupt itself: interrupted() reports and exits.
    if (interrupting) return;
    killAll();
    await closeAllLinks().catch(() => undefined);
    await fs.rm(RUNS, { recursive: true, force: true }).catch(() => undefined);
    const what =
      e instanceof BenchBroken ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`bench failed: ${what}\n`);
    process.exit(1);
  },
);
