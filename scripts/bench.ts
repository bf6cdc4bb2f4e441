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
 *     limit   the slowest of mirror read, sha256sum and slot write, each alone (scripts/bench/stages.ts)
 * 2 Delta: two pairs of real ext4 images of the same size (scripts/bench/delta-images.ts), ~1 % of
 *   4 KiB blocks changed scattered, and one package upgraded. Bytes the mirror served: to the agent
 *   updating slot A (old) to the new release, and to `casync extract --seed=old` (scripts/bench/casync.ts).
 * 3 Peak RSS of the agent during 1 and 2 (its log's maxRssKiB, VmHWM, and /proc VmHWM sampled every
 *   50 ms), with the largest anonymous and file-backed parts sampled.
 *
 * Each figure is a median of BENCH_RUNS runs (default 3) with min and max; stages are interleaved
 * run by run, so drift in the machine's load touches all alike. Prints a table (MB = 10^6 bytes),
 * whether each goal is met (reported, never fatal) and, as its last line, one JSON object. Exits
 * non-zero only when something broke, naming it. Environment: BENCH_RUNS, BENCH_ARTIFACT_MIB
 * (default 512; the delta images are as large), BENCH_NODE_ARGS (extra node options for the agent),
 * BENCH_SETTLE_MS (pause, after a sync, before each stage that writes a slot, default 3000; see `settle`).
 * Inputs are kept in .cache/bench and reused; appliance roots and slot files are removed after
 * use; every process the bench starts, it stops.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../agent/src/platform/atomic.js';
import {
  buildRelease,
  type DevKeys,
  generateDevKeys,
  loadKeys,
  saveKeys,
} from '../image/src/release/index.js';
import { mbps, summarise } from './bench/agent-log.js';
import { type AgentSample, agentRun } from './bench/agent-run.js';
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
import { type DeltaImages, ensureDeltaImages } from './bench/delta-images.js';
import {
  ensureRaucBundle,
  type RaucBundle,
  type RaucPeer,
  type RaucSample,
  startRauc,
} from './bench/rauc.js';
import {
  concurrentStage,
  mirrorStage,
  nodeSha256Stage,
  type StageInput,
  sha256Stage,
  writeStage,
} from './bench/stages.js';
import { type Mirror, startMirror } from './lib/mirror.js';
import { AGENT_MAIN, AGENT_NODE_OPTIONS } from './sim/boot-emulator.js';
import { buildReleaseImages, type ReleaseImages } from './sim/images.js';

const TREES = path.join(BENCH, 'trees');
const FACTORY_VERSION = '1.0.0';
const VERSION = '2.0.0';
const ROOT_REL = `releases/${VERSION}/root.img`;
const GOAL = { limitRatio: 0.9, rssMiB: 64, delta1pctShare: 0.05, vsCasync: 1.5 };
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
async function ensureRootArtifact(file: string, bytes: number): Promise<void> {
  const stampFile = path.join(BENCH, 'root-artifact.json');
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
  delta: Record<DeltaCase, Scenario & { store: CasyncStore; changedBlocks: number }>;
  images: DeltaImages;
  bundle: RaucBundle;
}

async function prepare(artifactMiB: number): Promise<Prepared> {
  const imagesDir = path.join(BENCH, 'images');
  await fs.mkdir(imagesDir, { recursive: true });
  const fullTree = path.join(TREES, 'full');
  const treeOf = (c: DeltaCase) => path.join(TREES, `delta-${c}`);
  const [keys, factory, target, images] = await Promise.all([
    devKeys(),
    buildReleaseImages({ version: FACTORY_VERSION, outDir: imagesDir, payloadMiB: 2 }),
    buildReleaseImages({ version: VERSION, outDir: imagesDir, payloadMiB: 1 }),
    ensureDeltaImages({
      workDir: path.join(BENCH, 'delta'),
      new1pct: path.join(treeOf('1pct'), ROOT_REL),
      newPkg: path.join(treeOf('pkg'), ROOT_REL),
      imageMiB: artifactMiB,
    }),
    ensureRootArtifact(path.join(fullTree, ROOT_REL), artifactMiB * MIB),
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
    };
  }
  const bundle = await ensureRaucBundle({
    tree: fullTree,
    image: full.rootFile,
    imageSha256: full.rootSha256,
    version: VERSION,
    workDir: path.join(BENCH, 'rauc'),
  });
  return { keys, full, delta, images, bundle };
}

// ---------------------------------------------------------------------------------------------
// Report

const f1 = (n: number) => n.toFixed(1);
const round = (n: number, digits: number) => Number(n.toFixed(digits));
const mb = (bytes: number) => bytes / 1e6;

