import type { promises as fs } from 'node:fs';
import { ClgwError, isClgwError } from '@clgw/core/errors.js';
import type { HttpClient } from '@clgw/core/platform/http.js';
import { bufferingSink } from '@clgw/core/platform/http-body.js';
import { collectOldGeneration } from '@clgw/core/platform/memory.js';
import {
  CHUNK_HASH_BYTES,
  chunkCount,
  INDEX_ENTRY_BYTES,
  storedLength,
} from '@clgw/core/release/chunk-index.js';
import { digestIs, digestMatches, hashDeviceChunks } from '@clgw/core/slot/chunk-hash.js';
import { checkSlotTarget, openDevice, writeFailure } from '@clgw/core/slot/device.js';
import {
  borrowBuffers,
  DIRECT_ALIGN,
  directAligned,
  openDirect,
  returnBuffers,
  wholeChunks,
} from '@clgw/core/slot/direct-io.js';
import { IndexReader } from '@clgw/core/slot/index-file.js';
import { ReadBehind } from '@clgw/core/slot/read-back.js';
import { type ArtifactTarget, keepProgress } from '@clgw/core/slot/stream-write.js';
import type { ChunkTable } from './chunk-table.js';
import { type ChunkOp, planWindow } from './delta-plan.js';
import { PackChunks } from './pack-chunks.js';

export interface DeltaOptions {
  /** Devices of the booted slot: refused (SLOT_ACTIVE) as the target. */
  activeDevices: readonly string[];
  /** The target's chunk index, already checked against compat.yaml (fetchChunkIndex). */
  indexFile: string;
  chunkSize: number;
  /**
   * The release's chunk pack (compressed chunks at the offsets the index gives): fetched chunks
   * come from there, and from the artifact itself when it has none or it proves unusable.
   */
  pack?: { url: string; size: number };
  /** The active slot's partition of the same kind, and where its chunks are (loadSourceTable). */
  source: { device: string; table: ChunkTable };
  /**
   * Hash the target slot first and keep the chunks it already holds: set when an earlier attempt
   * wrote into it (the journal has a durable offset), so a resumed install re-plans from the slot.
   */
  resume: boolean;
  /** As writeArtifact's: least distance between background checkpoints (default 8 MiB)… */
  checkpointBytes?: number;
  /** …and least time between their starts, by `now` (default 0). */
  checkpointIntervalMs?: number;
  now?: () => number;
  /**
   * As writeArtifact's: persists a durable offset (every byte below it written, then fsynced),
   * and the full size once every chunk is written and fsynced.
   */
  onCheckpoint?: (offset: number) => Promise<void>;
  onProgress?: (p: DeltaProgress) => void;
  /** Told once, when the pack cannot be used (absent, or not what the index says it is). */
  onPackUnusable?: (reason: ClgwError) => void;
  /** Told once, when the mirror does not answer several ranges in one request as asked. */
  onMultiRangeUnusable?: (reason: ClgwError) => void;
  signal?: AbortSignal;
}

/** How far an adaptive install is, and where its bytes came from. */
export interface DeltaProgress {
  /** Bytes of the artifact in place. */
  done: number;
  /** Bytes received from the mirror in this attempt (compressed, for chunks from the pack). */
  downloaded: number;
  /** Bytes of the artifact copied from the active slot, or found already in the target slot. */
  reused: number;
}

export type DeltaResult =
  | {
      kind: 'written';
      /** Every byte read back from the slot behind the writes (ReadBehind), matching the SHA-256. */
      readBack: boolean;
      downloadedBytes: number;
      reusedBytes: number;
      /** Chunks the active slot did not hold after all (changed since indexed): fetched instead. */
      mismatchedChunks: number;
      /** Chunks of the pack that did not inflate to their digest: fetched from the artifact. */
      packChunksRefetched: number;
    }
  /** Ranges do not work here: the caller downloads the artifact whole instead. */
  | { kind: 'fallback'; reason: ClgwError; downloadedBytes: number };

const MIB = 1024 * 1024;
const DEFAULT_CHECKPOINT_BYTES = 8 * MIB;
/** Target bytes planned at once: 2048 entries (24 KiB) of index for 4 KiB chunks. */
const WINDOW_BYTES = 8 * MIB;
/** Target bytes between two collections of the old generation (collectOldGeneration). */
const OLD_GC_BYTES = 16 * MIB;
/** Range requests in flight at once. */
const MAX_IN_FLIGHT = 4;
/**
 * Chunks waiting for a request (16 MiB of target at 4 KiB): planning and copying run this far
 * ahead of the network, so a slow link and the local copy overlap instead of taking turns.
 * Each waiting chunk holds its 12-byte entry and 8-byte pack offset.
 */
