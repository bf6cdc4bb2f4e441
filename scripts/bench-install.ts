/**
 * `make bench`: how fast the real agent installs a 512 MiB root artifact from the local HTTPS
 * mirror, next to what this machine allows for each stage of that pipeline on its own, and the
 * agent's peak RSS.
 *
 *   agent   N × (fresh appliance root, boot pass, `node agent/dist/main.js` with updateAtBoot):
 *           from the log, root artifact download+hash+write+fsync, read-back verify, whole update
 *   limits  N × each alone on the same artifact: HTTPS read from the same mirror with the agent's
 *           own client (its own process), `sha256sum` (coreutils), 1 MiB positional writes into a
 *           fresh slot-like file on the slots' filesystem + one final fsync
 *   info    N × node:crypto SHA-256 of the file (the agent's hash), and the mirror read and the slot
 *           write at the same time in one process (what the machine gives both halves at once)
 *
 * Prints a table (MB = 10^6 bytes), whether the aims are met (ratio ≥ 0.8, peak RSS ≤ 96 MiB;
 * reported, never fatal), and as its last line one JSON object. Exits non-zero only when
 * something broke. Environment: BENCH_RUNS (default 3), BENCH_ARTIFACT_MIB (default 512),
 * BENCH_NODE_ARGS (extra node options for the agent, e.g. `--max-semi-space-size=1` or `--cpu-prof`),
 * BENCH_SETTLE_MS (pause before each stage that writes a slot, default 3000; see `settle`).
 * Prepared inputs are kept in .cache/bench and reused; appliance roots are removed after each run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../agent/src/platform/atomic.js';
import { execFile } from '../agent/src/platform/exec.js';
import { appliancePaths } from '../agent/src/platform/paths.js';
import {
  buildRelease,
  type DevKeys,
  generateDevKeys,
  loadKeys,
  saveKeys,
} from '../image/src/release/index.js';
import { mbps, parseLog, settledWithoutInstall, summarise, updateTimings } from './bench/agent-log.js';
import { type Mirror, startMirror } from './lib/mirror.js';
import { createAppliance } from './sim/appliance.js';
import { AGENT_MAIN, AGENT_NODE_OPTIONS, bootOnce } from './sim/boot-emulator.js';
import { buildReleaseImages, type ReleaseImages } from './sim/images.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BENCH = path.join(REPO, '.cache/bench');
/** Appliance roots and the write stage's slot file: all on one filesystem, removed after use. */
const RUNS = path.join(BENCH, 'runs');
const TREE = path.join(BENCH, 'mirror');
const READ_MIRROR = path.join(REPO, 'scripts/bench/read-mirror.ts');
const MIB = 1024 * 1024;
const VERSION = '2.0.0';
const ROOT_REL = `releases/${VERSION}/root.img`;
const AGENT_TIMEOUT_MS = 10 * 60 * 1000;
const AIM_RATIO = 0.8;
const AIM_RSS_MIB = 96;

/** Something that makes the numbers meaningless: the bench stops and names it. */
class BenchBroken extends Error {}

function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new BenchBroken(`${name}=${raw} is not a whole number ≥ ${min}`);
  return n;
}

const say = (line: string) => process.stdout.write(`${line}\n`);
let settleMs = 3000;

/**
 * Waits before a stage that writes 512 MiB into fresh page cache. A VM whose balloon reports free
 * pages to the hypervisor (virtio-balloon free page reporting) gives memory freed by the previous
 * stage back within about 2 s, and touching it again costs a host fault per page: on the 2-vCPU
 * development VM ~1 s of system time per 512 MiB written, against ~0.1 s for memory freed a moment
 * ago. The agent always writes into such cold memory, so every writing stage starts from it too,
 * rather than from whatever the stage before happened to free.
 */
const settle = () => new Promise((r) => setTimeout(r, settleMs));
const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

// ---------------------------------------------------------------------------------------------
// Preparation (cached in .cache/bench)

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
 * The incompressible root artifact, written straight into the release tree (publishing a file
 * onto itself only hashes it): AES-256-CTR keystream under a fixed key, so every machine and every
 * run gets the same bytes. A stamp next to it says which generator and size made it.
 */
async function ensureRootArtifact(bytes: number): Promise<string> {
  const file = path.join(TREE, ROOT_REL);
  const stampFile = path.join(BENCH, 'root-artifact.json');
  const stamp = JSON.stringify({ generator: 'aes-256-ctr/clgw-bench/v1', bytes });
  const current = await fs.readFile(stampFile, 'utf8').catch(() => '');
  const size = await fs.stat(file).then(
    (s) => s.size,
    () => -1,
  );
  if (current === stamp && size === bytes) return file;

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
  return file;
}

