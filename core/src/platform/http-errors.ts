import { ClgwError } from '../errors.js';

/**
 * Turns whatever the network stack threw (Node's errno errors and their causes, timeout errors,
 * TLS verification errors, our own lookup errors) into a ClgwError with a stable code and a plain
 * message that names the host, port, DNS server or URL at fault. No `node:*` imports: the mapping
 * is pure and is tested on its own.
 */

/**
 * What our DNS lookup hands to the socket when resolution fails. It carries the facts for the
 * message; `mapHttpError` turns it into DNS_LOOKUP_FAILED once the URL is known.
 */
export class DnsLookupError extends Error {
  readonly code: string;
  constructor(
    readonly hostname: string,
    readonly servers: readonly string[],
    readonly dnsCode: string,
    readonly timeoutMs?: number,
  ) {
    super(`DNS lookup of ${hostname} failed: ${dnsCode}`);
    this.name = 'DnsLookupError';
    this.code = dnsCode;
  }
}

/** Which part of an exchange was running when it failed; named in TIMED_OUT messages. */
export type HttpPhase = 'dns' | 'connect' | 'tls' | 'send' | 'response' | 'idle' | 'deadline' | 'throughput';

/** What the mapper needs to know about the request that failed. */
export interface FailureContext {
  /** The URL as requested (query kept for the request; it is dropped from messages). */
  url: URL;
  /** Proxy in use for this request, `host:port`. */
  proxy?: string;
  /** DNS servers named in DNS failures (the configured ones or the system's). */
  dnsServers: readonly string[];
  /** Limits, named in TIMED_OUT messages. */
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  /** Headers have arrived: a failure now interrupts the body. */
  inBody: boolean;
  /** Body bytes received so far and expected in total (when known). */
  received?: number;
  expected?: number;
  /** When each phase of the request ended (milliseconds since epoch); tell which phase a reset or timeout hit. */
  timings?: { lookup?: number; connect?: number; secureConnect?: number; response?: number };
}

/** The URL without its query string: `?timestamp=…` is noise in a message a person reads. */
export function displayUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** `host:port` of a URL, with the scheme's default port filled in. */
export function hostPort(url: URL): string {
  const port = url.port || (url.protocol === 'http:' ? '80' : '443');
  return `${url.hostname}:${port}`;
}

/** Details every network error carries. */
export function baseDetails(ctx: FailureContext): Record<string, unknown> {
  const d: Record<string, unknown> = {
    url: displayUrl(ctx.url),
    host: ctx.url.hostname,
    port: Number(ctx.url.port || 443),
  };
  if (ctx.proxy) d.proxy = ctx.proxy;
  return d;
}

const TLS_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'EPROTO',
]);

const UNREACHABLE_CODES = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

