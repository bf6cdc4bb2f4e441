/**
 * The NTP check against a real NTP server (chronyd on loopback) and against stand-ins for what a
 * real server will not do: stay silent, reflect the request (mode 3), answer someone else, send
 * a kiss-o'-death or garbage. The clock is injected, so a skewed clock needs no root.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HostPort, judgeNtp } from '../../../agent/src/diagnostics/checks.js';
import { probeNtp } from '../../../agent/src/diagnostics/probes.js';
import { startDnsServer, type TestDnsServer } from '../../support/dns-server.js';
import { startNtpServer, type TestNtpServer } from '../../support/ntp-server.js';
import { freeUdpPort } from '../../support/peer-process.js';
import { startUdpResponder, type UdpResponder } from '../../support/udp-responder.js';

const TIMEOUT_MS = 600;
let chrony: TestNtpServer;
let dns: TestDnsServer;
const responders: UdpResponder[] = [];

beforeAll(async () => {
  [chrony, dns] = await Promise.all([
    startNtpServer(),
    startDnsServer({ records: { 'ntp.clgw.test': '127.0.0.1' }, silent: ['silent.clgw.test'] }),
  ]);
});

afterAll(async () => {
  await Promise.all([chrony?.close(), dns?.close(), ...responders.map((r) => r.close())]);
});

async function responder(reply: (request: Buffer) => Uint8Array | undefined): Promise<HostPort> {
  const r = await startUdpResponder(reply);
  responders.push(r);
  return { host: r.host, port: r.port };
}

/** A server-mode reply to `request` built by hand: stratum, mode and origin as a test wants them. */
function serverReply(
  request: Buffer,
  options: { mode?: number; stratum?: number; ref?: string; origin?: Buffer },
) {
  const reply = Buffer.alloc(48);
  reply[0] = (4 << 3) | (options.mode ?? 4);
  reply[1] = options.stratum ?? 2;
  reply.write(options.ref ?? 'GPS', 12, 'latin1');
  (options.origin ?? request.subarray(40, 48)).copy(reply, 24);
  // Receive and transmit: the request's own transmit time, i.e. an offset of about zero.
  request.copy(reply, 32, 40, 48);
  request.copy(reply, 40, 40, 48);
  return reply;
}

const probe = (target: HostPort, now: () => number = Date.now, dnsServers: string[] = []) =>
  probeNtp(target, { dnsServers, timeoutMs: TIMEOUT_MS, now });

describe('NTP check against chronyd', () => {
  it('measures a small offset from a real server and judges it ok', async () => {
    const target = { host: chrony.host, port: chrony.port };
    const obs = await probe(target);
    expect(obs).toMatchObject({ outcome: 'answer', stratum: 8, address: '127.0.0.1' });
    if (obs.outcome !== 'answer') throw new Error('no answer');
    // Same machine, same clock: the offset is at most the round trip.
    expect(Math.abs(obs.offsetMs)).toBeLessThan(Math.max(50, obs.roundTripMs));
    const j = judgeNtp(target, obs);
    expect(j.verdict).toBe('ok');
    expect(j.summary).toMatch(
      new RegExp(`^clock offset [+-]0\\.\\d{3} s from ${chrony.address} \\(stratum 8,`),
    );
  });

  it('sees our clock 5 s behind as an offset of +5 s and warns', async () => {
    const target = { host: chrony.host, port: chrony.port };
    const obs = await probe(target, () => Date.now() - 5000);
    if (obs.outcome !== 'answer') throw new Error(`no answer: ${JSON.stringify(obs)}`);
    expect(obs.offsetMs).toBeGreaterThan(4900);
    expect(obs.offsetMs).toBeLessThan(5100);
    const j = judgeNtp(target, obs);
    expect(j.verdict).toBe('warning');
    expect(j.summary).toMatch(/^clock offset \+5(\.0\d)? s from .*: beyond ±1 s, the clock is not in sync$/);
  });

  it('resolves the server name through the configured DNS server', async () => {
    const obs = await probe({ host: 'ntp.clgw.test', port: chrony.port }, Date.now, [dns.address]);
    expect(obs).toMatchObject({ outcome: 'answer', address: '127.0.0.1' });
    expect(dns.queries.some((q) => q.name === 'ntp.clgw.test')).toBe(true);
  });

  it('fails when the server name does not resolve, naming it', async () => {
    const target = { host: 'nowhere.clgw.test', port: chrony.port };
    const obs = await probe(target, Date.now, [dns.address]);
    expect(obs).toEqual({ outcome: 'lookup-failed', host: 'nowhere.clgw.test', code: 'ENOTFOUND' });
    expect(judgeNtp(target, obs).summary).toBe(
      `NTP query to nowhere.clgw.test:${chrony.port} failed: the name nowhere.clgw.test did not resolve: no such name (NXDOMAIN)`,
    );
  });

  it('fails when the name lookup gets no answer', async () => {
    const obs = await probe({ host: 'silent.clgw.test', port: chrony.port }, Date.now, [dns.address]);
    expect(obs).toEqual({ outcome: 'timeout', stage: 'lookup', limitMs: TIMEOUT_MS });
  });
});

