import dns, { type LookupAddress } from 'node:dns';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import type tls from 'node:tls';
import { HttpsProxyAgent } from 'hpagent';
import { ClgwError } from '../errors.js';
import type { Clock } from './clock.js';
import { type BodyLimits, BodyWatch } from './http-body.js';
import { type BodySink, DirectClient, type DirectResponse } from './http-direct.js';
import {
  baseDetails,
  DnsLookupError,
  displayUrl,
  dnsFailure,
  type FailureContext,
  hostPort,
  httpStatus,
  mapHttpError,
  sizeExceeded,
  timedOut,
  truncated,
} from './http-errors.js';
import { GarbageGauge } from './memory.js';
import { contextTrusting } from './trust.js';

export type { BodySink } from './http-direct.js';
export { displayUrl } from './http-errors.js';

/** Network settings of the download client. Every limit has a default that suits a 600 MB update. */
export interface HttpClientOptions {
  clock: Clock;
  /** PEM of the CA(s) trusted for the download server in addition to Node's built-in root store. */
  ca?: string | Buffer;
  /** Resolve through these servers (e.g. `['127.0.0.1:5353']`); default: the system resolver. */
  dnsServers?: string[];
  /**
   * Default: from HTTPS_PROXY/https_proxy and NO_PROXY/no_proxy (loopback always direct, as Go
   * does). `null`: never use a proxy. `all`: every request through it, loopback too — the
   * appliance's own proxy setting, which covers every outbound request.
   */
  proxy?: { url: string; noProxy?: string; all?: boolean } | null;
  /** Limit of each connection phase (DNS, TCP, TLS); default 10 s. */
  connectTimeoutMs?: number;
  /** Time from request sent to response headers; default 30 s. */
  responseTimeoutMs?: number;
  /** No body byte for this long → TIMED_OUT (idle); default 30 s. */
  idleTimeoutMs?: number;
  /** A body slower than this over `minThroughputWindowMs` → TIMED_OUT (throughput); default 1 KiB/s. */
  minBytesPerSecond?: number;
  /** Window of the throughput check; default 60 s. */
  minThroughputWindowMs?: number;
  /** Retries of `getBuffer` after a transient error; default 2. */
  retries?: number;
  /** First retry delay, doubled per retry, capped at 30 s; default 1 s. */
  retryDelayMs?: number;
}

/** What the server said identifies a body's version: its ETag and Last-Modified headers. */
export interface Validators {
  etag?: string;
  lastModified?: string;
}

/** The download client the agent uses for compat.yaml, its signature and the artifacts. */
export interface HttpClient {
  /** Whole small body (compat.yaml and its signature); deadline-bound; refuses bodies over maxBytes. */
  getBuffer(
    url: string,
    opts: { maxBytes: number; deadlineMs?: number; signal?: AbortSignal },
  ): Promise<Buffer>;
  /**
   * getBuffer for a body the caller already holds: sent with its validators (If-None-Match, else
   * If-Modified-Since), a 304 answer is `{ changed: false }` — one request, no body. Otherwise the
   * body and the validators the server gave with it (none given: the next call asks unconditionally).
   */
  getIfChanged(
    url: string,
    opts: { maxBytes: number; validators: Validators | undefined; deadlineMs?: number; signal?: AbortSignal },
  ): Promise<{ changed: false } | { changed: true; body: Buffer; validators: Validators | undefined }>;
  /**
   * Body stream of a large artifact from `offset` (Range request). `start` is where the stream really
   * begins: `offset` on 206, 0 when the server ignored Range (200). Validates Content-Range and
   * Content-Length against expectedSize; the stream fails with SIZE_EXCEEDED rather than deliver a
   * byte past expectedSize, and with ARTIFACT_TRUNCATED when it ends short.
   */
  openStream(
    url: string,
    opts: { offset?: number; expectedSize: number; signal?: AbortSignal },
  ): Promise<{ stream: Readable; start: number }>;
  /**
   * openStream for consumers that take the body as it comes (the slot writer, the index fetch):
   * the body from `offset` is handed to `sink` piece by piece, each piece valid only during the
   * call, read into the one buffer of a connection of the direct reader (http-direct.ts) — or,
   * through a proxy or from a server sending chunked encoding, from openStream's stream.
   * `onStart(start)` is told where the body really starts before the first piece. Resolves once
   * every piece was taken; fails as openStream and its stream do.
   */
  receive(
    url: string,
    opts: { offset?: number; expectedSize: number; signal?: AbortSignal },
    onStart: (start: number) => void,
    sink: BodySink,
  ): Promise<void>;
  /**
   * Bytes `start…end` (inclusive) of an artifact of `size` bytes, one single-range request
   * (adaptive updates), handed to `sink` as receive() does — on a kept-alive connection of the
   * direct reader, so that a delta's hundreds of ranges share a few handshakes. RANGE_NOT_SUPPORTED
   * when the server answers with the whole file (200) or another range; SIZE_EXCEEDED or
   * ARTIFACT_TRUNCATED as above.
   */
  receiveRange(
    url: string,
    opts: { start: number; end: number; size: number; signal?: AbortSignal },
    sink: BodySink,
  ): Promise<void>;
}