function table(
  title: string,
  unit: string,
  rows: { label: string; values: number[]; extra?: string }[],
): void {
  const width = Math.max(...rows.map((r) => r.label.length), title.length);
  say(`${title.padEnd(width)}  ${`median ${unit}`.padStart(13)}  ${'min'.padStart(8)}  ${'max'.padStart(8)}`);
  say(`${'-'.repeat(width)}  ${'-'.repeat(13)}  ${'-'.repeat(8)}  ${'-'.repeat(8)}`);
  for (const r of rows) {
    const s = summarise(r.values);
    say(
      `${r.label.padEnd(width)}  ${f1(s.median).padStart(13)}  ${f1(s.min).padStart(8)}  ${f1(s.max).padStart(8)}` +
        (r.extra ? `  ${r.extra}` : ''),
    );
  }
}

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
      stage.mirror.push(await mirrorStage(input));
      stage.sha256.push(await sha256Stage(input));
      stage.write.push(await writeStage(i, input));
      stage.nodeSha256.push(await nodeSha256Stage(input));
      stage.both.push(await concurrentStage(i, input));
      const r = rauc ? await rauc.install(i) : undefined;
      if (r) raucRuns.push(r);
      say(
        `run ${i}/${runs} full: agent install ${a.installSeconds!.toFixed(2)} s, verify ${a.verifySeconds!.toFixed(2)} s, ` +
          `update ${a.updateSeconds.toFixed(2)} s, served ${a.served.total} bytes (boot ${a.served.boot}), peak RSS ${f1(Math.max(a.peakRssKiBLog, a.peakRssKiBSampled) / 1024)} MiB; ` +
          `RAUC ${r ? `${r.seconds.toFixed(2)} s` : 'not run'}; mirror ${stage.mirror.at(-1)!.toFixed(2)} s, ` +
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
            `${f1(Math.max(ad.peakRssKiBLog, ad.peakRssKiBSampled) / 1024)} MiB; casync ${cs.bytes} bytes ` +
            `(${cs.chunksFetched} chunks, ${cs.chunkBytesUncompressed} uncompressed) in ${cs.seconds.toFixed(2)} s`,
        );
      }
    }
    if (rauc) raucRssKiB = await rauc.peakRssKiB();
  } finally {
    await rauc?.stop();
    for (const m of mirrors) await m.close();
    await fs.rm(RUNS, { recursive: true, force: true });
  }

  // ---- full install
  const bytes = p.full.rootBytes;
  const install = agentFull.map((a) => mbps(bytes, a.installSeconds!));
  const verify = agentFull.map((a) => mbps(bytes + p.full.bootBytes, a.verifySeconds!));
  const raucRates = raucRuns.map((r) => mbps(bytes, r.seconds));
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
    { label: 'agent install (index+probe, then download+hash+write+fsync)', values: install },
    ...(raucRates.length
      ? [{ label: 'RAUC 1.8 install (own HTTPS download, check, copy, fsync)', values: raucRates }]
      : []),
    { label: 'limit: mirror read (HTTPS, agent client)', values: mirrorMBps },
    { label: 'limit: sha256sum (coreutils)', values: shaMBps },
    { label: 'limit: slot write (1 MiB O_DIRECT pwrite + fsync)', values: writeMBps },
    { label: 'info: agent read-back verify (boot+root)', values: verify },
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
      `(min ${update.min.toFixed(2)}, max ${update.max.toFixed(2)})`,
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
    mirror: summarise(mirrorMBps).median,
    sha256: summarise(shaMBps).median,
    write: summarise(writeMBps).median,
  };
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
  say('');
  say('goals (reported, never fatal):');
  say(
    `  full install ≥ ${GOAL.limitRatio}× the limit: agent ${f1(installMBps)} / ${limitName} ${f1(limitMBps)} = ` +
      `${ratio.toFixed(3)} → ${verdict(goals.limit)}`,
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
  say(`  agent / (mirror read ∥ slot write) = ${(installMBps / concurrentMBps).toFixed(3)} (information)`);
  say(
    JSON.stringify({
      installMBps: round(installMBps, 1),
      limitMBps: round(limitMBps, 1),
      raucMBps: raucMBps === undefined ? null : round(raucMBps, 1),
      ratio: round(ratio, 3),
      ratioVsRauc: raucMBps === undefined ? null : round(installMBps / raucMBps, 3),
      peakRssMiB: round(peakRssMiB, 1),
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
      goals,
      limitStage: limitName,
      verifyMBps: round(summarise(verify).median, 1),
      mirrorMBps: round(limits.mirror, 1),
      sha256MBps: round(limits.sha256, 1),
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
    await fs.rm(RUNS, { recursive: true, force: true }).catch(() => undefined);
    const what =
      e instanceof BenchBroken ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`bench failed: ${what}\n`);
    process.exit(1);
  },
);