describe('NTP check failure modes', () => {
  it('no answer: a port that swallows requests; retransmits within the limit', async () => {
    const silent = await startUdpResponder(() => undefined);
    responders.push(silent);
    const target = { host: silent.host, port: silent.port };
    const started = Date.now();
    const obs = await probe(target);
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    expect(obs).toEqual({ outcome: 'timeout', stage: 'answer', limitMs: TIMEOUT_MS });
    expect(silent.received.length).toBeGreaterThan(1);
    expect(judgeNtp(target, obs).summary).toBe(
      `NTP query to 127.0.0.1:${silent.port} failed: no answer within 600 ms (udp/${silent.port} blocked?)`,
    );
  });

  it('refused: nothing bound to the port (ICMP port unreachable)', async () => {
    const target = { host: '127.0.0.1', port: await freeUdpPort() };
    const obs = await probe(target);
    expect(obs).toEqual({ outcome: 'refused' });
    expect(judgeNtp(target, obs).summary).toBe(
      `NTP query to 127.0.0.1:${target.port} failed: refused (ICMP port unreachable: nothing listening on udp/${target.port})`,
    );
  });

  it('wrong answer: our request reflected back (mode 3)', async () => {
    const target = await responder((request) => request);
    const obs = await probe(target);
    expect(obs).toEqual({ outcome: 'wrong-answer', reason: 'mode 3 (client), expected mode 4 (server)' });
    expect(judgeNtp(target, obs)).toMatchObject({
      verdict: 'failed',
      summary: `NTP query to 127.0.0.1:${target.port} failed: wrong answer: mode 3 (client), expected mode 4 (server)`,
    });
  });

  it('wrong answer: a server reply to another request (origin not echoed)', async () => {
    const target = await responder((request) => serverReply(request, { origin: Buffer.alloc(8, 7) }));
    expect(await probe(target)).toEqual({
      outcome: 'wrong-answer',
      reason: 'the origin timestamp does not echo our request',
    });
  });

  it("wrong answer: a kiss-o'-death (stratum 0, RATE)", async () => {
    const target = await responder((request) => serverReply(request, { stratum: 0, ref: 'RATE' }));
    expect(await probe(target)).toEqual({
      outcome: 'wrong-answer',
      reason: "kiss-o'-death RATE: the server refuses to serve us",
    });
  });

  it('wrong answer: an unsynchronized server (stratum 16)', async () => {
    const target = await responder((request) => serverReply(request, { stratum: 16 }));
    expect(await probe(target)).toEqual({
      outcome: 'wrong-answer',
      reason: 'the server is not synchronized itself',
    });
  });

  it('wrong answer: garbage', async () => {
    const target = await responder(() => Buffer.from('hello'));
    expect(await probe(target)).toEqual({
      outcome: 'wrong-answer',
      reason: '5-byte reply, an NTP packet has at least 48',
    });
  });

  it('a well-formed stand-in reply passes, so the failures above are the replies, not the stand-in', async () => {
    const target = await responder((request) => serverReply(request, { stratum: 1 }));
    expect(await probe(target)).toMatchObject({ outcome: 'answer', stratum: 1, referenceId: 'GPS' });
  });
});
