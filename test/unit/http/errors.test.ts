import { ClgwError } from '@clgw/core/errors.js';
import {
  DnsLookupError,
  type FailureContext,
  httpStatus,
  mapHttpError,
} from '@clgw/core/platform/http-errors.js';
import { describe, expect, it } from 'vitest';

function ctx(extra: Partial<FailureContext> = {}): FailureContext {
  return {
    url: new URL('https://download.example:8443/compat.yaml?timestamp=1767225600000000000'),
    dnsServers: ['192.0.2.53:53'],
    connectTimeoutMs: 10_000,
    responseTimeoutMs: 30_000,
    inBody: false,
    ...extra,
  };
}

function errno(code: string, message: string, more: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { code, ...more });
}

/** got wraps the socket's error as `cause` of its RequestError. */
function wrapped(cause: Error): Error {
  return Object.assign(new Error(cause.message, { cause }), {
    name: 'RequestError',
    code: (cause as { code?: string }).code,
  });
}

describe('mapHttpError', () => {
  it('names the DNS server and the name on a lookup failure', () => {
    const e = mapHttpError(
      wrapped(new DnsLookupError('download.example', ['192.0.2.53:53'], 'ENOTFOUND')),
      ctx(),
    );
    expect(e.code).toBe('DNS_LOOKUP_FAILED');
    expect(e.message).toBe(
      'DNS lookup of download.example failed on 192.0.2.53:53: no such host (NXDOMAIN); while fetching https://download.example:8443/compat.yaml',
    );
    expect(e.details.url).toBe('https://download.example:8443/compat.yaml');
  });

  it('names the resolved address on a refused connection', () => {
    const e = mapHttpError(
      wrapped(errno('ECONNREFUSED', 'connect ECONNREFUSED', { address: '192.0.2.7', port: 8443 })),
      ctx(),
    );
    expect(e.code).toBe('CONNECTION_REFUSED');
    expect(e.transient).toBe(true);
    expect(e.message).toContain('download.example:8443 (192.0.2.7:8443)');
  });

  it('looks inside AggregateError (Happy Eyeballs)', () => {
    const agg = Object.assign(
      new AggregateError([errno('ECONNREFUSED', 'refused', { address: '192.0.2.7', port: 8443 })]),
      {
        code: 'ECONNREFUSED',
      },
    );
    expect(mapHttpError(wrapped(agg), ctx()).code).toBe('CONNECTION_REFUSED');
  });

  it('maps unreachable networks to HOST_UNREACHABLE', () => {
    for (const code of ['EHOSTUNREACH', 'ENETUNREACH']) {
      const e = mapHttpError(wrapped(errno(code, `connect ${code}`)), ctx());
      expect(e.code).toBe('HOST_UNREACHABLE');
      expect(e.message).toContain('host not reachable: download.example:8443');
    }
  });

  it('maps certificate problems to a permanent TLS_ERROR', () => {
    for (const [code, text] of [
      ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'],
      ['CERT_HAS_EXPIRED', 'certificate has expired'],
      ['ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"],
    ] as const) {
      const e = mapHttpError(wrapped(errno(code, text)), ctx());
      expect(e.code).toBe('TLS_ERROR');
      expect(e.transient).toBe(false);
      expect(e.message).toContain('TLS handshake with download.example:8443 failed:');
    }
  });

  it('names the phase of got timeouts', () => {
    const timeout = (event: string) =>
      Object.assign(new Error(`Timeout awaiting '${event}'`), {
        name: 'TimeoutError',
        event,
        code: 'ETIMEDOUT',
      });
    expect(mapHttpError(timeout('connect'), ctx()).details.phase).toBe('connect');
    expect(mapHttpError(timeout('secureConnect'), ctx()).details.phase).toBe('tls');
    const response = mapHttpError(timeout('response'), ctx());
    expect(response.code).toBe('TIMED_OUT');
    expect(response.message).toContain('30000 ms');
    const lookup = mapHttpError(timeout('lookup'), ctx());
    expect(lookup.code).toBe('DNS_LOOKUP_FAILED');
    expect(lookup.message).toContain('192.0.2.53:53');
  });

  it('calls a reset during the body a truncation, and before it a reset', () => {
    const reset = errno('ECONNRESET', 'aborted');
    expect(mapHttpError(wrapped(reset), ctx({ inBody: true, received: 10, expected: 20 })).code).toBe(
      'ARTIFACT_TRUNCATED',
    );
    const early = mapHttpError(wrapped(reset), ctx({ timings: { connect: 1 } }));
    expect(early.code).toBe('CONNECTION_RESET');
    expect(early.message).toContain('during the TLS handshake');
  });

  it('explains a proxy refusing the tunnel', () => {
    const e = mapHttpError(wrapped(new Error('Bad response: 403')), ctx({ proxy: '192.0.2.8:3128' }));
    expect(e.code).toBe('HTTP_STATUS');
    expect(e.message).toContain(
      'proxy 192.0.2.8:3128 refused to open a tunnel to download.example:8443: HTTP 403',
    );
  });

  it.each([407, 401])('names a proxy refusing the user and password (HTTP %i)', (status) => {
    const e = mapHttpError(wrapped(new Error(`Bad response: ${status}`)), ctx({ proxy: '192.0.2.8:3128' }));
    expect(e.code).toBe('PROXY_AUTH_FAILED');
    expect(e.message).toContain(`proxy 192.0.2.8:3128 refused the user and password (HTTP ${status})`);
  });

  it('keeps a ClgwError raised inside the request', () => {
    const own = new ClgwError('SIZE_EXCEEDED', 'too big');
    expect(mapHttpError(wrapped(own), ctx())).toBe(own);
  });

  it('falls back to a transient NETWORK_ERROR naming the peer', () => {
    const e = mapHttpError(new Error('something odd'), ctx());
    expect(e.code).toBe('NETWORK_ERROR');
    expect(e.message).toContain('download.example:8443');
  });
});

describe('httpStatus', () => {
  it('is transient for 5xx, 408 and 429 only', () => {
    expect(httpStatus(503, 'Service Unavailable', ctx()).transient).toBe(true);
    expect(httpStatus(429, undefined, ctx()).transient).toBe(true);
    expect(httpStatus(404, 'Not Found', ctx()).transient).toBe(false);
    expect(httpStatus(403, 'Forbidden', ctx()).message).toBe(
      'GET https://download.example:8443/compat.yaml returned HTTP 403 Forbidden',
    );
  });
});
