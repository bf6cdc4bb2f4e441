import { describe, expect, it } from 'vitest';
import {
  decodeSntpPacket,
  encodeSntpRequest,
  fromNtpTimestamp,
  type NtpTimestamp,
  SNTP_PACKET_BYTES,
  type SntpPacket,
  sntpOffset,
  sntpReplyProblem,
  toNtpTimestamp,
} from '../../../agent/src/diagnostics/sntp.js';

const UNIX_2026 = Date.UTC(2026, 0, 1, 12, 0, 0, 250);

/** A server reply built byte by byte, as a server would send it. */
function reply(fields: {
  first?: number;
  stratum?: number;
  ref?: number[];
  origin?: NtpTimestamp;
  receive?: NtpTimestamp;
  transmit?: NtpTimestamp;
  length?: number;
}): Uint8Array {
  const bytes = new Uint8Array(fields.length ?? 48);
  const view = new DataView(bytes.buffer);
  bytes[0] = fields.first ?? 0x24; // LI 0, version 4, mode 4
  if (bytes.length < 48) return bytes;
  bytes[1] = fields.stratum ?? 2;
  bytes.set(fields.ref ?? [192, 0, 2, 1], 12);
  const put = (at: number, t?: NtpTimestamp) => {
    if (!t) return;
    view.setUint32(at, t.seconds);
    view.setUint32(at + 4, t.fraction);
  };
  put(24, fields.origin);
  put(32, fields.receive);
  put(40, fields.transmit);
  return bytes;
}

describe('NTP timestamps', () => {
  it('converts Unix milliseconds to NTP seconds since 1900 and back', () => {
    const t = toNtpTimestamp(UNIX_2026);
    expect(t.seconds).toBe(Math.floor(UNIX_2026 / 1000) + 2_208_988_800);
    // 250 ms is a quarter of 2^32 (the low 16 bits hold the salt).
    expect(t.fraction).toBe(0x4000_0000);
    expect(fromNtpTimestamp(t)).toBeCloseTo(UNIX_2026, 3);
  });

  it('puts the salt in the low 16 bits without moving the time by more than 16 µs', () => {
    const t = toNtpTimestamp(UNIX_2026, 0xbeef);
    expect(t.fraction & 0xffff).toBe(0xbeef);
    expect(Math.abs(fromNtpTimestamp(t) - UNIX_2026)).toBeLessThan(0.016);
  });

  it('reads timestamps after the 2036 era rollover as era 1', () => {
    const after = Date.UTC(2040, 5, 1);
    const t = toNtpTimestamp(after);
    expect(t.seconds).toBeLessThan(0x8000_0000);
    expect(fromNtpTimestamp(t)).toBeCloseTo(after, 3);
  });
});

describe('SNTP request', () => {
  it('is 48 bytes: LI 0, version 4, mode 3, only the transmit timestamp set', () => {
    const t = toNtpTimestamp(UNIX_2026, 7);
    const bytes = encodeSntpRequest(t);
    expect(bytes.length).toBe(SNTP_PACKET_BYTES);
    expect(bytes[0]).toBe(0x23);
    expect(bytes.subarray(1, 40).every((b) => b === 0)).toBe(true);
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(40)).toBe(t.seconds);
    expect(view.getUint32(44)).toBe(t.fraction);
  });
});

describe('SNTP reply', () => {
  const sent = toNtpTimestamp(UNIX_2026, 0x1234);
  const receive = toNtpTimestamp(UNIX_2026 + 2410);
  const transmit = toNtpTimestamp(UNIX_2026 + 2411);

  it('decodes the fields a client needs', () => {
    const packet = decodeSntpPacket(
      reply({ origin: sent, receive, transmit, stratum: 3, ref: [10, 0, 0, 1] }),
    );
    expect(packet).toMatchObject({ leap: 0, version: 4, mode: 4, stratum: 3, referenceId: '10.0.0.1' });
    expect((packet as SntpPacket).origin).toEqual(sent);
  });

  it('reads the reference ID as text at stratum 1 (the source) and 0 (the kiss code)', () => {
    const kod = decodeSntpPacket(reply({ stratum: 0, ref: [...Buffer.from('RATE')] })) as SntpPacket;
    expect(kod.referenceId).toBe('RATE');
    const gps = decodeSntpPacket(reply({ stratum: 1, ref: [...Buffer.from('GPS\0')] })) as SntpPacket;
    expect(gps.referenceId).toBe('GPS');
  });

  it('rejects a datagram shorter than an NTP packet', () => {
    expect(decodeSntpPacket(reply({ length: 12 }))).toBe('12-byte reply, an NTP packet has at least 48');
  });

  const problems: [string, Parameters<typeof reply>[0], string | undefined][] = [
    ['a real answer', { origin: sent, receive, transmit }, undefined],
    [
      'our own request reflected (mode 3)',
      { first: 0x23, origin: sent, receive, transmit },
      'mode 3 (client)',
    ],
    ['a broadcast (mode 5)', { first: 0x25, origin: sent, receive, transmit }, 'mode 5 (broadcast)'],
    ['version 0', { first: 0x04, origin: sent, receive, transmit }, 'NTP version 0'],
    ['an answer to someone else', { origin: toNtpTimestamp(UNIX_2026, 0x9999), receive, transmit }, 'origin'],
    ['no origin at all', { receive, transmit }, 'origin'],
    [
      "a kiss-o'-death",
      { stratum: 0, ref: [...Buffer.from('DENY')], origin: sent, receive, transmit },
      'DENY',
    ],
    [
      'an unsynchronized server (stratum 16)',
      { stratum: 16, origin: sent, receive, transmit },
      'not synchronized',
    ],
    ['an alarm leap indicator', { first: 0xe4, origin: sent, receive, transmit }, 'not synchronized'],
    ['no transmit timestamp', { origin: sent, receive }, 'no receive or transmit'],
  ];
  it.each(problems)('judges %s', (_what, fields, problem) => {
    const packet = decodeSntpPacket(reply(fields));
    expect(typeof packet).toBe('object');
    const found = sntpReplyProblem(packet as SntpPacket, [toNtpTimestamp(UNIX_2026 - 500, 1), sent]);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toContain(problem);
  });
});

describe('offset and round trip (RFC 5905 §8)', () => {
  it('a server 2.4 s ahead with 20 ms each way', () => {
    const t1 = 1_000_000;
    const t2 = t1 + 20 + 2400;
    const t3 = t2 + 1;
    const t4 = t1 + 41;
    expect(sntpOffset(t1, t2, t3, t4)).toEqual({ offsetMs: 2400, roundTripMs: 40 });
  });

  it('a server behind us', () => {
    expect(sntpOffset(5000, 4010, 4010, 5020).offsetMs).toBe(-1000);
  });
});
