#!/usr/bin/env node
/**
 * `clgw-image`: builds the appliance's release images and disks (`make image`).
 *
 * usage: clgw-image [--out DIR] [--version V] [--keys DIR] [--formats raw,qcow2,ova]
 *                   [--release-tree DIR] [--base-url URL] [--download-ca PEM]
 *
 * --keys names the release signing keys (`clgw-release keys`); the images trust their root and
 * the support CA's public key (support-ca.pub) there, and both must be there — the build fails
 * naming the missing file, and refuses the support CA's private key there. Without --keys the
 * images get development keys (.cache/image/keys, generated there once, without the CA's private
 * keys) and a development support CA (generated there when missing): a framed notice says so,
 * and every output's name carries `-devkeys`.
 * --release-tree also publishes the release images into that mirror tree. --base-url/--download-ca build a lab image that updates
 * from another mirror than the vendor's. Runs as root (debootstrap, chroot).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { serializeError } from '@clgw/core/errors.js';
import {
  type DevKeys,
  ensureDevSupportCa,
  generateDevKeys,
  KEY_FILES,
  loadKeys,
  requireSupportCa,
  saveKeys,
} from '../release/index.js';
import {
  buildDisks,
  buildReleaseImages,
  DISK_FORMATS,
  type DiskFormat,
  devKeysNotice,
  publish,
} from './build.js';

const USAGE = `usage: clgw-image [--out DIR] [--version V] [--keys DIR] [--formats ${DISK_FORMATS.join(',')}]
                  [--release-tree DIR] [--base-url URL] [--download-ca PEM]`;

/** Where `make image` without KEYS keeps its development keys (under the repository). */
const DEV_KEYS_DIR = '.cache/image/keys';

async function main(): Promise<number> {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        out: { type: 'string', default: 'out' },
        version: { type: 'string', default: '1.0.0' },
        keys: { type: 'string' },
        formats: { type: 'string', default: DISK_FORMATS.join(',') },
        'release-tree': { type: 'string' },
        'base-url': { type: 'string' },
        'download-ca': { type: 'string' },
      },
      strict: true,
    }) as { values: Record<string, string | undefined> });
  } catch (e) {
    process.stderr.write(`clgw-image: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const formats = values.formats!.split(',').filter(Boolean) as DiskFormat[];
  const unknown = formats.filter((f) => !DISK_FORMATS.includes(f));
  if (unknown.length) {
    process.stderr.write(`clgw-image: unknown format ${unknown.join(', ')}\n${USAGE}\n`);
    return 2;
  }
  const repo = { dir: path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..') };
  const devKeys = values.keys === undefined;
  const keysDir = path.resolve(values.keys ?? path.join(repo.dir, DEV_KEYS_DIR));
  let keys: DevKeys;
  // Only the public key goes into the images.
  let supportCaPub: string;
  let notice = '';
  if (devKeys) {
    const existing = await fs.stat(path.join(keysDir, KEY_FILES.signingKey)).catch(() => undefined);
    if (existing) {
      // Builds before issue 16 kept the CA's private keys here too: of no use for development
      // keys, and never beside the signing key.
      for (const name of [KEY_FILES.rootKey, KEY_FILES.intermediateKey]) {
        const file = path.join(keysDir, name);
        if (
          await fs.rm(file).then(
            () => true,
            () => false,
          )
        )
          process.stdout.write(`clgw-image: removed ${file} (a CA private key beside the signing key)\n`);
      }
      keys = await loadKeys(keysDir);
    } else {
      keys = generateDevKeys();
      // No CA directory: nothing ever issues a certificate with development keys.
      await saveKeys(keysDir, keys);
    }
    const supportCa = await ensureDevSupportCa(keysDir);
    supportCaPub = supportCa.publicKey;
    notice = devKeysNotice(keysDir, { supportCaGenerated: supportCa.generated });
    process.stdout.write(notice);
  } else {
    keys = await loadKeys(keysDir);
    supportCaPub = await requireSupportCa(keysDir);
  }
  const options = {
    repo,
    devKeys,
    out: path.resolve(values.out!),
    cache: path.join(repo.dir, '.cache/image'),
    version: values.version!,
    keys,
    supportCaPub,
    agentConfig: values['base-url'] ? { baseUrl: values['base-url'] } : {},
    downloadCaPem: values['download-ca'] ? await fs.readFile(values['download-ca'], 'utf8') : undefined,
    log: (line: string) => process.stdout.write(`clgw-image: ${line}\n`),
  };
  const release = await buildReleaseImages(options);
  const disks = await buildDisks({ ...options, release, formats });
  if (values['release-tree']) await publish(path.resolve(values['release-tree']), keys, release, '0.0.0');
  for (const file of [release.boot, release.root, ...Object.values(disks)]) {
    const { size } = await fs.stat(file);
    process.stdout.write(`${file}  ${(size / 1024 / 1024).toFixed(1)} MiB\n`);
  }
  // Said again at the end, where whoever ran the build looks.
  if (devKeys) process.stdout.write(notice);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    const err = serializeError(e);
    process.stderr.write(`clgw-image: ${err.code}: ${err.message}\n`);
    process.exit(1);
  },
);
