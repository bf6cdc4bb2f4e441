import type { promises as fs } from 'node:fs';
import { inflateRawSync, constants as zlib } from 'node:zlib';
import { ClgwError, isClgwError } from '@clgw/core/errors.js';
import type { HttpClient } from '@clgw/core/platform/http.js';
import { bufferingSink } from '@clgw/core/platform/http-body.js';
import { collectOldGeneration } from '@clgw/core/platform/memory.js';
import { chunkCount, INDEX_ENTRY_BYTES, storedLength } from '@clgw/core/release/chunk-index.js';
import { digestIs, digestMatches, hashDeviceChunks } from '@clgw/core/slot/chunk-hash.js';
import { checkSlotTarget, openDevice, writeFailure } from '@clgw/core/slot/device.js';
import { borrowBuffers, returnBuffers, wholeChunks } from '@clgw/core/slot/direct-io.js';
import { IndexReader } from '@clgw/core/slot/index-file.js';
import { type ArtifactTarget, keepProgress } from '@clgw/core/slot/stream-write.js';
import type { ChunkTable } from './chunk-table.js';
import { type ChunkOp, planWindow } from './delta-plan.js';

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

/** A planned window of the target's chunks: their index entries, and where each starts in the pack. */
interface Window {
  first: number;
  entries: Buffer;
  /** Pack offset of chunk `first + i`, for i from 0 to the window's count (its end). */
  packAt: Float64Array;
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

/**
 * Assembles an artifact in a slot from its chunk index (adaptive update): per window of chunks, the
 * planner says which the target slot already holds (on resume), which the active slot holds
 * (copied, by digest, from any offset) and which must come from the mirror — from the chunk pack
 * (each chunk deflated on its own) when the release has one, else from the artifact itself — with
 * HTTP Range requests, neighbours coalesced, at most MAX_IN_FLIGHT at once. Every chunk written is
 * first hashed and compared with the index: a copied chunk that does not match (the active slot
 * changed, or its index is stale) is fetched instead; a pack chunk that does not inflate to its
 * digest is fetched from the artifact; a pack that is absent or not what the index says (any
 * permanent HTTP failure) is given up for the artifact's ranges. The whole artifact's SHA-256 is
 * not known here — the read-back verify after the download checks it, and catches an index that
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
  const { url, size, device } = target;
  const cs = opts.chunkSize;
  const checkpointBytes = Math.max(1, opts.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES);
  const onCheckpoint = opts.onCheckpoint ?? (async () => undefined);
  await checkSlotTarget(target, opts.activeDevices);

  const chunks = chunkCount(size, cs);
  const windowChunks = Math.max(1, Math.floor(WINDOW_BYTES / cs));
  const maxGap = Math.floor(MAX_GAP_BYTES / cs);
  const lengthOf = (chunk: number) => Math.min(cs, size - chunk * cs);
  const bytesOf = (first: number, count: number) => Math.min(size, (first + count) * cs) - first * cs;
  let pack = opts.pack;

  const abort = new AbortController();
  const signal = opts.signal ? AbortSignal.any([abort.signal, opts.signal]) : abort.signal;
  let failed = false;
  let failure: unknown;
  const fail = (e: unknown) => {
    if (failed) return;
    failed = true;
    failure = e;
    abort.abort(e);
  };

  const progress: DeltaProgress = { done: 0, downloaded: 0, reused: 0 };
  let mismatchedChunks = 0;
  let packChunksRefetched = 0;
  const tally = (done: number, downloaded: number, reused: number) => {
    progress.done += done;
    progress.downloaded += downloaded;
    progress.reused += reused;
    opts.onProgress?.({ ...progress });
  };

  /** Requests in flight, each with its first byte. */
  const inFlight = new Map<Promise<void>, number>();
  /** Every byte below this is written, or belongs to a request in flight (or one that failed). */
  let issued = 0;
  /** First byte of the lowest request that failed. */
  let brokenAt = size;
  let durable = 0;
  let checkpointing: Promise<void> | undefined;
  let checkpointedAt = Number.NEGATIVE_INFINITY;
  const now = opts.now ?? Date.now;
  const checkpointIntervalMs = opts.checkpointIntervalMs ?? 0;
  const writtenBelow = () => Math.min(issued, brokenAt, ...inFlight.values());

  const out = await openDevice(device, 'r+');
  const src = await openDevice(opts.source.device, 'r').catch(async (e: unknown) => {
    await out.close();
    throw e;
  });
  const index = await IndexReader.open(opts.indexFile, { chunkSize: cs, artifactSize: size }).catch(
    async (e: unknown) => {
      await Promise.all([out.close(), src.close()]);
      throw e;
    },
  );

