#!/usr/bin/env node
/**
 * The simulator's SSH window, kept without the agent (the appliance has systemd's RuntimeMaxSec
 * for this; see ssh.ts):
 *
 *   node sim-window.js --seconds N --until ISO --log FILE -- /usr/sbin/sshd -D -e -f CONFIG
 *
 * runs sshd (its log appended to FILE) and, after N seconds or on SIGTERM (Disable), ends it
 * together with every session it opened — sshd's per-connection processes call setsid, so a
 * plain `timeout` would stop the listener and leave logged-in sessions running. When sshd exits
 * by itself, so does this, with sshd's status. `--until` is informational: the agent reads it from
 * the command line to tell whether the running window is the one it wants.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, openSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { endProcessTree } from '@clgw/core/platform/process-tree.js';

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  strict: true,
  options: { seconds: { type: 'string' }, until: { type: 'string' }, log: { type: 'string' } },
});
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds <= 0 || !values.log || positionals.length === 0) {
  process.stderr.write('usage: sim-window.js --seconds N --until ISO --log FILE -- COMMAND...\n');
  process.exit(2);
}
const logFile = values.log;
const note = (line: string) => appendFileSync(logFile, `clgw: ${new Date().toISOString()} ${line}\n`);

const out = openSync(logFile, 'a');
const child = spawn(positionals[0]!, positionals.slice(1), { stdio: ['ignore', out, out] });
let ending = false;

async function end(why: string): Promise<void> {
  if (ending) return;
  ending = true;
  note(`${why}: ending sshd and every session it opened`);
  if (child.pid !== undefined) await endProcessTree(child.pid);
  process.exit(0);
}

child.on('exit', (code, sig) => {
  if (ending) return;
  note(`sshd exited (${sig ?? `status ${code}`})`);
  process.exit(code ?? 1);
});
child.on('error', (e) => {
  note(`cannot run ${positionals[0]}: ${e.message}`);
  process.exit(1);
});
process.on('SIGTERM', () => void end('SSH access disabled'));

// setTimeout takes at most 2^31-1 ms (~24.8 days); the window is 24 hours, but count down in steps anyway.
const deadline = performance.now() + seconds * 1000;
const tick = () => {
  const left = deadline - performance.now();
  if (left <= 0) void end(`the SSH window closed (${values.until ?? `${seconds} s`})`);
  else setTimeout(tick, Math.min(left, 3600_000));
};
tick();