const MAX_REDIRECTS = 3;
const MAX_IDLE_SOCKETS = 4;
const IDLE_SOCKET_MS = 5000;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const USER_AGENT = 'clgw-agent';

/**
 * Builds the HTTPS client. Fails with PROXY_INVALID when the configured or environment proxy is not
 * a usable URL, so a bad setting shows up at start and not in the middle of an update.
 */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const clock = options.clock;
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const responseTimeoutMs = options.responseTimeoutMs ?? 30_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const minBytesPerSecond = options.minBytesPerSecond ?? 1024;
  const windowMs = options.minThroughputWindowMs ?? 60_000;
  const retries = options.retries ?? 2;
  const retryDelayMs = options.retryDelayMs ?? 1000;

  // One secure context for every connection, built once.
  const secureContext = options.ca === undefined ? undefined : contextTrusting(options.ca.toString());
  // Connections are kept between requests (compat.yaml and its signature, and artifacts and
  // ranges through a proxy; the direct reader keeps its own), at most MAX_IDLE_SOCKETS idle, each
  // closed after IDLE_SOCKET_MS unused or before the server's Keep-Alive timeout.
  const agentOptions: https.AgentOptions = {
    keepAlive: true,
    scheduling: 'lifo',
    maxFreeSockets: MAX_IDLE_SOCKETS,
    timeout: IDLE_SOCKET_MS,
    ...(secureContext ? { secureContext } : {}),
  };
  const directAgent = new https.Agent(agentOptions);

  const proxySetting: { url: string; noProxy?: string; all?: boolean } | undefined =
    options.proxy === undefined ? proxyFromEnv(process.env) : (options.proxy ?? undefined);
  const proxyUrl = proxySetting ? parseProxyUrl(proxySetting.url) : undefined;
  const proxyAgent = proxyUrl ? new HttpsProxyAgent({ ...agentOptions, proxy: proxyUrl }) : undefined;
  const proxyHostPort = proxyUrl ? hostPort(proxyUrl) : undefined;

  const shownDnsServers = options.dnsServers?.length ? options.dnsServers : systemDnsServers();
  const lookup = options.dnsServers?.length
    ? resolverLookup(options.dnsServers, connectTimeoutMs)
    : systemLookup(shownDnsServers);

  function route(url: URL): { agent: https.Agent; proxy?: string } {
    if (
      proxyAgent &&
      proxyHostPort &&
      (proxySetting?.all || !bypassesProxy(url.hostname, effectivePort(url), proxySetting?.noProxy))
    ) {
      return { agent: proxyAgent, proxy: proxyHostPort };
    }
    return { agent: directAgent };
  }

  function contextFor(url: URL, proxy: string | undefined): FailureContext {
    return {
      url,
      ...(proxy ? { proxy } : {}),
      dnsServers: shownDnsServers,
      connectTimeoutMs,
      responseTimeoutMs,
      inBody: false,
    };
  }

  /**
   * One request, up to its response headers. Errors after that are parked for the body monitor.
   * Plain `https.request` (no client library on top: each layer costs CPU per 16 KiB of body and
   * memory for its code), with the phase limits armed on the socket's own events: DNS and TCP
   * within connectTimeoutMs each, the TLS handshake too, and the response headers within
   * responseTimeoutMs of the request being sent.
   */
  function requestOnce(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<Exchange> {
    const { agent, proxy } = route(url);
    const ctx = contextFor(url, proxy);
    if (signal.aborted) return Promise.reject(signal.reason);
    const timings: NonNullable<FailureContext['timings']> = {};
    ctx.timings = timings;
    const req = https.request(url, {
      agent,
      lookup,
      headers: { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...headers },
    });
    const exchange: Exchange = { req, ctx, status: 0, headers: {} };
    const onAbort = () => req.destroy(asError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    req.once('close', () => signal.removeEventListener('abort', onAbort));

    return new Promise<Exchange>((resolve, reject) => {
      let settled = false;
      /** The limit of the phase running now; one at a time. */
      let phase: AbortController | undefined;
      const arm = (ms: number, error: () => Error) => {
        phase?.abort();
        const current = new AbortController();
        phase = current;
        clock.sleep(ms, current.signal).then(
          () => req.destroy(error()),
          () => undefined,
        );
      };
      const disarm = () => phase?.abort();
      // A proxy tunnel hands over a socket that is already connected (the CONNECT ran inside the
      // agent). This backstop bounds the whole way to the headers in every case.
      const backstop = new AbortController();
      const settle = () => {
        settled = true;
        disarm();
        backstop.abort();
      };
      clock.sleep(connectTimeoutMs + responseTimeoutMs, backstop.signal).then(
        () => {
          if (settled) return;
          const phase = !timings.connect ? 'connect' : !timings.secureConnect ? 'tls' : 'response';
          req.destroy(timedOut(phase, phase === 'response' ? responseTimeoutMs : connectTimeoutMs, ctx));
        },
        () => undefined,
      );
      req.once('socket', (socket: tls.TLSSocket) => {
        // A kept-alive connection: connected and secured already, by an earlier request.
        if (req.reusedSocket) {
          timings.connect = clock.now();
          timings.secureConnect = timings.connect;
          return;
        }
        const tlsPhase = () => arm(connectTimeoutMs, () => timedOut('tls', connectTimeoutMs, ctx));
        socket.once('secureConnect', () => {
          timings.secureConnect = clock.now();
          disarm();
        });
        if (!socket.connecting) {
          timings.connect = clock.now();
          tlsPhase();
          return;
        }
        const connectPhase = () => arm(connectTimeoutMs, () => timedOut('connect', connectTimeoutMs, ctx));
        if (net.isIP(url.hostname.replace(/^\[(.*)\]$/, '$1')) === 0 && !proxy) {
          arm(connectTimeoutMs, () =>
            dnsFailure(url.hostname, ctx.dnsServers, 'ETIMEOUT', ctx, connectTimeoutMs),
          );
          socket.once('lookup', () => {
            timings.lookup = clock.now();
            connectPhase();
          });
        } else connectPhase();
        socket.once('connect', () => {
          timings.connect = clock.now();
          tlsPhase();
        });
      });
      req.once('finish', () => {
        if (settled) return;
        // Sent: from here the server has responseTimeoutMs for its headers (the handshake, if
        // still running, keeps its own limit until it ends).
        const waitResponse = () => {
          if (!settled) arm(responseTimeoutMs, () => timedOut('response', responseTimeoutMs, ctx));
        };
        if (timings.secureConnect) waitResponse();
        else req.socket?.once('secureConnect', waitResponse);
      });
      const onError = (e: unknown) => {
        if (!settled) {
          settle();
          reject(signal.aborted ? signal.reason : mapHttpError(e, ctx));
          return;
        }
        if (exchange.onError) exchange.onError(e);
        else exchange.error ??= e;
      };
      req.on('error', onError);
      req.once('response', (res: IncomingMessage) => {
        res.on('error', onError);
        if (settled) {
          res.destroy();
          return;
        }
        settle();
        timings.response = clock.now();
        ctx.inBody = true;
        exchange.res = res;
        exchange.status = res.statusCode ?? 0;
        exchange.statusMessage = res.statusMessage;
        exchange.headers = res.headers;
        resolve(exchange);
      });
      req.end();
    });
  }

  /** A request with same-host HTTPS redirects followed (at most MAX_REDIRECTS), others refused. */
  async function open(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<Exchange> {
    let current = url;
    for (let hop = 0; ; hop++) {
      const ex = await requestOnce(current, headers, signal);
      if (!REDIRECT_STATUSES.has(ex.status)) return ex;
      ex.req.destroy();
      current = redirectTarget(url, current, ex, hop);
    }
  }

  /** openStream's checks of where the artifact starts, for both kinds of request. */
  function artifactRequest(url: string, offset: number, size: number): URL {
    const target = parseHttpsUrl(url);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) {
      throw new ClgwError(
        'INVALID_REQUEST',
        `cannot fetch ${displayUrl(target)} from offset ${offset}: outside 0…${size}`,
        { details: { url: displayUrl(target), offset, expectedSize: size } },
      );
    }
    return target;
  }

  const direct = new DirectClient({
    clock,
    lookup,
    secureContext,
    connectTimeoutMs,
    responseTimeoutMs,
    idleTimeoutMs,
    minBytesPerSecond,
    minThroughputWindowMs: windowMs,
    userAgent: USER_AGENT,
  });

  /**
   * A direct request with open()'s redirects; undefined when it is one for Node's client: through
   * a proxy (the tunnel is a socket Node's client opened: its reads cannot go to our buffer), or
   * answered with a chunked body.
   */
  async function openDirect(
    url: URL,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<DirectResponse | undefined> {
    if (route(url).proxy) return undefined;
    let current = url;
    for (let hop = 0; ; hop++) {
      const res = await direct.request(current, headers, contextFor(current, undefined), signal);
      if (REDIRECT_STATUSES.has(res.status)) {
        res.close();
        current = redirectTarget(url, current, res, hop);
        continue;
      }
      // Only a body that will be read needs the other parser: an error's is never read.
      const encoding = res.headers['transfer-encoding'];
      if (res.status < 300 && encoding !== undefined && encoding.toLowerCase() !== 'identity') {
        res.close();
        return undefined;
      }
      return res;
    }
  }

  /** Wires the body of an exchange through a monitor that enforces size, idle and throughput limits. */
  function monitorBody(ex: Exchange, limits: { maxBytes: number; expected?: number }, signal: AbortSignal) {
    const monitor = new BodyMonitor({
      clock,
      ctx: ex.ctx,
      maxBytes: limits.maxBytes,
      ...(limits.expected !== undefined ? { expected: limits.expected } : {}),
      idleMs: idleTimeoutMs,
      minBytesPerSecond,
      windowMs,
    });
    ex.onError = (e) => {
      monitor.destroy(
        signal.aborted
          ? asError(signal.reason)
          : mapHttpError(e, { ...ex.ctx, received: monitor.received, expected: limits.expected }),
      );
    };
    if (ex.error !== undefined) ex.onError(ex.error);
    monitor.once('close', () => {
      if (!ex.req.destroyed) ex.req.destroy();
    });
    ex.res?.pipe(monitor);
    return monitor;
  }

  type Fetched = { changed: false } | { changed: true; body: Buffer; validators: Validators | undefined };

  async function getOnce(
    url: URL,
    maxBytes: number,
    signal: AbortSignal,
    validators?: Validators,
  ): Promise<Fetched> {
    const conditions: Record<string, string> = validators?.etag
      ? { 'if-none-match': validators.etag }
      : validators?.lastModified
        ? { 'if-modified-since': validators.lastModified }
        : {};
    const ex = await open(url, conditions, signal);
    const ctx = ex.ctx;
    if (ex.status === 304 && Object.keys(conditions).length > 0) {
      // No body follows a 304: reading the (empty) response hands the connection back to the pool.
      ex.res?.resume();
      return { changed: false };
    }
    if (ex.status !== 200) {
      ex.req.destroy();
      throw httpStatus(ex.status, ex.statusMessage, ctx);
    }
    const declared = contentLength(ex.headers);
    if (declared !== undefined && declared > maxBytes) {
      ex.req.destroy();
      throw sizeExceeded(ctx, maxBytes, `the server declares ${declared} bytes`);
    }
    const body = monitorBody(
      ex,
      { maxBytes, ...(declared !== undefined ? { expected: declared } : {}) },
      signal,
    );
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    const etag = ex.headers.etag;
    const lastModified = ex.headers['last-modified'];
    return {
      changed: true,
      body: Buffer.concat(chunks),
      validators:
        etag || lastModified
          ? { ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) }
          : undefined,
    };
  }

  /** getOnce with getBuffer's deadline and retries of transient failures. */
  async function fetchWithRetries(
    url: string,
    opts: { maxBytes: number; deadlineMs?: number; signal?: AbortSignal },
    validators?: Validators,
  ): Promise<Fetched> {
    const target = parseHttpsUrl(url);
    const stop = new AbortController();
    const deadline = new AbortController();
    const signals = [deadline.signal, ...(opts.signal ? [opts.signal] : [])];
    const signal = AbortSignal.any(signals);
    const deadlineAt = opts.deadlineMs === undefined ? undefined : clock.now() + opts.deadlineMs;
    if (opts.deadlineMs !== undefined) {
      const limit = opts.deadlineMs;
      clock.sleep(limit, stop.signal).then(
        () => deadline.abort(timedOut('deadline', limit, contextFor(target, route(target).proxy))),
        () => undefined,
      );
    }
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          return await getOnce(target, opts.maxBytes, signal, validators);
        } catch (e) {
          if (signal.aborted) throw signal.reason;
          const delay = Math.min(30_000, retryDelayMs * 2 ** attempt);
          const retryable = e instanceof ClgwError && e.transient && attempt < retries;
          if (!retryable || (deadlineAt !== undefined && clock.now() + delay >= deadlineAt)) throw e;
          await clock.sleep(delay, signal);
        }
      }
    } finally {
      stop.abort();
    }
  }

  const client: HttpClient = {
    async getBuffer(url, opts) {
      const fetched = await fetchWithRetries(url, opts);
      // Asked without validators, the answer always carries the body.
      return fetched.changed ? fetched.body : Buffer.alloc(0);
    },

    getIfChanged: (url, opts) => fetchWithRetries(url, opts, opts.validators),

    async openStream(url, opts) {
      const size = opts.expectedSize;
      const offset = opts.offset ?? 0;
      const target = artifactRequest(url, offset, size);
      // Nothing left to fetch: a Range of `bytes=<size>-` would only earn a 416.
      if (offset === size) return { stream: Readable.from([]), start: size };
      const signal = opts.signal ?? new AbortController().signal;
      const ex = await open(target, offset > 0 ? { range: `bytes=${offset}-` } : {}, signal);
      const ctx = ex.ctx;
      let start: number;
      try {
        start = checkArtifactResponse(ex, offset, size);
      } catch (e) {
        ex.req.destroy();
        throw e;
      }
      const remaining = size - start;
      const stream = monitorBody(ex, { maxBytes: remaining, expected: remaining }, signal);
      ctx.expected = remaining;
      return { stream, start };
    },

    async receive(url, opts, onStart, sink) {
      const size = opts.expectedSize;
      const offset = opts.offset ?? 0;
      const target = artifactRequest(url, offset, size);
      const signal = opts.signal ?? new AbortController().signal;
      const res =
        offset === size
          ? undefined
          : await openDirect(target, offset > 0 ? { range: `bytes=${offset}-` } : {}, signal);
      if (!res) {
        const { stream, start } = await client.openStream(url, opts);
        onStart(start);
        await feed(stream, sink);
        return;
      }
      let start: number;
      try {
        start = checkArtifactResponse(res, offset, size);
      } catch (e) {
        res.close();
        throw e;
      }
      onStart(start);
      await res.body({ maxBytes: size - start, expected: size - start }, sink);
    },

    async receiveRange(url, opts, sink) {
      const target = parseHttpsUrl(url);
      const { start, end, size } = opts;
      if (
        !Number.isSafeInteger(start) ||
        !Number.isSafeInteger(end) ||
        start < 0 ||
        end < start ||
        end >= size
      ) {
        throw new ClgwError(
          'INVALID_REQUEST',
          `cannot fetch bytes ${start}-${end} of ${displayUrl(target)}: outside 0…${size - 1}`,
          { details: { url: displayUrl(target), start, end, expectedSize: size } },
        );
      }
      const signal = opts.signal ?? new AbortController().signal;
      const length = end - start + 1;
      const range = { range: `bytes=${start}-${end}` };
      const res = await openDirect(target, range, signal);
      if (res) {
        try {
          checkRangeResponse(res, start, end, size);
        } catch (e) {
          res.close();
          throw e;
        }
        await res.body({ maxBytes: length, expected: length }, sink);
        return;
      }
      const ex = await open(target, range, signal);
      try {
        checkRangeResponse(ex, start, end, size);
      } catch (e) {
        ex.req.destroy();
        throw e;
      }
      ex.ctx.expected = length;
      await feed(monitorBody(ex, { maxBytes: length, expected: length }, signal), sink);
    },
  };
  return client;
}

