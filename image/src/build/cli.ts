#!/usr/bin/env node
/**
 * `clgw-image`: builds the appliance's release images and disks (`make image`).
 *
 * usage: clgw-image [--out DIR] [--version V] [--keys DIR] [--formats raw,qcow2,ova]
 *                   [--release-tree DIR] [--base-url URL] [--download-ca PEM]
 *
 * --keys names the release signing keys (`clgw-release keys`); the images trust their root and
 * the support CA's public key (support-ca.pub) there. Absent keys in DIR are generated there
 * (development keys). --release-tree also publishes the
 * release images into that mirror tree. --base-url/--download-ca build a lab image that updates
 * from another mirror than the vendor's. Runs as root (debootstrap, chroot).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { serializeError } from '@clgw/agent/errors.js';
import { ensureSupportCa, generateDevKeys, loadKeys, saveKeys } from '../release/index.js';
import { buildDisks, buildReleaseImages, DISK_FORMATS, type DiskFormat, publish } from './build.js';

const USAGE = `usage: clgw-image [--out DIR] [--version V] [--keys DIR] [--formats ${DISK_FORMATS.join(',')}]
                  [--release-tree DIR] [--base-url URL] [--download-ca PEM]`;

async function main(): Promise<number> {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        out: { type: 'string', default: 'out' },
        version: { type: 'string', default: '1.0.0' },
        keys: { type: 'string', default: '.cache/image/keys' },
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
  const keysDir = path.resolve(values.keys!);
  const keys = await loadKeys(keysDir).catch(async () => {
    process.stdout.write(`clgw-image: no release keys in ${keysDir}; generating development keys there\n`);
    const k = generateDevKeys();
    await saveKeys(keysDir, k);
    return k;
  });
  // Only the public key goes into the images; the private key stays in the keys directory.
  const supportCaPub = await ensureSupportCa(keysDir, (line) =>
    process.stdout.write(`clgw-image: ${line}\n`),
  );
  const options = {
    repo,
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