interface Prepared {
  keys: DevKeys;
  factory: ReleaseImages;
  rootFile: string;
  rootBytes: number;
  rootSha256: string;
  bootBytes: number;
}

async function prepare(rootBytes: number): Promise<Prepared> {
  const imagesDir = path.join(BENCH, 'images');
  await fs.mkdir(imagesDir, { recursive: true });
  const [keys, factory, target, rootFile] = await Promise.all([
    devKeys(),
    buildReleaseImages({ version: '1.0.0', outDir: imagesDir, payloadMiB: 2 }),
    buildReleaseImages({ version: VERSION, outDir: imagesDir, payloadMiB: 1 }),
    ensureRootArtifact(rootBytes),
  ]);
  // A fresh signed document each run (the keys or the artifact may have been remade).
  await fs.rm(path.join(TREE, 'compat.yaml'), { force: true });
  await fs.rm(path.join(TREE, 'compat.yaml.sig'), { force: true });
  const built = await buildRelease({
    tree: TREE,
    keys,
    version: VERSION,
    platforms: ['virtual'],
    boot: target.boot,
    root: rootFile,
    minSourceVersion: '1.0.0',
  });
  return {
    keys,
    factory,
    rootFile,
    rootBytes,
    rootSha256: built.artifacts.root.sha256,
    bootBytes: built.artifacts.boot.size,
  };
}

// ---------------------------------------------------------------------------------------------
// The agent

interface AgentSample {
  installSeconds: number;
  verifySeconds: number;
  updateSeconds: number;
  peakRssKiBLog: number;
  peakRssKiBSampled: number;
}

let running: ChildProcess | undefined;

/** VmHWM of a live process in KiB (0 once it is gone). */
async function vmHwmKiB(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(status);
  return m ? Number(m[1]) : 0;
}

async function agentRun(
  run: number,
  mirror: Mirror,
  p: Prepared,
  slotMiB: number,
  nodeArgs: string[],
): Promise<AgentSample> {
  const root = path.join(RUNS, `appliance-${run}`);
  try {
    await settle();
    await createAppliance({
      root,
      factory: p.factory,
      platform: 'virtual',
      baseUrl: mirror.url,
      releaseRootPem: p.keys.root.certPem,
      mirrorCaPem: mirror.caPem,
      bootSlotMiB: 16,
      rootSlotMiB: slotMiB,
      config: { updateAtBoot: true },
    });
    const boot = await bootOnce(root);
    if (boot.kind !== 'booted') throw new BenchBroken(`boot pass of ${root}: ${boot.kind}: ${boot.reason}`);

    const env: NodeJS.ProcessEnv = { ...process.env, CLGW_ROOT: root };
    delete env.CLGW_BASE_URL;
    const child = spawn(process.execPath, [...nodeArgs, AGENT_MAIN], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    running = child;
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    let sampled = 0;
    const sampler = setInterval(() => {
      if (child.pid) void vmHwmKiB(child.pid).then((k) => (sampled = Math.max(sampled, k)));
    }, 50);
    const paths = appliancePaths(root);
    // An agent that fails or finds nothing to install stays up (idle, serving its API): stop it
    // once its log says so instead of waiting for the timeout.
    let stoppedWhy: string | undefined;
    const watcher = setInterval(() => {
      void fs.readFile(paths.logFile, 'utf8').then(
        (text) => {
          const why = settledWithoutInstall(parseLog(text));
          if (why && !stoppedWhy) {
            stoppedWhy = why;
            child.kill('SIGTERM');
          }
        },
        () => undefined,
      );
    }, 250);
    const timer = setTimeout(() => {
      stoppedWhy = `no reboot within ${AGENT_TIMEOUT_MS / 1000} s`;
      child.kill('SIGKILL');
    }, AGENT_TIMEOUT_MS);
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once('error', reject);
        child.once('exit', (c, s) => resolve({ code: c, signal: s }));
      },
    ).finally(() => {
      clearInterval(sampler);
      clearInterval(watcher);
      clearTimeout(timer);
      running = undefined;
    });

    const log = await fs.readFile(paths.logFile, 'utf8').catch(() => '');
    const timings = updateTimings(parseLog(log));
    const rebootRequested = await fs.stat(paths.rebootRequest).then(
      () => true,
      () => false,
    );
    if (code !== 0 || !rebootRequested || 'missing' in timings) {
      const why = [
        stoppedWhy ? `stopped by the bench: ${stoppedWhy}` : signal ? `killed by ${signal}` : `exit ${code}`,
        rebootRequested ? 'reboot requested' : 'no reboot request',
        'missing' in timings ? `log lacks "${timings.missing}"` : '',
        'failure' in timings && timings.failure && !stoppedWhy?.startsWith('update failed')
          ? `agent failure: ${timings.failure}`
          : '',
        stderr.trim() ? `stderr: ${stderr.trim()}` : '',
      ].filter(Boolean);
      // The appliance root goes away below; its log is kept for the post-mortem.
      const kept = path.join(BENCH, `agent-run-${run}-failed.log`);
      const saved = await fs.copyFile(paths.logFile, kept).then(
        () => `log kept in ${kept}`,
        () => 'no agent log',
      );
      throw new BenchBroken(`agent run ${run}: ${why.join('; ')} (${saved})`);
    }
    if (timings.rootBytes !== p.rootBytes)
      throw new BenchBroken(
        `agent run ${run}: log says root is ${timings.rootBytes} bytes, not ${p.rootBytes}`,
      );
    return {
      installSeconds: (timings.verifying - timings.rootWrite) / 1000,
      verifySeconds: (timings.verified - timings.verifying) / 1000,
      updateSeconds: (timings.rebooting - timings.checking) / 1000,
      peakRssKiBLog: timings.peakRssKiB,
      peakRssKiBSampled: sampled,
    };
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Stage limits, each alone

/** Seconds to stream the root artifact from the mirror into nothing (and write `alsoWrite` meanwhile). */
async function mirrorStage(mirror: Mirror, p: Prepared, alsoWrite?: string): Promise<number> {
  const url = `${mirror.url}/${ROOT_REL}`;
  const args = [READ_MIRROR, url, String(p.rootBytes), mirror.caFile, ...(alsoWrite ? [alsoWrite] : [])];
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running = child;
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  }).finally(() => (running = undefined));
  const last = out.trim().split('\n').pop() ?? '';
  let result: { bytes?: number; seconds?: number } = {};
  try {
    result = JSON.parse(last);
  } catch {
    // reported below
  }
  if (code !== 0 || result.bytes !== p.rootBytes || typeof result.seconds !== 'number')
    throw new BenchBroken(`mirror read of ${url} (exit ${code}): ${err.trim() || out.trim() || 'no result'}`);
  return result.seconds;
}

