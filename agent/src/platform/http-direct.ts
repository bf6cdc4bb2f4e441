import type { IncomingHttpHeaders } from 'node:http';
import net, { type LookupFunction } from 'node:net';
import tls from 'node:tls';
import type { Clock } from './clock.js';
import { BodyWatch } from './http-body.js';
import {
  dnsFailure,
  type FailureContext,
  mapHttpError,
  sizeExceeded,
  timedOut,
  truncated,
} from './http-errors.js';

/**
 * Artifact bodies without Node's HTTP client: HTTP/1.1 GETs on TLS connections of our own whose
 * decrypted bytes land in one reused buffer per connection (`tls.connect`'s `onread`), handed to
 * the consumer as views of it. Node's client allocates a 16 KiB buffer per TLS record, copies each
 * body slice again in its parser, and passes it through two stream layers; for a 600 MB image
 * that is ~40,000 allocations whose garbage sits in memory until a collection, and half of the
 * download's CPU time (measured on the 2-vCPU development VM: 0.65 → 0.32 s of CPU per 512 MiB,
 * peak RSS 86 → 52 MiB for the transfer alone); an adaptive update's hundreds of Range requests
 * made the same garbage per request. Only what an artifact response needs is read: a status line,
 * headers, and a body delimited by Content-Length or the end of the connection; anything else
 * (chunked encoding) is left to Node's client by the caller. A connection whose response was
 * Content-Length-delimited and read to its end is kept for the next request to the same server
 * (at most MAX_IDLE of them, each closed after IDLE_MS unused): a delta's ranges, the pack and the
 * index then share a handful of handshakes.
 */

export interface DirectOptions {
  clock: Clock;
  lookup: LookupFunction;
  /** The trusted CAs; absent: Node's default root store. */
  secureContext: tls.SecureContext | undefined;
  connectTimeoutMs: number;
  responseTimeoutMs: number;
  idleTimeoutMs: number;
  minBytesPerSecond: number;
  minThroughputWindowMs: number;
  userAgent: string;
}

/** Where a body goes: a piece at a time, each valid only during the call. */
export interface BodySink {
  /** A returned promise holds the next piece back until it settles; a rejection or throw fails the body. */
  data(chunk: Buffer): Promise<void> | undefined;
}

export interface DirectResponse {
  ctx: FailureContext;
  status: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
  /**
   * Delivers the body to `sink` and resolves with its length once every piece was taken. Fails
   * with SIZE_EXCEEDED rather than deliver a byte past maxBytes, ARTIFACT_TRUNCATED when the
   * connection ends before `expected`, TIMED_OUT (idle, throughput), or the connection's error.
   */
  body(limits: { maxBytes: number; expected: number }, sink: BodySink): Promise<number>;
  /** Gives up the response (its body unread): the connection is closed. */
  close(): void;
}

/** Bytes of decrypted data per read: TLS hands over at most one 16 KiB record at a time. */
const READ_BUFFER = 16 * 1024;
/** The status line and headers of an artifact response are a few hundred bytes. */
const HEAD_LIMIT = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
/** Idle connections kept per client (a delta keeps at most four requests in flight)… */
const MAX_IDLE = 4;
/** …each closed after this long unused, before a server's usual keep-alive timeout (5 s and up). */
const IDLE_MS = 4000;

/**
 * Sends GETs on kept-alive connections of its own. The phase limits are those of the ordinary
 * client: DNS and TCP within connectTimeoutMs each, the TLS handshake too, the head within
 * responseTimeoutMs of the request being sent.
 */
export class DirectClient {
  private readonly idle: Connection[] = [];

  constructor(private readonly o: DirectOptions) {}

  /** Sends the GET and resolves with the response head. */
  async request(
    url: URL,
    headers: Record<string, string>,
    ctx: FailureContext,
    signal: AbortSignal,
  ): Promise<DirectResponse> {
    signal.throwIfAborted();
    const key = `${url.hostname}:${url.port || 443}`;
    for (;;) {
      const reused = this.take(key);
      const connection = reused ?? (await Connection.open(this.o, url, key, ctx, signal));
      try {
        return await connection.request(url, headers, ctx, signal, () => this.keep(connection));
      } catch (e) {
        // A kept connection the server closed while it was idle: the request never reached it.
        if (e instanceof StaleConnection) continue;
        throw e;
      }
    }
  }

