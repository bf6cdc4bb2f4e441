/**
 * The whole diagnostics run against real peers on loopback: a DNS server, chronyd, coturn's
 * turnserver and TLS listeners with a test CA; then with every peer gone. The report is what the
 * status API, the console and the log receive.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiagnosticsConfig } from '../../../agent/src/diagnostics/checks.js';
import { formatDiagnostics, runDiagnostics } from '../../../agent/src/diagnostics/run.js';
import { startDnsServer, type TestDnsServer } from '../../support/dns-server.js';
import { startNtpServer, type TestNtpServer } from '../../support/ntp-server.js';
import { freeUdpPort } from '../../support/peer-process.js';
import { startStunServer, type TestStunServer } from '../../support/stun-server.js';
import { createCa, issueServerCert, type KeyCert } from '../../support/tls.js';

let dns: TestDnsServer;
let ntp: TestNtpServer;
let stun: TestStunServer;
let ca: KeyCert;
let tlsServer: tls.Server;
let tlsPort: number;

beforeAll(async () => {
  ca = createCa('clgw diagnostics test CA');
  const cert = issueServerCert(ca, ['download.clgw.test', 'sip.clgw.test']);
  tlsServer = tls.createServer({ key: cert.keyPem, cert: cert.certPem });
  tlsServer.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  tlsPort = (tlsServer.address() as net.AddressInfo).port;
  [dns, ntp, stun] = await Promise.all([
    startDnsServer({ records: { 'download.clgw.test': '127.0.0.1', 'sip.clgw.test': '127.0.0.1' } }),
    startNtpServer(),
    startStunServer(),
  ]);
});

afterAll(async () => {
  await Promise.all([
    dns?.close(),
    ntp?.close(),
    stun?.close(),
    new Promise((resolve) => (tlsServer ? tlsServer.close(resolve) : resolve(undefined))),
  ]);
});

function config(): DiagnosticsConfig {
  return {
    dnsServers: [dns.address],
    downloadHost: `download.clgw.test:${tlsPort}`,
    ntpServer: ntp.address,
    stunHost: stun.host,
    stunPorts: stun.ports,
    sipTlsServer: `sip.clgw.test:${tlsPort}`,
    ca: ca.certPem,
    timeoutMs: 1000,
  };
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
async function freeTcpPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('runDiagnostics against real peers', () => {
  it('reports every check ok with the facts a technician needs', async () => {
    const report = await runDiagnostics(config(), { now: Date.now });
    const lines = formatDiagnostics(report);
    expect(report.ok, lines.join('\n')).toBe(true);
    expect(report.results.map((r) => [r.name, r.verdict])).toEqual([
      ['dns', 'ok'],
      ['ntp', 'ok'],
      ['https', 'ok'],
      ['stun-3478', 'ok'],
      ['stun-3479', 'ok'],
      ['sip-tls', 'ok'],
    ]);
    const [d, n, h, s1, s2, sip] = report.results;
    expect(d!.summary).toBe(`download.clgw.test is 127.0.0.1 via ${dns.address}`);
    expect(n!.summary).toMatch(new RegExp(`^clock offset [+-]0\\.\\d{3} s from ${ntp.address} \\(stratum 8`));
    expect(h!.target).toBe(`download.clgw.test:${tlsPort}`);
    expect(s1!.summary).toMatch(
      new RegExp(`^mapped address 127\\.0\\.0\\.1:\\d+ from 127\\.0\\.0\\.1:${stun.ports[0]}`),
    );
    expect(s2!.target).toBe(`127.0.0.1:${stun.ports[1]}`);
    expect(sip!.summary).toContain(`TLS handshake with sip.clgw.test:${tlsPort} ok`);
    expect(lines[0]).toMatch(/^diagnostics \S+: all ok$/);
    expect(lines).toHaveLength(7);
  });

  it('reports every check failed, within about two time limits, when no peer is there', async () => {
    const deadTcp = await freeTcpPort();
    const deadConfig: DiagnosticsConfig = {
      dnsServers: [`127.0.0.1:${await freeUdpPort()}`],
      downloadHost: `127.0.0.1:${deadTcp}`,
      ntpServer: `127.0.0.1:${await freeUdpPort()}`,
      stunHost: '127.0.0.1',
      stunPorts: [await freeUdpPort(), await freeUdpPort()],
      sipTlsServer: `sip.clgw.test:${deadTcp}`,
      timeoutMs: 500,
    };
    const started = Date.now();
    const report = await runDiagnostics(deadConfig, { now: Date.now });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(report.ok).toBe(false);
    expect(report.results.map((r) => r.verdict)).toEqual([
      'warning',
      'failed',
      'failed',
      'failed',
      'failed',
      'failed',
    ]);
    // The download host is an address: nothing for DNS to look up.
    expect(report.results[0]!.summary).toBe(
      `not checked: the download host 127.0.0.1 is an address, there is no name to look up`,
    );
    expect(report.results[2]!.summary).toBe(
      `TLS handshake with 127.0.0.1:${deadTcp} failed: connection refused (nothing listening on tcp/${deadTcp})`,
    );
    // The SIP-TLS name goes to the dead DNS server.
    expect(report.results[5]!.summary).toContain('the name sip.clgw.test did not resolve: refused');
  });
});