/**
 * A body from Node's client handed to a sink. Its 16 KiB buffers are garbage once taken: the
 * young generation is collected as they pile up (GarbageGauge).
 */
async function feed(stream: Readable, sink: BodySink): Promise<void> {
  const gauge = new GarbageGauge();
  try {
    for await (const chunk of stream) {
      const wait = sink.data(chunk as Buffer);
      if (wait) await wait;
      gauge.received((chunk as Buffer).length);
    }
  } finally {
    stream.destroy();
  }
}

/** Checks that a response is exactly bytes start…end of an artifact of `size` bytes. */
function checkRangeResponse(ex: ResponseHead, start: number, end: number, size: number): void {
  const ctx = ex.ctx;
  const what = `bytes ${start}-${end} of ${displayUrl(ctx.url)}`;
  if (ex.status === 200) {
    throw new ClgwError(
      'RANGE_NOT_SUPPORTED',
      `${hostPort(ctx.url)} answered the request for ${what} with the whole file (HTTP 200): it ignores Range`,
      { transient: false, details: { ...baseDetails(ctx), status: 200, start, end } },
    );
  }
  if (ex.status !== 206) throw httpStatus(ex.status, ex.statusMessage, ctx);
  const range = parseContentRange(ex.headers['content-range']);
  if (!range || range.start !== start || range.end !== end) {
    throw new ClgwError(
      'RANGE_NOT_SUPPORTED',
      `${hostPort(ctx.url)} answered the request for ${what} with Content-Range "${ex.headers['content-range'] ?? ''}"`,
      {
        transient: false,
        details: { ...baseDetails(ctx), contentRange: ex.headers['content-range'], start, end },
      },
    );
  }
  if (range.total !== undefined && range.total !== size) throw sizeMismatch(ctx, range.total, size);
  const declared = contentLength(ex.headers);
  if (declared !== undefined && declared !== end - start + 1) {
    throw new ClgwError(
      'RANGE_NOT_SUPPORTED',
      `${hostPort(ctx.url)} declares ${declared} bytes for ${what} (${end - start + 1} expected)`,
      { transient: false, details: { ...baseDetails(ctx), declared, start, end } },
    );
  }
}

