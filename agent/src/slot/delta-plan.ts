/**
 * The adaptive update's planner: for a window of the target artifact's chunks, which are already in
 * the target slot (keep), which the active slot holds somewhere (copy, from which chunk), and which
 * must come from the mirror (fetch) — the fetches coalesced into as few Range requests as is worth
 * it. Pure: index entries in, operations out.
 */
import { INDEX_ENTRY_BYTES } from '@clgw/core/release/chunk-index.js';

export type ChunkOp =
  /** Already in the target slot (a resumed install): nothing to do. */
  | { kind: 'keep'; first: number; count: number }
  /** Copy from the active slot: target chunk `first + i` from source chunk `from[i]`. */
  | { kind: 'copy'; first: number; count: number; from: number[] }
  /** One Range request for chunks `first … first + count - 1`. */
  | { kind: 'fetch'; first: number; count: number };

export interface WindowInput {
  /** Number of the window's first chunk in the artifact. */
  first: number;
  /** The target index's entries of the window's chunks (INDEX_ENTRY_BYTES each, digest first). */
  entries: Uint8Array;
  /** Per chunk of the window, non-zero when the target slot already holds it. */
  inPlace?: Uint8Array;
  /** The active slot's chunk with the digest at `entries[offset…]`, or -1 (see ChunkTable). */
  find: (entries: Uint8Array, offset: number) => number;
  /**
   * Fetches at most this many chunks apart become one request that fetches the chunks between too:
   * a few KiB more to download, one request (and round trip) fewer.
   */
  maxGap: number;
}

/** Operations covering every chunk of the window once, in chunk order. */
export function planWindow(input: WindowInput): ChunkOp[] {
  const count = input.entries.length / INDEX_ENTRY_BYTES;
  const ops: ChunkOp[] = [];
  for (let i = 0; i < count; i++) {
    const chunk = input.first + i;
    const last = ops[ops.length - 1];
    if (input.inPlace?.[i]) {
      if (last?.kind === 'keep') last.count++;
      else ops.push({ kind: 'keep', first: chunk, count: 1 });
      continue;
    }
    const from = input.find(input.entries, i * INDEX_ENTRY_BYTES);
    if (from >= 0) {
      if (last?.kind === 'copy') {
        last.count++;
        last.from.push(from);
      } else ops.push({ kind: 'copy', first: chunk, count: 1, from: [from] });
    } else if (last?.kind === 'fetch') last.count++;
    else ops.push({ kind: 'fetch', first: chunk, count: 1 });
  }
  return coalesceFetches(ops, input.maxGap);
}

/** Merges fetches separated by at most `maxGap` chunks of keep/copy into one fetch over the gap. */
export function coalesceFetches(ops: readonly ChunkOp[], maxGap: number): ChunkOp[] {
  const out: ChunkOp[] = [];
  let lastFetch = -1;
  let gap = 0;
  for (const op of ops) {
    if (op.kind !== 'fetch') {
      out.push(op);
      gap += op.count;
      continue;
    }
    const prev = out[lastFetch];
    if (prev && gap <= maxGap) {
      out.length = lastFetch + 1;
      prev.count += gap + op.count;
    } else {
      out.push({ ...op });
      lastFetch = out.length - 1;
    }
    gap = 0;
  }
  return out;
}
