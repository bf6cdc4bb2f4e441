import { describe, expect, it } from 'vitest';
import type { DiagnosticsConfig } from '../../../agent/src/diagnostics/checks.js';
import { type Probes, runDiagnostics } from '../../../agent/src/diagnostics/run.js';

const CONFIG: DiagnosticsConfig = {
  dnsServers: ['10.0.0.53'],
  downloadHost: 'download.mitel.io',
  ntpServer: 'ntp.example.org',
  stunHost: 'stun.example.net',
  sipTlsServer: 'sip.example.net',
  timeoutMs: 100,
};

/** Probes that answer at once with good observations; tests replace one at a time. */
function goodProbes(): Probes {
  return {
    dns: async (host, servers) => ({
      host,
      servers: servers.map((server) => ({ server, outcome: 'answer' as const, addresses: ['203.0.113.10'] })),
      limitMs: 100,
    }),
    ntp: async () => ({
      outcome: 'answer',
      stratum: 2,
      referenceId: 'x',
      offsetMs: 1,
      roundTripMs: 2,
      address: '192.0.2.1',
    }),
    tls: async (target) => ({
      outcome: 'handshake',
      protocol: 'TLSv1.3',
      authorized: true,
      address: target.host,
    }),
    stun: async (target) => ({
      outcome: 'mapped',
      mapped: { address: '203.0.113.7', port: target.port },
      attribute: 'XOR-MAPPED-ADDRESS',
      local: { address: '10.0.0.5', port: target.port },
      roundTripMs: 3,
    }),
  };
}

describe('runDiagnostics', () => {
  it('runs the six checks and reports them in order with targets', async () => {
    let clock = Date.UTC(2026, 5, 1);
    const report = await runDiagnostics(CONFIG, { now: () => (clock += 5), probes: goodProbes() });
    expect(report.ok).toBe(true);
    expect(report.at).toBe('2026-06-01T00:00:00.005Z');
    expect(report.results.map((r) => [r.name, r.target, r.verdict])).toEqual([
      ['dns', '10.0.0.53', 'ok'],
      ['ntp', 'ntp.example.org:123', 'ok'],
      ['https', 'download.mitel.io:443', 'ok'],
      ['stun-3478', 'stun.example.net:3478', 'ok'],
      ['stun-3479', 'stun.example.net:3479', 'ok'],
      ['sip-tls', 'sip.example.net:5061', 'ok'],
    ]);
    for (const r of report.results) expect(r.durationMs).toBeGreaterThan(0);
  });

  it('turns a probe that throws into a failed verdict naming the error, and runs the rest', async () => {
    const probes: Probes = {
      ...goodProbes(),
      tls: async (target) => {
        if (target.port === 443) throw new Error('EMFILE: too many open files');
        return goodProbes().tls(target, { dnsServers: [], timeoutMs: 1 });
      },
    };
    const report = await runDiagnostics(CONFIG, { now: Date.now, probes });
    expect(report.ok).toBe(false);
    const https = report.results.find((r) => r.name === 'https')!;
    expect(https).toMatchObject({
      verdict: 'failed',
      summary: 'the https check could not run: EMFILE: too many open files',
    });
    expect(report.results.filter((r) => r.verdict === 'ok')).toHaveLength(5);
  });

  it('gives up on a probe that outlives its limit', async () => {
    const probes: Probes = { ...goodProbes(), stun: () => new Promise(() => undefined) };
    const report = await runDiagnostics(
      { ...CONFIG, timeoutMs: 20 },
      { now: Date.now, probes, concurrency: 6 },
    );
    const stun = report.results.filter((r) => r.name.startsWith('stun'));
    expect(stun.map((r) => r.summary)).toEqual([
      'the stun-3478 check could not run: no result within 1020 ms',
      'the stun-3479 check could not run: no result within 1020 ms',
    ]);
  });

  it('runs at most `concurrency` probes at once', async () => {
    let running = 0;
    let peak = 0;
    const slow =
      <T>(value: T) =>
      async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 10));
        running--;
        return value;
      };
    const good = goodProbes();
    const probes: Probes = {
      dns: slow(await good.dns('download.mitel.io', ['10.0.0.53'], 100)),
      ntp: slow(await good.ntp({ host: 'x', port: 1 }, { dnsServers: [], timeoutMs: 1, now: Date.now })),
      tls: slow(await good.tls({ host: 'x', port: 1 }, { dnsServers: [], timeoutMs: 1 })),
      stun: slow(await good.stun({ host: 'x', port: 1 }, { dnsServers: [], timeoutMs: 1 })),
    };
    await runDiagnostics(CONFIG, { now: Date.now, probes, concurrency: 2 });
    expect(peak).toBe(2);
  });

  it('reports unconfigured checks as warnings without probing them', async () => {
    const probes = goodProbes();
    let stunCalls = 0;
    probes.stun = async (...args) => {
      stunCalls++;
      return goodProbes().stun(...args);
    };
    const report = await runDiagnostics(
      { ...CONFIG, stunHost: undefined, sipTlsServer: '' },
      { now: Date.now, probes },
    );
    expect(stunCalls).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.results.slice(3).map((r) => [r.verdict, r.summary])).toEqual([
      ['warning', 'not checked: no STUN server configured'],
      ['warning', 'not checked: no STUN server configured'],
      ['warning', 'not checked: no SIP-TLS server configured'],
    ]);
  });

  it('never throws, even for a config that is not one', async () => {
    const report = await runDiagnostics(null as unknown as DiagnosticsConfig, { now: Date.now });
    expect(report.ok).toBe(false);
    expect(report.results[0]!.verdict).toBe('failed');
  });
});
