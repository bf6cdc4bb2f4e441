/**
 * The boot emulator: plays bootloader and kernel for a simulated appliance. Each "boot" reads
 * grubenv and chooses the slot with exactly the rules of our grub.cfg (the shared bootchooser),
 * writes back what GRUB's save_env would, checks the slot's boot partition holds a kernel, writes
 * proc/cmdline (`clgw.slot=B`), "mounts" the root partition (exposes its /etc/os-release and
 * health hooks, read with debugfs) and starts the agent. When the agent leaves a reboot request
 * and exits, the emulator boots again; if the agent crashes it is restarted like systemd would.
 * When GRUB chooses the recovery system, the emulator runs the recovery program (factory
 * restore) instead; it, too, ends in a reboot request — or in an error that keeps the box there.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, promises as fs, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { appliancePaths, type SlotName } from '@clgw/core/platform/paths.js';
import { selectBootFromBlock } from '@clgw/core/slot/bootchooser.js';
import { writeGrubenvBlock } from '@clgw/core/slot/grubenv-file.js';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
/**
 * How the agent's Node runs, on the appliance (image/systemd/clgw-agent.service, the bin shim) and
 * here alike (test/unit/platform/agent-runtime.test.ts keeps them the same). Memory is what the
 * box lacks (SPEC §6: 256 MiB for all of its own software):
 *   --max-semi-space-size=1  a 1 MiB young generation, collected often;
 *   --max-old-space-size=48  the old generation collected before it grows past ~48 MiB: the
 *                            agent's live heap is ~15 MiB, and V8 would otherwise let garbage of
 *                            an adaptive update's hundreds of requests grow it to 30+ MiB;
 *   --expose-gc              lets a download collect its dead 16 KiB network buffers every 1 MiB
 *                            (core/src/platform/memory.ts) instead of 10–20 MiB of them;
 *   (TurboFan on)            the optimizing compiler stays: each 16 KiB TLS record of a download
 *                            passes through Node's response stream and got's before it reaches the
 *                            slot writer, and that JavaScript, only interpreted and baseline-compiled
 *                            (`--no-opt`, chosen in #8 for the hand-written HTTP reader), cost the
 *                            full install a quarter of its rate — 158.8 MB/s and 7.4 CPU s/GB
 *                            against 209.0 and 5.4 with TurboFan, for ~4 MiB more anonymous memory
 *                            at the peak (27.9 → 32.1 MiB; `make bench`, issue #20);
 *   --no-concurrent-recompilation
 *                            TurboFan compiles on the main thread, not on a helper thread beside
 *                            it: the helper's compile memory (its own zone, its own malloc arena)
 *                            was ~2.5 MiB of the peak — adaptive update 33.0 → 30.6 MiB, full
 *                            install 28.3 → 26.5 (one run each, machine loaded) — and the few
 *                            hot functions of a download compile once, early;
 *   --optimize-for-size      V8's heap sized and grown for memory rather than speed: ~1 MiB less.
 */
export const AGENT_NODE_OPTIONS = [
  '--max-semi-space-size=1',
  '--max-old-space-size=48',
  '--expose-gc',
  '--no-concurrent-recompilation',
  '--optimize-for-size',
];
/**
 * The agent's environment on the appliance (the unit's `Environment=`): at most two glibc malloc
 * arenas. Each thread that allocates (the libuv pool, V8's helpers) otherwise gets an arena of its
 * own, and memory freed into one is not reused by another: ~5 MiB more at the peak of an update.
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
/** The agent daemon as the appliance runs it: one bundled file (scripts/bundle.mjs). */
export const AGENT_MAIN = path.join(REPO, 'agent/dist/clgw-agent.mjs');
export const RECOVERY_MAIN = path.join(REPO, 'recovery/dist/main.js');
/** The portal daemon (image/systemd/clgw-portal.service runs it the same way). */
export const PORTAL_MAIN = path.join(REPO, 'portal/dist/clgw-portal.mjs');
/** The portal's Node options: its own old generation capped well inside its unit's MemoryMax. */
export const PORTAL_NODE_OPTIONS = ['--max-old-space-size=24', '--max-semi-space-size=1'];

