import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as z from 'zod';
import { ClgwError, serializeError } from '../errors.js';
import { readJsonFile, writeJsonAtomic } from '../platform/atomic.js';
import type { Clock } from '../platform/clock.js';
import { execFile } from '../platform/exec.js';
import type { Logger } from '../platform/log.js';
import type { AppliancePaths } from '../platform/paths.js';

/** SSH access switches itself off this long after it was turned on (SPEC §4). */
export const SSH_HOURS = 24;
const HOUR = 3600_000;

/** `var/clgw/ssh.json`: present while SSH access is on; the expiry is absolute. */
export interface SshState {
  enabledAt: string;
  expiresAt: string;
}

const stateSchema = z.object({ enabledAt: z.string(), expiresAt: z.string() }).strict();

export interface SshView {
  enabled: boolean;
  expiresAt: string | null;
  secondsLeft: number | null;
}

/** The OpenSSH server: `ssh.service` under systemd on the appliance, `sshd -D` in the simulator. */
export interface SshServer {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function readSsh(file: string): Promise<SshState | undefined> {
  const raw = await readJsonFile(file).catch(() => undefined);
  const parsed = stateSchema.safeParse(raw);
  return parsed.success && !Number.isNaN(Date.parse(parsed.data.expiresAt)) ? parsed.data : undefined;
}

export function describeSsh(state: SshState | undefined, now: number): SshView {
  if (!state) return { enabled: false, expiresAt: null, secondsLeft: null };
  const left = Date.parse(state.expiresAt) - now;
  return left > 0
    ? { enabled: true, expiresAt: state.expiresAt, secondsLeft: Math.ceil(left / 1000) }
    : { enabled: false, expiresAt: null, secondsLeft: null };
}

/** `SSH access is enabled: 23 h 59 min left` — the banner line of the console and status. */
export function sshBanner(view: SshView): string | undefined {
  if (!view.enabled || view.secondsLeft === null) return undefined;
  const minutes = Math.ceil(view.secondsLeft / 60);
  const h = Math.floor(minutes / 60);
  return `SSH access is enabled: ${h ? `${h} h ` : ''}${minutes % 60} min left (until ${view.expiresAt})`;
}

export interface SshDeps {
  paths: AppliancePaths;
  clock: Clock;
  log: Logger;
  server: SshServer;
}

/**
 * SSH access: on for {@link SSH_HOURS} hours (persisted first, then the server started), off on
 * request or when the time is up — also across agent restarts and reboots, because the expiry is
 * an absolute time on the data partition and {@link SshAccess.start} enforces it at every start.
 */
export class SshAccess {
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;

  constructor(private readonly deps: SshDeps) {}

  async view(): Promise<SshView> {
    return describeSsh(await readSsh(this.deps.paths.sshState), this.deps.clock.now());
  }

  async enable(): Promise<SshView> {
    const now = this.deps.clock.now();
    const state: SshState = {
      enabledAt: new Date(now).toISOString(),
      expiresAt: new Date(now + SSH_HOURS * HOUR).toISOString(),
    };
    await writeJsonAtomic(this.deps.paths.sshState, state);
    await this.deps.server.start();
    this.deps.log.warn('SSH access enabled', { expiresAt: state.expiresAt });
    this.wake?.();
    return describeSsh(state, now);
  }

  async disable(reason = 'requested'): Promise<SshView> {
    await this.deps.server.stop();
    await fs.rm(this.deps.paths.sshState, { force: true });
    this.deps.log.warn('SSH access disabled', { reason });
    return describeSsh(undefined, this.deps.clock.now());
  }

  /** At start: on again if still within its time, off if the time ran out meanwhile; then the timer. */
  async start(): Promise<void> {
    const state = await readSsh(this.deps.paths.sshState);
    if (state && describeSsh(state, this.deps.clock.now()).enabled) {
      await this.deps.server.start();
      this.deps.log.info('SSH access still enabled', { expiresAt: state.expiresAt });
    } else {
      await this.deps.server.stop().catch(() => undefined);
      if (state) await this.disable('expired while the agent was not running');
    }
    void this.loop().catch((e) => {
      if (!this.abort.signal.aborted)
        this.deps.log.error('SSH expiry timer stopped', { error: serializeError(e) });
    });
  }

  stop(): void {
    this.abort.abort();
  }

  private async loop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      const state = await readSsh(this.deps.paths.sshState);
      const now = this.deps.clock.now();
      if (state && Date.parse(state.expiresAt) <= now) {
        await this.disable('24 hours are up');
        continue;
      }
      // Sleep until the expiry (or a minute, so a clock step is noticed), or until enabled anew.
      const wait = state ? Math.min(Date.parse(state.expiresAt) - now, 60_000) : 60_000;
      const woken = new Promise<void>((r) => {
        this.wake = r;
      });
      await Promise.race([this.deps.clock.sleep(wait, this.abort.signal), woken]);
    }
  }
}

/** `systemctl start|stop ssh.service` (Debian's OpenSSH unit; disabled by default in the image). */
export function systemdSsh(): SshServer {
  const run = async (verb: 'start' | 'stop') => {
    try {
      await execFile('systemctl', [verb, 'ssh.service']);
    } catch (e) {
      throw new ClgwError('SSH_FAILED', `systemctl ${verb} ssh.service failed: ${(e as Error).message}`, {
        cause: e,
      });
    }
  };
  return { start: () => run('start'), stop: () => run('stop') };
}

/**
 * The simulator's sshd: `/usr/sbin/sshd -D` with a config, host key and PID file under the
 * appliance root, on 127.0.0.1:`port`. Detached, so it outlives an agent restart like the
 * appliance's ssh.service does; found again through its PID file.
 */
export function simulatorSsh(paths: AppliancePaths, port: number): SshServer {
  const dir = path.join(paths.root, 'etc/clgw/ssh');
  const config = path.join(dir, 'sshd_config');
  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  const pidFile = path.join(paths.runDir, 'sshd.pid');
  const runningPid = async (): Promise<number | undefined> => {
    const pid = Number((await fs.readFile(pidFile, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
      const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      return cmdline.includes(config) ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    start: async () => {
      if (await runningPid()) return;
      await fs.mkdir(dir, { recursive: true });
      await fs.mkdir(paths.runDir, { recursive: true });
      // sshd refuses to start without its privilege-separation directory.
      await fs.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
      if (!(await fs.stat(hostKey).catch(() => undefined))) {
        await execFile('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
      }
      await fs.writeFile(
        config,
        [
          `Port ${port}`,
          'ListenAddress 127.0.0.1',
          `HostKey ${hostKey}`,
          `PidFile ${pidFile}`,
          'PermitRootLogin prohibit-password',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          '',
        ].join('\n'),
      );
      const child = spawn('/usr/sbin/sshd', ['-D', '-f', config], { detached: true, stdio: 'ignore' });
      const exited = new Promise<number>((r) => child.once('exit', (code) => r(code ?? 1)));
      child.unref();
      for (let i = 0; i < 100; i++) {
        if (await runningPid()) return;
        const code = await Promise.race([
          exited,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
        ]);
        if (code !== undefined)
          throw new ClgwError('SSH_FAILED', `sshd -D -f ${config} exited with status ${code}`);
      }
      throw new ClgwError('SSH_FAILED', `sshd did not start on 127.0.0.1:${port} within 5 s`);
    },
    stop: async () => {
      const pid = await runningPid();
      if (!pid) return;
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && (await runningPid()); i++) await new Promise((r) => setTimeout(r, 50));
      await fs.rm(pidFile, { force: true });
    },
  };
}