const MAX_QUEUED_CHUNKS = 4096;
/**
 * Queued fetches of the pack that one request asks for at once (`Range: bytes=a-b,c-d,…`), up to
 * this many ranges and bytes: on a link with a round trip of tens of milliseconds, a thousand
 * scattered chunks four requests at a time would take longer than their bytes.
 */
const MAX_RANGES_PER_REQUEST = 64;
const MAX_REQUEST_PACK_BYTES = 1024 * 1024;
/**
 * …and such a request waits until planning is this far past its first fetch (or it is full, or
 * planning is done), so that it carries many: fetches come as fast as the copies between them
 * allow, and a request sent at once would carry one or two. The durable offset lags as far.
 */
const GATHER_BYTES = 32 * MIB;
/** Fetches at most this far apart become one request (the bytes between are fetched too). */
const MAX_GAP_BYTES = 16 * 1024;
/**
 * Buffer of one request in flight: written to the slot when full. Most requests fetch a few
 * chunks; a long run (a new file) is written a quarter MiB at a time.
 */
const FETCH_BYTES = 256 * 1024;
/** Errors of a pack request that say the pack is not usable here, rather than the network failing. */
const PACK_UNUSABLE = new Set([
  'HTTP_STATUS',
  'RANGE_NOT_SUPPORTED',
  'SIZE_EXCEEDED',
  'ARTIFACT_TRUNCATED',
  'REDIRECT_REFUSED',
]);

/**
 * Errors of a multi-range request of the pack that say the server does not answer several ranges
 * as asked (its parts, their headers and lengths are its own): the ranges are then asked one by one.
 */
const MULTI_RANGE_UNUSABLE = new Set(['RANGE_NOT_SUPPORTED', 'SIZE_EXCEEDED', 'ARTIFACT_TRUNCATED']);

/** A planned window of the target's chunks: their index entries, and where each starts in the pack. */
interface Window {
  first: number;
  entries: Buffer;
  /** Pack offset of chunk `first + i`, for i from 0 to the window's count (its end). */
  packAt: Float64Array;
}

/** Chunks `first … first + count - 1` to fetch, with their own slice of the window. */
interface Fetch {
  first: number;
  count: number;
  win: Window;
}

/** The buffers one request at a time uses: its chunks, and a pack chunk split across reads. */
interface Buffers {
  buffer: Buffer;
  partial: Buffer;
}

/** A pack request failed in a way that says the pack, not the network, is the problem. */
class PackUnusable extends Error {
  constructor(readonly reason: ClgwError) {
    super(reason.message);
  }
}

/** The devices and index an adaptive install works on, opened by writeArtifactDelta. */
interface Handles {
  out: fs.FileHandle;
  /**
   * The target opened with O_DIRECT (absent where it cannot be): the slot is read back through it,
   * and copies are written through it — a copy is nearly the whole slot, and through the page cache
   * its ~500 MB of dirty pages had the writes throttled and then a long final fsync.
   */
  direct: fs.FileHandle | undefined;
  src: fs.FileHandle;
  index: IndexReader;
  /** Reads copies and the target scan: the first of a borrowed aligned pair. */
  copyBuffer: Buffer;
}

/**
 * Assembles an artifact in a slot from its chunk index (adaptive update): per window of chunks, the
 * planner says which the target slot already holds (on resume), which the active slot holds
 * (copied, by digest, from any offset) and which must come from the mirror — from the chunk pack
 * (each chunk deflated on its own) when the release has one, else from the artifact itself — with
 * HTTP Range requests, neighbours coalesced, at most MAX_IN_FLIGHT at once; copies go on while
 * fetches wait for a request (up to MAX_QUEUED_CHUNKS of them). Every chunk written is
 * first hashed and compared with the index: a copied chunk that does not match (the active slot
 * changed, or its index is stale) is fetched instead; a pack chunk that does not inflate to its
 * digest is fetched from the artifact; a pack that is absent or not what the index says (any
 * permanent HTTP failure) is given up for the artifact's ranges. The whole artifact's SHA-256 is
 * computed on the slot, read back behind the writes (ReadBehind): `readBack` says whether it
 * matched, and when it did not the verify phase reads it back again, which catches an index that
 * lies.
 *
 * Durability as in writeArtifact: the offset below which every chunk is written (the lowest
 * request still in flight bounds it) is fsynced and then persisted through onCheckpoint, in the
 * background; an interruption records it before it fails. Memory: the window's entries (24 KiB),
 * one 1 MiB buffer for copies and one of 256 KiB per request in flight (allocated once), whatever
 * the artifact's size.
 *
 * Returns `fallback` when the mirror ignores Range (RANGE_NOT_SUPPORTED) or sends an artifact
 * chunk that does not match the index (CHUNK_MISMATCH): then the artifact must be downloaded whole.
 * Fails with SLOT_ACTIVE, NO_SPACE, SLOT_WRITE_FAILED, INDEX_INVALID, the client's network codes,
 * or whatever onCheckpoint rejected with.
 */