  private take(key: string): Connection | undefined {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const c = this.idle[i] as Connection;
      if (c.key !== key) continue;
      this.idle.splice(i, 1);
      c.wake();
      return c;
    }
    return undefined;
  }

  private keep(connection: Connection): void {
    if (this.idle.length >= MAX_IDLE) (this.idle.shift() as Connection).socket.destroy();
    this.idle.push(connection);
    connection.sleep(() => {
      const at = this.idle.indexOf(connection);
      if (at >= 0) this.idle.splice(at, 1);
    });
  }
}

/** The server closed a kept connection before answering a request sent on it. */
class StaleConnection extends Error {}

/** One TLS connection and its read buffer; reads go to whichever request it serves. */
class Connection {
  /** What a read hands over now: to the head parser, the early queue, the body, or nothing. */
  private onRead: (chunk: Buffer) => boolean = () => false;
  /** Told once that the connection ended (`ended` says how). */
  private onEnd: () => void = () => undefined;
  /** How the connection ended: cleanly (no error) or with `error`; set once. */
  private ended: { error?: unknown } | undefined;
  /** Requests sent on it so far. */
  private served = 0;
  /** In the pool, between requests. */
  private idle = false;

  private constructor(
    private readonly o: DirectOptions,
    readonly socket: tls.TLSSocket,
    readonly key: string,
  ) {}

