import { describe, expect, it } from 'vitest';
import {
  decodeStunMessage,
  encodeBindingRequest,
  interpretBindingResponse,
  type StunMessage,
} from '../../../agent/src/diagnostics/stun.js';

const hex = (text: string) => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));

/** The transaction ID of the RFC 5769 sample messages. */
const RFC5769_ID = hex('b7e7a701 bc34d686 fa87dfae');

/** RFC 5769 §2.2: sample IPv4 Binding success response (SOFTWARE, XOR-MAPPED-ADDRESS, integrity, fingerprint). */
const RFC5769_IPV4 = hex(`
  0101 003c 2112 a442 b7e7 a701 bc34 d686 fa87 dfae
  8022 000b 7465 7374 2076 6563 746f 7220
  0020 0008 0001 a147 e112 a643
  0008 0014 2b91 f599 fd9e 90c3 8c74 89f9 2af9 ba53 f06b e7d7
  8028 0004 c07d 4c96`);

/** RFC 5769 §2.3: the same for IPv6. */
const RFC5769_IPV6 = hex(`
  0101 0048 2112 a442 b7e7 a701 bc34 d686 fa87 dfae
  8022 000b 7465 7374 2076 6563 746f 7220
  0020 0014 0002 a147 0113 a9fa a5d3 f179 bc25 f4b5 bed2 b9d9
  0008 0014 a382 954e 4be6 7bf1 1784 c97c 8292 c275 bfe3 ed41
  8028 0004 c8fb 0b4c`);

const ID = hex('000102030405060708090a0b');

