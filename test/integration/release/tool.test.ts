import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { parseCompat } from '@clgw/core/release/parse.js';
import type { ChunkIndexRef } from '@clgw/core/release/schema.js';
import { verifyCompatSignature } from '@clgw/core/release/signature.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideUpdate } from '../../../agent/src/release/policy.js';
import { buildRelease, renderCompat } from '../../../image/src/release/build.js';
import {
  type DevKeys,
  generateDevKeys,
  KEY_FILES,
  loadKeys,
  saveKeys,
} from '../../../image/src/release/keys.js';
import { signDocument } from '../../../image/src/release/sign.js';
import { verifyTree } from '../../../image/src/release/verify.js';
import { buildReleaseImages } from '../../../scripts/sim/images.js';

let dir: string;
let keys: DevKeys;
let boot: string;
let root: string;
let bootBytes: Buffer;
let rootBytes: Buffer;
const NOW = Date.UTC(2026, 10, 20, 10, 0, 0, 456);

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-release-tool-'));
  keys = generateDevKeys({ now: NOW, bits: 2048 });
  bootBytes = randomBytes(300_000);
  // Larger than one stream chunk (64 KiB) many times over, so hashing must follow the stream; part
  // incompressible, part zeros, part text, so the chunk pack holds both stored and deflated chunks.
  rootBytes = Buffer.concat([
    randomBytes(3 * 1024 * 1024),
    Buffer.alloc(1024 * 1024),
    Buffer.from('a line of a text file in a root filesystem\n'.repeat(24_000)).subarray(0, 1024 * 1024 + 7),
  ]);
  boot = path.join(dir, 'boot.img');
  root = path.join(dir, 'root.img');
  await fs.writeFile(boot, bootBytes);
  await fs.writeFile(root, rootBytes);
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function freshTree(name: string): Promise<string> {
  const tree = path.join(dir, name);
  await fs.mkdir(tree);
  return tree;
}

