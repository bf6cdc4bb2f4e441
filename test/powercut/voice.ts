/**
 * The voice side of the `update-with-calls` scenario (issue #22): the case's voice service — the
 * freeswitch stand-in's event socket program (scripts/standins/esl-standin.c), run as a process of
 * its own on a port of the case's — and the site's callers.
 *
 * The callers: 2 calls are up at every power-on (the site calls again once the gateway is back),
 * and they hang up only once the appliance is seen waiting for them (status `waitingForCalls`, 2
 * calls counted). What that checks (invariant 7 of README.md): the appliance never goes on to
 * switch slots while they are up — its deadline is an hour away — and a wait resumed after a cut
 * keeps the deadline it planned (a re-planned one would lie later each time and never end).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import type { Status } from '../../agent/src/status.js';
import { eslStandin } from '../../scripts/standins.js';
import { takePort } from './containers.js';
import { sleep } from './crash.js';

/** The calls up at every power-on. */
export const CALLS_AT_POWER_ON = 2;
const PASSWORD = 'powercut-esl';

/** The event socket program, written once per run into `dir`; its path. */
export async function writeEslStandin(dir: string): Promise<string> {
  const file = path.join(dir, 'esl-standin');
  await fs.writeFile(file, await eslStandin(), { mode: 0o755 });
  return file;
}

async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** One case's voice service: up for the whole case (it holds nothing a power cut could lose). */
export class CaseVoice {
  private constructor(
    private readonly child: ChildProcess,
    private readonly callsFile: string,
    readonly port: number,
    /** Relative to the appliance root, as agent.json names it. */
    private readonly passwordFile: string,
  ) {}

  /** Starts it with its calls file in `dir`; the password beside the appliance's agent.json. */
  static async start(binary: string, dir: string, paths: AppliancePaths): Promise<CaseVoice> {
    await fs.mkdir(dir, { recursive: true });
    const callsFile = path.join(dir, 'calls');
    const passwordFile = path.join(path.dirname(paths.config), 'esl-password');
    await fs.writeFile(callsFile, '0\n');
    await fs.writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    const port = await takePort();
    const child = spawn(binary, [callsFile], {
      env: { ESL_PORT: String(port), ESL_PASSWORD: PASSWORD },
      stdio: 'ignore',
    });
    const voice = new CaseVoice(child, callsFile, port, path.relative(paths.root, passwordFile));
    for (let i = 0; !(await answers(port)); i++) {
      if (child.exitCode !== null || i > 200) {
        await voice.close();
        throw new Error(`the event socket stand-in ${binary} did not answer on 127.0.0.1:${port}`);
      }
      await sleep(10);
    }
    return voice;
  }

  /** agent.json's `voice`: asked every 100 ms so a case does not idle in the wait. */
  config(): Record<string, unknown> {
    return {
      voice: {
        host: '127.0.0.1',
        port: this.port,
        passwordFile: this.passwordFile,
        pollMs: 100,
        timeoutMs: 2000,
      },
    };
  }

  async setCalls(calls: number): Promise<void> {
    await writeFileAtomic(this.callsFile, `${calls}\n`);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

/** What the callers saw over a case. */
export interface CallersRecord {
  /** Waits for the calls the callers hung up on. */
  waits: number;
  /**
   * The deadline of the wait under way, as first seen, with the factory resets before it: a
   * factory reset (after a cut in the critical phase) erases the journal, and the update that
   * follows plans a wait of its own. Forgotten at a cut whose durable journal holds no wait (one
   * in the last look waits again: the phones came back with the power).
   */
  deadline: { at: string; resets: number } | undefined;
  /** This power-on: the appliance has been seen waiting for the calls up, its deadline planned. */
  waiting: boolean;
}

/**
 * One power-on's callers: 2 calls up from the start; they hang up once the appliance waits for
 * them. Reports each violation of invariant 7 it sees once.
 */
export async function callers(
  voice: CaseVoice,
  record: CallersRecord,
  o: {
    live: () => boolean;
    status: () => Promise<Status | undefined>;
    /** Factory resets so far (the cuts that interrupted a switch). */
    resets: () => number;
    /** Keep the calls up even while the appliance waits (a cut is planned in the wait). */
    hold: () => boolean;
    violation: (m: string) => void;
  },
): Promise<void> {
  record.waiting = false;
  await voice.setCalls(CALLS_AT_POWER_ON);
  let up = true;
  // Whether this power-on has been before the switch: a power-on that resumes a switch (or the
  // reboot after it) has no wait left to do.
  let beforeSwitch = false;
  const seen = new Set<string>();
  const violation = (kind: string, m: string) => {
    if (!seen.has(kind)) o.violation(m);
    seen.add(kind);
  };
  while (o.live()) {
    await sleep(20);
    const s = await o.status();
    if (!s || !o.live()) continue;
    if (['idle', 'checking', 'downloading', 'verifying', 'installing', 'waitingForCalls'].includes(s.state)) {
      beforeSwitch = true;
    }
    const deadline = s.state === 'waitingForCalls' ? s.calls?.deadline : undefined;
    if (deadline) {
      const resets = o.resets();
      if (record.deadline?.resets !== resets) record.deadline = { at: deadline, resets };
      else if (record.deadline.at !== deadline) {
        violation(
          'deadline',
          `the wait for calls changed its deadline across a power cut: ${record.deadline.at} then ${deadline}`,
        );
      }
    }
    const waiting = !!deadline && s.calls?.active === CALLS_AT_POWER_ON;
    if (waiting) record.waiting = true;
    if (up && waiting && !o.hold()) {
      await voice.setCalls(0);
      up = false;
      record.waits++;
    } else if (up && beforeSwitch && s.state === 'switching') {
      violation(
        'switch',
        `switched slots with ${CALLS_AT_POWER_ON} calls up, an hour before the wait's deadline`,
      );
    }
  }
}
