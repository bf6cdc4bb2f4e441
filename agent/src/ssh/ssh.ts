import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClgwError, isClgwError, serializeError } from '@clgw/core/errors.js';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import type { Clock } from '@clgw/core/platform/clock.js';
import { type ExecResult, execFile } from '@clgw/core/platform/exec.js';
import type { Logger } from '@clgw/core/platform/log.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { endProcessTree, running } from '@clgw/core/platform/process-tree.js';
import { appliancePrincipal } from '@clgw/core/ssh/principal.js';
import * as z from 'zod';
import { ensureApplianceId } from './appliance-id.js';
import { describeSsh, SSH_OFF, type SshState, type SshView } from './view.js';

export { describeSsh, SSH_OFF, type SshState, type SshView, sshBanner, sshSupportLine } from './view.js';

/** SSH access switches itself off this long after it was turned on (SPEC §4). */
export const SSH_HOURS = 24;
const HOUR = 3600_000;
/** The account Mitel support logs in to (SPEC §9); `ssh.account` in agent.json for the simulator. */
export const SUPPORT_ACCOUNT = 'support';
/** How long sshd has to send its `SSH-2.0-` greeting after it was started. */
const ANSWER_MS = 5000;
/** How long the answer to "does sshd run?" is kept. */
const LIVENESS_MS = 5000;

const stateSchema = z
  .object({
    enabledAt: z.string(),
    expiresAt: z.string(),
    phase: z.enum(['starting', 'on']).optional(),
    account: z.string().optional(),
    principal: z.string().optional(),
  })
  .strict();

/** Where sshd listens (the agent checks its greeting there; errors name it). */
export interface SshEndpoint {
  host: string;
  port: number;
}

/** The window sshd may run in: its absolute end, the seconds left of it, and who may log in. */
export interface SshWindow {
  expiresAt: string;
  seconds: number;
  account: string;
  applianceId: string;
}

/**
 * The OpenSSH server: `ssh.service` under systemd on the appliance, `sshd -D` in the simulator.
 * Both keep the window themselves — sshd is stopped at its end even when the agent is not running
 * — and stopping ends the support account's open sessions too.
 */
export interface SshServer {
  readonly endpoint: SshEndpoint;
  /**
   * Starts sshd bounded by `window`; nothing to do when it already runs within that same window
   * (an agent restart must not cut support's session), restarted when it runs within another.
   * Resolves once started; whether it answers the agent checks.
   */
  start(window: SshWindow): Promise<void>;
  stop(): Promise<void>;
  /** Whether sshd runs now (it may have died since it was started). */
  running(): Promise<boolean>;
}

export async function readSsh(file: string): Promise<SshState | undefined> {
  const raw = await readJsonFile(file).catch(() => undefined);
  const parsed = stateSchema.safeParse(raw);
  return parsed.success && !Number.isNaN(Date.parse(parsed.data.expiresAt)) ? parsed.data : undefined;
}

