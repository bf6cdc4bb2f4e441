/**
 * STUN (RFC 5389) as bytes: the Binding Request, the parse of a message, and what a Binding
 * response says — the mapped address (XOR-MAPPED-ADDRESS, or the classic MAPPED-ADDRESS of RFC 3489
 * servers), an error response, or why the bytes are not an answer to our request. Pure: no `node:*`
 * imports.
 */

export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_HEADER_BYTES = 20;
export const STUN_TRANSACTION_ID_BYTES = 12;

const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const BINDING_ERROR = 0x0111;
const ATTR_MAPPED_ADDRESS = 0x0001;
const ATTR_ERROR_CODE = 0x0009;
const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
/** A datagram never exceeds this; a larger declared length is a lie. */
const MAX_MESSAGE_BYTES = 65_535;

export interface StunAttribute {
  type: number;
  value: Uint8Array;
}

export interface StunMessage {
  type: number;
  transactionId: Uint8Array;
  attributes: StunAttribute[];
}

/** The transport address the server saw us come from. */
export interface MappedAddress {
  family: 4 | 6;
  address: string;
  port: number;
}

/** What a Binding response means for the diagnostics. */
export type BindingOutcome =
  | { kind: 'success'; mapped: MappedAddress; attribute: 'XOR-MAPPED-ADDRESS' | 'MAPPED-ADDRESS' }
  | { kind: 'error'; code: number; reason: string }
  | { kind: 'wrong'; reason: string };

/** A Binding Request without attributes: the 20-byte header with the magic cookie and our ID. */
export function encodeBindingRequest(transactionId: Uint8Array): Uint8Array {
  if (transactionId.length !== STUN_TRANSACTION_ID_BYTES) {
    throw new RangeError(`a STUN transaction ID has 12 bytes, not ${transactionId.length}`);
  }
  const bytes = new Uint8Array(STUN_HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, BINDING_REQUEST);
  view.setUint16(2, 0);
  view.setUint32(4, STUN_MAGIC_COOKIE);
  bytes.set(transactionId, 8);
  return bytes;
}

/** Parses a STUN message; a string says why the bytes are not one. */
export function decodeStunMessage(bytes: Uint8Array): StunMessage | string {
  if (bytes.length < STUN_HEADER_BYTES) return `${bytes.length}-byte reply, shorter than a STUN header`;
  if (bytes.length > MAX_MESSAGE_BYTES) return `${bytes.length}-byte reply, larger than any STUN message`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = view.getUint16(0);
  const length = view.getUint16(2);
  // The two top bits of every STUN message are zero (RFC 5389 §6): how it is told from RTP and others.
  if (type & 0xc000) return 'not a STUN message (top bits of the type set)';
  if (view.getUint32(4) !== STUN_MAGIC_COOKIE) return 'not a STUN message (no magic cookie)';
  if (length % 4 !== 0 || STUN_HEADER_BYTES + length !== bytes.length) {
    return `STUN length field says ${length} bytes of attributes, the datagram has ${bytes.length - STUN_HEADER_BYTES}`;
  }
  const attributes: StunAttribute[] = [];
  let at = STUN_HEADER_BYTES;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) return 'truncated STUN attribute header';
    const attrType = view.getUint16(at);
    const attrLength = view.getUint16(at + 2);
    if (at + 4 + attrLength > bytes.length) return `STUN attribute 0x${hex4(attrType)} runs past the message`;
    attributes.push({ type: attrType, value: bytes.slice(at + 4, at + 4 + attrLength) });
    at += 4 + Math.ceil(attrLength / 4) * 4;
  }
  return { type, transactionId: bytes.slice(8, 20), attributes };
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * An address attribute's value. `xorKey` is undefined for MAPPED-ADDRESS; for XOR-MAPPED-ADDRESS
 * it is the magic cookie followed by the transaction ID (RFC 5389 §15.2).
 */
function readAddress(value: Uint8Array, xorKey?: Uint8Array): MappedAddress | string {
  if (value.length < 8) return 'address attribute too short';
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const family = value[1];
  const port = view.getUint16(2) ^ (xorKey ? (xorKey[0]! << 8) | xorKey[1]! : 0);
  const size = family === 0x01 ? 4 : family === 0x02 ? 16 : 0;
  if (size === 0) return `address family 0x${family?.toString(16)} unknown`;
  if (value.length < 4 + size) return 'address attribute too short for its family';
  const raw = value.slice(4, 4 + size).map((b, i) => b ^ (xorKey ? xorKey[i]! : 0));
  if (size === 4) return { family: 4, address: raw.join('.'), port };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((raw[i]! << 8) | raw[i + 1]!).toString(16));
  return { family: 6, address: compressIpv6(groups), port };
}

/** `0:0:0:0:0:0:0:1` → `::1`: the longest run of zero groups becomes `::` (RFC 5952). */
function compressIpv6(groups: string[]): string {
  let best = { start: -1, length: 0 };
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > best.length && j - i > 1) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(':');
  const head = groups.slice(0, best.start).join(':');
  const tail = groups.slice(best.start + best.length).join(':');
  return `${head}::${tail}`;
}

function cookieAndId(transactionId: Uint8Array): Uint8Array {
  const key = new Uint8Array(16);
  new DataView(key.buffer).setUint32(0, STUN_MAGIC_COOKIE);
  key.set(transactionId, 4);
  return key;
}

/** What `bytes` say as the answer to our Binding Request with `transactionId`. */
export function interpretBindingResponse(bytes: Uint8Array, transactionId: Uint8Array): BindingOutcome {
  const message = decodeStunMessage(bytes);
  if (typeof message === 'string') return { kind: 'wrong', reason: message };
  if (!sameBytes(message.transactionId, transactionId)) {
    return { kind: 'wrong', reason: 'the transaction ID does not match our request' };
  }
  if (message.type === BINDING_ERROR) {
    const attr = message.attributes.find((a) => a.type === ATTR_ERROR_CODE);
    if (!attr || attr.value.length < 4) return { kind: 'error', code: 0, reason: 'no ERROR-CODE attribute' };
    const code = (attr.value[2]! & 0x07) * 100 + attr.value[3]!;
    const reason = new TextDecoder().decode(attr.value.subarray(4)).trim();
    return { kind: 'error', code, reason };
  }
  if (message.type !== BINDING_SUCCESS) {
    return {
      kind: 'wrong',
      reason: `STUN message type 0x${hex4(message.type)}, expected a Binding response`,
    };
  }
  const xor = message.attributes.find((a) => a.type === ATTR_XOR_MAPPED_ADDRESS);
  if (xor) {
    const mapped = readAddress(xor.value, cookieAndId(transactionId));
    if (typeof mapped === 'string') return { kind: 'wrong', reason: `XOR-MAPPED-ADDRESS: ${mapped}` };
    return { kind: 'success', mapped, attribute: 'XOR-MAPPED-ADDRESS' };
  }
  const plain = message.attributes.find((a) => a.type === ATTR_MAPPED_ADDRESS);
  if (plain) {
    const mapped = readAddress(plain.value);
    if (typeof mapped === 'string') return { kind: 'wrong', reason: `MAPPED-ADDRESS: ${mapped}` };
    return { kind: 'success', mapped, attribute: 'MAPPED-ADDRESS' };
  }
  return { kind: 'wrong', reason: 'Binding response without a mapped address' };
}