describe('buildRelease', () => {
  it('publishes images and a signed compat.yaml that an appliance accepts', async () => {
    const tree = await freshTree('first');
    const built = await buildRelease({
      tree,
      keys,
      version: '1.0.0',
      platforms: ['virtual', 'kvm'],
      boot,
      root,
      minSourceVersion: '0.9.0',
      now: NOW,
    });
    expect(built.compat.serial).toBe(1);
    expect(built.compat.published).toBe('2026-11-20T10:00:00Z');
    expect(built.compat.expires).toBe('2026-12-20T10:00:00Z');
    const index = await fs.readFile(path.join(tree, 'releases/1.0.0/root.img.idx'));
    const pack = await fs.readFile(path.join(tree, 'releases/1.0.0/root.img.pack'));
    expect(built.artifacts.root).toEqual({
      path: 'releases/1.0.0/root.img',
      size: rootBytes.length,
      sha256: sha(rootBytes),
      index: {
        path: 'releases/1.0.0/root.img.idx',
        chunkSize: 4096,
        size: index.length,
        sha256: sha(index),
        pack: { path: 'releases/1.0.0/root.img.pack', size: pack.length, sha256: sha(pack) },
      },
    });
    // The index: its header, then per chunk 8 bytes of SHA-256 and the stored length, deflated.
    expect(index.subarray(0, 8).toString()).toBe('CLGWIDX2');
    const entries = inflateRawSync(index.subarray(20));
    const chunks = Math.ceil(rootBytes.length / 4096);
    expect(entries.length).toBe(12 * chunks);
    // The pack: every chunk at the offset the lengths before it make, deflated when that is smaller.
    let at = 0;
    const rebuilt: Buffer[] = [];
    for (let i = 0; i < chunks; i++) {
      const chunk = rootBytes.subarray(i * 4096, (i + 1) * 4096);
      expect(entries.subarray(i * 12, i * 12 + 8)).toEqual(
        createHash('sha256').update(chunk).digest().subarray(0, 8),
      );
      const stored = pack.subarray(at, at + entries.readUInt32BE(i * 12 + 8));
      rebuilt.push(stored.length === chunk.length ? stored : inflateRawSync(stored));
      at += stored.length;
    }
    expect(at).toBe(pack.length);
    expect(Buffer.concat(rebuilt).equals(rootBytes)).toBe(true);
    expect(pack.length).toBeLessThan(rootBytes.length * 0.7);
    expect(built.artifacts.boot.sha256).toBe(sha(bootBytes));
    expect(sha(await fs.readFile(path.join(tree, 'releases/1.0.0/root.img')))).toBe(sha(rootBytes));
    // No temp files left behind.
    expect((await fs.readdir(path.join(tree, 'releases/1.0.0'))).sort()).toEqual([
      'boot.img',
      'boot.img.idx',
      'boot.img.pack',
      'root.img',
      'root.img.idx',
      'root.img.pack',
    ]);

    const document = await fs.readFile(path.join(tree, 'compat.yaml'));
    const envelope = await fs.readFile(path.join(tree, 'compat.yaml.sig'));
    const signed = verifyCompatSignature({
      document,
      envelope,
      trustedRootsPem: keys.root.certPem,
      now: NOW,
    });
    expect(signed.signer).toContain('release signing');
    const compat = parseCompat(document);
    expect(Object.keys(compat.platforms)).toEqual(['virtual', 'kvm']);
    expect(document.toString()).not.toMatch(/[&*]a\d/); // shared objects were not turned into aliases
    expect(decideUpdate(compat, { platform: 'kvm', runningVersion: '0.9.0', now: NOW })).toMatchObject({
      kind: 'update',
      release: { version: '1.0.0' },
    });
  });

  it("states the root image's own OS patch level, read from the image's os-release", async () => {
    // Random bytes above declare none, and their compat.yaml says none (checked by toEqual there).
    const images = await buildReleaseImages({
      version: '1.1.0',
      outDir: path.join(dir, 'sim'),
      payloadMiB: 1,
    });
    const tree = await freshTree('patch-level');
    const built = await buildRelease({
      tree,
      keys,
      version: '1.1.0',
      platforms: ['physical'],
      boot: images.boot,
      root: images.root,
      minSourceVersion: '1.0.0',
      now: NOW,
    });
    expect(built.compat.platforms.physical?.release.osPatchLevel).toBe('2025-11-01');
    expect(
      parseCompat(await fs.readFile(path.join(tree, 'compat.yaml'))).platforms.physical?.release,
    ).toMatchObject({ version: '1.1.0', osPatchLevel: '2025-11-01' });
  });

  it('keeps other platforms, bumps the serial and re-signs on the next release', async () => {
    const tree = await freshTree('second');
    const base = { tree, keys, boot, root, now: NOW };
    await buildRelease({
      ...base,
      version: '1.0.0',
      platforms: ['virtual', 'kvm', 'physical'],
      minSourceVersion: '1.0.0',
    });
    const next = await buildRelease({
      ...base,
      version: '1.1.0',
      platforms: ['kvm'],
      minSourceVersion: '1.0.0',
      expiresInDays: 7,
    });
    expect(next.compat.serial).toBe(2);
    expect(next.compat.expires).toBe('2026-11-27T10:00:00Z');
    expect(next.compat.platforms.kvm?.release.version).toBe('1.1.0');
    expect(next.compat.platforms.virtual?.release.version).toBe('1.0.0');
    expect(Object.keys(next.compat.platforms)).toEqual(['physical', 'virtual', 'kvm']);
    const tree2 = await verifyTree({ tree, trustedRootsPem: keys.root.certPem, now: NOW });
    expect(tree2.compat.serial).toBe(2);
    expect(tree2.artifacts).toHaveLength(6);

    const explicit = await buildRelease({
      ...base,
      version: '1.1.0',
      platforms: ['virtual'],
      minSourceVersion: '1.0.0',
      serial: 10,
    });
    expect(explicit.compat.serial).toBe(10);
  });

  it('refuses a serial that does not increase and a version that goes backwards', async () => {
    const tree = await freshTree('refusals');
    const base = { tree, keys, boot, root, now: NOW, minSourceVersion: '1.0.0' };
    await buildRelease({ ...base, version: '1.2.0', platforms: ['virtual'], serial: 5 });
    await expect(
      buildRelease({ ...base, version: '1.3.0', platforms: ['virtual'], serial: 5 }),
    ).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      message: expect.stringContaining('serial 5 does not exceed serial 5'),
    });
    await expect(buildRelease({ ...base, version: '1.1.0', platforms: ['virtual'] })).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      message: expect.stringContaining('already publishes 1.2.0 for virtual'),
    });
    // The refused builds changed nothing.
    expect((await verifyTree({ tree, trustedRootsPem: keys.root.certPem, now: NOW })).compat.serial).toBe(5);
  });

  it('refuses to overwrite an image another platform still points at with different content', async () => {
    const tree = await freshTree('republish');
    const base = { tree, keys, now: NOW, minSourceVersion: '1.0.0', version: '1.4.0' };
    await buildRelease({ ...base, boot, root, platforms: ['virtual'] });
    // Same images for another platform: fine, both entries point at the same files.
    const same = await buildRelease({ ...base, boot, root, platforms: ['kvm'] });
    expect(same.compat.platforms.kvm?.release.artifacts).toEqual(
      same.compat.platforms.virtual?.release.artifacts,
    );
    const otherRoot = path.join(dir, 'other-root.img');
    await fs.writeFile(otherRoot, randomBytes(1000));
    await expect(
      buildRelease({ ...base, boot, root: otherRoot, platforms: ['physical'] }),
    ).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
      message: expect.stringContaining(
        'releases/1.4.0/root.img is already published for virtual with other content',
      ),
    });
    // Replacing every platform that uses the path is a plain rebuild and allowed.
    const rebuilt = await buildRelease({ ...base, boot, root: otherRoot, platforms: ['virtual', 'kvm'] });
    expect(rebuilt.artifacts.root.size).toBe(1000);
    await verifyTree({ tree, trustedRootsPem: keys.root.certPem, now: NOW });
  });

  it('refuses bad options before touching the tree', async () => {
    const tree = await freshTree('bad-options');
    const base = { tree, keys, boot, root, now: NOW, platforms: ['virtual' as const] };
    await expect(buildRelease({ ...base, version: 'v1', minSourceVersion: '1.0.0' })).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
    });
    await expect(
      buildRelease({ ...base, version: '1.0.0', minSourceVersion: '1.1.0' }),
    ).rejects.toMatchObject({
      message: expect.stringContaining('above the release version'),
    });
    await expect(
      buildRelease({
        ...base,
        version: '1.0.0',
        minSourceVersion: '1.0.0',
        boot: path.join(dir, 'nope.img'),
      }),
    ).rejects.toMatchObject({ message: expect.stringContaining('nope.img') });
    const empty = path.join(dir, 'empty.img');
    await fs.writeFile(empty, '');
    await expect(
      buildRelease({ ...base, version: '1.0.0', minSourceVersion: '1.0.0', root: empty }),
    ).rejects.toMatchObject({ message: expect.stringContaining('is empty') });
    expect(await fs.readdir(tree)).toEqual([]);
  });
});

