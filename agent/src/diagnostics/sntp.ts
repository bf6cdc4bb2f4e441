/**
 * SNTP v4 (RFC 4330 / RFC 5905 packet format) as bytes: the 48-byte client request, the parse of a
 * reply, the checks that tell a real server answer from a wrong one, and the offset and round trip
 * from the four timestamps. Pure: no `node:*` imports, time arrives as numbers.
 */

/** Every NTP packet without extensions is this long; shorter replies are not NTP. */
export const SNTP_PACKET_BYTES = 48;

/** Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01). */
const NTP_UNIX_OFFSET_S = 2_208_988_800;
const TWO_32 = 0x1_0000_0000;
/** Era 0 ends 2036-02-07; seconds with the top bit clear are read as era 1 (RFC 4330 §3). */
const ERA_SPLIT = 0x8000_0000;

const MODE_CLIENT = 3;
const MODE_SERVER = 4;
const VERSION = 4;

/** An NTP timestamp as it travels: 32-bit seconds since 1900 and a 32-bit binary fraction. */
export interface NtpTimestamp {
  seconds: number;
  fraction: number;
}

/** The fields of a reply a client needs (RFC 5905 §7.3). */
export interface SntpPacket {
  /** 0 none, 1/2 leap second pending, 3 alarm: the server's clock is not synchronized. */
  leap: number;
  version: number;
  /** 3 client, 4 server, 5 broadcast; anything but 4 is not an answer to our request. */
  mode: number;
  /** 0 kiss-o'-death, 1 primary, 2–15 secondary, 16 unsynchronized. */
  stratum: number;
  /** Reference ID: four ASCII characters at stratum 0/1 (the kiss code, the source), else an IPv4 address. */
  referenceId: string;
  origin: NtpTimestamp;
  receive: NtpTimestamp;
  transmit: NtpTimestamp;
}

/** Milliseconds since the Unix epoch as an NTP timestamp; `salt` fills the low 16 fraction bits (< 16 µs). */
export function toNtpTimestamp(ms: number, salt = 0): NtpTimestamp {
  const totalSeconds = Math.floor(ms / 1000);
  const seconds = (totalSeconds + NTP_UNIX_OFFSET_S) % TWO_32;
  const fraction = Math.floor(((ms - totalSeconds * 1000) / 1000) * TWO_32);
  return { seconds, fraction: ((fraction & 0xffff0000) | (salt & 0xffff)) >>> 0 };
}

/** An NTP timestamp as milliseconds since the Unix epoch (era 1 from 2036 on). */
export function fromNtpTimestamp(t: NtpTimestamp): number {
  const seconds = t.seconds >= ERA_SPLIT ? t.seconds : t.seconds + TWO_32;
  return (seconds - NTP_UNIX_OFFSET_S) * 1000 + (t.fraction / TWO_32) * 1000;
}

/** Bit-for-bit equal: how a reply's origin timestamp is matched to the request it answers. */
export function sameNtpTimestamp(a: NtpTimestamp, b: NtpTimestamp): boolean {
  return a.seconds === b.seconds && a.fraction === b.fraction;
}

function isZero(t: NtpTimestamp): boolean {
  return t.seconds === 0 && t.fraction === 0;
}

function writeTimestamp(view: DataView, at: number, t: NtpTimestamp): void {
  view.setUint32(at, t.seconds);
  view.setUint32(at + 4, t.fraction);
}

function readTimestamp(view: DataView, at: number): NtpTimestamp {
  return { seconds: view.getUint32(at), fraction: view.getUint32(at + 4) };
}

/**
 * The client request: LI 0, version 4, mode 3, every field zero but the transmit timestamp, which
 * the server must echo as its origin timestamp (our proof that the reply answers this request).
 */
export function encodeSntpRequest(transmit: NtpTimestamp): Uint8Array {
  const bytes = new Uint8Array(SNTP_PACKET_BYTES);
  const view = new DataView(bytes.buffer);
  bytes[0] = (0 << 6) | (VERSION << 3) | MODE_CLIENT;
  writeTimestamp(view, 40, transmit);
  return bytes;
}

/** Reads a packet; a string says why the bytes are not an NTP packet at all. */
export function decodeSntpPacket(bytes: Uint8Array): SntpPacket | string {
  if (bytes.length < SNTP_PACKET_BYTES) {
    return `${bytes.length}-byte reply, an NTP packet has at least ${SNTP_PACKET_BYTES}`;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = bytes[0]!;
  const stratum = bytes[1]!;
  const ref = bytes.subarray(12, 16);
  const referenceId =
    stratum <= 1
      ? String.fromCharCode(...ref).replace(/[^\x20-\x7e]/g, '')
      : `${ref[0]}.${ref[1]}.${ref[2]}.${ref[3]}`;
  return {
    leap: first >> 6,
    version: (first >> 3) & 0x07,
    mode: first & 0x07,
    stratum,
    referenceId,
    origin: readTimestamp(view, 24),
    receive: readTimestamp(view, 32),
    transmit: readTimestamp(view, 40),
  };
}

/**
 * Why a decoded packet is not a usable answer to one of our requests (their transmit timestamps are
 * `sent`: retransmissions carry new ones), or undefined when it is one. Order matters: a reflected
 * request is named by its mode, a kiss-o'-death as such rather than as "stratum 0".
 */
export function sntpReplyProblem(packet: SntpPacket, sent: readonly NtpTimestamp[]): string | undefined {
  if (packet.mode !== MODE_SERVER) {
    return `mode ${packet.mode} (${modeName(packet.mode)}), expected mode 4 (server)`;
  }
  if (packet.version < 1 || packet.version > 4) return `NTP version ${packet.version}, expected 1 to 4`;
  if (!sent.some((t) => sameNtpTimestamp(t, packet.origin)))
    return 'the origin timestamp does not echo our request';
  if (packet.stratum === 0)
    return `kiss-o'-death ${packet.referenceId || '(no code)'}: the server refuses to serve us`;
  if (packet.stratum >= 16 || packet.leap === 3) return 'the server is not synchronized itself';
  if (isZero(packet.transmit) || isZero(packet.receive))
    return 'the reply has no receive or transmit timestamp';
  return undefined;
}

function modeName(mode: number): string {
  const names = [
    'reserved',
    'symmetric active',
    'symmetric passive',
    'client',
    'server',
    'broadcast',
    'control',
  ];
  return names[mode] ?? 'private';
}

/** Clock offset (server minus us) and round trip, in ms, from the four timestamps (RFC 5905 §8). */
export function sntpOffset(
  t1: number,
  t2: number,
  t3: number,
  t4: number,
): { offsetMs: number; roundTripMs: number } {
  return { offsetMs: (t2 - t1 + (t3 - t4)) / 2, roundTripMs: Math.max(0, t4 - t1 - (t3 - t2)) };
}
