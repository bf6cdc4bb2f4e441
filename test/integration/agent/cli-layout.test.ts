/**
 * `clgw`'s text at 80 columns (not a terminal, no COLUMNS) with what a real appliance shows: long
 * image references with their digests, long error messages. The built CLI runs as a process
 * against a loopback agent socket that answers with these views.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { appliancePaths } from '@clgw/core/platform/paths.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainersView } from '../../../agent/src/containers/view.js';
import type { Status } from '../../../agent/src/status.js';
import { tempDir } from '../../support/appliance.js';
import { CLI } from '../../support/cli.js';
import { sampleStatus } from '../../support/status.js';

const DIGEST = `sha256:${'3f9c0a7e'.repeat(8)}`;
const image = (name: string) => `registry.example/mitel/cloudlink-${name}:1.1.0.01-296@${DIGEST}`;

const CONTAINERS: ContainersView = {
  engine: { reachable: true },
  running: false,
  containers: [
    {
      service: 'tunnel',
      name: 'clgw-tunnel',
      version: '1.1.0.01-296',
      image: image('tunnel'),
      state: 'running',
      health: 'healthy',
      uptimeSeconds: 7300,
      rejected: [],
      last: {
        outcome: 'upgraded',
        version: '1.1.0.01-296',
        from: '1.0.0.00-180',
        at: '2025-11-21T03:14:07.123Z',
        downtimeMs: 4200,
      },
    },
    {
      service: 'micloud',
      name: 'clgw-micloud',
      version: '1.1.0.01-296',
      image: image('micloud'),
      state: 'running',
      health: 'unhealthy',
      uptimeSeconds: 90,
      rejected: ['1.2.0.00-310'],
      last: {
        outcome: 'rolledBack',
        version: '1.1.0.01-296',
        attempted: '1.2.0.00-310',
        at: '2025-11-21T03:16:07.123Z',
        downtimeMs: 12100,
        error: {
          code: 'HEALTH_CHECK_FAILED',
          message:
            'container clgw-micloud-next did not become healthy within 60 s on 127.0.0.1:8081 (HTTP 503)',
          transient: false,
        },
      },
    },
    {
      service: 'freeswitch',
      name: 'clgw-freeswitch',
      version: '1.1.0.01-296',
      image: image('freeswitch'),
      state: 'exited',
      health: 'not running',
      rejected: [],
      last: { outcome: 'installed', version: '1.1.0.01-296', at: '2025-11-20T22:00:00.000Z' },
    },
  ],
  lastRun: {
    at: '2025-11-21T03:16:07.123Z',
    outcome: 'failed',
    error: {
      code: 'ENGINE_ERROR',
      message: 'podman answered 500 to POST /v4.0.0/libpod/images/load: no space left on device',
      transient: true,
    },
  },
};

const STATUS: Status = sampleStatus({
  state: 'verifying',
  target: { version: '1.1.0', slot: 'B' },
  progress: {
    phase: 'verifying 1.1.0',
    bytes: 300 * 1024 * 1024,
    total: 620 * 1024 * 1024,
    rate: 410 * 1024 * 1024,
    startedAt: 0,
    percent: (100 * 300) / 620,
  },
  result: {
    outcome: 'failed',
    version: '1.1.0',
    at: '2025-11-21T02:00:00.000Z',
    message: 'GET https://downloads.example/releases/1.1.0/root.img answered HTTP 503 (service unavailable)',
  },
  containers: Object.fromEntries(CONTAINERS.containers.map((c) => [c.service, c.last!])),
  diagnostics: {
    at: '2025-11-21T01:00:00.000Z',
    ok: false,
    results: [
      {
        name: 'ntp',
        target: 'pool.ntp.example:123',
        verdict: 'failed',
        summary:
          'NTP query to pool.ntp.example:123 (192.0.2.123) failed: no answer within 3 s (UDP port 123 may be blocked)',
        durationMs: 3000,
      },
    ],
  },
});

let root: string;
let server: http.Server;

/** `clgw <args>` as a pipe sees it: no terminal, COLUMNS unset (80 columns). */
function clgw(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { COLUMNS: _, ...env } = process.env;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...env, CLGW_ROOT: root } },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