export async function writeArtifactDelta(
  http: HttpClient,
  target: ArtifactTarget,
  opts: DeltaOptions,
): Promise<DeltaResult> {
  const cs = opts.chunkSize;
  await checkSlotTarget(target, opts.activeDevices);
  const out = await openDevice(target.device, 'r+');
  const src = await openDevice(opts.source.device, 'r').catch(async (e: unknown) => {
    await out.close();
    throw e;
  });
  const index = await IndexReader.open(opts.indexFile, { chunkSize: cs, artifactSize: target.size }).catch(
    async (e: unknown) => {
      await Promise.all([out.close(), src.close()]);
      throw e;
    },
  );
  // A batch of copies is read into the first of an aligned pair, kept between uses (borrowBuffers)
  // like the one the read-back behind the writes borrows: no buffer of its own per update.
  const pair = borrowBuffers();
  const direct = await openDirect(target.device);
  try {
    return await new DeltaWrite(http, target, opts, {
      out,
      direct,
      src,
      index,
      copyBuffer: wholeChunks(pair[0], cs),
    }).run();
  } finally {
    returnBuffers(pair);
    index.close();
    await Promise.all([out.close(), src.close(), direct?.close()]);
  }
}

/** One adaptive install under way: what is written, what is in flight, what is durable. */
class DeltaWrite {
  private readonly url: string;
  private readonly sha256: string;
  private readonly size: number;
  private readonly device: string;
  private readonly cs: number;
  private readonly checkpointBytes: number;
  private readonly onCheckpoint: (offset: number) => Promise<void>;
  private readonly now: () => number;
  private pack: { url: string; size: number } | undefined;
  /** Until the mirror proves otherwise, several ranges of the pack go in one request. */
  private multiRange = true;

  private readonly abort = new AbortController();
  private readonly signal: AbortSignal;
  private failed = false;
  private failure: unknown;

  private readonly progress: DeltaProgress = { done: 0, downloaded: 0, reused: 0 };
  private mismatchedChunks = 0;
  private packChunksRefetched = 0;

  /** Requests in flight, each with its first byte. */
  private readonly inFlight = new Map<Promise<void>, number>();
  /** Fetches planned but not yet started, in ascending order, with their chunks and pack bytes. */
  private readonly queue: Fetch[] = [];
  private queuedChunks = 0;
  private queuedPackBytes = 0;
  /** Every fetch is planned: nothing more comes to join the queued ones. */
  private planned = false;
  /** Every byte below this is written, or belongs to a fetch queued, in flight, or failed. */
  private issued = 0;
  /** First byte of the lowest request that failed. */
  private brokenAt: number;
  private durable = 0;
  private checkpointing: Promise<void> | undefined;
  private checkpointedAt = Number.NEGATIVE_INFINITY;

  /** Buffers of requests (FETCH_BYTES and a chunk), reused: at most MAX_IN_FLIGHT are ever made. */
  private readonly spare: Buffers[] = [];
  private readonly copyBatch: number;
  /** Pack offset of the next window's first chunk. */
  private packOffset = 0;
  /** The whole artifact's SHA-256, from the slot, behind the writes. */
  private readonly behind: ReadBehind;
  /**
   * Copies are whole chunks at chunk offsets in an aligned buffer: written O_DIRECT when chunks are
   * whole blocks, until the device refuses one.
   */
  private directCopies: boolean;

