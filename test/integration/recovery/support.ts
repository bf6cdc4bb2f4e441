/**
 * Shared by the recovery tests: a used appliance to restore (scribbled slots, a full data
 * partition, an alarm history, a recovery request), the real recovery program run as a process
 * (optionally stopped at one progress line and killed there), and the checks of the end state.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { defaultGrubenv, requestRecovery } from '@clgw/core/slot/bootchooser.js';
import { serializeGrubenv } from '@clgw/core/slot/grubenv.js';
import { writeGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { expect } from 'vitest';
import { RECOVERY_MAIN } from '../../../scripts/sim/boot-emulator.js';
import type { ReleaseImages } from '../../../scripts/sim/images.js';
import { until } from '../../support/appliance.js';

/** An alarm history as the agent writes it (a JSON array); the recovery treats it as opaque bytes. */
export const ALARMS = `${JSON.stringify(
  [
    {
      code: 'CLGW_ALARM_CRITICAL_PHASE_FAILED',
      message: 'power was lost while the update switched the boot environment',
      raisedAt: '2026-02-01T03:04:05.000Z',
    },
  ],
  null,
  2,
)}\n`;

export const REASON = 'critical-phase-failed';

export interface UsedAppliance {
  /** The grubenv bytes that ask for recovery. */
  grubenv: Uint8Array;
  /** SHA-256 of the scribbled slot A partitions. */
  slots: Record<string, string>;
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Overwrites a partition file with random bytes, keeping its size. */
async function scribble(file: string): Promise<void> {
  const size = (await fs.stat(file)).size;
  const h = await fs.open(file, 'r+');
  try {
    await h.write(randomBytes(size), 0, size, 0);
  } finally {
    await h.close();
  }
}

/**
 * A box after some life: slot A scribbled over, a data partition with onboarding data, network
 * configuration, update state and an alarm history, logs, and a boot environment with slot B
 * preferred that asks for recovery with a reason.
 */
export async function useAppliance(
  paths: AppliancePaths,
  opts: { reason?: string } = {},
): Promise<UsedAppliance> {
  await scribble(paths.partition('boot', 'A'));
  await scribble(paths.partition('root', 'A'));
  const data = paths.dataDir;
  await fs.mkdir(path.join(data, 'onboarding/pbx'), { recursive: true });
  await fs.writeFile(path.join(data, 'onboarding/account-link.json'), '{"customer":"acme"}');
  await fs.writeFile(path.join(data, 'onboarding/pbx/settings.json'), '{"type":"MiVoice"}');
  await fs.mkdir(path.join(data, 'network'), { recursive: true });
  await fs.writeFile(path.join(data, 'network/10-eth0.network'), '[Match]\nName=eth0\n[Network]\nDHCP=yes\n');
  await fs.writeFile(path.join(data, 'update-journal.json'), '{"state":"switching"}\n');
  await fs.writeFile(path.join(data, 'history.json'), '{"highestVersion":"1.1.0"}\n');
  await fs.writeFile(path.join(data, '.hidden'), 'dotfiles go too\n');
  await fs.symlink('/etc/hostname', path.join(data, 'a-link'));
  await fs.writeFile(paths.alarms, ALARMS);
  await fs.mkdir(paths.logDir, { recursive: true });
  await fs.writeFile(paths.logFile, '{"msg":"old log"}\n');
  await fs.writeFile(`${paths.logFile}.1`, '{"msg":"older log"}\n');

  const env = new Map([...defaultGrubenv(), ['ORDER', 'B A'], ['B_OK', '1'], ['B_TRY', '1']]);
  const request = requestRecovery(env);
  if (opts.reason !== undefined) request.set('CLGW_RECOVERY_REASON', opts.reason);
  await writeGrubenv(paths.grubenv, request);
  return {
    grubenv: await fs.readFile(paths.grubenv),
    slots: await slotDigests(paths),
  };
}

export async function slotDigests(paths: AppliancePaths): Promise<Record<string, string>> {
  return {
    boot_a: sha256(await fs.readFile(paths.partition('boot', 'A'))),
    root_a: sha256(await fs.readFile(paths.partition('root', 'A'))),
  };
}

/** Every file under `dir` (relative path → SHA-256, or link target). */
export async function treeDigest(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isSymbolicLink()) out[path.relative(dir, p)] = `-> ${await fs.readlink(p)}`;
      else out[path.relative(dir, p)] = sha256(await fs.readFile(p));
    }
  };
  await walk(dir);
  return out;
}