/** Resolves once a server at `endpoint` sends an SSH-2.0 greeting; SSH_FAILED after `ms`. */
export async function waitForGreeting(endpoint: SshEndpoint, ms = ANSWER_MS): Promise<void> {
  const deadline = Date.now() + ms;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const got = await new Promise<string>((resolve) => {
      const s = net.connect(endpoint.port, endpoint.host);
      s.setTimeout(Math.max(100, deadline - Date.now()), () => s.destroy(new Error('no greeting')));
      s.once('data', (d) => {
        resolve(d.toString('latin1').split('\r\n')[0] ?? '');
        s.destroy();
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(`error: ${e.code ?? e.message}`));
      s.once('end', () => resolve('error: closed without a greeting'));
    });
    if (got.startsWith('SSH-2.0-')) return;
    last = got.startsWith('error: ') ? got.slice(7) : `it sent ${JSON.stringify(got.slice(0, 40))}`;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new ClgwError('SSH_FAILED', `sshd did not answer within ${ms / 1000} s (${last})`, {
    details: { ...endpoint },
  });
}

export interface SshDeps {
  paths: AppliancePaths;
  clock: Clock;
  log: Logger;
  server: SshServer;
  /** The account support logs in to (default `support`). */
  account?: string;
  /** Resolves once sshd answers at `endpoint` (default: its SSH-2.0 greeting within 5 s). */
  answers?: (endpoint: SshEndpoint) => Promise<void>;
}

/**
 * SSH access: on for {@link SSH_HOURS} hours (persisted first, then the server started; on only
 * once sshd answers, rolled back otherwise), off on request or when the time is up — also across
 * agent restarts and reboots, because the expiry is an absolute time on the data partition and
 * {@link SshAccess.start} enforces it at every start. The server keeps the window by itself too.
 */
export class SshAccess {
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;
  /** Enable, disable and the expiry run one at a time (the console and the CLI may ask at once). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: SshDeps) {}

  private get file(): string {
    return this.deps.paths.sshState;
  }

  private one<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** sshd's liveness, asked at most every few seconds (every status asks for the view). */
  private liveness: { at: number; running: boolean } | undefined;

  async view(): Promise<SshView> {
    const now = this.deps.clock.now();
    const view = describeSsh(await readSsh(this.file), now);
    if (!view.enabled) return view;
    if (!this.liveness || now - this.liveness.at > LIVENESS_MS) {
      const running = await this.deps.server.running().catch(() => undefined);
      this.liveness = running === undefined ? undefined : { at: now, running };
    }
    return { ...view, running: this.liveness?.running ?? null };
  }

  /**
   * Turns SSH access on for 24 hours. Already on: the window stays as it is (turning it on again
   * does not stretch it) and sshd is made sure of. Throws SSH_FAILED, with nothing left on, when
   * sshd does not start or answer.
   */
  enable(): Promise<SshView> {
    return this.one(async () => {
      const now = this.deps.clock.now();
      const current = await readSsh(this.file);
      if (current && describeSsh(current, now).enabled) {
        await this.bringUp(current);
        return describeSsh(current, this.deps.clock.now());
      }
      const { id } = await ensureApplianceId(this.deps.paths.applianceId);
      const state: SshState = {
        enabledAt: new Date(now).toISOString(),
        expiresAt: new Date(now + SSH_HOURS * HOUR).toISOString(),
        phase: 'starting',
        account: this.deps.account ?? SUPPORT_ACCOUNT,
        principal: appliancePrincipal(id),
      };
      await writeJsonAtomic(this.file, state);
      await this.bringUp(state);
      const on: SshState = { ...state, phase: 'on' };
      await writeJsonAtomic(this.file, on);
      this.deps.log.warn('SSH access enabled', {
        expiresAt: on.expiresAt,
        account: on.account,
        principal: on.principal,
      });
      this.wake?.();
      return describeSsh(on, this.deps.clock.now());
    });
  }

  disable(reason = 'requested'): Promise<SshView> {
    return this.one(() => this.off(reason));
  }

  private async off(reason: string): Promise<SshView> {
    await this.deps.server.stop();
    await fs.rm(this.file, { force: true });
    this.deps.log.warn('SSH access disabled', { reason });
    return SSH_OFF;
  }

  /**
   * Starts sshd within the state's window and waits for its greeting; on any failure stops it
   * again, removes the state (rolls back) and throws SSH_FAILED naming where sshd should answer.
   */
  private async bringUp(state: SshState): Promise<void> {
    const { endpoint } = this.deps.server;
    try {
      const { id } = await ensureApplianceId(this.deps.paths.applianceId);
      await this.deps.server.start({
        expiresAt: state.expiresAt,
        seconds: Math.floor((Date.parse(state.expiresAt) - this.deps.clock.now()) / 1000),
        account: state.account ?? this.deps.account ?? SUPPORT_ACCOUNT,
        applianceId: id,
      });
      await (this.deps.answers ?? waitForGreeting)(endpoint);
    } catch (e) {
      await this.deps.server.stop().catch((stopError) =>
        this.deps.log.error('sshd not stopped after it failed to start', {
          error: serializeError(stopError),
        }),
      );
      await fs.rm(this.file, { force: true });
      const err = new ClgwError(
        'SSH_FAILED',
        `SSH access not enabled (sshd on ${endpoint.host}:${endpoint.port}): ${(e as Error).message}`,
        { cause: e, details: { ...endpoint } },
      );
      this.deps.log.error('SSH access not enabled (rolled back)', { error: serializeError(err) });
      throw err;
    }
  }

  /** At start: on again if still within its time, off if the time ran out meanwhile; then the timer. */
  async start(): Promise<void> {
    await this.one(() => this.restore()).catch((e) =>
      // The agent starts all the same; SSH access is off (bringUp rolled it back) or retried at expiry.
      this.deps.log.error('SSH access not restored at start', { error: serializeError(e) }),
    );
    void this.loop().catch((e) => {
      if (!this.abort.signal.aborted)
        this.deps.log.error('SSH expiry timer stopped', { error: serializeError(e) });
    });
  }

  private async restore(): Promise<void> {
    const state = await readSsh(this.file);
    if (state?.phase === 'starting') {
      // The agent stopped before sshd answered: nobody was told SSH access is on.
      await this.off('the agent stopped while SSH access was being enabled');
    } else if (state && describeSsh(state, this.deps.clock.now()).enabled) {
      await this.bringUp(state);
      this.deps.log.info('SSH access still enabled', { expiresAt: state.expiresAt });
    } else {
      // Off means off: also an sshd someone else started (or one that outlived its state file).
      await this.deps.server
        .stop()
        .catch((e) => this.deps.log.error('sshd not stopped at start', { error: serializeError(e) }));
      if (state) await this.off('expired while the agent was not running');
    }
  }

  stop(): void {
    this.abort.abort();
  }

  private async loop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      let wait = 60_000;
      try {
        const state = await readSsh(this.file);
        const now = this.deps.clock.now();
        if (state && Date.parse(state.expiresAt) <= now) {
          await this.disable('24 hours are up');
          continue;
        }
        // Sleep until the expiry (or a minute, so a clock step is noticed), or until enabled anew.
        if (state) wait = Math.min(Date.parse(state.expiresAt) - now, 60_000);
      } catch (e) {
        // The server keeps the window by itself; the agent tries again in a minute.
        this.deps.log.error('SSH access not switched off at its expiry', { error: serializeError(e) });
      }
      const woken = new Promise<void>((r) => {
        this.wake = r;
      });
      await Promise.race([this.deps.clock.sleep(wait, this.abort.signal), woken]);
    }
  }
}

