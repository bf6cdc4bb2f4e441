/**
 * writeArtifact with writes, fsyncs and checkpoints overlapping: the real slot file's FileHandle
 * calls are observed (and slowed or failed) through the FileHandle prototype, so the test sees
 * the order in which positional writes, fsyncs and onCheckpoint happened. Nothing depends on
 * timing: the hooks only slow calls down, and writeArtifact settles every write, fsync and
 * checkpoint before it rejects, so a failure's trace is complete when the promise settles.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { createHttpClient, type HttpClient } from '@clgw/core/platform/http.js';
import { verifyArtifactOnDevice } from '@clgw/core/slot/read-back.js';
import { type ArtifactTarget, writeArtifact } from '@clgw/core/slot/stream-write.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { artifactBytes, sha256Hex, startTestMirror, type TestMirror } from '../../support/mirror.js';

const SIZE = 3 * 1024 * 1024 + 4321; // three full 1 MiB write buffers and a tail
const ARTIFACT = artifactBytes(SIZE, 7);
const DIGEST = sha256Hex(ARTIFACT);
const SLOT_SIZE = SIZE + 64 * 1024;
const FILL = 0xaa;
const KIB = 1024;

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
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-overlap-'));
  slot = path.join(dir, 'root_b');
  await fs.writeFile(slot, Buffer.alloc(SLOT_SIZE, FILL));
});

afterEach(async () => {
  restore?.();
  restore = undefined;
  mirror.setFault('/root.img', undefined);
  await fs.rm(dir, { recursive: true, force: true });
});

function target(): ArtifactTarget {
  return { url: `${mirror.url}/root.img`, size: SIZE, sha256: DIGEST, device: slot };
}

/** One observed call, with its start and end on one sequence shared by every event. */
interface Call {
  kind: 'write' | 'sync';
  start: number;
  end?: number;
  offset: number;
  length: number;
}

interface Trace {
  calls: Call[];
  /** onCheckpoint calls, in order, with when they were made. */
  checkpoints: { offset: number; at: number }[];
  onCheckpoint: (offset: number) => Promise<void>;
  writesAtOnce: number;
}

type Hooks = {
  /** Runs before the real write; may throw to fail it. */
  beforeWrite?: (position: number) => Promise<void> | void;
  /** Runs before the real fsync (by then the call is already recorded as started). */
  beforeSync?: (nth: number) => Promise<void> | void;
  /** Runs inside onCheckpoint, after the call was recorded. */
  inCheckpoint?: (offset: number, nth: number) => Promise<void> | void;
};

let restore: (() => void) | undefined;

type WriteFn = (
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
) => Promise<{ bytesWritten: number }>;
type SyncFn = () => Promise<void>;

/** Observes every FileHandle write and sync of this process until the test ends. */
async function trace(hooks: Hooks = {}): Promise<Trace> {
  const probe = await fs.open(slot, 'r');
  const proto = Object.getPrototypeOf(probe) as { write: WriteFn; sync: SyncFn };
  await probe.close();
  const realWrite = proto.write;
  const realSync = proto.sync;
  let seq = 0;
  let writing = 0;
  let syncs = 0;
  const t: Trace = {
    calls: [],
    checkpoints: [],
    writesAtOnce: 0,
    onCheckpoint: async (offset) => {
      t.checkpoints.push({ offset, at: ++seq });
      await hooks.inCheckpoint?.(offset, t.checkpoints.length);
    },
  };
  proto.write = async function (this: unknown, buffer, offset, length, position) {
    const call: Call = { kind: 'write', start: ++seq, offset: position, length: 0 };
    t.calls.push(call);
    t.writesAtOnce = Math.max(t.writesAtOnce, ++writing);
    try {
      await hooks.beforeWrite?.(position);
      const result = await realWrite.call(this, buffer, offset, length, position);
      call.length = result.bytesWritten;
      return result;
    } finally {
      writing--;
      call.end = ++seq;
    }
  };
  proto.sync = async function (this: unknown) {
    const call: Call = { kind: 'sync', start: ++seq, offset: 0, length: 0 };
    t.calls.push(call);
    try {
      await hooks.beforeSync?.(++syncs);
      return await realSync.call(this);
    } finally {
      call.end = ++seq;
    }
  };
  restore = () => {
    proto.write = realWrite;
    proto.sync = realSync;
  };
  return t;
}

/**
 * The safety rule, for every offset X given to onCheckpoint: the writes before it cover [0, X),
 * and an fsync that started after the last of them completed had returned before onCheckpoint(X).
 */
