/**
 * Power-cut points for the torture test (`test/powercut/`): named instants between the steps of
 * every persisted write (and of the recovery program) where the test can freeze the process and
 * cut the power there. On the appliance `CLGW_CRASH_DIR` is unset and {@link crashpoint} returns
 * after one comparison.
 *
 * With `CLGW_CRASH_DIR=<dir>` in the environment, each call looks at `<dir>/armed`:
 * - absent: nothing happens (the test arms the points only for the part of a run it enumerates);
 * - `count`: the call is counted (`<dir>/count`) and traced (`<dir>/trace`, one line
 *   `<n> <pid> <label>` per call), nothing else;
 * - `step`: counted, traced, then the process freezes itself (SIGSTOP) so the test can look at
 *   what is durable at this instant and either cut here or let it go on (SIGCONT);
 * - `<n>`: counted and traced; the n-th counted call freezes the process;
 * - `label:<label>`: counted and traced; the first call with exactly that label freezes the
 *   process (the QEMU end-to-end run cuts the power inside the critical phase this way, through a
 *   directory it shares with the guest).
 *
 * The count lives in the directory, not in the process, so "the n-th persisted step" spans every
 * process of a run (agent, recovery program, the agent again after the reboot) in the order the
 * appliance ran them; only one of them runs at a time.
 *
 * Why freeze (SIGSTOP) rather than die (SIGKILL): a power cut stops the whole machine at once.
 * A process that killed itself would be restarted by the boot emulator as systemd restarts a
 * crashed service — without a reboot, which is not a power cut. Frozen, it writes nothing more
 * while the test stops the emulator and then kills it, so nothing runs past the cut.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Read once: a fault-injection hook is called from the lowest layer (every atomic write), where
 * threading an injected dependency through every writer would cost more than it tells.
 */
const CRASH_DIR = process.env.CLGW_CRASH_DIR || undefined;
const FSLOG_DIR = process.env.CLGW_FSLOG_DIR || undefined;

/**
 * Marks an instant at which a power cut is worth testing. A no-op unless `CLGW_CRASH_DIR` is set
 * (see the module comment). `label` names the step (`written update-journal.json`,
 * `recovery eraseData`…): the test reports it with the cut.
 */
export function crashpoint(label: string): void {
  if (CRASH_DIR === undefined) return;
  hit(CRASH_DIR, label);
}

function hit(dir: string, label: string): void {
  let armed: string;
  try {
    armed = readFileSync(path.join(dir, 'armed'), 'utf8').trim();
  } catch {
    return;
  }
  const countFile = path.join(dir, 'count');
  let count = 0;
  try {
    count = Number.parseInt(readFileSync(countFile, 'utf8'), 10) || 0;
  } catch {
    // First counted call since the test armed the points.
  }
  count += 1;
  // Synchronous, and before the freeze: the test reads where the process stopped from these.
  writeFileSync(countFile, String(count));
  const traced = label.trim().replace(/\s+/g, ' ');
  appendFileSync(path.join(dir, 'trace'), `${count} ${process.pid} ${traced}\n`);
  // The power-cut model's record of file system changes (test/powercut/fs-recorder.mjs) places
  // each point among them: a claim such as "dirsynced var/clgw/" is checked against what was done.
  if (FSLOG_DIR !== undefined) {
    const entry = { op: 'label', n: count, label: traced, pid: process.pid };
    appendFileSync(path.join(FSLOG_DIR, 'ops.jsonl'), `${JSON.stringify(entry)}\n`);
  }
  if (armed === 'step' || armed === String(count) || armed === `label:${traced}`)
    process.kill(process.pid, 'SIGSTOP');
}