describe('verifyTree', () => {
  it('catches an altered artifact, an altered document and a foreign root', async () => {
    const tree = await freshTree('tamper');
    await buildRelease({
      tree,
      keys,
      boot,
      root,
      now: NOW,
      version: '2.0.0',
      platforms: ['physical'],
      minSourceVersion: '1.0.0',
    });
    const rootImg = path.join(tree, 'releases/2.0.0/root.img');
    const original = await fs.readFile(rootImg);
    const altered = Buffer.from(original);
    altered[1000]! ^= 0xff;
    await fs.writeFile(rootImg, altered);
    await expect(verifyTree({ tree, trustedRootsPem: keys.root.certPem, now: NOW })).rejects.toMatchObject({
      code: 'HASH_MISMATCH',
      message: expect.stringContaining(rootImg),
    });
    await fs.writeFile(rootImg, original.subarray(0, 10));
    await expect(verifyTree({ tree, trustedRootsPem: keys.root.certPem, now: NOW })).rejects.toMatchObject({
      message: expect.stringContaining(`has 10 bytes; compat.yaml says ${original.length}`),
    });
    await fs.writeFile(rootImg, original);
    expect((await verifyTree({ tree, trustedRootsPem: keys.root.certPem, now: NOW })).signer).toContain(
      'signing',
    );

    const other = generateDevKeys({ organization: 'someone else', now: NOW, bits: 2048 });
    await expect(verifyTree({ tree, trustedRootsPem: other.root.certPem, now: NOW })).rejects.toMatchObject({
      code: 'CHAIN_INVALID',
    });

    const compatFile = path.join(tree, 'compat.yaml');
    const text = await fs.readFile(compatFile, 'utf8');
    await fs.writeFile(compatFile, text.replace('minSourceVersion: 1.0.0', 'minSourceVersion: 0.1.0'));
    await expect(verifyTree({ tree, trustedRootsPem: keys.root.certPem, now: NOW })).rejects.toMatchObject({
      code: 'SIGNATURE_INVALID',
    });
    await fs.rm(path.join(tree, 'compat.yaml.sig'));
    await expect(verifyTree({ tree, trustedRootsPem: keys.root.certPem, now: NOW })).rejects.toMatchObject({
      code: 'SIGNATURE_MISSING',
    });
  });
});

