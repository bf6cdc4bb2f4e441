/**
 * The console end to end: `clgw-console home` and `clgw-console menu` in tmux (TERM=linux, 80x25,
 * as on the VGA console) against a real agent on a simulated appliance (the boot emulator runs it),
 * driven with the keys a technician presses. Enable SSH → a real sshd answers and the banner
 * shows; Disable; a static address → the agent has it; a data reset erases the onboarding data
 * and keeps the network settings; Download logs shows a URL that serves the archive until
 * revoked; Factory Reset is not offered on a virtual appliance. A text
 * capture of each screen goes to .cache/test/console/.
 */

import { execFile as execFileCb } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, REPO, until, type World } from '../../support/appliance.js';
import { freePort } from '../../support/ports.js';
import { recordSkip } from '../../support/skip.js';
import { greeting } from '../../support/ssh.js';
import { Tmux, tmuxPath } from '../../support/tmux.js';

const execFile = promisify(execFileCb);
const SHOTS = path.join(REPO, '.cache/test/console');
const MAIN = path.join(REPO, 'console-tui/dist/clgw-console.mjs');

const missing = [
  tmuxPath ? undefined : 'tmux is not installed (scripts/setup console installs it)',
  existsSync('/usr/sbin/sshd')
    ? undefined
    : 'sshd is not installed (scripts/setup console installs openssh-server)',
].filter((m): m is string => m !== undefined);
if (missing.length) recordSkip('test/e2e/console', missing.join('; '));

const zbarimg = ['/usr/bin/zbarimg', '/bin/zbarimg'].find((p) => existsSync(p));

/**
 * Reads the QR code on a captured screen with zbarimg, as a phone would: the code starts at row 5,
 * column 1 (its top quiet-zone row is all `█`); each cell is two modules high (`▀` `▄` `█`
 * light), drawn as a grey-map with the screen's dark around it.
 */
async function decodeScreenQr(screen: string): Promise<string> {
  const rows = screen.split('\n').slice(5);
  const width = /^█+/.exec(rows[0]?.slice(1) ?? '')?.[0].length ?? 0;
  const cells = rows
    .slice(0, Math.ceil(width / 2))
    .map((r) => Array.from(r.slice(1, 1 + width).padEnd(width)));
  const scale = 6;
  const margin = 20;
  const w = width * scale + 2 * margin;
  const h = cells.length * 2 * scale + 2 * margin;
  const img = Buffer.alloc(w * h); // dark
  const light = (ch: string | undefined, half: number) => ch === '█' || ch === (half === 0 ? '▀' : '▄');
  for (let y = 0; y < cells.length * 2 * scale; y++) {
    const half = Math.floor(y / scale) % 2;
    const row = cells[Math.floor(y / (2 * scale))] ?? [];
    for (let c = 0; c < width; c++) {
      const at = (margin + y) * w + margin + c * scale;
      if (light(row[c], half)) img.fill(255, at, at + scale);
    }
  }
  const file = path.join(os.tmpdir(), `clgw-console-qr-${process.pid}.pgm`);
  await fs.writeFile(file, Buffer.concat([Buffer.from(`P5 ${w} ${h} 255\n`), img]));
  try {
    return (await execFile(zbarimg ?? 'zbarimg', ['-q', '--raw', file])).stdout.trim();
  } finally {
    await fs.rm(file, { force: true });
  }
}

let world: World | undefined;
let appliance: ReturnType<typeof runAppliance> | undefined;
let client: AgentClient;
const NETNS = `clgw-c-${randomBytes(3).toString('hex')}`;
const VETH = `clgwc${randomBytes(3).toString('hex')}`;
let port: number;
const tmux = new Tmux('console', SHOTS);

