/**
 * The factory side of the recovery partition: describing the factory images and writing the
 * manifest the recovery system checks them against (the simulator's `createAppliance` now, the
 * image builder later).
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { type FactoryImage, type FactoryManifest, MANIFEST_FILE, validateManifest } from './manifest.js';

/** Size and SHA-256 of one image file, hashed as a stream (images are hundreds of MiB). */
export async function describeFactoryImage(file: string): Promise<FactoryImage> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { file: path.basename(file), size, sha256: hash.digest('hex') };
}

/**
 * Writes `<recoveryDir>/manifest.json` (atomically) for the images already in `recoveryDir`
 * (`boot.img`, `root.img` unless named otherwise), validated with the same schema the recovery
 * system reads it with. Returns the manifest.
 */
export async function writeFactoryManifest(
  recoveryDir: string,
  version: string,
  files: { boot: string; root: string } = { boot: 'boot.img', root: 'root.img' },
): Promise<FactoryManifest> {
  const manifest = validateManifest(
    {
      schema: 1,
      version,
      boot: await describeFactoryImage(path.join(recoveryDir, files.boot)),
      root: await describeFactoryImage(path.join(recoveryDir, files.root)),
    },
    path.join(recoveryDir, MANIFEST_FILE),
  );
  await fs.mkdir(recoveryDir, { recursive: true });
  await writeJsonAtomic(path.join(recoveryDir, MANIFEST_FILE), manifest);
  return manifest;
}
