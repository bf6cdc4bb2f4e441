/**
 * What every part of `make bench` shares: where its files live, the error that stops it, the
 * child processes it started (all stopped again on the way out), and small measuring helpers.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from '@clgw/core/platform/exec.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Inputs that are expensive to make (images, bundles, chunk stores), reused across runs. */
export const BENCH = path.join(REPO, '.cache/bench');
/** Appliance roots, slot files and peers' run directories: one filesystem, removed after use. */
export const RUNS = path.join(BENCH, 'runs');
export const PEERS_DIR = path.join(REPO, 'scripts/bench');
export const MIB = 1024 * 1024;

/** Something that makes the numbers meaningless: the bench stops and names it. */
export class BenchBroken extends Error {}

export const say = (line: string) => process.stdout.write(`${line}\n`);
export const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

export function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new BenchBroken(`${name}=${raw} is not a whole number ≥ ${min}`);
  return n;
}

let settleMs = 3000;
export function setSettleMs(ms: number): void {
  settleMs = ms;
}
export const settleDelayMs = () => settleMs;

/**
 * Before a stage that writes a slot: first `sync`, so that no stage pays for the dirty pages the
 * one before it left (a gigabyte of them after RAUC's or casync's run, flushed while the next
 * stage's own fsyncs wait in line behind them — the agent, which makes its download durable as it
 * goes, ran at half its rate behind them); then a wait into fresh page cache. A VM whose balloon
 * reports free pages to the hypervisor (virtio-balloon free page reporting) gives memory freed by
 * the previous stage back within about 2 s, and touching it again costs a host fault per page: on
 * the 2-vCPU development VM ~1 s of system time per 512 MiB written, against ~0.1 s for memory
 * freed a moment ago. The agent always writes into such cold memory, so every writing stage (peers
 * included) starts from it too, rather than from whatever the stage before happened to free.
 */
export async function settle(): Promise<void> {
  await execFile('sync', []);
  await new Promise((r) => setTimeout(r, settleMs));
}

// ---------------------------------------------------------------------------------------------
// Child processes

const live = new Set<ChildProcess>();

/** Spawns a program (argument vector, never a shell string) that `stopAll` will stop. */
export function spawnTracked(bin: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(bin, args, options);
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/** Kills every child still running (the bench is failing or interrupted). */
export function killAll(): void {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited.finally(() => clearTimeout(timer));
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last 8 KiB of each stream. */
  stdout: string;
  stderr: string;
  seconds: number;
  /**
   * User+system CPU-seconds of the program and every descendant it waited for: the growth of the
   * bench's own children totals (`cutime`+`cstime`) from spawn to exit — exact while no other
   * child of the bench ends meanwhile, which the bench never lets happen (stages run one at a time).
   */
  cpuSeconds: number;
}

/** Runs a program to its end, timed from spawn to exit; output tails are kept for error messages. */
export async function runTimed(
  bin: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const cpu0 = await childrenCpuSeconds();
  const t0 = process.hrtime.bigint();
  const child = spawnTracked(bin, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-8192)));
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
  const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c, s) => resolve({ code: c, signal: s }));
    },
  ).finally(() => clearTimeout(timer));
  const took = seconds(t0);
  return { code, signal, stdout, stderr, seconds: took, cpuSeconds: (await childrenCpuSeconds()) - cpu0 };
}