/**
 * How the consoles' Node runs (their units, the bin shim; test/unit/platform/agent-runtime.test.ts
 * keeps them the same). Two of them run all the time (tty1 and tty2) and do little: redraw a
 * screen every second or on a key. Measured idle on tty1 (80x25, TERM=linux), as shipped before
 * (unbundled, no options) → bundled with these: RssAnon 25.0 → 14.9 MiB, RssFile 42.2 → 37.5 MiB,
 * PSS 35.5 → 24.0 MiB (issue #21). `--no-opt`: a screen's JavaScript runs a few times a second,
 * never hot enough to earn optimized code, whose pages and compile memory it would pay for.
 */
export const CONSOLE_NODE_OPTIONS = [
  '--max-semi-space-size=1',
  '--max-old-space-size=32',
  '--no-opt',
  '--optimize-for-size',
];

/** Where agent.json says the portal listens (`--listen HOST:PORT`), or undefined without one. */
async function portalListen(configFile: string): Promise<string | undefined> {
  const config = JSON.parse(await fs.readFile(configFile, 'utf8').catch(() => '{}')) as {
    portal?: { host?: string; port?: number };
  };
  const { host = '0.0.0.0', port } = config.portal ?? {};
  if (!port) return undefined;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Starts the portal as systemd does on the appliance: its own process beside the agent, started
 * again a second after it exits (Restart=always), its output appended to var/log/clgw/portal.log
 * (the appliance's journal). Returns how to stop it.
 */
function supervisePortal(
  root: string,
  say: (line: string) => void,
): { stop(): void; pid(): number | undefined } {
  const paths = appliancePaths(root);
  let child: ChildProcess | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const start = async () => {
    const listen = await portalListen(paths.config);
    if (stopped || !listen) return;
    mkdirSync(paths.logDir, { recursive: true });
    const out = openSync(path.join(paths.logDir, 'portal.log'), 'a');
    const proc = spawn(process.execPath, [...PORTAL_NODE_OPTIONS, PORTAL_MAIN, '--listen', listen], {
      env: { ...process.env, CLGW_ROOT: paths.root },
      stdio: ['ignore', out, out],
    });
    closeSync(out);
    child = proc;
    proc.on('exit', (code, signal) => {
      child = undefined;
      if (stopped) return;
      say(`portal exited (${signal ?? `status ${code}`}); starting it again`);
      timer = setTimeout(() => void start(), 1000);
    });
  };
  void start();
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      child?.kill('SIGTERM');
    },
    pid: () => child?.pid,
  };
}

export type BootOutcome =
  | { kind: 'booted'; slot: SlotName; reason: string }
  | { kind: 'recovery'; reason: string }
  | { kind: 'noKernel'; slot: SlotName; reason: string };

async function debugfsCat(image: string, file: string): Promise<string> {
  const { stdout } = await execFile('debugfs', ['-R', `cat ${file}`, image], { maxBuffer: 1024 * 1024 });
  return stdout;
}

/**
 * One pass of the bootloader and early boot. Returns what happened; on `booted` the appliance
 * root is ready for the agent to start.
 */
