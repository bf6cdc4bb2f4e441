/**
 * The download budget (issue #22): artifact bodies fetched through a client with a RateBudget take
 * at least bytes / budget — whole (the streamed install), in ranges (the adaptive install) and as
 * a stream (container archives) — and the time held is not taken for a slow server.
 */
import { createHash } from 'node:crypto';
import { systemClock } from '@clgw/core/platform/clock.js';
import { createHttpClient } from '@clgw/core/platform/http.js';
import { mbitToBytesPerSecond, RateBudget } from '@clgw/core/platform/rate-budget.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactBytes, startTestMirror, type TestMirror } from '../../support/mirror.js';

const SIZE = 1_500_000;
const ARTIFACT = artifactBytes(SIZE, 11);
/** 8 Mbit/s: 1 MB/s, so the artifact takes at least 1.5 s. */
const MBIT = 8;
const floorSeconds = (bytes: number) => bytes / mbitToBytesPerSecond(MBIT);

let mirror: TestMirror;

beforeAll(async () => {
  mirror = await startTestMirror({ 'root.img': ARTIFACT });
});

afterAll(async () => {
  await mirror?.close();
});

function budgeted() {
  return createHttpClient({
    clock: systemClock,
    ca: mirror.caPem,
    proxy: null,
    retries: 0,
    rateBudget: new RateBudget(systemClock, mbitToBytesPerSecond(MBIT)),
    // A server slower than this fails, and the budget holds the body to half of it: the time held
    // is ours, not the server's.
    minBytesPerSecond: 2_000_000,
    minThroughputWindowMs: 500,
  });
}

const url = () => `${mirror.url}/root.img`;
const seconds = (since: bigint) => Number(process.hrtime.bigint() - since) / 1e9;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('a download budget', () => {
  it('holds a whole artifact (receive) to it', async () => {
    const pieces: Buffer[] = [];
    const t0 = process.hrtime.bigint();
    await budgeted().receive(url(), { expectedSize: SIZE }, () => undefined, {
      data: (c) => {
        pieces.push(Buffer.from(c));
        return undefined;
      },
    });
    expect(seconds(t0)).toBeGreaterThanOrEqual(floorSeconds(SIZE) * 0.9);
    expect(sha(Buffer.concat(pieces))).toBe(sha(ARTIFACT));
  });

  it('holds the ranges of an adaptive install to it, together', async () => {
    const client = budgeted();
    const ranges = [
      [0, 499_999],
      [500_000, 999_999],
      [1_000_000, SIZE - 1],
    ] as const;
    const got: Buffer[] = [];
    const t0 = process.hrtime.bigint();
    for (const [start, end] of ranges) {
      const pieces: Buffer[] = [];
      await client.receiveRange(
        url(),
        { start, end, size: SIZE },
        {
          data: (c) => {
            pieces.push(Buffer.from(c));
            return undefined;
          },
        },
      );
      got.push(Buffer.concat(pieces));
    }
    expect(seconds(t0)).toBeGreaterThanOrEqual(floorSeconds(SIZE) * 0.9);
    expect(sha(Buffer.concat(got))).toBe(sha(ARTIFACT));
  });

  it('holds a streamed body (container archives) to it', async () => {
    const t0 = process.hrtime.bigint();
    const { stream } = await budgeted().openStream(url(), { expectedSize: SIZE });
    const pieces: Buffer[] = [];
    for await (const c of stream) pieces.push(c as Buffer);
    expect(seconds(t0)).toBeGreaterThanOrEqual(floorSeconds(SIZE) * 0.9);
    expect(sha(Buffer.concat(pieces))).toBe(sha(ARTIFACT));
  });
});
