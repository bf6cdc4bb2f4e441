/**
 * `clgw-release keys` makes the support CA with the release keys — its private key in the CA
 * directory, only its public key beside the signing key — and
 * `clgw-release support-cert` issues support's SSH certificates with it (the built CLI as a
 * process, the real ssh-keygen): principals clgw-support plus the appliance's, 1 to 24 hours,
 * the pty permission only (no forwarding); everything else refused with the reason.
 */
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';
import { newKey, run, sshToolsMissing } from '../../support/ssh.js';

const CLI = path.join(REPO, 'image/dist/release/cli.js');
const skip = sshToolsMissing();
if (skip) recordSkip('test/integration/release/support-cert.test.ts', skip);

let dir: string;
const release = (args: string[]) => run(process.execPath, [CLI, ...args]);

describe.skipIf(skip)('clgw-release keys / support-cert', () => {
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-support-cert-'));
  });

  afterAll(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it("keys: the support CA's private key with the CA's (0600), only its public key beside the signing key", async () => {
    const keys = await release(['keys', '--out', path.join(dir, 'keys')]);
    expect(keys.stderr).toBe('');
    expect(keys.code).toBe(0);
    expect(keys.stdout).toContain(
      `support CA (signs support's SSH certificates): ${dir}/keys-ca/support-ca\n`,
    );
    expect(keys.stdout).toContain(`  public key (the images trust it): ${dir}/keys/support-ca.pub\n`);
    expect(keys.stdout).toMatch(/ {2}fingerprint SHA256:\S{43}\n/);
    expect((await fs.stat(path.join(dir, 'keys-ca/support-ca'))).mode & 0o777).toBe(0o600);
    const pub = await fs.readFile(path.join(dir, 'keys/support-ca.pub'), 'utf8');
    expect(pub).toMatch(/^ssh-ed25519 AAAA\S+ clgw development support CA\n$/);
    expect(await fs.readFile(path.join(dir, 'keys-ca/support-ca.pub'), 'utf8')).toBe(pub);
    // The private key and the public key it was made with belong together.
    const derived = await run('ssh-keygen', ['-y', '-f', path.join(dir, 'keys-ca/support-ca')]);
    expect(pub.startsWith(derived.stdout.trim())).toBe(true);
    expect((await fs.readdir(path.join(dir, 'keys'))).filter((f) => f.startsWith('support-ca'))).toEqual([
      'support-ca.pub',
    ]);
    for (const d of ['keys', 'keys-ca'])
      expect((await fs.readdir(path.join(dir, d))).filter((f) => f.startsWith('.'))).toEqual([]);
    // A support CA alone is enough to refuse: replacing it locks support out of every appliance.
    await fs.mkdir(path.join(dir, 'ca-only'));
    await fs.copyFile(path.join(dir, 'keys/support-ca.pub'), path.join(dir, 'ca-only/support-ca.pub'));
    const again = await release(['keys', '--out', path.join(dir, 'ca-only')]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('NOT_ALLOWED');
    expect(again.stderr).toContain('refusing to replace the support CA');
    // The same for one in the CA directory.
    await fs.mkdir(path.join(dir, 'other-ca'));
    await fs.copyFile(path.join(dir, 'keys-ca/support-ca'), path.join(dir, 'other-ca/support-ca'));
    const inCa = await release([
      'keys',
      '--out',
      path.join(dir, 'other'),
      '--ca-out',
      path.join(dir, 'other-ca'),
    ]);
    expect(inCa.code).toBe(1);
    expect(inCa.stderr).toContain(
      `${dir}/other-ca/support-ca already exists; refusing to replace the support CA`,
    );
  });

  it('keys --force: a support CA private key an older layout left beside the signing key goes', async () => {
    const out = path.join(dir, 'old');
    expect((await release(['keys', '--out', out, '--ca-out', path.join(dir, 'old-ca')])).code).toBe(0);
    await fs.writeFile(path.join(out, 'support-ca'), 'an older layout\n', { mode: 0o600 });
    const forced = await release(['keys', '--out', out, '--ca-out', path.join(dir, 'old-ca'), '--force']);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect(existsSync(path.join(out, 'support-ca'))).toBe(false);
    expect(existsSync(path.join(dir, 'old-ca/support-ca'))).toBe(true);
  });

  it('support-cert: clgw-support and the given principal, N hours from 5 minutes ago, the pty permission only', async () => {
    const key = await newKey(dir, 'jdoe');
    const issued = await release([
      'support-cert',
      '--ca',
      path.join(dir, 'keys-ca/support-ca'),
      '--principal',
      'appliance-k3m9x2pq7rtw',
      '--hours',
      '8',
      '--identity',
      'jdoe@mitel ticket 4711',
      `${key}.pub`,
    ]);
    expect(issued.stderr).toBe('');
    expect(issued.code).toBe(0);
    expect(issued.stdout).toMatch(
      new RegExp(
        `^support certificate written to ${key}-cert\\.pub\\n {2}principals clgw-support, appliance-k3m9x2pq7rtw\\n {2}valid from \\S+ to \\S+\\n {2}key ID "jdoe@mitel ticket 4711", serial \\d+\\n$`,
      ),
    );
    const shown = (await run('ssh-keygen', ['-L', '-f', `${key}-cert.pub`])).stdout;
    expect(shown).toContain('Key ID: "jdoe@mitel ticket 4711"');
    expect(shown).toMatch(/Principals: \n\s+clgw-support\n\s+appliance-k3m9x2pq7rtw\n/);
    // The pty alone: no port, agent or X11 forwarding, no user rc (least privilege).
    expect(shown).toMatch(/Extensions: \n\s+permit-pty\n\s*$/);
    expect(shown).not.toMatch(/permit-(port|agent|X11)-forwarding|permit-user-rc/);
    const [, from, to] = /Valid: from (\S+) to (\S+)/.exec(shown) ?? [];
    expect((Date.parse(`${to}Z`) - Date.parse(`${from}Z`)) / 60_000).toBe(8 * 60 + 5);
  });

  it.each([
    [['--hours', '25'], '--hours 25: a support certificate is valid for 1 to 24 whole hours'],
    [['--hours', '0'], '--hours 0: a support certificate is valid for 1 to 24 whole hours'],
    [['--hours', '1.5'], '--hours 1.5: expected a whole number'],
    [['--principal', 'a,b', '--hours', '1'], '--principal "a,b": lowercase letters'],
    [['--principal', '*', '--hours', '1'], '--principal "*": lowercase letters'],
  ])('support-cert %j: exit 2 with the reason', async (args, message) => {
    const key = await newKey(dir, `bad-${Math.random().toString(16).slice(2)}`);
    const r = await release([
      'support-cert',
      '--ca',
      path.join(dir, 'keys-ca/support-ca'),
      ...(args.includes('--principal') ? [] : ['--principal', 'appliance-k3m9x2pq7rtw']),
      ...args,
      `${key}.pub`,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    await expect(fs.access(`${key}-cert.pub`)).rejects.toThrow();
  });

  it('support-cert without a principal, or without a readable key: exit 2', async () => {
    const ca = path.join(dir, 'keys-ca/support-ca');
    const noPrincipal = await release([
      'support-cert',
      '--ca',
      ca,
      '--hours',
      '1',
      path.join(dir, 'jdoe.pub'),
    ]);
    expect(noPrincipal.code).toBe(2);
    expect(noPrincipal.stderr).toContain('--principal is required');
    const missing = await release([
      'support-cert',
      '--ca',
      ca,
      '--principal',
      'appliance-k3m9x2pq7rtw',
      '--hours',
      '1',
      path.join(dir, 'nobody.pub'),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`cannot read the public key ${dir}/nobody.pub`);
  });
});
