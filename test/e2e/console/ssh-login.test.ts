/**
 * Mitel support gets in — and nobody else does — end to end: the technician chooses "Enable SSH
 * access" in the tty2 menu (tmux, TERM=linux, 80x25) of a simulated appliance with the real
 * agent; the screen shows the principal support needs; support issues a certificate for it with
 * `clgw-release support-cert` and logs in with the real ssh client as `support`. Refused: an
 * unsigned key, an expired certificate, one for another appliance, one valid for 30 days, one of
 * another CA — and, after "Disable SSH access", everyone, with an open session ended. Before
 * that, a port already taken: the console says why and SSH access stays off. Screens go to
 * .cache/test/console/.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import { readApplianceId } from '../../../agent/src/ssh/appliance-id.js';
import { simulatorSsh } from '../../../agent/src/ssh/ssh.js';
import { generateSupportCa } from '../../../image/src/release/support-ca.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { REPO, until, type World } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';
import {
  greeting,
  newKey,
  run,
  signDirectly,
  sshArgs,
  sshLogin,
  sshToolsMissing,
  supportWorld,
} from '../../support/ssh.js';
import { Tmux, tmuxPath } from '../../support/tmux.js';

const RELEASE_CLI = path.join(REPO, 'image/dist/release/cli.js');
const missing = [
  tmuxPath ? undefined : 'tmux is not installed (scripts/setup console installs it)',
  sshToolsMissing(),
  (await run('getent', ['passwd', 'support'])).code === 0
    ? undefined
    : 'the system user support is missing (scripts/setup console makes it)',
].filter((m): m is string => m !== undefined);
if (missing.length) recordSkip('test/e2e/console/ssh-login.test.ts', missing.join('; '));

let world: World | undefined;
let appliance: ReturnType<typeof runAppliance> | undefined;
let client: AgentClient;
let port: number;
let keys: string;
let ca: string;
let principal = '';
/** Support's key and the certificate `clgw-release support-cert` issued for it. */
let support: { key: string; cert: string };
const tmux = new Tmux('ssh-login', path.join(REPO, '.cache/test/console'));

/** The menu's selection on "Enable/Disable SSH access" (the second item on a virtual appliance). */
const toSshItem = () => tmux.keys('menu', 'Up', 'Up', 'Up', 'Up', 'Down');

/** `clgw-release support-cert` as support runs it; the certificate's path. */
async function supportCert(name: string, principals: string[], hours = 2): Promise<string> {
  const key = path.join(keys, name);
  const r = await run(process.execPath, [
    RELEASE_CLI,
    'support-cert',
    '--ca',
    ca,
    ...principals.flatMap((p) => ['--principal', p]),
    '--hours',
    String(hours),
    '--identity',
    `${name}@support`,
    `${key}.pub`,
  ]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`support certificate written to ${key}-cert.pub\n`);
  return `${key}-cert.pub`;
}

/** ssh's own failure (exit 255) saying the server refused the key or certificate. */
const refused = { code: 255, stderr: expect.stringContaining('Permission denied (publickey)') };

