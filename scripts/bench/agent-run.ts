/**
 * One update by the real agent, as an appliance does it at boot: a fresh simulated appliance root
 * (slot A holds the factory release), one boot pass of the boot emulator, then
 * `node agent/dist/clgw-agent.mjs` (the bundled daemon) with updateAtBoot until it asks for the reboot. Measured from the
 * outside: timings from its JSON-lines log, peak RSS from the log and from /proc, and the body
 * bytes the mirror served during the run, by artifact. Slot B is then checked to hold exactly the
 * new root image.
 */

import type { ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import type { Mirror } from '../lib/mirror.js';
import { createAppliance } from '../sim/appliance.js';
import { AGENT_ENV, AGENT_MAIN, bootOnce } from '../sim/boot-emulator.js';
import type { ReleaseImages } from '../sim/images.js';
import { parseLog, settledWithoutInstall, updateSpan, updateTimings } from './agent-log.js';
import {
  BENCH,
  BenchBroken,
  childrenCpuSeconds,
  describeRun,
  memoryKiB,
  REPO,
  runTimed,
  settle,
  sha256Prefix,
  spawnTracked,
} from './common.js';

const AGENT_TIMEOUT_MS = 10 * 60 * 1000;

/** Body bytes the mirror served during one run, by what they were. */
export interface Served {
  /** `releases/<v>/…` except the boot artifact's files: the root artifact and anything beside it. */
  root: number;
  /** `releases/<v>/boot…`: the boot artifact (and its index, if any). */
  boot: number;
  /** compat.yaml and its signature. */
  compat: number;
  /** Any other path. */
  other: number;
  total: number;
  requests: number;
}

/** Sorts what the mirror served since its last `resetStats` by path. */
export function servedByClass(mirror: Mirror, version: string): Served {
  const out: Served = { root: 0, boot: 0, compat: 0, other: 0, total: 0, requests: 0 };
  const release = `/releases/${version}/`;
  for (const p of mirror.paths()) {
    const s = mirror.stats(p);
    out.total += s.bytes;
    out.requests += s.requests;
    if (p.startsWith(release)) {
      if (path.posix.basename(p).startsWith('boot')) out.boot += s.bytes;
      else out.root += s.bytes;
    } else if (p.startsWith('/compat.yaml')) out.compat += s.bytes;
    else out.other += s.bytes;
  }
  return out;
}

export interface AgentRunOptions {
  /** Names the run in messages and the kept log of a failed run. */
  label: string;
  mirror: Mirror;
  factory: ReleaseImages;
  releaseRootPem: string;
  slotMiB: number;
  nodeArgs: string[];
  /** The version the mirror publishes. */
  version: string;
  /** Size and SHA-256 of the root image slot B must hold afterwards. */
  rootBytes: number;
  rootSha256: string;
  /** Require the per-artifact log lines and measure the root artifact's install window. */
  installTimings: boolean;
  /** Run the agent inside this network namespace (`ip netns exec`, which execs: same pid). */
  netns?: string;
  /** The mirror's base URL as the agent is to use it (default `mirror.url`). */
  baseUrl?: string;
  /**
   * Retry requests (`clgw retry`, as a technician or the portal would) the bench may make when the
   * update fails, each once the failure is logged; default none (a failure ends the run).
   */
  retries?: number;
  /** More agent.json settings (e.g. `downloadBudgetMbit`), beside `updateAtBoot: true`. */
  config?: Record<string, unknown>;
  /**
   * Called after the boot pass, right before the agent starts (which waits for it): what must
   * already run when the agent's first request leaves, such as the voice stream of
   * scripts/bench/voice.ts. A child it starts must outlive the agent (see the CPU count below).
   */
  beforeAgent?: () => Promise<void>;
  /** Called once the agent runs; the run waits for it before it reads the results. */
  during?: (child: ChildProcess) => Promise<void>;
}

export interface AgentSample {
  /**
   * Root artifact, from its `writing artifact into slot` line to the slot verified: index and
   * probe, download+write+fsync and its SHA-256 checked on what the slot holds — read back behind
   * the write, or by the verify phase (when `installTimings`). The reference pipeline hashes what it
   * writes; so must the agent's time.
   */
  installSeconds?: number;
  /** The verify phase: reads back what the download did not (when `installTimings`). */
  verifySeconds?: number;
  /** `checking` → `rebooting`. */
  updateSeconds: number;
  /** How the root artifact was written (its `artifact written into slot` line): `delta` or `full`. */
  rootMode: string;
  peakRssKiBLog: number;
  peakRssKiBSampled: number;
  /** Largest anonymous and file-backed resident sets sampled (every 50 ms; not at the same instant). */
  peakAnonKiB: number;
  peakFileKiB: number;
  served: Served;
  /** User+system CPU-seconds of the agent's whole process (and any child it waited for), start to exit. */
  cpuSeconds: number;
  /** Retry requests the bench made (see `retries`) and the failures that led to them. */
  retried: number;
  failures: string[];
}

const CLI = path.join(REPO, 'agent/bin/clgw.js');

export async function agentRun(root: string, o: AgentRunOptions): Promise<AgentSample> {
  try {
    await settle();
    await createAppliance({
      root,
      factory: o.factory,
      platform: 'virtual',
      baseUrl: o.baseUrl ?? o.mirror.url,
      releaseRootPem: o.releaseRootPem,
      mirrorCaPem: o.mirror.caPem,
      bootSlotMiB: 16,
      rootSlotMiB: o.slotMiB,
      config: { ...o.config, updateAtBoot: true },
    });
    const boot = await bootOnce(root);
    if (boot.kind !== 'booted') throw new BenchBroken(`boot pass of ${root}: ${boot.kind}: ${boot.reason}`);

    const env: NodeJS.ProcessEnv = { ...process.env, ...AGENT_ENV, CLGW_ROOT: root };
    delete env.CLGW_BASE_URL;
    o.mirror.resetStats();
    const argv = [process.execPath, ...o.nodeArgs, AGENT_MAIN];
    const [bin, ...args] = o.netns ? ['ip', 'netns', 'exec', o.netns, ...argv] : argv;
    await o.beforeAgent?.();
    // The agent is the only child of the bench that ends during its run: the growth of the
    // bench's children CPU totals across it is the agent's whole process.
    const cpu0 = await childrenCpuSeconds();
    const child = spawnTracked(bin!, args, {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    // Settled at once into a value, so a failing hook is no unhandled rejection while the agent runs.
    const hook = o.during?.(child).then(
      () => undefined,
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    let sampled = 0;
    let anon = 0;
    let file = 0;
    const sampler = setInterval(() => {
      if (child.pid)
        void memoryKiB(child.pid).then((m) => {
          sampled = Math.max(sampled, m.hwm);
          anon = Math.max(anon, m.anon);
          file = Math.max(file, m.file);
        });
    }, 50);
    const paths = appliancePaths(root);
    // An agent that fails or finds nothing to install stays up (idle, serving its API): stop it
    // once its log says so instead of waiting for the timeout.
    let stoppedWhy: string | undefined;
    let retried = 0;
    let retrying = false;
    // `clgw retry` is a node process of the bench's that ends during the agent's run: its CPU is
    // taken off the agent's below.
    let retryCpu = 0;
    const failures: string[] = [];
    const watcher = setInterval(() => {
      if (retrying) return;
      void fs.readFile(paths.logFile, 'utf8').then(
        async (text) => {
          const lines = parseLog(text);
          const failed = lines.filter((l) => l.msg === 'update state: failed');
          if (failed.length > retried && retried < (o.retries ?? 0) && !stoppedWhy && !retrying) {
            retrying = true;
            failures.push(JSON.stringify(failed.at(-1)!.fields.error ?? {}));
            retried++;
            const r = await runTimed(process.execPath, [CLI, 'retry'], {
              env: { ...env, CLGW_ROOT: root },
              timeoutMs: 60_000,
            });
            retryCpu += r.cpuSeconds;
            retrying = false;
            if (r.code !== 0 && !stoppedWhy) {
              stoppedWhy = describeRun('clgw retry', r);
              child.kill('SIGTERM');
            }
            return;
          }
          const why =
            failed.length > retried || failed.length === 0 ? settledWithoutInstall(lines) : undefined;
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
    });
    while (retrying) await new Promise((r) => setTimeout(r, 50));
    const cpuSeconds = (await childrenCpuSeconds()) - cpu0 - retryCpu;
    const hookError = await hook;
    if (hookError) throw hookError;
    const served = servedByClass(o.mirror, o.version);

    const lines = parseLog(await fs.readFile(paths.logFile, 'utf8').catch(() => ''));
    const span = updateSpan(lines);
    const timings = o.installTimings ? updateTimings(lines) : undefined;
    const rebootRequested = await fs.stat(paths.rebootRequest).then(
      () => true,
      () => false,
    );
    if (code !== 0 || !rebootRequested || 'missing' in span || (timings && 'missing' in timings)) {
      const gap = 'missing' in span ? span : timings && 'missing' in timings ? timings : undefined;
      const why = [
        stoppedWhy ? `stopped by the bench: ${stoppedWhy}` : signal ? `killed by ${signal}` : `exit ${code}`,
        rebootRequested ? 'reboot requested' : 'no reboot request',
        gap ? `log lacks "${gap.missing}"` : '',
        gap?.failure && !stoppedWhy?.startsWith('update failed') ? `agent failure: ${gap.failure}` : '',
        stderr.trim() ? `stderr: ${stderr.trim()}` : '',
      ].filter(Boolean);
      // The appliance root goes away below; its log is kept for the post-mortem.
      const kept = path.join(BENCH, `agent-${o.label}-failed.log`);
      const saved = await fs.copyFile(paths.logFile, kept).then(
        () => `log kept in ${kept}`,
        () => 'no agent log',
      );
      throw new BenchBroken(`agent ${o.label}: ${why.join('; ')} (${saved})`);
    }
    if (timings && timings.rootBytes !== o.rootBytes)
      throw new BenchBroken(
        `agent ${o.label}: log says root is ${timings.rootBytes} bytes, not ${o.rootBytes}`,
      );
    // The agent verified slot B by read-back itself; the bench checks it independently, so a
    // broken update is never reported as a fast or a small one.
    const slotB = paths.partition('root', 'B');
    const digest = await sha256Prefix(slotB, o.rootBytes);
    if (digest !== o.rootSha256)
      throw new BenchBroken(
        `agent ${o.label}: slot B (${slotB}) holds sha256 ${digest}, the release's root is ${o.rootSha256}`,
      );
    const rootLine = lines.find(
      (l) => l.msg === 'artifact written into slot' && l.fields.artifact === 'root',
    );
    return {
      rootMode: String(rootLine?.fields.mode ?? 'unknown'),
      ...(timings
        ? {
            installSeconds: (timings.verified - timings.rootWrite) / 1000,
            verifySeconds: (timings.verified - timings.verifying) / 1000,
          }
        : {}),
      updateSeconds: (span.rebooting - span.checking) / 1000,
      peakRssKiBLog: span.peakRssKiB,
      peakRssKiBSampled: sampled,
      peakAnonKiB: anon,
      peakFileKiB: file,
      served,
      cpuSeconds,
      retried,
      failures,
    };
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}
