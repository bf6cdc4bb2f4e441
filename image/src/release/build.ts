import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs, type Stats } from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { deflateRawSync } from 'node:zlib';
import { inspectImageArchive } from '@clgw/core/containers/archive.js';
import { ClgwError } from '@clgw/core/errors.js';
import { fsyncDir, writeFileAtomic, writeFileAtomicWith } from '@clgw/core/platform/atomic.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { chunkCount, DEFAULT_CHUNK_SIZE, INDEX_ENTRY_BYTES } from '@clgw/core/release/chunk-index.js';
import { MAX_COMPAT_BYTES, parseCompat } from '@clgw/core/release/parse.js';
import {
  type Artifact,
  type ChunkIndexRef,
  type Compat,
  type ContainerName,
  type ContainerRef,
  compareVersions,
  isPlatform,
  isStrictSemver,
  MAX_ARTIFACT_SIZE,
  PLATFORMS,
  type Platform,
  type PlatformEntry,
  type PlatformRelease,
  type Rollout,
  type SlotArtifact,
  validateCompat,
} from '@clgw/core/release/schema.js';
import { chunkDigest } from '@clgw/core/slot/chunk-hash.js';
import { fillEntry, writeIndexFile } from '@clgw/core/slot/index-file.js';
import { parseOsRelease, patchLevelOf } from '@clgw/core/system/os-release.js';
import { stringify } from 'yaml';
import type { DevKeys } from './keys.js';
import { listRootsPem, readTreeRevocations, readTreeRotation, signDocument } from './sign.js';

/**
 * The root image's own OS patch level (os-release's `CLGW_PATCH_LEVEL`), read with debugfs
 * without mounting, so compat.yaml states what the image says and nothing else; undefined when
 * the image is not ext4 or declares none (an older build).
 */
