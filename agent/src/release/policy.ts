import { ClgwError } from '@clgw/core/errors.js';
import {
  type Compat,
  type ContainerRef,
  compareVersions,
  compatPlatforms,
  isStrictSemver,
  type Platform,
  type PlatformEntry,
  type PlatformRelease,
  parseUtcTimestamp,
} from '@clgw/core/release/schema.js';

/**
 * The version rules: given a verified, parsed compat.yaml and what the appliance knows about
 * itself, is there something to install? Pure; every refusal is its own error code so the
 * console and the portal can say exactly why.
 */

export interface UpdateContext {
  platform: Platform;
  /** The gateway OS release of the running slot. */
  runningVersion: string;
  /** The highest release ever installed here (kept on the data partition); blocks rollback attacks. */
  highestVersion?: string;
  /** The serial of the last compat.yaml accepted; an older one is a replay. */
  lastSerial?: number;
  /** Milliseconds since the epoch. */
  now: number;
}

/**
 * How far in the future `published` may lie by the appliance's clock: clocks that NTP keeps
 * differ by far less, and a document signed a moment ago must not be refused for a few seconds.
 */
export const PUBLISHED_SKEW_MS = 5 * 60_000;

export type UpdateDecision =
  | { kind: 'up-to-date'; version: string; serial: number }
  | { kind: 'update'; release: PlatformRelease; serial: number };

/**
 * Decides between "up to date" and "update to this release", checking in order: document
 * published in the future (`RELEASE_NOT_YET_VALID`), expired (`RELEASE_EXPIRED`), replayed older document (`SERIAL_REPLAYED`), platform absent
 * (`PLATFORM_MISMATCH`), release older than the running or highest installed version
 * (`DOWNGRADE_REFUSED`), same version (up to date), running version below the release's
 * `minSourceVersion` (`SOURCE_VERSION_TOO_OLD`).
 */
export function decideUpdate(compat: Compat, ctx: UpdateContext): UpdateDecision {
  const running = requireVersion('running version', ctx.runningVersion);
  const highest =
    ctx.highestVersion === undefined
      ? undefined
      : requireVersion('highest installed version', ctx.highestVersion);
  const release = platformEntry(compat, ctx).release;

  if (highest !== undefined && compareVersions(release.version, highest) < 0)
    throw downgrade(release.version, `the highest version ever installed here, ${highest}`);
  if (compareVersions(release.version, running) < 0)
    throw downgrade(release.version, `the running version ${running}`);

  if (compareVersions(release.version, running) === 0)
    return { kind: 'up-to-date', version: running, serial: compat.serial };

  if (compareVersions(running, release.minSourceVersion) < 0)
    throw new ClgwError(
      'SOURCE_VERSION_TOO_OLD',
      `release ${release.version} can only be installed over ${release.minSourceVersion} or later; this appliance runs ${running}`,
      {
        details: {
          version: release.version,
          minSourceVersion: release.minSourceVersion,
          runningVersion: running,
        },
      },
    );

  return { kind: 'update', release, serial: compat.serial };
}

/**
 * The containers compat.yaml names for this platform, after the same document checks as
 * {@link decideUpdate} (expiry, replay, platform); the gateway OS version rules do not apply.
 */
export function containersFor(
  compat: Compat,
  ctx: Pick<UpdateContext, 'platform' | 'lastSerial' | 'now'>,
): ContainerRef[] {
  return platformEntry(compat, ctx).containers;
}

/** The platform's entry of a document that is current and not replayed. */
function platformEntry(
  compat: Compat,
  ctx: Pick<UpdateContext, 'platform' | 'lastSerial' | 'now'>,
): PlatformEntry {
  // A document is valid from `published` to `expires`, like a certificate. One from the future
  // means this clock is behind (set, but not yet by NTP), which makes expired documents and
  // certificates look current, or the document is post-dated: either way its times cannot be judged.
  const published = parseUtcTimestamp(compat.published);
  if (!(ctx.now >= published - PUBLISHED_SKEW_MS))
    throw new ClgwError(
      'RELEASE_NOT_YET_VALID',
      `compat.yaml (serial ${compat.serial}) was published at ${compat.published}, but it is now ${isoOrRaw(ctx.now)} by this appliance's clock — more than ${PUBLISHED_SKEW_MS / 60_000} minutes earlier: the clock is behind or the document is post-dated`,
      { details: { serial: compat.serial, published: compat.published, now: isoOrRaw(ctx.now) } },
    );

  const expires = parseUtcTimestamp(compat.expires);
  if (!(ctx.now < expires))
    throw new ClgwError(
      'RELEASE_EXPIRED',
      `compat.yaml (serial ${compat.serial}) expired at ${compat.expires}; it is now ${isoOrRaw(ctx.now)} — the mirror serves a stale document or the clock is wrong`,
      { details: { serial: compat.serial, expires: compat.expires, now: ctx.now } },
    );

  if (ctx.lastSerial !== undefined && compat.serial < ctx.lastSerial)
    throw new ClgwError(
      'SERIAL_REPLAYED',
      `compat.yaml has serial ${compat.serial}, older than serial ${ctx.lastSerial} already accepted — an old signed document was replayed`,
      { details: { serial: compat.serial, lastSerial: ctx.lastSerial } },
    );

  const entry = compat.platforms[ctx.platform];
  if (!entry) {
    const present = compatPlatforms(compat);
    throw new ClgwError(
      'PLATFORM_MISMATCH',
      `compat.yaml (serial ${compat.serial}) has no release for platform ${ctx.platform}; it names ${present.join(', ')}`,
      { details: { platform: ctx.platform, present } },
    );
  }
  return entry;
}

function downgrade(version: string, than: string): ClgwError {
  return new ClgwError(
    'DOWNGRADE_REFUSED',
    `release ${version} is older than ${than}; downgrades are refused`,
    {
      details: { version },
    },
  );
}

function requireVersion(what: string, v: string): string {
  if (!isStrictSemver(v))
    throw new ClgwError('STATE_INVALID', `${what} ${JSON.stringify(v)} is not a semantic version`, {
      details: { [what]: v },
    });
  return v;
}

function isoOrRaw(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}
