#!/usr/bin/env node
import { ClgwError, isClgwError, toClgwError } from '@clgw/core/errors.js';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { AgentClient } from '../api/client.js';
import { encodeQr, renderQrText } from '../logs/qr.js';

/**
 * `clgw-log-download` — SPEC.md §4 "Download logs" as a shell command: asks the agent for a
 * log archive and prints the temporary URL it is served at and when that expires; `--revoke`
 * ends every such link at once.
 *
 * Exit codes as `clgw`: 0 done; 1 failed; 2 usage error; 3 the agent is not reachable; 4 refused
 * (busy: another archive is being built, or the portal's address is not known yet).
 */
const USAGE = `usage: clgw-log-download [--qr] | --revoke
  (no option)  build a log archive (the logs of /var/log/clgw, the system journal, the status
               and state records; no keys, passwords, tokens or container data) and print an
               unreproducible, temporary URL a browser on the LAN downloads it from
  --qr         also print the URL as a QR code (for a phone's camera)
  --revoke     revoke every log download URL now and delete the archives
environment: CLGW_ROOT (appliance root, default /)`;

const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, refused: 4 } as const;

function exitCodeOf(e: unknown): number {
  if (!isClgwError(e)) return EXIT.failed;
  if (e.code === 'INVALID_REQUEST') return EXIT.usage;
  if (e.code === 'AGENT_UNREACHABLE') return EXIT.unreachable;
  if (e.code === 'BUSY' || e.code === 'NOT_ALLOWED') return EXIT.refused;
  return EXIT.failed;
}

/** `in 10 min`, `in 45 s`: the time left, rounded to what a person reads. */
export function timeLeft(ms: number): string {
  if (ms <= 0) return 'expired';
  if (ms < 90_000) return `in ${Math.round(ms / 1000)} s`;
  return `in ${Math.round(ms / 60_000)} min`;
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  const unknown = argv.find((a) => a !== '--revoke' && a !== '--qr');
  if (unknown !== undefined) throw new ClgwError('INVALID_REQUEST', `unknown option "${unknown}"`);
  if (argv.length > 1) throw new ClgwError('INVALID_REQUEST', `use one of --qr and --revoke`);
  const client = new AgentClient(appliancePaths(process.env.CLGW_ROOT ?? '/').socket);
  if (argv[0] === '--revoke') {
    const { revoked } = await client.revokeLogLinks();
    process.stdout.write(`revoked ${revoked} log download URL${revoked === 1 ? '' : 's'}\n`);
    return EXIT.ok;
  }
  process.stderr.write('building the log archive (this can take a couple of minutes)…\n');
  const link = await client.createLogLink();
  // The link was made just now, for its whole lifetime. Not expiresAt less this process's clock:
  // expiresAt is by the agent's clock, which this one need not agree with.
  process.stdout.write(
    `URL: ${link.url}\nexpires: ${link.expiresAt} (${timeLeft(link.ttlMinutes * 60_000)})\n`,
  );
  if (argv[0] === '--qr') process.stdout.write(`${renderQrText(encodeQr(link.url)).join('\n')}\n`);
  return EXIT.ok;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    const err = toClgwError(e);
    process.stderr.write(`clgw-log-download: ${err.code}: ${err.message}\n`);
    if (err.code === 'INVALID_REQUEST') process.stderr.write(`${USAGE}\n`);
    process.exit(exitCodeOf(err));
  },
);
