import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '@clgw/agent/errors.js';
import { MAX_COMPAT_BYTES, parseCompat } from '@clgw/agent/release/parse.js';
import { type Artifact, type Compat, compatPlatforms, type Platform } from '@clgw/agent/release/schema.js';
import { MAX_ENVELOPE_BYTES, verifyCompatSignature } from '@clgw/agent/release/signature.js';
import { COMPAT_FILE, hashFile, SIGNATURE_FILE } from './build.js';

export interface VerifyTreeOptions {
  tree: string;
  /** PEM of the root(s) appliances pin. */
  trustedRootsPem: string;
  /** Milliseconds since the epoch (default: the system clock). */
  now?: number;
  /** Also hash every artifact the document names (default true). */
  checkArtifacts?: boolean;
}

export interface VerifiedArtifact {
  platform: Platform;
  /** `boot`, `root` or `container <name>`. */
  role: string;
  artifact: Artifact;
}

export interface VerifiedTree {
  compat: Compat;
  signer: string;
  chain: string[];
  artifacts: VerifiedArtifact[];
}

/**
 * Checks a release tree the way an appliance would — signature chain to the pinned roots, then
 * the schema — and, unlike an appliance, also that every artifact named is present with the
 * published size and SHA-256. Throws the first failure as a ClgwError naming the file.
 */
export async function verifyTree(options: VerifyTreeOptions): Promise<VerifiedTree> {
  const now = options.now ?? Date.now();
  const compatPath = path.join(options.tree, COMPAT_FILE);
  const document = await readLimited(compatPath, MAX_COMPAT_BYTES, 'YAML_INVALID');
  if (document === undefined)
    throw new ClgwError('INVALID_REQUEST', `${compatPath} does not exist`, { details: { file: compatPath } });
  const envelope = await readLimited(
    path.join(options.tree, SIGNATURE_FILE),
    MAX_ENVELOPE_BYTES,
    'SIGNATURE_INVALID',
  );
  const signed = verifyCompatSignature({
    document,
    envelope,
    trustedRootsPem: options.trustedRootsPem,
    now,
    source: compatPath,
  });
  const compat = parseCompat(document, compatPath);

  const artifacts: VerifiedArtifact[] = [];
  for (const platform of compatPlatforms(compat)) {
    const entry = compat.platforms[platform]!;
    artifacts.push({ platform, role: 'boot', artifact: entry.release.artifacts.boot });
    artifacts.push({ platform, role: 'root', artifact: entry.release.artifacts.root });
    for (const c of entry.containers)
      artifacts.push({ platform, role: `container ${c.name}`, artifact: c.archive });
  }
  if (options.checkArtifacts ?? true) {
    // Platforms often share one image; hash each file once.
    const checked = new Set<string>();
    for (const { artifact } of artifacts) {
      const key = `${artifact.path}\0${artifact.size}\0${artifact.sha256}`;
      if (checked.has(key)) continue;
      await checkArtifact(options.tree, artifact);
      checked.add(key);
    }
  }
  return { compat, signer: signed.signer, chain: signed.chain, artifacts };
}

async function checkArtifact(tree: string, artifact: Artifact): Promise<void> {
  // The schema already guarantees a relative path without `..`; join cannot leave the tree.
  const file = path.join(tree, artifact.path);
  let actual: { size: number; sha256: string };
  try {
    actual = await hashFile(file);
  } catch (e) {
    throw new ClgwError(
      'INVALID_REQUEST',
      `artifact ${file} is missing or unreadable: ${(e as Error).message}`,
      {
        cause: e,
        details: { file },
      },
    );
  }
  if (actual.size !== artifact.size)
    throw new ClgwError(
      'HASH_MISMATCH',
      `artifact ${file} has ${actual.size} bytes; compat.yaml says ${artifact.size}`,
      {
        details: { file, expected: artifact.size, actual: actual.size },
      },
    );
  if (actual.sha256 !== artifact.sha256)
    throw new ClgwError(
      'HASH_MISMATCH',
      `artifact ${file} has SHA-256 ${actual.sha256}; compat.yaml says ${artifact.sha256}`,
      { details: { file, expected: artifact.sha256, actual: actual.sha256 } },
    );
}

/** Reads a small file whole, refusing one over `limit` bytes; undefined when it does not exist. */
async function readLimited(
  file: string,
  limit: number,
  code: 'YAML_INVALID' | 'SIGNATURE_INVALID',
): Promise<Buffer | undefined> {
  try {
    const stat = await fs.stat(file);
    if (stat.size > limit)
      throw new ClgwError(code, `${file} is ${stat.size} bytes, more than the ${limit} allowed`, {
        details: { file, size: stat.size, limit },
      });
    return await fs.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