export async function rootPatchLevel(root: string): Promise<string | undefined> {
  // os-release(5): /etc/os-release is usually a symlink to /usr/lib/os-release, which debugfs
  // does not follow, so the real file is read first.
  for (const file of ['/usr/lib/os-release', '/etc/os-release']) {
    const text = await execFile('debugfs', ['-R', `cat ${file}`, root]).then(
      (r) => r.stdout,
      (e: ClgwError) => {
        if ((e.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')
          throw new ClgwError('INVALID_REQUEST', 'debugfs is not installed (Debian package e2fsprogs)', {
            cause: e,
          });
        return '';
      },
    );
    const level = patchLevelOf(parseOsRelease(text));
    if (level) return level;
  }
  return undefined;
}

/** Names of the published files at the top of a release tree. */
export const COMPAT_FILE = 'compat.yaml';
export const SIGNATURE_FILE = 'compat.yaml.sig';

export interface BuildReleaseOptions {
  /** The release tree (what the mirror serves): compat.yaml, compat.yaml.sig, releases/<version>/… */
  tree: string;
  keys: DevKeys;
  /** Gateway OS release, strict semver. */
  version: string;
  /** Platforms this release is published for; other platforms' entries are kept as they are. */
  platforms: Platform[];
  /** Boot and root partition images to publish. */
  boot: string;
  root: string;
  /** Lowest running version allowed to update to this release. */
  minSourceVersion: string;
  /** Publication serial; default previous + 1 (or 1). Must exceed the previous one. */
  serial?: number;
  /** Days until the document expires on appliances (default 30). */
  expiresInDays?: number;
  /** Milliseconds since the epoch (default: the system clock). */
  now?: number;
  /**
   * Publish a chunk index and a chunk pack beside each image (`<image>.idx`, `<image>.pack`:
   * adaptive updates); default true. Without them, appliances download the images whole.
   */
  chunkIndex?: boolean;
  /**
   * State the root image's OS patch level in compat.yaml (default true); agents that predate the
   * field refuse it, as they do `index`.
   */
  patchLevel?: boolean;
  /**
   * Publish the release under a staged rollout (see {@link setRollout}). Default: none — unless
   * the same version is published again for a platform, which keeps that platform's rollout.
   */
  rollout?: Rollout;
}

export interface BuiltRelease {
  compat: Compat;
  compatPath: string;
  signaturePath: string;
  artifacts: { boot: SlotArtifact; root: SlotArtifact };
}

const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_EXPIRES_DAYS = 3650;

/**
 * Publishes a release into a tree: copies the boot and root images to
 * `releases/<version>/{boot,root}.img` (hashed while copying, never loaded whole), then writes
 * compat.yaml and finally compat.yaml.sig, each atomically. An existing compat.yaml keeps its
 * other platforms' entries and container lists, and fixes the next serial.
 */
export async function buildRelease(options: BuildReleaseOptions): Promise<BuiltRelease> {
  const now = options.now ?? Date.now();
  const expiresInDays = options.expiresInDays ?? 30;
  checkOptions(options, expiresInDays);

  const compatPath = path.join(options.tree, COMPAT_FILE);
  const signaturePath = path.join(options.tree, SIGNATURE_FILE);
  const previous = await readExistingCompat(compatPath);

  const serial = options.serial ?? (previous?.serial ?? 0) + 1;
  if (previous && serial <= previous.serial)
    throw new ClgwError(
      'INVALID_REQUEST',
      `serial ${serial} does not exceed serial ${previous.serial} of the published ${compatPath}; appliances would refuse it as a replay`,
      { details: { serial, previous: previous.serial } },
    );
  for (const platform of options.platforms) {
    const published = previous?.platforms[platform]?.release.version;
    if (published && compareVersions(options.version, published) < 0)
      throw new ClgwError(
        'INVALID_REQUEST',
        `${compatPath} already publishes ${published} for ${platform}; ${options.version} would be a downgrade that appliances refuse`,
        { details: { platform, published, version: options.version } },
      );
  }

  // Both images must be usable before either is copied, so a typo leaves the tree untouched.
  await statSource(options.boot);
  await statSource(options.root);
  const dir = path.posix.join('releases', options.version);
  if (previous) {
    await refuseRepublishing(previous, options, [
      [options.boot, `${dir}/boot.img`],
      [options.root, `${dir}/root.img`],
    ]);
  }
  const withIndex = async (a: Artifact): Promise<SlotArtifact> =>
    options.chunkIndex === false ? a : { ...a, index: await publishChunkIndex(options.tree, a) };
  const boot = await withIndex(await publishArtifact(options.boot, options.tree, `${dir}/boot.img`));
  const root = await withIndex(await publishArtifact(options.root, options.tree, `${dir}/root.img`));

  const osPatchLevel = options.patchLevel === false ? undefined : await rootPatchLevel(options.root);

  // Canonical platform order keeps successive documents diffable.
  const platforms: Partial<Record<Platform, PlatformEntry>> = {};
  for (const platform of PLATFORMS) {
    const kept = previous?.platforms[platform];
    if (options.platforms.includes(platform)) {
      platforms[platform] = {
        release: {
          version: options.version,
          minSourceVersion: options.minSourceVersion,
          ...(osPatchLevel ? { osPatchLevel } : {}),
          artifacts: { boot: { ...boot }, root: { ...root } },
          ...rolloutOf(options, kept),
        },
        containers: kept?.containers ?? [],
      };
    } else if (kept) {
      platforms[platform] = kept;
    }
  }
  const compat = validateCompat(
    {
      schema: 1,
      serial,
      published: isoSeconds(now),
      expires: isoSeconds(now + expiresInDays * DAY_MS),
      platforms,
    },
    compatPath,
  );

  await writeSignedCompat(compat, compatPath, signaturePath, options.keys);
  return { compat, compatPath, signaturePath, artifacts: { boot, root } };
}

/**
 * The rollout a rebuilt platform entry gets: the one asked for; else, when the same version is
 * published again (another platform's build, new images' chunk indexes), the one it had — a
 * rebuild must not quietly offer a held-back release to every appliance.
 */
function rolloutOf(options: BuildReleaseOptions, kept: PlatformEntry | undefined): { rollout?: Rollout } {
  if (options.rollout) return { rollout: { ...options.rollout } };
  const previous = kept?.release;
  return previous?.rollout && previous.version === options.version
    ? { rollout: { ...previous.rollout } }
    : {};
}

export interface SetRolloutOptions {
  tree: string;
  keys: DevKeys;
  /** Platforms whose release's rollout changes (each must already have a release). */
  platforms: Platform[];
  /** The share of appliances offered the release, 0 … 100 with at most two decimals; null: all of them. */
  percent: number | null;
  /**
   * Which appliances make up each share. Default: the salt the release already has — so raising
   * the percentage only adds appliances — else the release's version. A new salt draws new cohorts.
   */
  salt?: string;
  serial?: number;
  expiresInDays?: number;
  now?: number;
}

/** One platform's rollout before and after {@link setRollout} (undefined: offered to all). */
export interface RolloutChange {
  platform: Platform;
  version: string;
  before?: Rollout;
  after?: Rollout;
}

/**
 * Sets or clears the staged rollout of the platforms' current releases: a new compat.yaml with the
 * next serial (appliances refuse an older one, so a raised percentage cannot be replayed down),
 * then its signature. Artifacts are untouched. Percentage and salt are checked by the schema
 * (`COMPAT_INVALID` naming the field) before anything is written.
 */
export async function setRollout(
  options: SetRolloutOptions,
): Promise<{ compat: Compat; compatPath: string; changes: RolloutChange[] }> {
  if (options.percent === null && options.salt !== undefined)
    throw new ClgwError(
      'INVALID_REQUEST',
      'a salt without a percentage: clearing the rollout offers the release to every appliance',
    );
  const changes: RolloutChange[] = [];
  const published = await reviseReleases(options, (platform, { rollout: before, ...release }) => {
    const after =
      options.percent === null
        ? undefined
        : { percent: options.percent, salt: options.salt ?? before?.salt ?? release.version };
    changes.push({
      platform,
      version: release.version,
      ...(before ? { before } : {}),
      ...(after ? { after } : {}),
    });
    return { ...release, ...(after ? { rollout: after } : {}) };
  });
  return { ...published, changes };
}

export interface SetWithdrawnOptions {
  tree: string;
  keys: DevKeys;
  /** Platforms whose current release is withdrawn (each must already have a release). */
  platforms: Platform[];
  /** Why, as every appliance will show it; null lifts the withdrawal (`--undo`). */
  reason: string | null;
  serial?: number;
  expiresInDays?: number;
  now?: number;
}

/**
 * Withdraws the platforms' current releases (or lifts the withdrawal): a new compat.yaml with the
 * next serial — appliances refuse an older one, so the halt cannot be replayed away — then its
 * signature. Artifacts are untouched (a box already running the release keeps it; one that has not
 * switched discards it at its last look). The reason is checked by the schema (`COMPAT_INVALID`)
 * before anything is written. Returns the versions withdrawn (or restored), per platform.
 */
export async function setWithdrawn(
  options: SetWithdrawnOptions,
): Promise<{ compat: Compat; compatPath: string; changes: { platform: Platform; version: string }[] }> {
  const { reason } = options;
  const changes: { platform: Platform; version: string }[] = [];
  const published = await reviseReleases(options, (platform, { withdrawn: _before, ...release }) => {
    changes.push({ platform, version: release.version });
    return { ...release, ...(reason === null ? {} : { withdrawn: { reason } }) };
  });
  return { ...published, changes };
}

/**
 * The published compat.yaml again with the platforms' releases passed through `revise`, the next
 * serial (or `serial`, which must exceed it) and new dates, validated, written and signed. Every
 * platform named must already have a release (INVALID_REQUEST otherwise); the others are kept.
 */
async function reviseReleases(
  options: {
    tree: string;
    keys: DevKeys;
    platforms: Platform[];
    serial?: number;
    expiresInDays?: number;
    now?: number;
  },
  revise: (platform: Platform, release: PlatformRelease) => PlatformRelease,
): Promise<{ compat: Compat; compatPath: string }> {
  const now = options.now ?? Date.now();
  const expiresInDays = options.expiresInDays ?? 30;
  const compatPath = path.join(options.tree, COMPAT_FILE);
  const previous = await readExistingCompat(compatPath);
  const bad = (message: string): ClgwError => new ClgwError('INVALID_REQUEST', message);
  if (!previous) throw bad(`${compatPath} does not exist: publish a gateway OS release first`);
  if (options.platforms.length === 0) throw bad('at least one platform is needed');
  for (const p of options.platforms) {
    if (!previous.platforms[p]) throw bad(`${compatPath} has no release for ${p}: publish one first`);
  }
  const serial = options.serial ?? previous.serial + 1;
  if (serial <= previous.serial)
    throw bad(`serial ${serial} does not exceed serial ${previous.serial} of the published ${compatPath}`);
  const platforms: Partial<Record<Platform, PlatformEntry>> = {};
  for (const platform of PLATFORMS) {
    const kept = previous.platforms[platform];
    if (!kept) continue;
    platforms[platform] = options.platforms.includes(platform)
      ? { ...kept, release: revise(platform, kept.release) }
      : kept;
  }
  const compat = validateCompat(
    {
      schema: 1,
      serial,
      published: isoSeconds(now),
      expires: isoSeconds(now + expiresInDays * DAY_MS),
      platforms,
    },
    compatPath,
  );
  await writeSignedCompat(compat, compatPath, path.join(options.tree, SIGNATURE_FILE), options.keys);
  return { compat, compatPath };
}

/**
 * Writes compat.yaml and then its signature (artifacts must already be in place). The one place a
 * tree's envelope is made: it carries the tree's revocation list (`revocations.json`) and root
 * rotation (`root-rotation.json`), so every later document keeps meeting appliances with them.
 */
async function writeSignedCompat(
  compat: Compat,
  compatPath: string,
  signaturePath: string,
  keys: DevKeys,
): Promise<void> {
  const text = renderCompat(compat);
  // What we publish must be exactly what an appliance accepts.
  parseCompat(text, compatPath);
  const document = Buffer.from(text);
  const tree = path.dirname(compatPath);
  const rootRotation = await readTreeRotation(tree, keys.root.certPem);
  const revocations = await readTreeRevocations(tree, listRootsPem(rootRotation, keys.root.certPem));
  const envelope = signDocument(document, keys, {
    ...(revocations ? { revocations: revocations.signed } : {}),
    ...(rootRotation ? { rootRotation: rootRotation.signed } : {}),
  });
  // Artifacts are in place; the document that points at them goes next, the signature last.
  await writeFileAtomic(compatPath, document);
  await writeFileAtomic(signaturePath, envelope);
}

/**
 * Publishes the tree's compat.yaml again, unchanged but for the next serial and new dates, and signs
 * it with the tree's current revocation list (`clgw-release revoke`). The serial moves so that every
 * appliance fetches it: one holding the previous document would be answered "not modified" and keep
 * the old envelope. Undefined when the tree has no compat.yaml yet.
 */
export async function republishCompat(options: {
  tree: string;
  keys: DevKeys;
  expiresInDays?: number;
  now?: number;
}): Promise<{ compat: Compat; compatPath: string } | undefined> {
  const now = options.now ?? Date.now();
  const expiresInDays = options.expiresInDays ?? 30;
  const compatPath = path.join(options.tree, COMPAT_FILE);
  const previous = await readExistingCompat(compatPath);
  if (!previous) return undefined;
  const compat = validateCompat(
    {
      ...previous,
      serial: previous.serial + 1,
      published: isoSeconds(now),
      expires: isoSeconds(now + expiresInDays * DAY_MS),
    },
    compatPath,
  );
  await writeSignedCompat(compat, compatPath, path.join(options.tree, SIGNATURE_FILE), options.keys);
  return { compat, compatPath };
}

/** A container image to publish: compat.yaml's entry, with the archive as a local file. */
export interface ContainerSource {
  name: ContainerName;
  version: string;
  /** The image reference the archive holds. */
  image: string;
  /** docker-archive (uncompressed, as `podman save` writes it). */
  archive: string;
  /**
   * Undefined (the tool's way): the archive is read and must hold exactly `image`; its ID is what
   * compat.yaml signs. A string or `null` (not stated): signed as given, the archive unchecked —
   * how a test publishes a release whose pipeline lied.
   */
  imageId?: string | null;
}

export interface PublishContainersOptions {
  tree: string;
  keys: DevKeys;
  /** Platforms whose container list becomes `containers` (each must already have a release). */
  platforms: Platform[];
  /** The whole list for those platforms (FreeSWITCH only where the platform has it). */
  containers: ContainerSource[];
  serial?: number;
  expiresInDays?: number;
  now?: number;
  /** false: compat.yaml leaves the image IDs out (agents before the field refuse it). */
  stateImageIds?: boolean;
}

/**
 * Publishes a container set without a new gateway OS release: copies each archive to
 * `containers/<name>/<version>.tar` (hashed while copying), replaces the platforms' container
 * lists, and writes a new compat.yaml with the next serial, then its signature.
 */
export async function publishContainers(
  options: PublishContainersOptions,
): Promise<{ compat: Compat; compatPath: string }> {
  const now = options.now ?? Date.now();
  const expiresInDays = options.expiresInDays ?? 30;
  const compatPath = path.join(options.tree, COMPAT_FILE);
  const previous = await readExistingCompat(compatPath);
  const bad = (message: string): ClgwError => new ClgwError('INVALID_REQUEST', message);
  if (!previous) throw bad(`${compatPath} does not exist: publish a gateway OS release first`);
  if (options.platforms.length === 0) throw bad('at least one platform is needed');
  for (const p of options.platforms) {
    if (!previous.platforms[p]) throw bad(`${compatPath} has no release for ${p}: publish one first`);
  }
  if (new Set(options.containers.map((c) => c.name)).size !== options.containers.length)
    throw bad('each container may be listed once');
  for (const c of options.containers) await statSource(c.archive);
  const refs: ContainerRef[] = [];
  for (const c of options.containers) {
    const relPath = path.posix.join('containers', c.name, `${c.version}.tar`);
    const published = Object.values(previous.platforms)
      .flatMap((e) => e?.containers ?? [])
      .find((x) => x.archive.path === relPath);
    if (published) {
      const actual = await hashFile(c.archive);
      if (actual.sha256 !== published.archive.sha256)
        throw bad(
          `${relPath} is already published with other content; publish ${c.archive} under a new version`,
        );
    }
    const checked = c.imageId === undefined ? await imageIdOf(c) : (c.imageId ?? undefined);
    const imageId = options.stateImageIds === false ? undefined : checked;
    const archive = await publishArtifact(c.archive, options.tree, relPath);
    refs.push({ name: c.name, version: c.version, image: c.image, ...(imageId ? { imageId } : {}), archive });
  }
  const serial = options.serial ?? previous.serial + 1;
  if (serial <= previous.serial)
    throw bad(`serial ${serial} does not exceed serial ${previous.serial} of the published ${compatPath}`);
  const platforms: Partial<Record<Platform, PlatformEntry>> = {};
  for (const platform of PLATFORMS) {
    const kept = previous.platforms[platform];
    if (kept)
      platforms[platform] = options.platforms.includes(platform) ? { ...kept, containers: refs } : kept;
  }
  const compat = validateCompat(
    {
      schema: 1,
      serial,
      published: isoSeconds(now),
      expires: isoSeconds(now + expiresInDays * DAY_MS),
      platforms,
    },
    compatPath,
  );
  await writeSignedCompat(compat, compatPath, path.join(options.tree, SIGNATURE_FILE), options.keys);
  return { compat, compatPath };
}

/**
 * The ID of the image a container archive holds, read as the agent reads it before loading; the
 * archive must hold exactly the image it is published as, or the release would be refused by every
 * appliance.
 */
async function imageIdOf(c: ContainerSource): Promise<string> {
  const held = await inspectImageArchive(c.archive);
  if (held.tags.length !== 1 || held.tags[0] !== c.image)
    throw new ClgwError(
      'INVALID_REQUEST',
      `${c.archive} holds ${held.tags.join(', ') || 'no tagged image'}, not ${c.image} as ${c.name} ${c.version} is published`,
      { details: { file: c.archive } },
    );
  return held.imageId;
}

/** compat.yaml text: a header comment, then plain YAML without anchors (the parser refuses them). */
export function renderCompat(compat: Compat): string {
  const body = stringify(compat, { aliasDuplicateObjects: false, lineWidth: 0 });
  return `# clgw release document, schema v${compat.schema}. Signed (compat.yaml.sig): do not edit by hand.\n${body}`;
}

/**
 * Platforms this build leaves alone keep pointing at their artifact paths. Overwriting one of
 * those files with different content (the same version rebuilt for another platform from other
 * images) would silently break them, so that is refused; identical content is fine.
 */
async function refuseRepublishing(
  previous: Compat,
  options: BuildReleaseOptions,
  files: [source: string, relPath: string][],
): Promise<void> {
  for (const [source, relPath] of files) {
    const users: { platform: Platform; artifact: Artifact }[] = [];
    for (const platform of PLATFORMS) {
      const entry = previous.platforms[platform];
      if (!entry || options.platforms.includes(platform)) continue;
      const artifacts = [
        entry.release.artifacts.boot,
        entry.release.artifacts.root,
        ...entry.containers.map((c) => c.archive),
      ];
      for (const artifact of artifacts) if (artifact.path === relPath) users.push({ platform, artifact });
    }
    if (users.length === 0) continue;
    const actual = await hashFile(source);
    for (const { platform, artifact } of users) {
      if (artifact.sha256 !== actual.sha256 || artifact.size !== actual.size)
        throw new ClgwError(
          'INVALID_REQUEST',
          `${relPath} is already published for ${platform} with other content (sha256 ${artifact.sha256}); ${source} differs — publish it under a new version`,
          { details: { path: relPath, platform, source } },
        );
    }
  }
}

function checkOptions(options: BuildReleaseOptions, expiresInDays: number): void {
  const bad = (message: string): ClgwError => new ClgwError('INVALID_REQUEST', message);
  if (!isStrictSemver(options.version))
    throw bad(`version ${JSON.stringify(options.version)} is not a strict semantic version such as 1.2.3`);
  if (!isStrictSemver(options.minSourceVersion))
    throw bad(
      `minimum source version ${JSON.stringify(options.minSourceVersion)} is not a strict semantic version`,
    );
  if (compareVersions(options.minSourceVersion, options.version) > 0)
    throw bad(
      `minimum source version ${options.minSourceVersion} is above the release version ${options.version}`,
    );
  if (options.platforms.length === 0) throw bad('at least one platform is needed');
  for (const p of options.platforms)
    if (!isPlatform(p)) throw bad(`unknown platform ${JSON.stringify(p)} (known: physical, virtual, kvm)`);
  if (!Number.isInteger(expiresInDays) || expiresInDays < 1 || expiresInDays > MAX_EXPIRES_DAYS)
    throw bad(`expiry of ${expiresInDays} days is not a whole number between 1 and ${MAX_EXPIRES_DAYS}`);
  if (options.serial !== undefined && (!Number.isSafeInteger(options.serial) || options.serial < 1))
    throw bad(`serial ${options.serial} is not a whole number of at least 1`);
}

async function readExistingCompat(file: string): Promise<Compat | undefined> {
  let bytes: Buffer;
  try {
    const stat = await fs.stat(file);
    if (stat.size > MAX_COMPAT_BYTES)
      throw new ClgwError('YAML_INVALID', `${file} is ${stat.size} bytes, more than ${MAX_COMPAT_BYTES}`);
    bytes = await fs.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return parseCompat(bytes, file);
}

/**
 * Copies `source` to `tree/relPath` atomically (temp file, fsync, rename, fsync directory),
 * computing size and SHA-256 from the stream as it passes. Publishing a file onto itself only
 * hashes it.
 */
export async function publishArtifact(source: string, tree: string, relPath: string): Promise<Artifact> {
  const dest = path.join(tree, relPath);
  const stat = await statSource(source);
  if (path.resolve(source) === path.resolve(dest)) {
    const { size, sha256 } = await hashFile(source);
    return { path: relPath, size, sha256 };
  }
  const dir = path.dirname(dest);
  await fs.mkdir(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(dest)}.${randomBytes(6).toString('hex')}.tmp`);
  const hash = createHash('sha256');
  let size = 0;
  try {
    await pipeline(
      createReadStream(source),
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      }),
      createWriteStream(temp, { flags: 'wx', mode: 0o644 }),
    );
    // fsync through a second descriptor: it flushes the file's pages, whoever wrote them.
    const handle = await fs.open(temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (size !== stat.size)
      throw new ClgwError(
        'ARTIFACT_TRUNCATED',
        `${source} changed size while being copied (${stat.size} → ${size})`,
      );
    await fs.rename(temp, dest);
  } catch (e) {
    await fs.rm(temp, { force: true });
    if (e instanceof ClgwError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new ClgwError(
      err.code === 'ENOSPC' ? 'NO_SPACE' : 'INTERNAL',
      `cannot copy ${source} to ${dest}: ${err.message}`,
      {
        cause: e,
        details: { source, dest },
      },
    );
  }
  await fsyncDir(dir);
  return { path: relPath, size, sha256: hash.digest('hex') };
}

/**
 * Writes the chunk index and the chunk pack of a published artifact beside it (`<path>.idx`,
 * `<path>.pack`; the pack first, each atomically) and returns the index entry for compat.yaml.
 * Each chunk is deflated on its own (raw deflate, best level) and stored so when that is smaller,
 * else stored as it is. See core/src/release/chunk-index.ts for the formats. Memory: one chunk,
 * 1 MiB of pack and one batch of entries at a time.
 */
export async function publishChunkIndex(
  tree: string,
  artifact: Artifact,
  chunkSize = DEFAULT_CHUNK_SIZE,
): Promise<ChunkIndexRef> {
  const relPath = `${artifact.path}.idx`;
  const packPath = `${artifact.path}.pack`;
  const packHash = createHash('sha256');
  let packSize = 0;
  const header = { chunkSize, artifactSize: artifact.size };
  await writeFileAtomicWith(path.join(tree, relPath), (indexHandle) =>
    writeIndexFile(
      indexHandle,
      header,
      async (push) => {
        await writeFileAtomicWith(path.join(tree, packPath), async (packHandle) => {
          const entries = Buffer.allocUnsafe(BATCH_CHUNKS * INDEX_ENTRY_BYTES);
          let batched = 0;
          const pending = Buffer.allocUnsafe(PACK_BUFFER_BYTES);
          let pendingUsed = 0;
          const flushPack = async () => {
            for (let done = 0; done < pendingUsed; )
              done += (await packHandle.write(pending, done, pendingUsed - done)).bytesWritten;
            pendingUsed = 0;
          };
          let count = 0;
          await forEachChunk(path.join(tree, artifact.path), chunkSize, async (chunk) => {
            const deflated = deflateRawSync(chunk, { level: 9 });
            const stored = deflated.length < chunk.length ? deflated : chunk;
            fillEntry(entries, batched, chunkDigest(chunk), stored.length);
            packHash.update(stored);
            packSize += stored.length;
            if (pendingUsed + stored.length > pending.length) await flushPack();
            pendingUsed += stored.copy(pending, pendingUsed);
            count++;
            if (++batched === BATCH_CHUNKS) {
              await push(entries);
              batched = 0;
            }
          });
          if (batched > 0) await push(entries.subarray(0, batched * INDEX_ENTRY_BYTES));
          await flushPack();
          if (count !== chunkCount(artifact.size, chunkSize))
            throw new ClgwError(
              'ARTIFACT_TRUNCATED',
              `${artifact.path} changed size while its chunk index was made (${count} chunks)`,
            );
        });
      },
      9,
    ),
  );
  const index = await hashFile(path.join(tree, relPath));
  return {
    path: relPath,
    chunkSize,
    size: index.size,
    sha256: index.sha256,
    pack: { path: packPath, size: packSize, sha256: packHash.digest('hex') },
  };
}

/** Entries batched per write of the index; bytes of pack written at once. */
const BATCH_CHUNKS = 2048;
const PACK_BUFFER_BYTES = 1024 * 1024;

/**
 * Calls `onChunk` with each chunk of `file` in order (the last one short when the size is not a
 * multiple of `chunkSize`), read as a stream; the buffer is reused after `onChunk` settles.
 */
export async function forEachChunk(
  file: string,
  chunkSize: number,
  onChunk: (chunk: Buffer, index: number) => Promise<void> | void,
): Promise<number> {
  const chunk = Buffer.allocUnsafe(chunkSize);
  let filled = 0;
  let index = 0;
  for await (const data of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    const piece = data as Buffer;
    for (let at = 0; at < piece.length; ) {
      const n = piece.copy(chunk, filled, at);
      filled += n;
      at += n;
      if (filled === chunkSize) {
        await onChunk(chunk, index++);
        filled = 0;
      }
    }
  }
  if (filled > 0) await onChunk(chunk.subarray(0, filled), index++);
  return index;
}

async function statSource(source: string): Promise<{ size: number }> {
  let stat: Stats;
  try {
    stat = await fs.stat(source);
  } catch (e) {
    throw new ClgwError('INVALID_REQUEST', `cannot read image ${source}: ${(e as Error).message}`, {
      cause: e,
      details: { file: source },
    });
  }
  if (!stat.isFile()) throw new ClgwError('INVALID_REQUEST', `image ${source} is not a regular file`);
  if (stat.size === 0) throw new ClgwError('INVALID_REQUEST', `image ${source} is empty`);
  if (stat.size > MAX_ARTIFACT_SIZE)
    throw new ClgwError(
      'INVALID_REQUEST',
      `image ${source} is ${stat.size} bytes, more than ${MAX_ARTIFACT_SIZE}`,
    );
  return { size: stat.size };
}

/** Size and SHA-256 (lowercase hex) of a file, read as a stream. */
export async function hashFile(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** `2026-11-20T10:00:00Z`: whole seconds, the form compat.yaml documents use. */
function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