  const sync = async () => {
    try {
      await out.sync();
    } catch (e) {
      throw writeFailure(e, device, writtenBelow());
    }
  };
  const writeAt = async (buffer: Buffer, length: number, at: number) => {
    for (let done = 0; done < length; ) {
      try {
        done += (await out.write(buffer, done, length - done, at + done)).bytesWritten;
      } catch (e) {
        throw writeFailure(e, device, at + done);
      }
    }
  };
  /** Persist before acting: the fsync covers every write below `offset`, then the offset is recorded. */
  const checkpoint = async (offset: number) => {
    await sync();
    await onCheckpoint(offset);
    durable = offset;
  };
  const maybeCheckpoint = () => {
    const offset = writtenBelow();
    if (checkpointing || failed || offset >= size || offset - durable < checkpointBytes) return;
    if (now() - checkpointedAt < checkpointIntervalMs) return;
    checkpointedAt = now();
    checkpointing = checkpoint(offset).then(
      () => {
        checkpointing = undefined;
        maybeCheckpoint();
      },
      (e: unknown) => {
        checkpointing = undefined;
        fail(e);
      },
    );
  };

  /**
   * Writes the chunks of `buffer` (chunk `first` at its start) whose digest matches the index,
   * skipping `skip` (chunks known bad already); returns the ones that did not match or were skipped.
   */
  const writeVerified = async (
    buffer: Buffer,
    first: number,
    count: number,
    win: Window,
    skip?: ReadonlySet<number>,
  ): Promise<number[]> => {
    const bad: number[] = [];
    let run = 0;
    const flush = async (end: number) => {
      if (end > run)
        await writeAt(buffer.subarray(run * cs), bytesOf(first + run, end - run), (first + run) * cs);
    };
    for (let i = 0; i < count; i++) {
      const chunk = first + i;
      const at = (chunk - win.first) * INDEX_ENTRY_BYTES;
      if (
        !skip?.has(chunk) &&
        digestMatches(buffer.subarray(i * cs, i * cs + lengthOf(chunk)), win.entries, at)
      )
        continue;
      await flush(i);
      run = i + 1;
      bad.push(chunk);
    }
    await flush(count);
    return bad;
  };

  /** Buffers of requests (FETCH_BYTES and a chunk), reused: at most MAX_IN_FLIGHT are ever made. */
  const spare: Buffers[] = [];
  const takeBuffers = (): Buffers =>
    spare.pop() ?? {
      buffer: Buffer.allocUnsafe(Math.max(cs, Math.floor(FETCH_BYTES / cs) * cs)),
      partial: Buffer.allocUnsafe(cs),
    };

  /** Chunks `first … first + count - 1` from the artifact itself; a mismatch ends the adaptive path. */
  const fetchRaw = async (first: number, count: number, win: Window, buffer: Buffer) => {
    const start = first * cs;
    const end = start + bytesOf(first, count) - 1;
    let next = first;
    const sink = bufferingSink(buffer, async (length) => {
      const n = Math.ceil(length / cs);
      const bad = await writeVerified(buffer, next, n, win);
      if (bad.length > 0) {
        const at = (bad[0] as number) * cs;
        throw new ClgwError(
          'CHUNK_MISMATCH',
          `chunk ${bad[0]} (bytes ${at}-${at + lengthOf(bad[0] as number) - 1}) of ${url} does not match its chunk index`,
          { details: { url, offset: at, chunk: bad[0], chunkSize: cs } },
        );
      }
      tally(length, length, 0);
      next += n;
    });
    await http.receiveRange(url, { start, end, size, signal }, sink);
    await sink.end();
  };

