import dns, { type LookupAddress } from 'node:dns';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import got, {
  type Options as GotOptions,
  type Request as GotRequest,
  HTTPError,
  MaxRedirectsError,
  type PlainResponse,
  type RequestError,
  type RetryObject,
} from 'got';
import { HttpsProxyAgent } from 'hpagent';
import { ClgwError } from '../errors.js';
import {
  type ByteRange,
  ByteRangesParser,
  byterangesBoundary,
  PART_OVERHEAD_BYTES,
  type PartSink,
} from './byteranges.js';
import type { Clock } from './clock.js';
import { type BodyLimits, type BodySink, BodyWatch } from './http-body.js';
import {
  baseDetails,
  DnsLookupError,
  displayUrl,
  type FailureContext,
  hostPort,
  httpStatus,
  mapHttpError,
  sizeExceeded,
  timedOut,
  truncated,
} from './http-errors.js';
import { GarbageGauge } from './memory.js';
import type { RateBudget } from './rate-budget.js';
import { contextTrusting } from './trust.js';

export type { BodySink } from './http-body.js';
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
  /** Limit of each connection phase (DNS, TCP, TLS, sending the request); default 10 s. */
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
  /**
   * Holds artifact bodies (openStream, receive, receiveRange) to this budget; compat.yaml and its
   * signature are small and not held. Time held is not counted against the server by the idle
   * and throughput limits. Default: none.
   */
  rateBudget?: RateBudget;
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
   * the body from `offset` is handed to `sink` piece by piece straight from got's stream, each
   * piece valid only during the call, with no stream of ours in between. `onStart(start)` is told
   * where the body really starts before the first piece. Resolves once every piece was taken;
   * fails as openStream and its stream do.
   */
  receive(
    url: string,
    opts: { offset?: number; expectedSize: number; signal?: AbortSignal },
    onStart: (start: number) => void,
    sink: BodySink,
  ): Promise<void>;
  /**
   * Bytes `start…end` (inclusive) of an artifact of `size` bytes, one single-range request
   * (adaptive updates), handed to `sink` as receive() does — on a kept-alive connection, so that
   * a delta's hundreds of ranges share a few handshakes. RANGE_NOT_SUPPORTED when the server
   * answers with the whole file (200) or another range; SIZE_EXCEEDED or ARTIFACT_TRUNCATED as above.
   */
  receiveRange(
    url: string,
    opts: { start: number; end: number; size: number; signal?: AbortSignal },
    sink: BodySink,
  ): Promise<void>;
  /**
   * Several ranges of an artifact of `size` bytes in one request (`Range: bytes=a-b,c-d,…`), each
   * part handed to `parts(i)` as it arrives: one round trip for what would be many. The ranges
   * must ascend without overlapping. RANGE_NOT_SUPPORTED (not transient, `details.multipart`)
   * when the server answers otherwise than with exactly those parts in that order — the whole
   * file (200, given up at once), one merged range, other parts; the caller then asks range by
   * range. Network failures as receiveRange's.
   */
  receiveRanges(
    url: string,
    opts: { ranges: readonly ByteRange[]; size: number; signal?: AbortSignal },
    parts: (index: number) => PartSink,
  ): Promise<void>;
}

const MAX_REDIRECTS = 3;
/** Idle connections kept per server (a delta keeps at most four requests in flight)… */
const MAX_IDLE_SOCKETS = 4;
/** …each closed after this long unused, before a server's usual keep-alive timeout (5 s and up). */
const IDLE_SOCKET_MS = 4000;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const USER_AGENT = 'clgw-agent';
/**
 * What is read of an error's body (a 404 or 503 page) of a small document: got reads it whole
 * before it decides on a retry, and a server could send one without end. Past this the request
 * is given up and its status reported, without a retry.
 */
const ERROR_BODY_BYTES = 64 * 1024;