export async function bootOnce(root: string): Promise<BootOutcome> {
  const paths = appliancePaths(root);
  // The bytes GRUB would see (a torn or missing block included) and what its save_env leaves.
  const block = await fs.readFile(paths.grubenv).catch(() => undefined);
  const choice = selectBootFromBlock(block);
  // In place, over the file's existing sectors, as save_env does (and as the agent writes it).
  if (choice.block) await writeGrubenvBlock(paths.grubenv, choice.block);
  if (choice.target === 'recovery') return { kind: 'recovery', reason: choice.reason };

  const slot = choice.target;
  const bootPart = paths.partition('boot', slot);
  const kernel = await debugfsCat(bootPart, '/vmlinuz').catch(() => '');
  if (!kernel.startsWith('clgw simulated kernel')) {
    // Like a kernel that fails to load: the machine resets, the slot stays "being tried" and
    // the next pass falls back to the other slot.
    return { kind: 'noKernel', slot, reason: `no kernel on ${bootPart}` };
  }

  const rootPart = paths.partition('root', slot);
  const osRelease = await debugfsCat(rootPart, '/etc/os-release');
  await writeFileAtomic(paths.osRelease, osRelease);
  await fs.rm(paths.healthHooks, { recursive: true, force: true });
  await fs.mkdir(path.dirname(paths.healthHooks), { recursive: true });
  await execFile('debugfs', [
    '-R',
    `rdump /usr/lib/clgw/health.d ${path.dirname(paths.healthHooks)}`,
    rootPart,
  ]);
  await writeFileAtomic(
    paths.cmdline,
    `BOOT_IMAGE=/vmlinuz root=PARTLABEL=root_${slot.toLowerCase()} ro quiet clgw.slot=${slot}\n`,
  );
  await fs.rm(paths.rebootRequest, { force: true });
  return { kind: 'booted', slot, reason: choice.reason };
}

/** Calls `each` for every complete non-empty line of a stream; resolves when the stream ends. */
function forEachLine(stream: NodeJS.ReadableStream | null, each: (line: string) => void): Promise<void> {
  if (!stream) return Promise.resolve();
  return new Promise((resolve) => {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) each(line);
    });
    stream.on('end', () => {
      if (rest.trim()) each(rest);
      resolve();
    });
    stream.on('error', () => resolve());
  });
}

export interface EmulatorOptions {
  root: string;
  /** Where each line of the emulator's own narration goes. */
  say?: (line: string) => void;
  /** Stop after this many boots (a guard against a boot loop). */
  maxBoots?: number;
  env?: NodeJS.ProcessEnv;
  agentMain?: string;
  /** The recovery program run when GRUB chooses recovery (default {@link RECOVERY_MAIN}). */
  recoveryMain?: string;
  /**
   * Told of every bootloader decision (1-based boot count) before anything is started, and
   * awaited: an observer can check what is about to run (the power-cut test checks that every
   * slot booted is marked good and holds a complete release).
   */
  onBoot?: (outcome: BootOutcome, boot: number) => void | Promise<void>;
  /**
   * Start the portal beside the agent, as the appliance does (default true). The power-cut run
   * leaves it out: it holds no state, and a process per power-on would only slow the cuts.
   */
  portal?: boolean;
}

/**
 * Runs the simulated appliance until `stop()` (power off) or until it cannot boot. The returned
 * promise resolves with the reason the appliance stopped.
 */
