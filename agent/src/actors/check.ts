import type { Deps } from '../deps.js';
import { ClgwError, isClgwError } from '../errors.js';
import type { Journal } from '../machine/journal.js';
import type { CheckOutcome } from '../machine/update.machine.js';
import { otherSlot } from '../platform/paths.js';
import { MAX_COMPAT_BYTES, parseCompat } from '../release/parse.js';
import { decideUpdate } from '../release/policy.js';
import type { Compat } from '../release/schema.js';
import { verifyCompatSignature } from '../release/signature.js';
import { readBootedSlot } from '../slot/booted.js';
import { clearRecovered, updateAlarms } from '../state/alarms.js';
import { readHistory, updateHistory } from '../state/history.js';
import { readRunningVersion } from '../system/os-release.js';

/** The signature envelope is small: a signature and at most a few certificates. */
const MAX_SIGNATURE_BYTES = 64 * 1024;

/** `compat.yaml?timestamp=<unix ns>` (the vendor's cache-busting query) under the base URL. */
export function compatUrl(baseUrl: string, file: string, nowMs: number): URL {
  const url = new URL(file, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  url.searchParams.set('timestamp', (BigInt(Math.trunc(nowMs)) * 1_000_000n).toString());
  return url;
}

/**
 * Fetches compat.yaml and its signature and verifies the signature chain to the pinned root
 * before parsing anything. Nothing from the document may be used before this returns.
 */
export async function fetchCompat(
  deps: Pick<Deps, 'http' | 'config' | 'trustedRootsPem'>,
  now: number,
  signal: AbortSignal,
): Promise<{ compat: Compat; signer: string }> {
  const docUrl = compatUrl(deps.config.baseUrl, 'compat.yaml', now);
  const document = await deps.http.getBuffer(docUrl.toString(), { maxBytes: MAX_COMPAT_BYTES, signal });
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
  const { signer } = verifyCompatSignature({
    document,
    envelope,
    trustedRootsPem: deps.trustedRootsPem,
    now,
  });
  return { compat: parseCompat(document), signer };
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
  const { compat, signer } = await fetchCompat(deps, now, signal);

  const [history, runningVersion, booted] = await Promise.all([
    readHistory(deps.paths.history),
    readRunningVersion(deps.paths.osRelease),
    readBootedSlot(deps.paths),
  ]);
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

  if (decision.kind === 'up-to-date') {
    await updateAlarms(deps.paths.alarms, (a) => clearRecovered(a, new Date(now).toISOString()));
    return { kind: 'upToDate', version: decision.version };
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
      artifacts: { boot: { ...release.artifacts.boot }, root: { ...release.artifacts.root } },
    },
  };
}