/** Debian's OpenSSH unit (disabled in the image: only the agent starts it). */
export const SSH_UNIT = 'ssh.service';
/** Where the agent puts the window's drop-in: /run, so a reboot forgets it with everything else. */
export const WINDOW_DROP_IN = '/run/systemd/system/ssh.service.d/clgw-window.conf';

/** The first line of the window's drop-in: which window it is (the agent compares it at restart). */
function windowMarker(window: SshWindow): string {
  return `# clgw SSH window until ${window.expiresAt}`;
}

/**
 * The runtime drop-in that makes systemd keep the window without the agent: sshd runs at most
 * the seconds left, is not restarted when that time is up, and takes support's sessions with it.
 */
export function windowDropIn(window: SshWindow): string {
  return [
    windowMarker(window),
    '# Written by the clgw agent when SSH access was turned on: systemd ends ssh.service at the end',
    '# of the window even when the agent is not running.',
    '[Service]',
    `RuntimeMaxSec=${Math.max(1, window.seconds)}`,
    "# Debian's unit restarts sshd on failure, and running out of RuntimeMaxSec is one.",
    'Restart=no',
    "# Debian's unit keeps sessions alive when sshd stops (KillMode=process); the window's end",
    '# ends them: those still in the unit by its cgroup, those logind moved out by loginctl.',
    'KillMode=control-group',
    `ExecStopPost=-/usr/bin/loginctl terminate-user ${window.account}`,
    '',
  ].join('\n');
}

export interface SystemdSshOptions {
  account: string;
  port: number;
  /** Runs a program (tests record the calls). */
  run?: (bin: string, args: string[]) => Promise<ExecResult>;
  /** The window's drop-in (default {@link WINDOW_DROP_IN}). */
  dropIn?: string;
}

function stderrOf(e: unknown): string {
  const d = isClgwError(e) ? e.details : {};
  return typeof d.stderr === 'string' && d.stderr ? d.stderr : (e as Error).message;
}

/**
 * `ssh.service` on the appliance. Starting writes the window's runtime drop-in
 * ({@link windowDropIn}), reloads systemd and starts the unit; stopping stops it, ends the
 * support account's sessions (`loginctl terminate-user`; "not logged in" is fine) and removes the
 * drop-in.
 */
