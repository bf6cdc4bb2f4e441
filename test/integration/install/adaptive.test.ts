/**
 * Adaptive (delta) updates on the simulated appliance, end to end: real ext4 images, the real
 * HTTPS mirror, the agent composed as on the appliance. The target slot must end byte for byte
 * the release, whatever the active slot and the mirror do; the bytes the mirror served show what
 * was downloaded.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { parseCompat } from '@clgw/core/release/parse.js';
import type { SlotArtifact } from '@clgw/core/release/schema.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { indexCacheFile, loadSourceTable } from '../../../agent/src/slot/index-cache.js';
import { writeSlotRecord } from '../../../agent/src/slot/status.js';
import { buildRelease, renderCompat, signDocument, verifyTree } from '../../../image/src/release/index.js';
import type { ReleaseImages } from '../../../scripts/sim/images.js';
import { makeWorld, type RunningAgent, startAgent, until, type World } from '../../support/appliance.js';
import { type DeltaImages, deltaImages, fileBlocks } from '../../support/delta-images.js';
import { artifactBytes } from '../../support/mirror.js';

const MIB = 1024 * 1024;
const ROOT = '/releases/1.1.0/root.img';
const INDEX = `${ROOT}.idx`;
const PACK = `${ROOT}.pack`;

let base: ReleaseImages;
let scattered: DeltaImages['scattered'];
let upgraded: ReleaseImages;

beforeAll(async () => {
  ({ base, scattered, upgraded } = await deltaImages('install'));
}, 120_000);

let world: World | undefined;
let running: RunningAgent | undefined;

afterEach(async () => {
  await running?.stop();
  await world?.close();
  running = undefined;
  world = undefined;
});

async function setUp(): Promise<World> {
  world = await makeWorld({ factory: base, rootSlotMiB: 64 });
  return world;
}

async function publish(w: World, images: ReleaseImages): Promise<void> {
  await buildRelease({
    tree: w.tree,
    keys: w.keys,
    version: images.version,
    platforms: ['virtual'],
    boot: images.boot,
    root: images.root,
    minSourceVersion: '1.0.0',
  });
}

/** Runs one update up to its reboot request (or until it settles otherwise); returns the final state. */
async function update(w: World, request: 'update' | 'retry' = 'update'): Promise<string> {
  running ??= await startAgent(w);
  const r = running;
  const reboots = r.reboots.length;
  await r.agent.request({ type: request });
  return until(async () => {
    if (r.reboots.length > reboots) return 'rebooting';
    const state = r.agent.journal.state;
    return state === 'failed' || state === 'idle' ? state : undefined;
  }, 'the update to reach its reboot or fail');
}