describe.skipIf(missing.length > 0)(
  'support logs in over SSH after "Enable SSH access" on the console',
  () => {
    beforeAll(async () => {
      ({ keys, ca, port, world } = await supportWorld('ssh-login'));
      appliance = runAppliance({ root: world.root, say: () => undefined });
      client = new AgentClient(world.paths.socket, 10_000);
      await until(
        async () => ((await client.status()).state === 'idle' ? true : undefined),
        'the agent to start',
      );
      await tmux.start('menu', world.root);
      await tmux.start('home', world.root);
      await tmux.waitFor('menu', 'Enable SSH access');
    });

    afterAll(async () => {
      await tmux.close();
      await appliance?.stop();
      // sshd outlives the agent (as ssh.service does): switch it off through the same code.
      if (world) {
        await simulatorSsh(world.paths, { port }).stop();
        await world.close();
      }
      if (keys) await fs.rm(keys, { recursive: true, force: true });
    });

    it('the port already taken: the console says where and why, and SSH access stays off', async () => {
      const taken = net.createServer((s) => s.destroy());
      await new Promise<void>((r) => taken.listen(port, '127.0.0.1', r));
      try {
        await toSshItem();
        await tmux.keys('menu', 'Enter', 'Down', 'Enter'); // Enable SSH access, asked first: Yes
        const screen = await tmux.waitFor(
          'menu',
          `SSH access not enabled (sshd on 127.0.0.1:${port}): sshd did not start:`,
        );
        // The message wraps over the rows above the help line, whole; joined, it names the cause.
        expect(screen.replace(/\s*\n\s*/g, ' ')).toContain('Address already in use');
        await tmux.save('menu', 'ssh-login-port-taken');
        expect(screen).toContain('Enable SSH access');
        expect(screen).not.toContain('SSH access is ON');
        expect((await client.ssh()).enabled).toBe(false);
        await fs.access(world!.paths.sshState).then(
          () => expect.fail('ssh.json left behind'),
          () => undefined,
        );
      } finally {
        await new Promise((r) => taken.close(r));
      }
    });

    it('Enable SSH access: the menu and home screen show the principal; a fresh certificate for it logs in', async () => {
      await toSshItem();
      await tmux.keys('menu', 'Enter', 'Down', 'Enter'); // asked first: Yes
      const screen = await tmux.waitFor(
        'menu',
        'For support: user support, certificate principal appliance-',
      );
      const id = await readApplianceId(world!.paths.applianceId);
      principal = `appliance-${id}`;
      const lines = screen.split('\n');
      // What the technician reads out, whole on its 80-column row, under the banner.
      // Its end on the appliance's clock (UTC) and the time left; never a raw ISO time.
      expect(lines[1]).toMatch(
        /^ SSH access is ON until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(23 h 59 min left\)$/,
      );
      expect(lines[2]).toBe(` For support: user support, certificate principal ${principal}`);
      expect(lines.every((l) => l.length <= 80 && /^[\x20-\x7e]*$/.test(l))).toBe(true);
      expect(screen).toContain('Disable SSH access');
      await tmux.save('menu', 'ssh-login-menu-on');
      const home = await tmux.waitFor(
        'home',
        `For support: user support, certificate principal ${principal}`,
      );
      expect(home).toContain('SSH access is ON until');
      await tmux.save('home', 'ssh-login-home-on');

      // Support, told the principal, issues a certificate and logs in.
      const key = await newKey(keys, 'jdoe');
      support = { key, cert: await supportCert('jdoe', [principal]) };
      expect(await sshLogin(port, support.key, support.cert, ['id', '-un'])).toMatchObject({
        code: 0,
        stdout: 'support\n',
      });
      // ssh hands the command to the account's shell (bash) as one string.
      const pwd = await sshLogin(port, support.key, support.cert, ['cd && pwd && echo "$0 ok"']);
      expect(pwd).toMatchObject({ code: 0, stdout: '/var/lib/clgw-support\nbash ok\n' });
      // The audit trail: who (the key ID) with which certificate (its serial).
      expect(await fs.readFile(path.join(world!.paths.logDir, 'sshd.log'), 'utf8')).toMatch(
        /Accepted publickey for support from 127\.0\.0\.1 port \d+ ssh2: ED25519-CERT SHA256:\S+ ID jdoe@support \(serial \d+\) CA ED25519/,
      );
    });

    it('refused: an unsigned key, an expired certificate, another appliance’s, a 30-day one, another CA’s', async () => {
      const plain = await newKey(keys, 'plain');
      expect(await sshLogin(port, plain, undefined, ['id'])).toMatchObject(refused);

      const expired = await newKey(keys, 'expired');
      const expiredCert = await signDirectly(ca, expired, {
        principals: ['clgw-support', principal],
        validity: '20200101:20200102',
      });
      expect(await sshLogin(port, expired, expiredCert, ['id'])).toMatchObject(refused);

      const elsewhere = await newKey(keys, 'elsewhere');
      const elsewhereCert = await supportCert('elsewhere', ['appliance-zzzzzzzzzzzz']);
      expect(await sshLogin(port, elsewhere, elsewhereCert, ['id'])).toMatchObject(refused);

      const month = await newKey(keys, 'month');
      const monthCert = await signDirectly(ca, month, {
        principals: ['clgw-support', principal],
        validity: '+30d',
      });
      expect(await sshLogin(port, month, monthCert, ['id'])).toMatchObject(refused);

      const rogueDir = await fs.mkdtemp(path.join(keys, 'rogue-'));
      await generateSupportCa(rogueDir);
      const rogue = await newKey(keys, 'rogue');
      const rogueCert = await signDirectly(path.join(rogueDir, 'support-ca'), rogue, {
        principals: ['clgw-support', principal],
        validity: '+1h',
      });
      expect(await sshLogin(port, rogue, rogueCert, ['id'])).toMatchObject(refused);

      // Support's own certificate, for another account: refused too (AllowUsers support).
      expect(await sshLogin(port, support.key, support.cert, ['id'], 'root')).toMatchObject(refused);
      // …while the server still lets support in.
      expect((await sshLogin(port, support.key, support.cert, ['true'])).code).toBe(0);
    });

    it('Disable SSH access: the open session ends and nobody gets in', async () => {
      const session = spawn(
        'ssh',
        sshArgs(port, support.key, support.cert, ['echo', 'in;', 'exec', 'sleep', '300']),
      );
      let out = '';
      session.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const ended = new Promise<number | null>((r) => session.once('exit', (code) => r(code)));
      await until(async () => (out.includes('in') ? true : undefined), 'the session to start', 15_000);

      await toSshItem();
      await tmux.keys('menu', 'Enter');
      await tmux.waitFor('menu', 'Disable SSH access now?');
      await tmux.keys('menu', 'Down', 'Enter'); // Yes
      await tmux.waitFor('menu', 'SSH access disabled.');
      const screen = await tmux.waitFor('menu', 'Enable SSH access');
      expect(screen).not.toContain('For support:');
      await tmux.save('menu', 'ssh-login-menu-off');
      expect(
        await Promise.race([ended, new Promise((r) => setTimeout(() => r('still running'), 10_000))]),
      ).toBe(255);
      expect(await greeting(port)).toBe('ECONNREFUSED');
      expect(await sshLogin(port, support.key, support.cert, ['id'])).toMatchObject({
        code: 255,
        stderr: expect.stringContaining('Connection refused'),
      });
      await until(
        async () => !(await tmux.capture('home')).includes('For support:'),
        'the home screen’s support line to go',
      );
    });
  },
);