export function runAppliance(opts: EmulatorOptions): {
  done: Promise<string>;
  stop(): Promise<void>;
  boots(): number;
  /** The running agent's process id (for power-cut tests). */
  agentPid(): number | undefined;
  /** The running portal's process id (for the portal's load benchmark). */
  portalPid(): number | undefined;
  /** The running recovery program's process id (for power-cut tests during a factory restore). */
  recoveryPid(): number | undefined;
} {
  const say = opts.say ?? ((l: string) => process.stdout.write(`[boot] ${l}\n`));
  const paths = appliancePaths(opts.root);
  let child: ChildProcess | undefined;
  let recoveryChild: ChildProcess | undefined;
  let portal: ReturnType<typeof supervisePortal> | undefined;
  let stopping = false;
  let boots = 0;

  const runAgent = () =>
    new Promise<number | null>((resolve) => {
      child = spawn(process.execPath, [...AGENT_NODE_OPTIONS, opts.agentMain ?? AGENT_MAIN], {
        env: { ...process.env, ...AGENT_ENV, ...opts.env, CLGW_ROOT: paths.root },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      child.on('exit', (code) => resolve(code));
    });

  const rebootRequested = () =>
    fs.stat(paths.rebootRequest).then(
      () => true,
      () => false,
    );

  // The recovery system boots with its own root (here: the same tree). What it prints is its
  // console, narrated line by line; the last line on stderr is the error it stopped with.
  const runRecovery = () =>
    new Promise<{ code: number | null; signal: NodeJS.Signals | null; lastError: string }>((resolve) => {
      let lastError = '';
      const proc = spawn(process.execPath, [opts.recoveryMain ?? RECOVERY_MAIN], {
        env: { ...process.env, ...opts.env, CLGW_ROOT: paths.root },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      recoveryChild = proc;
      const closed = Promise.all([
        forEachLine(proc.stdout, say),
        forEachLine(proc.stderr, (line) => {
          lastError = line;
          say(line);
        }),
      ]);
      proc.on('exit', (code, signal) => {
        void closed.then(() => resolve({ code, signal, lastError }));
      });
    });

  const done = (async () => {
    let crashes = 0;
    for (;;) {
      if (stopping) return 'powered off';
      if (boots >= (opts.maxBoots ?? 20)) return `stopped after ${boots} boots`;
      boots++;
      const outcome = await bootOnce(paths.root);
      await opts.onBoot?.(outcome, boots);
      if (outcome.kind === 'recovery') {
        say(`boot ${boots}: GRUB chose the recovery system (${outcome.reason}); starting clgw-recovery`);
        await fs.rm(paths.rebootRequest, { force: true });
        const { code, signal, lastError } = await runRecovery();
        recoveryChild = undefined;
        if (stopping) return 'powered off';
        if (signal) {
          // Killed (a power cut of the recovery system): the machine comes up again and GRUB,
          // still seeing the request, chooses recovery once more.
          say(`recovery killed by ${signal}; power back on`);
          continue;
        }
        if (code !== 0) return `recovery failed: ${lastError || `exit ${code}`}`;
        if (!(await rebootRequested())) return 'recovery exited without asking for a reboot';
        say('recovery completed and requested a reboot');
        continue;
      }
      if (outcome.kind === 'noKernel') {
        say(`boot ${boots}: slot ${outcome.slot}: ${outcome.reason}; resetting`);
        continue;
      }
      say(
        `boot ${boots}: GRUB chose slot ${outcome.slot} (${outcome.reason}); starting clgw-agent${opts.portal === false ? '' : ' and clgw-portal'}`,
      );
      if (opts.portal !== false) portal = supervisePortal(paths.root, say);
      for (;;) {
        const code = await runAgent();
        child = undefined;
        if (stopping) return 'powered off';
        if (await rebootRequested()) {
          say('agent requested a reboot');
          portal?.stop();
          break;
        }
        if (code === 0) return 'agent exited';
        if (++crashes > 3) return `agent keeps failing (exit ${code})`;
        say(`agent exited with ${code}; restarting it`);
      }
    }
  })().finally(() => portal?.stop());

  return {
    done,
    boots: () => boots,
    agentPid: () => child?.pid,
    portalPid: () => portal?.pid(),
    recoveryPid: () => recoveryChild?.pid,
    stop: async () => {
      stopping = true;
      portal?.stop();
      child?.kill('SIGTERM');
      recoveryChild?.kill('SIGTERM');
      await done;
    },
  };
}

// As a program: `boot-emulator --root DIR` runs the appliance until SIGTERM/SIGINT.
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const i = process.argv.indexOf('--root');
  const root = i > 0 ? process.argv[i + 1] : undefined;
  if (!root) {
    process.stderr.write('usage: boot-emulator --root DIR\n');
    process.exit(2);
  }
  const appliance = runAppliance({ root });
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void appliance.stop());
  appliance.done.then((why) => {
    process.stdout.write(`[boot] appliance stopped: ${why}\n`);
    process.exit(0);
  });
}