describe('verifyTree: chunk index and pack', () => {
  /** Re-signs the tree's compat.yaml after `edit` changed the root artifact's index entry. */
  async function resign(tree: string, edit: (index: ChunkIndexRef) => void): Promise<void> {
    const compat = parseCompat(await fs.readFile(path.join(tree, 'compat.yaml')));
    edit(compat.platforms.physical!.release.artifacts.root.index!);
    const document = Buffer.from(renderCompat(compat));
    await fs.writeFile(path.join(tree, 'compat.yaml'), document);
    await fs.writeFile(path.join(tree, 'compat.yaml.sig'), signDocument(document, keys));
  }

  it('catches, even in a signed tree, an index or a pack that does not describe the artifact', async () => {
    const tree = await freshTree('pack');
    await buildRelease({
      tree,
      keys,
      boot,
      root,
      now: NOW,
      version: '2.0.0',
      platforms: ['physical'],
      minSourceVersion: '1.0.0',
    });
    const verify = () => verifyTree({ tree, trustedRootsPem: keys.root.certPem, now: NOW });
    expect((await verify()).chunkIndexes).toBe(2);

    // A deflated chunk of the pack (in the text part) that inflates to something else.
    const packFile = path.join(tree, 'releases/2.0.0/root.img.pack');
    const pack = await fs.readFile(packFile);
    const damaged = Buffer.from(pack);
    damaged[pack.length - 100]! ^= 0x55;
    await fs.writeFile(packFile, damaged);
    await resign(tree, (index) => {
      index.pack!.sha256 = sha(damaged);
    });
    await expect(verify()).rejects.toMatchObject({
      code: 'INDEX_INVALID',
      message: expect.stringMatching(
        /chunk pack .*root\.img\.pack does not hold chunk \d+ of releases\/2\.0\.0\/root\.img/,
      ),
    });
    await fs.writeFile(packFile, pack);
    await resign(tree, (index) => {
      index.pack!.sha256 = sha(pack);
    });
    await verify();

    // An index whose digest of one chunk is wrong.
    const indexFile = path.join(tree, 'releases/2.0.0/root.img.idx');
    const index = await fs.readFile(indexFile);
    const entries = inflateRawSync(index.subarray(20));
    entries[12 * 5]! ^= 1;
    const lying = Buffer.concat([index.subarray(0, 20), deflateRawSync(entries)]);
    await fs.writeFile(indexFile, lying);
    await resign(tree, (ref) => {
      ref.sha256 = sha(lying);
      ref.size = lying.length;
    });
    await expect(verify()).rejects.toMatchObject({
      code: 'INDEX_INVALID',
      message: expect.stringContaining('root.img.idx does not describe releases/2.0.0/root.img: chunk 5'),
    });
  });
});

