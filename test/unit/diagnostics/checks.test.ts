import { ClgwError } from '@clgw/core/errors.js';
import { describe, expect, it } from 'vitest';
import {
  type DiagnosticResult,
  type DnsObservation,
  formatDiagnostics,
  formatDuration,
  formatOffset,
  type HostPort,
  judgeCrash,
  judgeDns,
  judgeNtp,
  judgeStun,
  judgeTls,
  judgeUnplanned,
  makeReport,
  type NtpObservation,
  type PeerCertificate,
  parseHostPort,
  planChecks,
  type StunObservation,
  type TlsObservation,
  type Verdict,
} from '../../../agent/src/diagnostics/checks.js';

const NOW = Date.UTC(2026, 5, 1);
const DAY = 24 * 3600 * 1000;
const NTP: HostPort = { host: '127.0.0.1', port: 123 };
const HTTPS: HostPort = { host: 'download.mitel.io', port: 443 };
const STUN: HostPort = { host: 'stun.example.net', port: 3478 };

describe('wording', () => {
  it.each([
    [3000, '3 s'],
    [1500, '1.5 s'],
    [250, '250 ms'],
    [0.4, '0 ms'],
  ])('duration %d ms is "%s"', (ms, text) => expect(formatDuration(ms)).toBe(text));

  it.each([
    [2400, '+2.4 s'],
    [-2400, '-2.4 s'],
    [3, '+0.003 s'],
    [-12_345, '-12.3 s'],
    [1250, '+1.25 s'],
  ])('offset %d ms is "%s"', (ms, text) => expect(formatOffset(ms)).toBe(text));
});

describe('host:port targets', () => {
  it.each([
    ['ntp.example.org', { host: 'ntp.example.org', port: 123 }],
    ['127.0.0.1:12345', { host: '127.0.0.1', port: 12345 }],
    ['[::1]:5061', { host: '::1', port: 5061 }],
    ['[2001:db8::1]', { host: '2001:db8::1', port: 123 }],
    ['2001:db8::1', { host: '2001:db8::1', port: 123 }],
    [' pool.ntp.org ', { host: 'pool.ntp.org', port: 123 }],
  ])('parses %s', (text, expected) => expect(parseHostPort(text, 123, 'NTP server')).toEqual(expected));

  it.each(['host:0', 'host:70000', 'host:port', 'a b', '', 'http://x/'])('refuses %j naming it', (text) => {
    let error: unknown;
    try {
      parseHostPort(text, 123, 'NTP server');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ClgwError);
    expect((error as ClgwError).code).toBe('CONFIG_INVALID');
    expect((error as ClgwError).message).toBe(`NTP server '${text}' is not a host or host:port`);
  });
});

describe('the check list', () => {
  const base = {
    dnsServers: ['10.0.0.53'],
    downloadHost: 'download.mitel.io',
    ntpServer: '0.mitel.pool.ntp.org',
    stunHost: 'stun.example.net',
    sipTlsServer: 'sip.example.net',
  };

  it('has the six checks in order with the well-known ports filled in', () => {
    expect(planChecks(base)).toEqual([
      { name: 'dns', host: 'download.mitel.io', servers: ['10.0.0.53'] },
      { name: 'ntp', target: { host: '0.mitel.pool.ntp.org', port: 123 } },
      { name: 'https', target: { host: 'download.mitel.io', port: 443 } },
      { name: 'stun-3478', target: { host: 'stun.example.net', port: 3478 } },
      { name: 'stun-3479', target: { host: 'stun.example.net', port: 3479 } },
      { name: 'sip-tls', target: { host: 'sip.example.net', port: 5061 } },
    ]);
  });

  it('keeps the STUN check names whatever ports stand for 3478 and 3479', () => {
    const plan = planChecks({ ...base, stunHost: '127.0.0.1', stunPorts: [40000, 40001] });
    expect(plan.slice(3, 5)).toEqual([
      { name: 'stun-3478', target: { host: '127.0.0.1', port: 40000 } },
      { name: 'stun-3479', target: { host: '127.0.0.1', port: 40001 } },
    ]);
  });

  it('looks up the download host without its port', () => {
    expect(planChecks({ ...base, downloadHost: 'mirror.lan:8443' })[0]).toMatchObject({ host: 'mirror.lan' });
  });

  it('marks what is not configured, not a host, or has nothing to look up', () => {
    const plan = planChecks({
      ...base,
      downloadHost: '127.0.0.1:8443',
      stunHost: undefined,
      sipTlsServer: 'sip host',
    });
    expect(plan[0]).toEqual({
      name: 'dns',
      unconfigured: 'the download host 127.0.0.1 is an address, there is no name to look up',
    });
    expect(plan[3]).toEqual({ name: 'stun-3478', unconfigured: 'no STUN server configured' });
    expect(plan[5]).toMatchObject({
      name: 'sip-tls',
      invalid: "SIP-TLS server 'sip host' is not a host or host:port",
    });
    expect(judgeUnplanned(plan[3] as never)).toEqual({
      verdict: 'warning',
      summary: 'not checked: no STUN server configured',
    });
    expect(judgeUnplanned(plan[5] as never)).toMatchObject({ verdict: 'failed' });
  });
});