/** The slot's first `size` bytes equal the file. */
async function expectSlotHolds(device: string, image: string): Promise<void> {
  const want = await fs.readFile(image);
  const handle = await fs.open(device, 'r');
  try {
    const got = Buffer.alloc(want.length);
    await handle.read(got, 0, want.length, 0);
    expect(sha(got), `${device} holds ${image}`).toBe(sha(want));
  } finally {
    await handle.close();
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The published root index's entries (inflated): 8 bytes of digest and a stored length per chunk. */
async function rootEntries(w: World): Promise<Buffer> {
  return inflateRawSync((await fs.readFile(path.join(w.tree, INDEX.slice(1)))).subarray(20));
}

/** Where chunk `block` of the root image is in its pack: [first byte, last byte]. */
async function packPlace(w: World, block: number): Promise<[number, number]> {
  const entries = await rootEntries(w);
  let at = 0;
  for (let i = 0; i < block; i++) at += entries.readUInt32BE(i * 12 + 8);
  return [at, at + entries.readUInt32BE(block * 12 + 8) - 1];
}

/** The byte ranges a path was asked for (several to a request, or one), as [start, end] pairs. */
const rangesOf = (w: World, urlPath: string) =>
  w.mirror.stats(urlPath).ranges.flatMap((r) =>
    (r ?? '')
      .replace(/^bytes=/, '')
      .split(',')
      .map((spec) => /^(\d+)-(\d+)$/.exec(spec)!.slice(1).map(Number)),
  );
const covers = (ranges: number[][], [start, end]: [number, number]) =>
  ranges.some(([a, b]) => a! <= start && end <= b!);

/** Re-signs compat.yaml after `edit` changed the root artifact's entry. */
async function resign(w: World, edit: (root: SlotArtifact) => void): Promise<void> {
  const compat = parseCompat(await fs.readFile(path.join(w.tree, 'compat.yaml')));
  edit(compat.platforms.virtual!.release.artifacts.root);
  const document = Buffer.from(renderCompat(compat));
  await fs.writeFile(path.join(w.tree, 'compat.yaml'), document);
  await fs.writeFile(path.join(w.tree, 'compat.yaml.sig'), signDocument(document, w.keys));
}

/** The agent's `artifact written into slot` lines, by artifact. */
async function writtenLines(w: World): Promise<Record<string, Record<string, unknown>>[]> {
  await running?.deps.log.flush();
  const lines = (await fs.readFile(w.paths.logFile, 'utf8')).split('\n').filter(Boolean);
  const out: Record<string, Record<string, unknown>>[] = [];
  let attempt: Record<string, Record<string, unknown>> = {};
  for (const line of lines) {
    const l = JSON.parse(line) as Record<string, unknown>;
    if (l.msg !== 'artifact written into slot') continue;
    attempt[l.artifact as string] = l;
    if (l.artifact === 'root') {
      out.push(attempt);
      attempt = {};
    }
  }
  return out;
}

async function expectInstalled(w: World, images: ReleaseImages): Promise<void> {
  await expectSlotHolds(w.paths.partition('boot', 'B'), images.boot);
  await expectSlotHolds(w.paths.partition('root', 'B'), images.root);
}

describe('adaptive update', () => {
  it('1 % of the blocks changed, scattered: byte-identical slot, ≤ 5 % of the image downloaded', async () => {
    const w = await setUp();
    await publish(w, scattered);
    expect(await update(w)).toBe('rebooting');
    await expectInstalled(w, scattered);

    const size = (await fs.stat(scattered.root)).size;
    // The chunks come from the pack (the changed blocks are random bytes: stored as they are).
    const pack = w.mirror.stats(PACK).bytes;
    const index = w.mirror.stats(INDEX).bytes;
    expect(w.mirror.stats(ROOT).requests).toBe(0);
    // The changed blocks at least, the index besides, and little more.
    expect(pack).toBeGreaterThanOrEqual(scattered.changed.length * 4096);
    expect(pack + index).toBeLessThanOrEqual(0.05 * size);
    expect(w.mirror.stats(PACK).statuses.every((s) => s === 206)).toBe(true);
    const ranges = rangesOf(w, PACK);
    for (const block of scattered.changed) expect(covers(ranges, await packPlace(w, block))).toBe(true);
    const [lines] = await writtenLines(w);
    // The pack's bytes as the mirror served them: the chunks, and each part's header lines.
    // Read back from the slot behind its writes, and right.
    expect(lines?.root).toMatchObject({ mode: 'delta', totalBytes: size, readBack: true });
    expect(lines?.root?.downloadedBytes).toBeLessThanOrEqual(pack);
    expect(lines?.root?.downloadedBytes).toBeGreaterThanOrEqual(pack - 200 * ranges.length);
    // Several ranges to a request: a few requests carry the ~160 changed chunks.
    expect(w.mirror.stats(PACK).requests).toBeLessThanOrEqual(Math.ceil(ranges.length / 64) + 3);
    // Deflated neighbours fetched with a changed chunk come out larger than they went over the wire.
    expect(lines?.root?.reusedBytes).toBeLessThanOrEqual(size - Number(lines?.root?.downloadedBytes));
    expect(lines?.root?.reusedBytes).toBeGreaterThanOrEqual(0.95 * size);
    expect(lines?.boot).toMatchObject({ mode: 'delta' });
    console.info(
      `adaptive update, 1 % of 4 KiB blocks changed: ${pack} + ${index} (index) of ${size} bytes downloaded ` +
        `(${((100 * (pack + index)) / size).toFixed(2)} %), ${w.mirror.stats(PACK).requests} range requests`,
    );

    // The target's index is now the cached index of slot B's content, for the next update.
    const record = JSON.parse(await fs.readFile(w.paths.slotStatus, 'utf8')).B;
    expect(record).toMatchObject({ rootSize: size, rootSha256: sha(await fs.readFile(scattered.root)) });
    await fs.access(indexCacheFile(w.paths.chunkIndexes, 'B', 'root', record.rootSha256));
  });

  it('a file replaced by a larger one (the files after it move): byte-identical, little downloaded', async () => {
    const w = await setUp();
    await publish(w, upgraded);
    expect(await update(w)).toBe('rebooting');
    await expectInstalled(w, upgraded);
    const size = (await fs.stat(upgraded.root)).size;
    const fetched = w.mirror.stats(PACK).bytes + w.mirror.stats(ROOT).bytes;
    // 3.5 MiB of new (random) file and some metadata; the 2 MiB file that moved is copied from its
    // new place.
    expect(fetched).toBeGreaterThanOrEqual(3.5 * MIB);
    expect(fetched).toBeLessThan(4.5 * MIB);
    expect(fetched / size).toBeLessThan(0.1);
  });

  it('a chunk of the active slot that no longer matches its cached index is fetched instead', async () => {
    const w = await setUp();
    // Slot A as the agent records what it installed, with its index cached...
    const record = {
      version: '1.0.0',
      bootSha256: sha(await fs.readFile(base.boot)),
      rootSha256: sha(await fs.readFile(base.root)),
      bootSize: (await fs.stat(base.boot)).size,
      rootSize: (await fs.stat(base.root)).size,
    };
    await writeSlotRecord(w.paths.slotStatus, 'A', record);
    await loadSourceTable({
      device: w.paths.partition('root', 'A'),
      length: record.rootSize,
      chunkSize: 4096,
      cacheFile: indexCacheFile(w.paths.chunkIndexes, 'A', 'root', record.rootSha256),
    });
    // ...then damaged: blocks of a file the new release keeps as it is.
    const kept = await fileBlocks(base.root, '/usr/share/clgw/pkg-b.bin');
    const damaged = [kept[3]!, kept[4]!, kept[100]!];
    const slotA = await fs.open(w.paths.partition('root', 'A'), 'r+');
    for (const block of damaged) await slotA.write(Buffer.alloc(4096, 0xee), 0, 4096, block * 4096);
    await slotA.close();

    await publish(w, scattered);
    expect(await update(w)).toBe('rebooting');
    await expectInstalled(w, scattered);
    const [lines] = await writtenLines(w);
    expect(lines?.root).toMatchObject({ mode: 'delta', sourceChunksMismatched: damaged.length });
    const ranges = rangesOf(w, PACK);
    for (const block of damaged)
      expect(covers(ranges, await packPlace(w, block)), `block ${block} fetched`).toBe(true);
  });

  it('copies from the active slot do not wait for the network: they are done long before a slow pack', async () => {
    const w = await setUp();
    await publish(w, scattered);
    // Every response of the root's pack trickles, as over a slow link.
    w.mirror.setFault(PACK, { drip: 256 * 1024 });
    running = await startAgent(w);
    const r = running;
    const seen: { downloaded: number; reused: number }[] = [];
    const poll = setInterval(() => {
      const p = r.deps.progress.snapshot();
      if (p?.downloaded !== undefined && p.reused !== undefined)
        seen.push({ downloaded: p.downloaded, reused: p.reused });
    }, 5);
    try {
      expect(await update(w)).toBe('rebooting');
    } finally {
      clearInterval(poll);
    }
    await expectInstalled(w, scattered);
    const [lines] = await writtenLines(w);
    const bytes = (k: 'downloadedBytes' | 'reusedBytes') =>
      Number(lines?.boot?.[k]) + Number(lines?.root?.[k]);
    // The moment everything the active slot gives was in place, most of the pack was still to come.
    const copied = seen.find((s) => s.reused === bytes('reusedBytes'));
    expect(copied, 'a progress sample with every copy done').toBeDefined();
    expect(copied!.downloaded).toBeLessThan(
      Number(lines?.boot?.downloadedBytes) + 0.5 * Number(lines?.root?.downloadedBytes),
    );
    // …and came after: the samples go on to more of it (the last one may be taken before the end).
    expect(seen.some((s) => s.downloaded > copied!.downloaded)).toBe(true);
    expect(seen.every((s) => s.downloaded <= bytes('downloadedBytes'))).toBe(true);
  });

  it.each([
    ['the whole pack (HTTP 200, as S3 does)', 'whole'],
    ['one range from the first start to the last end', 'merged'],
  ] as const)('a mirror that answers several ranges with %s: asked one by one instead', async (_, how) => {
    const w = await setUp();
    await publish(w, scattered);
    w.mirror.setFault(PACK, { multiRange: how });
    expect(await update(w)).toBe('rebooting');
    await expectInstalled(w, scattered);
    const asked = w.mirror.stats(PACK).ranges;
    // One request asked for several; given up at its answer, every later one asks for one range.
    expect(asked.filter((r) => r?.includes(','))).toHaveLength(1);
    expect(asked.length).toBeGreaterThan(scattered.changed.length / 4);
    const log = (await fs.readFile(w.paths.logFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(
      log.find(
        (l) => l.msg === 'the download server does not send several ranges at once: asking range by range',
      ),
    ).toMatchObject({
      artifact: 'root',
      error: { code: 'RANGE_NOT_SUPPORTED', details: { multipart: true } },
    });
    const [lines] = await writtenLines(w);
    expect(lines?.root).toMatchObject({ mode: 'delta' });
    expect(log.some((l) => l.msg === 'chunk pack not usable: fetching chunks from the artifact itself')).toBe(
      false,
    );
  });

  it('a mirror that ignores Range: the artifact is downloaded whole', async () => {
    const w = await setUp();
    await publish(w, scattered);
    // The root image and everything beside it: the pack's ranges too.
    w.mirror.setFault(`${ROOT}*`, { ignoreRange: true });
    expect(await update(w)).toBe('rebooting');
    await expectInstalled(w, scattered);
    const size = (await fs.stat(scattered.root)).size;
    const stats = w.mirror.stats(ROOT);
    // The pack's range and then the image's answered with the whole file (dropped at once), then
    // the streaming download.
    const packStatuses = w.mirror.stats(PACK).statuses;
    expect(packStatuses.length).toBeGreaterThan(0);
    expect(packStatuses.every((s) => s === 200)).toBe(true);
    expect(stats.statuses[0]).toBe(200);
    expect(stats.ranges.at(-1)).toBeNull();
    expect(stats.bytes).toBeGreaterThanOrEqual(size);
    const [lines] = await writtenLines(w);
    expect(lines?.root).toMatchObject({ mode: 'full', downloadedBytes: size, reusedBytes: 0 });
  });

  it('a pack chunk that does not inflate to its digest is fetched from the image instead', async () => {
    const w = await setUp();
    await publish(w, scattered);
    const block = scattered.changed[0]!;
    const [start] = await packPlace(w, block);
    const file = await fs.open(path.join(w.tree, PACK.slice(1)), 'r+');
    await file.write(Buffer.from('tampered'), 0, 8, start + 100);
    await file.close();
    expect(await update(w)).toBe('rebooting');
    await expectInstalled(w, scattered);
    const [lines] = await writtenLines(w);
    expect(lines?.root).toMatchObject({ mode: 'delta', packChunksRefetched: 1 });
    expect(rangesOf(w, ROOT)).toEqual([[block * 4096, block * 4096 + 4095]]);
  });

  it('no pack on the mirror: the chunks come from the image itself', async () => {
    const w = await setUp();
    await publish(w, scattered);
    await fs.rm(path.join(w.tree, PACK.slice(1)));
    expect(await update(w)).toBe('rebooting');
    await expectInstalled(w, scattered);
    // The first requests in flight each find it missing; none after them asks for it.
    const packStatuses = w.mirror.stats(PACK).statuses;
    expect(packStatuses.length).toBeGreaterThan(0);
    expect(packStatuses.length).toBeLessThanOrEqual(4);
    expect(packStatuses.every((s) => s === 404)).toBe(true);
    const ranges = rangesOf(w, ROOT);
    for (const block of scattered.changed)
      expect(covers(ranges, [block * 4096, block * 4096 + 4095]), `block ${block}`).toBe(true);
    const size = (await fs.stat(scattered.root)).size;
    const root = w.mirror.stats(ROOT).bytes;
    const [lines] = await writtenLines(w);
    expect(lines?.root).toMatchObject({ mode: 'delta', downloadedBytes: root, reusedBytes: size - root });
    const log = (await fs.readFile(w.paths.logFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(
      log.find((l) => l.msg === 'chunk pack not usable: fetching chunks from the artifact itself'),
    ).toMatchObject({
      artifact: 'root',
      error: { code: 'HTTP_STATUS', details: { status: 404 } },
    });
  });

  it('a chunk from the mirror that does not match its index: downloaded whole instead, and refused', async () => {
    const w = await setUp();
    await publish(w, scattered);
    // Both the pack and the image hold wrong bytes for the chunk (a mirror serving damaged files).
    const block = scattered.changed[0]!;
    const [start] = await packPlace(w, block);
    for (const [file, at] of [
      [PACK, start + 100],
      [ROOT, block * 4096 + 100],
    ] as const) {
      const handle = await fs.open(path.join(w.tree, file.slice(1)), 'r+');
      await handle.write(Buffer.from('tampered'), 0, 8, at);
      await handle.close();
    }
    expect(await update(w)).toBe('failed');
    expect(running!.agent.journal.error).toMatchObject({ code: 'HASH_MISMATCH' });
    const log = (await fs.readFile(w.paths.logFile, 'utf8')).split('\n').filter(Boolean);
    const stopped = log
      .map((l) => JSON.parse(l))
      .find((l) => l.msg === 'adaptive update stopped: downloading the artifact whole');
    expect(stopped?.error).toMatchObject({ code: 'CHUNK_MISMATCH', details: { offset: block * 4096 } });
    expect(w.mirror.stats(ROOT).ranges.at(-1)).toBeNull();
  });

  it('an active slot with nothing the release needs: a probe says so, and the image is streamed whole', async () => {
    const w = await setUp();
    const unrelated = path.join(w.dir, 'unrelated-root.img');
    await fs.writeFile(unrelated, artifactBytes((await fs.stat(scattered.root)).size, 99));
    await buildRelease({
      tree: w.tree,
      keys: w.keys,
      version: '1.1.0',
      platforms: ['virtual'],
      boot: scattered.boot,
      root: unrelated,
      minSourceVersion: '1.0.0',
    });
    expect(await update(w)).toBe('rebooting');
    await expectSlotHolds(w.paths.partition('root', 'B'), unrelated);
    const log = (await fs.readFile(w.paths.logFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(
      log.find((l) => l.msg === 'the active slot holds nothing the artifact needs: downloading it whole'),
    ).toMatchObject({
      artifact: 'root',
      sampledChunks: 256,
      chunksFound: 0,
    });
    // The index was fetched, then the image whole; no range of the pack or the image.
    expect(w.mirror.stats(INDEX).requests).toBe(1);
    expect(w.mirror.stats(PACK).requests).toBe(0);
    expect(w.mirror.stats(ROOT).ranges).toEqual([null]);
    expect(
      log.some((l) => l.msg === 'the active slot holds almost none of the artifact: downloading it whole'),
    ).toBe(false);
    // Both read back behind their writes (the boot artifact assembled adaptively, the root
    // streamed): the verify phase reads neither again.
    const [written] = await writtenLines(w);
    expect(written?.boot).toMatchObject({ mode: 'delta', readBack: true });
    expect(written?.root).toMatchObject({ mode: 'full', readBack: true });
    expect(log.find((l) => l.msg === 'slot verified by read-back')).toMatchObject({
      readBackByDownload: ['boot', 'root'],
    });
  });

  it('a chunk index that lies is caught by the read-back; the image is downloaded again whole, checked as it arrives', async () => {
    const w = await setUp();
    await publish(w, scattered);
    // The index claims a changed block still holds its old content, which the active slot has. (A
    // block far from the other changes: fetched with a neighbour, it would be caught at once.)
    const c = scattered.changed;
    const block = c.find((b, i) => (c[i - 1] ?? -99) < b - 8 && (c[i + 1] ?? b + 99) > b + 8)!;
    const entries = await rootEntries(w);
    const old = (await fs.readFile(base.root)).subarray(block * 4096, (block + 1) * 4096);
    createHash('sha256')
      .update(old)
      .digest()
      .copy(entries, block * 12, 0, 8);
    const published = await fs.readFile(path.join(w.tree, INDEX.slice(1)));
    const idx = Buffer.concat([published.subarray(0, 20), deflateRawSync(entries)]);
    await fs.writeFile(path.join(w.tree, INDEX.slice(1)), idx);
    await resign(w, (root) => {
      root.index!.sha256 = sha(idx);
      root.index!.size = idx.length;
    });
    // The publisher's own check would have caught it.
    await expect(verifyTree({ tree: w.tree, trustedRootsPem: w.keys.root.certPem })).rejects.toMatchObject({
      code: 'INDEX_INVALID',
      message: expect.stringContaining('root.img.idx does not describe releases/1.1.0/root.img'),
    });

    // The verify phase's progress as the status would show it: it reads the root back (twice).
    running = await startAgent(w);
    const percents: number[] = [];
    const tracker = running.deps.progress;
    const report = tracker.update.bind(tracker);
    tracker.update = (...args) => {
      report(...args);
      const p = tracker.snapshot();
      if (p?.phase === 'verifying 1.1.0') percents.push(Math.floor((100 * p.bytes) / p.total));
    };
    expect(await update(w)).toBe('rebooting');
    await expectInstalled(w, scattered);
    // It rises piece by piece through the root artifact's read-back, not only at its end.
    expect(percents.at(-1)).toBe(100);
    expect(new Set(percents.filter((x) => x > 0 && x < 100)).size).toBeGreaterThan(1);
    await running!.deps.log.flush();
    const log = (await fs.readFile(w.paths.logFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const found = log.find(
      (l) => l.msg === 'read-back found the artifact wrong: downloading it again, checked as it arrives',
    );
    expect(found).toMatchObject({ artifact: 'root', error: { code: 'READBACK_MISMATCH' } });
    expect(found.device).toContain('root_b');
    expect(found.error.message).toContain('releases/1.1.0/root.img.idx');
    const size = (await fs.stat(scattered.root)).size;
    const [first, again] = await writtenLines(w);
    // Read back behind its writes, it did not match: left to the verify phase to say why.
    expect(first?.root).toMatchObject({ mode: 'delta' });
    expect(first?.root).not.toHaveProperty('readBack');
    // Only the root again (the boot artifact read back right), whole, its SHA-256 checked in flight.
    expect(again?.boot).toMatchObject({ downloadedBytes: 0 });
    expect(again?.root).toMatchObject({ mode: 'full', downloadedBytes: size, sha256CheckedInFlight: true });
    expect(w.mirror.stats(ROOT).ranges).toEqual([null]);
    expect(running!.agent.journal.written).toEqual({ boot: expect.any(Number), root: size });
  });

  it('a repeated check that finds nothing new is one conditional request without a body', async () => {
    const w = await setUp();
    await publish(w, base);
    const r = await startAgent(w);
    running = r;
    const check = async () => {
      w.mirror.resetStats();
      await r.agent.request({ type: 'check' });
      expect(await r.agent.waitSettled()).toBe('idle');
    };
    await check();
    expect(r.agent.journal.check?.outcome).toBe('upToDate');
    expect(w.mirror.paths().sort()).toEqual(['/compat.yaml', '/compat.yaml.sig']);
    expect(w.mirror.servedBytes()).toBeLessThan(16 * 1024);
    for (let i = 0; i < 2; i++) {
      await check();
      expect(r.agent.journal.check?.outcome).toBe('upToDate');
      expect(w.mirror.paths()).toEqual(['/compat.yaml']);
      expect(w.mirror.stats('/compat.yaml').statuses).toEqual([304]);
      expect(w.mirror.servedBytes()).toBe(0);
    }
    // Something new is published: the document changed, so it and its signature are fetched.
    await publish(w, scattered);
    await check();
    expect(w.mirror.stats('/compat.yaml').statuses).toEqual([200]);
    expect(w.mirror.paths()).toContain('/compat.yaml.sig');
    expect(r.agent.journal.check?.outcome).not.toBe('upToDate');
  });
});