describe('saveKeys / loadKeys', () => {
  /** What a keys directory gives back: the certificates and the signing key, no CA private key. */
  const signer = (k: DevKeys): DevKeys => ({
    root: { certPem: k.root.certPem },
    intermediate: { certPem: k.intermediate.certPem },
    signing: k.signing,
  });

  it('round-trips keys: the signing key beside the certificates, the CA private keys in their own directory', async () => {
    const keyDir = path.join(dir, 'keys');
    const caDir = path.join(dir, 'keys-ca');
    await saveKeys(keyDir, keys, { caDir });
    expect(await loadKeys(keyDir)).toEqual(signer(keys));
    expect((await fs.readdir(keyDir)).sort()).toEqual([
      KEY_FILES.intermediateCert,
      KEY_FILES.rootCert,
      KEY_FILES.signingKey,
      KEY_FILES.signingCert,
    ]);
    expect((await fs.readdir(caDir)).sort()).toEqual([KEY_FILES.intermediateKey, KEY_FILES.rootKey]);
    expect(await fs.readFile(path.join(caDir, KEY_FILES.rootKey), 'utf8')).toBe(keys.root.keyPem);
    expect(await fs.readFile(path.join(caDir, KEY_FILES.intermediateKey), 'utf8')).toBe(
      keys.intermediate.keyPem,
    );
    expect((await fs.stat(path.join(keyDir, KEY_FILES.signingKey))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(caDir, KEY_FILES.rootKey))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(keyDir, KEY_FILES.rootCert))).mode & 0o777).toBe(0o644);
    expect((await fs.stat(keyDir)).mode & 0o777).toBe(0o700);
    expect((await fs.stat(caDir)).mode & 0o777).toBe(0o700);
  });

  it('without a CA directory keeps no CA private key at all (development keys)', async () => {
    const keyDir = path.join(dir, 'keys-dev');
    await saveKeys(keyDir, keys);
    expect(await fs.readdir(keyDir)).not.toContain(KEY_FILES.rootKey);
    expect(await fs.readdir(keyDir)).not.toContain(KEY_FILES.intermediateKey);
    expect(await loadKeys(keyDir)).toEqual(signer(keys));
  });

  it('refuses a CA directory that is the keys directory or inside it', async () => {
    for (const caDir of ['keys-same', 'keys-same/ca']) {
      await expect(
        saveKeys(path.join(dir, 'keys-same'), keys, { caDir: path.join(dir, caDir) }),
      ).rejects.toMatchObject({ code: 'NOT_ALLOWED', message: expect.stringContaining('outside') });
    }
    await expect(fs.access(path.join(dir, 'keys-same'))).rejects.toThrow();
  });

  it("refuses to load a directory that holds the root's private key beside the signing key", async () => {
    const keyDir = path.join(dir, 'keys-old-layout');
    await saveKeys(keyDir, keys);
    await fs.writeFile(path.join(keyDir, KEY_FILES.rootKey), keys.root.keyPem!, { mode: 0o600 });
    await expect(loadKeys(keyDir)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining("root's private key lies beside the signing key"),
    });
    // Saving again over it (overwrite) leaves the CA's keys out of the directory.
    await saveKeys(keyDir, keys, { overwrite: true });
    expect(await fs.readdir(keyDir)).not.toContain(KEY_FILES.rootKey);
    expect(await loadKeys(keyDir)).toEqual(signer(keys));
  });

  it('refuses to replace existing keys unless asked', async () => {
    const keyDir = path.join(dir, 'keys-twice');
    const caDir = path.join(dir, 'keys-twice-ca');
    await saveKeys(keyDir, keys, { caDir });
    await expect(saveKeys(keyDir, generateDevKeys({ bits: 2048 }))).rejects.toMatchObject({
      code: 'NOT_ALLOWED',
    });
    // Nor the CA's keys elsewhere.
    await expect(
      saveKeys(path.join(dir, 'keys-twice-2'), generateDevKeys({ bits: 2048 }), { caDir }),
    ).rejects.toMatchObject({ code: 'NOT_ALLOWED' });
    expect((await loadKeys(keyDir)).root.certPem).toBe(keys.root.certPem);
    expect(await fs.readFile(path.join(caDir, KEY_FILES.rootKey), 'utf8')).toBe(keys.root.keyPem);
  });

  it('refuses a signing key that does not belong to the signing certificate', async () => {
    const keyDir = path.join(dir, 'keys-signer');
    await saveKeys(keyDir, keys);
    await fs.writeFile(
      path.join(keyDir, KEY_FILES.signingKey),
      generateDevKeys({ bits: 2048 }).signing.keyPem,
    );
    await expect(loadKeys(keyDir)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('does not belong to'),
    });
    await expect(loadKeys(path.join(dir, 'no-such-dir'))).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
