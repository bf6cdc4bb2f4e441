/**
 * The HTTPS and SIP-TLS checks against real TLS listeners on loopback (node's TLS server with a
 * throw-away test CA): a good handshake, an untrusted certificate (another CA, self-signed), a
 * certificate for another name, one about to expire; and a closed port, a listener that never
 * answers the handshake, one that hangs up, one that speaks plain text.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HostPort, judgeTls } from '../../../agent/src/diagnostics/checks.js';
import { probeTls } from '../../../agent/src/diagnostics/probes.js';
import { startDnsServer, type TestDnsServer } from '../../support/dns-server.js';
import { createCa, issueServerCert, type KeyCert, untrustedServerCert } from '../../support/tls.js';

const TIMEOUT_MS = 800;
const NAMES = ['download.clgw.test', 'sip.clgw.test', 'localhost', '127.0.0.1'];
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
let ca: KeyCert;
let dns: TestDnsServer;

beforeAll(async () => {
  ca = createCa('clgw diagnostics test CA');
  dns = await startDnsServer({
    records: { 'download.clgw.test': '127.0.0.1', 'sip.clgw.test': '127.0.0.1' },
  });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await dns?.close();
});

async function listen(server: net.Server): Promise<number> {
  servers.push(server);
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

function tlsListener(cert: KeyCert): Promise<number> {
  const server = tls.createServer({ key: cert.keyPem, cert: cert.certPem });
  server.on('tlsClientError', () => undefined);
  return listen(server);
}

const probe = (target: HostPort, extra: { ca?: string; dnsServers?: string[] } = {}) =>
  probeTls(target, { dnsServers: extra.dnsServers ?? [], timeoutMs: TIMEOUT_MS, ca: extra.ca ?? ca.certPem });

describe('TLS checks against a TLS listener', () => {
  it('https: a handshake with a certificate from the configured CA, the name looked up via DNS', async () => {
    const port = await tlsListener(issueServerCert(ca, NAMES));
    const target = { host: 'download.clgw.test', port };
    const obs = await probe(target, { dnsServers: [dns.address] });
    expect(obs).toMatchObject({
      outcome: 'handshake',
      authorized: true,
      address: '127.0.0.1',
      certificate: { issuer: 'clgw diagnostics test CA' },
    });
    expect(obs).not.toHaveProperty('identityError');
    const j = judgeTls('https', target, obs, Date.now());
    expect(j.verdict).toBe('ok');
    expect(j.summary).toMatch(
      /^TLS handshake with download\.clgw\.test:\d+ ok \(TLSv1\.3, certificate valid until \d{4}-\d\d-\d\d\)$/,
    );
  });

  it('sip-tls: the same handshake, judged as SIP-TLS', async () => {
    const port = await tlsListener(issueServerCert(ca, NAMES));
    const target = { host: 'sip.clgw.test', port };
    const j = judgeTls('sip-tls', target, await probe(target, { dnsServers: [dns.address] }), Date.now());
    expect(j.verdict).toBe('ok');
  });

  it('warns when the certificate expires within the warning period', async () => {
    const port = await tlsListener(issueServerCert(ca, NAMES, 5));
    const target = { host: 'localhost', port };
    const j = judgeTls('sip-tls', target, await probe(target), Date.now());
    expect(j.verdict).toBe('warning');
    expect(j.summary).toContain('but the SIP-TLS certificate expires on');
  });

  it('TLS error: a certificate from another CA is untrusted, naming its issuer', async () => {
    const port = await tlsListener(untrustedServerCert('other-ca', NAMES));
    const target = { host: 'localhost', port };
    const obs = await probe(target);
    expect(obs).toMatchObject({ outcome: 'handshake', authorized: false });
    const j = judgeTls('https', target, obs, Date.now());
    expect(j.verdict).toBe('failed');
    expect(j.summary).toBe(
      `TLS handshake with localhost:${port} failed: certificate not trusted: issued by a CA that is not trusted (issuer 'clgw untrusted test CA')`,
    );
  });

  it('TLS error: a self-signed certificate', async () => {
    const port = await tlsListener(untrustedServerCert('self-signed', NAMES));
    const target = { host: 'localhost', port };
    const obs = await probe(target);
    expect(obs).toMatchObject({ authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(judgeTls('https', target, obs, Date.now()).summary).toContain(
      'certificate not trusted: self-signed',
    );
  });

  it('TLS error: without the test CA the built-in roots do not trust it', async () => {
    const port = await tlsListener(issueServerCert(ca, NAMES));
    const obs = await probeTls({ host: 'localhost', port }, { dnsServers: [], timeoutMs: TIMEOUT_MS });
    expect(obs).toMatchObject({ outcome: 'handshake', authorized: false });
  });

  it('TLS error: a trusted certificate for another name', async () => {
    const port = await tlsListener(issueServerCert(ca, ['other.clgw.test']));
    const target = { host: 'download.clgw.test', port };
    const obs = await probe(target, { dnsServers: [dns.address] });
    expect(obs).toMatchObject({ outcome: 'handshake', authorized: true, identityError: expect.any(String) });
    const j = judgeTls('https', target, obs, Date.now());
    expect(j.verdict).toBe('failed');
    expect(j.summary).toBe(
      `TLS handshake with download.clgw.test:${port} failed: the certificate is not valid for download.clgw.test (it names other.clgw.test)`,
    );
  });

  it('refused: a closed port', async () => {
    const port = await listen(net.createServer());
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const target = { host: '127.0.0.1', port };
    const obs = await probe(target);
    expect(obs).toEqual({ outcome: 'refused' });
    expect(judgeTls('https', target, obs, Date.now()).summary).toBe(
      `TLS handshake with 127.0.0.1:${port} failed: connection refused (nothing listening on tcp/${port})`,
    );
  });

  it('no answer: a listener that accepts and never completes the handshake', async () => {
    const port = await listen(net.createServer(() => undefined));
    const target = { host: '127.0.0.1', port };
    const started = Date.now();
    const obs = await probe(target);
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    expect(obs).toEqual({ outcome: 'timeout', stage: 'tls', limitMs: TIMEOUT_MS });
    expect(judgeTls('sip-tls', target, obs, Date.now()).summary).toBe(
      `TLS handshake with 127.0.0.1:${port} failed: the handshake did not finish within 800 ms`,
    );
  });

  it('reset: a listener that hangs up at once', async () => {
    const port = await listen(net.createServer((s) => s.destroy()));
    const obs = await probe({ host: '127.0.0.1', port });
    expect(obs).toEqual({ outcome: 'reset', stage: 'tls' });
  });

  it('wrong answer: a plain-text server', async () => {
    const port = await listen(net.createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n')));
    const target = { host: '127.0.0.1', port };
    const obs = await probe(target);
    expect(obs).toMatchObject({
      outcome: 'wrong-answer',
      reason: expect.stringContaining('not a TLS handshake'),
    });
    expect(judgeTls('https', target, obs, Date.now()).summary).toMatch(
      /failed: wrong answer: not a TLS handshake \(.+\)$/,
    );
  });

  it('the target name not resolving is a lookup failure naming it', async () => {
    const obs = await probe({ host: 'nowhere.clgw.test', port: 443 }, { dnsServers: [dns.address] });
    expect(obs).toEqual({ outcome: 'lookup-failed', host: 'nowhere.clgw.test', code: 'ENOTFOUND' });
  });
});