describe.skipIf(missing.length > 0)('the local console in tmux (TERM=linux, 80x25)', () => {
  beforeAll(async () => {
    await fs.access(MAIN); // built by `make test` (tsc, then scripts/bundle.mjs)
    await fs.mkdir(SHOTS, { recursive: true });
    port = await freePort();
    // The LAN port: one end of a veth pair, eth0 in a network namespace of the test's own.
    await execFile('ip', ['netns', 'add', NETNS]);
    await execFile('ip', ['link', 'add', VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NETNS]);
    world = await makeWorld({
      boot: false,
      config: {
        ssh: { server: 'simulator', port },
        networkApply: 'netns',
        netns: NETNS,
        lanInterface: 'eth0',
      },
    });
    appliance = runAppliance({ root: world.root, say: () => undefined });
    client = new AgentClient(world.paths.socket, 10_000);
    await until(
      async () => ((await client.status()).state === 'idle' ? true : undefined),
      'the agent to start',
    );
    await tmux.start('home', world.root);
    await tmux.start('menu', world.root);
  });

  afterAll(async () => {
    await tmux.close();
    await appliance?.stop();
    await world?.close();
    await execFile('ip', ['netns', 'del', NETNS]).catch(() => undefined);
  });

  /** The menu's selection back at its first item. */
  const top = () => tmux.keys('menu', 'Up', 'Up', 'Up', 'Up');

  it('the home screen shows product, version, portal URLs, update state and diagnostics', async () => {
    const screen = await tmux.waitFor('home', /Gateway OS: +1\.0\.0/);
    expect(screen).toContain('CloudLink Gateway');
    expect(screen).toMatch(/Update: +no update in progress/);
    expect(screen).toContain('http://cloudlink.local/');
    expect(screen).toMatch(/Network: +DHCP/);
    await tmux.waitFor('home', /Diagnostics: +\d{4}-\d\d-\d\d \d\d:\d\d UTC: /); // the startup run
    const shot = await tmux.save('home', 'home');
    expect(shot.split('\n').every((l) => /^[\x20-\x7e]*$/.test(l))).toBe(true);
    // The last of the 25 rows says where the menu is (tty1 takes no commands itself).
    expect(shot.split('\n')[24]).toMatch(/^ Menu \(Data Reset, SSH, network, logs\): press ALT\+F2/);
  });

  it('the menu on a virtual appliance: no Factory Reset, and why', async () => {
    const screen = await tmux.waitFor('menu', 'Factory Reset: not on a virtual appliance - redeploy the OVA');
    expect(screen).toContain('Data Reset');
    expect(screen).toContain('Enable SSH access');
    expect(screen).not.toMatch(/^ {3}Factory Reset/m);
    await tmux.save('menu', 'menu');
  });

  it('Enable SSH access: asked first; a real sshd answers and the banner shows on both screens; Disable (asked too) stops it', async () => {
    expect(await greeting(port)).toBe('ECONNREFUSED');
    await top();
    await tmux.keys('menu', 'Down', 'Enter');
    await tmux.waitFor('menu', 'Enable SSH access for 24 hours?');
    await tmux.save('menu', 'ssh-question');
    await tmux.keys('menu', 'Down', 'Enter'); // Yes (No is selected first)
    await tmux.waitFor('menu', /SSH access is ON until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(23 h 59 min left\)/);
    await tmux.waitFor('menu', 'Disable SSH access');
    expect(await greeting(port)).toMatch(/^SSH-2\.0-OpenSSH/);
    await tmux.save('menu', 'menu-ssh-on');
    await tmux.waitFor('home', 'SSH access is ON until');
    await tmux.save('home', 'home-ssh-on');
    await tmux.keys('menu', 'Enter'); // the selection stays on the SSH item
    await tmux.waitFor('menu', 'Disable SSH access now?');
    expect(await greeting(port)).toMatch(/^SSH-2\.0-OpenSSH/);
    await tmux.keys('menu', 'Down', 'Enter'); // Yes
    await tmux.waitFor('menu', 'SSH access disabled.');
    await tmux.waitFor('menu', 'Enable SSH access');
    expect(await greeting(port)).toBe('ECONNREFUSED');
    expect((await client.ssh()).enabled).toBe(false);
    await until(
      async () => !(await tmux.capture('home')).includes('SSH access is ON'),
      'the home banner to go',
    );
  });

  it('Ethernet configuration: inline validation, then a static address the agent has', async () => {
    await top();
    await tmux.keys('menu', 'Down', 'Down', 'Enter');
    await tmux.waitFor('menu', /IPv4 +DHCP/);
    await tmux.save('menu', 'network-dhcp');
    await tmux.keys('menu', 'Enter'); // IPv4: static
    await tmux.waitFor('menu', 'Address is missing');
    await tmux.keys('menu', 'Down', 'Enter', 'text:10.0.0.255', 'Enter');
    await tmux.keys('menu', 'Down', 'Enter', 'text:255.255.255.0', 'Enter');
    await tmux.waitFor('menu', 'Address 10.0.0.255 is the broadcast address of 10.0.0.0/24');
    await tmux.save('menu', 'network-invalid');
    await tmux.keys('menu', 'Up', 'Enter', 'BSpace', 'BSpace', 'BSpace', 'text:20', 'Enter');
    await tmux.keys('menu', 'Down', 'Down', 'Enter', 'text:10.0.0.1', 'Enter');
    await tmux.keys('menu', 'Down', 'Enter', 'text:10.0.0.53, 10.0.0.54', 'Enter');
    const form = await tmux.waitFor('menu', /DNS servers +10\.0\.0\.53, 10\.0\.0\.54/);
    expect(form).not.toContain('broadcast');
    await tmux.save('menu', 'network-static');
    await tmux.keys('menu', 'Down', 'Down', 'Enter'); // past Hostname to Save
    // Asked first, naming what is about to change.
    await tmux.waitFor('menu', 'Apply these network settings?');
    await tmux.waitFor('menu', 'IPv4:      static 10.0.0.20/24');
    await tmux.save('menu', 'network-question');
    expect((await client.network()).settings.ipv4.mode).toBe('dhcp');
    await tmux.keys('menu', 'Down', 'Enter'); // Yes
    await tmux.waitFor('menu', 'Saved: static 10.0.0.20/24 via 10.0.0.1');
    const saved = await tmux.save('menu', 'network-saved');
    // Back on the menu with nothing of the form or the question left.
    expect(saved).not.toMatch(/^[ │]*(No|Yes)[ │]*$/m);
    expect(saved).not.toContain('Apply these');
    const view = await client.network();
    expect(view.settings.ipv4).toEqual({
      mode: 'static',
      address: '10.0.0.20',
      prefixLength: 24,
      gateway: '10.0.0.1',
      dns: ['10.0.0.53', '10.0.0.54'],
    });
    await tmux.waitFor('home', 'http://10.0.0.20/');
    await tmux.waitFor('home', /Network: +static 10\.0\.0\.20\/24 via 10\.0\.0\.1/);
    // …and the namespace's interface carries it.
    const { stdout } = await execFile('ip', ['-j', '-n', NETNS, 'addr', 'show', 'dev', 'eth0']);
    const inet = (
      JSON.parse(stdout) as { addr_info: { family: string; local: string; prefixlen: number }[] }[]
    )
      .flatMap((l) => l.addr_info)
      .filter((a) => a.family === 'inet')
      .map((a) => `${a.local}/${a.prefixlen}`);
    expect(inet).toEqual(['10.0.0.20/24']);
    const route = await execFile('ip', ['-j', '-n', NETNS, 'route', 'show', 'default']);
    expect((JSON.parse(route.stdout) as { gateway?: string }[])[0]?.gateway).toBe('10.0.0.1');
  });

  it('Data Reset: Escape cancels; typing RESET erases the onboarding data and keeps the network settings', async () => {
    const w = world as World;
    await fs.mkdir(w.paths.onboardingDir, { recursive: true });
    const token = path.join(w.paths.onboardingDir, 'account-link.json');
    await fs.writeFile(token, '{"token":"secret"}\n');
    await top();
    await tmux.keys('menu', 'Enter');
    await tmux.waitFor('menu', 'Type RESET and press Enter to confirm');
    await tmux.save('menu', 'data-reset-confirm');
    await tmux.keys('menu', 'Escape');
    await tmux.waitFor('menu', 'Cancelled.');
    expect(existsSync(token)).toBe(true);
    await tmux.keys('menu', 'Enter', 'text:RESET', 'Enter');
    await tmux.waitFor('menu', 'Data reset done');
    await tmux.save('menu', 'data-reset-done');
    expect(existsSync(token)).toBe(false);
    expect((await client.network()).settings.ipv4).toMatchObject({ mode: 'static', address: '10.0.0.20' });
  });

  it('Download logs: Yes builds the archive, the URL on screen serves it; Revoke now ends it', async () => {
    await top();
    await tmux.keys('menu', 'Down', 'Down', 'Down', 'Enter');
    await tmux.waitFor('menu', 'Create an unreproducible and temporary log archive URL?');
    await tmux.save('menu', 'logs-question');
    await tmux.keys('menu', 'Down', 'Enter'); // Yes
    const screen = await tmux.waitFor('menu', /Expires at [\d: -]+ UTC \(in \d+ min\)/, 180_000);
    const url = /http:\/\/\S+\/logs\/\S+/.exec(screen)?.[0] ?? '';
    expect(url).not.toBe('');
    await tmux.save('menu', 'logs-link');
    // The QR code on the screen is the URL (checked when zbar-tools is installed).
    if (zbarimg) expect(await decodeScreenQr(screen)).toBe(url);
    const got = await fetch(url);
    expect(got.status).toBe(200);
    expect((await got.arrayBuffer()).byteLength).toBeGreaterThan(0);
    await tmux.keys('menu', 'Up', 'Enter'); // Revoke now (Close is selected first)
    await tmux.waitFor('menu', 'Revoked: the log download URL no longer works.');
    await tmux.save('menu', 'logs-revoked');
    expect((await fetch(url)).status).toBe(404);
  }, 240_000); // building the archive may take long on a loaded machine: the wait for the link allows 180 s

  it('the agent going away is said on screen and the console keeps running; it recovers when the agent is back', async () => {
    await appliance?.stop();
    appliance = undefined;
    const away = await tmux.waitFor('home', 'The gateway agent is not answering; trying again every second.');
    expect(away.match(/not answering|not reachable/g)).toHaveLength(1);
    // A poll in flight when the agent stops ends in ECONNRESET; the next ones find no socket.
    expect(away).toMatch(/^ socket \S+agent\.sock: (ENOENT|ECONNREFUSED|ECONNRESET)$/m);
    await tmux.save('home', 'home-unreachable');
    await tmux.waitFor('menu', 'The gateway agent is not answering');
    appliance = runAppliance({ root: (world as World).root, say: () => undefined });
    await tmux.waitFor('home', /Gateway OS: +1\.0\.0/, 60_000);
    await until(
      async () => !(await tmux.capture('home')).includes('not answering'),
      'the home screen to recover',
    );
  });
});