function expectWithin80(text: string): void {
  for (const line of text.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
}

beforeAll(async () => {
  await fs.access(CLI); // built by `make check` / `make test`
  root = await tempDir('cli-layout');
  const socket = appliancePaths(root).socket;
  await fs.mkdir(path.dirname(socket), { recursive: true });
  server = http.createServer((req, res) => {
    const body = req.url === '/v1/containers' ? CONTAINERS : req.url === '/v1/status' ? STATUS : undefined;
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? { error: { code: 'NOT_FOUND', message: `no ${req.url} here` } }));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (root) await fs.rm(root, { recursive: true, force: true });
});

describe('clgw at 80 columns', () => {
  it('containers: each row whole, the image reference and its digest each whole on a line', async () => {
    const r = await clgw(['containers']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expectWithin80(r.stdout);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME +VERSION +STATE +HEALTH +UPTIME +DOWNTIME$/);
    // Version, state, health, downtime on the service's own line, never wrapped away from it.
    expect(lines).toContain('tunnel      1.1.0.01-296  running  healthy      2 h     4.2 s');
    expect(lines).toContain('micloud     1.1.0.01-296  running  unhealthy    90 s    12.1 s');
    expect(lines).toContain('freeswitch  1.1.0.01-296  exited   not running  -       -');
    for (const name of ['tunnel', 'micloud', 'freeswitch']) {
      expect(lines).toContain(`  image:         registry.example/mitel/cloudlink-${name}:1.1.0.01-296`);
    }
    expect(lines.filter((l) => l === `    @${DIGEST}`)).toHaveLength(3);
    // The last upgrade's result, and why one was rolled back.
    expect(lines).toContain('  last upgrade:  upgraded from 1.0.0.00-180 (2025-11-21 03:14 UTC)');
    expect(lines).toContain('  last upgrade:  rolled back 1.2.0.00-310 (2025-11-21 03:16 UTC)');
    expect(lines).toContain('  last upgrade:  installed (2025-11-20 22:00 UTC)');
    // Wrapped lines continue under their value: read them as one.
    const text = r.stdout.replace(/\s+/g, ' ');
    expect(text).toContain(
      'error: container clgw-micloud-next did not become healthy within 60 s on 127.0.0.1:8081 (HTTP 503)',
    );
    expect(text).toContain(
      'failed here: 1.2.0.00-310: not installed again automatically (clgw update --containers --force)',
    );
    expect(text).toContain(
      'last run failed: ENGINE_ERROR: podman answered 500 to POST /v4.0.0/libpod/images/load: no space left on device',
    );
  });

  it('containers --json is the view as the agent gave it, unwrapped', async () => {
    const r = await clgw(['containers', '--json']);
    expect(JSON.parse(r.stdout)).toEqual(CONTAINERS);
  });

  it('status and --help fit 80 columns', async () => {
    const status = await clgw(['status']);
    expect(status.code).toBe(0);
    expectWithin80(status.stdout);
    expect(status.stdout).toMatch(/^progress: {5}verifying 1\.1\.0: 300\.0 MiB \/ 620\.0 MiB \(48 %\)$/m);
    // Times as every other view shows them, never a raw ISO string.
    expect(status.stdout).toMatch(
      /^container: {4}freeswitch 1\.1\.0\.01-296 — installed \(2025-11-20 22:00 UTC\)$/m,
    );
    expect(status.stdout).not.toMatch(/\d\dT\d\d:\d\d/);
    const help = await clgw(['--help']);
    expect(help.code).toBe(0);
    expectWithin80(help.stdout);
  });
});