  /** Resolves once connected and secured, within the connection phases' limits. */
  static open(
    o: DirectOptions,
    url: URL,
    key: string,
    ctx: FailureContext,
    signal: AbortSignal,
  ): Promise<Connection> {
    const timings: NonNullable<FailureContext['timings']> = {};
    ctx.timings = timings;
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER);
    // `onread` is documented for tls.connect (Node ≥ 15) but missing from its type declarations.
    const options: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host,
      port: Number(url.port || 443),
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
      lookup: o.lookup,
      ...(o.secureContext ? { secureContext: o.secureContext } : {}),
      onread: {
        buffer: readBuffer,
        callback: (n: number) => c.onRead(readBuffer.subarray(0, n)),
      },
    };
    const socket = tls.connect(options);
    const c = new Connection(o, socket, key);
    const end = (e?: unknown) => {
      if (c.ended) return;
      c.ended = e === undefined ? {} : { error: e };
      c.onEnd();
    };
    socket.on('error', (e) => end(e));
    // With `onread` the socket's readable side is not consumed: 'end' may not come, 'close' does.
    socket.once('end', () => end());
    socket.once('close', () => end());
    // Armed only while the connection idles in the pool (sleep).
    socket.on('timeout', () => socket.destroy());

    return new Promise<Connection>((resolve, reject) => {
      const onAbort = () => socket.destroy(asError(signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
      const phase = new Phase(o.clock, socket);
      const connectPhase = () =>
        phase.arm(o.connectTimeoutMs, () => timedOut('connect', o.connectTimeoutMs, ctx));
      if (net.isIP(host) === 0) {
        phase.arm(o.connectTimeoutMs, () =>
          dnsFailure(url.hostname, ctx.dnsServers, 'ETIMEOUT', ctx, o.connectTimeoutMs),
        );
        socket.once('lookup', () => {
          timings.lookup = o.clock.now();
          connectPhase();
        });
      } else connectPhase();
      socket.once('connect', () => {
        timings.connect = o.clock.now();
        phase.arm(o.connectTimeoutMs, () => timedOut('tls', o.connectTimeoutMs, ctx));
      });
      socket.once('secureConnect', () => {
        timings.secureConnect = o.clock.now();
        phase.disarm();
        signal.removeEventListener('abort', onAbort);
        c.onEnd = () => undefined;
        resolve(c);
      });
      c.onEnd = () => {
        phase.disarm();
        signal.removeEventListener('abort', onAbort);
        reject(signal.aborted ? asError(signal.reason) : mapHttpError(c.ended?.error ?? hangUp(), ctx));
      };
    });
  }

  /** Idle in the pool: reading on, so that the server's close is seen; `gone` when it closes. */
  sleep(gone: () => void): void {
    this.idle = true;
    this.onRead = () => {
      // Nothing may come unasked on an HTTP/1.1 connection.
      this.socket.destroy();
      return false;
    };
    this.onEnd = () => {
      this.socket.destroy();
      gone();
    };
    this.socket.setTimeout(IDLE_MS);
    this.socket.unref();
    // Kept from inside a read, whose `false` pauses the socket after this returns; taken again
    // meanwhile, it reads for its request (which may be holding its body back).
    setImmediate(() => {
      if (this.idle) this.socket.resume();
    });
  }

  /** Taken from the pool for a request. */
  wake(): void {
    this.idle = false;
    this.socket.setTimeout(0);
    this.socket.ref();
  }

  /**
   * Sends one GET and resolves with its head. `keep` takes the connection back once the body was
   * read to its Content-Length and both sides allow another request on it; StaleConnection when a
   * kept connection turns out closed before any byte of the answer.
   */
  request(
    url: URL,
    headers: Record<string, string>,
    ctx: FailureContext,
    signal: AbortSignal,
    keep: () => void,
  ): Promise<DirectResponse> {
    const { socket, o } = this;
    const reused = this.served++ > 0;
    if (reused) {
      const now = o.clock.now();
      ctx.timings = { connect: now, secureConnect: now };
      if (this.ended) return Promise.reject(new StaleConnection());
    }
    const timings = ctx.timings ?? {};
    const onAbort = () => socket.destroy(asError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    const detach = () => signal.removeEventListener('abort', onAbort);
    const mapped = (e: unknown, extra: Partial<FailureContext> = {}) =>
      signal.aborted ? asError(signal.reason) : mapHttpError(e, { ...ctx, ...extra });
    const phase = new Phase(o.clock, socket);

    return new Promise<DirectResponse>((resolve, reject) => {
      const lines = [
        `GET ${url.pathname}${url.search} HTTP/1.1`,
        `host: ${url.host}`,
        `user-agent: ${o.userAgent}`,
        'accept-encoding: identity',
        ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
      ];
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      // A kept connection was left paused by the last read of the body before.
      socket.resume();
      phase.arm(o.responseTimeoutMs, () => timedOut('response', o.responseTimeoutMs, ctx));

      let head = Buffer.alloc(0);
      /** Body bytes read before body() was called (copies: the read buffer is reused). */
      const early: Buffer[] = [];
      this.onEnd = () => {
        phase.disarm();
        detach();
        socket.destroy();
        const error = this.ended?.error;
        const reset = error === undefined || RESETS.has((error as { code?: string }).code ?? '');
        if (reused && head.length === 0 && reset && !signal.aborted) reject(new StaleConnection());
        // Before the head: the server hung up on the request (as Node's client reports it).
        else reject(mapped(error ?? hangUp()));
      };
      this.onRead = (chunk) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf(HEAD_END);
        if (end < 0) {
          if (head.length <= HEAD_LIMIT) return true;
          socket.destroy(protocolError(`response headers larger than ${HEAD_LIMIT} bytes`));
          return false;
        }
        let parsed: ReturnType<typeof parseHead>;
        try {
          parsed = parseHead(head.toString('latin1', 0, end));
        } catch (e) {
          socket.destroy(e as Error);
          return false;
        }
        phase.disarm();
        timings.response = o.clock.now();
        ctx.inBody = true;
        if (head.length > end + HEAD_END.length) early.push(head.subarray(end + HEAD_END.length));
        // Until body() is called, reads are kept, and the socket stops reading after this one.
        this.onRead = (more) => {
          early.push(Buffer.from(more));
          return false;
        };
        this.onEnd = () => undefined;
        const { version, ...response } = parsed;
        const length = response.headers['content-length'];
        /** The length that ends the body on a connection both sides keep open, if any. */
        const keptLength =
          version === '1.1' &&
          length !== undefined &&
          /^\d+$/.test(length) &&
          !/(^|,)\s*close\s*(,|$)/i.test(response.headers.connection ?? '')
            ? Number(length)
            : undefined;
        resolve({
          ctx,
          ...response,
          close: () => {
            detach();
            socket.destroy();
          },
          body: (limits, sink) => receiveBody(limits, sink, keptLength),
        });
        return false;
      };

      const receiveBody = (
        limits: { maxBytes: number; expected: number },
        sink: BodySink,
        keptLength: number | undefined,
      ): Promise<number> =>
        new Promise<number>((done, fail) => {
          let waiting = false;
          let finished = false;
          const watch = new BodyWatch(
            {
              clock: o.clock,
              ctx,
              idleMs: o.idleTimeoutMs,
              minBytesPerSecond: o.minBytesPerSecond,
              windowMs: o.minThroughputWindowMs,
              expected: limits.expected,
            },
            () => waiting,
            (e) => finish(e),
          );
          const failure = () => ({ received: watch.received, expected: limits.expected });
          const finish = (e?: unknown): void => {
            if (finished) return;
            finished = true;
            watch.stop();
            detach();
            if (e === undefined && watch.received === keptLength && early.length === 0 && !this.ended) {
              this.onRead = () => false;
              this.onEnd = () => undefined;
              keep();
            } else socket.destroy();
            if (e === undefined) done(watch.received);
            else fail(e);
          };
          /** Hands one piece to the sink; false when the sink asked to wait or the body is over. */
          const deliver = (chunk: Buffer): boolean => {
            if (watch.received + chunk.length > limits.maxBytes) {
              const how = `the server sent more than ${limits.maxBytes} bytes`;
              finish(sizeExceeded({ ...ctx, received: watch.received }, limits.maxBytes, how));
              return false;
            }
            watch.count(chunk.length);
            let wait: Promise<void> | undefined;
            try {
              wait = sink.data(chunk);
            } catch (e) {
              finish(e);
              return false;
            }
            if (!wait) return settle();
            waiting = true;
            wait.then(
              () => {
                waiting = false;
                if (drain()) socket.resume();
              },
              (e: unknown) => finish(e),
            );
            return false;
          };
          /** After a piece was taken: is the body complete, cut short, or does reading go on? */
          const settle = (): boolean => {
            if (finished) return false;
            if (watch.received >= limits.expected) {
              finish();
              return false;
            }
            if (early.length > 0) return true;
            if (this.ended) {
              const error = this.ended.error;
              finish(
                error !== undefined
                  ? mapped(error, failure())
                  : truncated({ ...ctx, ...failure() }, 'the server ended the body'),
              );
              return false;
            }
            return true;
          };
          /** Delivers what was read while the sink waited; true when the socket may read on. */
          const drain = (): boolean => {
            while (early.length > 0) {
              if (!deliver(early.shift() as Buffer)) return false;
            }
            return settle();
          };
          this.onRead = (chunk) => {
            if (finished) return false;
            // TLS may hand over the rest of a record after a pause: keep it for later.
            if (waiting) {
              early.push(Buffer.from(chunk));
              return false;
            }
            return deliver(chunk);
          };
          this.onEnd = () => {
            if (!waiting && !finished) settle();
          };
          if (drain()) socket.resume();
        });
    });
  }
}

