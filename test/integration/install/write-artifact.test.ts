import { closeSync, promises as fs, openSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { createHttpClient, type HttpClient } from '@clgw/core/platform/http.js';
import { deviceCapacity } from '@clgw/core/slot/device.js';
import { DIRECT_ALIGN, IO_BUFFER, openDirect } from '@clgw/core/slot/direct-io.js';
import { verifyArtifactOnDevice } from '@clgw/core/slot/read-back.js';
import { type ArtifactTarget, writeArtifact } from '@clgw/core/slot/stream-write.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REPO } from '../../support/appliance.js';
import { artifactBytes, sha256Hex, startTestMirror, type TestMirror } from '../../support/mirror.js';
import { recordSkip } from '../../support/skip.js';

const SIZE = 1024 * 1024 + 12_345; // not a multiple of any buffer size
const ARTIFACT = artifactBytes(SIZE, 42);
const DIGEST = sha256Hex(ARTIFACT);
const SLOT_SIZE = SIZE + 256 * 1024;
const FILL = 0xaa;
const CHECKPOINT = 64 * 1024;
/** statfs magic numbers of filesystems whose files live in memory: tmpfs, ramfs. */
const MEMORY_FS = new Set([0x01021994, 0x858458f6]);

let mirror: TestMirror;
let http: HttpClient;
let dir: string;
let slot: string;

beforeAll(async () => {
  mirror = await startTestMirror({ 'root.img': ARTIFACT });
  http = createHttpClient({ clock: systemClock, ca: mirror.caPem, proxy: null, retries: 0 });
});

afterAll(async () => {
  await mirror?.close();
});

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-install-'));
  slot = path.join(dir, 'root_b');
  await fs.writeFile(slot, Buffer.alloc(SLOT_SIZE, FILL));
});

afterEach(async () => {
  mirror.setFault('/root.img', undefined);
  mirror.resetStats();
  await fs.rm(dir, { recursive: true, force: true });
});

function target(overrides: Partial<ArtifactTarget> = {}): ArtifactTarget {
  return { url: `${mirror.url}/root.img`, size: SIZE, sha256: DIGEST, device: slot, ...overrides };
}

async function failure(p: Promise<unknown>): Promise<ClgwError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ClgwError);
    return e as ClgwError;
  }
  throw new Error('expected the write to fail, it succeeded');
}

/** Checkpoints as the journal would see them. */
function journal() {
  const offsets: number[] = [];
  return {
    offsets,
    last: () => offsets.at(-1) ?? 0,
    onCheckpoint: async (offset: number) => {
      offsets.push(offset);
    },
  };
}

async function slotBytes(): Promise<Buffer> {
  return fs.readFile(slot);
}

function expectTailUntouched(content: Buffer): void {
  expect(content.length).toBe(SLOT_SIZE);
  expect(content.subarray(SIZE).equals(Buffer.alloc(SLOT_SIZE - SIZE, FILL))).toBe(true);
}

