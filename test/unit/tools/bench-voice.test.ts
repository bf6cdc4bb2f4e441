import { describe, expect, it } from 'vitest';
import { BenchBroken } from '../../../scripts/bench/common.js';
import {
  type Arrival,
  type CallRecords,
  callStats,
  type DirectionStats,
  decodeArrivals,
  directionStats,
  downloadWindow,
  interarrivalJitter,
  packetIndex,
  parseRtpHeader,
  type ReceivedRecord,
  type SentRecord,
  worse,
} from '../../../scripts/bench/voice.js';

/** A received record as voice-peer.mjs writes it: [arrival ms, bytes, header hex]. */
function received(
  at: number,
  seq: number,
  ts: number,
  ssrc: number,
  o: { pt?: number; bytes?: number } = {},
) {
  const h = Buffer.alloc(12);
  h[0] = 0x80;
  h[1] = o.pt ?? 0;
  h.writeUInt16BE(seq & 0xffff, 2);
  h.writeUInt32BE(ts >>> 0, 4);
  h.writeUInt32BE(ssrc >>> 0, 8);
  return [at, o.bytes ?? 172, h.toString('hex')] satisfies ReceivedRecord;
}

describe('RTP header', () => {
  it('reads the fixed header, big-endian, flags included', () => {
    const bytes = Uint8Array.from([
      0xb3, 0x80, 0xff, 0xfe, 0x00, 0x00, 0x01, 0x40, 0xde, 0xad, 0xbe, 0xef, 0xff,
    ]);
    expect(parseRtpHeader(bytes)).toEqual({
      version: 2,
      padding: true,
      extension: true,
      csrcCount: 3,
      marker: true,
      payloadType: 0,
      sequence: 65534,
      timestamp: 320,
      ssrc: 0xdeadbeef,
    });
  });

  it('has no header in fewer than 12 bytes', () => {
    expect(parseRtpHeader(new Uint8Array(11))).toBeUndefined();
  });
});

describe('packet index from a 16-bit sequence number', () => {
  it('counts from the stream’s first sequence number, across the wrap', () => {
    expect(packetIndex(65530, 65530, 0)).toBe(0);
    expect(packetIndex(65535, 65530, 4)).toBe(5);
    expect(packetIndex(0, 65530, 5)).toBe(6);
    expect(packetIndex(3, 65530, 8)).toBe(9);
  });

  it('takes the index nearest the highest so far: a late packet stays behind it', () => {
    expect(packetIndex(65535, 65530, 9)).toBe(5);
    // Two wraps on, far from the start.
    expect(packetIndex((65530 + 140_000) & 0xffff, 65530, 139_990)).toBe(140_000);
    expect(packetIndex((65530 + 139_980) & 0xffff, 65530, 140_000)).toBe(139_980);
  });
});

describe('decoding what an end received', () => {
  it('keeps the stream’s packets in arrival order with their index, across the sequence wrap', () => {
    const ssrc = 0x01020304;
    const seq0 = 65534;
    const ts0 = 2 ** 32 - 320;
    const recs = [0, 1, 3, 2, 4].map((i, k) => received(1000 + 20 * k, seq0 + i, ts0 + 160 * i, ssrc));
    const { arrivals, foreign } = decodeArrivals(recs, { ssrc, seq0 });
    expect(foreign).toBe(0);
    expect(arrivals.map((a) => a.index)).toEqual([0, 1, 3, 2, 4]);
    expect(arrivals.map((a) => a.rtpTimestamp)).toEqual([ts0, ts0 + 160, 160, 0, 320]);
    expect(arrivals.map((a) => a.arrivalMs)).toEqual([1000, 1020, 1040, 1060, 1080]);
  });

  it('counts packets that are not the stream’s as foreign', () => {
    const recs = [
      received(1, 10, 0, 7),
      received(2, 11, 160, 8),
      received(3, 12, 320, 7, { pt: 8 }),
      received(4, 13, 480, 7, { bytes: 200 }),
      [5, 12, 'zz'] satisfies ReceivedRecord,
    ];
    const { arrivals, foreign } = decodeArrivals(recs, { ssrc: 7, seq0: 10 });
    expect(arrivals).toHaveLength(1);
    expect(foreign).toBe(4);
  });
});