interface ErrnoLike {
  code?: unknown;
  reason?: unknown;
  bytesParsed?: unknown;
  rawPacket?: unknown;
  message?: unknown;
  address?: unknown;
  port?: unknown;
  event?: unknown;
  name?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** The chain error → cause → cause…, flattening AggregateError (Happy Eyeballs) to its first error. */
function chain(e: unknown): ErrnoLike[] {
  const out: ErrnoLike[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 8 && cur !== null && typeof cur === 'object'; i++) {
    const x = cur as ErrnoLike;
    out.push(x);
    if (Array.isArray(x.errors) && x.errors.length > 0) out.push(x.errors[0] as ErrnoLike);
    cur = x.cause;
  }
  return out;
}

function firstString(errors: ErrnoLike[], key: 'code' | 'message' | 'address' | 'event'): string | undefined {
  for (const x of errors) {
    const v = x[key];
    if (typeof v === 'string' && v !== '' && v !== 'ERR_GOT_REQUEST_ERROR') return v;
  }
  return undefined;
}

function deepestMessage(errors: ErrnoLike[]): string {
  for (let i = errors.length - 1; i >= 0; i--) {
    const m = errors[i]?.message;
    if (typeof m === 'string' && m !== '') return m;
  }
  return 'unknown error';
}

/** The peer the socket really talked to (the resolved address, or the proxy), when the error says. */
function peer(errors: ErrnoLike[], ctx: FailureContext): string {
  const target = hostPort(ctx.url);
  for (const x of errors) {
    if (typeof x.address === 'string' && x.port !== undefined) {
      const actual = `${x.address}:${String(x.port)}`;
      if (ctx.proxy && actual === ctx.proxy) return `proxy ${ctx.proxy} (for ${target})`;
      return actual === target ? target : `${target} (${actual})`;
    }
  }
  return ctx.proxy ? `${target} via proxy ${ctx.proxy}` : target;
}

/** The phase a connection-level failure happened in, judged from the request's timings. */
function connectionPhase(ctx: FailureContext): 'connect' | 'tls' | 'response' {
  const t = ctx.timings;
  if (!t?.connect) return 'connect';
  if (!t.secureConnect) return 'tls';
  return 'response';
}

/** A TIMED_OUT error naming the phase and the limit. */
export function timedOut(phase: HttpPhase, limitMs: number, ctx: FailureContext, what?: string): ClgwError {
  const target = hostPort(ctx.url);
  const via = ctx.proxy ? ` via proxy ${ctx.proxy}` : '';
  const text: Record<HttpPhase, string> = {
    dns: `DNS lookup of ${ctx.url.hostname} got no answer within ${limitMs} ms`,
    connect: `TCP connection to ${target}${via} not established within ${limitMs} ms`,
    tls: `TLS handshake with ${target}${via} not finished within ${limitMs} ms`,
    send: `request to ${target}${via} not sent within ${limitMs} ms`,
    response: `${target} sent no response headers within ${limitMs} ms`,
    idle: `${target} sent no data for ${limitMs} ms`,
    deadline: `request did not complete within its ${limitMs} ms deadline`,
    throughput: `download from ${target} too slow`,
  };
  const message = `timed out (${phase}): ${what ?? text[phase]}; while fetching ${displayUrl(ctx.url)}`;
  return new ClgwError('TIMED_OUT', message, {
    transient: true,
    details: { ...baseDetails(ctx), phase, limitMs, received: ctx.received },
  });
}

/**
 * Maps any error of a request to a ClgwError. A ClgwError already in the cause chain (raised by our
 * own lookup, body monitor or deadline) wins, so the most specific explanation is kept.
 */
export function mapHttpError(e: unknown, ctx: FailureContext): ClgwError {
  const errors = chain(e);
  for (const x of errors) {
    if (x instanceof DnsLookupError) return dnsFailure(x.hostname, x.servers, x.dnsCode, ctx, x.timeoutMs);
    if (x instanceof ClgwError) {
      if (x.details.url === undefined) Object.assign(x.details, baseDetails(ctx));
      return x;
    }
  }
  const code = firstString(errors, 'code') ?? '';
  const message = deepestMessage(errors);
  const url = displayUrl(ctx.url);
  const target = hostPort(ctx.url);
  const details = { ...baseDetails(ctx), errno: code || undefined };
  const suffix = `; while fetching ${url}`;

  const isTimeout = errors.some((x) => x.name === 'TimeoutError' && typeof x.event === 'string');
  if (isTimeout) {
    const event = firstString(errors, 'event');
    switch (event) {
      case 'lookup':
        return dnsFailure(ctx.url.hostname, ctx.dnsServers, 'ETIMEOUT', ctx, ctx.connectTimeoutMs);
      case 'connect':
        return timedOut('connect', ctx.connectTimeoutMs, ctx);
      case 'secureConnect':
        return timedOut('tls', ctx.connectTimeoutMs, ctx);
      case 'send':
        return timedOut('send', ctx.connectTimeoutMs, ctx);
      case 'response':
        return timedOut('response', ctx.responseTimeoutMs, ctx);
      default:
        return timedOut(ctx.inBody ? 'idle' : connectionPhase(ctx), ctx.responseTimeoutMs, ctx);
    }
  }

  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NODATA') {
    // Only the proxy's own name can still reach the system resolver this way.
    const host = ctx.proxy ? ctx.proxy.replace(/:\d+$/, '') : ctx.url.hostname;
    return dnsFailure(host, ctx.dnsServers, code, ctx);
  }
  if (code === 'ECONNREFUSED') {
    return new ClgwError('CONNECTION_REFUSED', `connection to ${peer(errors, ctx)} refused${suffix}`, {
      transient: true,
      cause: e,
      details,
    });
  }
  if (UNREACHABLE_CODES.has(code)) {
    return new ClgwError(
      'HOST_UNREACHABLE',
      `host not reachable: ${peer(errors, ctx)}: ${message}${suffix}`,
      { transient: true, cause: e, details },
    );
  }
  if (code === 'ETIMEDOUT') {
    return timedOut(ctx.inBody ? 'idle' : connectionPhase(ctx), ctx.connectTimeoutMs, ctx);
  }
  if (TLS_CODES.has(code) || /^(ERR_TLS_|ERR_SSL_|CERT_)/.test(code)) {
    const reason = message.replace(/^[A-Z]/, (c) => c.toLowerCase());
    return new ClgwError('TLS_ERROR', `TLS handshake with ${target} failed: ${reason}${suffix}`, {
      transient: false,
      cause: e,
      details,
    });
  }
  if (RESET_CODES.has(code) || /aborted|socket hang up/i.test(message)) {
    if (ctx.inBody) return truncated(ctx, `connection closed by ${target}`, e);
    const during = connectionPhase(ctx) === 'tls' ? ' during the TLS handshake' : '';
    return new ClgwError('CONNECTION_RESET', `connection to ${peer(errors, ctx)} reset${during}${suffix}`, {
      transient: true,
      cause: e,
      details,
    });
  }
  if (code.startsWith('HPE_')) {
    return new ClgwError(
      'NETWORK_ERROR',
      `network error talking to ${peer(errors, ctx)}: invalid HTTP response: ${parseFailure(errors, code)}${suffix}`,
      { transient: true, cause: e, details },
    );
  }
  const proxyStatus = /^Bad response: (\d{3})$/.exec(message);
  if (proxyStatus && ctx.proxy) {
    const status = Number(proxyStatus[1]);
    // 407 is the standard answer; some proxies (tinyproxy) answer a CONNECT with 401.
    if (status === 407 || status === 401) {
      return new ClgwError(
        'PROXY_AUTH_FAILED',
        `proxy ${ctx.proxy} refused the user and password (HTTP ${status}) for ${target} — check the proxy settings (clgw proxy)`,
        { cause: e, details: { ...details, status } },
      );
    }
    return new ClgwError(
      'HTTP_STATUS',
      `proxy ${ctx.proxy} refused to open a tunnel to ${target}: HTTP ${status}${suffix}`,
      { transient: status >= 500, cause: e, details: { ...details, status } },
    );
  }
  return new ClgwError(
    'NETWORK_ERROR',
    `network error talking to ${peer(errors, ctx)}: ${message}${suffix}`,
    {
      transient: true,
      cause: e,
      details,
    },
  );
}

