#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadConfig } from '@clgw/core/config.js';
import { ClgwError, toClgwError } from '@clgw/core/errors.js';
import { oneLine } from '@clgw/core/format.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { fileLogger, type Logger } from '@clgw/core/platform/log.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { type FirstBootSource, runFirstBoot } from './run.js';
import { CDROM_DEVICES, GUESTINFO_WAIT_MS } from './sources.js';

/**
 * `clgw-firstboot` — applies the OVF environment's network settings once per data partition
 * (SPEC.md §5), run by clgw-firstboot.service before systemd-networkd starts.
 *
 * Exit codes: 0 done (or done before, or nothing found); 1 failed (nothing recorded: the next
 * boot tries again); 2 usage error.
 */
const USAGE = `usage: clgw-firstboot [--cdrom FILE]... [--guestinfo-wait SECONDS] | --document FILE
  (no option)          on the VMware image, ask VMware Tools for guestinfo.ovfEnv; then look
                       for ovf-env.xml on the CD-ROM drives (${CDROM_DEVICES.join(', ')});
                       guestinfo wins where both have one. Save the network settings, record
                       var/clgw/firstboot.json; do nothing once that exists
  --cdrom FILE         look at this drive or ISO 9660 image instead of the CD-ROM drives
                       (repeatable: in the order given)
  --guestinfo-wait S   keep asking guestinfo for up to S seconds while VMware Tools does not
                       answer (default ${GUESTINFO_WAIT_MS / 1000}); "not set" is final at once
  --document FILE      read this OVF environment document instead of guestinfo and CD-ROMs
environment: CLGW_ROOT (appliance root, default /)`;

function sourceOf(argv: string[]): FirstBootSource {
  let values: { cdrom?: string[]; document?: string; 'guestinfo-wait'?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        cdrom: { type: 'string', multiple: true },
        document: { type: 'string' },
        'guestinfo-wait': { type: 'string' },
      },
    }));
  } catch (e) {
    throw new ClgwError('INVALID_REQUEST', (e as Error).message);
  }
  if (values.document !== undefined) {
    if (values.cdrom || values['guestinfo-wait'] !== undefined)
      throw new ClgwError(
        'INVALID_REQUEST',
        '--document reads one file: no --cdrom or --guestinfo-wait with it',
      );
    return { document: values.document };
  }
  const wait = values['guestinfo-wait'];
  const seconds = wait === undefined ? undefined : Number(wait);
  if (seconds !== undefined && !(/^\d{1,4}$/.test(wait!) && seconds <= 600))
    throw new ClgwError('INVALID_REQUEST', `--guestinfo-wait "${wait}": expected whole seconds, 0 to 600`);
  return {
    cdroms: values.cdrom ?? CDROM_DEVICES,
    ...(seconds !== undefined ? { guestinfoWaitMs: seconds * 1000 } : {}),
  };
}

/**
 * The log file as the agent writes it, and each line as plain text on stderr too: under systemd
 * that is the journal, where every reason is one line.
 */
function echoing(file: Logger): Logger {
  const both =
    (level: 'info' | 'warn' | 'error') =>
    (msg: string, fields?: Record<string, unknown>): void => {
      process.stderr.write(`clgw-firstboot: ${oneLine(msg)}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`);
      file[level](msg, fields);
    };
  return {
    debug: file.debug,
    info: both('info'),
    warn: both('warn'),
    error: both('error'),
    flush: file.flush,
  };
}

async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const source = sourceOf(argv);
  const paths = appliancePaths(process.env.CLGW_ROOT ?? '/');
  const log = echoing(fileLogger({ file: paths.logFile, clock: systemClock }));
  try {
    const config = await loadConfig(paths);
    await runFirstBoot(
      {
        paths,
        config,
        log,
        now: systemClock.now,
        sleep: (ms) => systemClock.sleep(ms),
        execFile,
        searchPath: process.env.PATH ?? '',
      },
      source,
    );
    return 0;
  } finally {
    await log.flush();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    const err = toClgwError(e);
    process.stderr.write(`clgw-firstboot: ${err.code}: ${err.message}\n`);
    if (err.code === 'INVALID_REQUEST') process.stderr.write(`${USAGE}\n`);
    process.exit(err.code === 'INVALID_REQUEST' ? 2 : 1);
  },
);