/** Packets every 20 ms (160 samples at 8 kHz) from timestamp ts0, arriving at the given times. */
const stream = (arrivalMs: number[], ts0 = 0) =>
  arrivalMs.map((at, i) => ({ rtpTimestamp: (ts0 + 160 * i) >>> 0, arrivalMs: at }));

describe('RFC 3550 interarrival jitter', () => {
  it('is 0 for a constant transit time, across the timestamp wrap too', () => {
    const j = interarrivalJitter(stream([5, 25, 45, 65, 85], 2 ** 32 - 320));
    expect(j).toEqual({ peakMs: 0, meanMs: 0, lastMs: 0 });
  });

  it('moves 1/16 of the way to |D| per packet', () => {
    // The third packet is 16 ms late: D = +16 (J = 1), then D = −16 for the fourth (J = 1 + 15/16).
    const j = interarrivalJitter(stream([100, 120, 156, 160]));
    expect(j.lastMs).toBeCloseTo(1.9375, 12);
    expect(j.peakMs).toBeCloseTo(1.9375, 12);
    expect(j.meanMs).toBeCloseTo((0 + 1 + 1.9375) / 3, 12);
  });

  it('settles at the mean |D|: alternating 10 ms delays give 10 ms', () => {
    const at = Array.from({ length: 400 }, (_, i) => 20 * i + (i % 2) * 10);
    expect(interarrivalJitter(stream(at)).lastMs).toBeCloseTo(10, 6);
  });

  it('takes packets in arrival order: a reordered pair is two large differences', () => {
    // Packet 2 (ts 320) arrives before packet 1 (ts 160), both at their due time ± nothing else.
    const j = interarrivalJitter([
      { rtpTimestamp: 0, arrivalMs: 0 },
      { rtpTimestamp: 320, arrivalMs: 40 },
      { rtpTimestamp: 160, arrivalMs: 41 },
      { rtpTimestamp: 480, arrivalMs: 60 },
    ]);
    // D: 0, then 1 − (−20) = 21 (J = 21/16), then 19 − 40 = −21 (J += (21 − J)/16).
    const j2 = 21 / 16;
    expect(j.lastMs).toBeCloseTo(j2 + (21 - j2) / 16, 12);
  });

  it('uses the given RTP clock', () => {
    // 160 samples at 16 kHz are 10 ms: arrivals 20 ms apart are 10 ms late each time.
    expect(interarrivalJitter(stream([0, 20]), 16_000).lastMs).toBeCloseTo(10 / 16, 12);
  });

  it('is 0 for fewer than two packets', () => {
    expect(interarrivalJitter([])).toEqual({ peakMs: 0, meanMs: 0, lastMs: 0 });
    expect(interarrivalJitter(stream([3]))).toEqual({ peakMs: 0, meanMs: 0, lastMs: 0 });
  });
});

