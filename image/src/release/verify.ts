import { promises as fs } from 'node:fs';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { ClgwError } from '@clgw/core/errors.js';
import { INDEX_ENTRY_BYTES, storedLength } from '@clgw/core/release/chunk-index.js';
import { MAX_COMPAT_BYTES, parseCompat } from '@clgw/core/release/parse.js';
import {
  type Artifact,
  type Compat,
  compatPlatforms,
  type Platform,
  type SlotArtifact,
} from '@clgw/core/release/schema.js';
import { MAX_ENVELOPE_BYTES, verifyCompatSignature } from '@clgw/core/release/signature.js';
import { digestMatches } from '@clgw/core/slot/chunk-hash.js';
import { IndexReader } from '@clgw/core/slot/index-file.js';
import { COMPAT_FILE, forEachChunk, hashFile, SIGNATURE_FILE } from './build.js';

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
  /** Chunk indexes checked (0 when artifacts are not checked). */
  chunkIndexes: number;
}

/**
 * Checks a release tree the way an appliance would — signature chain to the pinned roots, then
 * the schema — and, unlike an appliance, also that every artifact named is present with the
 * published size and SHA-256, and that each chunk index is too and describes its artifact (an
 * appliance only finds a wrong index when the slot it assembled fails its read-back). Throws the
 * first failure as a ClgwError naming the file.
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
  const indexed = new Map<string, SlotArtifact>();
  for (const platform of compatPlatforms(compat)) {
    for (const a of Object.values(compat.platforms[platform]!.release.artifacts))
      if (a.index) indexed.set(`${a.path}\0${a.sha256}\0${a.index.sha256}\0${a.index.pack?.sha256}`, a);
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
    for (const a of indexed.values()) await checkChunkIndex(options.tree, a);
  }
  return {
    compat,
    signer: signed.signer,
    chain: signed.chain,
    artifacts,
    chunkIndexes: options.checkArtifacts === false ? 0 : indexed.size,
  };
}

/**
 * The index file (and pack) are the ones compat.yaml names, and describe the (already checked)
 * artifact: every entry's digest is its chunk's, and the pack holds at each entry's place exactly
 * that chunk, stored or deflated. Compared by content, not by rebuilding the files: another zlib
 * may deflate the same chunk to other bytes, which is fine.
 */
async function checkChunkIndex(tree: string, artifact: SlotArtifact): Promise<void> {
  const ref = artifact.index!;
  await checkArtifact(tree, ref);
  if (ref.pack) await checkArtifact(tree, ref.pack);
  const file = path.join(tree, ref.path);
  const packFile = ref.pack ? path.join(tree, ref.pack.path) : undefined;
  const wrong = (why: string) =>
    new ClgwError('INDEX_INVALID', `chunk index ${file} does not describe ${artifact.path}: ${why}`, {
      details: { file, artifact: artifact.path },
    });
  const reader = await IndexReader.open(file, { chunkSize: ref.chunkSize, artifactSize: artifact.size });
  const pack = packFile ? await fs.open(packFile, 'r') : undefined;
  try {
    const stored = Buffer.allocUnsafe(ref.chunkSize);
    let entries: Buffer = Buffer.alloc(0);
    let packAt = 0;
    await forEachChunk(path.join(tree, artifact.path), ref.chunkSize, async (chunk, i) => {
      const e = i % BATCH_CHUNKS;
      if (e === 0) entries = await reader.read(Math.min(BATCH_CHUNKS, reader.chunks - i));
      if (!digestMatches(chunk, entries, e * INDEX_ENTRY_BYTES)) throw wrong(`chunk ${i} has another digest`);
      const length = storedLength(entries, e);
      if (length < 1 || length > chunk.length) throw wrong(`chunk ${i} has a stored length of ${length}`);
      if (pack) {
        const { bytesRead } = await pack.read(stored, 0, length, packAt);
        const piece = stored.subarray(0, bytesRead);
        let decoded: Buffer | undefined;
        try {
          decoded =
            length === chunk.length ? piece : inflateRawSync(piece, { maxOutputLength: chunk.length });
        } catch {
          decoded = undefined;
        }
        if (!decoded?.equals(chunk))
          throw new ClgwError(
            'INDEX_INVALID',
            `chunk pack ${packFile} does not hold chunk ${i} of ${artifact.path} at offset ${packAt}`,
            { details: { file: packFile, artifact: artifact.path, chunk: i, offset: packAt } },
          );
      }
      packAt += length;
    });
    await reader.finish();
  } finally {
    reader.close();
    await pack?.close();
  }
}

const BATCH_CHUNKS = 2048;

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