  /**
   * Chunks `first … first + count - 1` from the pack: each stored chunk inflated (or taken as it
   * is) into `buffer`, checked and written a buffer at a time. `state.refetch` collects the
   * chunks that did not inflate to their digest, `state.next` is the first chunk not yet written:
   * the caller fetches both from the artifact, also when the pack proves unusable part-way
   * (PackUnusable).
   */
  const fetchPacked = async (
    p: { url: string; size: number },
    first: number,
    count: number,
    win: Window,
    { buffer, partial }: Buffers,
    state: { next: number; refetch: number[] },
  ) => {
    const at = (chunk: number) => win.packAt[chunk - win.first] as number;
    const start = at(first);
    const end = at(first + count) - 1;
    const unusable = (e: unknown) =>
      isClgwError(e) && !e.transient && PACK_UNUSABLE.has(e.code) ? new PackUnusable(e) : e;
    let partialUsed = 0;
    let chunk = first;
    let filled = 0;
    let wire = 0;
    const perBuffer = Math.floor(buffer.length / cs);
    const broken = new Set<number>();
    const flush = async () => {
      const batchFirst = state.next;
      const bad = await writeVerified(buffer, batchFirst, filled, win, broken);
      const badBytes = bad.reduce((sum, c) => sum + lengthOf(c), 0);
      tally(bytesOf(batchFirst, filled) - badBytes, wire, 0);
      state.refetch.push(...bad);
      state.next += filled;
      filled = 0;
      wire = 0;
    };
    /** One stored chunk, complete: into the buffer, inflated when it was deflated. */
    const place = (stored: Buffer) => {
      const length = lengthOf(chunk);
      const into = buffer.subarray(filled * cs, filled * cs + length);
      if (stored.length === length) stored.copy(into);
      else {
        try {
          // An output buffer of the chunk's length and a byte (so that a full one does not make
          // zlib start another), not the default 16 KiB: each is garbage until the next scavenge,
          // and a pack of a few thousand chunks left megabytes of them pending (measured: 16 KiB
          // per call by default, 4 KiB with this).
          const inflated = inflateRawSync(stored, {
            maxOutputLength: length,
            chunkSize: Math.max(zlib.Z_MIN_CHUNK, length + 1),
          });
          if (inflated.length === length) inflated.copy(into);
          else broken.add(chunk);
        } catch {
          broken.add(chunk);
        }
      }
      wire += stored.length;
      filled++;
      chunk++;
    };
    /** Places the stored chunks of a piece, writing the buffer out whenever it is full. */
    const take = (piece: Buffer): Promise<void> | undefined => {
      for (let offset = 0; offset < piece.length; ) {
        if (chunk >= first + count)
          throw new ClgwError('SIZE_EXCEEDED', `${p.url} sent more than bytes ${start}-${end}`, {
            details: { url: p.url, start, end },
          });
        const stored = storedLength(win.entries, chunk - win.first);
        const n = Math.min(stored - partialUsed, piece.length - offset);
        if (partialUsed === 0 && n === stored) place(piece.subarray(offset, offset + n));
        else {
          piece.copy(partial, partialUsed, offset, offset + n);
          partialUsed += n;
          if (partialUsed === stored) {
            place(partial.subarray(0, stored));
            partialUsed = 0;
          }
        }
        offset += n;
        if (filled > 0 && (filled === perBuffer || chunk === first + count)) {
          // The piece is valid only during the call: what is left of it waits as a copy.
          const rest = offset < piece.length ? Buffer.from(piece.subarray(offset)) : undefined;
          return flush().then(() => (rest ? take(rest) : undefined));
        }
      }
      return undefined;
    };
    try {
      await http.receiveRange(p.url, { start, end, size: p.size, signal }, { data: take });
    } catch (e) {
      throw unusable(e);
    }
    if (filled > 0) await flush();
  };

  /** Chunks `first … first + count - 1` from the mirror: the pack while it is usable, else the artifact. */
  const fetchRange = async (first: number, count: number, win: Window) => {
    const buffers = takeBuffers();
    const { buffer } = buffers;
    try {
      const state = { next: first, refetch: [] as number[] };
      if (pack) {
        try {
          await fetchPacked(pack, first, count, win, buffers, state);
        } catch (e) {
          if (!(e instanceof PackUnusable)) throw e;
          if (pack) opts.onPackUnusable?.(e.reason);
          pack = undefined;
        }
      }
      packChunksRefetched += state.refetch.length;
      const { refetch } = state;
      for (let i = 0; i < refetch.length; ) {
        let run = 1;
        while (i + run < refetch.length && refetch[i + run] === (refetch[i] as number) + run) run++;
        await fetchRaw(refetch[i] as number, run, win, buffer);
        i += run;
      }
      if (state.next < first + count) await fetchRaw(state.next, first + count - state.next, win, buffer);
    } finally {
      spare.push(buffers);
    }
  };