describe('DNS verdicts', () => {
  const host = 'download.mitel.io';
  const cases: [string, DnsObservation['servers'], Verdict, string][] = [
    [
      'every server answers',
      [{ server: '10.0.0.53', outcome: 'answer', addresses: ['203.0.113.10', '203.0.113.11'] }],
      'ok',
      'download.mitel.io is 203.0.113.10 (+1 more) via 10.0.0.53',
    ],
    [
      'one of two servers is silent',
      [
        { server: '10.0.0.53', outcome: 'answer', addresses: ['203.0.113.10'] },
        { server: '10.0.0.54', outcome: 'error', code: 'ETIMEOUT' },
      ],
      'warning',
      'download.mitel.io is 203.0.113.10 via 10.0.0.53, but via 10.0.0.54 failed: no answer within 3 s',
    ],
    [
      'no answer',
      [{ server: '10.0.0.53', outcome: 'error', code: 'ETIMEOUT' }],
      'failed',
      'DNS lookup of download.mitel.io via 10.0.0.53 failed: no answer within 3 s',
    ],
    [
      'cancelled at our limit',
      [{ server: '10.0.0.53', outcome: 'error', code: 'ECANCELLED' }],
      'failed',
      'DNS lookup of download.mitel.io via 10.0.0.53 failed: no answer within 3 s',
    ],
    [
      'an empty answer',
      [{ server: '10.0.0.53', outcome: 'answer', addresses: [] }],
      'failed',
      'DNS lookup of download.mitel.io via 10.0.0.53 failed: no address (the answer is empty)',
    ],
    [
      'refused',
      [{ server: '10.0.0.53:5353', outcome: 'error', code: 'ECONNREFUSED' }],
      'failed',
      'DNS lookup of download.mitel.io via 10.0.0.53:5353 failed: refused (no DNS server listening)',
    ],
    [
      'NXDOMAIN and a malformed reply',
      [
        { server: '10.0.0.53', outcome: 'error', code: 'ENOTFOUND' },
        { server: '10.0.0.54', outcome: 'error', code: 'EBADRESP' },
      ],
      'failed',
      'DNS lookup of download.mitel.io via 10.0.0.53 failed: no such name (NXDOMAIN); via 10.0.0.54 failed: wrong answer (malformed reply)',
    ],
    [
      'an unknown resolver code',
      [{ server: '10.0.0.53', outcome: 'error', code: 'EWEIRD' }],
      'failed',
      'DNS lookup of download.mitel.io via 10.0.0.53 failed: resolver error EWEIRD',
    ],
    ['no server at all', [], 'failed', 'DNS lookup of download.mitel.io failed: no DNS server configured'],
  ];
  it.each(cases)('%s', (_what, servers, verdict, summary) => {
    expect(judgeDns({ host, servers, limitMs: 3000 })).toMatchObject({ verdict, summary });
  });

  it('lists addresses and failures in the details', () => {
    const j = judgeDns({
      host,
      servers: [
        { server: 'a', outcome: 'answer', addresses: ['203.0.113.10'] },
        { server: 'b', outcome: 'error', code: 'ESERVFAIL' },
      ],
      limitMs: 3000,
    });
    expect(j.details).toEqual({
      host,
      servers: ['a', 'b'],
      addresses: ['203.0.113.10'],
      failures: [{ server: 'b', code: 'ESERVFAIL' }],
    });
  });
});