/** Where the response to an artifact request really starts, after checking it fits `size`. */
function checkArtifactResponse(ex: ResponseHead, offset: number, size: number): number {
  const ctx = ex.ctx;
  let start: number;
  if (ex.status === 206) {
    const range = parseContentRange(ex.headers['content-range']);
    if (!range || range.start !== offset) {
      throw new ClgwError(
        'RANGE_NOT_SUPPORTED',
        `${hostPort(ctx.url)} answered the request for bytes ${offset}- of ${displayUrl(ctx.url)} with ` +
          `Content-Range "${ex.headers['content-range'] ?? ''}"`,
        {
          transient: false,
          details: { ...baseDetails(ctx), contentRange: ex.headers['content-range'], offset },
        },
      );
    }
    if (range.total !== undefined && range.total !== size) {
      throw sizeMismatch(ctx, range.total, size);
    }
    if (range.end !== size - 1) throw sizeMismatch(ctx, range.end + 1, size);
    start = offset;
  } else if (ex.status === 200) {
    start = 0;
  } else {
    throw httpStatus(ex.status, ex.statusMessage, ctx);
  }
  const declared = contentLength(ex.headers);
  if (declared !== undefined && declared !== size - start) throw sizeMismatch(ctx, start + declared, size);
  return start;
}