export interface ProgramRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function collect(child: ChildProcess): Promise<ProgramRun> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      // Let the pipes drain before reporting.
      setImmediate(() => resolve({ code, signal, stdout, stderr }));
    });
  });
}

/** Runs `clgw-recovery` (the built program) on the appliance root to its end. */
export async function runRecoveryProgram(root: string, env: NodeJS.ProcessEnv = {}): Promise<ProgramRun> {
  await fs.access(RECOVERY_MAIN); // built by `make test`
  const child = spawn(process.execPath, [RECOVERY_MAIN], {
    env: { ...process.env, ...env, CLGW_ROOT: root },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child);
}

/** The process's state letter from /proc (T = stopped), or undefined once it is gone. */
export async function processState(pid: number): Promise<string | undefined> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/** Waits until `pid` stopped itself (CLGW_RECOVERY_STOP_AFTER); fails if it ended instead. */
export async function waitStopped(pid: number, what: string): Promise<void> {
  await until(async () => {
    const state = await processState(pid);
    if (state === undefined || state === 'Z') throw new Error(`recovery process ended before ${what}`);
    return state === 'T' ? true : undefined;
  }, `the recovery process to stop at ${what}`);
}

/**
 * Runs the recovery program until it has printed `line`, then cuts the power there (SIGKILL).
 * Returns what it printed.
 */
export async function cutRecoveryAt(root: string, line: string): Promise<ProgramRun> {
  await fs.access(RECOVERY_MAIN);
  const child = spawn(process.execPath, [RECOVERY_MAIN], {
    env: { ...process.env, CLGW_ROOT: root, CLGW_RECOVERY_STOP_AFTER: line },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const result = collect(child);
  await waitStopped(child.pid!, JSON.stringify(line));
  child.kill('SIGKILL');
  const run = await result;
  expect(run.signal).toBe('SIGKILL');
  expect(run.stdout.trimEnd().split('\n').at(-1)).toBe(line);
  return run;
}

/**
 * The state a completed factory restore leaves: slot A starts with the factory images byte for
 * byte (the rest of each partition keeps whatever it held — the images are written at the start
 * and the partition is never truncated), the data partition holds only the alarm history (same
 * bytes) and the recovery record, the logs are gone, the boot environment is the default one and
 * a reboot is requested.
 */
export async function expectRestored(
  paths: AppliancePaths,
  factory: ReleaseImages,
  expected: { reason: string; alarms?: string; scribbledTail?: boolean },
): Promise<void> {
  for (const kind of ['boot', 'root'] as const) {
    const image = await fs.readFile(factory[kind]);
    const part = await fs.readFile(paths.partition(kind, 'A'));
    expect(sha256(part.subarray(0, image.length)), `${kind}_a starts with the factory ${kind}.img`).toBe(
      sha256(image),
    );
    if (expected.scribbledTail && part.length > image.length) {
      // Documented behaviour: past the image, the old (here: random) bytes stay.
      expect(part.subarray(image.length).every((b) => b === 0)).toBe(false);
    }
  }
  const entries = (await fs.readdir(paths.dataDir)).sort();
  expect(entries).toEqual(
    expected.alarms === undefined ? ['recovery.json'] : ['alarms.json', 'recovery.json'],
  );
  if (expected.alarms !== undefined) expect(await fs.readFile(paths.alarms, 'utf8')).toBe(expected.alarms);
  const record = JSON.parse(await fs.readFile(paths.recoveryRecord, 'utf8'));
  expect(record).toEqual({
    completedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    factoryVersion: factory.version,
    reason: expected.reason,
  });
  expect(await fs.readdir(paths.logDir)).toEqual([]);
  expect(Buffer.from(await fs.readFile(paths.grubenv))).toEqual(
    Buffer.from(serializeGrubenv(defaultGrubenv())),
  );
  expect(await fs.readFile(paths.rebootRequest, 'utf8')).toContain('factory restore');
  await expect(fs.stat(path.join(paths.recoveryPartition, 'carry'))).rejects.toThrow();
}
