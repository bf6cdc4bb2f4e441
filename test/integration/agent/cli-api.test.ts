/**
 * The `clgw` CLI and the local API, against the real agent process run by the boot emulator.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import type { Status } from '../../../agent/src/status.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, REPO, until, type World } from '../../support/appliance.js';
import { CLI, rawPost, runClgw, unwrap } from '../../support/cli.js';

let world: World;
let appliance: ReturnType<typeof runAppliance> | undefined;

const clgw = (args: string[], root = world.root) => runClgw(root, args);

beforeAll(async () => {
  await fs.access(CLI); // built by `make test`
  world = await makeWorld({ boot: false });
  appliance = runAppliance({ root: world.root, say: () => undefined });
  const client = new AgentClient(world.paths.socket, 5000);
  await until(
    async () => ((await client.status()).state === 'idle' ? true : undefined),
    'the agent to start',
  );
});

afterAll(async () => {
  await appliance?.stop();
  await world?.close();
});

describe('clgw CLI and local API', () => {
  it('serves the local portal (its URL in run/clgw/portal-url) with the strict headers', async () => {
    // The agent answers on its socket first and starts the portal right after.
    const url = await until(
      async () => (await fs.readFile(world.paths.portalUrl, 'utf8')).trim() || undefined,
      'the portal URL',
    );
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    // The URL is where the portal's own unit listens, written by the agent; the portal process
    // starts beside the agent (as systemd starts it) and may not be listening yet.
    const res = await until(async () => fetch(url).catch(() => undefined), 'the portal to listen');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await res.text()).toContain('CloudLink Gateway');
    const api = await fetch(new URL('api/status', url));
    expect(api.headers.get('cache-control')).toContain('no-store');
  });

  it('runs the startup diagnostics at start and on request; the report is in status and the log', async () => {
    // At start (the simulator's targets: the mirror for HTTPS, a closed port for NTP).
    await until(
      async () => ((await fs.stat(world.paths.diagnostics).catch(() => undefined)) ? true : undefined),
      'the startup diagnostics',
    );
    const r = await clgw(['diagnose']);
    expect(r.code).toBe(1); // NTP has no server here
    expect(r.stdout).toMatch(/^diagnostics \d{4}-\d\d-\d\d \d\d:\d\d UTC: 1 failed, \d warnings?\n/);
    expect(r.stdout).toMatch(/ {2}ok {3}https +TLS handshake with 127\.0\.0\.1:\d+/);
    expect(r.stdout).toMatch(/ {2}FAIL ntp +.*127\.0\.0\.1:9/);
    expect(r.stdout).toMatch(/ {2}WARN stun-3478 +not checked: no STUN server configured/);
    const s = JSON.parse((await clgw(['status', '--json'])).stdout) as Status;
    expect(s.diagnostics?.results.map((x) => x.name)).toEqual([
      'dns',
      'ntp',
      'https',
      'stun-3478',
      'stun-3479',
      'sip-tls',
    ]);
    expect((await clgw(['status'])).stdout).toContain('FAIL ntp');
    expect(await fs.readFile(world.paths.logFile, 'utf8')).toContain('FAIL ntp');
  });

  it('sets, shows and turns off the update window; a bad zone is refused naming it', async () => {
    const set = await clgw([
      'schedule',
      'set',
      '--at',
      '02:00',
      '--tz',
      'America/New_York',
      '--spread',
      '15',
    ]);
    expect(set.stderr).toBe('');
    expect(set.stdout).toContain('update window: 02:00 America/New_York, spread over 15 min');
    expect(set.stdout).toMatch(/next start: {4}\d{4}-\d\d-\d\d 02:(0\d|1[0-4]) E[SD]T \(/);
    expect((await clgw(['schedule'])).stdout).toBe(set.stdout);
    const saved = JSON.parse(await fs.readFile(world.paths.schedule, 'utf8')) as { window: unknown };
    expect(saved.window).toEqual({ at: '02:00', tz: 'America/New_York', spreadMinutes: 15 });
    const bad = await clgw(['schedule', 'set', '--at', '02:00', '--tz', 'America/Springfield']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('SETTING_INVALID: update window time zone must be an IANA time zone');
    expect((await clgw(['schedule', 'set', '--at', '2am', '--tz', 'UTC'])).stderr).toContain('must be HH:MM');
    expect((await clgw(['schedule', 'off'])).stdout).toContain('update window: off');
  });

  it('reports the performance profile chosen from this machine, and logs its line', async () => {
    const s = JSON.parse((await clgw(['status', '--json'])).stdout) as Status;
    expect(s.profile?.line).toMatch(
      /^performance profile: (small|small-plus|medium|large) \([\d.]+[GM]iB RAM\), RTP port range: \d+-65534$/,
    );
    expect(s.profile?.cores).toBeGreaterThan(0);
    const log = await fs.readFile(world.paths.logFile, 'utf8');
    expect(log).toContain(s.profile!.line);
    expect((await clgw(['status'])).stdout).toContain(`profile:      ${s.profile!.name} (`);
  });

  it('status --json comes from the running agent', async () => {
    const r = await clgw(['status', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Status;
    expect(s).toMatchObject({
      source: 'agent',
      state: 'idle',
      bootedSlot: 'A',
      gatewayVersion: '1.0.0',
      platform: 'virtual',
    });
    expect(s.slots.A).toMatchObject({ booted: true, ok: true, try: false });
  });

  it('check reports what is available without installing it', async () => {
    await world.publish('1.1.0');
    const r = await clgw(['check']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('gateway OS 1.1.0 is available');
    expect((await readGrubenv(world.paths.grubenv)).get('B_OK')).toBe('0');
  });

  it('check with the server answering 404: exit 1, the cause on stderr; status says idle and warns', async () => {
    world.mirror.setFault('/compat.yaml', { status: 404 });
    try {
      const r = await clgw(['check']);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^clgw: HTTP_STATUS: .*compat\.yaml.*404/);
      const s = JSON.parse((await clgw(['status', '--json'])).stdout) as Status;
      expect(s).toMatchObject({ state: 'idle', error: null, check: { outcome: 'failed' } });
      const text = unwrap((await clgw(['status'])).stdout);
      expect(text).toMatch(/^update state: idle$/m);
      expect(text).toMatch(/^patch level: {2}2025-10-01$/m);
      expect(text).toMatch(
        /^last check: {3}Cannot reach the download server: .*404.* — the gateway keeps running 1\.0\.0 and will try again at .*\(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)$/m,
      );
    } finally {
      world.mirror.setFault('/compat.yaml', undefined);
    }
    // The next good check replaces the warning.
    expect((await clgw(['check'])).code).toBe(0);
    expect((await clgw(['status'])).stdout).toMatch(/^last check: {3}Release 1\.1\.0 available/m);
  });

  it('mark-bad and mark-good act on the booted slot', async () => {
    expect((await clgw(['mark-bad'])).code).toBe(0);
    expect(Object.fromEntries(await readGrubenv(world.paths.grubenv))).toMatchObject({
      A_OK: '0',
      ORDER: 'B A',
    });
    expect((await clgw(['mark-good'])).code).toBe(0);
    expect(Object.fromEntries(await readGrubenv(world.paths.grubenv))).toMatchObject({
      A_OK: '1',
      A_TRY: '0',
    });
  });

  it('recovery actions outside a failed update are refused with exit 4', async () => {
    const r = await clgw(['retry']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('NOT_ALLOWED');
  });

  it("download server down: check and update say the failure once, on stderr, with the portal's advice", async () => {
    world.mirror.setFault('/', { status: 503 });
    try {
      const check = await clgw(['check']);
      expect(check.code).toBe(1);
      expect(check.stdout).toBe('');
      expect(check.stderr.match(/HTTP_STATUS/g)).toHaveLength(1);
      // The portal's words for the code (agent/src/advice.ts), with the CLI's command for Retry.
      const said = check.stderr.replace(/\n/g, ' ');
      expect(said).toContain('The download server answered with an error.');
      expect(said).toContain('This is usually temporary: run clgw check later.');
      expect(said).toContain('the proxy settings (clgw proxy)');
      for (const line of check.stderr.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);

      const json = await clgw(['check', '--json']);
      expect(json.code).toBe(1);
      expect((JSON.parse(json.stdout) as Status).check?.error?.code).toBe('HTTP_STATUS');

      // An update whose check cannot be done: the same, and the thing to run again is the update.
      const update = await clgw(['update']);
      expect(update.code).toBe(1);
      expect(update.stdout).not.toContain('HTTP');
      expect(update.stderr.match(/HTTP_STATUS/g)).toHaveLength(1);
      expect(update.stderr.replace(/\n/g, ' ')).toContain('run clgw update later');
      // Nothing was installed: no failed update to retry.
      expect((await clgw(['retry'])).code).toBe(4);
    } finally {
      world.mirror.setFault('/', undefined);
    }
  });

  it('a failed update: said once with advice; retry says it only started', async () => {
    const client = new AgentClient(world.paths.socket, 5000);
    await world.publish('1.1.0');
    world.mirror.setFault('/releases/', { status: 404 });
    try {
      const update = await clgw(['update']);
      expect(update.code).toBe(1);
      expect(update.stderr.match(/HTTP_STATUS/g)).toHaveLength(1);
      expect(update.stderr.replace(/\n/g, ' ')).toMatch(/[Rr]un clgw retry later/);
      // Only started: it is a whole update (checking → … → reboot); the retry fails here again.
      const before = (await client.status()).result?.at;
      const retry = await clgw(['retry']);
      // (Settled before the fault goes: a retry left running would install 1.1.0 here.)
      await until(async () => {
        const s = await client.status();
        return s.state === 'failed' && s.result?.at !== before ? true : undefined;
      }, 'the retry to fail');
      expect(retry.code).toBe(0);
      expect(retry.stdout).toMatch(/^retry started \(state \w+\): the update runs again; see clgw status\n$/);
      expect(retry.stdout).not.toContain('done');
    } finally {
      world.mirror.setFault('/releases/', undefined);
    }
    // A good check ends the failed state (the release is there again).
    expect((await clgw(['check'])).code).toBe(0);
  });

  it('version, --version and --help: exit 0, within 80 columns; the exit codes are listed', async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(REPO, 'agent/package.json'), 'utf8')) as {
      version: string;
    };
    for (const args of [['version'], ['--version']]) {
      const r = await clgw(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`clgw ${pkg.version}\ngateway OS 1.0.0 (CloudLink Gateway OS 1.0.0)\n`);
    }
    expect(JSON.parse((await clgw(['version', '--json'])).stdout)).toMatchObject({
      clgw: pkg.version,
      gatewayOs: { version: '1.0.0' },
    });
    const help = await clgw(['--help']);
    expect(help.code).toBe(0);
    for (const line of help.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    expect(help.stdout).toMatch(
      /exit codes:\n {2}0 {2}done\n {2}1 {2}failed.*\n {2}2 {2}usage.*\n {2}3 .*not reachable\n {2}4 {2}refused/,
    );
    for (const command of ['status', 'check', 'update', 'containers', 'retry', 'version', 'network', 'ssh'])
      expect(help.stdout).toMatch(new RegExp(`^ {2}${command}\\b`, 'm'));
    const none = await clgw([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('exit codes:');
  });

  it('--json: one document on stdout for the views a script reads', async () => {
    for (const args of [
      ['diagnose', '--json'],
      ['ssh', '--json'],
      ['proxy', '--json'],
      ['schedule', '--json'],
      ['network', '--json'],
      ['containers', '--json'],
    ]) {
      const r = await clgw(args);
      expect(r.stderr, args.join(' ')).toBe('');
      expect(() => JSON.parse(r.stdout), args.join(' ')).not.toThrow();
    }
    expect((await clgw(['retry', '--json'])).code).toBe(2);
  });

  it('bad input: unknown command or option → exit 2; malformed API body → 400 INVALID_REQUEST', async () => {
    expect((await clgw(['frobnicate'])).code).toBe(2);
    expect((await clgw(['status', '--yaml'])).code).toBe(2);
    const unconfirmed = await clgw(['data-reset']);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain('--confirm');
    const virtualReset = await clgw(['factory-reset', '--confirm']);
    expect(virtualReset.code).toBe(4);
    expect(virtualReset.stderr).toContain('redeploy');
    const noConfirmBody = await rawPost(world.paths.socket, '/v1/data-reset', '{}');
    expect(noConfirmBody.status).toBe(400);
    const res = await rawPost(world.paths.socket, '/v1/update', '{"force": "yes"}');
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: { code: 'INVALID_REQUEST' } });
    const notJson = await rawPost(world.paths.socket, '/v1/check', 'not json');
    expect(notJson.status).toBe(400);
  });

  it('update follows the whole update through the reboot and exits 0 when committed', async () => {
    world.mirror.setFault('/releases/', { drip: 4 * 1024 * 1024 });
    const running = clgw(['update']);
    // While it downloads, destructive slot operations are refused as busy.
    const client = new AgentClient(world.paths.socket, 5000);
    await until(
      async () => ((await client.status()).state === 'downloading' ? true : undefined),
      'the download',
    );
    const busy = await clgw(['mark-good']);
    expect(busy.code).toBe(4);
    expect(busy.stderr).toContain('BUSY');
    world.mirror.setFault('/releases/', undefined);

    const r = await running;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('gateway OS 1.1.0 is installed and committed');
    for (const line of r.stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
    // The read-back counts its bytes as it goes: whatever percentages of it the CLI saw, they rise.
    const verifying = [...r.stdout.matchAll(/^verifying 1\.1\.0: (\d+) %$/gm)].map((m) => Number(m[1]));
    expect(verifying).toEqual([...verifying].sort((a, b) => a - b));
  });

  it('status --json works from disk when the agent is down; other commands exit 3', async () => {
    await appliance!.stop();
    appliance = undefined;
    const r = await clgw(['status', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Status;
    expect(s).toMatchObject({
      source: 'persisted',
      bootedSlot: 'B',
      gatewayVersion: '1.1.0',
      highestVersion: '1.1.0',
    });
    expect(s.result?.outcome).toBe('committed');
    const check = await clgw(['check']);
    expect(check.code).toBe(3);
    expect(check.stderr).toContain('AGENT_UNREACHABLE');
  });
});
