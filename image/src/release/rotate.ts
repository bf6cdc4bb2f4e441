import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import type { Compat } from '@clgw/core/release/schema.js';
import { republishCompat } from './build.js';
import { type DevKeys, type GenerateKeysOptions, generateRootCa, KEY_FILES } from './keys.js';
import { ROOT_ROTATION_FILE, readTreeRotation, signRootRotation, treeRotationFile } from './sign.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface RotateRootOptions {
  tree: string;
  /** The online keys (certificates and signing key): they re-sign compat.yaml. */
  keys: DevKeys;
  /** The current release root's private key (offline): only it may vouch for its successor. */
  rootKeyPem: string;
  /** Where the new root's certificate and private key go (created 0700): the new offline key. */
  newRootOut: string;
  /** How long chains to the current root stay accepted after the rotation; default 90 days. */
  overlapDays?: number;
  expiresInDays?: number;
  now?: number;
  bits?: GenerateKeysOptions['bits'];
}

export interface RotatedRoot {
  newRootCertPath: string;
  newRootKeyPath: string;
  rotationPath: string;
  overlapUntil: string;
  /** SHA-256 of the new root's DER, as the statement names it. */
  digest: string;
  compat?: Compat;
  compatPath?: string;
}

/**
 * Rotates the release root: a new self-signed root CA and key (written to `newRootOut` first — a
 * published rotation to a root whose key was lost would strand every appliance after the overlap),
 * the current root's signed statement vouching for it with the overlap (`<tree>/root-rotation.json`),
 * then compat.yaml published again with the rotation in its envelope (next serial). Refuses
 * (CONFIG_INVALID) a tree that already has a rotation: one rotation per pinned image root.
 */
export async function rotateRoot(options: RotateRootOptions): Promise<RotatedRoot> {
  const now = options.now ?? Date.now();
  const overlapDays = options.overlapDays ?? 90;
  if (!Number.isSafeInteger(overlapDays) || overlapDays < 1 || overlapDays > 3650)
    throw new ClgwError('INVALID_REQUEST', `overlap of ${overlapDays} days: expected 1 to 3650`, {
      details: { overlapDays },
    });
  const existing = await readTreeRotation(options.tree, options.keys.root.certPem);
  if (existing)
    throw new ClgwError(
      'CONFIG_INVALID',
      `${path.join(options.tree, ROOT_ROTATION_FILE)} already holds a root rotation: appliances adopt one rotation per pinned image root; rotating again needs an image that pins the new root`,
      { details: { tree: options.tree } },
    );
  const newRootCertPath = path.join(options.newRootOut, KEY_FILES.rootCert);
  const newRootKeyPath = path.join(options.newRootOut, KEY_FILES.rootKey);
  for (const file of [newRootCertPath, newRootKeyPath]) {
    if (
      await fs.access(file).then(
        () => true,
        () => false,
      )
    )
      throw new ClgwError('NOT_ALLOWED', `${file} already exists; refusing to replace a release root`, {
        details: { file },
      });
  }
  const newRoot = generateRootCa({ now, ...(options.bits ? { bits: options.bits } : {}) });
  const overlapUntil = new Date(Math.floor((now + overlapDays * DAY_MS) / 1000) * 1000)
    .toISOString()
    .replace('.000Z', 'Z');
  const rotation = signRootRotation(
    newRoot.certPem,
    { certPem: options.keys.root.certPem, keyPem: options.rootKeyPem },
    overlapUntil,
    now,
  );
  await fs.mkdir(options.newRootOut, { recursive: true, mode: 0o700 });
  await writeFileAtomic(newRootKeyPath, newRoot.keyPem, { mode: 0o600 });
  await writeFileAtomic(newRootCertPath, newRoot.certPem, { mode: 0o644 });
  const rotationPath = path.join(options.tree, ROOT_ROTATION_FILE);
  await writeJsonAtomic(rotationPath, treeRotationFile(rotation.signed, options.keys.root.certPem));
  const republished = await republishCompat({
    tree: options.tree,
    keys: options.keys,
    now,
    ...(options.expiresInDays === undefined ? {} : { expiresInDays: options.expiresInDays }),
  });
  return {
    newRootCertPath,
    newRootKeyPath,
    rotationPath,
    overlapUntil,
    digest: rotation.statement.newRoot,
    ...(republished ?? {}),
  };
}