async function sha256Stage(p: Prepared): Promise<number> {
  const t0 = process.hrtime.bigint();
  const { stdout } = await execFile('sha256sum', [p.rootFile]);
  const s = seconds(t0);
  const digest = stdout.split(/\s/)[0];
  if (digest !== p.rootSha256)
    throw new BenchBroken(`sha256sum ${p.rootFile} printed ${digest}, compat.yaml says ${p.rootSha256}`);
  return s;
}

/**
 * 1 MiB positional writes of the artifact's size into a new slot-sized file made the way the
 * simulator makes slot B (ftruncate, so sparse), in the same directory tree as the appliance
 * roots, then one fsync. Nothing is dropped from the page cache first.
 */
async function writeStage(run: number, p: Prepared, slotMiB: number): Promise<number> {
  const file = path.join(RUNS, `slot-write-${run}.img`);
  try {
    await settle();
    await makeSlotFile(file, slotMiB);
    const buf = randomBytes(MIB);
    const h = await fs.open(file, 'r+');
    try {
      const t0 = process.hrtime.bigint();
      for (let off = 0; off < p.rootBytes; ) {
        const n = Math.min(buf.length, p.rootBytes - off);
        const { bytesWritten } = await h.write(buf, 0, n, off);
        off += bytesWritten;
      }
      await h.sync();
      return seconds(t0);
    } finally {
      await h.close();
    }
  } finally {
    await fs.rm(file, { force: true });
  }
}