  constructor(
    private readonly http: HttpClient,
    target: ArtifactTarget,
    private readonly opts: DeltaOptions,
    private readonly h: Handles,
  ) {
    ({ url: this.url, sha256: this.sha256, size: this.size, device: this.device } = target);
    this.cs = opts.chunkSize;
    this.checkpointBytes = Math.max(1, opts.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES);
    this.onCheckpoint = opts.onCheckpoint ?? (async () => undefined);
    this.now = opts.now ?? Date.now;
    this.pack = opts.pack;
    this.signal = opts.signal ? AbortSignal.any([this.abort.signal, opts.signal]) : this.abort.signal;
    this.brokenAt = this.size;
    this.copyBatch = h.copyBuffer.length / this.cs;
    this.directCopies = h.direct !== undefined && this.cs % DIRECT_ALIGN === 0;
    this.behind = new ReadBehind({
      handle: h.out,
      direct: h.direct,
      device: this.device,
      size: this.size,
      start: 0,
      onFailure: (e) => this.fail(e),
    });
  }

  async run(): Promise<DeltaResult> {
    let readBack: boolean;
    try {
      await this.planAndFetch();
      this.planned = true;
      this.startQueued();
      // Requests settle by themselves (a failure is recorded, never thrown); so do checkpoints.
      await this.settle();
      if (this.failed) throw this.failure;
      await this.sync();
      readBack = await this.behind.finish(this.sha256);
    } catch (caught) {
      this.fail(caught);
      await this.settle();
      const e = this.failure;
      if (isClgwError(e) && (e.code === 'RANGE_NOT_SUPPORTED' || e.code === 'CHUNK_MISMATCH'))
        return { kind: 'fallback', reason: e, downloadedBytes: this.progress.downloaded };
      const interrupted = this.opts.signal?.aborted || (isClgwError(e) && e.transient);
      if (interrupted) {
        await keepProgress(e, async () => {
          const offset = this.writtenBelow();
          if (offset > this.durable) await this.checkpoint(offset);
        });
      }
      throw e;
    } finally {
      // Read to the end, or stopped: nothing reads the slot once the handles close.
      await this.behind.stop();
    }
    await this.onCheckpoint(this.size);
    return {
      kind: 'written',
      readBack,
      downloadedBytes: this.progress.downloaded,
      reusedBytes: this.progress.reused,
      mismatchedChunks: this.mismatchedChunks,
      packChunksRefetched: this.packChunksRefetched,
    };
  }

  /** Window by window: the plan's keeps tallied, its copies made, its fetches launched. */
  private async planAndFetch(): Promise<void> {
    const { cs, size } = this;
    const chunks = chunkCount(size, cs);
    const windowChunks = Math.max(1, Math.floor(WINDOW_BYTES / cs));
    const maxGap = Math.floor(MAX_GAP_BYTES / cs);
    const windowsPerCollection = Math.max(1, Math.round(OLD_GC_BYTES / (windowChunks * cs)));
    const find = (h: Uint8Array, o: number) => this.opts.source.table.find(h, o);
    for (let w = 0, n = 0; w < chunks && !this.failed; w += windowChunks, n++) {
      this.signal.throwIfAborted();
      const count = Math.min(windowChunks, chunks - w);
      const win = await this.nextWindow(w, count);
      if (n % windowsPerCollection === 0) collectOldGeneration();
      const inPlace = this.opts.resume ? await this.scanTarget(win, count) : undefined;
      for (const op of planWindow({
        first: w,
        entries: win.entries,
        ...(inPlace ? { inPlace } : {}),
        find,
        maxGap,
      })) {
        if (op.kind === 'keep')
          this.tally(this.bytesOf(op.first, op.count), 0, this.bytesOf(op.first, op.count));
        else if (op.kind === 'copy') await this.copy(op, win);
        else await this.launch(op.first, op.count, win);
        // A request refused because another failed meanwhile never ran: nothing past here is issued.
        if (this.failed) break;
        this.issued = Math.min(size, (op.first + op.count) * cs);
        this.written();
      }
    }
  }