describe('one direction over a window', () => {
  // Sent at 1000 + 20 i ms, i = 0…9; the window [1040, 1140] holds packets 2…7.
  const sent: SentRecord[] = Array.from({ length: 10 }, (_, i) => [i, 1000 + 20 * i]);
  const arrival = (index: number, lateMs = 0): Arrival => ({
    index,
    rtpTimestamp: 160 * index,
    arrivalMs: 1001 + 20 * index + lateMs,
  });

  it('counts loss by sequence: the sent run first…last, less what arrived once', () => {
    // 5 and 7 (the window's last) lost, 3 duplicated, 0, 1 and 8 outside the window.
    const arrivals = [0, 1, 2, 3, 3, 4, 6, 8].map((i) => arrival(i));
    const s = directionStats(sent, arrivals, { fromMs: 1040, toMs: 1140 });
    expect(s.expected).toBe(6);
    expect(s.received).toBe(4);
    expect(s.lost).toBe(2);
    expect(s.lossPct).toBeCloseTo(100 / 3, 12);
    expect(s.jitterMs).toBe(0);
  });

  it('takes jitter over the window’s packets only', () => {
    // Packet 1 (outside) is 40 ms late: it does not count; packet 4 (inside) is 16 ms late.
    const arrivals = [arrival(0), arrival(1, 40), arrival(2), arrival(3), arrival(4, 16), arrival(5)];
    const s = directionStats(sent, arrivals, { fromMs: 1040, toMs: 1100 });
    expect(s.expected).toBe(4);
    expect(s.received).toBe(4);
    expect(s.jitterLastMs).toBeCloseTo(1.9375, 12);
    expect(s.jitterMs).toBeCloseTo(1.9375, 12);
  });

  it('refuses a window in which nothing was sent', () => {
    expect(() => directionStats(sent, [], { fromMs: 5000, toMs: 6000 })).toThrow(/no packet/);
  });
});

describe('both directions', () => {
  const stats = (lossPct: number, jitterMs: number) => ({ lossPct, jitterMs }) as DirectionStats;

  it('reports the worse direction of each figure', () => {
    expect(worse({ toAppliance: stats(0.4, 2), fromAppliance: stats(0, 7), windowSeconds: 1 })).toEqual({
      lossPct: 0.4,
      jitterMs: 7,
    });
  });

  const records = (farSsrc: number, extra: ReceivedRecord[] = []): CallRecords => ({
    startAt: 0,
    far: {
      stream: { ssrc: farSsrc, seq0: 100, ts0: 0 },
      report: {
        sent: [
          [0, 0],
          [1, 20],
          [2, 40],
        ],
        received: [received(1, 500, 0, 9), received(21, 501, 160, 9), ...extra],
      },
    },
    appliance: {
      stream: { ssrc: 9, seq0: 500, ts0: 0 },
      report: {
        sent: [
          [0, 0],
          [1, 20],
        ],
        received: [received(2, 100, 0, 5), received(42, 102, 320, 5)],
      },
    },
  });

  it('matches each end’s sent log with what the other end received', () => {
    const c = callStats(records(5), { fromMs: 0, toMs: 60 });
    expect(c.toAppliance).toMatchObject({ expected: 3, received: 2, lost: 1 });
    expect(c.fromAppliance).toMatchObject({ expected: 2, received: 2, lost: 0 });
    expect(c.windowSeconds).toBeCloseTo(0.06, 12);
  });

  it('stops on a packet that is not one of the call’s', () => {
    expect(() => callStats(records(5, [received(30, 1, 1, 1234)]), { fromMs: 0, toMs: 60 })).toThrow(
      BenchBroken,
    );
  });
});

describe('the download window in the agent’s log', () => {
  const line = (time: string, msg: string) => JSON.stringify({ time, level: 'info', msg });

  it('runs from the downloading state to the verifying after it', () => {
    const log = [
      line('2026-12-06T10:00:00.000Z', 'update state: checking'),
      line('2026-12-06T10:00:00.250Z', 'update state: downloading'),
      line('2026-12-06T10:00:03.000Z', 'writing artifact into slot'),
      line('2026-12-06T10:00:12.500Z', 'update state: verifying'),
      line('2026-12-06T10:00:14.000Z', 'update state: rebooting'),
    ].join('\n');
    expect(downloadWindow(log)).toEqual({
      fromMs: Date.parse('2026-12-06T10:00:00.250Z'),
      toMs: Date.parse('2026-12-06T10:00:12.500Z'),
    });
  });

  it('is undefined while the download has not ended', () => {
    expect(downloadWindow(line('2026-12-06T10:00:00.250Z', 'update state: downloading'))).toBeUndefined();
    expect(downloadWindow('')).toBeUndefined();
  });
});