/**
 * Builds the HTTPS client. Fails with PROXY_INVALID when the configured or environment proxy is not
 * a usable URL, so a bad setting shows up at start and not in the middle of an update.
 *
 * Every request is made by `got`: its connection phase limits (DNS lookup, TCP connect, TLS
 * handshake, sending the request: connectTimeoutMs each; the response head: responseTimeoutMs),
 * its redirects (with our rule: HTTPS on the same host and port only), and for compat.yaml and its
 * signature its retries with exponential backoff. On top of it: the body limits got has no notion
 * of (a size cap, an idle limit and a minimum throughput that do not count time our own disk holds
 * the body back), and the mapping of every failure to a ClgwError that names its cause.
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
  const budget = options.rateBudget;

  // One secure context for every connection, built once.
  const secureContext = options.ca === undefined ? undefined : contextTrusting(options.ca.toString());
  // Connections are kept between requests (compat.yaml and its signature; a delta's ranges, the
  // pack and the index), at most MAX_IDLE_SOCKETS idle, each closed after IDLE_SOCKET_MS unused.
  // The agent's options win over a request's, so the secure context reaches every TLS connection.
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

  /** What every request shares. No retries unless a request asks (getBuffer, a stale connection). */
  const request = got.extend({
    headers: { 'user-agent': USER_AGENT, 'accept-encoding': 'identity' },
    decompress: false,
    http2: false,
    dnsLookup: lookup as GotOptions['dnsLookup'],
    maxRedirects: MAX_REDIRECTS,
    timeout: {
      lookup: connectTimeoutMs,
      connect: connectTimeoutMs,
      secureConnect: connectTimeoutMs,
      send: connectTimeoutMs,
      response: responseTimeoutMs,
    },
    retry: { limit: 0 },
  });

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
   * Bounds the whole way to the response head of one request (one of got's, per attempt and
   * redirect). got arms its phase limits only on a socket it sees connecting; a proxy tunnel hands
   * over one the CONNECT already connected, and the CONNECT itself runs before got sees a socket.
   */
  function backstop(req: ClientRequest, ctx: FailureContext): void {
    const done = new AbortController();
    clock.sleep(connectTimeoutMs + responseTimeoutMs, done.signal).then(
      () => {
        const timings = (req as { timings?: FailureContext['timings'] }).timings;
        const phase = !timings?.connect ? 'connect' : !timings.secureConnect ? 'tls' : 'response';
        req.destroy(timedOut(phase, phase === 'response' ? responseTimeoutMs : connectTimeoutMs, ctx));
      },
      () => undefined,
    );
    const disarm = () => done.abort();
    req.once('response', disarm);
    req.once('close', disarm);
  }

  /** got's error (or ours, carried in its cause) as a ClgwError about the request of `ctx`. */
  function mapGotError(e: unknown, ctx: FailureContext): ClgwError {
    if (e instanceof MaxRedirectsError) {
      const res = e.response as PlainResponse;
      return redirectRefused(
        new URL(res.url),
        res.headers.location ?? '',
        `more than ${MAX_REDIRECTS} redirects`,
      );
    }
    if (e instanceof HTTPError) {
      const res = e.response as PlainResponse;
      return httpStatus(res.statusCode, res.statusMessage, { ...ctx, url: new URL(res.url) });
    }
    const timings = (e as Partial<RequestError>).timings;
    return mapHttpError(e, timings ? { ...ctx, timings } : ctx);
  }

  /**
   * An artifact request in got's stream mode, up to its response head (any status; redirects
   * followed by our rule). The body stays in got's stream, paused until the caller reads it;
   * errors after the head wait in the exchange for the caller's body reader. A request sent on a
   * kept connection that the server had closed meanwhile is sent again on a new one (got's retry,
   * for that case only): it never reached the server.
   */
  function open(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<Exchange> {
    const { agent, proxy } = route(url);
    const ctx = contextFor(url, proxy);
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<Exchange>((resolve, reject) => {
      let current: GotRequest;
      let exchange: Exchange | undefined;
      const onAbort = () => current.destroy(asError(signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
      // got's stream is not destroyed when its body ends (no 'close' then): the caller says when
      // it is done, and only then does the signal, which may outlive hundreds of requests (an
      // adaptive update's), let go of the request.
      const release = () => signal.removeEventListener('abort', onAbort);
      const attach = (req: GotRequest) => {
        current = req;
        req.on('request', (native: ClientRequest) => backstop(native, ctx));
        req.on('redirect', (updated: GotOptions) => {
          ctx.url = new URL(updated.url as URL);
        });
        req.once('retry', (_count: number, _error: unknown, again: () => GotRequest) => attach(again()));
        req.on('error', (e: unknown) => {
          if (!exchange) {
            release();
            reject(signal.aborted ? signal.reason : mapGotError(e, ctx));
            return;
          }
          if (exchange.onError) exchange.onError(e);
          else exchange.error ??= e;
        });
        req.once('response', (res: PlainResponse) => {
          ctx.timings = req.timings;
          // A redirect got did not follow is one our rule refuses.
          const refusal = REDIRECT_STATUSES.has(res.statusCode)
            ? redirectRefusal(url, ctx.url, res.headers.location, res.statusCode)
            : undefined;
          if (refusal) {
            release();
            req.destroy();
            reject(refusal);
            return;
          }
          ctx.inBody = true;
          exchange = {
            req,
            ctx,
            status: res.statusCode,
            statusMessage: res.statusMessage,
            headers: res.headers,
            close: (destroy) => {
              release();
              if (destroy && !req.destroyed) req.destroy();
            },
          };
          resolve(exchange);
        });
      };
      attach(
        request.stream(url, {
          headers,
          agent: { https: agent },
          followRedirect: follows(url),
          throwHttpErrors: false,
          retry: {
            limit: MAX_IDLE_SOCKETS + 1,
            calculateDelay: ({ error }: RetryObject) => (staleConnection(error) ? 1 : 0),
          },
        }),
      );
    });
  }

  /**
   * Hands the body of an exchange to `sink` as got's stream delivers it, holding the stream while
   * the sink's promise is pending; fails with SIZE_EXCEEDED rather than deliver a byte past
   * maxBytes, ARTIFACT_TRUNCATED when it ends before `expected`, TIMED_OUT (idle, throughput), the
   * request's error, or what the sink threw.
   */
  function pump(
    ex: Exchange,
    limits: { maxBytes: number; expected: number },
    sink: BodySink,
    signal: AbortSignal,
  ): Promise<void> {
    const { req, ctx } = ex;
    return new Promise<void>((resolve, reject) => {
      const gauge = new GarbageGauge();
      let waiting = false;
      let ended = false;
      let finished = false;
      const watch = new BodyWatch(
        {
          clock,
          ctx,
          idleMs: idleTimeoutMs,
          minBytesPerSecond,
          windowMs,
          expected: limits.expected,
        },
        () => waiting,
        (e) => finish(e),
      );
      const finish = (e?: unknown): void => {
        if (finished) return;
        finished = true;
        watch.stop();
        req.off('data', onData);
        ex.close(e !== undefined);
        if (e === undefined) resolve();
        else reject(e);
      };
      /** The server is done and the sink has taken every piece: complete, or cut short. */
      const complete = () => {
        if (watch.received >= limits.expected) finish();
        else
          finish(
            truncated(
              { ...ctx, received: watch.received, expected: limits.expected },
              'the server ended the body',
            ),
          );
      };
      const onData = (chunk: Buffer) => {
        if (finished) return;
        if (watch.received + chunk.length > limits.maxBytes) {
          const how = `the server sent more than ${limits.maxBytes} bytes`;
          finish(sizeExceeded({ ...ctx, received: watch.received }, limits.maxBytes, how));
          return;
        }
        watch.count(chunk.length);
        let wait: Promise<void> | undefined;
        try {
          wait = sink.data(chunk);
        } catch (e) {
          finish(e);
          return;
        }
        gauge.received(chunk.length);
        const hold = budget?.delay(chunk.length) ?? 0;
        if (hold > 0) {
          const held = clock.sleep(hold, signal);
          wait = wait ? Promise.all([wait, held]).then(() => undefined) : held;
        }
        if (!wait) return;
        waiting = true;
        req.pause();
        wait.then(
          () => {
            waiting = false;
            if (finished) return;
            if (ended) complete();
            else req.resume();
          },
          (e: unknown) => finish(e),
        );
      };
      ex.onError = (e) =>
        finish(
          signal.aborted
            ? asError(signal.reason)
            : mapGotError(e, { ...ctx, received: watch.received, expected: limits.expected }),
        );
      if (ex.error !== undefined) ex.onError(ex.error);
      req.on('data', onData);
      req.once('end', () => {
        ended = true;
        if (!waiting) complete();
      });
    });
  }

  /** Wires the body of an exchange through a monitor that enforces size, idle and throughput limits. */
  function monitorBody(ex: Exchange, limits: { maxBytes: number; expected: number }, signal: AbortSignal) {
    const monitor = new BodyMonitor({
      clock,
      ctx: ex.ctx,
      maxBytes: limits.maxBytes,
      expected: limits.expected,
      idleMs: idleTimeoutMs,
      minBytesPerSecond,
      windowMs,
      budget,
    });
    ex.onError = (e) => {
      monitor.destroy(
        signal.aborted
          ? asError(signal.reason)
          : mapGotError(e, { ...ex.ctx, received: monitor.received, expected: limits.expected }),
      );
    };
    if (ex.error !== undefined) ex.onError(ex.error);
    monitor.once('close', () => ex.close(true));
    ex.req.pipe(monitor);
    return monitor;
  }

  type Fetched = { changed: false } | { changed: true; body: Buffer; validators: Validators | undefined };

  /**
   * A small document (compat.yaml, its signature) by got's promise API, with got's retries of
   * transient failures: our mapping says which are (5xx, 408, 429, timeouts, resets, DNS), the
   * delay starts at retryDelayMs and doubles, and no retry starts that would end past the deadline.
   * The body is capped at maxBytes (an error page at ERROR_BODY_BYTES) and watched for idle and
   * throughput through got's progress events; a body that breaks a limit cancels the request.
   */
  async function fetchDocument(
    url: string,
    opts: { maxBytes: number; deadlineMs?: number; signal?: AbortSignal },
    validators?: Validators,
  ): Promise<Fetched> {
    const target = parseHttpsUrl(url);
    opts.signal?.throwIfAborted();
    const { agent, proxy } = route(target);
    const ctx = contextFor(target, proxy);
    const maxBytes = opts.maxBytes;
    const stop = new AbortController();
    const deadline = new AbortController();
    const signal = AbortSignal.any([deadline.signal, ...(opts.signal ? [opts.signal] : [])]);
    const deadlineAt = opts.deadlineMs === undefined ? undefined : clock.now() + opts.deadlineMs;
    if (opts.deadlineMs !== undefined) {
      const limit = opts.deadlineMs;
      clock.sleep(limit, stop.signal).then(
        () => deadline.abort(timedOut('deadline', limit, ctx)),
        () => undefined,
      );
    }
    const conditions: Record<string, string> = validators?.etag
      ? { 'if-none-match': validators.etag }
      : validators?.lastModified
        ? { 'if-modified-since': validators.lastModified }
        : {};
    /** Why we cancelled the request ourselves: a body over its limit, too slow, or stalled. */
    let refusal: Error | undefined;
    /** Node's request of the attempt running now, and the watch of its body once it flows. */
    let native: (ClientRequest & { res?: IncomingMessage }) | undefined;
    let watch: BodyWatch | undefined;
    const reply = request.get(target, {
      headers: conditions,
      agent: { https: agent },
      followRedirect: follows(target),
      responseType: 'buffer',
      signal,
      hooks: {
        beforeRedirect: [
          (updated) => {
            ctx.url = new URL(updated.url as URL);
          },
        ],
      },
      retry: {
        limit: retries,
        calculateDelay: ({ attemptCount, error }: RetryObject) => {
          if (signal.aborted || refusal || attemptCount > retries) return 0;
          if (!mapGotError(error, ctx).transient) return 0;
          const delay = Math.min(30_000, retryDelayMs * 2 ** (attemptCount - 1));
          return deadlineAt !== undefined && clock.now() + delay >= deadlineAt ? 0 : delay;
        },
      },
    });
    const cancel = (e: Error) => {
      refusal ??= e;
      reply.cancel();
    };
    reply.on('request', (req: ClientRequest) => {
      native = req;
      watch?.stop();
      watch = undefined;
      ctx.inBody = false;
      backstop(req, ctx);
    });
    reply.on('downloadProgress', ({ transferred, total }: { transferred: number; total?: number }) => {
      const status = native?.res?.statusCode ?? 0;
      ctx.inBody = true;
      ctx.received = transferred;
      if (status < 200 || status > 299) {
        // Only the status matters: read enough for got to settle a retry, no more.
        if (transferred > ERROR_BODY_BYTES) {
          const res = native?.res;
          cancel(statusFailure(target, ctx.url, status, res?.statusMessage, res?.headers.location, ctx));
        }
        return;
      }
      if (total !== undefined && total > maxBytes) {
        cancel(sizeExceeded(ctx, maxBytes, `the server declares ${total} bytes`));
        return;
      }
      if (transferred > maxBytes) {
        cancel(sizeExceeded(ctx, maxBytes, `the server sent more than ${maxBytes} bytes`));
        return;
      }
      watch ??= new BodyWatch(
        { clock, ctx, idleMs: idleTimeoutMs, minBytesPerSecond, windowMs, expected: total },
        () => false,
        cancel,
      );
      if (transferred > watch.received) watch.count(transferred - watch.received);
    });
    try {
      const res = await reply;
      if (res.statusCode === 304 && Object.keys(conditions).length > 0) return { changed: false };
      if (res.statusCode !== 200) {
        const current = new URL(res.url);
        throw statusFailure(target, current, res.statusCode, res.statusMessage, res.headers.location, ctx);
      }
      const etag = res.headers.etag;
      const lastModified = res.headers['last-modified'];
      return {
        changed: true,
        body: res.body,
        validators:
          etag || lastModified
            ? { ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) }
            : undefined,
      };
    } catch (e) {
      if (e instanceof ClgwError) throw e;
      if (signal.aborted) throw signal.reason;
      if (refusal) throw refusal;
      throw mapGotError(e, ctx);
    } finally {
      stop.abort();
      watch?.stop();
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

  /** The artifact from `offset`, its response checked: where it really starts, and the exchange. */
  async function openArtifact(
    target: URL,
    offset: number,
    size: number,
    signal: AbortSignal,
  ): Promise<{ ex: Exchange; start: number }> {
    const ex = await open(target, offset > 0 ? { range: `bytes=${offset}-` } : {}, signal);
    try {
      const start = checkArtifactResponse(ex, offset, size);
      ex.ctx.expected = size - start;
      return { ex, start };
    } catch (e) {
      ex.close(true);
      throw e;
    }
  }

  return {
    async getBuffer(url, opts) {
      const fetched = await fetchDocument(url, opts);
      // Asked without validators, the answer always carries the body.
      return fetched.changed ? fetched.body : Buffer.alloc(0);
    },

    getIfChanged: (url, opts) => fetchDocument(url, opts, opts.validators),

    async openStream(url, opts) {
      const size = opts.expectedSize;
      const offset = opts.offset ?? 0;
      const target = artifactRequest(url, offset, size);
      // Nothing left to fetch: a Range of `bytes=<size>-` would only earn a 416.
      if (offset === size) return { stream: Readable.from([]), start: size };
      const signal = opts.signal ?? new AbortController().signal;
      const { ex, start } = await openArtifact(target, offset, size, signal);
      const remaining = size - start;
      return { stream: monitorBody(ex, { maxBytes: remaining, expected: remaining }, signal), start };
    },

    async receive(url, opts, onStart, sink) {
      const size = opts.expectedSize;
      const offset = opts.offset ?? 0;
      const target = artifactRequest(url, offset, size);
      if (offset === size) {
        onStart(size);
        return;
      }
      const signal = opts.signal ?? new AbortController().signal;
      const { ex, start } = await openArtifact(target, offset, size, signal);
      onStart(start);
      await pump(ex, { maxBytes: size - start, expected: size - start }, sink, signal);
    },

    async receiveRange(url, opts, sink) {
      const target = parseHttpsUrl(url);
      const { start, end, size } = opts;
      checkRequestedRange(target, { start, end }, size, -1);
      const signal = opts.signal ?? new AbortController().signal;
      const length = end - start + 1;
      const ex = await open(target, { range: `bytes=${start}-${end}` }, signal);
      try {
        checkRangeResponse(ex, start, end, size);
      } catch (e) {
        ex.close(true);
        throw e;
      }
      ex.ctx.expected = length;
      await pump(ex, { maxBytes: length, expected: length }, sink, signal);
    },

    async receiveRanges(url, opts, parts) {
      const target = parseHttpsUrl(url);
      const { ranges, size } = opts;
      let payload = 0;
      for (const [i, r] of ranges.entries()) {
        checkRequestedRange(target, r, size, i === 0 ? -1 : (ranges[i - 1] as ByteRange).end);
        payload += r.end - r.start + 1;
      }
      const signal = opts.signal ?? new AbortController().signal;
      const spec = ranges.map((r) => `${r.start}-${r.end}`).join(',');
      const ex = await open(target, { range: `bytes=${spec}` }, signal);
      const what = `${ranges.length} ranges of ${displayUrl(target)}`;
      let parser: ByteRangesParser;
      const maxBytes = payload + (ranges.length + 1) * PART_OVERHEAD_BYTES;
      let expected = payload;
      try {
        const boundary = byterangesBoundary(ex.headers['content-type']);
        if (ex.status === 200 || (ex.status === 206 && boundary === undefined)) {
          throw new ClgwError(
            'RANGE_NOT_SUPPORTED',
            `${hostPort(ex.ctx.url)} answered the request for ${what} with ${ex.status === 200 ? 'the whole file (HTTP 200)' : `one range (Content-Range "${ex.headers['content-range'] ?? ''}")`}: it does not serve several ranges at once`,
            { transient: false, details: { ...baseDetails(ex.ctx), status: ex.status, multipart: true } },
          );
        }
        if (ex.status !== 206) throw httpStatus(ex.status, ex.statusMessage, ex.ctx);
        const declared = contentLength(ex.headers);
        if (declared !== undefined) {
          if (declared > maxBytes)
            throw sizeExceeded(ex.ctx, maxBytes, `the server declares ${declared} bytes`);
          if (declared < payload) throw sizeMismatch(ex.ctx, declared, payload);
          expected = declared;
        }
        parser = new ByteRangesParser(boundary as string, ranges, size, parts, what);
      } catch (e) {
        ex.close(true);
        throw e;
      }
      ex.ctx.expected = expected;
      await pump(ex, { maxBytes, expected }, parser, signal);
      parser.end();
    },
  };
}

/**
 * A response other than the one asked for: a redirect our rule refuses (REDIRECT_REFUSED), else
 * HTTP_STATUS for the URL that gave it.
 */
function statusFailure(
  original: URL,
  current: URL,
  status: number,
  statusMessage: string | undefined,
  location: string | undefined,
  ctx: FailureContext,
): ClgwError {
  const refusal = REDIRECT_STATUSES.has(status)
    ? redirectRefusal(original, current, location, status)
    : undefined;
  return refusal ?? httpStatus(status, statusMessage, { ...ctx, url: current });
}

/** got's redirect rule for a request of `original`: follow only what redirectRefusal allows. */
function follows(original: URL): (res: PlainResponse) => boolean {
  return (res) =>
    REDIRECT_STATUSES.has(res.statusCode) &&
    redirectRefusal(original, new URL(res.url), res.headers.location, res.statusCode) === undefined;
}

/**
 * A request on a kept connection that the server closed before answering (its keep-alive timeout
 * ran out as the request went): it never reached the server, and is safe to send again.
 */
function staleConnection(error: RequestError): boolean {
  return (
    error.response === undefined &&
    error.request?.reusedSocket === true &&
    (error.code === 'ECONNRESET' || error.code === 'EPIPE')
  );
}

/** INVALID_REQUEST unless bytes start…end lie in an artifact of `size` bytes, after byte `after`. */
function checkRequestedRange(target: URL, { start, end }: ByteRange, size: number, after: number): void {
  if (
    !Number.isSafeInteger(start) ||
    !Number.isSafeInteger(end) ||
    start <= after ||
    end < start ||
    end >= size
  ) {
    throw new ClgwError(
      'INVALID_REQUEST',
      `cannot fetch bytes ${start}-${end} of ${displayUrl(target)}: outside 0…${size - 1}${after >= 0 ? ` or not after byte ${after}` : ''}`,
      { details: { url: displayUrl(target), start, end, expectedSize: size } },
    );
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

/** A request of got's stream mode whose response head arrived; its body waits in `req`. */
interface Exchange {
  req: GotRequest;
  ctx: FailureContext;
  status: number;
  statusMessage?: string | undefined;
  headers: IncomingHttpHeaders;
  /** An error that arrived after the headers but before the body monitor was attached. */
  error?: unknown;
  onError?: (e: unknown) => void;
  /**
   * The caller is done with it: its signal is no longer watched for it, and with `destroy` the
   * request is given up (its connection closed, unless its body was read to the end).
   */
  close(destroy: boolean): void;
}

interface MonitorOptions extends BodyLimits {
  /** Hard cap: a byte past it fails the stream with SIZE_EXCEEDED, and is never delivered. */
  maxBytes: number;
  /** Exact length: an end before it fails the stream with ARTIFACT_TRUNCATED. */
  expected?: number;
  /** Pieces are passed on no faster than this budget allows. */
  budget?: RateBudget | undefined;
}

/**
 * Passes body bytes through unchanged while counting them, and fails the stream when the server
 * sends too much, stops sending, or sends too slowly (BodyWatch).
 */
class BodyMonitor extends Transform {
  private readonly watch: BodyWatch;
  /** A piece held back by the rate budget: the wait is ours, not the server's. */
  private holding = false;

  constructor(private readonly o: MonitorOptions) {
    super({ highWaterMark: 64 * 1024 });
    this.watch = new BodyWatch(
      o,
      () => this.holding || this.readableLength >= this.readableHighWaterMark,
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
    const hold = this.o.budget?.delay(chunk.length) ?? 0;
    if (hold <= 0) {
      done(null, chunk);
      return;
    }
    this.holding = true;
    this.o.clock.sleep(hold).then(() => {
      this.holding = false;
      if (!this.destroyed) done(null, chunk);
    });
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
 * Why a redirect answer (HTTP `status`, `location`) to a request for `current`, first asked as
 * `original`, is not followed; undefined when it may be: only HTTPS on the same host and port.
 * (got counts the hops: more than MAX_REDIRECTS is its MaxRedirectsError.)
 */
function redirectRefusal(
  original: URL,
  current: URL,
  location: string | undefined,
  status: number,
): ClgwError | undefined {
  if (!location) {
    return new ClgwError(
      'HTTP_STATUS',
      `GET ${displayUrl(current)} returned HTTP ${status} without a Location header`,
      { details: { url: displayUrl(current), host: current.hostname, port: effectivePort(current), status } },
    );
  }
  let next: URL;
  try {
    next = new URL(location, current);
  } catch {
    return redirectRefused(current, location, 'the Location is not a valid URL');
  }
  if (next.protocol !== 'https:') {
    return redirectRefused(current, location, `it leaves HTTPS (${next.protocol.replace(':', '')})`);
  }
  if (next.hostname !== original.hostname || effectivePort(next) !== effectivePort(original)) {
    return redirectRefused(current, location, `it leaves the download server ${hostPort(original)}`);
  }
  return undefined;
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
