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
  | { kind: 'update'; release: PlatformRelease; serial: number }
  /**
   * The release published is older than the one running: the vendor removed the newer one from
   * compat.yaml (re-publishing the previous). Nothing to install, and no downgrade either: the box
   * keeps what it runs until a newer release is published.
   */
  | { kind: 'newer-running'; version: string; published: string; serial: number }
  /**
   * The release is withdrawn: never installed (not even forced), and a box already running it
   * keeps it (`running`) — a withdrawal is not a downgrade; rolling back needs a newer release.
   */
  | { kind: 'withdrawn'; release: PlatformRelease; running: boolean; serial: number };

/**
 * Decides between "up to date" and "update to this release", checking in order: document
 * published in the future (`RELEASE_NOT_YET_VALID`), expired (`RELEASE_EXPIRED`), replayed older document (`SERIAL_REPLAYED`), platform absent
 * (`PLATFORM_MISMATCH`), release older than the running version (`newer-running`: kept, no
 * error), release older than the highest version ever installed (`DOWNGRADE_REFUSED`), a withdrawn release (running it or not: `withdrawn`), same version (up to
 * date), running version below the release's `minSourceVersion` (`SOURCE_VERSION_TOO_OLD`).
 */
export function decideUpdate(compat: Compat, ctx: UpdateContext): UpdateDecision {
  const running = requireVersion('running version', ctx.runningVersion);
  const highest =
    ctx.highestVersion === undefined
      ? undefined
      : requireVersion('highest installed version', ctx.highestVersion);
  const release = platformEntry(compat, ctx).release;

  // Before the rollback protection below: this installs nothing, so it cannot be a way around it.
  if (compareVersions(release.version, running) < 0)
    return { kind: 'newer-running', version: running, published: release.version, serial: compat.serial };
  if (highest !== undefined && compareVersions(release.version, highest) < 0)
    throw downgrade(release.version, `the highest version ever installed here, ${highest}`);

  // Before the source-version rule: a withdrawn release is not installed whatever it requires.
  if (release.withdrawn)
    return {
      kind: 'withdrawn',
      release,
      running: compareVersions(release.version, running) === 0,
      serial: compat.serial,
    };

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

/** The release an appliance downloaded and installed, as the journal's target names it. */
export interface PendingRelease {
  version: string;
  /** The serial of the compat.yaml that offered it. */
  serial: number;
  platform: Platform;
  artifacts: { boot: { sha256: string }; root: { sha256: string } };
}

/** What the last look before switching found (see {@link lastLook}). */
export type LastLook =
  | { kind: 'offered' }
  /** `reason`: the vendor's, when the release was withdrawn. */
  | { kind: 'halted'; message: string; reason?: string }
  | { kind: 'unjudged'; message: string };

/**
 * The last look before switching: is a release downloaded and installed earlier still what
 * compat.yaml offers this platform? `offered`; `halted` when the vendor withdrew it, names another
 * release (or other images under the same version), or no longer names the platform at all — the
 * box discards it; `unjudged` when the document cannot say (published in the future, expired, or
 * older than the one that offered the release: a stale mirror or a replay), and the box goes on
 * (see the machine's `lastLook` state). Pure.
 */
export function lastLook(compat: Compat, pending: PendingRelease, now: number): LastLook {
  try {
    // The document that offered the release is the floor: an older one cannot take it back.
    requireCurrent(compat, { now, lastSerial: pending.serial });
  } catch (e) {
    if (e instanceof ClgwError) return { kind: 'unjudged', message: e.message };
    throw e;
  }
  const release = compat.platforms[pending.platform]?.release;
  const v = pending.version;
  if (!release)
    return {
      kind: 'halted',
      message: `compat.yaml (serial ${compat.serial}) no longer names a release for platform ${pending.platform}`,
    };
  if (release.version !== v)
    return {
      kind: 'halted',
      message: `compat.yaml (serial ${compat.serial}) now names ${release.version} instead of ${v}`,
    };
  if (release.withdrawn)
    return {
      kind: 'halted',
      message: `the vendor withdrew ${v} (${release.withdrawn.reason})`,
      reason: release.withdrawn.reason,
    };
  if (
    release.artifacts.boot.sha256 !== pending.artifacts.boot.sha256 ||
    release.artifacts.root.sha256 !== pending.artifacts.root.sha256
  )
    return {
      kind: 'halted',
      message: `compat.yaml (serial ${compat.serial}) now names other images for ${v} than the ones downloaded`,
    };
  // A rollout is not looked at: it decides who starts an update, not who finishes one — taking a
  // release back from the boxes that have it is what a withdrawal is for.
  return { kind: 'offered' };
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
  requireCurrent(compat, ctx);
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

/** Refuses a document outside its validity (published … expires) or older than one accepted. */
function requireCurrent(compat: Compat, ctx: Pick<UpdateContext, 'lastSerial' | 'now'>): void {
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