export function systemdSsh(o: SystemdSshOptions): SshServer {
  const run = o.run ?? ((bin: string, args: string[]) => execFile(bin, args));
  const dropIn = o.dropIn ?? WINDOW_DROP_IN;
  const systemctl = async (args: string[]): Promise<string> => {
    try {
      return (await run('systemctl', args)).stdout;
    } catch (e) {
      throw new ClgwError('SSH_FAILED', `systemctl ${args.join(' ')} failed: ${stderrOf(e)}`, {
        cause: e,
      });
    }
  };
  const journalTail = async (): Promise<string> => {
    try {
      const { stdout } = await run('journalctl', ['-u', SSH_UNIT, '-n', '3', '-o', 'cat', '--no-pager']);
      return stdout.trim().split('\n').filter(Boolean).join('; ');
    } catch {
      return ''; // only detail for a message that stands without it
    }
  };
  const stop = async () => {
    await systemctl(['stop', SSH_UNIT]);
    try {
      await run('loginctl', ['terminate-user', o.account]);
    } catch (e) {
      // logind's answer when nobody is logged in ("User ID 999 is not logged in or lingering").
      // Anything else (logind not answering) is an error: sessions might still be open.
      if (!/is not logged in/.test(stderrOf(e)))
        throw new ClgwError('SSH_FAILED', `loginctl terminate-user ${o.account} failed: ${stderrOf(e)}`, {
          cause: e,
        });
    }
    if (existsSync(dropIn)) {
      await fs.rm(dropIn, { force: true });
      await systemctl(['daemon-reload']);
    }
  };
  return {
    endpoint: { host: '127.0.0.1', port: o.port },
    start: async (window) => {
      const state = (await systemctl(['show', '--property=ActiveState', '--value', SSH_UNIT])).trim();
      const ours = (await fs.readFile(dropIn, 'utf8').catch(() => '')).split('\n')[0];
      if (state === 'active' && ours === windowMarker(window)) return;
      if (state !== 'inactive' && state !== 'failed') await stop();
      await writeFileAtomic(dropIn, windowDropIn(window));
      await systemctl(['daemon-reload']);
      try {
        await run('systemctl', ['start', SSH_UNIT]);
      } catch (e) {
        const journal = await journalTail();
        throw new ClgwError('SSH_FAILED', `systemctl start ${SSH_UNIT} failed: ${journal || stderrOf(e)}`, {
          cause: e,
          details: { unit: SSH_UNIT },
        });
      }
    },
    stop,
    running: async () =>
      (await systemctl(['show', '--property=ActiveState', '--value', SSH_UNIT])).trim() === 'active',
  };
}

/** Sends `sig` to `pid`; a process that ended just before has nothing left to signal. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/** The agent package's directory (dist/ holds the programs sshd and the simulator run). */
function agentDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** One argument of an sshd command line (quoted for its argv_split, `%` kept from token expansion). */
function sshdArg(text: string): string {
  return `"${text.replace(/[\\"]/g, '\\$&').replace(/%/g, '%%')}"`;
}

