#!/usr/bin/env node
import { loadConfig } from '../config.js';
import { ClgwError, toClgwError } from '../errors.js';
import { type FirstBootSource, runFirstBoot } from '../firstboot/run.js';
import { CDROM_DEVICES } from '../firstboot/sources.js';
import { systemClock } from '../platform/clock.js';
import { execFile } from '../platform/exec.js';
import { fileLogger, type Logger } from '../platform/log.js';
import { appliancePaths } from '../platform/paths.js';

/**
 * `clgw-firstboot` — applies the OVF environment's network settings once per data partition
 * (SPEC.md §5), run by clgw-firstboot.service before systemd-networkd starts.
 *
 * Exit codes: 0 done (or done before, or nothing found); 1 failed (nothing recorded: the next
 * boot tries again); 2 usage error.
 */
const USAGE = `usage: clgw-firstboot [--iso FILE | --env-file FILE]
  (no option)      read the OVF environment from VMware guestinfo (vmtoolsd), else from
                   ovf-env.xml on a CD-ROM (${CDROM_DEVICES.join(', ')}); save its network
                   settings and record var/clgw/firstboot.json; does nothing once that exists
  --iso FILE       read ovf-env.xml from this ISO 9660 image instead
  --env-file FILE  read this OVF environment document instead
environment: CLGW_ROOT (appliance root, default /)`;

function parseArgs(argv: string[]): FirstBootSource {
  if (argv.length === 0) return { devices: CDROM_DEVICES };
  const [option, file, ...rest] = argv;
  if ((option !== '--iso' && option !== '--env-file') || !file || rest.length > 0)
    throw new ClgwError('INVALID_REQUEST', `unexpected arguments "${argv.join(' ')}"`);
  return option === '--iso' ? { iso: file } : { envFile: file };
}

/**
 * The log file as the agent writes it, and each line as plain text on stderr too: under systemd
 * that is the journal, where every reason is one line.
 */
function echoing(file: Logger): Logger {
  const both =
    (level: 'info' | 'warn' | 'error') =>
    (msg: string, fields?: Record<string, unknown>): void => {
      process.stderr.write(`clgw-firstboot: ${msg}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`);
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
  const source = parseArgs(argv);
  const paths = appliancePaths(process.env.CLGW_ROOT ?? '/');
  const log = echoing(fileLogger({ file: paths.logFile, clock: systemClock }));
  try {
    const config = await loadConfig(paths);
    await runFirstBoot(
      { paths, config, log, now: systemClock.now, execFile, searchPath: process.env.PATH ?? '' },
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
