// Only the two functions used: the package's index loads all of it (ranges, caches) at start.
import semverCompare from 'semver/functions/compare.js';
import semverValid from 'semver/functions/valid.js';
import * as z from 'zod';
import { ClgwError } from '../errors.js';
import { isPatchLevel } from '../system/os-release.js';
import { chunkCount, isValidChunkSize, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, maxIndexSize } from './chunk-index.js';

/**
 * compat.yaml schema v1: what the vendor publishes, per platform, as the current gateway OS
 * release and container set. Everything in it is untrusted until its signature has been checked,
 * and even then it is validated strictly: unknown keys are errors (a typo in a signed document
 * must not silently drop a field), every number and string is bounded. See README.md.
 */

export const COMPAT_SCHEMA_VERSION = 1;

export const PLATFORMS = ['physical', 'virtual', 'kvm'] as const;
export type Platform = (typeof PLATFORMS)[number];

export const CONTAINER_NAMES = ['tunnel', 'micloud', 'freeswitch'] as const;
export type ContainerName = (typeof CONTAINER_NAMES)[number];

/** Largest artifact we accept: far above a 700 MB update, far below anything that fits no disk. */
export const MAX_ARTIFACT_SIZE = 64 * 1024 ** 3;
export const MAX_PATH_LENGTH = 255;
const MAX_PATH_SEGMENT_LENGTH = 128;
const MAX_PATH_SEGMENTS = 8;
const MAX_VERSION_LENGTH = 64;
const MAX_CONTAINERS = 16;
export const MAX_ROLLOUT_SALT_LENGTH = 64;
export const MAX_WITHDRAWN_REASON_LENGTH = 200;

/** A segment never starts with a dot, which rules out `.`, `..` and hidden files at once. */
const SEGMENT = /^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;
const ISO_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?Z$/;
/** Printable ASCII without spaces: a salt is typed on a command line and read back from YAML. */
const ROLLOUT_SALT = new RegExp(`^[!-~]{1,${MAX_ROLLOUT_SALT_LENGTH}}$`);
/**
 * A withdrawal's reason: printable ASCII, spaces inside but not at either end. It is shown on tty1
 * (the VGA console draws ASCII only), in the portal and in the log, so no control characters.
 */