  /** Starts one Range request once fewer than MAX_IN_FLIGHT run; its failure stops the install. */
  const launch = async (first: number, count: number, win: Window) => {
    while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight.keys());
    if (failed) return;
    const start = first * cs;
    const request: Promise<void> = fetchRange(first, count, win).then(
      () => {
        inFlight.delete(request);
        maybeCheckpoint();
      },
      (e: unknown) => {
        brokenAt = Math.min(brokenAt, start);
        inFlight.delete(request);
        fail(e);
      },
    );
    inFlight.set(request, start);
  };

  // A batch of copies is read into the first of the aligned pair the read-back borrows next: one
  // pair made for the update, not a buffer here and the pair beside it at the read-back.
  const pair = borrowBuffers();
  const copyBuffer = wholeChunks(pair[0], cs);
  const copyBatch = copyBuffer.length / cs;
  /** Copies from the active slot; chunks whose bytes there do not match are fetched instead. */
  const copy = async (op: Extract<ChunkOp, { kind: 'copy' }>, win: Window) => {
    const missed: number[] = [];
    for (let j = 0; j < op.count; j += copyBatch) {
      const m = Math.min(copyBatch, op.count - j);
      // Source chunks that follow each other are read at once.
      for (let k = 0; k < m; ) {
        const from = op.from[j + k] as number;
        let run = 1;
        while (k + run < m && op.from[j + k + run] === from + run) run++;
        await readSource(src, opts.source.device, copyBuffer, k * cs, run * cs, from * cs);
        k += run;
      }
      const bad = await writeVerified(copyBuffer, op.first + j, m, win);
      const copied = bytesOf(op.first + j, m) - bad.reduce((sum, c) => sum + lengthOf(c), 0);
      tally(copied, 0, copied);
      missed.push(...bad);
    }
    mismatchedChunks += missed.length;
    for (let i = 0; i < missed.length; ) {
      let run = 1;
      while (i + run < missed.length && missed[i + run] === (missed[i] as number) + run) run++;
      await launch(missed[i] as number, run, win);
      i += run;
    }
  };

  /** Per chunk of the window: 1 when the target slot already holds it. */
  const scanTarget = async (win: Window, count: number) => {
    const inPlace = new Uint8Array(count);
    await hashDeviceChunks(
      out,
      device,
      { from: win.first * cs, length: bytesOf(win.first, count), chunkSize: cs, buffer: copyBuffer },
      (digest, chunk) => {
        const at = (chunk - win.first) * INDEX_ENTRY_BYTES;
        inPlace[chunk - win.first] = digestIs(digest, win.entries, at) ? 1 : 0;
      },
      signal,
    );
    return inPlace;
  };

  /** The next window of entries, with where each of its chunks starts in the pack. */
  let packOffset = 0;
  const nextWindow = async (first: number, count: number): Promise<Window> => {
    const entries = await index.read(count);
    const packAt = new Float64Array(count + 1);
    for (let i = 0; i < count; i++) {
      packAt[i] = packOffset;
      packOffset += storedLength(entries, i);
    }
    packAt[count] = packOffset;
    return { first, entries, packAt };
  };

  try {
    try {
      const windowsPerCollection = Math.max(1, Math.round(OLD_GC_BYTES / (windowChunks * cs)));
      for (let w = 0, n = 0; w < chunks && !failed; w += windowChunks, n++) {
        signal.throwIfAborted();
        const count = Math.min(windowChunks, chunks - w);
        const win = await nextWindow(w, count);
        if (n % windowsPerCollection === 0) collectOldGeneration();
        const inPlace = opts.resume ? await scanTarget(win, count) : undefined;
        const find = (h: Uint8Array, o: number) => opts.source.table.find(h, o);
        for (const op of planWindow({
          first: w,
          entries: win.entries,
          ...(inPlace ? { inPlace } : {}),
          find,
          maxGap,
        })) {
          if (op.kind === 'keep') tally(bytesOf(op.first, op.count), 0, bytesOf(op.first, op.count));
          else if (op.kind === 'copy') await copy(op, win);
          else await launch(op.first, op.count, win);
          // A request refused because another failed meanwhile never ran: nothing past here is issued.
          if (failed) break;
          issued = Math.min(size, (op.first + op.count) * cs);
          maybeCheckpoint();
        }
      }
      // Requests settle by themselves (a failure is recorded, never thrown); so do checkpoints.
      while (inFlight.size > 0) await Promise.race(inFlight.keys());
      while (checkpointing) await checkpointing;
      if (failed) throw failure;
      await sync();
    } catch (caught) {
      fail(caught);
      while (inFlight.size > 0) await Promise.race(inFlight.keys());
      while (checkpointing) await checkpointing;
      const e = failure;
      if (isClgwError(e) && (e.code === 'RANGE_NOT_SUPPORTED' || e.code === 'CHUNK_MISMATCH'))
        return { kind: 'fallback', reason: e, downloadedBytes: progress.downloaded };
      const interrupted = opts.signal?.aborted || (isClgwError(e) && e.transient);
      if (interrupted) {
        await keepProgress(e, async () => {
          const offset = writtenBelow();
          if (offset > durable) await checkpoint(offset);
        });
      }
      throw e;
    }
    await onCheckpoint(size);
    return {
      kind: 'written',
      downloadedBytes: progress.downloaded,
      reusedBytes: progress.reused,
      mismatchedChunks,
      packChunksRefetched,
    };
  } finally {
    returnBuffers(pair);
    index.close();
    await Promise.all([out.close(), src.close()]);
  }
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