/** What the checks of a response look at, from either kind of request. */
type ResponseHead = Pick<Exchange, 'ctx' | 'status' | 'statusMessage' | 'headers'>;

interface Exchange {
  req: ClientRequest;
  /** The response, once its headers arrived. */
  res?: IncomingMessage;
  ctx: FailureContext;
  status: number;
  statusMessage?: string | undefined;
  headers: IncomingHttpHeaders;
  /** An error that arrived after the headers but before the body monitor was attached. */
  error?: unknown;
  onError?: (e: unknown) => void;
}

interface MonitorOptions extends BodyLimits {
  /** Hard cap: a byte past it fails the stream with SIZE_EXCEEDED, and is never delivered. */
  maxBytes: number;
  /** Exact length: an end before it fails the stream with ARTIFACT_TRUNCATED. */
  expected?: number;
}

/**
 * Passes body bytes through unchanged while counting them, and fails the stream when the server
 * sends too much, stops sending, or sends too slowly (BodyWatch).
 */
class BodyMonitor extends Transform {
  private readonly watch: BodyWatch;

  constructor(private readonly o: MonitorOptions) {
    super({ highWaterMark: 64 * 1024 });
    this.watch = new BodyWatch(
      o,
      () => this.readableLength >= this.readableHighWaterMark,
      (e) => this.destroy(e),
    );
    this.once('close', () => this.watch.stop());
  }