const WITHDRAWN_REASON = new RegExp(`^[!-~](?:[ -~]{0,${MAX_WITHDRAWN_REASON_LENGTH - 2}}[!-~])?$`);
const CONTAINER_VERSION = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
/** An OCI image reference: registry/name:tag or name@sha256:digest, no whitespace or quotes. */
const IMAGE_REFERENCE =
  /^[a-z0-9][a-z0-9._/-]*(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(?:@sha256:[0-9a-f]{64})?$/;

/**
 * Why a path is not a safe relative artifact path, or undefined when it is. Artifact paths are
 * joined to the download base URL and to local mirror directories, so they must never climb out.
 */
export function artifactPathProblem(p: string): string | undefined {
  if (p.length === 0) return 'must not be empty';
  if (p.length > MAX_PATH_LENGTH) return `must be at most ${MAX_PATH_LENGTH} characters`;
  if (p.startsWith('/')) return 'must be relative (no leading "/")';
  if (p.includes('\\')) return 'must not contain a backslash';
  const segments = p.split('/');
  if (segments.length > MAX_PATH_SEGMENTS) return `must have at most ${MAX_PATH_SEGMENTS} segments`;
  for (const segment of segments) {
    if (segment === '') return 'must not contain empty segments ("//" or a trailing "/")';
    if (segment === '..' || segment === '.') return `must not contain a "${segment}" segment`;
    if (segment.length > MAX_PATH_SEGMENT_LENGTH)
      return `segments must be at most ${MAX_PATH_SEGMENT_LENGTH} characters`;
    if (!SEGMENT.test(segment))
      return `segment "${segment}" must use only A-Z a-z 0-9 . _ + - and not start with "."`;
  }
  return undefined;
}

/**
 * True when `v` is a strict semantic version exactly as written: no `v` prefix, no padding, and no
 * build metadata — semver ignores `+build` when ordering, so `1.1.0+a` and `1.1.0+b` would be
 * "the same release" to the version rules while naming different images.
 */
export function isStrictSemver(v: string): boolean {
  return v.length <= MAX_VERSION_LENGTH && semverValid(v, { loose: false }) === v;
}

/** semver ordering of two strict versions: negative, zero or positive like a sort comparator. */
export function compareVersions(a: string, b: string): number {
  return semverCompare(a, b);
}

/** Milliseconds since the epoch of a strict `YYYY-MM-DDTHH:MM:SS[.mmm]Z` string, or NaN. */
export function parseUtcTimestamp(s: string): number {
  const m = ISO_UTC.exec(s);
  if (!m) return Number.NaN;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const ms = Date.UTC(y, mo - 1, d, h, mi, sec, Number((m[7] ?? '0').padEnd(3, '0')));
  const back = new Date(ms);
  // Date.UTC rolls 2026-02-30 over into March; a round trip catches impossible dates.
  if (
    back.getUTCFullYear() !== y ||
    back.getUTCMonth() !== mo - 1 ||
    back.getUTCDate() !== d ||
    back.getUTCHours() !== h ||
    back.getUTCMinutes() !== mi ||
    back.getUTCSeconds() !== sec
  )
    return Number.NaN;
  return ms;
}

const semverString = z
  .string()
  .refine(isStrictSemver, { error: 'expected a strict semantic version such as 1.2.3' });

const timestamp = z.string().refine((s) => !Number.isNaN(parseUtcTimestamp(s)), {
  error: 'expected an ISO-8601 UTC timestamp such as 2026-11-20T10:00:00Z',
});

const artifactPath = z.string().superRefine((p, ctx) => {
  const problem = artifactPathProblem(p);
  if (problem) ctx.addIssue({ code: 'custom', message: `unsafe path: ${problem}`, input: p });
});
const sha256Hex = z.string().regex(SHA256_HEX, { error: 'expected 64 lowercase hex digits' });

export const ArtifactSchema = z.strictObject({
  path: artifactPath,
  size: z
    .number()
    .int({ error: 'expected a whole number of bytes' })
    .min(1, { error: 'expected a size of at least 1 byte' })
    .max(MAX_ARTIFACT_SIZE, { error: `expected a size of at most ${MAX_ARTIFACT_SIZE} bytes (64 GiB)` }),
  sha256: sha256Hex,
});

/**
 * The chunk pack published beside a boot or root artifact (see chunk-index.ts): every chunk,
 * stored or deflated, at the offsets its index gives.
 */
export const ChunkPackSchema = ArtifactSchema;

/** The chunk index published beside a boot or root artifact (see chunk-index.ts). */
export const ChunkIndexSchema = z.strictObject({
  path: artifactPath,
  chunkSize: z.number().refine(isValidChunkSize, {
    error: `expected a power of two from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE}`,
  }),
  // Bounded by its artifact's size below; this only keeps the number sane before that check.
  size: z
    .number()
    .int({ error: 'expected a whole number of bytes' })
    .min(1, { error: 'expected a size of at least 1 byte' })
    .max(maxIndexSize(MAX_ARTIFACT_SIZE, MIN_CHUNK_SIZE), { error: 'expected the size of a chunk index' }),
  sha256: sha256Hex,
  /** Optional: without it (or when the mirror lacks it) chunks are fetched from the artifact itself. */
  pack: ChunkPackSchema.optional(),
});

/**
 * A boot or root artifact: optionally with its chunk index, whose size must fit what the
 * artifact's size and the chunk size make, and whose pack holds at least a byte per chunk and no
 * more than the artifact (a signed document must not describe an index that cannot belong to its
 * artifact).
 */
export const SlotArtifactSchema = ArtifactSchema.extend({ index: ChunkIndexSchema.optional() }).superRefine(
  (a, ctx) => {
    if (!a.index || !isValidChunkSize(a.index.chunkSize)) return;
    const chunks = `a ${a.size}-byte artifact in ${a.index.chunkSize}-byte chunks`;
    const most = maxIndexSize(a.size, a.index.chunkSize);
    if (a.index.size > most)
      ctx.addIssue({
        code: 'custom',
        path: ['index', 'size'],
        message: `expected at most ${most} bytes for ${chunks}`,
        input: a.index.size,
      });
    const pack = a.index.pack;
    const least = chunkCount(a.size, a.index.chunkSize);
    if (pack && (pack.size < least || pack.size > a.size))
      ctx.addIssue({
        code: 'custom',
        path: ['index', 'pack', 'size'],
        message: `expected ${least} to ${a.size} bytes for ${chunks}`,
        input: pack.size,
      });
  },
);

/**
 * A staged rollout (rollout.ts): the release is offered only to appliances whose bucket for `salt`
 * lies below `percent`. Two decimals at most, since buckets are basis points: 12.345 would be a
 * promise the bucket cannot keep.
 */
export const RolloutSchema = z.strictObject({
  percent: z
    .number()
    .min(0, { error: 'expected a percentage from 0 to 100' })
    .max(100, { error: 'expected a percentage from 0 to 100' })
    .refine((p) => Math.abs(p * 100 - Math.round(p * 100)) < 1e-6, {
      error: 'expected at most two decimals, such as 12.5',
    }),
  salt: z.string().regex(ROLLOUT_SALT, {
    error: `expected 1 to ${MAX_ROLLOUT_SALT_LENGTH} printable characters without spaces`,
  }),
});

/**
 * A release the vendor withdrew: never offered again (not to a box in its rollout, not to
 * `clgw update --force` — a withdrawal is the vendor saying the release is bad), and a box that has
 * downloaded it but not yet switched discards it. A box already running it keeps it: a withdrawal
 * is not a downgrade. A mapping with its reason rather than `true`, so every view can say why.
 */
export const WithdrawnSchema = z.strictObject({
  reason: z.string().regex(WITHDRAWN_REASON, {
    error: `expected 1 to ${MAX_WITHDRAWN_REASON_LENGTH} printable characters, not starting or ending with a space`,
  }),
});

export const PlatformReleaseSchema = z
  .strictObject({
    version: semverString,
    minSourceVersion: semverString,
    /**
     * The root's own `CLGW_PATCH_LEVEL` (os-release), which clgw-release reads from the image:
     * the health check holds the booted root to it, and the console can say what an update brings.
     */
    osPatchLevel: z
      .string()
      .refine(isPatchLevel, { error: 'expected a date such as 2026-11-20 (YYYY-MM-DD)' })
      .optional(),
    artifacts: z.strictObject({ boot: SlotArtifactSchema, root: SlotArtifactSchema }),
    /**
     * Optional: without it the release is offered to every appliance. Agents before it refuse the
     * key (mappings are strict), so only a release whose older appliances know it may carry one.
     */
    rollout: RolloutSchema.optional(),
    /** Optional: the release is withdrawn (above). Agents before it refuse the key, like `rollout`. */
    withdrawn: WithdrawnSchema.optional(),
  })
  .superRefine((r, ctx) => {
    // Only compare once both are valid; otherwise semver throws and the field errors say enough.
    if (
      isStrictSemver(r.version) &&
      isStrictSemver(r.minSourceVersion) &&
      compareVersions(r.minSourceVersion, r.version) > 0
    )
      ctx.addIssue({
        code: 'custom',
        path: ['minSourceVersion'],
        message: `must not be above the release version ${r.version}`,
        input: r.minSourceVersion,
      });
  });

export const ContainerRefSchema = z.strictObject({
  name: z.enum(CONTAINER_NAMES, { error: `expected one of ${CONTAINER_NAMES.join(', ')}` }),
  version: z.string().regex(CONTAINER_VERSION, { error: 'expected a version such as 1.1.0.01-296' }),
  image: z
    .string()
    .max(255, { error: 'expected at most 255 characters' })
    .regex(IMAGE_REFERENCE, { error: 'expected an image reference such as registry/name:tag' }),
  /**
   * The image's ID: the SHA-256 of its config, as the engine names it. The agent identifies the
   * image by it, never by its tag, and refuses an archive whose config has another digest.
   * Optional: agents before it refuse the key, so a release for them leaves it out.
   */
  imageId: z.string().regex(IMAGE_ID, { error: 'expected sha256: and 64 lowercase hex digits' }).optional(),
  archive: ArtifactSchema,
});

export const PlatformEntrySchema = z.strictObject({
  release: PlatformReleaseSchema,
  containers: z
    .array(ContainerRefSchema)
    .max(MAX_CONTAINERS, { error: `expected at most ${MAX_CONTAINERS} containers` })
    .superRefine((list, ctx) => {
      const seen = new Set<string>();
      list.forEach((c, i) => {
        if (seen.has(c.name))
          ctx.addIssue({ code: 'custom', path: [i, 'name'], message: 'duplicate container', input: c.name });
        seen.add(c.name);
      });
    })
    .default([]),
});

export const CompatSchema = z
  .strictObject({
    schema: z.literal(COMPAT_SCHEMA_VERSION, {
      error: `unsupported schema version (this agent reads schema ${COMPAT_SCHEMA_VERSION})`,
    }),
    serial: z
      .number()
      .int({ error: 'expected a whole number' })
      .min(1, { error: 'expected a serial of at least 1' })
      .max(Number.MAX_SAFE_INTEGER, { error: `expected a serial of at most ${Number.MAX_SAFE_INTEGER}` }),
    published: timestamp,
    expires: timestamp,
    platforms: z
      .strictObject({
        physical: PlatformEntrySchema.optional(),
        virtual: PlatformEntrySchema.optional(),
        kvm: PlatformEntrySchema.optional(),
      })
      .refine((p) => Object.values(p).some((entry) => entry !== undefined), {
        error: `expected at least one of ${PLATFORMS.join(', ')}`,
      }),
  })
  .superRefine((c, ctx) => {
    const published = parseUtcTimestamp(c.published);
    const expires = parseUtcTimestamp(c.expires);
    if (!Number.isNaN(published) && !Number.isNaN(expires) && expires <= published)
      ctx.addIssue({
        code: 'custom',
        path: ['expires'],
        message: `must be after published (${c.published})`,
        input: c.expires,
      });
  });

export type Artifact = z.output<typeof ArtifactSchema>;
export type ChunkIndexRef = z.output<typeof ChunkIndexSchema>;
export type ChunkPackRef = z.output<typeof ChunkPackSchema>;
export type SlotArtifact = z.output<typeof SlotArtifactSchema>;
export type Rollout = z.output<typeof RolloutSchema>;
export type Withdrawn = z.output<typeof WithdrawnSchema>;
export type PlatformRelease = z.output<typeof PlatformReleaseSchema>;
export type ContainerRef = z.output<typeof ContainerRefSchema>;
export type PlatformEntry = z.output<typeof PlatformEntrySchema>;
export type Compat = z.output<typeof CompatSchema>;

export function isPlatform(value: unknown): value is Platform {
  return typeof value === 'string' && (PLATFORMS as readonly string[]).includes(value);
}

/** The platforms a document names, in the canonical order. */
export function compatPlatforms(compat: Compat): Platform[] {
  return PLATFORMS.filter((p) => compat.platforms[p] !== undefined);
}

/**
 * Validates already-decoded data (from YAML, or built by the release tool) against schema v1.
 * Throws COMPAT_INVALID naming each bad field by its path, e.g.
 * `platforms.virtual.release.artifacts.boot.sha256: expected 64 lowercase hex digits (got "abc")`.
 */
export function validateCompat(data: unknown, source = 'compat.yaml'): Compat {
  const result = CompatSchema.safeParse(data, { reportInput: true });
  if (result.success) return result.data;
  const problems = result.error.issues.map(describeIssue);
  const shown = problems.slice(0, 5);
  const more = problems.length > shown.length ? ` (and ${problems.length - shown.length} more)` : '';
  throw new ClgwError('COMPAT_INVALID', `${source} is invalid: ${shown.join('; ')}${more}`, {
    details: { source, problems },
  });
}

/** zod's type names in the words of a YAML author. */
const EXPECTED: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
};

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  let message: string;
  switch (issue.code) {
    case 'unrecognized_keys':
      message = `unknown ${issue.keys.length === 1 ? 'key' : 'keys'} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
      break;
    case 'invalid_type':
      message =
        issue.input === undefined
          ? `missing (expected ${EXPECTED[issue.expected] ?? issue.expected})`
          : `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeType(issue.input)}`;
      break;
    default:
      message = issue.message;
  }
  const shown =
    issue.code === 'invalid_type' || issue.code === 'unrecognized_keys' ? '' : showValue(issue.input);
  return `${where || '(document)'}: ${message}${shown}`;
}

/** `platforms.virtual.containers[0].name` from zod's path array. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return `${typeof value} ${showRaw(value)}`;
}

function showValue(value: unknown): string {
  if (value === undefined || typeof value === 'object') return '';
  const raw = showRaw(value);
  return raw.length <= 80 ? ` (got ${raw})` : '';
}

function showRaw(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}