/** The limit of the phase running now (one at a time): the socket is destroyed when it passes. */
class Phase {
  private current: AbortController | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly socket: tls.TLSSocket,
  ) {}

  arm(ms: number, error: () => Error): void {
    this.current?.abort();
    const current = new AbortController();
    this.current = current;
    this.clock.sleep(ms, current.signal).then(
      () => this.socket.destroy(error()),
      () => undefined,
    );
  }

  disarm(): void {
    this.current?.abort();
  }
}

/** Status line and headers of an HTTP/1.x response; names lower-cased, repeated ones joined by ", ". */
function parseHead(text: string): {
  version: string;
  status: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
} {
  const lines = text.split('\r\n');
  const statusLine = /^HTTP\/(1\.[01]) (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!statusLine) throw protocolError(`not an HTTP/1.x status line: "${(lines[0] ?? '').slice(0, 80)}"`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw protocolError(`malformed header line "${line.slice(0, 80)}"`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return {
    version: statusLine[1] as string,
    status: Number(statusLine[2]),
    statusMessage: statusLine[3] ?? '',
    headers,
  };
}

/** How a server's close of an idle connection shows on the request sent on it. */
const RESETS = new Set(['ECONNRESET', 'EPIPE']);

function protocolError(what: string): Error {
  return Object.assign(new Error(`invalid HTTP response: ${what}`), { code: 'HPE_INVALID_RESPONSE' });
}

/** How Node's client reports a server that hung up on a request. */
function hangUp(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
