/**
 * The DNS check against a real DNS server on loopback (test/support/dns-server.ts) and stand-ins:
 * a server that never answers, a closed port, one that answers with garbage or with an empty
 * answer. Each configured server is asked on its own, so one dead server of two is a warning.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { judgeDns } from '../../../agent/src/diagnostics/checks.js';
import { probeDns } from '../../../agent/src/diagnostics/probes.js';
import { startDnsServer, type TestDnsServer } from '../../support/dns-server.js';
import { freeUdpPort } from '../../support/peer-process.js';
import { startUdpResponder, type UdpResponder } from '../../support/udp-responder.js';

const TIMEOUT_MS = 600;
const HOST = 'download.clgw.test';
let dns: TestDnsServer;
const responders: UdpResponder[] = [];

beforeAll(async () => {
  dns = await startDnsServer({ records: { [HOST]: '127.0.0.1' }, silent: ['silent.clgw.test'] });
});

afterAll(async () => {
  await Promise.all([dns?.close(), ...responders.map((r) => r.close())]);
});

async function responder(reply: (request: Buffer) => Uint8Array | undefined): Promise<string> {
  const r = await startUdpResponder(reply);
  responders.push(r);
  return r.address;
}

/**
 * A NOERROR reply with no answer records: the query echoed with QR, AA and RA set (its question
 * and any EDNS record stay where they are, so the message is well formed).
 */
function emptyAnswer(query: Buffer): Buffer {
  const reply = Buffer.from(query);
  reply[2] = 0x80 | 0x04 | (query[2]! & 0x01);
  reply[3] = 0x80;
  return reply;
}

describe('DNS check', () => {
  it('resolves the download host through the configured server', async () => {
    const obs = await probeDns(HOST, [dns.address], TIMEOUT_MS);
    expect(obs).toEqual({
      host: HOST,
      servers: [{ server: dns.address, outcome: 'answer', addresses: ['127.0.0.1'] }],
      limitMs: TIMEOUT_MS,
    });
    expect(judgeDns(obs)).toMatchObject({
      verdict: 'ok',
      summary: `${HOST} is 127.0.0.1 via ${dns.address}`,
    });
  });

  it('no answer: a name the server never answers', async () => {
    const obs = await probeDns('silent.clgw.test', [dns.address], TIMEOUT_MS);
    expect(obs.servers[0]).toMatchObject({
      outcome: 'error',
      code: expect.stringMatching(/^(ETIMEOUT|ECANCELLED)$/),
    });
    expect(judgeDns(obs).summary).toBe(
      `DNS lookup of silent.clgw.test via ${dns.address} failed: no answer within 600 ms`,
    );
  });

  it('no answer: a port that swallows every query, within the limit', async () => {
    const server = await responder(() => undefined);
    const started = Date.now();
    const obs = await probeDns(HOST, [server], TIMEOUT_MS);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 300);
    expect(judgeDns(obs).summary).toBe(`DNS lookup of ${HOST} via ${server} failed: no answer within 600 ms`);
  });

  it('refused: nothing listening on the server port', async () => {
    const server = `127.0.0.1:${await freeUdpPort()}`;
    const obs = await probeDns(HOST, [server], TIMEOUT_MS);
    expect(obs.servers[0]).toEqual({ server, outcome: 'error', code: 'ECONNREFUSED' });
    expect(judgeDns(obs).summary).toBe(
      `DNS lookup of ${HOST} via ${server} failed: refused (no DNS server listening)`,
    );
  });

  it('wrong answer: no such name (NXDOMAIN)', async () => {
    const obs = await probeDns('nowhere.clgw.test', [dns.address], TIMEOUT_MS);
    expect(judgeDns(obs)).toMatchObject({
      verdict: 'failed',
      summary: `DNS lookup of nowhere.clgw.test via ${dns.address} failed: no such name (NXDOMAIN)`,
    });
  });

  it('wrong answer: an empty answer is "no address"', async () => {
    const server = await responder(emptyAnswer);
    const obs = await probeDns(HOST, [server], TIMEOUT_MS);
    expect(obs.servers[0]).toEqual({ server, outcome: 'error', code: 'ENODATA' });
    expect(judgeDns(obs).summary).toBe(
      `DNS lookup of ${HOST} via ${server} failed: no address (the answer is empty)`,
    );
  });

  it('wrong answer: garbage is a malformed reply', async () => {
    const server = await responder(() => Buffer.from('garbage, not DNS'));
    const obs = await probeDns(HOST, [server], TIMEOUT_MS);
    expect(obs.servers[0]).toEqual({ server, outcome: 'error', code: 'EBADRESP' });
    expect(judgeDns(obs).summary).toBe(
      `DNS lookup of ${HOST} via ${server} failed: wrong answer (malformed reply)`,
    );
  });

  it('one dead server of two is a warning naming it', async () => {
    const dead = `127.0.0.1:${await freeUdpPort()}`;
    const obs = await probeDns(HOST, [dns.address, dead], TIMEOUT_MS);
    expect(judgeDns(obs)).toMatchObject({
      verdict: 'warning',
      summary: `${HOST} is 127.0.0.1 via ${dns.address}, but via ${dead} failed: refused (no DNS server listening)`,
    });
  });

  it('a server that is not an address is a failed lookup, not a crash', async () => {
    const obs = await probeDns(HOST, ['not-an-address'], TIMEOUT_MS);
    expect(obs.servers[0]).toEqual({ server: 'not-an-address', outcome: 'error', code: 'EBADSERVER' });
    expect(judgeDns(obs).summary).toBe(
      `DNS lookup of ${HOST} via not-an-address failed: not a DNS server address (expected ip or ip:port)`,
    );
  });
});