  /** Waits for every request in flight and the checkpoint under way. */
  private async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.race(this.inFlight.keys());
    while (this.checkpointing) await this.checkpointing;
  }

  private fail(e: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.failure = e;
    this.abort.abort(e);
  }

  private lengthOf(chunk: number): number {
    return Math.min(this.cs, this.size - chunk * this.cs);
  }

  private bytesOf(first: number, count: number): number {
    return Math.min(this.size, (first + count) * this.cs) - first * this.cs;
  }

  private tally(done: number, downloaded: number, reused: number): void {
    const p = this.progress;
    p.done += done;
    p.downloaded += downloaded;
    p.reused += reused;
    this.opts.onProgress?.({ ...p });
  }

  /** More of the slot is written: read back behind it, and checkpoint when one is due. */
  private written(): void {
    this.behind.advance(this.writtenBelow());
    this.maybeCheckpoint();
  }

  private writtenBelow(): number {
    const queued = this.queue[0]?.first;
    return Math.min(
      this.issued,
      this.brokenAt,
      queued === undefined ? this.size : queued * this.cs,
      ...this.inFlight.values(),
    );
  }

  private async sync(): Promise<void> {
    try {
      await this.h.out.sync();
    } catch (e) {
      throw writeFailure(e, this.device, this.writtenBelow());
    }
  }

  /** `copy`: `buffer` holds copies (directCopies), so an aligned span may go O_DIRECT. */
  private async writeAt(buffer: Buffer, length: number, at: number, copy: boolean): Promise<void> {
    for (let done = 0; done < length; ) {
      const direct =
        copy && this.directCopies && directAligned(at + done, length - done) ? this.h.direct : undefined;
      try {
        done += (await (direct ?? this.h.out).write(buffer, done, length - done, at + done)).bytesWritten;
      } catch (e) {
        // The device's blocks are larger than DIRECT_ALIGN after all: the rest through the cache.
        if (direct && (e as NodeJS.ErrnoException).code === 'EINVAL') {
          this.directCopies = false;
          continue;
        }
        throw writeFailure(e, this.device, at + done);
      }
    }
  }

  /** Persist before acting: the fsync covers every write below `offset`, then the offset is recorded. */
  private async checkpoint(offset: number): Promise<void> {
    await this.sync();
    await this.onCheckpoint(offset);
    this.durable = offset;
  }

  private maybeCheckpoint(): void {
    const offset = this.writtenBelow();
    if (
      this.checkpointing ||
      this.failed ||
      offset >= this.size ||
      offset - this.durable < this.checkpointBytes
    )
      return;
    if (this.now() - this.checkpointedAt < (this.opts.checkpointIntervalMs ?? 0)) return;
    this.checkpointedAt = this.now();
    this.checkpointing = this.checkpoint(offset).then(
      () => {
        this.checkpointing = undefined;
        this.maybeCheckpoint();
      },
      (e: unknown) => {
        this.checkpointing = undefined;
        this.fail(e);
      },
    );
  }

  /**
   * Writes the chunks of `buffer` (chunk `first` at its start) whose digest matches the index,
   * skipping `skip` (chunks known bad already); returns the ones that did not match or were skipped.
   * `copy` as for writeAt.
   */
  private async writeVerified(
    buffer: Buffer,
    first: number,
    count: number,
    win: Window,
    o: { skip?: ReadonlySet<number>; copy?: boolean } = {},
  ): Promise<number[]> {
    const { skip, copy = false } = o;
    const { cs } = this;
    const bad: number[] = [];
    let run = 0;
    let previousMatched = false;
    const flush = async (end: number) => {
      if (end > run)
        await this.writeAt(
          buffer.subarray(run * cs),
          this.bytesOf(first + run, end - run),
          (first + run) * cs,
          copy,
        );
    };
    for (let i = 0; i < count; i++) {
      const chunk = first + i;
      const at = (chunk - win.first) * INDEX_ENTRY_BYTES;
      const data = buffer.subarray(i * cs, i * cs + this.lengthOf(chunk));
      // A run of one content (an image's free, zeroed blocks) is hashed once: the same bytes as
      // the chunk before, wanted with the same digest, match as that one did.
      const matched: boolean =
        !skip?.has(chunk) &&
        ((previousMatched &&
          sameDigestAsPrevious(win.entries, at) &&
          data.equals(buffer.subarray((i - 1) * cs, i * cs))) ||
          digestMatches(data, win.entries, at));
      previousMatched = matched;
      if (matched) continue;
      await flush(i);
      run = i + 1;
      bad.push(chunk);
    }
    await flush(count);
    return bad;
  }

  private takeBuffers(): Buffers {
    const { cs } = this;
    return (
      this.spare.pop() ?? {
        buffer: Buffer.allocUnsafe(Math.max(cs, Math.floor(FETCH_BYTES / cs) * cs)),
        partial: Buffer.allocUnsafe(cs),
      }
    );
  }

  /** Chunks `first … first + count - 1` from the artifact itself; a mismatch ends the adaptive path. */
  private async fetchRaw(first: number, count: number, win: Window, buffer: Buffer): Promise<void> {
    const { cs, url, size } = this;
    const start = first * cs;
    const end = start + this.bytesOf(first, count) - 1;
    let next = first;
    const sink = bufferingSink(buffer, async (length) => {
      const n = Math.ceil(length / cs);
      const bad = await this.writeVerified(buffer, next, n, win);
      if (bad.length > 0) {
        const at = (bad[0] as number) * cs;
        throw new ClgwError(
          'CHUNK_MISMATCH',
          `chunk ${bad[0]} (bytes ${at}-${at + this.lengthOf(bad[0] as number) - 1}) of ${url} does not match its chunk index`,
          { details: { url, offset: at, chunk: bad[0], chunkSize: cs } },
        );
      }
      this.tally(length, length, 0);
      next += n;
    });
    await this.http.receiveRange(url, { start, end, size, signal: this.signal }, sink);
    await sink.end();
  }

  /**
   * Chunks `first … first + count - 1` from the pack, checked and written a buffer at a time.
   * `state.refetch` collects the chunks that did not inflate to their digest, `state.next` is the
   * first chunk not yet written: the caller fetches both from the artifact, also when the pack
   * proves unusable part-way (PackUnusable).
   */
  private async fetchPacked(
    pack: { url: string; size: number },
    first: number,
    count: number,
    win: Window,
    buffers: Buffers,
    state: FetchState,
  ): Promise<void> {
    const { start, end } = packRange(win, first, count);
    const chunks = this.packChunks(pack, first, count, win, buffers, state);
    try {
      await this.http.receiveRange(
        pack.url,
        { start, end, size: pack.size, signal: this.signal },
        { data: (piece) => chunks.take(piece) },
      );
    } catch (e) {
      throw isClgwError(e) && !e.transient && PACK_UNUSABLE.has(e.code) ? new PackUnusable(e) : e;
    }
    await chunks.end();
  }

  /**
   * The fetches of `group` from the pack in one multi-range request, each part as fetchPacked
   * takes its range. A non-transient failure (the mirror answers otherwise than with those parts,
   * or refuses the request) leaves `states` saying what is written: the caller goes on from there
   * range by range.
   */
  private async fetchPackedMany(
    pack: { url: string; size: number },
    group: readonly Fetch[],
    buffers: Buffers,
    states: readonly FetchState[],
  ): Promise<void> {
    await this.http.receiveRanges(
      pack.url,
      {
        ranges: group.map((f) => packRange(f.win, f.first, f.count)),
        size: pack.size,
        signal: this.signal,
      },
      (i) => {
        const f = group[i] as Fetch;
        const chunks = this.packChunks(pack, f.first, f.count, f.win, buffers, states[i] as FetchState);
        return { data: (piece) => chunks.take(piece), end: () => chunks.end() };
      },
    );
  }

  /** Places chunks `first … first + count - 1` of the pack as they arrive, checked and written a buffer at a time. */
  private packChunks(
    pack: { url: string; size: number },
    first: number,
    count: number,
    win: Window,
    { buffer, partial }: Buffers,
    state: FetchState,
  ): PackChunks {
    return new PackChunks(
      {
        url: pack.url,
        ...packRange(win, first, count),
        first,
        count,
        entries: win.entries,
        entriesFirst: win.first,
        chunkSize: this.cs,
        lengthOf: (chunk) => this.lengthOf(chunk),
      },
      buffer,
      partial,
      async (filled, wire, broken) => {
        const batchFirst = state.next;
        const bad = await this.writeVerified(buffer, batchFirst, filled, win, { skip: broken });
        const badBytes = bad.reduce((sum, c) => sum + this.lengthOf(c), 0);
        this.tally(this.bytesOf(batchFirst, filled) - badBytes, wire, 0);
        state.refetch.push(...bad);
        state.next += filled;
      },
    );
  }

  /**
   * The chunks of `group` from the mirror: the pack while it is usable (the whole group in one
   * request while the mirror serves several ranges at once), else the artifact.
   */
  private async fetchGroup(group: readonly Fetch[]): Promise<void> {
    const buffers = this.takeBuffers();
    try {
      const states = group.map((f) => ({ next: f.first, refetch: [] as number[] }));
      if (this.pack && group.length > 1) {
        try {
          await this.fetchPackedMany(this.pack, group, buffers, states);
        } catch (e) {
          if (!isClgwError(e) || e.transient) throw e;
          if (MULTI_RANGE_UNUSABLE.has(e.code)) {
            if (this.multiRange) this.opts.onMultiRangeUnusable?.(e);
            this.multiRange = false;
          } else if (PACK_UNUSABLE.has(e.code)) {
            if (this.pack) this.opts.onPackUnusable?.(e);
            this.pack = undefined;
          } else throw e;
        }
      }
      for (const [i, f] of group.entries()) await this.finishFetch(f, states[i] as FetchState, buffers);
    } finally {
      this.spare.push(buffers);
    }
  }

  /** What is left of one fetch after `state`: the pack while it is usable, else the artifact. */
  private async finishFetch(f: Fetch, state: FetchState, buffers: Buffers): Promise<void> {
    const end = f.first + f.count;
    if (this.pack && state.next < end) {
      try {
        await this.fetchPacked(this.pack, state.next, end - state.next, f.win, buffers, state);
      } catch (e) {
        if (!(e instanceof PackUnusable)) throw e;
        if (this.pack) this.opts.onPackUnusable?.(e.reason);
        this.pack = undefined;
      }
    }
    this.packChunksRefetched += state.refetch.length;
    for (const [from, run] of runsOf(state.refetch)) await this.fetchRaw(from, run, f.win, buffers.buffer);
    if (state.next < end) await this.fetchRaw(state.next, end - state.next, f.win, buffers.buffer);
  }

  /**
   * Queues one Range request, started once fewer than MAX_IN_FLIGHT run; returns at once unless
   * MAX_QUEUED_CHUNKS wait already. A request's failure stops the install.
   */
  private async launch(first: number, count: number, win: Window): Promise<void> {
    if (this.failed) return;
    const f = { first, count, win: sliceWindow(win, first, count) };
    this.queue.push(f);
    this.queuedChunks += count;
    this.queuedPackBytes += packBytes(f);
    this.startQueued();
    while (this.queuedChunks > MAX_QUEUED_CHUNKS && this.inFlight.size > 0)
      await Promise.race(this.inFlight.keys());
  }

  /**
   * Starts queued requests while fewer than MAX_IN_FLIGHT run (and nothing failed). From the pack,
   * while the mirror serves several ranges at once, one request takes as many queued fetches as
   * MAX_RANGES_PER_REQUEST and MAX_REQUEST_PACK_BYTES allow, once GATHER_BYTES were planned past
   * the first; another starts beside it only when a full one waits. So a thousand scattered chunks
   * cost tens of requests, not a thousand, however fast the link.
   */
  private startQueued(): void {
    while (!this.failed && this.queue.length > 0 && this.inFlight.size < MAX_IN_FLIGHT) {
      const grouping = this.pack !== undefined && this.multiRange;
      const full =
        this.queue.length >= MAX_RANGES_PER_REQUEST ||
        this.queuedPackBytes >= MAX_REQUEST_PACK_BYTES ||
        this.queuedChunks >= MAX_QUEUED_CHUNKS;
      const gathered = this.planned || this.issued - (this.queue[0] as Fetch).first * this.cs >= GATHER_BYTES;
      if (grouping && !full && (this.inFlight.size > 0 || !gathered)) return;
      const group = [this.queue.shift() as Fetch];
      let bytes = packBytes(group[0] as Fetch);
      for (let f = this.queue[0]; grouping && f && group.length < MAX_RANGES_PER_REQUEST; f = this.queue[0]) {
        if (bytes + packBytes(f) > MAX_REQUEST_PACK_BYTES) break;
        bytes += packBytes(f);
        group.push(this.queue.shift() as Fetch);
      }
      this.queuedPackBytes -= bytes;
      for (const f of group) this.queuedChunks -= f.count;
      const start = (group[0] as Fetch).first * this.cs;
      const request: Promise<void> = this.fetchGroup(group).then(
        () => {
          this.inFlight.delete(request);
          this.startQueued();
          this.written();
        },
        (e: unknown) => {
          this.brokenAt = Math.min(this.brokenAt, start);
          this.inFlight.delete(request);
          this.fail(e);
        },
      );
      this.inFlight.set(request, start);
    }
  }

  /** Copies from the active slot; chunks whose bytes there do not match are fetched instead. */
  private async copy(op: Extract<ChunkOp, { kind: 'copy' }>, win: Window): Promise<void> {
    const { cs, copyBatch } = this;
    const { src, copyBuffer } = this.h;
    const missed: number[] = [];
    for (let j = 0; j < op.count; j += copyBatch) {
      const m = Math.min(copyBatch, op.count - j);
      // Source chunks that follow each other are read at once; a chunk read just before (one block
      // of zeros standing for a run of them) is copied in memory.
      for (let k = 0; k < m; ) {
        const from = op.from[j + k] as number;
        if (k > 0 && op.from[j + k - 1] === from) {
          copyBuffer.copyWithin(k * cs, (k - 1) * cs, k * cs);
          k++;
          continue;
        }
        let run = 1;
        while (k + run < m && op.from[j + k + run] === from + run) run++;
        await readSource(src, this.opts.source.device, copyBuffer, k * cs, run * cs, from * cs);
        k += run;
      }
      const bad = await this.writeVerified(copyBuffer, op.first + j, m, win, { copy: true });
      const copied = this.bytesOf(op.first + j, m) - bad.reduce((sum, c) => sum + this.lengthOf(c), 0);
      this.tally(copied, 0, copied);
      missed.push(...bad);
    }
    this.mismatchedChunks += missed.length;
    for (const [from, run] of runsOf(missed)) await this.launch(from, run, win);
  }

  /** Per chunk of the window: 1 when the target slot already holds it. */
  private async scanTarget(win: Window, count: number): Promise<Uint8Array> {
    const { cs } = this;
    const inPlace = new Uint8Array(count);
    await hashDeviceChunks(
      this.h.out,
      this.device,
      {
        from: win.first * cs,
        length: this.bytesOf(win.first, count),
        chunkSize: cs,
        buffer: this.h.copyBuffer,
      },
      (digest, chunk) => {
        const at = (chunk - win.first) * INDEX_ENTRY_BYTES;
        inPlace[chunk - win.first] = digestIs(digest, win.entries, at) ? 1 : 0;
      },
      this.signal,
    );
    return inPlace;
  }

  /** The next window of entries, with where each of its chunks starts in the pack. */
  private async nextWindow(first: number, count: number): Promise<Window> {
    const entries = await this.h.index.read(count);
    const packAt = new Float64Array(count + 1);
    for (let i = 0; i < count; i++) {
      packAt[i] = this.packOffset;
      this.packOffset += storedLength(entries, i);
    }
    packAt[count] = this.packOffset;
    return { first, entries, packAt };
  }
}

