/**
 * "Download logs" end to end: the real agent on a simulated appliance (boot emulator), the built
 * `clgw-log-download` command, and the archive fetched from the portal over loopback HTTP; and
 * archives a killed agent left behind, gone once the agent has started again.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, REPO, tempDir, until, type World } from '../../support/appliance.js';

const run = promisify(execFile);
const COMMAND = path.join(REPO, 'agent/bin/clgw-log-download.js');

let world: World;
let appliance: ReturnType<typeof runAppliance> | undefined;
let scratch: string;

function logDownload(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [COMMAND, ...args],
      { env: { ...process.env, CLGW_ROOT: world.root } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function download(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** Archives an agent that was killed left in run/clgw/logs (a whole one, one half written). */
const LEFTOVERS = [
  'clgw-logs-20261121T093000Z-3fa2c1.tar.gz',
  'clgw-logs-20261121T093100Z-77aa01.tar.gz.partial',
];

beforeAll(async () => {
  await fs.access(path.join(REPO, 'agent/dist/cli/log-download.js')); // built by `make test`
  world = await makeWorld({ boot: false });
  scratch = await tempDir('log-download');
  await fs.mkdir(world.paths.logArchives, { recursive: true });
  for (const name of LEFTOVERS) await fs.writeFile(path.join(world.paths.logArchives, name), 'left\n');
  appliance = runAppliance({ root: world.root, say: () => undefined });
  const client = new AgentClient(world.paths.socket, 5000);
  await until(
    async () => ((await client.status()).state === 'idle' ? true : undefined),
    'the agent to start',
  );
  // The agent writes where the portal listens; the portal's own process may not listen yet.
  const portal = await until(
    async () => (await fs.readFile(world.paths.portalUrl, 'utf8')).trim() || undefined,
    'the portal URL',
  );
  await until(async () => fetch(portal).catch(() => undefined), 'the portal to listen');
});

afterAll(async () => {
  await appliance?.stop();
  await world?.close();
  if (scratch) await fs.rm(scratch, { recursive: true, force: true });
});