/**
 * What Node's HTTP parser refused, in words: a server that does not speak HTTP at all (another
 * service on the port, a TLS-terminating proxy's banner) fails on its first bytes, quoted.
 */
function parseFailure(errors: ErrnoLike[], code: string): string {
  // The parser's own error (got's wrapper copies its code, not its facts).
  const x =
    errors.find((e) => e.code === code && (e.rawPacket !== undefined || e.reason !== undefined)) ?? {};
  const raw = x.rawPacket;
  const text = raw instanceof Uint8Array ? new TextDecoder('latin1').decode(raw) : '';
  const first = (text.split('\r\n')[0] ?? '').slice(0, 80);
  if (code === 'HPE_INVALID_CONSTANT' && x.bytesParsed === 0) {
    return `not an HTTP/1.x status line: "${first}"`;
  }
  const reason = typeof x.reason === 'string' && x.reason !== '' ? x.reason : code;
  return first ? `${reason} (response begins "${first}")` : reason;
}

/** Plain words for the resolver's error codes (c-ares and getaddrinfo). */
const DNS_REASONS: Record<string, string> = {
  ENOTFOUND: 'no such host (NXDOMAIN)',
  ENODATA: 'no address record for the name (NODATA)',
  ESERVFAIL: 'the DNS server failed (SERVFAIL)',
  EREFUSED: 'the DNS server refused the query (REFUSED)',
  ECONNREFUSED: 'connection refused (no DNS server listening)',
  EBADRESP: 'malformed reply',
  EAI_AGAIN: 'temporary failure in name resolution',
  EAI_FAIL: 'non-recoverable failure in name resolution',
  EAI_NODATA: 'no address record for the name (NODATA)',
  ECANCELLED: 'query cancelled',
};

