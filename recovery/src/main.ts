#!/usr/bin/env node
/**
 * `clgw-recovery`: the program the recovery system runs when GRUB boots it — restores slot A
 * to the factory images, erases the data partition (keeping the alarm history), resets the boot
 * environment and reboots. Safe to cut at any instant: it runs again from the top at the next
 * boot, because the request that brought the box here is withdrawn last.
 *
 * Usage: clgw-recovery [--reboot systemd|simulator] [--partition DIR]   (CLGW_ROOT selects the
 * root, default /; `--partition` is where the recovery partition is mounted when it is not at its
 * place under the root — in the recovery system it is the running root itself, images in /factory)
 * Exit: 0 restored (reboot requested), 1 failed (error code on stderr; the box stays in
 * recovery), 2 usage.
 *
 * Fault injection for power-cut tests: with `CLGW_RECOVERY_STOP_AFTER` set to one exact progress
 * line, the program stops itself (SIGSTOP) right after printing it, so a test can cut the power
 * (SIGKILL) at a known instant — or let it go on (SIGCONT). Unset on an appliance.
 */
import { promises as fs } from 'node:fs';
import { serializeError } from '@clgw/core/errors.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { fileLogger } from '@clgw/core/platform/log.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { nodeRecoveryEffects } from './effects.js';
import { type RebootMode, recoveryLayout } from './plan.js';
import { runRecovery } from './run.js';

const USAGE = 'usage: clgw-recovery [--reboot systemd|simulator] [--partition DIR]\n';
/** The recovery log is bounded: at most (1 + 1) × this many bytes on the recovery partition. */
const LOG_MAX_BYTES = 256 * 1024;

function parseArgs(argv: string[]): { reboot: RebootMode; partition?: string } | undefined {
  let reboot: RebootMode = 'simulator';
  let partition: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--partition') {
      partition = argv[++i];
      if (!partition?.startsWith('/')) return undefined;
      continue;
    }
    const value = arg === '--reboot' ? argv[++i] : arg.startsWith('--reboot=') ? arg.slice(9) : undefined;
    if (value === 'systemd' || value === 'simulator') reboot = value;
    else return undefined;
  }
  return { reboot, partition };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (!args) {
    process.stderr.write(USAGE);
    return 2;
  }
  const paths = appliancePaths(process.env.CLGW_ROOT ?? '/');
  const layout = recoveryLayout(args.partition ? { ...paths, recoveryPartition: args.partition } : paths);
  // Before anything (the log included) is created: a wrong root must not grow a recovery tree.
  const mounted = await fs.stat(layout.partition).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!mounted) {
    process.stderr.write(
      `clgw-recovery: RECOVERY_MANIFEST_INVALID: recovery partition ${layout.partition} is not a mounted directory (is CLGW_ROOT right?)\n`,
    );
    return 1;
  }
  const stopAfter = process.env.CLGW_RECOVERY_STOP_AFTER;
  const log = fileLogger({ file: layout.log, clock: systemClock, maxBytes: LOG_MAX_BYTES, keep: 1 });
  try {
    await runRecovery({
      layout,
      effects: nodeRecoveryEffects(layout),
      clock: systemClock,
      log,
      out: (line) => {
        // Synchronous for files, pipes and terminals on Linux: the line is out before any stop.
        process.stdout.write(`${line}\n`);
        if (line === stopAfter) process.kill(process.pid, 'SIGSTOP');
      },
      reboot: args.reboot,
    });
    return 0;
  } catch (e) {
    const err = serializeError(e);
    process.stderr.write(`clgw-recovery: ${err.code}: ${err.message}\n`);
    process.stdout.write('recovery: FAILED — the appliance stays in recovery\n');
    return 1;
  } finally {
    await log.flush();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`clgw-recovery: INTERNAL: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
