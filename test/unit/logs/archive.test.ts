/**
 * The log archive: a real `.tar.gz` of a temporary appliance tree, read back with tar(1) and
 * node-tar's reader.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { type AppliancePaths, appliancePaths } from '@clgw/core/platform/paths.js';
import { list as listTar, type ReadEntry } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { archiveStamp, buildLogArchive } from '../../../agent/src/logs/archive.js';

const run = promisify(execFile);
const NOW = Date.UTC(2026, 10, 21, 9, 30, 0);
let dir: string;
let paths: AppliancePaths;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-archive-'));
  paths = appliancePaths(path.join(dir, 'appliance'));
  await fs.mkdir(paths.logDir, { recursive: true });
  await fs.mkdir(paths.networkDir, { recursive: true });
  await fs.writeFile(paths.logFile, 'agent starting\n');
  await fs.writeFile(`${paths.logFile}.1`, 'older\n');
  await fs.writeFile(paths.history, '{"highest":"1.0.0"}\n');
  await fs.writeFile(paths.networkSettings, '{"hostname":"gw"}\n');
  await fs.writeFile(paths.proxy, '{"server":"p","port":3128,"user":"u","password":"hunter2"}\n');
  await fs.mkdir(paths.onboardingDir, { recursive: true });
  await fs.writeFile(path.join(paths.onboardingDir, 'account.json'), '{"token":"hunter2"}\n');
  await fs.mkdir(paths.containerArchives, { recursive: true });
  await fs.writeFile(path.join(paths.containerArchives, 'abc.tar'), 'image');
  await fs.mkdir(path.join(paths.containerData, 'tunnel'), { recursive: true });
  await fs.writeFile(path.join(paths.containerData, 'tunnel/tunnel.log'), 'tunnel up\n');
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const build = (over: Partial<Parameters<typeof buildLogArchive>[0]> = {}) =>
  buildLogArchive({
    paths,
    outDir: paths.logArchives,
    snapshotDir: paths.logSnapshots,
    maxBytes: 1024 * 1024,
    now: NOW,
    journal: false,
    ...over,
  });

async function list(file: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tzf', file]);
  return stdout.split('\n').filter(Boolean);
}

async function member(file: string, name: string): Promise<string> {
  const { stdout } = await run('tar', ['-xzOf', file, name], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

describe('log archive', () => {
  it('holds the logs and the named state records under relative names, with a MANIFEST, in a 0600 file', async () => {
    const a = await build();
    expect(a.name).toMatch(/^clgw-logs-20261121T093000Z-[0-9a-f]{6}\.tar\.gz$/);
    expect(a.file).toBe(path.join(paths.logArchives, a.name));
    expect((await fs.stat(a.file)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(paths.logArchives)).mode & 0o777).toBe(0o700);
    const names = await list(a.file);
    expect(names[0]).toBe('MANIFEST.txt');
    expect(names).toEqual(
      expect.arrayContaining([
        'var/clgw/',
        'var/clgw/history.json',
        'var/clgw/network/',
        'var/clgw/network/settings.json',
        'var/log/clgw/',
        'var/log/clgw/clgw.log',
        'var/log/clgw/clgw.log.1',
      ]),
    );
    for (const n of names) expect(n).not.toMatch(/^\/|(^|\/)\.\.(\/|$)/);
    expect(await member(a.file, 'var/log/clgw/clgw.log')).toBe('agent starting\n');
    expect(await fs.readdir(paths.logArchives)).toEqual([a.name]); // no partial or journal left
    // A record this appliance does not have is named as such, not as skipped.
    expect(a.absent).toContain('var/clgw/recovery.json');
    expect(a.skipped).toEqual([]);
    expect(await member(a.file, 'MANIFEST.txt')).toMatch(
      /not on this appliance \(\d+\):\n(.*\n)* {2}var\/clgw\/recovery\.json\n/,
    );
  });

  it('takes logs newest first, then the journal, then the status snapshot and state newest first', async () => {
    const at = (s: number) => new Date(NOW - s * 1000);
    await fs.writeFile(path.join(paths.logDir, 'console.log'), 'console\n');
    await fs.utimes(paths.logFile, at(10), at(10));
    await fs.utimes(path.join(paths.logDir, 'console.log'), at(20), at(20));
    await fs.utimes(`${paths.logFile}.1`, at(30), at(30));
    await fs.writeFile(paths.alarms, '[]\n');
    await fs.utimes(paths.alarms, at(5), at(5));
    await fs.utimes(paths.history, at(50), at(50));
    await fs.utimes(paths.networkSettings, at(40), at(40));
    const fake = path.join(dir, 'journalctl');
    await fs.writeFile(fake, '#!/bin/sh\necho "journal line"\n', { mode: 0o755 });
    await fs.mkdir(path.join(paths.root, 'var/log/journal'), { recursive: true });
    const a = await build({ journal: true, journalctl: fake, status: async () => ({ state: 'idle' }) });
    expect(a.included).toEqual([
      'var/log/clgw/clgw.log',
      'var/log/clgw/console.log',
      'var/log/clgw/clgw.log.1',
      'journal.txt',
      'status.json',
      'var/clgw/alarms.json',
      'var/clgw/network/settings.json',
      'var/clgw/history.json',
    ]);
    const files = (await list(a.file)).filter((n) => !n.endsWith('/'));
    expect(files).toEqual(['MANIFEST.txt', ...a.included]);
    expect(JSON.parse(await member(a.file, 'status.json'))).toEqual({ state: 'idle' });
  });

  it('notes a status that could not be read, and still writes the archive', async () => {
    const a = await build({
      status: async () => {
        throw Object.assign(new Error('socket gone'), { code: 'AGENT_UNREACHABLE' });
      },
    });
    expect(a.skipped).toContainEqual({ name: 'status.json', reason: 'status not read: AGENT_UNREACHABLE' });
    expect(await list(a.file)).toContain('var/log/clgw/clgw.log');
  });

  it('leaves secrets, container data and image archives out, says so by category, and walks none', async () => {
    const a = await build();
    const names = await list(a.file);
    expect(names).not.toContain('var/clgw/proxy.json');
    expect(names.filter((n) => /onboarding|archives|containers\//.test(n))).toEqual([]);
    const manifest = await member(a.file, 'MANIFEST.txt');
    expect(manifest).toContain('var/clgw/proxy.json: the proxy setting (may hold a password)');
    expect(manifest).toContain('var/clgw/onboarding/: onboarding data');
    expect(manifest).toContain("var/clgw/containers/data/: each container's own data");
    expect(manifest).toContain('var/clgw/containers/archives/: downloaded container image archives');
    // Named by category only: nothing in those directories is listed.
    expect(manifest).not.toMatch(/account\.json|abc\.tar|tunnel/);
    const { stdout } = await run('sh', ['-c', 'gzip -dc "$1" | grep -c hunter2 || true', 'sh', a.file]);
    expect(stdout.trim()).toBe('0');
  });

  it('stops at the size cap and lists what did not fit', async () => {
    await fs.writeFile(path.join(paths.logDir, 'big.log'), Buffer.alloc(3000, 'a'));
    await fs.writeFile(path.join(paths.logDir, 'small.log'), Buffer.alloc(100, 'b'));
    const a = await build({ maxBytes: 1000 });
    const names = await list(a.file);
    expect(names).not.toContain('var/log/clgw/big.log');
    expect(names).toContain('var/log/clgw/small.log');
    expect(a.skipped).toContainEqual({
      name: 'var/log/clgw/big.log',
      reason: expect.stringMatching(/size cap/),
    });
    const manifest = await member(a.file, 'MANIFEST.txt');
    expect(manifest).toMatch(/var\/log\/clgw\/big\.log: size cap: 3000 bytes/);
    expect(manifest).toContain('  var/log/clgw/small.log');
    expect(a.included.length).toBeGreaterThan(0);
  });

  it('follows no symbolic link, to a file or a directory, and lists them as skipped', async () => {
    const secret = path.join(dir, 'outside-secret.txt');
    await fs.writeFile(secret, 'TOP SECRET');
    await fs.mkdir(path.join(dir, 'outside-dir'));
    await fs.writeFile(path.join(dir, 'outside-dir/shadow'), 'TOP SECRET');
    await fs.symlink(secret, path.join(paths.logDir, 'link.log'));
    await fs.symlink(path.join(dir, 'outside-dir'), path.join(paths.logDir, 'linked-dir'));
    await fs.rm(paths.history);
    await fs.symlink(secret, paths.history);
    const a = await build();
    const names = await list(a.file);
    expect(names.filter((n) => n.includes('link') || n.includes('history'))).toEqual([]);
    const { stdout: verbose } = await run('tar', ['-tvzf', a.file]);
    for (const line of verbose.split('\n').filter(Boolean)) expect(line).toMatch(/^[-d]/); // files and dirs only
    const manifest = await member(a.file, 'MANIFEST.txt');
    expect(manifest).toContain('var/log/clgw/link.log: symbolic link (not followed)');
    expect(manifest).toContain('var/log/clgw/linked-dir: symbolic link (not followed)');
    expect(manifest).toContain('var/clgw/history.json: symbolic link (not followed)');
    const { stdout } = await run('sh', ['-c', 'gzip -dc "$1" | grep -c "TOP SECRET" || true', 'sh', a.file]);
    expect(stdout.trim()).toBe('0');
  });

  it("reads the log directory through the appliance's link into the data partition, and no other link", async () => {
    // As tmpfiles.d makes it on the appliance: /var/log/clgw -> /var/clgw/log.
    await fs.mkdir(paths.logStore, { recursive: true });
    await fs.writeFile(path.join(paths.logStore, 'clgw.log'), 'kept on the data partition\n');
    await fs.rm(paths.logDir, { recursive: true });
    await fs.symlink(paths.logStore, paths.logDir);
    const a = await build();
    expect(await member(a.file, 'var/log/clgw/clgw.log')).toBe('kept on the data partition\n');
    // The log store is not taken a second time under its own name.
    expect((await list(a.file)).filter((n) => n.startsWith('var/clgw/log'))).toEqual([]);

    await fs.mkdir(path.join(dir, 'elsewhere'));
    await fs.writeFile(path.join(dir, 'elsewhere/clgw.log'), 'TOP SECRET');
    await fs.rm(paths.logDir);
    await fs.symlink(path.join(dir, 'elsewhere'), paths.logDir);
    const other = await build();
    expect(await list(other.file)).not.toContain('var/log/clgw/clgw.log');
    expect(other.skipped).toContainEqual({
      name: 'var/log/clgw',
      reason: `symbolic link, not to ${paths.logStore} (not followed)`,
    });
  });

  it('gives archives made in the same millisecond, at once or one after another, their own files', async () => {
    const together = await Promise.all([build(), build(), build(), build()]);
    const after = [await build(), await build()];
    const all = [...together, ...after];
    const names = all.map((a) => a.name);
    expect(new Set(names).size).toBe(all.length);
    for (const n of names) expect(n).toMatch(/^clgw-logs-20261121T093000Z-[0-9a-f]{6}\.tar\.gz$/);
    expect((await fs.readdir(paths.logArchives)).sort()).toEqual([...names].sort());
    for (const a of all) expect(await member(a.file, 'var/log/clgw/clgw.log')).toBe('agent starting\n');
  });

  it('adds the journal export when journalctl works, and notes it when it does not', async () => {
    const fake = path.join(dir, 'journalctl');
    await fs.writeFile(
      fake,
      '#!/bin/sh\necho "2026-11-21T09:00:00+0000 gw systemd[1]: Started clgw-agent."\n',
      {
        mode: 0o755,
      },
    );
    // Under a simulated root only that root's own journal directory counts.
    await fs.mkdir(path.join(paths.root, 'var/log/journal'), { recursive: true });
    const a = await build({ journal: true, journalctl: fake });
    expect(await member(a.file, 'journal.txt')).toContain('Started clgw-agent.');

    const failing = await build({ journal: true, journalctl: path.join(dir, 'no-such-journalctl') });
    expect(await list(failing.file)).not.toContain('journal.txt');
    expect(await member(failing.file, 'MANIFEST.txt')).toMatch(/journal\.txt: journalctl not run: ENOENT/);
  });

  it('cuts a journal export at the size left under the cap', async () => {
    const fake = path.join(dir, 'journalctl');
    await fs.writeFile(fake, '#!/bin/sh\nyes "journal line"\n', { mode: 0o755 });
    await fs.mkdir(path.join(paths.root, 'var/log/journal'), { recursive: true });
    const a = await build({ journal: true, journalctl: fake, maxBytes: 4096 });
    const journal = await member(a.file, 'journal.txt');
    expect(journal.length).toBeLessThanOrEqual(4096);
    expect(journal.startsWith('journal line\n')).toBe(true);
    expect(await member(a.file, 'MANIFEST.txt')).toMatch(/journal\.txt: cut at \d+ bytes/);
  });

  it('stops a journal export that hangs at its deadline, children included', async () => {
    const fake = path.join(dir, 'journalctl');
    await fs.writeFile(fake, '#!/bin/sh\necho partial\nsleep 30\n', { mode: 0o755 });
    await fs.mkdir(path.join(paths.root, 'var/log/journal'), { recursive: true });
    const started = Date.now();
    const a = await build({ journal: true, journalctl: fake, journalTimeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await list(a.file)).not.toContain('journal.txt');
    expect(await member(a.file, 'MANIFEST.txt')).toMatch(/journal\.txt: journalctl stopped after 300 ms/);
  });

  it('writes a valid archive when a tree is missing, and says so', async () => {
    await fs.rm(paths.logDir, { recursive: true });
    const a = await build();
    expect(await member(a.file, 'MANIFEST.txt')).toContain('var/log/clgw: does not exist');
    expect(await list(a.file)).toContain('var/clgw/history.json');
  });

  it('stamps the archive with its time and writes POSIX ustar entries: 0644/0755, no setuid bit', async () => {
    expect(archiveStamp(NOW)).toBe('20261121T093000Z');
    const tool = path.join(paths.logDir, 'tool.log');
    await fs.writeFile(tool, 'x\n');
    await fs.chmod(tool, 0o4755);
    await fs.chmod(paths.logFile, 0o600);
    const a = await build();
    const { stdout } = await run('tar', ['-tvzf', a.file]);
    expect(stdout).toMatch(/^-rwxr-xr-x \S+ +2 .* var\/log\/clgw\/tool\.log$/m);
    expect(stdout).toMatch(/^-rw-r--r-- \S+ +15 .* var\/log\/clgw\/clgw\.log$/m);
    expect(stdout).toMatch(/^drwxr-xr-x \S+ +0 .* var\/log\/clgw\/$/m);
    // The first header: ustar magic and version, a checksum that adds up, MANIFEST.txt.
    const h = gunzipSync(await fs.readFile(a.file)).subarray(0, 512);
    expect(h.subarray(0, 13).toString('latin1')).toBe('MANIFEST.txt\0');
    expect(h.subarray(257, 265).toString('latin1')).toBe('ustar\u000000');
    const stored = Number.parseInt(h.subarray(148, 156).toString('latin1'), 8);
    const copy = Buffer.from(h);
    copy.fill(0x20, 148, 156);
    expect(stored).toBe(copy.reduce((sum, b) => sum + b, 0));
  });

  it('keeps a log whose name a plain ustar header cannot hold (a PAX header carries it)', async () => {
    const long = `${'service-'.repeat(25)}.log`; // 204 bytes: over ustar's 100-byte name field
    await fs.writeFile(path.join(paths.logDir, long), 'long-named\n');
    const a = await build();
    expect(a.skipped).toEqual([]);
    expect(a.included).toContain(`var/log/clgw/${long}`);
    expect(await member(a.file, `var/log/clgw/${long}`)).toBe('long-named\n');
  });

  it('gives a valid archive of a log that grows while it is archived, cut where it was listed', async () => {
    // 8 MiB to start with, so building takes a while; the appender writes as the agent's logger
    // does (in this process, line by line) for as long as the build runs.
    const line = `${'{"level":"info","msg":"update state: downloading"}'.padEnd(99, ' ')}\n`;
    await fs.writeFile(paths.logFile, line.repeat((8 * 1024 * 1024) / line.length));
    const before = (await fs.stat(paths.logFile)).size;
    let building = true;
    let appendedDuring = 0;
    const appender = (async () => {
      while (building) {
        await fs.appendFile(paths.logFile, line);
        appendedDuring++;
      }
    })();
    const a = await build({ maxBytes: 64 * 1024 * 1024 }).finally(() => {
      building = false;
    });
    await appender;
    const after = await fs.readFile(paths.logFile);
    expect(appendedDuring).toBeGreaterThan(0);

    // Both readers take the whole archive: gzip's CRC, every header's checksum, the end blocks.
    await run('gzip', ['-t', a.file]);
    const { stdout } = await run('tar', ['-tvzf', a.file]);
    expect(stdout).toContain('var/log/clgw/clgw.log');
    const seen: { path: string; size: number }[] = [];
    await listTar({
      file: a.file,
      strict: true,
      onReadEntry: (e: ReadEntry) => {
        seen.push({ path: e.path, size: e.size });
      },
    });
    expect(seen.map((e) => e.path)).toEqual(await list(a.file));

    // The log as it was when it was listed: whole lines, at least what it held before, a prefix
    // of what it holds now — and it has grown past that since.
    const archived = Buffer.from(await member(a.file, 'var/log/clgw/clgw.log'), 'utf8');
    expect(archived.length).toBeGreaterThanOrEqual(before);
    expect(archived.length % line.length).toBe(0);
    expect(after.subarray(0, archived.length).equals(archived)).toBe(true);
    expect(after.length).toBeGreaterThan(archived.length);
    expect(seen.find((e) => e.path === 'var/log/clgw/clgw.log')?.size).toBe(archived.length);
    expect(await fs.readdir(paths.logArchives)).toEqual([a.name]);
    expect(await fs.readdir(paths.logSnapshots)).toEqual([]); // the snapshot (on disk, not in /run) is gone
  });
});