/** A fixed-size file made the way createAppliance makes a slot partition (ftruncate, fsync). */
async function makeSlotFile(file: string, slotMiB: number): Promise<void> {
  const h = await fs.open(file, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    await h.truncate(slotMiB * MIB);
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Mirror read and slot write at once, in one process like the agent's: seconds until both end. */
async function concurrentStage(run: number, mirror: Mirror, p: Prepared, slotMiB: number): Promise<number> {
  const file = path.join(RUNS, `slot-both-${run}.img`);
  try {
    await settle();
    await makeSlotFile(file, slotMiB);
    return await mirrorStage(mirror, p, file);
  } finally {
    await fs.rm(file, { force: true });
  }
}

/** SHA-256 of the artifact with node:crypto (the agent's hash), read in 1 MiB pieces. */
async function nodeSha256Stage(p: Prepared): Promise<number> {
  const buf = Buffer.allocUnsafe(MIB);
  const hash = createHash('sha256');
  const h = await fs.open(p.rootFile, 'r');
  const t0 = process.hrtime.bigint();
  try {
    for (;;) {
      const { bytesRead } = await h.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await h.close();
  }
  const s = seconds(t0);
  const digest = hash.digest('hex');
  if (digest !== p.rootSha256)
    throw new BenchBroken(
      `node:crypto SHA-256 of ${p.rootFile} is ${digest}, compat.yaml says ${p.rootSha256}`,
    );
  return s;
}

// ---------------------------------------------------------------------------------------------
// Report

const f1 = (n: number) => n.toFixed(1);
const round = (n: number, digits: number) => Number(n.toFixed(digits));

function table(rows: { stage: string; values: number[] }[]): void {
  const width = Math.max(...rows.map((r) => r.stage.length), 5);
  say(`${'stage'.padEnd(width)}  ${'median MB/s'.padStart(11)}  ${'min'.padStart(7)}  ${'max'.padStart(7)}`);
  say(`${'-'.repeat(width)}  ${'-'.repeat(11)}  ${'-'.repeat(7)}  ${'-'.repeat(7)}`);
  for (const r of rows) {
    const s = summarise(r.values);
    say(
      `${r.stage.padEnd(width)}  ${f1(s.median).padStart(11)}  ${f1(s.min).padStart(7)}  ${f1(s.max).padStart(7)}`,
    );
  }
}

async function main(): Promise<void> {
  const runs = envInt('BENCH_RUNS', 3, 1);
  const artifactMiB = envInt('BENCH_ARTIFACT_MIB', 512, 1);
  const slotMiB = artifactMiB + 8;
  settleMs = envInt('BENCH_SETTLE_MS', 3000, 0);
  const nodeArgs = [
    ...AGENT_NODE_OPTIONS,
    ...(process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
  ];
  await fs.stat(AGENT_MAIN).catch(() => {
    throw new BenchBroken(`${AGENT_MAIN} is missing: build first (npx tsc -b agent image)`);
  });

  await fs.rm(RUNS, { recursive: true, force: true });
  await fs.mkdir(RUNS, { recursive: true, mode: 0o700 });
  await fs.mkdir(BENCH, { recursive: true });
  for (const name of await fs.readdir(BENCH))
    if (/^agent-run-\d+-failed\.log$/.test(name)) await fs.rm(path.join(BENCH, name), { force: true });
  const t0 = process.hrtime.bigint();
  const p = await prepare(artifactMiB * MIB);
  say(
    `prepare: ${path.relative(REPO, BENCH)} ready in ${seconds(t0).toFixed(1)} s (root ${artifactMiB} MiB, sha256 ${p.rootSha256.slice(0, 12)}…)`,
  );

  const mirror = await startMirror({ tree: TREE, tlsDir: path.join(BENCH, 'tls') });
  const agent: AgentSample[] = [];
  const stage = {
    mirror: [] as number[],
    sha256: [] as number[],
    write: [] as number[],
    nodeSha256: [] as number[],
    both: [] as number[],
  };
  const load = os.loadavg()[0]!;
  try {
    for (let i = 1; i <= runs; i++) {
      // Interleaved, so drift in the machine's load touches every stage alike.
      const a = await agentRun(i, mirror, p, slotMiB, nodeArgs);
      agent.push(a);
      stage.mirror.push(await mirrorStage(mirror, p));
      stage.sha256.push(await sha256Stage(p));
      stage.write.push(await writeStage(i, p, slotMiB));
      stage.nodeSha256.push(await nodeSha256Stage(p));
      stage.both.push(await concurrentStage(i, mirror, p, slotMiB));
      say(
        `run ${i}/${runs}: agent install ${a.installSeconds.toFixed(2)} s, verify ${a.verifySeconds.toFixed(2)} s, ` +
          `update ${a.updateSeconds.toFixed(2)} s, peak RSS ${f1(Math.max(a.peakRssKiBLog, a.peakRssKiBSampled) / 1024)} MiB; ` +
          `mirror ${stage.mirror.at(-1)!.toFixed(2)} s, sha256sum ${stage.sha256.at(-1)!.toFixed(2)} s, ` +
          `write ${stage.write.at(-1)!.toFixed(2)} s, node sha256 ${stage.nodeSha256.at(-1)!.toFixed(2)} s, ` +
          `read ∥ write ${stage.both.at(-1)!.toFixed(2)} s`,
      );
    }
  } finally {
    await mirror.close();
    await fs.rm(RUNS, { recursive: true, force: true });
  }

  const bytes = p.rootBytes;
  const install = agent.map((a) => mbps(bytes, a.installSeconds));
  const verify = agent.map((a) => mbps(bytes + p.bootBytes, a.verifySeconds));
  const mirrorMBps = stage.mirror.map((s) => mbps(bytes, s));
  const shaMBps = stage.sha256.map((s) => mbps(bytes, s));
  const writeMBps = stage.write.map((s) => mbps(bytes, s));
  const nodeShaMBps = stage.nodeSha256.map((s) => mbps(bytes, s));
  const bothMBps = stage.both.map((s) => mbps(bytes, s));

  say('');
  say(
    `${artifactMiB} MiB root artifact (${bytes} bytes), ${runs} run(s), ${os.cpus().length} CPUs, ` +
      `load average ${load.toFixed(2)} at start${nodeArgs.length ? `, agent node args: ${nodeArgs.join(' ')}` : ''}; ` +
      'MB/s with MB = 10^6 bytes',
  );
  table([
    { stage: 'agent install (download+hash+write+fsync)', values: install },
    { stage: 'agent read-back verify (boot+root)', values: verify },
    { stage: 'limit: mirror read (HTTPS, agent client)', values: mirrorMBps },
    { stage: 'limit: sha256sum (coreutils)', values: shaMBps },
    { stage: 'limit: slot write (1 MiB pwrite + fsync)', values: writeMBps },
    { stage: 'info: node:crypto sha256 (agent hash)', values: nodeShaMBps },
    { stage: 'info: mirror read ∥ slot write, one process', values: bothMBps },
  ]);
  const update = summarise(agent.map((a) => a.updateSeconds));
  say(
    `whole update (checking → rebooting): median ${update.median.toFixed(2)} s (min ${update.min.toFixed(2)}, max ${update.max.toFixed(2)})`,
  );
  say(
    'slot write stage: fresh ftruncate-made file like slot B, same filesystem as the slots, page cache ' +
      `not dropped; each writing stage (agent included) starts after ${settleMs} ms idle`,
  );

  const installMBps = summarise(install).median;
  const limits = {
    mirror: summarise(mirrorMBps).median,
    sha256: summarise(shaMBps).median,
    write: summarise(writeMBps).median,
  };
  const [limitName, limitMBps] = Object.entries(limits).sort((a, b) => a[1] - b[1])[0]!;
  const ratio = installMBps / limitMBps;
  const concurrentMBps = summarise(bothMBps).median;
  const rssLog = Math.max(...agent.map((a) => a.peakRssKiBLog)) / 1024;
  const rssSampled = Math.max(...agent.map((a) => a.peakRssKiBSampled)) / 1024;
  const peakRssMiB = Math.max(rssLog, rssSampled);

  say('');
  say(`ratio = agent ${f1(installMBps)} / min(limits) ${f1(limitMBps)} (${limitName}) = ${ratio.toFixed(3)}`);
  say(`agent / (mirror read ∥ slot write) = ${(installMBps / concurrentMBps).toFixed(3)} (information)`);
  say(
    `peak RSS ${f1(peakRssMiB)} MiB (log maxRssKiB ${f1(rssLog)} MiB, sampled VmHWM ${f1(rssSampled)} MiB)`,
  );
  say(`aim ratio ≥ ${AIM_RATIO}: ${ratio >= AIM_RATIO ? 'met' : 'NOT met'}`);
  say(`aim peak RSS ≤ ${AIM_RSS_MIB} MiB: ${peakRssMiB <= AIM_RSS_MIB ? 'met' : 'NOT met'}`);
  say(
    JSON.stringify({
      installMBps: round(installMBps, 1),
      limitMBps: round(limitMBps, 1),
      ratio: round(ratio, 3),
      peakRssMiB: round(peakRssMiB, 1),
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
  if (running?.pid) running.kill('SIGKILL');
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
    if (running?.pid) running.kill('SIGKILL');
    await fs.rm(RUNS, { recursive: true, force: true }).catch(() => undefined);
    const what =
      e instanceof BenchBroken ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`bench failed: ${what}\n`);
    process.exit(1);
  },
);
