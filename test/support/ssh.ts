/**
 * A support engineer's side of SSH access, for the tests: an OpenSSH key pair, certificates, and
 * the real `ssh` client logging in to the simulator's sshd on loopback.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { generateSupportCa } from '../../image/src/release/support-ca.js';
import { makeWorld, type World } from './appliance.js';
import { freePort } from './ports.js';

/**
 * A development support CA in a fresh key directory, and a world whose appliance trusts it and
 * runs the simulator's sshd on a free loopback port (not booted: the caller starts its agent).
 */
export async function supportWorld(
  prefix: string,
): Promise<{ keys: string; ca: string; port: number; world: World }> {
  const keys = await fs.mkdtemp(path.join(os.tmpdir(), `clgw-${prefix}-`));
  await generateSupportCa(keys);
  const ca = path.join(keys, 'support-ca');
  const port = await freePort();
  const world = await makeWorld({
    boot: false,
    config: { ssh: { server: 'simulator', port } },
    supportCaPub: await fs.readFile(`${ca}.pub`, 'utf8'),
  });
  return { keys, ca, port, world };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(bin: string, args: string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(bin, args, { encoding: 'utf8', timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** What the SSH tests need on the machine (scripts/setup console installs it); undefined: all there. */
export function sshToolsMissing(): string | undefined {
  const missing = ['/usr/sbin/sshd', '/usr/bin/ssh', '/usr/bin/ssh-keygen'].filter((p) => !existsSync(p));
  return missing.length
    ? `${missing.join(', ')} not installed (scripts/setup console installs openssh-server, openssh-client)`
    : undefined;
}

/** A new ed25519 key pair in `dir` (`<name>`, `<name>.pub`); returns the private key's path. */
export async function newKey(dir: string, name: string): Promise<string> {
  const file = path.join(dir, name);
  const r = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  if (r.code !== 0) throw new Error(`ssh-keygen for ${file}: ${r.stderr}`);
  return file;
}

/**
 * Signs `key`.pub with `ca` straight through ssh-keygen (what a careless or hostile issuer could
 * do, bypassing `clgw-release support-cert`'s rules); returns the certificate's path.
 */
export async function signDirectly(
  ca: string,
  key: string,
  opts: { principals: string[]; validity: string; identity?: string },
): Promise<string> {
  const r = await run('ssh-keygen', [
    '-q',
    '-s',
    ca,
    '-I',
    opts.identity ?? 'test',
    '-n',
    opts.principals.join(','),
    '-V',
    opts.validity,
    `${key}.pub`,
  ]);
  if (r.code !== 0) throw new Error(`ssh-keygen -s ${ca} ${key}.pub: ${r.stderr}`);
  return `${key}-cert.pub`;
}

/**
 * `ssh -i key [-o CertificateFile=cert] -p port account@127.0.0.1 command` with nothing of the
 * machine's own SSH setup (no config, agent or known hosts). Exit 255 is ssh's own failure:
 * refused, or the connection lost.
 */
export function sshLogin(
  port: number,
  key: string,
  cert: string | undefined,
  command: string[],
  account = 'support',
): Promise<Run> {
  return run('ssh', sshArgs(port, key, cert, command, account), 30_000);
}

export function sshArgs(
  port: number,
  key: string,
  cert: string | undefined,
  command: string[],
  account = 'support',
): string[] {
  return [
    '-F',
    '/dev/null',
    '-i',
    key,
    ...(cert ? ['-o', `CertificateFile=${cert}`] : []),
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-o',
    'ConnectTimeout=10',
    '-p',
    String(port),
    `${account}@127.0.0.1`,
    '--',
    ...command,
  ];
}

/** The first line sshd sends, or the connection error's code. */
export function greeting(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(3000, () => s.destroy(new Error('ETIMEDOUT')));
    s.once('data', (d) => {
      resolve(d.toString().split('\r\n')[0] ?? '');
      s.destroy();
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}