function expectEveryCheckpointDurable(t: Trace): void {
  for (const { offset, at } of t.checkpoints) {
    if (offset === 0) continue;
    const below = t.calls
      .filter((c) => c.kind === 'write' && c.end !== undefined && c.end < at && c.offset < offset)
      .sort((a, b) => a.offset - b.offset);
    let covered = 0;
    for (const w of below) {
      expect(w.offset, `a gap below checkpoint ${offset}`).toBeLessThanOrEqual(covered);
      covered = Math.max(covered, w.offset + w.length);
    }
    expect(covered, `writes below checkpoint ${offset}`).toBeGreaterThanOrEqual(offset);
    const lastWrite = Math.max(...below.map((w) => w.end ?? Number.POSITIVE_INFINITY));
    const fsynced = t.calls.some(
      (c) => c.kind === 'sync' && c.start > lastWrite && c.end !== undefined && c.end < at,
    );
    expect(fsynced, `an fsync after the writes below ${offset}, before it was persisted`).toBe(true);
  }
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the write to fail, it succeeded');
}

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('writeArtifact overlapping network, disk and checkpoints', () => {
  it('keeps writing during a checkpoint, and persists only offsets fsynced after their writes', async () => {
    // The first checkpoint's fsync returns only once a later write has started. A writer that
    // waited for its checkpoints would never start one: after 20 s (far beyond any machine's
    // load) the fsync returns anyway and the assertion below reports it.
    let laterWrite: () => void = () => undefined;
    const wroteMeanwhile = new Promise<boolean>((resolve) => {
      laterWrite = () => resolve(true);
      setTimeout(() => resolve(false), 20_000).unref();
    });
    let firstSyncStarted = false;
    let overlapped: boolean | undefined;
    const t = await trace({
      beforeSync: async (nth) => {
        if (nth !== 1) return pause(2);
        firstSyncStarted = true;
        overlapped = await wroteMeanwhile;
      },
      beforeWrite: async () => {
        if (firstSyncStarted) laterWrite();
        await pause(1);
      },
      inCheckpoint: () => pause(3),
    });
    const progress: number[] = [];
    await writeArtifact(http, target(), {
      activeDevices: [],
      checkpointBytes: 256 * KIB,
      onCheckpoint: t.onCheckpoint,
      onProgress: (n) => progress.push(n),
    });
    restore?.();
    expect(overlapped).toBe(true);
    expect(t.checkpoints.at(-1)?.offset).toBe(SIZE);
    expect(t.checkpoints.length).toBeGreaterThan(2);
    const offsets = t.checkpoints.map((c) => c.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expectEveryCheckpointDurable(t);
    // Writes stay few at a time and never reach past the artifact.
    expect(t.writesAtOnce).toBeLessThanOrEqual(2);
    for (const c of t.calls) if (c.kind === 'write') expect(c.offset + c.length).toBeLessThanOrEqual(SIZE);
    expect(progress.at(-1)).toBe(SIZE);
    await verifyArtifactOnDevice(slot, SIZE, DIGEST);
  }, 60_000);

  it('records only a durable offset when the connection drops while writes and fsyncs run', async () => {
    mirror.setFault('/root.img', { dropConnectionAt: 2 * 1024 * 1024 + 100 });
    const t = await trace({ beforeWrite: () => pause(1), beforeSync: () => pause(3) });
    const e = await failure(
      writeArtifact(http, target(), {
        activeDevices: [],
        checkpointBytes: 128 * KIB,
        onCheckpoint: t.onCheckpoint,
      }),
    );
    restore?.();
    expect(e).toBeInstanceOf(ClgwError);
    expect((e as ClgwError).transient).toBe(true);
    const last = t.checkpoints.at(-1)?.offset ?? 0;
    expect(last).toBeGreaterThan(0);
    expect(last).toBeLessThanOrEqual(2 * 1024 * 1024 + 100);
    expectEveryCheckpointDurable(t);
    const head = (await fs.readFile(slot)).subarray(0, last);
    expect(head.equals(ARTIFACT.subarray(0, last))).toBe(true);
  });

  it('fails the whole write with the error of a background checkpoint, and persists nothing after it', async () => {
    const journalFull = new Error('journal: no space left on /data');
    const t = await trace({
      inCheckpoint: (_offset, nth) => {
        if (nth === 2) throw journalFull;
      },
    });
    const e = await failure(
      writeArtifact(http, target(), {
        activeDevices: [],
        checkpointBytes: 128 * KIB,
        onCheckpoint: t.onCheckpoint,
      }),
    );
    expect(e).toBe(journalFull);
    restore?.();
    expect(t.checkpoints).toHaveLength(2);
    expect(t.checkpoints[1]!.offset).toBeLessThan(SIZE);
    expectEveryCheckpointDurable(t);
  });

  it('fails with SLOT_WRITE_FAILED when a background fsync fails, persisting nothing it covered', async () => {
    const t = await trace({
      beforeSync: (nth) => {
        if (nth === 3) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO', errno: -5 });
      },
    });
    const e = await failure(
      writeArtifact(http, target(), {
        activeDevices: [],
        checkpointBytes: 128 * KIB,
        onCheckpoint: t.onCheckpoint,
      }),
    );
    restore?.();
    expect(e).toBeInstanceOf(ClgwError);
    expect((e as ClgwError).code).toBe('SLOT_WRITE_FAILED');
    expect((e as ClgwError).message).toContain(slot);
    expect(t.checkpoints).toHaveLength(2);
    expectEveryCheckpointDurable(t);
  });

  it('fails with SLOT_WRITE_FAILED naming the device and offset when a queued write fails', async () => {
    const failAt = 2 * 1024 * 1024;
    const t = await trace({
      beforeWrite: async (position) => {
        await pause(1);
        if (position === failAt) {
          throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO', errno: -5 });
        }
      },
    });
    const e = await failure(
      writeArtifact(http, target(), {
        activeDevices: [],
        checkpointBytes: 128 * KIB,
        onCheckpoint: t.onCheckpoint,
      }),
    );
    restore?.();
    expect(e).toBeInstanceOf(ClgwError);
    const err = e as ClgwError;
    expect(err.code).toBe('SLOT_WRITE_FAILED');
    expect(err.message).toContain(slot);
    expect(err.message).toContain(String(failAt));
    // Nothing is written after the failed write, and no checkpoint claims it.
    const writes = t.calls.filter((c) => c.kind === 'write');
    expect(writes.at(-1)?.offset).toBe(failAt);
    for (const c of t.checkpoints) expect(c.offset).toBeLessThanOrEqual(failAt);
    expectEveryCheckpointDurable(t);
  });
});
