/**
 * casync (Debian `casync`, version 2) as the delta peer, with its defaults (content-defined
 * chunks of 16/64/256 KiB min/avg/max, SHA-512/256 ids, zstd-compressed chunk files):
 *
 *   make     casync make --store=TREE/casync/store TREE/casync/index.caibx NEW.img
 *            (once per new image; kept beside the release in the tree the mirror serves)
 *   extract  casync extract --store=MIRROR/casync/store --seed=OLD.img MIRROR/casync/index.caibx OUT
 *            over HTTPS from the same mirror as the agent, trusting its CA (see inMirrorTrust)
 *
 * Bytes are counted where the agent's are: body bytes the mirror served under /casync/ during the
 * extract (the index and every chunk file fetched). The chunks fetched are also looked up in the
 * index to tell how many uncompressed bytes they carry, which separates what content-defined
 * chunking saved from what zstd did. The output is checked against the new image's SHA-256.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import type { Mirror } from '../lib/mirror.js';
import {
  BenchBroken,
  describeRun,
  inMirrorTrust,
  runTimed,
  say,
  seconds,
  settle,
  sha256Prefix,
} from './common.js';

const CASYNC_TIMEOUT_MS = 20 * 60 * 1000;
/** caibx: a 48-byte index header, a 16-byte table header, 40-byte items, a 40-byte tail. */
const INDEX_HEADER = 48;
const TABLE_HEADER = 16;
const ITEM = 40;

export interface ChunkIndex {
  /** Uncompressed length of each chunk, by its id in hex. */
  lengths: Map<string, number>;
  chunks: number;
  min: number;
  avg: number;
  max: number;
}

/** Reads a casync blob index (.caibx): the chunk sizes and each chunk's length. */
export function parseCaibx(buf: Buffer, name: string): ChunkIndex {
  const bad = (why: string) => new BenchBroken(`${name} is not a casync blob index: ${why}`);
  if (buf.length < INDEX_HEADER + TABLE_HEADER + ITEM) throw bad('too short');
  if (buf.readBigUInt64LE(0) !== BigInt(INDEX_HEADER)) throw bad('unexpected header size');
  const min = Number(buf.readBigUInt64LE(24));
  const avg = Number(buf.readBigUInt64LE(32));
  const max = Number(buf.readBigUInt64LE(40));
  const lengths = new Map<string, number>();
  let previous = 0;
  let chunks = 0;
  // Items until the tail, whose first field (zero_fill) is 0 where an item has its end offset.
  for (let o = INDEX_HEADER + TABLE_HEADER; o + ITEM <= buf.length; o += ITEM) {
    const end = Number(buf.readBigUInt64LE(o));
    if (end === 0) break;
    if (end <= previous) throw bad(`chunk end ${end} after ${previous}`);
    lengths.set(buf.subarray(o + 8, o + ITEM).toString('hex'), end - previous);
    previous = end;
    chunks++;
  }
  return { lengths, chunks, min, avg, max };
}

export interface CasyncStore {
  /** Directory (inside the mirror's tree) holding index.caibx and store/. */
  dir: string;
  /** Its URL path on the mirror, e.g. `/casync`. */
  urlPath: string;
  index: ChunkIndex;
  /** Bytes of all chunk files (what a full fetch from the store would cost). */
  storeBytes: number;
}

async function duBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fs.stat(path.join(e.parentPath ?? e.path, e.name))).size;
  }
  return total;
}

/** `casync make` of the new image into `tree/casync`, unless a stamp says it is already there. */
export async function ensureCasyncStore(
  tree: string,
  image: string,
  imageSha256: string,
): Promise<CasyncStore> {
  const dir = path.join(tree, 'casync');
  const indexFile = path.join(dir, 'index.caibx');
  const stampFile = path.join(dir, 'made-from.json');
  const stamp = JSON.stringify({ image: path.basename(image), sha256: imageSha256 });
  if ((await fs.readFile(stampFile, 'utf8').catch(() => '')) !== stamp) {
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { recursive: true });
    const t0 = process.hrtime.bigint();
    const r = await runTimed('casync', ['make', `--store=${path.join(dir, 'store')}`, indexFile, image], {
      timeoutMs: CASYNC_TIMEOUT_MS,
    });
    if (r.code !== 0) throw new BenchBroken(describeRun(`casync make of ${image}`, r));
    await writeFileAtomic(stampFile, stamp);
    say(`prepare: casync make ${path.relative(path.dirname(tree), dir)} in ${seconds(t0).toFixed(1)} s`);
  }
  const index = parseCaibx(await fs.readFile(indexFile), indexFile);
  return {
    dir,
    urlPath: `/${path.relative(tree, dir).split(path.sep).join('/')}`,
    index,
    storeBytes: await duBytes(path.join(dir, 'store')),
  };
}

export interface CasyncSample {
  /** Body bytes served under the store's URL path: index + chunk files. */
  bytes: number;
  requests: number;
  chunksFetched: number;
  /** Uncompressed length of the chunks fetched. */
  chunkBytesUncompressed: number;
  seconds: number;
}

/**
 * One `casync extract` of the new image from the mirror, seeded with the old image, into a fresh
 * file `out` (removed afterwards).
 */
export async function casyncExtract(o: {
  mirror: Mirror;
  store: CasyncStore;
  seed: string;
  out: string;
  trustDir: string;
  imageBytes: number;
  imageSha256: string;
  /** Run casync inside this network namespace. */
  netns?: string;
  /** The mirror's base URL as casync is to use it (default `mirror.url`). */
  baseUrl?: string;
}): Promise<CasyncSample> {
  const base = `${o.baseUrl ?? o.mirror.url}${o.store.urlPath}`;
  try {
    await fs.rm(o.out, { force: true });
    await settle();
    o.mirror.resetStats();
    const [trustBin, trustArgs] = inMirrorTrust(o.trustDir, 'casync', [
      'extract',
      `--store=${base}/store`,
      `--seed=${o.seed}`,
      `${base}/index.caibx`,
      o.out,
    ]);
    const [bin, args] = o.netns
      ? ['ip', ['netns', 'exec', o.netns, trustBin, ...trustArgs]]
      : [trustBin, trustArgs];
    const r = await runTimed(bin as string, args as string[], { timeoutMs: CASYNC_TIMEOUT_MS });
    if (r.code !== 0) throw new BenchBroken(describeRun(`casync extract ${base}/index.caibx`, r));
    let bytes = 0;
    let requests = 0;
    const fetched = new Set<string>();
    for (const p of o.mirror.paths()) {
      if (!p.startsWith(`${o.store.urlPath}/`)) continue;
      const s = o.mirror.stats(p);
      bytes += s.bytes;
      requests += s.requests;
      const m = /\/([0-9a-f]{64})\.cacnk$/.exec(p);
      if (m && s.statuses.includes(200)) fetched.add(m[1]!);
    }
    let chunkBytesUncompressed = 0;
    for (const id of fetched) chunkBytesUncompressed += o.store.index.lengths.get(id) ?? 0;
    const size = (await fs.stat(o.out)).size;
    const digest = size === o.imageBytes ? await sha256Prefix(o.out, o.imageBytes) : `${size} bytes`;
    if (digest !== o.imageSha256)
      throw new BenchBroken(`casync extract into ${o.out} gave ${digest}, the new image is ${o.imageSha256}`);
    return { bytes, requests, chunksFetched: fetched.size, chunkBytesUncompressed, seconds: r.seconds };
  } finally {
    await fs.rm(o.out, { force: true });
  }
}
