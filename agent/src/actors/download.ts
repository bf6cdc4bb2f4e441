import { promises as fs } from 'node:fs';
import { ClgwError, serializeError } from '@clgw/core/errors.js';
import type { PartitionKind } from '@clgw/core/platform/paths.js';
import { chunkCount } from '@clgw/core/release/chunk-index.js';
import { disableSlot } from '@clgw/core/slot/bootchooser.js';
import { deviceCapacity } from '@clgw/core/slot/device.js';
import { readGrubenv, writeGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { type ArtifactTarget, writeArtifact } from '@clgw/core/slot/stream-write.js';
import type { Deps } from '../deps.js';
import type { Journal, UpdateTarget } from '../machine/journal.js';
import type { Written } from '../machine/update.machine.js';
import { ChunkTable } from '../slot/chunk-table.js';
import { writeArtifactDelta } from '../slot/delta-write.js';
import {
  countFound,
  fetchChunkIndex,
  indexCacheFile,
  loadSourceTable,
  probeOverlap,
  pruneIndexCache,
} from '../slot/index-cache.js';
import { readSlotStatus, type SlotRecord, writeSlotRecord } from '../slot/status.js';

const ARTIFACTS: PartitionKind[] = ['boot', 'root'];
/**
 * Durable offsets are recorded at least 8 MiB (the writers' default) and at least this long apart:
 * a power cut costs at most a second of download or 8 MiB, whichever is more, and a fast download
 * makes a few checkpoints, not dozens a second (see WriteOptions.checkpointIntervalMs).
 */
const CHECKPOINT_INTERVAL_MS = 1000;

/** The artifact's URL: its path in compat.yaml under the base URL. */
export function artifactUrl(baseUrl: string, path: string): string {
  return new URL(path, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).toString();
}

/**
 * Writes the release's boot and root artifacts into the inactive slot, resuming from the journal's
 * durable offsets. An artifact with a chunk index is assembled adaptively (writeArtifactDelta: what
 * the active slot already holds is copied, only the rest fetched with Range requests); without one,
 * or when that is not possible (no usable active slot, a mirror that ignores Range), it is streamed
 * whole (writeArtifact). Either way the slot is read back behind the writes; an artifact so read
 * back whole and matching is marked in `written.readBack` (persisted), and the verify phase
 * (verify.ts) reads back the others — unless a read-back found it wrong before: then it is
 * downloaded whole with SHA-256 in flight (`written.checkInFlight`), and read back by the verify
 * phase. An artifact the journal says is complete is re-hashed from the slot (and so marked read
 * back) and, when its bytes prove wrong, downloaded whole. Before the first byte is written the
 * target slot is disabled in the boot environment (only if it was enabled), so a half-written slot
 * is never booted; the active slot's devices are only ever read.
 */
export async function downloadRelease(
  deps: Deps,
  journal: Journal,
  signal: AbortSignal,
  checkpoint: (written: Written) => void,
): Promise<void> {
  const target = journal.target;
  if (!target) throw new ClgwError('STATE_INVALID', 'downloading without a target release in the journal');
  const { paths } = deps;
  // Read back (again) by this download, or by the verify phase: a mark from an earlier attempt
  // describes bytes that this one re-hashes anyway.
  const written: Written = { boot: 0, root: 0, ...journal.written, readBack: undefined };

  for (const kind of ARTIFACTS) {
    const device = paths.partition(kind, target.slot);
    const capacity = await deviceCapacity(device);
    const size = target.artifacts[kind].size;
    if (size > capacity) {
      throw new ClgwError(
        'NO_SPACE',
        `the ${kind} artifact of ${target.version} (${size} bytes) does not fit slot ${target.slot}'s ${device} (${capacity} bytes)`,
        { details: { device, size, capacity } },
      );
    }
  }

  const env = await readGrubenv(paths.grubenv);
  const disabled = disableSlot(env, target.slot);
  if (!sameEnv(env, disabled)) {
    deps.log.info('disabling the target slot before writing it', { slot: target.slot });
    await writeGrubenv(paths.grubenv, disabled);
  }
  if ((await readSlotStatus(paths.slotStatus))[target.slot]) {
    await writeSlotRecord(paths.slotStatus, target.slot, undefined);
  }

  /** Records what the slot holds durably: persisted first, then reported to the machine. */
  const persist = async () => {
    await deps.persistJournal({
      ...journal,
      written: { ...written },
      updatedAt: new Date(deps.clock.now()).toISOString(),
    });
    checkpoint({ ...written });
  };
  const durable = (kind: PartitionKind, offset: number) => {
    written[kind] = offset;
    return persist();
  };

  const total = target.artifacts.boot.size + target.artifacts.root.size;
  // Only complete artifacts count from the start: an adaptive resume re-counts what the slot holds.
  const complete = ARTIFACTS.filter((k) => written[k] >= target.artifacts[k].size);
  deps.progress.start(
    `downloading ${target.version}`,
    total,
    complete.reduce((sum, k) => sum + target.artifacts[k].size, 0),
  );
  const active = ARTIFACTS.map((k) => paths.partition(k, target.sourceSlot));
  const source = (await readSlotStatus(paths.slotStatus))[target.sourceSlot];
  // The chunk indexes this update may use; anything else there describes what a slot no longer holds.
  await pruneIndexCache(paths.chunkIndexes, [
    ...ARTIFACTS.map((k) => indexCacheFile(paths.chunkIndexes, target.slot, k, target.artifacts[k].sha256)),
    ...ARTIFACTS.flatMap((k) => {
      const sha = recordedArtifact(source, k)?.sha256;
      return sha ? [indexCacheFile(paths.chunkIndexes, target.sourceSlot, k, sha)] : [];
    }),
  ]);

  /** Bytes of the artifacts before the current one: downloaded, and taken from the slots. */
  const totals = { downloaded: 0, reused: 0 };
  let before = 0;
  for (const kind of ARTIFACTS) {
    const artifact = target.artifacts[kind];
    const base = before;
    before += artifact.size;
    const resumeFrom = written[kind];
    deps.log.info('writing artifact into slot', {
      artifact: kind,
      slot: target.slot,
      size: artifact.size,
      resumeFrom,
    });
    const device = paths.partition(kind, target.slot);
    const url = artifactUrl(deps.config.baseUrl, artifact.path);
    const report = (done: number, downloaded: number, reused: number) =>
      deps.progress.update(base + done, {
        downloaded: totals.downloaded + downloaded,
        reused: totals.reused + reused,
      });
    const onCheckpoint = (offset: number) => durable(kind, offset);

    // Checked as it arrives after a read-back found it wrong (verify.ts): then whole, never adaptive.
    const inFlight = written.checkInFlight?.includes(kind) ?? false;
    // Adaptive when the release has a chunk index and the artifact is not (said to be) complete:
    // a complete one is only re-hashed below, and downloaded whole if its bytes prove wrong.
    const delta =
      resumeFrom < artifact.size && !inFlight
        ? await prepareDelta(deps, target, kind, recordedArtifact(source, kind), signal)
        : undefined;
    let outcome: {
      mode: 'delta' | 'full';
      downloaded: number;
      reused: number;
      readBack?: boolean;
      mismatchedChunks?: number;
      packChunksRefetched?: number;
    };
    let fallback = false;
    if (delta) {
      const r = await writeArtifactDelta(
        deps.http,
        { url, size: artifact.size, sha256: artifact.sha256, device },
        {
          activeDevices: active,
          indexFile: delta.indexFile,
          chunkSize: delta.chunkSize,
          ...(delta.pack ? { pack: delta.pack } : {}),
          source: delta.source,
          resume: resumeFrom > 0,
          signal,
          checkpointIntervalMs: CHECKPOINT_INTERVAL_MS,
          now: () => deps.clock.now(),
          onCheckpoint,
          onProgress: (p) => report(p.done, p.downloaded, p.reused),
          onPackUnusable: (reason) =>
            deps.log.warn('chunk pack not usable: fetching chunks from the artifact itself', {
              artifact: kind,
              error: serializeError(reason),
            }),
          onMultiRangeUnusable: (reason) =>
            deps.log.info('the download server does not send several ranges at once: asking range by range', {
              artifact: kind,
              error: serializeError(reason),
            }),
        },
      );
      if (r.kind === 'written') {
        outcome = {
          mode: 'delta',
          readBack: r.readBack,
          downloaded: r.downloadedBytes,
          reused: r.reusedBytes,
          mismatchedChunks: r.mismatchedChunks,
          packChunksRefetched: r.packChunksRefetched,
        };
      } else {
        deps.log.warn('adaptive update stopped: downloading the artifact whole', {
          artifact: kind,
          downloadedBytes: r.downloadedBytes,
          error: serializeError(r.reason),
        });
        totals.downloaded += r.downloadedBytes;
        fallback = true;
      }
    }
    outcome ??= await writeFull(
      deps,
      { url, size: artifact.size, sha256: artifact.sha256, device },
      {
        activeDevices: active,
        // After a fallback the bytes in the slot came from an index that failed: none is trusted.
        resumeOffset: fallback ? 0 : resumeFrom,
        digestCheck: inFlight ? 'stream' : 'read-back',
        signal,
        onCheckpoint,
        report,
      },
    );
    totals.downloaded += outcome.downloaded;
    totals.reused += outcome.reused;
    if (outcome.readBack) {
      written.readBack = [...(written.readBack ?? []), kind];
      await persist();
    }
    deps.log.info('artifact written into slot', {
      artifact: kind,
      slot: target.slot,
      mode: outcome.mode,
      downloadedBytes: outcome.downloaded,
      reusedBytes: outcome.reused,
      totalBytes: artifact.size,
      ...(inFlight ? { sha256CheckedInFlight: true } : {}),
      ...(outcome.readBack ? { readBack: true } : {}),
      ...(outcome.mismatchedChunks ? { sourceChunksMismatched: outcome.mismatchedChunks } : {}),
      ...(outcome.packChunksRefetched ? { packChunksRefetched: outcome.packChunksRefetched } : {}),
    });
  }
}

/** The streaming download (writeArtifact), with where its bytes came from. */
async function writeFull(
  deps: Deps,
  target: ArtifactTarget,
  o: {
    activeDevices: string[];
    resumeOffset: number;
    digestCheck: 'stream' | 'read-back';
    signal: AbortSignal;
    onCheckpoint: (offset: number) => Promise<void>;
    report: (done: number, downloaded: number, reused: number) => void;
  },
): Promise<{ mode: 'full'; downloaded: number; reused: number; readBack: boolean }> {
  // What a resume finds already in the slot is reused — unless the server restarts from byte 0.
  const reusedOf = (n: number) => (n >= o.resumeOffset ? o.resumeOffset : 0);
  const { downloadedBytes, readBack } = await writeArtifact(deps.http, target, {
    activeDevices: o.activeDevices,
    resumeOffset: o.resumeOffset,
    digestCheck: o.digestCheck,
    signal: o.signal,
    checkpointIntervalMs: CHECKPOINT_INTERVAL_MS,
    now: () => deps.clock.now(),
    onProgress: (n) => o.report(n, n - reusedOf(n), reusedOf(n)),
    // Called at every fsynced checkpoint, and with the full size once the artifact is done.
    onCheckpoint: o.onCheckpoint,
  });
  return { mode: 'full', downloaded: downloadedBytes, reused: target.size - downloadedBytes, readBack };
}

/**
 * Active artifacts above this many chunks are downloaded whole: the table of the active slot's
 * chunks would take more than 16 MiB (6 GiB of artifact in 4 KiB chunks).
 */
const MAX_TABLE_BYTES = 16 * 1024 * 1024;
/** Below this share of the artifact found in the active slot, one streamed response beats ranges. */
const MIN_REUSE = 0.01;

/**
 * What an adaptive install of one artifact needs — the target's chunk index (downloaded and
 * checked, or kept from an earlier attempt), its pack, and where the active slot's chunks are — or
 * undefined (logged) when the artifact is to be downloaded whole: no index published, no usable
 * active slot, either index cannot be had, or the active slot holds less than 1 % of the
 * artifact. Before the active slot is indexed (read whole, unless its index is cached), a probe of
 * a few hundred of its chunks says whether it has anything the target needs: an unrelated slot
 * costs the index download and 1 MiB of reads, not a pass over the slot. The active slot is
 * indexed as far as its recorded artifact goes (cached by slot and artifact SHA-256); a slot the
 * agent did not install itself (the factory slot) has no record of it, and is indexed whole.
 */
async function prepareDelta(
  deps: Deps,
  target: UpdateTarget,
  kind: PartitionKind,
  record: { size: number; sha256: string } | undefined,
  signal: AbortSignal,
): Promise<
  | {
      indexFile: string;
      chunkSize: number;
      pack?: { url: string; size: number };
      source: { device: string; table: ChunkTable };
    }
  | undefined
> {
  const artifact = target.artifacts[kind];
  const ref = artifact.index;
  if (!ref) return undefined;
  const { paths } = deps;
  const device = paths.partition(kind, target.sourceSlot);
  try {
    const length = record?.size ?? (await deviceCapacity(device));
    const tableBytes = ChunkTable.bytesFor(chunkCount(length, ref.chunkSize));
    if (tableBytes > MAX_TABLE_BYTES) {
      deps.log.info('active slot too large to look chunks up in memory: downloading the artifact whole', {
        artifact: kind,
        device,
        length,
        tableBytes,
      });
      return undefined;
    }
    const indexFile = indexCacheFile(paths.chunkIndexes, target.slot, kind, artifact.sha256);
    await fetchChunkIndex(
      deps.http,
      artifactUrl(deps.config.baseUrl, ref.path),
      ref,
      artifact.size,
      indexFile,
      signal,
    );
    const cacheFile = record
      ? indexCacheFile(paths.chunkIndexes, target.sourceSlot, kind, record.sha256)
      : undefined;
    if (!(cacheFile && (await exists(cacheFile)))) {
      const probe = await probeOverlap({ device, length, chunkSize: ref.chunkSize, indexFile, signal });
      if (probe.found < Math.max(2, probe.sampled * MIN_REUSE)) {
        deps.log.info('the active slot holds nothing the artifact needs: downloading it whole', {
          artifact: kind,
          sampledChunks: probe.sampled,
          chunksFound: probe.found,
        });
        return undefined;
      }
    }
    const table = await loadSourceTable({
      device,
      length,
      chunkSize: ref.chunkSize,
      ...(cacheFile ? { cacheFile } : {}),
      signal,
    });
    // With (almost) nothing to copy, one streamed response beats thousands of ranges.
    const found = await countFound(indexFile, table);
    if (found * ref.chunkSize < artifact.size * MIN_REUSE) {
      deps.log.info('the active slot holds almost none of the artifact: downloading it whole', {
        artifact: kind,
        chunksFound: found,
      });
      return undefined;
    }
    return {
      indexFile,
      chunkSize: ref.chunkSize,
      ...(ref.pack
        ? { pack: { url: artifactUrl(deps.config.baseUrl, ref.pack.path), size: ref.pack.size } }
        : {}),
      source: { device, table },
    };
  } catch (e) {
    if (signal.aborted) throw e;
    deps.log.warn('adaptive update not possible: downloading the artifact whole', {
      artifact: kind,
      error: serializeError(e),
    });
    return undefined;
  }
}

const exists = (file: string) =>
  fs.access(file).then(
    () => true,
    () => false,
  );

/** Size and SHA-256 of what the agent installed into a slot's partition, when it recorded both. */
function recordedArtifact(
  record: SlotRecord | undefined,
  kind: PartitionKind,
): { size: number; sha256: string } | undefined {
  const size = kind === 'boot' ? record?.bootSize : record?.rootSize;
  const sha256 = kind === 'boot' ? record?.bootSha256 : record?.rootSha256;
  return size !== undefined && sha256 !== undefined ? { size, sha256 } : undefined;
}

function sameEnv(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
