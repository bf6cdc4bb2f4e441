/**
 * A real HTTP proxy for tests: Debian's tinyproxy on a free loopback port, with Basic
 * authentication, allowed to tunnel (CONNECT) to the given ports only, its config, log and PID in
 * a temp directory. `log()` returns what it logged (the tunnels it opened or refused).
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';

export interface TinyProxy {
  port: number;
  log(): Promise<string>;
  close(): Promise<void>;
}

/** Why tinyproxy cannot run here (not installed), else undefined. */
export async function tinyproxyUnavailable(): Promise<string | undefined> {
  return fs.access('/usr/bin/tinyproxy').then(
    () => undefined,
    () => 'tinyproxy is not installed (scripts/setup diagnostics installs it)',
  );
}

export async function startTinyproxy(opts: {
  user: string;
  password: string;
  connectPorts: number[];
}): Promise<TinyProxy> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-tinyproxy-'));
  await fs.chmod(dir, 0o777); // tinyproxy drops to nobody and writes its log here
  const port = await freePort();
  const logFile = path.join(dir, 'tinyproxy.log');
  const conf = [
    'User nobody',
    'Group nogroup',
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 30',
    `LogFile "${logFile}"`,
    'LogLevel Info',
    `PidFile "${path.join(dir, 'tinyproxy.pid')}"`,
    'MaxClients 20',
    'Allow 127.0.0.1',
    `BasicAuth ${opts.user} ${opts.password}`,
    ...opts.connectPorts.map((p) => `ConnectPort ${p}`),
    'DisableViaHeader Yes',
  ].join('\n');
  await fs.writeFile(path.join(dir, 'tinyproxy.conf'), `${conf}\n`);
  const child = spawn('/usr/bin/tinyproxy', ['-d', '-c', path.join(dir, 'tinyproxy.conf')], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (i > 100 || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(
        `tinyproxy did not start on 127.0.0.1:${port}: ${await fs.readFile(logFile, 'utf8').catch(() => '')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    log: () => fs.readFile(logFile, 'utf8').catch(() => ''),
    close: async () => {
      child.kill('SIGTERM');
      await exited;
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
