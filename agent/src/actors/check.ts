import { ClgwError, isClgwError } from '@clgw/core/errors.js';
import type { Validators } from '@clgw/core/platform/http.js';
import { otherSlot } from '@clgw/core/platform/paths.js';
import { MAX_COMPAT_BYTES, parseCompat } from '@clgw/core/release/parse.js';
import { inRollout, rolloutBucket } from '@clgw/core/release/rollout.js';
import { rootsPem, trustAt } from '@clgw/core/release/root-rotation.js';
import type { Compat, Rollout } from '@clgw/core/release/schema.js';
import {
  envelopeRevocations,
  envelopeRotation,
  parseTrustedRoots,
  verifyCompatSignature,
} from '@clgw/core/release/signature.js';
import { readRunningRelease } from '@clgw/core/system/os-release.js';
import type { Deps } from '../deps.js';
import type { Journal } from '../machine/journal.js';
import type { CheckOutcome } from '../machine/update.machine.js';
import { decideUpdate, type LastLook, lastLook } from '../release/policy.js';
import { readBootedSlot } from '../slot/booted.js';
import { ensureApplianceId } from '../ssh/appliance-id.js';
import { clearRecovered, updateAlarms } from '../state/alarms.js';
import { readHistory, updateHistory } from '../state/history.js';
import { adoptRevocations } from '../state/revocations.js';
import { adoptRotation } from '../state/root-rotation.js';
import { clockFloor, clockNotSet } from '../system/clock-floor.js';

/** The signature envelope is small: a signature and at most a few certificates. */
const MAX_SIGNATURE_BYTES = 64 * 1024;