describe('NTP verdicts', () => {
  const answer = (offsetMs: number): NtpObservation => ({
    outcome: 'answer',
    stratum: 2,
    referenceId: '192.0.2.1',
    offsetMs,
    roundTripMs: 12,
    address: '127.0.0.1',
  });
  const cases: [string, NtpObservation, Verdict, string][] = [
    [
      'a clock in sync',
      answer(3),
      'ok',
      'clock offset +0.003 s from 127.0.0.1:123 (stratum 2, round trip 12 ms)',
    ],
    [
      'a clock 2.4 s behind the server',
      answer(2400),
      'warning',
      'clock offset +2.4 s from 127.0.0.1:123 (stratum 2, round trip 12 ms): beyond ±1 s, the clock is not in sync',
    ],
    ['a clock ahead, beyond the limit', answer(-1500), 'warning', 'clock offset -1.5 s'],
    ['exactly at the limit', answer(1000), 'ok', 'clock offset +1 s'],
    [
      'no answer',
      { outcome: 'timeout', stage: 'answer', limitMs: 3000 },
      'failed',
      'NTP query to 127.0.0.1:123 failed: no answer within 3 s (udp/123 blocked?)',
    ],
    [
      'port unreachable',
      { outcome: 'refused' },
      'failed',
      'NTP query to 127.0.0.1:123 failed: refused (ICMP port unreachable: nothing listening on udp/123)',
    ],
    [
      'a reflected request',
      { outcome: 'wrong-answer', reason: 'mode 3 (client), expected mode 4 (server)' },
      'failed',
      'NTP query to 127.0.0.1:123 failed: wrong answer: mode 3 (client), expected mode 4 (server)',
    ],
    [
      'a server name that does not resolve',
      { outcome: 'lookup-failed', host: 'pool.example', code: 'ENOTFOUND' },
      'failed',
      'NTP query to 127.0.0.1:123 failed: the name pool.example did not resolve: no such name (NXDOMAIN)',
    ],
    [
      'a lookup that times out',
      { outcome: 'timeout', stage: 'lookup', limitMs: 3000 },
      'failed',
      'NTP query to 127.0.0.1:123 failed: the name 127.0.0.1 did not resolve within 3 s',
    ],
  ];
  it.each(cases)('%s', (_what, obs, verdict, summary) => {
    const j = judgeNtp(NTP, obs);
    expect(j.verdict).toBe(verdict);
    expect(j.summary).toContain(summary);
  });

  it('uses the configured limit and reports the offset in the details', () => {
    const j = judgeNtp(NTP, answer(2400), 5000);
    expect(j.verdict).toBe('ok');
    expect(j.details).toMatchObject({ offsetMs: 2400, roundTripMs: 12, stratum: 2, maxOffsetMs: 5000 });
  });
});