describe('writeArtifact', () => {
  it('streams the artifact into a fixed-size slot file, checkpointing durable progress', async () => {
    const j = journal();
    const progress: number[] = [];
    let checkpointsRunning = 0;
    let checkpointsAtOnce = 0;
    const result = await writeArtifact(http, target(), {
      activeDevices: [path.join(dir, 'root_a')],
      checkpointBytes: CHECKPOINT,
      onProgress: (n) => progress.push(n),
      onCheckpoint: async (offset) => {
        checkpointsAtOnce = Math.max(checkpointsAtOnce, ++checkpointsRunning);
        // What the journal records must already be in the slot.
        const fh = await fs.open(slot, 'r');
        const head = Buffer.alloc(offset);
        await fh.read(head, 0, offset, 0);
        await fh.close();
        expect(head.equals(ARTIFACT.subarray(0, offset))).toBe(true);
        await new Promise((r) => setTimeout(r, 5));
        await j.onCheckpoint(offset);
        checkpointsRunning--;
      },
    });
    expect(result.downloadedBytes).toBe(SIZE);
    const content = await slotBytes();
    expect(content.subarray(0, SIZE).equals(ARTIFACT)).toBe(true);
    expectTailUntouched(content);
    // Checkpoints run in the background one at a time, at least 64 KiB apart (those due while one
    // runs are folded into the next), at write boundaries, and the whole size comes last.
    expect(checkpointsAtOnce).toBe(1);
    expect(j.offsets.length).toBeGreaterThan(1);
    expect(j.last()).toBe(SIZE);
    j.offsets.slice(0, -1).forEach((offset, k) => {
      expect(offset % CHECKPOINT).toBe(0);
      expect(offset - (j.offsets[k - 1] ?? 0)).toBeGreaterThanOrEqual(CHECKPOINT);
      expect(offset).toBeLessThan(SIZE);
    });
    expect(progress.at(-1)).toBe(SIZE);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    await verifyArtifactOnDevice(slot, SIZE, DIGEST);
  });

  it('fails with HASH_MISMATCH naming the URL and both digests, and resets the journal offset', async () => {
    const wrong = sha256Hex('something else');
    const j = journal();
    const e = await failure(
      writeArtifact(http, target({ sha256: wrong }), {
        activeDevices: [],
        checkpointBytes: CHECKPOINT,
        ...j,
      }),
    );
    expect(e.code).toBe('HASH_MISMATCH');
    expect(e.transient).toBe(false);
    expect(e.message).toContain(`${mirror.url}/root.img`);
    expect(e.message).toContain(wrong);
    expect(e.message).toContain(DIGEST);
    expect(e.details).toMatchObject({ expected: wrong, actual: DIGEST, device: slot });
    expect(j.last()).toBe(0);
  });

  it('reads the slot back behind the write when asked: right bytes pass, wrong ones are written whole and said to be wrong', async () => {
    const right = await writeArtifact(http, target(), {
      activeDevices: [],
      checkpointBytes: CHECKPOINT,
      digestCheck: 'read-back',
      ...journal(),
    });
    expect(right).toEqual({ downloadedBytes: SIZE, readBack: true });
    // Checked in flight instead: not read back.
    const streamed = await writeArtifact(http, target(), { activeDevices: [], ...journal() });
    expect(streamed).toEqual({ downloadedBytes: SIZE, readBack: false });

    const wrong = sha256Hex('something else');
    const j = journal();
    const result = await writeArtifact(http, target({ sha256: wrong }), {
      activeDevices: [],
      checkpointBytes: CHECKPOINT,
      digestCheck: 'read-back',
      ...j,
    });
    // No HASH_MISMATCH: the caller reads back once more to say why (the agent's verify phase).
    expect(result).toEqual({ downloadedBytes: SIZE, readBack: false });
    expect(j.last()).toBe(SIZE);
    expect((await slotBytes()).subarray(0, SIZE).equals(ARTIFACT)).toBe(true);
    const e = await failure(verifyArtifactOnDevice(slot, SIZE, wrong));
    expect(e.code).toBe('READBACK_MISMATCH');
    expect(e.details).toMatchObject({ device: slot, expected: wrong, actual: DIGEST });
  });

  it('checks what the slot holds, not what was sent: a byte spoiled on the device after its write is caught', async () => {
    let spoiled = false;
    const result = await writeArtifact(http, target(), {
      activeDevices: [],
      checkpointBytes: CHECKPOINT,
      digestCheck: 'read-back',
      ...journal(),
      // A disk that did not keep a byte: changed once its write completed, before it is read back
      // (pieces are read back IO_BUFFER at a time).
      onProgress: (written) => {
        if (spoiled || written < 2 * CHECKPOINT) return;
        spoiled = true;
        const fd = openSync(slot, 'r+');
        writeSync(fd, Buffer.from([ARTIFACT[100]! ^ 0xff]), 0, 1, 100);
        closeSync(fd);
      },
    });
    expect(spoiled).toBe(true);
    expect(result).toEqual({ downloadedBytes: SIZE, readBack: false });
  });

  it('resumes reading back the prefix the slot holds while it downloads the rest', async () => {
    mirror.setFault('/root.img', { dropConnectionAt: 600_000 });
    const j = journal();
    await failure(
      writeArtifact(http, target(), {
        activeDevices: [],
        checkpointBytes: CHECKPOINT,
        digestCheck: 'read-back',
        ...j,
      }),
    );
    const resumeAt = j.last();
    expect(resumeAt).toBeGreaterThan(0);
    // Spoiled after the cut: a write that re-hashed the prefix first would start over (HASH_MISMATCH
    // in stream mode); this one asks for the rest at once and finds the prefix wrong as it goes.
    const fh = await fs.open(slot, 'r+');
    await fh.write(Buffer.alloc(1000, 0x00), 0, 1000, 0);
    await fh.close();
    mirror.setFault('/root.img', undefined);
    mirror.resetStats();
    const result = await writeArtifact(http, target(), {
      activeDevices: [],
      resumeOffset: resumeAt,
      digestCheck: 'read-back',
      ...j,
    });
    expect(result).toEqual({ downloadedBytes: SIZE - resumeAt, readBack: false });
    expect(mirror.stats('/root.img').ranges).toEqual([`bytes=${resumeAt}-`]);
    expect(j.last()).toBe(SIZE);
    expect((await failure(verifyArtifactOnDevice(slot, SIZE, DIGEST))).code).toBe('READBACK_MISMATCH');
    // The journal's "complete" is still re-hashed before it is believed: downloaded again from 0.
    const again = await writeArtifact(http, target(), {
      activeDevices: [],
      resumeOffset: SIZE,
      digestCheck: 'read-back',
      ...j,
    });
    expect(again).toEqual({ downloadedBytes: SIZE, readBack: true });
    await verifyArtifactOnDevice(slot, SIZE, DIGEST);
    // And a "complete" that is right is read back, not downloaded.
    expect(
      await writeArtifact(http, target(), {
        activeDevices: [],
        resumeOffset: SIZE,
        digestCheck: 'read-back',
        ...j,
      }),
    ).toEqual({ downloadedBytes: 0, readBack: true });
  });

  it('reports a truncated download as transient and resumable', async () => {
    mirror.setFault('/root.img', { truncateAt: 300_000 });
    const j = journal();
    const e = await failure(
      writeArtifact(http, target(), { activeDevices: [], checkpointBytes: CHECKPOINT, ...j }),
    );
    expect(e.code).toBe('ARTIFACT_TRUNCATED');
    expect(e.transient).toBe(true);
    expect(e.message).toContain(`${mirror.url}/root.img`);
    expect(j.last()).toBeGreaterThan(0);
    expect(j.last()).toBeLessThanOrEqual(300_000);

    const resumeAt = j.last();
    mirror.setFault('/root.img', undefined);
    mirror.resetStats();
    await writeArtifact(http, target(), { activeDevices: [], resumeOffset: resumeAt, ...j });
    expect(mirror.stats('/root.img').bytes).toBe(SIZE - resumeAt);
    await verifyArtifactOnDevice(slot, SIZE, DIGEST);
  });

  it('stops at once when the server sends more than the declared size, writing nothing past it', async () => {
    mirror.setFault('/root.img', { extraBytes: 300_000 });
    const e = await failure(
      writeArtifact(http, target(), { activeDevices: [], checkpointBytes: CHECKPOINT }),
    );
    expect(e.code).toBe('SIZE_EXCEEDED');
    expect(e.message).toContain(`${mirror.url}/root.img`);
    expectTailUntouched(await slotBytes());
  });

  it('refuses with NO_SPACE before writing when the slot is smaller than the artifact', async () => {
    const small = path.join(dir, 'small_b');
    const before = Buffer.alloc(SIZE - 1, FILL);
    await fs.writeFile(small, before);
    const e = await failure(writeArtifact(http, target({ device: small }), { activeDevices: [] }));
    expect(e.code).toBe('NO_SPACE');
    expect(e.message).toContain(small);
    expect(e.message).toContain(String(SIZE));
    expect(e.message).toContain(String(SIZE - 1));
    expect((await fs.readFile(small)).equals(before)).toBe(true);
    expect(mirror.stats('/root.img').requests).toBe(0);
  });

  it('refuses with SLOT_ACTIVE to open a device of the booted slot, also through a symlink', async () => {
    const link = path.join(dir, 'by-partlabel-root_a');
    await fs.symlink(slot, link);
    for (const active of [slot, link]) {
      const e = await failure(writeArtifact(http, target(), { activeDevices: [active] }));
      expect(e.code).toBe('SLOT_ACTIVE');
      expect(e.message).toContain(slot);
    }
    const content = await slotBytes();
    expect(content.equals(Buffer.alloc(SLOT_SIZE, FILL))).toBe(true);
    expect(mirror.stats('/root.img').requests).toBe(0);
  });

  it('never creates a missing slot device', async () => {
    const missing = path.join(dir, 'nonexistent_b');
    const e = await failure(writeArtifact(http, target({ device: missing }), { activeDevices: [] }));
    expect(e.code).toBe('SLOT_WRITE_FAILED');
    expect(e.message).toContain(missing);
    await expect(fs.stat(missing)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('resumes a download killed half-way and fetches only the rest', async () => {
    mirror.setFault('/root.img', { dropConnectionAt: 600_000 });
    const j = journal();
    const first = await failure(
      writeArtifact(http, target(), { activeDevices: [], checkpointBytes: CHECKPOINT, ...j }),
    );
    expect(first.transient).toBe(true);
    const resumeAt = j.last();
    expect(resumeAt).toBeGreaterThan(0);
    expect(resumeAt).toBeLessThan(SIZE);

    mirror.setFault('/root.img', undefined);
    mirror.resetStats();
    const progress: number[] = [];
    const result = await writeArtifact(http, target(), {
      activeDevices: [],
      checkpointBytes: CHECKPOINT,
      resumeOffset: resumeAt,
      onProgress: (n) => progress.push(n),
      ...j,
    });
    const served = mirror.stats('/root.img');
    expect(served.ranges).toEqual([`bytes=${resumeAt}-`]);
    expect(served.bytes).toBe(SIZE - resumeAt);
    expect(result.downloadedBytes).toBe(SIZE - resumeAt);
    expect(progress[0]).toBeGreaterThan(resumeAt);
    expect(j.last()).toBe(SIZE);
    const content = await slotBytes();
    expect(sha256Hex(content.subarray(0, SIZE))).toBe(DIGEST);
    expectTailUntouched(content);
  });

  it('restarts from 0 correctly when the server ignores Range on resume', async () => {
    mirror.setFault('/root.img', { dropConnectionAt: 500_000 });
    const j = journal();
    await failure(writeArtifact(http, target(), { activeDevices: [], checkpointBytes: CHECKPOINT, ...j }));
    expect(j.last()).toBeGreaterThan(0);
    // Spoil the already written prefix: a restart must overwrite it, not trust it.
    const fh = await fs.open(slot, 'r+');
    await fh.write(Buffer.alloc(1000, 0x00), 0, 1000, 0);
    await fh.close();

    mirror.setFault('/root.img', { ignoreRange: true });
    mirror.resetStats();
    const result = await writeArtifact(http, target(), { activeDevices: [], resumeOffset: j.last(), ...j });
    expect(mirror.stats('/root.img').statuses).toEqual([200]);
    expect(mirror.stats('/root.img').bytes).toBe(SIZE);
    expect(result.downloadedBytes).toBe(SIZE);
    await verifyArtifactOnDevice(slot, SIZE, DIGEST);
  });

  it('does not download again when the journal says the artifact is complete and the bytes agree', async () => {
    await writeArtifact(http, target(), { activeDevices: [] });
    mirror.resetStats();
    const result = await writeArtifact(http, target(), { activeDevices: [], resumeOffset: SIZE });
    expect(result.downloadedBytes).toBe(0);
    expect(mirror.stats('/root.img').requests).toBe(0);
  });

  it('downloads again from 0 when the journal says complete but the slot holds other bytes', async () => {
    const j = journal();
    const result = await writeArtifact(http, target(), { activeDevices: [], resumeOffset: SIZE, ...j });
    expect(j.offsets[0]).toBe(0);
    expect(result.downloadedBytes).toBe(SIZE);
    expect(mirror.stats('/root.img').ranges).toEqual([null]);
    await verifyArtifactOnDevice(slot, SIZE, DIGEST);
  });

  it('records durable progress and rejects with the reason when aborted', async () => {
    // Slow enough that the abort lands well before the end, whatever the scheduling.
    mirror.setFault('/root.img', { drip: 1_000_000 });
    const ac = new AbortController();
    const reason = new Error('update cancelled');
    const offsets: number[] = [];
    const p = writeArtifact(http, target(), {
      activeDevices: [],
      checkpointBytes: CHECKPOINT,
      signal: ac.signal,
      onCheckpoint: async (offset) => {
        offsets.push(offset);
        if (offsets.length === 2) ac.abort(reason);
      },
    });
    await expect(p).rejects.toBe(reason);
    expect(offsets[1]).toBeGreaterThanOrEqual(2 * CHECKPOINT);
    expect(offsets.at(-1)).toBeLessThan(SIZE);
    const content = await slotBytes();
    expect(content.subarray(0, offsets.at(-1)).equals(ARTIFACT.subarray(0, offsets.at(-1)))).toBe(true);
  });

  it('passes the network error through, naming the server', async () => {
    mirror.setFault('/root.img', { status: 404 });
    const e = await failure(writeArtifact(http, target(), { activeDevices: [] }));
    expect(e.code).toBe('HTTP_STATUS');
    expect(e.message).toContain(`${mirror.url}/root.img`);
    expect((await slotBytes()).equals(Buffer.alloc(SLOT_SIZE, FILL))).toBe(true);
  });

  it('writes whole blocks past the page cache (O_DIRECT) where the filesystem allows it', async (ctx) => {
    // tmpfs takes O_DIRECT since Linux 6.6, but its files *are* page-cache pages: nothing to see
    // there. The slot goes to the first candidate directory on a filesystem with a backing store.
    const candidates = [dir, path.join(REPO, '.cache/test')];
    let slotDir: string | undefined;
    for (const candidate of candidates) {
      await fs.mkdir(candidate, { recursive: true });
      if (!MEMORY_FS.has((await fs.statfs(candidate)).type)) {
        slotDir = candidate;
        break;
      }
    }
    if (!slotDir) {
      const reason = `${candidates.join(' and ')} are memory-backed (tmpfs): no page cache to bypass`;
      recordSkip('install: O_DIRECT slot writes', reason);
      ctx.skip(reason);
      return;
    }
    const onDisk = await fs.mkdtemp(path.join(slotDir, 'clgw-direct-'));
    try {
      const device = path.join(onDisk, 'root_b');
      await fs.writeFile(device, Buffer.alloc(SLOT_SIZE, FILL));
      const probe = await openDirect(device);
      if (!probe) {
        const reason = `the filesystem of ${onDisk} refuses O_DIRECT`;
        recordSkip('install: O_DIRECT slot writes', reason);
        ctx.skip(reason);
        return;
      }
      await probe.close();
      // The slot was just written through the page cache: every page is resident now.
      const resident = async () =>
        Number(
          (await execFile('fincore', ['--bytes', '--noheadings', '--output', 'RES', device])).stdout.trim(),
        );
      expect(await resident()).toBeGreaterThanOrEqual(SLOT_SIZE);
      await writeArtifact(http, target({ device }), { activeDevices: [], checkpointBytes: CHECKPOINT });
      // An O_DIRECT write drops the cached pages it covers; buffered writes would have kept them all.
      // Left resident: the slot past the artifact, its last partial block, and the odd page the
      // kernel could not invalidate at that moment (a few, seen on 6.x) — not the megabyte written.
      const wholeBlocks = Math.floor(SIZE / DIRECT_ALIGN) * DIRECT_ALIGN;
      expect(await resident()).toBeLessThan(SLOT_SIZE - wholeBlocks + 16 * DIRECT_ALIGN);
      const content = await fs.readFile(device);
      expect(content.subarray(0, SIZE).equals(ARTIFACT)).toBe(true);
      expectTailUntouched(content);
    } finally {
      await fs.rm(onDisk, { recursive: true, force: true });
    }
  });

  it('resumes at an offset that is not a block multiple', async () => {
    const resumeAt = 100_001;
    const fh = await fs.open(slot, 'r+');
    await fh.write(ARTIFACT, 0, resumeAt, 0);
    await fh.close();
    const j = journal();
    const result = await writeArtifact(http, target(), {
      activeDevices: [],
      checkpointBytes: CHECKPOINT,
      resumeOffset: resumeAt,
      ...j,
    });
    expect(mirror.stats('/root.img').ranges).toEqual([`bytes=${resumeAt}-`]);
    expect(result.downloadedBytes).toBe(SIZE - resumeAt);
    // Checkpoints after the first land on buffer boundaries again.
    expect(j.offsets.filter((o) => o < SIZE).every((o) => o % CHECKPOINT === 0)).toBe(true);
    const content = await slotBytes();
    expect(content.subarray(0, SIZE).equals(ARTIFACT)).toBe(true);
    expectTailUntouched(content);
  });
});

describe('verifyArtifactOnDevice', () => {
  it('detects a changed byte with READBACK_MISMATCH naming the device', async () => {
    await writeArtifact(http, target(), { activeDevices: [] });
    const fh = await fs.open(slot, 'r+');
    await fh.write(Buffer.from([ARTIFACT[SIZE - 1]! ^ 0xff]), 0, 1, SIZE - 1);
    await fh.close();
    const e = await failure(verifyArtifactOnDevice(slot, SIZE, DIGEST));
    expect(e.code).toBe('READBACK_MISMATCH');
    expect(e.message).toContain(slot);
    expect(e.message).toContain(DIGEST);
  });

  it('detects a device shorter than the artifact', async () => {
    const e = await failure(verifyArtifactOnDevice(slot, SLOT_SIZE + 1, DIGEST));
    expect(e.code).toBe('READBACK_MISMATCH');
    expect(e.message).toContain(slot);
  });

  it('reports the bytes read back as it goes, at most a read buffer apart, rising to the size', async () => {
    const size = 5 * IO_BUFFER + 777;
    const bytes = artifactBytes(size, 7);
    const device = path.join(dir, 'root_big');
    await fs.writeFile(device, Buffer.concat([bytes, Buffer.alloc(4096, FILL)]));
    const seen: number[] = [];
    await verifyArtifactOnDevice(device, size, sha256Hex(bytes), { onProgress: (n) => seen.push(n) });
    // Not once at the end: the read-back of a whole root artifact takes seconds on the appliance.
    expect(seen.length).toBeGreaterThanOrEqual(6);
    expect(seen.at(-1)).toBe(size);
    let before = 0;
    for (const n of seen) {
      expect(n).toBeGreaterThan(before);
      expect(n - before).toBeLessThanOrEqual(IO_BUFFER);
      before = n;
    }
  });
});

describe('block devices', () => {
  it('sizes and writes a loop block device with the same code', async (ctx) => {
    const backing = path.join(dir, 'disk.img');
    const diskSize = 2 * 1024 * 1024; // loop devices round down to 512-byte sectors
    await fs.writeFile(backing, Buffer.alloc(diskSize, FILL));
    let loop: string;
    try {
      loop = (await execFile('losetup', ['--find', '--show', backing])).stdout.trim();
    } catch (e) {
      const reason = `no loop device available (${(e as Error).message.split('\n')[0]})`;
      recordSkip('install: loop block device', reason);
      ctx.skip(reason);
      return;
    }
    try {
      const capacity = await deviceCapacity(loop);
      expect(capacity).toBe(Number((await execFile('blockdev', ['--getsize64', loop])).stdout.trim()));
      expect(capacity).toBe(diskSize);
      const link = path.join(dir, 'root_b_link');
      await fs.symlink(loop, link);
      expect(await deviceCapacity(link)).toBe(capacity);

      const e = await failure(writeArtifact(http, target({ device: link }), { activeDevices: [loop] }));
      expect(e.code).toBe('SLOT_ACTIVE');

      await writeArtifact(http, target({ device: link }), {
        activeDevices: [slot],
        checkpointBytes: CHECKPOINT,
      });
      await verifyArtifactOnDevice(loop, SIZE, DIGEST);
    } finally {
      await execFile('losetup', ['--detach', loop]);
    }
    const disk = await fs.readFile(backing);
    expect(disk.subarray(0, SIZE).equals(ARTIFACT)).toBe(true);
    expect(disk.subarray(SIZE).every((b) => b === FILL)).toBe(true);
  });

  it('gives a regular file its size as capacity', async () => {
    expect(await deviceCapacity(slot)).toBe(SLOT_SIZE);
  });
});