/**
 * DNS_LOOKUP_FAILED naming the name and the server(s) asked, modelled on the vendor's
 * `lookup download.mitel.io on 10.0.0.1:53: … i/o timeout`.
 */
export function dnsFailure(
  hostname: string,
  servers: readonly string[],
  code: string,
  ctx?: FailureContext,
  timeoutMs?: number,
): ClgwError {
  const on = servers.length > 0 ? servers.join(', ') : 'the system resolver';
  const reason =
    code === 'ETIMEOUT' || code === 'ETIMEDOUT'
      ? `no answer${timeoutMs ? ` within ${timeoutMs} ms` : ''} (i/o timeout)`
      : (DNS_REASONS[code] ?? `resolver error ${code}`);
  const tail = ctx ? `; while fetching ${displayUrl(ctx.url)}` : '';
  return new ClgwError('DNS_LOOKUP_FAILED', `DNS lookup of ${hostname} failed on ${on}: ${reason}${tail}`, {
    // A missing name may appear once DNS is fixed; every DNS failure is worth a later retry.
    transient: true,
    details: {
      ...(ctx ? baseDetails(ctx) : {}),
      hostname,
      dnsServers: [...servers],
      errno: code,
      phase: 'dns',
    },
  });
}

/** SIZE_EXCEEDED: a body larger than `limit`; `how` says how we know. */
export function sizeExceeded(ctx: FailureContext, limit: number, how: string): ClgwError {
  return new ClgwError(
    'SIZE_EXCEEDED',
    `${displayUrl(ctx.url)} is larger than allowed: ${how}, the limit is ${limit} bytes`,
    { transient: false, details: { ...baseDetails(ctx), limit, received: ctx.received } },
  );
}

/** ARTIFACT_TRUNCATED: the body ended before the declared size; resumable. */
export function truncated(ctx: FailureContext, how: string, cause?: unknown): ClgwError {
  const got = ctx.received ?? 0;
  const of = ctx.expected !== undefined ? ` of ${ctx.expected}` : '';
  return new ClgwError(
    'ARTIFACT_TRUNCATED',
    `download of ${displayUrl(ctx.url)} truncated: ${how} after ${got}${of} bytes`,
    {
      transient: true,
      cause,
      details: { ...baseDetails(ctx), received: got, expected: ctx.expected },
    },
  );
}

/** HTTP_STATUS for a response we cannot use; 5xx, 408 and 429 are worth retrying. */
export function httpStatus(
  status: number,
  statusMessage: string | undefined,
  ctx: FailureContext,
): ClgwError {
  const text = statusMessage ? ` ${statusMessage}` : '';
  return new ClgwError('HTTP_STATUS', `GET ${displayUrl(ctx.url)} returned HTTP ${status}${text}`, {
    transient: status >= 500 || status === 408 || status === 429,
    details: { ...baseDetails(ctx), status },
  });
}
