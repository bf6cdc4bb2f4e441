import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseCompat } from '@clgw/core/release/parse.js';
import { verifyCompatSignature } from '@clgw/core/release/signature.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildStandin } from '../../../scripts/standins.js';

/** The `clgw-release` command run as a real process (TypeScript source through tsx). */

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const cli = path.join(repo, 'image/src/release/cli.ts');
// tsx's loader by absolute URL: `--import tsx` would be resolved from the (temporary) cwd.
const tsx = pathToFileURL(path.join(repo, 'node_modules/tsx/dist/loader.mjs')).href;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function clgwRelease(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', tsx, cli, ...args],
      { cwd, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-release-cli-'));
  await fs.writeFile(path.join(dir, 'boot.img'), Buffer.alloc(4096, 0xb0));
  await fs.writeFile(path.join(dir, 'root.img'), Buffer.alloc(65536 * 3 + 5, 0x7e));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('clgw-release', () => {
  it('generates keys, builds a release tree from two files, and verifies it', async () => {
    const keys = await clgwRelease(['keys', '--out', 'keys'], dir);
    expect(keys.stderr).toBe('');
    expect(keys.code).toBe(0);
    expect(keys.stdout).toMatch(/SHA-256 fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}/);
    // The CA's private keys apart from the signing key (keys-ca, by default), to be kept offline.
    expect(keys.stdout).toContain(`the CA's private keys written to ${path.join(dir, 'keys-ca')}`);
    // Beside the signing key: the certificates and the support CA's public key (SSH), no CA key.
    expect((await fs.readdir(path.join(dir, 'keys'))).sort()).toEqual([
      'intermediate.pem',
      'root.pem',
      'signing.key',
      'signing.pem',
      'support-ca.pub',
    ]);
    // The support CA's private key with the release CA's.
    expect((await fs.readdir(path.join(dir, 'keys-ca'))).sort()).toEqual([
      'intermediate.key',
      'root.key',
      'support-ca',
      'support-ca.pub',
    ]);

    const build = await clgwRelease(
      [
        'build',
        '--keys',
        'keys',
        '--tree',
        'tree',
        '--version',
        '1.1.0',
        '--platform',
        'virtual',
        '--platform',
        'physical',
        '--boot',
        'boot.img',
        '--root',
        'root.img',
        '--min-source',
        '1.0.0',
        '--expires-days',
        '14',
      ],
      dir,
    );
    expect(build.stderr).toBe('');
    expect(build.code).toBe(0);
    expect(build.stdout).toContain('published 1.1.0 for virtual, physical');
    expect(build.stdout).toContain('serial 1');
    expect(build.stdout).toContain('root chunk index: releases/1.1.0/root.img.idx');
    expect(build.stdout).toContain('OS patch level: not stated (the root image declares none)');
    expect(build.stdout).toContain('root chunk pack: releases/1.1.0/root.img.pack');
    expect((await fs.readdir(path.join(dir, 'tree/releases/1.1.0'))).sort()).toEqual([
      'boot.img',
      'boot.img.idx',
      'boot.img.pack',
      'root.img',
      'root.img.idx',
      'root.img.pack',
    ]);

    const verify = await clgwRelease(['verify', '--roots', 'keys/root.pem', '--tree', 'tree'], dir);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    expect(verify.stdout).toContain('compat.yaml: valid, schema 1, serial 1');
    expect(verify.stdout).toContain('signed by O=clgw development, CN=clgw development release signing');
    expect(verify.stdout).toContain('physical: 1.1.0 (updates from 1.0.0 or later)');
    expect(verify.stdout).toContain('virtual: 1.1.0');
    expect(verify.stdout).toContain(`root: releases/1.1.0/root.img ${65536 * 3 + 5} bytes`);
    expect(verify.stdout).toContain('artifacts: 2 files present with matching size and SHA-256');
    expect(verify.stdout).toContain('chunk indexes: 2 present and matching their artifacts');

    // The tree is what an appliance reads: check it with the agent's own code as well.
    const document = await fs.readFile(path.join(dir, 'tree/compat.yaml'));
    const signed = verifyCompatSignature({
      document,
      envelope: await fs.readFile(path.join(dir, 'tree/compat.yaml.sig')),
      trustedRootsPem: await fs.readFile(path.join(dir, 'keys/root.pem'), 'utf8'),
      now: Date.now(),
    });
    expect(signed.chain).toHaveLength(3);
    const compat = parseCompat(document);
    expect(Date.parse(compat.expires) - Date.parse(compat.published)).toBe(14 * 86_400_000);

    // A second build bumps the serial.
    const again = await clgwRelease(
      [
        'build',
        '--keys',
        'keys',
        '--tree',
        'tree',
        '--version',
        '1.2.0',
        '--platform',
        'kvm',
        '--boot',
        'boot.img',
        '--root',
        'root.img',
        '--min-source',
        '1.1.0',
      ],
      dir,
    );
    expect(again.code).toBe(0);
    const verify2 = await clgwRelease(['verify', '--roots', 'keys/root.pem', '--tree', 'tree'], dir);
    expect(verify2.stdout).toContain('serial 2');
    expect(verify2.stdout).toContain('kvm: 1.2.0');
    expect(verify2.stdout).toContain('physical: 1.1.0');
  });

  it('fails verification with the reason when the tree does not check out', async () => {
    await clgwRelease(['keys', '--out', 'other-keys'], dir);
    const foreign = await clgwRelease(['verify', '--roots', 'other-keys/root.pem', '--tree', 'tree'], dir);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/^clgw-release: CHAIN_INVALID: .*was not issued by a pinned root/);

    await fs.appendFile(path.join(dir, 'tree/releases/1.1.0/boot.img'), 'x');
    const altered = await clgwRelease(['verify', '--roots', 'keys/root.pem', '--tree', 'tree'], dir);
    expect(altered.code).toBe(1);
    expect(altered.stderr).toContain('HASH_MISMATCH');
    expect(altered.stderr).toContain('boot.img');
    const skipped = await clgwRelease(
      ['verify', '--roots', 'keys/root.pem', '--tree', 'tree', '--skip-artifacts'],
      dir,
    );
    expect(skipped.code).toBe(0);
    expect(skipped.stdout).toContain('artifacts: not checked');
  });

  it('signs a file', async () => {
    await fs.writeFile(path.join(dir, 'note.yaml'), 'hello: world\n');
    const sign = await clgwRelease(['sign', '--keys', 'keys', 'note.yaml'], dir);
    expect(sign.code).toBe(0);
    const envelope = JSON.parse(await fs.readFile(path.join(dir, 'note.yaml.sig'), 'utf8'));
    expect(envelope).toMatchObject({ format: 'clgw-sig-v1', algorithm: 'RSA-PSS-SHA256' });
    expect(envelope.chain).toHaveLength(2);
  });

  it('refuses to overwrite existing keys', async () => {
    const before = await fs.readFile(path.join(dir, 'keys/root.pem'), 'utf8');
    const again = await clgwRelease(['keys', '--out', 'keys'], dir);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('NOT_ALLOWED');
    expect(await fs.readFile(path.join(dir, 'keys/root.pem'), 'utf8')).toBe(before);
  });

  it.each([
    [[], 'a command is needed'],
    [['publish'], 'unknown command "publish"'],
    [['keys'], '--out is required'],
    [['keys', '--out', 'x', '--colour'], "Unknown option '--colour'"],
    [
      [
        'build',
        '--keys',
        'keys',
        '--tree',
        't',
        '--version',
        '1.0.0',
        '--boot',
        'b',
        '--root',
        'r',
        '--min-source',
        '1.0.0',
      ],
      '--platform is required',
    ],
    [['build', '--platform', 'xen'], '--platform xen: expected one of physical, virtual, kvm'],
    [
      [
        'build',
        '--keys',
        'keys',
        '--tree',
        't',
        '--version',
        '1.0.0',
        '--platform',
        'kvm',
        '--boot',
        'b',
        '--root',
        'r',
        '--min-source',
        '1.0.0',
        '--serial',
        'ten',
      ],
      '--serial ten: expected a whole number',
    ],
    [['sign', '--keys', 'keys'], 'sign needs exactly one FILE'],
    [['verify', '--tree', 'tree'], '--roots is required'],
  ])('exits 2 with usage for %j', async (args, message) => {
    const run = await clgwRelease(args as string[], dir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain('usage:');
    for (const line of run.stderr.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
  });

  it('exits 1 naming the problem for a bad version', async () => {
    const run = await clgwRelease(
      [
        'build',
        '--keys',
        'keys',
        '--tree',
        'tree',
        '--version',
        'v2',
        '--platform',
        'kvm',
        '--boot',
        'boot.img',
        '--root',
        'root.img',
        '--min-source',
        '1.0.0',
      ],
      dir,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('INVALID_REQUEST: version "v2" is not a strict semantic version');
  });

  it('publishes a container set for a platform, keeping its OS release, and refuses bad input', async () => {
    // The tree from the first test publishes an OS release for kvm (and more).
    const tunnel = await buildStandin({ service: 'tunnel', version: '1.1.0', out: dir });
    const micloud = await buildStandin({ service: 'micloud', version: '1.1.0', out: dir });
    await fs.copyFile(tunnel.file, path.join(dir, 'tunnel.tar'));
    await fs.copyFile(micloud.file, path.join(dir, 'micloud.tar'));
    const before = parseCompat(await fs.readFile(path.join(dir, 'tree/compat.yaml')));
    /** `clgw-release containers` for kvm with these `--container` specs, then `more`. */
    const containers = (specs: string[], ...more: string[]) =>
      clgwRelease(
        [
          ...['containers', '--keys', 'keys', '--tree', 'tree', '--platform', 'kvm'],
          ...specs.flatMap((spec) => ['--container', spec]),
          ...more,
        ],
        dir,
      );
    const publish = (...more: string[]) =>
      containers(
        [
          `tunnel=1.1.0.01-296,${tunnel.reference},tunnel.tar`,
          `micloud=1.1.0.01-296,${micloud.reference},micloud.tar`,
        ],
        ...more,
      );
    const run = await publish();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('published 2 container(s) for kvm');
    expect(run.stdout).toContain(`    ID ${tunnel.imageId}\n`);
    expect(
      Math.max(
        ...run.stdout
          .split('\n')
          .filter((l) => l.startsWith('    ID '))
          .map((l) => l.length),
      ),
    ).toBeLessThanOrEqual(80);
    const after = parseCompat(await fs.readFile(path.join(dir, 'tree/compat.yaml')));
    expect(after.serial).toBe(before.serial + 1);
    expect(after.platforms.kvm?.release).toEqual(before.platforms.kvm?.release);
    expect(
      after.platforms.kvm?.containers.map((c) => [c.name, c.archive.path, c.archive.size, c.imageId]),
    ).toEqual([
      ['tunnel', 'containers/tunnel/1.1.0.01-296.tar', tunnel.size, tunnel.imageId],
      ['micloud', 'containers/micloud/1.1.0.01-296.tar', micloud.size, micloud.imageId],
    ]);
    // For agents before the field: the same set, the IDs left out (the archives still checked).
    const older = await publish('--no-image-id');
    expect(older.code).toBe(0);
    expect(older.stdout).toContain('    ID not stated (--no-image-id)');
    const plain = parseCompat(await fs.readFile(path.join(dir, 'tree/compat.yaml')));
    expect(plain.platforms.kvm?.containers.map((c) => c.imageId)).toEqual([undefined, undefined]);
    const roots = await fs.readFile(path.join(dir, 'keys/root.pem'), 'utf8');
    verifyCompatSignature({
      document: await fs.readFile(path.join(dir, 'tree/compat.yaml')),
      envelope: await fs.readFile(path.join(dir, 'tree/compat.yaml.sig')),
      trustedRootsPem: roots,
      now: Date.now(),
    });

    // The same version with other content is refused; so is an unknown container name.
    await fs.copyFile(micloud.file, path.join(dir, 'tunnel.tar'));
    const again = await containers(['tunnel=1.1.0.01-296,r/t:1,tunnel.tar']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(
      'containers/tunnel/1.1.0.01-296.tar is already published with other content',
    );
    const unknown = await containers(['pbx=1,r/p:1,tunnel.tar']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('NAME is one of tunnel, micloud, freeswitch');
    // An archive that holds another image than the one it is published as: refused, nothing written.
    const compatBefore = await fs.readFile(path.join(dir, 'tree/compat.yaml'));
    const other = await containers([`tunnel=1.2.0,${tunnel.reference},micloud.tar`]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(
      `micloud.tar holds ${micloud.reference}, not ${tunnel.reference} as tunnel 1.2.0 is published`,
    );
    expect(await fs.readFile(path.join(dir, 'tree/compat.yaml'))).toEqual(compatBefore);
    await expect(fs.access(path.join(dir, 'tree/containers/tunnel/1.2.0.tar'))).rejects.toThrow();
  });

  it('sets, raises and clears a staged rollout, re-signed with the next serial', async () => {
    // The tree from the first test publishes 1.2.0 for kvm.
    const rollout = (...args: string[]) =>
      clgwRelease(['rollout', '--keys', 'keys', '--tree', 'tree', '--platform', 'kvm', ...args], dir);
    const read = async () => parseCompat(await fs.readFile(path.join(dir, 'tree/compat.yaml')));
    const serial = (await read()).serial;

    const set = await rollout('--percent', '10');
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    expect(set.stdout).toContain('staged rollout set for kvm');
    expect(set.stdout).toContain('kvm: 1.2.0 offered to 10 % (salt 1.2.0), was every appliance');
    expect((await read()).platforms.kvm?.release.rollout).toEqual({ percent: 10, salt: '1.2.0' });
    expect((await read()).serial).toBe(serial + 1);
    // (The test that made a tree not check out left an artifact changed: the document only.)
    const verify = await clgwRelease(
      ['verify', '--roots', 'keys/root.pem', '--tree', 'tree', '--skip-artifacts'],
      dir,
    );
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain('staged rollout: offered to 10 % of the appliances (salt 1.2.0)');

    // Raising it keeps the salt; a lower percentage or another salt is said to take it back.
    expect((await rollout('--percent', '12.5')).stdout).toContain('offered to 12.5 % (salt 1.2.0), was 10 %');
    expect((await rollout('--percent', '5')).stdout).toContain('a lower percentage holds it back');
    expect((await rollout('--percent', '5', '--salt', 'b')).stdout).toContain('a new salt draws new cohorts');
    const cleared = await rollout('--clear');
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toContain('kvm: 1.2.0 offered to every appliance, was 5 % (salt b)');
    expect((await read()).platforms.kvm?.release.rollout).toBeUndefined();
    expect((await read()).serial).toBe(serial + 5);

    for (const [args, message] of [
      [[], 'rollout needs either --percent PERCENT or --clear'],
      [['--percent', '10', '--clear'], 'rollout needs either --percent PERCENT or --clear'],
      [['--percent', '100.5'], '--percent 100.5: expected a percentage from 0 to 100'],
      [['--percent', '1e1'], '--percent 1e1: expected a percentage from 0 to 100'],
      [['--clear', '--salt', 'x'], '--salt goes with --percent, not --clear'],
    ] as const) {
      const run = await rollout(...args);
      expect(run.code, message).toBe(2);
      expect(run.stderr).toContain(message);
    }
    const badSalt = await rollout('--percent', '10', '--salt', 'two words');
    expect(badSalt.code).toBe(1);
    expect(badSalt.stderr).toContain(
      'COMPAT_INVALID: tree/compat.yaml is invalid: platforms.kvm.release.rollout.salt: expected 1 to 64 printable characters',
    );
    expect((await read()).serial).toBe(serial + 5);
  });

  it('withdraws a release and lifts the withdrawal, re-signed with the next serial', async () => {
    const withdraw = (...args: string[]) =>
      clgwRelease(['withdraw', '--keys', 'keys', '--tree', 'tree', '--platform', 'kvm', ...args], dir);
    const read = async () => parseCompat(await fs.readFile(path.join(dir, 'tree/compat.yaml')));
    const serial = (await read()).serial;

    const done = await withdraw('--reason', 'calls drop on SIP trunks');
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    expect(done.stdout).toContain('withdrawal published for kvm');
    expect(done.stdout).toContain('kvm: 1.2.0 withdrawn (calls drop on SIP trunks)');
    expect((await read()).platforms.kvm?.release.withdrawn).toEqual({ reason: 'calls drop on SIP trunks' });
    expect((await read()).serial).toBe(serial + 1);
    const verify = await clgwRelease(
      ['verify', '--roots', 'keys/root.pem', '--tree', 'tree', '--skip-artifacts'],
      dir,
    );
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toContain('withdrawn: calls drop on SIP trunks');

    const undone = await withdraw('--undo');
    expect(undone.code).toBe(0);
    expect(undone.stdout).toContain('kvm: 1.2.0 offered again');
    expect((await read()).platforms.kvm?.release.withdrawn).toBeUndefined();
    expect((await read()).serial).toBe(serial + 2);

    for (const args of [[], ['--reason', 'x', '--undo']]) {
      const run = await withdraw(...args);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('withdraw needs either --reason TEXT or --undo');
    }
    const bad = await withdraw('--reason', ' padded');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(
      'COMPAT_INVALID: tree/compat.yaml is invalid: platforms.kvm.release.withdrawn.reason',
    );
    expect((await read()).serial).toBe(serial + 2);
  });
});