  get received(): number {
    return this.watch.received;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.received + chunk.length > this.o.maxBytes) {
      done(
        sizeExceeded(
          { ...this.o.ctx, received: this.received },
          this.o.maxBytes,
          `the server sent more than ${this.o.maxBytes} bytes`,
        ),
      );
      return;
    }
    this.watch.count(chunk.length);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    // The server is done: what is left to wait for is our consumer.
    this.watch.stop();
    if (this.o.expected !== undefined && this.received < this.o.expected) {
      done(
        truncated(
          { ...this.o.ctx, received: this.received, expected: this.o.expected },
          `the server ended the body`,
        ),
      );
      return;
    }
    done();
  }
}

/** The server's idea of the artifact's size disagrees with compat.yaml's. Not worth a retry. */
function sizeMismatch(ctx: FailureContext, serverSize: number, size: number): ClgwError {
  if (serverSize > size) return sizeExceeded(ctx, size, `the server declares ${serverSize} bytes`);
  return new ClgwError(
    'ARTIFACT_TRUNCATED',
    `${displayUrl(ctx.url)} on ${hostPort(ctx.url)} has ${serverSize} bytes, but ${size} were expected`,
    { transient: false, details: { ...baseDetails(ctx), serverSize, expected: size } },
  );
}

/**
 * Where a redirect answer to a request for `current` (hop `hop` from `original`) leads: only
 * HTTPS on the same host and port, at most MAX_REDIRECTS times; REDIRECT_REFUSED otherwise.
 */