/** Of one fetch: the first chunk not yet written, and those to fetch from the artifact instead. */
interface FetchState {
  next: number;
  refetch: number[];
}

/** Bytes `start…end` of the pack that hold chunks `first … first + count - 1` of a window. */
function packRange(win: Window, first: number, count: number): { start: number; end: number } {
  const at = (chunk: number) => win.packAt[chunk - win.first] as number;
  return { start: at(first), end: at(first + count) - 1 };
}

/** Bytes of the pack a queued fetch asks for. */
function packBytes(f: Fetch): number {
  return (f.win.packAt[f.count] as number) - (f.win.packAt[0] as number);
}

/** The part of a window a fetch of chunks `first … first + count - 1` needs, copied out of it. */
function sliceWindow(win: Window, first: number, count: number): Window {
  const i = first - win.first;
  return {
    first,
    entries: Buffer.from(win.entries.subarray(i * INDEX_ENTRY_BYTES, (i + count) * INDEX_ENTRY_BYTES)),
    packAt: win.packAt.slice(i, i + count + 1),
  };
}

/** Whether the index entry at `at` (not the first) wants the same digest as the one before it. */
function sameDigestAsPrevious(entries: Uint8Array, at: number): boolean {
  for (let k = 0; k < CHUNK_HASH_BYTES; k++)
    if (entries[at + k] !== entries[at - INDEX_ENTRY_BYTES + k]) return false;
  return true;
}

/** Ascending chunk numbers as runs of consecutive ones: [first, length] each. */
function runsOf(chunks: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < chunks.length; ) {
    let run = 1;
    while (i + run < chunks.length && chunks[i + run] === (chunks[i] as number) + run) run++;
    runs.push([chunks[i] as number, run]);
    i += run;
  }
  return runs;
}

/**
 * Reads `length` bytes of the active slot at `position` into `buffer` at `offset`. A short read (the
 * slot ends) leaves stale bytes behind, which then fail the chunk's digest check like any mismatch.
 */
async function readSource(
  handle: fs.FileHandle,
  device: string,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
): Promise<void> {
  for (let done = 0; done < length; ) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, offset + done, length - done, position + done));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new ClgwError(
        'SLOT_WRITE_FAILED',
        `cannot read ${device} at offset ${position + done}: ${err.message}`,
        { cause: e, details: { device, offset: position + done, errno: err.code } },
      );
    }
    if (bytesRead === 0) return;
    done += bytesRead;
  }
}