/** One line naming how a run ended, with the tail of what it said. */
export function describeRun(what: string, r: RunResult): string {
  const end = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const said = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-6).join(' | ');
  return `${what}: ${end}${said ? `: ${said}` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// CPU time, from /proc (clock ticks of USER_HZ; Linux fixes it at 100 for user space)

const TICKS_PER_SECOND = 100;

/**
 * utime, stime, cutime, cstime of a process (fields 14–17 of /proc/PID/stat, counted after the
 * command name's closing parenthesis, which may itself hold spaces), in seconds; null once gone.
 */
export async function procCpu(
  pid: number | 'self',
): Promise<{ user: number; system: number; childUser: number; childSystem: number } | null> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const t = (i: number) => Number(f[i]) / TICKS_PER_SECOND;
  return { user: t(11), system: t(12), childUser: t(13), childSystem: t(14) };
}

/** A process's own CPU-seconds plus those of the children it has waited for (0 once gone). */
export async function treeCpuSeconds(pid: number): Promise<number> {
  const c = await procCpu(pid);
  return c ? c.user + c.system + c.childUser + c.childSystem : 0;
}

/**
 * CPU-seconds of every child of the bench that has ended and been waited for (node reaps its
 * children): the difference across one child's life is that child's whole process tree.
 */
export async function childrenCpuSeconds(): Promise<number> {
  const c = await procCpu('self');
  if (!c) throw new BenchBroken('cannot read /proc/self/stat');
  return c.childUser + c.childSystem;
}

/** VmHWM (peak resident set) of a live process in KiB; 0 once it is gone. */
export async function vmHwmKiB(pid: number): Promise<number> {
  return (await memoryKiB(pid)).hwm;
}

/**
 * A live process's peak resident set (VmHWM) and its resident set now, anonymous (its heap,
 * buffers, stacks) and file-backed (mapped program and libraries: for node, the pages of its own
 * binary it has touched, which every node process shares) — in KiB; zeros once it is gone.
 */
export async function memoryKiB(pid: number): Promise<{ hwm: number; anon: number; file: number }> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)\\s+kB$`, 'm').exec(status)?.[1] ?? 0);
  return { hwm: kib('VmHWM'), anon: kib('RssAnon'), file: kib('RssFile') };
}

// ---------------------------------------------------------------------------------------------
// Files

/** A fixed-size file made the way createAppliance makes a slot partition (ftruncate, fsync). */
export async function makeSlotFile(file: string, bytes: number): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const h = await fs.open(file, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    await h.truncate(bytes);
    await h.sync();
  } finally {
    await h.close();
  }
}

/** SHA-256 (hex) of the first `bytes` bytes of a file (a slot holds the image, then padding). */
export async function sha256Prefix(file: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 * MIB);
  const h = await fs.open(file, 'r');
  try {
    for (let off = 0; off < bytes; ) {
      const { bytesRead } = await h.read(buf, 0, Math.min(buf.length, bytes - off), off);
      if (bytesRead === 0) throw new BenchBroken(`${file} ends at ${off} bytes, expected at least ${bytes}`);
      hash.update(buf.subarray(0, bytesRead));
      off += bytesRead;
    }
  } finally {
    await h.close();
  }
  return hash.digest('hex');
}

export const exists = (p: string) =>
  fs.stat(p).then(
    () => true,
    () => false,
  );

/** Fills `@NAME@` placeholders of a peer's configuration template; an unknown one is an error. */
export async function renderTemplate(template: string, values: Record<string, string>): Promise<string> {
  const text = await fs.readFile(template, 'utf8');
  return text.replace(/@([A-Z_]+)@/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new BenchBroken(`${template}: no value for @${name}@`);
    return v;
  });
}

// ---------------------------------------------------------------------------------------------
// Trusting the mirror's CA, for peers that cannot be told to

/**
 * Writes `dir/ca-certificates.crt` holding the mirror's CA alone: what /etc/ssl/certs looks like
 * to a peer run with `inMirrorTrust`.
 */
export async function mirrorTrustDir(dir: string, caPem: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'ca-certificates.crt'), caPem);
  return dir;
}

/**
 * The command that runs `bin args` trusting the mirror. casync's HTTPS helper and RAUC's bundle
 * download (both libcurl) accept only the system's CA bundle and have no option for another CA;
 * so they run in a private mount namespace where `trustDir` is bind-mounted over /etc/ssl/certs.
 * The machine's trust store is untouched and no other process sees the change. The script is a
 * constant; paths and arguments reach it as positional parameters.
 */
export function inMirrorTrust(trustDir: string, bin: string, args: readonly string[]): [string, string[]] {
  const ns = process.getuid?.() === 0 ? ['--mount'] : ['--map-root-user', '--mount'];
  return [
    'unshare',
    [
      ...ns,
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      'mount --bind "$1" /etc/ssl/certs && shift && exec "$@"',
      'sh',
      trustDir,
      bin,
      ...args,
    ],
  ];
}