describe('clgw-log-download', () => {
  it('finds no archive a previous agent left: the agent deleted them when it started', async () => {
    const left = await fs.readdir(world.paths.logArchives).catch(() => [] as string[]);
    for (const name of LEFTOVERS) expect(left).not.toContain(name);
    const said = await until(async () => {
      const lines = (await fs.readFile(world.paths.logFile, 'utf8')).trim().split('\n');
      return lines
        .map((l) => JSON.parse(l) as { msg: string; files?: string[] })
        .find((l) => l.msg === 'removed log archives a previous agent left');
    }, 'the agent to say so in its log');
    expect([...(said.files ?? [])].sort()).toEqual(LEFTOVERS);
  });

  it('prints a temporary URL that serves the log archive once asked, and 404 after revoke', async () => {
    const portal = (await fs.readFile(world.paths.portalUrl, 'utf8')).trim();
    const r = await logDownload([]);
    expect(r.stderr).not.toMatch(/ERROR|INTERNAL/);
    expect(r.code).toBe(0);
    const m =
      /^URL: (http:\/\/127\.0\.0\.1:\d+\/logs\/([A-Za-z0-9_-]{43}))\nexpires: (\S+) \(in 10 min\)\n$/.exec(
        r.stdout,
      );
    expect(m, r.stdout).not.toBeNull();
    const [, url, token, expires] = m!;
    expect(new URL(url!).port).toBe(new URL(portal).port);
    const left = Date.parse(expires!) - Date.now();
    expect(left).toBeGreaterThan(8 * 60_000);
    expect(left).toBeLessThanOrEqual(10 * 60_000);

    const got = await download(url!);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/gzip');
    expect(got.headers.get('cache-control')).toBe('no-store');
    expect(got.headers.get('content-disposition')).toMatch(
      /^attachment; filename="clgw-logs-\d{8}T\d{6}Z-[0-9a-f]{6}\.tar\.gz"$/,
    );
    expect(got.headers.get('content-security-policy')).toContain("default-src 'none'");
    const file = path.join(scratch, 'logs.tar.gz');
    await fs.writeFile(file, got.body);
    const { stdout: names } = await run('tar', ['-tzf', file]);
    const list = names.split('\n');
    expect(list).toContain('MANIFEST.txt');
    expect(list).toContain('var/log/clgw/clgw.log');
    expect(list).toContain('var/clgw/');
    // The agent's live status at the time the archive was made.
    const { stdout: status } = await run('tar', ['-xzOf', file, 'status.json']);
    expect(JSON.parse(status)).toMatchObject({ source: 'agent', state: 'idle' });
    expect(list.filter((n) => n.startsWith('/') || n.includes('..'))).toEqual([]);
    // The token is not in the agent's files, nor in its log.
    expect(await fs.readFile(world.paths.logFile, 'utf8')).not.toContain(token);

    // The same URL again (it stays valid until it expires or is revoked).
    expect((await download(url!)).status).toBe(200);

    const unknown = await download(`${portal}logs/${'x'.repeat(43)}`);
    const revoke = await logDownload(['--revoke']);
    expect(revoke.code).toBe(0);
    expect(revoke.stdout).toBe('revoked 1 log download URL\n');
    const after = await download(url!);
    expect(after.status).toBe(404);
    // Every failure is the same response: revoked, unknown, malformed, wrong method.
    expect(unknown.status).toBe(404);
    expect(after.body.toString()).toBe(unknown.body.toString());
    expect(after.headers.get('cache-control')).toBe('no-store');
    const malformed = await download(`${portal}logs/..%2F..%2Fetc%2Fpasswd`);
    expect([malformed.status, malformed.body.toString()]).toEqual([404, unknown.body.toString()]);
    const empty = await download(`${portal}logs/`);
    expect([empty.status, empty.body.toString()]).toEqual([404, unknown.body.toString()]);
    // A browser gets one small page instead, the same for the revoked and the unknown link.
    const browser = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };
    const page = await download(url!, browser);
    expect(page.status).toBe(404);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-store');
    expect(page.body.toString()).toContain('This log download link does not work (any more)');
    expect(page.body.toString()).not.toContain('{"error"');
    const unknownPage = await download(`${portal}logs/${'x'.repeat(43)}`, browser);
    expect(unknownPage.body.toString()).toBe(page.body.toString());
    // The archive itself is gone from the run directory.
    expect(await fs.readdir(world.paths.logArchives)).toEqual([]);
  });

  it('prints the URL as a QR code with --qr', async () => {
    const r = await logDownload(['--qr']);
    expect(r.code).toBe(0);
    const [urlLine, expiresLine, ...qr] = r.stdout.trimEnd().split('\n');
    expect(urlLine).toMatch(/^URL: http:\/\/127\.0\.0\.1:\d+\/logs\/[A-Za-z0-9_-]{43}$/);
    expect(expiresLine).toMatch(/^expires: /);
    // Version 4 or 5 (33 or 37 modules) in a 4-module quiet zone, two rows a line.
    const width = [...qr[0]!].length;
    expect([41, 45]).toContain(width);
    expect(qr).toHaveLength(Math.ceil(width / 2));
    for (const line of qr) expect(line).toMatch(/^[ █▀▄]+$/);
    expect((await logDownload(['--revoke'])).stdout).toBe('revoked 1 log download URL\n');
  });

  it('answers --help, refuses unknown options (exit 2), and exits 3 when the agent is not running', async () => {
    const help = await logDownload(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: clgw-log-download [--qr] | --revoke');
    const bad = await logDownload(['--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown option "--bogus"');
    const noAgent = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [COMMAND],
        { env: { ...process.env, CLGW_ROOT: scratch } },
        (error, _stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stderr }),
      );
    });
    expect(noAgent.code).toBe(3);
    expect(noAgent.stderr).toContain('AGENT_UNREACHABLE');
  });
});