/** The program of an sshd command line: sshd takes it as written (no quotes), absolute. */
function programPath(file: string): string {
  if (!path.isAbsolute(file) || /[\s"'\\%]/.test(file))
    throw new ClgwError(
      'SSH_FAILED',
      `sshd cannot run ${file} as a command (not absolute, or quotes or blanks in it)`,
    );
  return file;
}

/**
 * sshd's first complaint since `from` in its log — its own words for why it did not start (`Bind
 * to port 2222 on 127.0.0.1 failed: Address already in use.`); what follows is the consequence
 * (`Cannot bind any address.`), and the console has two rows for the whole message.
 */
async function sshdSaid(logFile: string, from: number): Promise<string> {
  const text = await fs.readFile(logFile, 'utf8').catch(() => '');
  // sshd -e ends its lines with \r\n.
  const lines = text
    .slice(from)
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('clgw: ') && !l.startsWith('Server listening'));
  return lines[0] ?? '';
}

/**
 * The simulator's sshd: `/usr/sbin/sshd -D` with the appliance's settings on 127.0.0.1:`port`,
 * config, host key and PID file under the appliance root, its log in `var/log/clgw/sshd.log`. It
 * runs under `sim-window.js`, which ends it and its sessions when the window closes — without
 * the agent. Detached, so it outlives an agent restart like the appliance's ssh.service does;
 * found again through the PID files.
 */
export function simulatorSsh(paths: AppliancePaths, opts: { port: number; account?: string }): SshServer {
  const dir = path.join(paths.root, 'etc/clgw/ssh');
  const config = path.join(dir, 'sshd_config');
  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  const sshdPidFile = path.join(paths.runDir, 'sshd.pid');
  const windowPidFile = path.join(paths.runDir, 'ssh-window.pid');
  const logFile = path.join(paths.logDir, 'sshd.log');
  const endpoint = { host: '127.0.0.1', port: opts.port };
  /** The PID in `file` if that process runs and is ours (its command line names our config). */
  const pidIn = async (file: string): Promise<{ pid: number; cmdline: string } | undefined> => {
    const pid = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0 || !(await running(pid))) return undefined;
    const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    return cmdline.includes(config) ? { pid, cmdline } : undefined;
  };
  const stop = async () => {
    const window = await pidIn(windowPidFile);
    if (window) {
      // It ends sshd and the sessions itself (sim-window.ts); SIGKILL only if it does not.
      signal(window.pid, 'SIGTERM');
      for (let i = 0; i < 200 && (await running(window.pid)); i++)
        await new Promise((r) => setTimeout(r, 50));
      if (await running(window.pid)) signal(window.pid, 'SIGKILL');
    }
    // An sshd whose window process was killed outright: end it and its sessions here.
    const sshd = await pidIn(sshdPidFile);
    if (sshd) await endProcessTree(sshd.pid);
    await fs.rm(windowPidFile, { force: true });
    await fs.rm(sshdPidFile, { force: true });
  };
  return {
    endpoint,
    start: async (window) => {
      const current = await pidIn(windowPidFile);
      if (current?.cmdline.includes(`--until=${window.expiresAt}`) && (await pidIn(sshdPidFile))) return;
      await stop();
      if (window.seconds <= 0)
        throw new ClgwError('SSH_FAILED', `sshd not started: its window ended at ${window.expiresAt}`);
      await fs.mkdir(dir, { recursive: true });
      await fs.mkdir(paths.runDir, { recursive: true });
      await fs.mkdir(paths.logDir, { recursive: true });
      // sshd refuses to start without its privilege-separation directory.
      await fs.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
      if (!(await fs.stat(hostKey).catch(() => undefined))) {
        await execFile('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
      }
      const agent = agentDir();
      await writeFileAtomic(
        config,
        [
          '# Written by the clgw agent (simulator): the appliance’s sshd settings',
          '# (image/rootfs/overlay/etc/ssh/sshd_config.d/clgw.conf) on loopback.',
          `Port ${opts.port}`,
          'ListenAddress 127.0.0.1',
          `HostKey ${hostKey}`,
          `PidFile ${sshdPidFile}`,
          'UsePAM no',
          `AllowUsers ${window.account}`,
          'PermitRootLogin no',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'AuthorizedKeysFile none',
          `TrustedUserCAKeys ${paths.supportCa}`,
          // sshd checks that the program (node) and its directories are root's and not writable
          // by others; the appliance's ID comes as an argument (the simulated root is private).
          `AuthorizedPrincipalsCommand ${programPath(process.execPath)} ${sshdArg(path.join(agent, 'dist/ssh/principals-command.js'))} --account ${window.account} --appliance-id ${window.applianceId} %u %t %k`,
          'AuthorizedPrincipalsCommandUser nobody',
          // No forwarding into the LAN or to local sockets, whatever a certificate permits.
          'AllowTcpForwarding no',
          'AllowStreamLocalForwarding no',
          'AllowAgentForwarding no',
          'X11Forwarding no',
          'PermitTunnel no',
          'LogLevel VERBOSE',
          '',
        ].join('\n'),
      );
      const from = (await fs.stat(logFile).catch(() => undefined))?.size ?? 0;
      const child = spawn(
        process.execPath,
        [
          path.join(agent, 'dist/ssh/sim-window.js'),
          `--seconds=${window.seconds}`,
          `--until=${window.expiresAt}`,
          `--log=${logFile}`,
          '--',
          '/usr/sbin/sshd',
          '-D',
          '-e',
          '-f',
          config,
        ],
        { detached: true, stdio: 'ignore' },
      );
      const exited = new Promise<number>((r) => {
        child.once('exit', (code) => r(code ?? 1));
        child.once('error', () => r(1));
      });
      child.unref();
      if (child.pid !== undefined) await writeFileAtomic(windowPidFile, `${child.pid}\n`);
      for (let i = 0; i < 100; i++) {
        if (await pidIn(sshdPidFile)) return;
        const code = await Promise.race([
          exited,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
        ]);
        if (code !== undefined) {
          const said = await sshdSaid(logFile, from);
          throw new ClgwError(
            'SSH_FAILED',
            `sshd did not start: ${said || `it exited with status ${code}`}`,
            {
              details: { exitCode: code, log: logFile },
            },
          );
        }
      }
      await stop();
      const said = await sshdSaid(logFile, from);
      throw new ClgwError('SSH_FAILED', `sshd did not start within 5 s${said ? `: ${said}` : ''}`, {
        details: { log: logFile },
      });
    },
    stop,
    running: async () => (await pidIn(sshdPidFile)) !== undefined,
  };
}