describe('TLS verdicts', () => {
  const cert = (validTo: number, issuer = 'Example CA'): PeerCertificate => ({
    subject: 'download.mitel.io',
    issuer,
    altNames: 'DNS:download.mitel.io, IP Address:127.0.0.1',
    validFrom: NOW - 100 * DAY,
    validTo,
  });
  const handshake = (extra: Partial<Extract<TlsObservation, { outcome: 'handshake' }>>): TlsObservation => ({
    outcome: 'handshake',
    protocol: 'TLSv1.3',
    authorized: true,
    certificate: cert(NOW + 200 * DAY),
    address: '203.0.113.10',
    ...extra,
  });
  const cases: [string, TlsObservation, Verdict, string][] = [
    [
      'a trusted certificate for the host',
      handshake({}),
      'ok',
      'TLS handshake with download.mitel.io:443 ok (TLSv1.3, certificate valid until 2026-12-18)',
    ],
    [
      'a certificate expiring in a week',
      handshake({ certificate: cert(NOW + 7 * DAY) }),
      'warning',
      "TLS handshake with download.mitel.io:443 ok (TLSv1.3), but the HTTPS certificate expires on 2026-06-08 (issuer 'Example CA')",
    ],
    [
      'a certificate from an untrusted CA (a TLS-inspecting firewall)',
      handshake({
        authorized: false,
        authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
        certificate: cert(NOW + 200 * DAY, 'Corp Firewall CA'),
      }),
      'failed',
      "TLS handshake with download.mitel.io:443 failed: certificate not trusted: issued by a CA that is not trusted (issuer 'Corp Firewall CA')",
    ],
    [
      'a self-signed certificate',
      handshake({ authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
      'failed',
      'certificate not trusted: self-signed',
    ],
    [
      'an expired certificate',
      handshake({
        authorized: false,
        authorizationError: 'CERT_HAS_EXPIRED',
        certificate: cert(NOW - 3 * DAY),
      }),
      'failed',
      'certificate not trusted: expired on 2026-05-29',
    ],
    [
      'a certificate not valid yet (clock wrong)',
      handshake({ authorized: false, authorizationError: 'CERT_NOT_YET_VALID' }),
      'failed',
      'not valid before 2026-02-21 (is the clock right?)',
    ],
    [
      'an unknown verification code',
      handshake({ authorized: false, authorizationError: 'SOMETHING_NEW' }),
      'failed',
      'certificate not trusted: rejected (SOMETHING_NEW)',
    ],
    [
      'a certificate for another host',
      handshake({ identityError: "Hostname/IP does not match certificate's altnames" }),
      'failed',
      'TLS handshake with download.mitel.io:443 failed: the certificate is not valid for download.mitel.io (it names download.mitel.io, 127.0.0.1)',
    ],
    [
      'a closed port',
      { outcome: 'refused' },
      'failed',
      'TLS handshake with download.mitel.io:443 failed: connection refused (nothing listening on tcp/443)',
    ],
    [
      'a dropped SYN',
      { outcome: 'timeout', stage: 'connect', limitMs: 3000 },
      'failed',
      'failed: no TCP connection within 3 s (tcp/443 blocked?)',
    ],
    [
      'a server that never finishes the handshake',
      { outcome: 'timeout', stage: 'tls', limitMs: 3000 },
      'failed',
      'failed: the handshake did not finish within 3 s',
    ],
    [
      'a server that hangs up mid-handshake',
      { outcome: 'reset', stage: 'tls' },
      'failed',
      'failed: the server closed the connection during the handshake',
    ],
    [
      'a plain-text server',
      { outcome: 'wrong-answer', reason: 'not a TLS handshake (wrong version number)' },
      'failed',
      'failed: wrong answer: not a TLS handshake (wrong version number)',
    ],
    [
      'an unreachable host',
      { outcome: 'unreachable', code: 'EHOSTUNREACH' },
      'failed',
      'failed: host unreachable (EHOSTUNREACH)',
    ],
    [
      'another error',
      { outcome: 'error', code: 'EMFILE', message: 'too many open files' },
      'failed',
      'failed: too many open files (EMFILE)',
    ],
  ];
  it.each(cases)('%s', (_what, obs, verdict, summary) => {
    const j = judgeTls('https', HTTPS, obs, NOW);
    expect(j.verdict).toBe(verdict);
    expect(j.summary).toContain(summary);
  });

  it('names SIP-TLS in the expiry warning and honours the configured days', () => {
    const obs = handshake({ certificate: cert(NOW + 20 * DAY) });
    expect(judgeTls('sip-tls', { host: 'sip.example.net', port: 5061 }, obs, NOW).verdict).toBe('ok');
    expect(judgeTls('sip-tls', { host: 'sip.example.net', port: 5061 }, obs, NOW, 30).summary).toContain(
      'the SIP-TLS certificate expires on 2026-06-21',
    );
  });
});

describe('STUN verdicts', () => {
  const cases: [string, StunObservation, Verdict, string][] = [
    [
      'a mapped address behind NAT',
      {
        outcome: 'mapped',
        mapped: { address: '203.0.113.7', port: 40001 },
        attribute: 'XOR-MAPPED-ADDRESS',
        local: { address: '10.0.0.5', port: 50000 },
        roundTripMs: 30,
      },
      'ok',
      'mapped address 203.0.113.7:40001 from stun.example.net:3478 (NAT: local 10.0.0.5:50000)',
    ],
    [
      'a mapped address without NAT',
      {
        outcome: 'mapped',
        mapped: { address: '127.0.0.1', port: 40001 },
        attribute: 'MAPPED-ADDRESS',
        local: { address: '127.0.0.1', port: 40001 },
        roundTripMs: 1,
      },
      'ok',
      'mapped address 127.0.0.1:40001 from stun.example.net:3478 (no NAT)',
    ],
    [
      'an error response',
      { outcome: 'error-response', code: 420, reason: 'Unknown Attribute' },
      'failed',
      'STUN binding request to stun.example.net:3478 failed: the server answered error 420 Unknown Attribute',
    ],
    [
      'a reply for another transaction',
      { outcome: 'wrong-answer', reason: 'the transaction ID does not match our request' },
      'failed',
      'STUN binding request to stun.example.net:3478 failed: wrong answer: the transaction ID does not match our request',
    ],
    [
      'no answer',
      { outcome: 'timeout', stage: 'answer', limitMs: 2500 },
      'failed',
      'STUN binding request to stun.example.net:3478 failed: no answer within 2.5 s (udp/3478 blocked?)',
    ],
  ];
  it.each(cases)('%s', (_what, obs, verdict, summary) => {
    expect(judgeStun(STUN, obs)).toMatchObject({ verdict, summary });
  });
});

describe('a crashed check', () => {
  it('is failed, naming the error and its code', () => {
    const e = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(judgeCrash('https', e)).toEqual({
      verdict: 'failed',
      summary: 'the https check could not run: socket hang up',
      details: { error: 'socket hang up', code: 'ECONNRESET' },
    });
    expect(judgeCrash('dns', 'plain string').summary).toBe('the dns check could not run: plain string');
  });
});

describe('the report', () => {
  const result = (name: DiagnosticResult['name'], verdict: Verdict, summary: string): DiagnosticResult => ({
    name,
    target: 'x',
    verdict,
    summary,
    durationMs: 1,
  });

  it('is ok with warnings, not with a failure', () => {
    expect(makeReport(NOW, [result('dns', 'ok', 'a'), result('ntp', 'warning', 'b')]).ok).toBe(true);
    expect(makeReport(NOW, [result('dns', 'ok', 'a'), result('https', 'failed', 'c')]).ok).toBe(false);
    expect(makeReport(NOW, []).at).toBe('2026-06-01T00:00:00.000Z');
  });

  it('formats a headline and one aligned line per check', () => {
    const report = makeReport(NOW, [
      result('dns', 'ok', 'download.mitel.io is 203.0.113.10 via 10.0.0.53'),
      result('ntp', 'warning', 'clock offset +2.4 s from 127.0.0.1:123'),
      result('stun-3478', 'failed', 'STUN binding request failed'),
    ]);
    expect(formatDiagnostics(report)).toEqual([
      'diagnostics 2026-06-01T00:00:00.000Z: 1 failed, 1 warning',
      '  ok   dns        download.mitel.io is 203.0.113.10 via 10.0.0.53',
      '  WARN ntp        clock offset +2.4 s from 127.0.0.1:123',
      '  FAIL stun-3478  STUN binding request failed',
    ]);
    expect(formatDiagnostics(makeReport(NOW, [result('dns', 'ok', 'fine')]))[0]).toContain(': all ok');
  });
});