function redirectTarget(original: URL, current: URL, answer: ResponseHead, hop: number): URL {
  const location = answer.headers.location;
  if (!location) {
    throw new ClgwError(
      'HTTP_STATUS',
      `GET ${displayUrl(current)} returned HTTP ${answer.status} without a Location header`,
      { details: { ...baseDetails(answer.ctx), status: answer.status } },
    );
  }
  let next: URL;
  try {
    next = new URL(location, current);
  } catch {
    throw redirectRefused(current, location, 'the Location is not a valid URL');
  }
  if (next.protocol !== 'https:') {
    throw redirectRefused(current, location, `it leaves HTTPS (${next.protocol.replace(':', '')})`);
  }
  if (next.hostname !== original.hostname || effectivePort(next) !== effectivePort(original)) {
    throw redirectRefused(current, location, `it leaves the download server ${hostPort(original)}`);
  }
  if (hop >= MAX_REDIRECTS) {
    throw redirectRefused(current, location, `more than ${MAX_REDIRECTS} redirects`);
  }
  return next;
}

function redirectRefused(from: URL, location: string, why: string): ClgwError {
  return new ClgwError(
    'REDIRECT_REFUSED',
    `refused redirect from ${displayUrl(from)} to ${location}: ${why}`,
    { transient: false, details: { url: displayUrl(from), host: from.hostname, location } },
  );
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}

function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const raw = headers['content-length'];
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

function effectivePort(url: URL): number {
  return Number(url.port || (url.protocol === 'http:' ? 80 : 443));
}

function parseHttpsUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ClgwError('CONFIG_INVALID', `not a valid URL: ${raw}`, { details: { url: raw } });
  }
  if (url.protocol !== 'https:') {
    throw new ClgwError('CONFIG_INVALID', `only https:// URLs are fetched, not ${displayUrl(url)}`, {
      details: { url: displayUrl(url) },
    });
  }
  return url;
}

/** `Content-Range: bytes <start>-<end>/<total|*>` of a 206 response; undefined when malformed. */
export function parseContentRange(
  header: string | undefined,
): { start: number; end: number; total?: number } | undefined {
  const m = header ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim()) : null;
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return undefined;
  return m[3] === '*' ? { start, end } : { start, end, total: Number(m[3]) };
}

/** The proxy setting from the environment, HTTPS_PROXY over https_proxy (as Go's httpproxy does). */
export function proxyFromEnv(env: NodeJS.ProcessEnv): { url: string; noProxy?: string } | undefined {
  const url = env.HTTPS_PROXY || env.https_proxy;
  if (!url) return undefined;
  const noProxy = env.NO_PROXY || env.no_proxy;
  return noProxy ? { url, noProxy } : { url };
}

/** A proxy URL (`http://[user:pass@]host:port`; bare `host:port` means http), or PROXY_INVALID. */
export function parseProxyUrl(raw: string): URL {
  const text = raw.includes('://') ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ClgwError('PROXY_INVALID', `proxy setting "${raw}" is not a valid URL`, {
      details: { proxy: raw },
    });
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw new ClgwError(
      'PROXY_INVALID',
      `proxy setting "${raw}" must be http://host:port or https://host:port`,
      { details: { proxy: raw } },
    );
  }
  return url;
}