/** A response with the given type and attributes (each padded to 4 bytes), as a server builds it. */
function response(type: number, id: Uint8Array, attributes: [number, Uint8Array][]): Uint8Array {
  const parts = attributes.map(([t, v]) => {
    const out = new Uint8Array(4 + Math.ceil(v.length / 4) * 4);
    new DataView(out.buffer).setUint16(0, t);
    new DataView(out.buffer).setUint16(2, v.length);
    out.set(v, 4);
    return out;
  });
  const length = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(20 + length);
  const view = new DataView(out.buffer);
  view.setUint16(0, type);
  view.setUint16(2, length);
  view.setUint32(4, 0x2112a442);
  out.set(id, 8);
  let at = 20;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe('STUN Binding Request', () => {
  it('is a 20-byte header: type 0x0001, no attributes, the magic cookie, our transaction ID', () => {
    expect(Buffer.from(encodeBindingRequest(ID)).toString('hex')).toBe(
      '000100002112a442000102030405060708090a0b',
    );
  });

  it('refuses a transaction ID that is not 12 bytes', () => {
    expect(() => encodeBindingRequest(new Uint8Array(8))).toThrow(/12 bytes/);
  });
});

describe('STUN message parse', () => {
  it('reads the RFC 5769 sample response with its four attributes', () => {
    const m = decodeStunMessage(RFC5769_IPV4) as StunMessage;
    expect(m.type).toBe(0x0101);
    expect(m.transactionId).toEqual(RFC5769_ID);
    expect(m.attributes.map((a) => a.type)).toEqual([0x8022, 0x0020, 0x0008, 0x8028]);
    // SOFTWARE is 11 bytes padded to 12: the value keeps its own length.
    expect(new TextDecoder().decode(m.attributes[0]!.value)).toBe('test vector');
  });

  it.each([
    ['shorter than a header', new Uint8Array(10), 'shorter than a STUN header'],
    ['an RTP-looking packet (top bits set)', hex('8000 0000 2112a442 000102030405060708090a0b'), 'top bits'],
    [
      'no magic cookie (RFC 3489 or garbage)',
      hex('0101 0000 deadbeef 000102030405060708090a0b'),
      'magic cookie',
    ],
    ['a length field that lies', hex('0101 0008 2112a442 000102030405060708090a0b'), 'length field'],
    [
      'an attribute running past the end',
      hex('0101 0004 2112a442 000102030405060708090a0b 0020 0008'),
      'runs past',
    ],
  ])('rejects %s', (_what, bytes, reason) => {
    expect(decodeStunMessage(bytes)).toContain(reason);
  });
});

describe('Binding response', () => {
  it('maps the RFC 5769 IPv4 sample to 192.0.2.1:32853 (XOR-MAPPED-ADDRESS)', () => {
    expect(interpretBindingResponse(RFC5769_IPV4, RFC5769_ID)).toEqual({
      kind: 'success',
      mapped: { family: 4, address: '192.0.2.1', port: 32853 },
      attribute: 'XOR-MAPPED-ADDRESS',
    });
  });

  it('maps the RFC 5769 IPv6 sample (XOR with the cookie and the transaction ID)', () => {
    expect(interpretBindingResponse(RFC5769_IPV6, RFC5769_ID)).toEqual({
      kind: 'success',
      mapped: { family: 6, address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 },
      attribute: 'XOR-MAPPED-ADDRESS',
    });
  });

  it('takes the plain MAPPED-ADDRESS of an RFC 3489-style server when there is no XOR one', () => {
    const bytes = response(0x0101, ID, [[0x0001, hex('0001 9c41 cb007107')]]);
    expect(interpretBindingResponse(bytes, ID)).toEqual({
      kind: 'success',
      mapped: { family: 4, address: '203.0.113.7', port: 40001 },
      attribute: 'MAPPED-ADDRESS',
    });
  });

  it('prefers XOR-MAPPED-ADDRESS over a (possibly NAT-rewritten) MAPPED-ADDRESS', () => {
    const xored = hex('0001 bd53 ea12d545'); // 203.0.113.7:40001 XOR the cookie
    const bytes = response(0x0101, ID, [
      [0x0001, hex('0001 0001 0a000001')],
      [0x0020, xored],
    ]);
    expect(interpretBindingResponse(bytes, ID)).toMatchObject({
      mapped: { address: '203.0.113.7', port: 40001 },
      attribute: 'XOR-MAPPED-ADDRESS',
    });
  });

  it('compresses IPv6 zeros the RFC 5952 way', () => {
    // ::1 port 3478, plain MAPPED-ADDRESS.
    const bytes = response(0x0101, ID, [[0x0001, hex('0002 0d96 00000000 00000000 00000000 00000001')]]);
    expect(interpretBindingResponse(bytes, ID)).toMatchObject({
      mapped: { family: 6, address: '::1', port: 3478 },
    });
  });

  it('is a wrong answer when the transaction ID is not ours', () => {
    expect(interpretBindingResponse(RFC5769_IPV4, ID)).toEqual({
      kind: 'wrong',
      reason: 'the transaction ID does not match our request',
    });
  });

  it('reads an error response: class and number, reason phrase', () => {
    const bytes = response(0x0111, ID, [
      [0x0009, new Uint8Array([0, 0, 4, 20, ...Buffer.from('Unknown Attribute')])],
    ]);
    expect(interpretBindingResponse(bytes, ID)).toEqual({
      kind: 'error',
      code: 420,
      reason: 'Unknown Attribute',
    });
  });

  it('reads an error response without ERROR-CODE as error 0', () => {
    expect(interpretBindingResponse(response(0x0111, ID, []), ID)).toMatchObject({ kind: 'error', code: 0 });
  });

  it.each([
    ['a request instead of a response', response(0x0001, ID, []), 'type 0x0001'],
    ['a success without a mapped address', response(0x0101, ID, []), 'without a mapped address'],
    ['an unknown address family', response(0x0101, ID, [[0x0020, hex('0003 0000 00000000')]]), 'family 0x3'],
    ['a truncated address', response(0x0101, ID, [[0x0020, hex('0001 0000')]]), 'too short'],
    ['garbage', new Uint8Array(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')), 'not a STUN message'],
  ])('is a wrong answer for %s', (_what, bytes, reason) => {
    const outcome = interpretBindingResponse(bytes, ID);
    expect(outcome.kind).toBe('wrong');
    expect((outcome as { reason: string }).reason).toContain(reason);
  });
});
