/**
 * The STUN checks against a real STUN server (coturn's turnserver on two loopback ports standing
 * for 3478 and 3479) and against stand-ins for what a real server will not do: stay silent,
 * answer another transaction, answer with an error or with garbage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HostPort, judgeStun } from '../../../agent/src/diagnostics/checks.js';
import { probeStun } from '../../../agent/src/diagnostics/probes.js';
import { freeUdpPort } from '../../support/peer-process.js';
import { startStunServer, type TestStunServer } from '../../support/stun-server.js';
import { startUdpResponder, type UdpResponder } from '../../support/udp-responder.js';

const TIMEOUT_MS = 600;
let turn: TestStunServer;
const responders: UdpResponder[] = [];

beforeAll(async () => {
  turn = await startStunServer();
});

afterAll(async () => {
  await Promise.all([turn?.close(), ...responders.map((r) => r.close())]);
});

async function responder(reply: (request: Buffer) => Uint8Array | undefined): Promise<HostPort> {
  const r = await startUdpResponder(reply);
  responders.push(r);
  return { host: r.host, port: r.port };
}

/** A Binding success response for `id` mapping 203.0.113.7:40001, built by hand. */
function successFor(id: Buffer): Buffer {
  const attr = Buffer.from('00200008' + '0001bd53ea12d545', 'hex');
  const header = Buffer.from('0101000c2112a442', 'hex');
  return Buffer.concat([header, id, attr]);
}

const probe = (target: HostPort) => probeStun(target, { dnsServers: [], timeoutMs: TIMEOUT_MS });

describe('STUN checks against turnserver', () => {
  it.each([0, 1])(
    'port %i: a real binding request returns our own address (no NAT on loopback)',
    async (i) => {
      const target = { host: turn.host, port: turn.ports[i]! };
      const obs = await probe(target);
      expect(obs).toMatchObject({ outcome: 'mapped', attribute: 'XOR-MAPPED-ADDRESS' });
      if (obs.outcome !== 'mapped') throw new Error('no mapping');
      expect(obs.mapped).toEqual(obs.local);
      expect(obs.mapped.address).toBe('127.0.0.1');
      const j = judgeStun(target, obs);
      expect(j.verdict).toBe('ok');
      expect(j.summary).toBe(
        `mapped address 127.0.0.1:${obs.local.port} from 127.0.0.1:${target.port} (no NAT)`,
      );
    },
  );
});

describe('STUN check failure modes', () => {
  it('no answer: a port that swallows requests; the request is retransmitted with the same ID', async () => {
    const silent = await startUdpResponder(() => undefined);
    responders.push(silent);
    const target = { host: silent.host, port: silent.port };
    const obs = await probe(target);
    expect(obs).toEqual({ outcome: 'timeout', stage: 'answer', limitMs: TIMEOUT_MS });
    expect(silent.received.length).toBeGreaterThan(1);
    expect(new Set(silent.received.map((m) => m.subarray(8, 20).toString('hex'))).size).toBe(1);
    expect(judgeStun(target, obs).summary).toBe(
      `STUN binding request to 127.0.0.1:${silent.port} failed: no answer within 600 ms (udp/${silent.port} blocked?)`,
    );
  });

  it('refused: nothing bound to the port', async () => {
    const target = { host: '127.0.0.1', port: await freeUdpPort() };
    const obs = await probe(target);
    expect(obs).toEqual({ outcome: 'refused' });
    expect(judgeStun(target, obs).verdict).toBe('failed');
  });

  it('wrong answer: a valid response for another transaction', async () => {
    const target = await responder(() => successFor(Buffer.alloc(12, 0xab)));
    const obs = await probe(target);
    expect(obs).toEqual({ outcome: 'wrong-answer', reason: 'the transaction ID does not match our request' });
    expect(judgeStun(target, obs).summary).toBe(
      `STUN binding request to 127.0.0.1:${target.port} failed: wrong answer: the transaction ID does not match our request`,
    );
  });

  it('the same stand-in with our transaction ID is a mapping: the ID alone made the difference', async () => {
    const target = await responder((request) => successFor(request.subarray(8, 20)));
    expect(await probe(target)).toMatchObject({
      outcome: 'mapped',
      mapped: { address: '203.0.113.7', port: 40001 },
    });
  });

  it('error response: 400 Bad Request', async () => {
    const target = await responder((request) => {
      const reason = Buffer.from('Bad Request');
      const attr = Buffer.concat([
        Buffer.from([0x00, 0x09, 0x00, 4 + reason.length, 0, 0, 4, 0]),
        reason,
        Buffer.alloc(1),
      ]);
      const header = Buffer.from([0x01, 0x11, 0x00, attr.length, 0x21, 0x12, 0xa4, 0x42]);
      return Buffer.concat([header, request.subarray(8, 20), attr]);
    });
    const obs = await probe(target);
    expect(obs).toEqual({ outcome: 'error-response', code: 400, reason: 'Bad Request' });
    expect(judgeStun(target, obs).summary).toBe(
      `STUN binding request to 127.0.0.1:${target.port} failed: the server answered error 400 Bad Request`,
    );
  });

  it('wrong answer: garbage', async () => {
    const target = await responder(() => Buffer.from('SIP/2.0 400 Bad Request\r\n\r\n'));
    expect(await probe(target)).toEqual({
      outcome: 'wrong-answer',
      reason: 'not a STUN message (top bits of the type set)',
    });
  });
});