/**
 * Whether a request to `hostname:port` goes direct rather than through the proxy. Follows Go's
 * NO_PROXY rules (the vendor's agent is Go): `*` bypasses everything; `example.com` matches the
 * name and its subdomains; `.example.com` (or `*.example.com`) only subdomains; an entry may carry
 * `:port`; IPv4 CIDR blocks match addresses. Loopback is never proxied.
 */
export function bypassesProxy(hostname: string, port: number, noProxy: string | undefined): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (host === 'localhost' || isLoopback(host)) return true;
  for (const raw of (noProxy ?? '').split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (inCidr4(host, entry)) return true;
      continue;
    }
    let entryPort: number | undefined;
    const withPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (withPort) {
      entry = withPort[1]!;
      entryPort = Number(withPort[2]);
    }
    entry = entry.replace(/^\[(.*)\]$/, '$1');
    if (entryPort !== undefined && entryPort !== port) continue;
    if (entry.startsWith('*.')) entry = entry.slice(1);
    if (net.isIP(entry) !== 0) {
      if (entry === host) return true;
    } else if (entry.startsWith('.')) {
      if (host.endsWith(entry)) return true;
    } else if (host === entry || host.endsWith(`.${entry}`)) {
      return true;
    }
  }
  return false;
}

function isLoopback(host: string): boolean {
  if (net.isIPv4(host)) return host.startsWith('127.');
  return host === '::1';
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

function inCidr4(host: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  if (!base || !bitsText || !net.isIPv4(base) || !net.isIPv4(host)) return false;
  const bits = Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const size = 2 ** (32 - bits);
  return Math.floor(ipv4ToInt(host) / size) === Math.floor(ipv4ToInt(base) / size);
}

/** The system's DNS servers as `addr:port`, for messages. */
function systemDnsServers(): string[] {
  return dns.getServers().map(withDnsPort);
}

function withDnsPort(server: string): string {
  if (net.isIPv4(server)) return `${server}:53`;
  if (net.isIPv6(server)) return `[${server}]:53`;
  return server;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

function answer(callback: LookupCallback, all: boolean, addresses: LookupAddress[]): void {
  if (all) callback(null, addresses);
  else callback(null, addresses[0]!.address, addresses[0]!.family);
}

/** Lookup through the system resolver (getaddrinfo: /etc/hosts, then DNS) with named failures. */
function systemLookup(servers: readonly string[]): LookupFunction {
  return ((hostname: string, options: dns.LookupOptions, callback: LookupCallback) => {
    dns.lookup(hostname, { family: options.family ?? 0, all: true }, (err, addresses) => {
      if (err) callback(new DnsLookupError(hostname, servers, err.code ?? 'ENOTFOUND'), []);
      else if (addresses.length === 0) callback(new DnsLookupError(hostname, servers, 'ENODATA'), []);
      else answer(callback, options.all === true, addresses);
    });
  }) as LookupFunction;
}

/**
 * Lookup through the configured DNS servers only (c-ares, no /etc/hosts): A first, AAAA when the
 * name has no A record. `localhost` is answered locally, as RFC 6761 asks.
 */
function resolverLookup(servers: readonly string[], timeoutMs: number): LookupFunction {
  // c-ares doubles the timeout on its second try: t + 2t stays within the connect limit.
  const resolver = new dns.promises.Resolver({ timeout: Math.max(50, Math.floor(timeoutMs / 3)), tries: 2 });
  resolver.setServers([...servers]);
  return ((hostname: string, options: dns.LookupOptions, callback: LookupCallback) => {
    const all = options.all === true;
    if (hostname === 'localhost') {
      answer(callback, all, [{ address: '127.0.0.1', family: 4 }]);
      return;
    }
    const resolve = async (): Promise<LookupAddress[]> => {
      const order: (4 | 6)[] = options.family === 6 ? [6] : options.family === 4 ? [4] : [4, 6];
      let lastCode = 'ENODATA';
      for (const family of order) {
        try {
          const found = family === 4 ? await resolver.resolve4(hostname) : await resolver.resolve6(hostname);
          if (found.length > 0) return found.map((address) => ({ address, family }));
        } catch (e) {
          lastCode = (e as NodeJS.ErrnoException).code ?? 'EBADRESP';
          if (lastCode !== 'ENODATA') break;
        }
      }
      throw new DnsLookupError(hostname, servers, lastCode, lastCode === 'ETIMEOUT' ? timeoutMs : undefined);
    };
    resolve().then(
      (addresses) => answer(callback, all, addresses),
      (e: NodeJS.ErrnoException) => callback(e, []),
    );
  }) as LookupFunction;
}