/** `compat.yaml?timestamp=<unix ns>` (the vendor's cache-busting query) under the base URL. */
export function compatUrl(baseUrl: string, file: string, nowMs: number): URL {
  const url = new URL(file, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  url.searchParams.set('timestamp', (BigInt(Math.trunc(nowMs)) * 1_000_000n).toString());
  return url;
}

/**
 * The last compat.yaml that verified, its signature envelope and the server's validators for it.
 * Held in memory by the daemon: the next check sends the validators, and a server that answers
 * 304 (nothing published since) costs one small request and no body — the nightly window's and
 * the portal's repeated checks.
 */
export interface CompatCache {
  last?: { document: Buffer; envelope: Buffer | undefined; validators: Validators };
}

/**
 * Fetches compat.yaml and its signature and verifies the signature chain to the pinned root
 * before parsing anything. Nothing from the document may be used before this returns.
 *
 * With a cached document, compat.yaml is asked for only if changed; unchanged, the cached
 * document and envelope are verified again (certificates expire; `now` moves; a revocation list
 * may have arrived) and used. If they no longer verify, both are fetched again unconditionally: a
 * vendor may re-sign an unchanged document.
 */
export async function fetchCompat(
  deps: Pick<Deps, 'http' | 'config' | 'trustedRootsPem' | 'compatCache' | 'paths' | 'log'>,
  now: number,
  signal: AbortSignal,
): Promise<{ compat: Compat; signer: string }> {
  const cached = deps.compatCache.last;
  const docUrl = compatUrl(deps.config.baseUrl, 'compat.yaml', now).toString();
  const first = await deps.http.getIfChanged(docUrl, {
    maxBytes: MAX_COMPAT_BYTES,
    validators: cached?.validators,
    signal,
  });
  if (!first.changed && cached) {
    try {
      return await verifiedCompat(deps, cached.document, cached.envelope, now);
    } catch {
      deps.compatCache.last = undefined;
      return fetchCompat(deps, now, signal);
    }
  }
  if (!first.changed) throw new Error('the server answered 304 to a request without validators');
  const document = first.body;
  let envelope: Buffer | undefined;
  try {
    envelope = await deps.http.getBuffer(compatUrl(deps.config.baseUrl, 'compat.yaml.sig', now).toString(), {
      maxBytes: MAX_SIGNATURE_BYTES,
      signal,
    });
  } catch (e) {
    // A mirror without the signature is an unsigned release: say so, not "HTTP 404".
    if (!(isClgwError(e) && e.code === 'HTTP_STATUS' && e.details.status === 404)) throw e;
  }
  deps.compatCache.last = undefined;
  const result = await verifiedCompat(deps, document, envelope, now);
  if (first.validators) deps.compatCache.last = { document, envelope, validators: first.validators };
  return result;
}

/**
 * The envelope's root rotation first: verified against the image's pinned roots (a bad one refuses
 * the document) and, when none is stored yet, persisted before anything is judged by it. Then its
 * revocation list: verified against every root trusted through the rotation and, when newer than
 * the stored one, persisted. Then the signature and chain against the roots that apply now (the
 * rotated-from root only until the overlap ends) and the list that applies — the stored ones, so
 * an envelope replayed without the rotation or the list is still held to them.
 */
async function verifiedCompat(
  deps: Pick<Deps, 'trustedRootsPem' | 'paths' | 'log'>,
  document: Buffer,
  envelope: Buffer | undefined,
  now: number,
): Promise<{ compat: Compat; signer: string }> {
  const offeredRotation = envelope ? envelopeRotation(envelope, deps.trustedRootsPem, now) : undefined;
  const rotation = await adoptRotation(
    deps,
    deps.paths.rootRotation,
    deps.trustedRootsPem,
    offeredRotation,
    now,
  );
  const offered = envelope
    ? envelopeRevocations(envelope, deps.trustedRootsPem, undefined, rotation)
    : undefined;
  // The stored list is verified against the same roots a new one may be signed by (trustAt).
  const listRootsPem = rotation
    ? rootsPem(trustAt(parseTrustedRoots(deps.trustedRootsPem), rotation, now).listRoots)
    : deps.trustedRootsPem;
  const revocations = await adoptRevocations(deps, deps.paths.revocations, listRootsPem, offered);
  const { signer } = verifyCompatSignature({
    document,
    envelope,
    trustedRootsPem: deps.trustedRootsPem,
    now,
    ...(revocations ? { revocations } : {}),
    ...(rotation ? { rotation } : {}),
  });
  return { compat: parseCompat(document), signer };
}

/**
 * Refuses to fetch anything with a clock before the running image's floor (`CLOCK_NOT_SET`,
 * system/clock-floor.ts): checked first, because with such a clock the TLS handshake or the
 * signature chain fails next and its error would blame the server or the certificates.
 */
export function requireClockSet(now: number, patchLevel: string | undefined): void {
  const unset = clockNotSet(now, clockFloor(patchLevel));
  if (unset) throw unset;
}

/**
 * Fetches and verifies compat.yaml ({@link fetchCompat}), applies the version rules, and records
 * the serial (replay protection).
 */
export async function checkForRelease(
  deps: Deps,
  journal: Journal,
  signal: AbortSignal,
): Promise<CheckOutcome> {
  const now = deps.clock.now();
  deps.log.info('checking for a release', { baseUrl: deps.config.baseUrl, trigger: journal.trigger });
  const running = await readRunningRelease(deps.paths.osRelease);
  requireClockSet(now, running.patchLevel);
  const { compat, signer } = await fetchCompat(deps, now, signal);
  const runningVersion = running.version;

  const [history, booted] = await Promise.all([readHistory(deps.paths.history), readBootedSlot(deps.paths)]);
  const decision = decideUpdate(compat, {
    platform: deps.config.platform,
    runningVersion,
    highestVersion: history.highestVersion,
    lastSerial: history.lastSerial,
    now,
  });
  if (decision.serial !== history.lastSerial) {
    await updateHistory(deps.paths.history, (h) => ({ ...h, lastSerial: decision.serial }));
  }
  deps.log.info('compat.yaml verified', {
    serial: decision.serial,
    signer,
    decision: decision.kind,
  });

  if (decision.kind === 'newer-running') {
    // The vendor took the newer release off compat.yaml: a halt, not a downgrade.
    deps.log.warn('compat.yaml names an older release than the one running; keeping it', {
      running: decision.version,
      published: decision.published,
    });
    return { kind: 'upToDate', version: decision.version, published: decision.published };
  }
  if (decision.kind === 'up-to-date') {
    await updateAlarms(deps.paths.alarms, (a) => clearRecovered(a, new Date(now).toISOString()));
    return { kind: 'upToDate', version: decision.version };
  }
  if (decision.kind === 'withdrawn') {
    // Not even `clgw update --force` takes it: a withdrawal is the vendor saying the release is bad,
    // unlike a rollout (not yet offered) or a rollback here (bad on this box, maybe not elsewhere).
    const { version, withdrawn } = decision.release;
    deps.log.warn('the release compat.yaml names is withdrawn', {
      version,
      reason: withdrawn?.reason,
      running: decision.running,
    });
    return { kind: 'withdrawn', version, reason: withdrawn?.reason ?? '', running: decision.running };
  }
  const { release } = decision;
  const rejected = history.rejected.find((r) => r.version === release.version);
  if (rejected && !journal.force) {
    return {
      kind: 'rejected',
      version: release.version,
      message: `gateway OS ${release.version} was rolled back on this appliance (${rejected.message}); it is not installed again automatically — "clgw update --force" retries it`,
    };
  }
  if (release.rollout && !(await offeredHere(deps, release.version, release.rollout, journal.force))) {
    return { kind: 'notOffered', version: release.version, percent: release.rollout.percent };
  }
  if (signal.aborted) throw new ClgwError('INTERNAL', 'check aborted');
  return {
    kind: 'available',
    target: {
      version: release.version,
      serial: decision.serial,
      platform: deps.config.platform,
      slot: otherSlot(booted),
      sourceSlot: booted,
      sourceVersion: runningVersion,
      ...(release.osPatchLevel ? { osPatchLevel: release.osPatchLevel } : {}),
      artifacts: { boot: { ...release.artifacts.boot }, root: { ...release.artifacts.root } },
    },
  };
}

/**
 * Whether a release under a staged rollout is offered to this appliance: its bucket for the
 * release's salt (core/release/rollout.ts) is below the percentage, or the technician forced the
 * update (`clgw update --force` takes it whatever the cohort).
 *
 * The identity is the appliance ID on the data partition (the one support certificates name:
 * random, never the MAC), read and checked at every check. A file that is missing or holds no
 * valid ID is replaced by a new random one, with a warning: the box then may fall in another
 * cohort, which costs nothing but the stability of that one box's place in the rollout — refusing
 * every release until someone repairs the file would cost more. A factory reset erases the data
 * partition, so a reset box gets a new ID and may land in another cohort too.
 */
async function offeredHere(
  deps: Deps,
  version: string,
  rollout: Rollout,
  force: boolean | undefined,
): Promise<boolean> {
  const { id, created } = await ensureApplianceId(deps.paths.applianceId);
  if (created)
    deps.log.warn('appliance ID was missing or invalid: made a new one (the rollout cohort may change)', {
      file: deps.paths.applianceId,
    });
  const bucket = rolloutBucket(rollout.salt, id);
  const offered = inRollout(bucket, rollout.percent);
  // The bucket and percentage explain the decision; the ID stays out of the log line.
  deps.log.info('staged rollout', {
    version,
    percent: rollout.percent,
    bucket,
    offered,
    ...(force && !offered ? { forced: true } : {}),
  });
  return offered || force === true;
}

/**
 * The last look before switching (the machine's `lastLook`): fetches compat.yaml again through
 * {@link fetchCompat} — signature, chain and revocations checked; a conditional GET, so one small
 * request when nothing was published — and asks {@link lastLook} whether the installed target is
 * still offered. Whatever keeps the document from being fetched or verified is `unjudged` with a
 * warning in the log, never an error: the release was verified when it was downloaded, and the
 * machine goes on to switch (see its `lastLook` state). Nothing is written here but the log.
 */
export async function lastLookAtRelease(
  deps: Deps,
  journal: Journal,
  signal: AbortSignal,
): Promise<LastLook> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'a last look without a target release in the journal');
  const now = deps.clock.now();
  let look: LastLook;
  try {
    const { compat } = await fetchCompat(deps, now, signal);
    look = lastLook(compat, { ...target, platform: deps.config.platform }, now);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    look = { kind: 'unjudged', message };
  }
  if (look.kind === 'unjudged')
    deps.log.warn(
      'last look before switching: compat.yaml could not be judged; switching to the release verified at download',
      {
        version: target.version,
        reason: look.message,
      },
    );
  else if (look.kind === 'halted')
    deps.log.warn('last look before switching: the release is no longer offered; discarding it', {
      version: target.version,
      reason: look.message,
    });
  else deps.log.info('last look before switching: the release is still offered', { version: target.version });
  return look;
}
