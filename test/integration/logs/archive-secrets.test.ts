/**
 * The log archive against a data partition that holds every kind of secret and a lot of container
 * data (issue 16): none of the secrets is in the archive — not their bytes, not their names — and
 * the agent's log is, under the appliance's 64 MiB cap. Real files, read back with tar(1).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { type AppliancePaths, appliancePaths } from '@clgw/core/platform/paths.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLogArchive, type LogArchive } from '../../../agent/src/logs/archive.js';
import { tempDir } from '../../support/appliance.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const NOW = Date.UTC(2026, 10, 21, 9, 30, 0);

/** Each secret, where it lives on the appliance, and bytes that must not reach the archive. */
const SECRETS = {
  hostKey: 'SECRET-SSH-HOST-KEY-7f3a0c',
  containerData: 'SECRET-CONTAINER-DATA-91c2e4',
  proxyPassword: 'SECRET-PROXY-PASSWORD-5d0e17',
  onboardingToken: 'SECRET-ONBOARDING-TOKEN-a9b86f',
  engineStorage: 'SECRET-ENGINE-STORAGE-33e1d2',
};
const SECRET_NAMES = [
  'ssh_host_ed25519_key',
  'credentials.json',
  'pbx-token.json',
  'shadow',
  'recording-',
  'proxy.json',
];
/** A few MiB, as the agent's log is before it rotates (at 4 MiB). */
const AGENT_LOG = Array.from(
  { length: 30_000 },
  (_, i) => `{"level":"info","msg":"update state: idle","line":${i},"marker":"AGENT-LOG-LINE-4411"}\n`,
).join('');

let dir: string;
let paths: AppliancePaths;
let archive: LogArchive;
let names: string[];
let extracted: string;

async function plant(file: string, content: string | Buffer, mode = 0o600): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.writeFile(file, content, { mode });
}

/** Every regular file under `root`, by its path relative to it. */
async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(root, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

beforeAll(async () => {
  dir = await tempDir('archive-secrets');
  paths = appliancePaths(path.join(dir, 'appliance'));

  // The secrets, one of each kind, where the appliance keeps them.
  await plant(
    path.join(paths.sshDir, 'ssh_host_ed25519_key'),
    `-----BEGIN OPENSSH PRIVATE KEY-----\n${SECRETS.hostKey}\n-----END OPENSSH PRIVATE KEY-----\n`,
  );
  await plant(
    path.join(paths.containerData, 'tunnel/credentials.json'),
    `{"secret":"${SECRETS.containerData}"}\n`,
  );
  await plant(
    paths.proxy,
    `{"server":"proxy.lan","port":3128,"user":"ops","password":"${SECRETS.proxyPassword}"}\n`,
  );
  await plant(path.join(paths.onboardingDir, 'pbx-token.json'), `{"token":"${SECRETS.onboardingToken}"}\n`);
  // Podman's storage: graphroot of image/rootfs/overlay/etc/containers/storage.conf.
  expect(await fs.readFile('image/rootfs/overlay/etc/containers/storage.conf', 'utf8')).toContain(
    `graphroot = "/${path.relative(paths.root, paths.containerStorage)}"`,
  );
  await plant(
    path.join(paths.containerStorage, 'overlay', 'a'.repeat(64), 'diff/etc/shadow'),
    `root:${SECRETS.engineStorage}:19000:0:99999:7:::\n`,
  );

  // 160 MiB of container data in files of 1 MiB (sparse: quick to make). Walked first, as the
  // old deny-list did, they would have used up the 64 MiB cap to less than the agent's log.
  for (let i = 0; i < 160; i++) {
    const file = path.join(paths.containerData, 'voice', `recording-${String(i).padStart(3, '0')}.wav`);
    await plant(file, '');
    await fs.truncate(file, MiB);
  }

  // The agent's log and some state records.
  await plant(paths.logFile, AGENT_LOG, 0o640);
  await plant(`${paths.logFile}.1`, '{"level":"info","msg":"older"}\n', 0o640);
  await plant(paths.history, '{"highest":"1.0.0"}\n', 0o644);
  await plant(paths.networkSettings, '{"hostname":"gw","ipv4":{"mode":"dhcp"}}\n', 0o644);
  const ago = (s: number) => new Date(NOW - s * 1000);
  for (const [file, s] of [
    [paths.logFile, 10],
    [`${paths.logFile}.1`, 600],
    [paths.networkSettings, 60],
    [paths.history, 3600],
  ] as const)
    await fs.utimes(file, ago(s), ago(s));

  archive = await buildLogArchive({
    paths,
    outDir: paths.logArchives,
    snapshotDir: paths.logSnapshots,
    maxBytes: 64 * MiB,
    now: NOW,
    journal: false,
    status: async () => ({ source: 'agent', state: 'idle' }),
  });
  const { stdout } = await run('tar', ['-tzf', archive.file]);
  names = stdout.split('\n').filter(Boolean);
  extracted = path.join(dir, 'extracted');
  await fs.mkdir(extracted);
  await run('tar', ['-xzf', archive.file, '-C', extracted]);
});

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('log archive of a data partition with secrets and 160 MiB of container data', () => {
  it('holds none of the secrets: not their bytes, not their names, in no file nor the MANIFEST', async () => {
    for (const name of names) {
      for (const secret of SECRET_NAMES) expect(name, `${name} in the archive`).not.toContain(secret);
      expect(name).not.toMatch(/^var\/clgw\/(ssh|onboarding|containers)\//);
    }
    const files = await filesUnder(extracted);
    expect(files).toContain('MANIFEST.txt');
    for (const file of files) {
      const content = await fs.readFile(path.join(extracted, file), 'utf8');
      for (const [kind, secret] of Object.entries(SECRETS))
        expect(content.includes(secret), `${kind} secret in ${file}`).toBe(false);
      expect(content).not.toContain('PRIVATE KEY');
    }
    const manifest = await fs.readFile(path.join(extracted, 'MANIFEST.txt'), 'utf8');
    for (const secret of SECRET_NAMES.filter((n) => n !== 'proxy.json'))
      expect(manifest, `${secret} named in the MANIFEST`).not.toContain(secret);
    // The gzip stream as a whole, in case a member hid from tar's listing.
    const { stdout } = await run('sh', [
      '-c',
      'gzip -dc "$1" | grep -c -e SECRET- || true',
      'sh',
      archive.file,
    ]);
    expect(stdout.trim()).toBe('0');
  });

  it("holds the agent's log, whole, and the state records and status snapshot", async () => {
    expect(names).toContain('var/log/clgw/clgw.log');
    expect(await fs.readFile(path.join(extracted, 'var/log/clgw/clgw.log'), 'utf8')).toBe(AGENT_LOG);
    expect(archive.included).toEqual([
      'var/log/clgw/clgw.log',
      'var/log/clgw/clgw.log.1',
      'status.json',
      'var/clgw/network/settings.json',
      'var/clgw/history.json',
    ]);
    expect(JSON.parse(await fs.readFile(path.join(extracted, 'status.json'), 'utf8'))).toEqual({
      source: 'agent',
      state: 'idle',
    });
    // Nothing was left out for size: the container data never competed for the cap.
    expect(archive.skipped).toEqual([]);
  });

  it('keeps only regular files and directories with safe modes', async () => {
    const { stdout } = await run('tar', ['-tvzf', archive.file]);
    for (const line of stdout.split('\n').filter(Boolean))
      expect(line).toMatch(/^(-rw-r--r--|-rwxr-xr-x|drwxr-xr-x) /);
  });
});
