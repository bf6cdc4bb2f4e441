import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  needsPresence,
  PORTAL_ACTIONS,
  type PortalAction,
  type PortalInput,
  portalBody,
} from '@clgw/agent/api/portal-contract.js';
import { sharedSnapshot } from '@clgw/agent/api/snapshot.js';
import { localPortalUrl } from '@clgw/core/format.js';
import type { Logger } from '@clgw/core/platform/log.js';
import { AgentAnswerError, type PortalAgent } from './agent-client.js';
import { crossSiteReason, isAllowedHost, SECURITY_HEADERS } from './headers.js';
import { type PageAssets, renderLogLinkGone, renderPage, renderUnavailable } from './html.js';
import { createRateLimiter } from './rate-limit.js';
import { PORTAL_JS } from './static/script.js';
import { PORTAL_CSS } from './static/style.js';
import { createTokenIssuer } from './token.js';
import { type PortalView, portalView } from './view.js';

export interface PortalOptions {
  /** Where to listen: a socket systemd passed (`fd`), or an address (`0.0.0.0:80`; port 0: a free one). */
  listen: { fd: number } | { host: string; port: number };
  /** The port the page's URLs name when the socket came from systemd (default 80). */
  urlPort?: number;
  agent: PortalAgent;
  log: Logger;
  now?: () => number;
  /** How often open event streams look at the status (default 1000 ms). */
  updateMs?: number;
  /** Keep-alive event interval; the page declares the connection lost after three missed (default 5000 ms). */
  pingMs?: number;
  /** Host names it answers to besides IP literals, `localhost`, `cloudlink.local` and the appliance's hostname. */
  hostNames?: string[];
  /** POSTs allowed per client address in a window (default 5 a minute). */
  rateLimit?: { max: number; windowMs: number };
  /** Event streams open at once (default 32): each holds a socket and a little memory. */
  maxStreams?: number;
  /** Connections at once (default 256); more are closed as they arrive. */
  maxConnections?: number;
  /** How long one answer of the agent serves every request (default 500 ms). */
  viewMaxAgeMs?: number;
}

export interface Portal {
  url: string;
  close(): Promise<void>;
}

/** The portal's own refusals (the agent's refusals keep the agent's codes). */
type PortalErrorCode =
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'HOST_UNKNOWN'
  | 'RATE_LIMITED'
  | 'CROSS_SITE'
  | 'TOKEN_INVALID'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'BODY_TOO_LARGE'
  | 'INVALID_REQUEST'
  | 'CODE_REQUIRED'
  | 'TOO_MANY_STREAMS'
  | 'BUSY';

const MAX_BODY = 1024;
/** What an event stream may have queued for a client that stopped reading. */
const MAX_STREAM_BUFFER = 64 * 1024;
/** Log archives sent at once (the agent allows as many). */
const MAX_LOG_DOWNLOADS = 2;

interface Asset {
  type: string;
  body: Buffer;
}

/** Content-addressed asset paths: served as immutable, a new release gets new URLs. */
function assetsOf(): { paths: PageAssets; byPath: Map<string, Asset> } {
  const byPath = new Map<string, Asset>();
  const add = (name: string, ext: string, type: string, text: string) => {
    const body = Buffer.from(text, 'utf8');
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
    const urlPath = `/static/${name}.${hash}.${ext}`;
    byPath.set(urlPath, { type, body });
    return urlPath;
  };
  const css = add('portal', 'css', 'text/css; charset=utf-8', PORTAL_CSS);
  const js = add('portal', 'js', 'text/javascript; charset=utf-8', PORTAL_JS);
  return { paths: { css, js }, byPath };
}

const DONE: Record<PortalAction, string> = {
  retry: 'Retrying: the gateway checks for the update again.',
  reboot: 'The gateway is restarting. This page reconnects by itself.',
  'factory-reset':
    'Factory reset started: the gateway restarts into its recovery system. This page reconnects by itself.',
};

const READ_ROUTES = new Set(['/', '/api/status', '/api/events']);

/**
 * The local portal (SPEC.md §3, §5, §9), its own unprivileged process: one page at `/` with the
 * gateway's versions, address, profile, diagnostics and last update; "System update in progress"
 * with live progress; "Update Error" with Retry, and Reboot and (physical appliances) Factory
 * Reset, which ask for the code shown on the appliance's own screen; the page itself shows "Lost
 * Connection to Gateway" when it loses the appliance, and recovers by itself.
 *
 * Routes: `GET /` (rendered from the view model, `no-store`), `GET /static/*` (content-hashed CSS
 * and JS, immutable), `GET /api/status` (view, status and a fresh token), `GET /api/events`
 * (Server-Sent Events: `hello`, `view` on every change, `ping`), `POST /api/retry` (`{}`), `POST
 * /api/{reboot,factory-reset}` (`{"code": "…"}`), each with the page's token in `X-CLGW-Token`,
 * same-origin only, 5 a minute per client address; `GET /logs/<token>` (a log archive). Every
 * response carries the strict headers of headers.ts; anything else is 404 (405 for a wrong method).
 *
 * Bounded under load: at most `maxConnections` sockets, headers within 5 s and a request within
 * 10 s; one answer of the agent serves every request for `viewMaxAgeMs` (a flood of page loads
 * costs the agent one status build per interval); the stream cap is taken before any wait.
 */
export async function startPortal(opts: PortalOptions): Promise<Portal> {
  const { agent, log } = opts;
  const now = opts.now ?? Date.now;
  const updateMs = opts.updateMs ?? 1000;
  const pingMs = opts.pingMs ?? 5000;
  const maxStreams = opts.maxStreams ?? 32;
  const tokens = createTokenIssuer({ now });
  const limiter = createRateLimiter(opts.rateLimit ?? { max: 5, windowMs: 60_000 });
  const assets = assetsOf();
  const extraNames = new Set((opts.hostNames ?? []).map((n) => n.toLowerCase()));
  const snapshot = sharedSnapshot(() => agent.view(), { maxAgeMs: opts.viewMaxAgeMs ?? 500, now });
  let applianceName: string | undefined;
  let port = 'port' in opts.listen ? opts.listen.port : (opts.urlPort ?? 80);
  let logDownloads = 0;

  const gather = async (): Promise<PortalInput> => {
    const input = await snapshot.get();
    applianceName = input.status.network.settings.hostname;
    return input;
  };

  /**
   * What an answer of the agent renders to, made once per answer and address rather than once per
   * request: under a flood every request then costs a token and a few string joins, not a view
   * model, two JSON encodings and a page. The address matters because the page names the one the
   * browser reached; the appliance has few, and at most 16 are kept.
   */
  const TOKEN_SLOT = '\u0000token\u0000';
  let rendered:
    | {
        input: PortalInput;
        statusJson: string;
        byAddress: Map<string, { view: PortalView; json: string; page?: [string, string] }>;
      }
    | undefined;
  const renderedFor = (input: PortalInput, localAddress: string | undefined) => {
    if (rendered?.input !== input) {
      rendered = { input, statusJson: JSON.stringify(input.status), byAddress: new Map() };
    }
    const key = localAddress ?? '';
    let one = rendered.byAddress.get(key);
    if (!one) {
      const view = portalView(input, { localAddress, port });
      one = { view, json: JSON.stringify(view) };
      if (rendered.byAddress.size < 16) rendered.byAddress.set(key, one);
    }
    return { ...one, statusJson: rendered.statusJson };
  };
  const pageWith = (one: { view: PortalView; page?: [string, string] }, token: string): string => {
    one.page ??= renderPage(one.view, TOKEN_SLOT, assets.paths).split(TOKEN_SLOT) as [string, string];
    return `${one.page[0]}${token}${one.page[1]}`;
  };

  const hostNames = function* (): Iterable<string> {
    yield* extraNames;
    if (applianceName) yield applianceName;
  };

  // --- event streams: one shared look at the status per interval, sent to each stream on change.
  interface Stream {
    res: http.ServerResponse;
    localAddress: string | undefined;
    last: string;
  }
  const streams = new Set<Stream>();
  /** Streams counted from the moment they are accepted, before their first wait. */
  let reserved = 0;
  let tickTimer: NodeJS.Timeout | undefined;
  let pingTimer: NodeJS.Timeout | undefined;
  let ticking = false;

  const write = (s: Stream, event: string, data: string) => {
    if (s.res.writableLength > MAX_STREAM_BUFFER) {
      // A client that stopped reading: drop it rather than buffer without bound.
      s.res.destroy();
      streams.delete(s);
      return;
    }
    s.res.write(`event: ${event}\ndata: ${data}\n\n`);
  };
  const sendView = (s: Stream, input: PortalInput) => {
    const { json } = renderedFor(input, s.localAddress);
    if (json === s.last) return;
    s.last = json;
    write(s, 'view', json);
  };
  const tick = async () => {
    if (ticking || streams.size === 0) return;
    ticking = true;
    try {
      const input = await gather();
      for (const s of streams) sendView(s, input);
    } catch (e) {
      log.warn('portal: status unavailable', { error: (e as Error).message });
    } finally {
      ticking = false;
    }
  };
  const startTimers = () => {
    tickTimer ??= setInterval(() => void tick(), updateMs);
    pingTimer ??= setInterval(() => {
      for (const s of streams) write(s, 'ping', '{}');
    }, pingMs);
  };
  const stopTimersIfIdle = () => {
    if (streams.size > 0) return;
    clearInterval(tickTimer);
    clearInterval(pingTimer);
    tickTimer = undefined;
    pingTimer = undefined;
  };

  // --- responses
  const reply = (
    res: http.ServerResponse,
    status: number,
    type: string,
    body: string | Buffer,
    headers: Record<string, string> = {},
  ) => {
    const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    res.writeHead(status, {
      'content-type': type,
      'content-length': String(buf.length),
      'cache-control': 'no-store',
      ...headers,
    });
    res.end(res.req.method === 'HEAD' ? undefined : buf);
  };
  const json = (res: http.ServerResponse, status: number, body: unknown, headers?: Record<string, string>) =>
    reply(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`, headers);
  const refuse = (
    res: http.ServerResponse,
    status: number,
    code: PortalErrorCode | string,
    message: string,
    headers?: Record<string, string>,
    details?: Record<string, unknown>,
  ) => json(res, status, { error: { code, message, ...(details ? { details } : {}) } }, headers);

  async function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY)
      throw new BodyError(413, 'BODY_TOO_LARGE', `request body over ${MAX_BODY} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) throw new BodyError(413, 'BODY_TOO_LARGE', `request body over ${MAX_BODY} bytes`);
      chunks.push(chunk as Buffer);
    }
    if (size === 0) return {};
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    } catch {
      throw new BodyError(400, 'INVALID_REQUEST', 'the request body is not JSON');
    }
  }

  async function page(req: http.IncomingMessage, res: http.ServerResponse) {
    let input: PortalInput;
    try {
      input = await gather();
    } catch (e) {
      // The agent is starting or restarting: a page that says so and reloads itself.
      reply(res, 503, 'text/html; charset=utf-8', renderUnavailable(assets.paths), { 'retry-after': '5' });
      log.warn('portal: page without the agent', { error: (e as Error).message });
      return;
    }
    const one = renderedFor(input, req.socket.localAddress);
    reply(res, 200, 'text/html; charset=utf-8', pageWith(one, tokens.issue()));
  }

  async function status(req: http.IncomingMessage, res: http.ServerResponse) {
    const one = renderedFor(await gather(), req.socket.localAddress);
    const body = `{"token":${JSON.stringify(tokens.issue())},"view":${one.json},"status":${one.statusJson}}\n`;
    reply(res, 200, 'application/json; charset=utf-8', body);
  }

  async function events(req: http.IncomingMessage, res: http.ServerResponse) {
    // Taken before any wait: simultaneous requests cannot all pass the cap.
    if (streams.size + reserved >= maxStreams) {
      refuse(res, 503, 'TOO_MANY_STREAMS', 'too many open event streams', { 'retry-after': '5' });
      return;
    }
    reserved += 1;
    let input: PortalInput;
    try {
      input = await gather();
    } finally {
      reserved -= 1;
    }
    if (req.method === 'HEAD' || res.destroyed) {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    // A stream lives as long as the page; its pings keep the socket busy.
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    const s: Stream = { res, localAddress: req.socket.localAddress, last: '' };
    streams.add(s);
    res.on('close', () => {
      streams.delete(s);
      stopTimersIfIdle();
    });
    res.write(`retry: 2000\n\n`);
    write(s, 'hello', JSON.stringify({ token: tokens.issue(), pingMs }));
    sendView(s, input);
    startTimers();
  }

  async function action(req: http.IncomingMessage, res: http.ServerResponse, act: PortalAction) {
    // Early refusals close the connection rather than drain a body nobody wants.
    const close = { connection: 'close' };
    if (req.method !== 'POST') {
      refuse(res, 405, 'METHOD_NOT_ALLOWED', 'use POST', { allow: 'POST', ...close });
      return;
    }
    const client = req.socket.remoteAddress ?? 'unknown';
    const rate = limiter.take(client, now());
    if (!rate.ok) {
      const seconds = Math.ceil(rate.retryAfterMs / 1000);
      log.warn('portal: request rate-limited', { action: act, client });
      refuse(res, 429, 'RATE_LIMITED', `too many requests; try again in ${seconds} s`, {
        'retry-after': String(seconds),
        ...close,
      });
      return;
    }
    const crossSite = crossSiteReason({
      host: req.headers.host,
      origin: req.headers.origin,
      'sec-fetch-site': header(req, 'sec-fetch-site'),
    });
    if (crossSite) {
      log.warn('portal: cross-site request refused', { action: act, client, reason: crossSite });
      refuse(res, 403, 'CROSS_SITE', `cross-site request refused (${crossSite})`, close);
      return;
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      refuse(res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'send the request as application/json', close);
      return;
    }
    if (!tokens.verify(header(req, 'x-clgw-token'))) {
      log.warn('portal: request without a valid page token refused', { action: act, client });
      refuse(
        res,
        403,
        'TOKEN_INVALID',
        'the page token is missing or no longer valid: reload the page',
        close,
      );
      return;
    }
    let body: unknown;
    try {
      body = await readJsonBody(req);
    } catch (e) {
      if (!(e instanceof BodyError)) throw e;
      refuse(res, e.status, e.code, e.message, close);
      return;
    }
    const parsed = portalBody(act, body);
    if ('problem' in parsed) {
      refuse(res, 400, 'INVALID_REQUEST', `invalid request body: ${parsed.problem}`);
      return;
    }
    const code = parsed.code;
    if (needsPresence(act) && !code?.trim()) {
      refuse(res, 400, 'CODE_REQUIRED', "Enter the code shown on the gateway's own screen.");
      return;
    }
    try {
      await agent.act(act, code, client);
    } catch (e) {
      if (!(e instanceof AgentAnswerError)) throw e;
      log.warn('portal: request refused by the agent', {
        action: act,
        client,
        code: e.code,
        message: e.message,
      });
      refuse(res, e.status, e.code, e.message, {}, e.details);
      return;
    }
    snapshot.invalidate();
    log.info('portal: request accepted', { action: act, client });
    json(res, 202, { message: DONE[act] });
  }

  /**
   * `GET /logs/<token>`: the log archive, streamed from the agent, never cached. Every failure —
   * unknown, expired or revoked token, another method — is the same 404 as any unknown path.
   */
  async function logDownload(req: http.IncomingMessage, res: http.ServerResponse, token: string) {
    // One answer for every failure; a browser gets it as a page a person can read.
    const notFound = () =>
      /\btext\/html\b/.test(req.headers.accept ?? '')
        ? reply(res, 404, 'text/html; charset=utf-8', renderLogLinkGone(assets.paths), {
            'cache-control': 'no-store',
          })
        : refuse(res, 404, 'NOT_FOUND', 'not found');
    if (req.method !== 'GET' && req.method !== 'HEAD') return notFound();
    if (logDownloads >= MAX_LOG_DOWNLOADS) {
      refuse(res, 503, 'BUSY', 'log archives are being downloaded; try again in a minute', {
        'retry-after': '30',
      });
      return;
    }
    logDownloads += 1;
    try {
      const link = await agent.openLog(token);
      if (!link) return notFound();
      res.writeHead(200, {
        'content-type': 'application/gzip',
        'content-length': String(link.size),
        'content-disposition': `attachment; filename="${link.name.replace(/[^A-Za-z0-9._-]/g, '_')}"`,
        'cache-control': 'no-store',
      });
      if (req.method === 'HEAD') {
        link.body.destroy();
        res.end();
        return;
      }
      log.info('portal: log archive downloaded', { client: req.socket.remoteAddress, name: link.name });
      req.socket.setTimeout(0);
      await new Promise<void>((resolve) => {
        link.body.on('error', () => res.destroy());
        res.on('close', () => {
          link.body.destroy();
          resolve();
        });
        link.body.pipe(res);
      });
    } finally {
      logDownloads -= 1;
    }
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const target = req.url ?? '';
    if (!target.startsWith('/')) {
      refuse(res, 400, 'INVALID_REQUEST', 'bad request target');
      return;
    }
    if (!isAllowedHost(req.headers.host, hostNames())) {
      if (applianceName === undefined) await gather().catch(() => undefined);
      if (!isAllowedHost(req.headers.host, hostNames())) {
        refuse(res, 421, 'HOST_UNKNOWN', 'this gateway does not answer to that host name');
        return;
      }
    }
    const path = new URL(target, 'http://portal.invalid').pathname;
    if (path.startsWith('/logs/')) return logDownload(req, res, path.slice('/logs/'.length));
    const act = PORTAL_ACTIONS.find((a) => path === `/api/${a}`);
    if (act) return action(req, res, act);
    const asset = assets.byPath.get(path);
    if (!READ_ROUTES.has(path) && !asset) {
      refuse(res, 404, 'NOT_FOUND', 'not found');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      refuse(res, 405, 'METHOD_NOT_ALLOWED', 'use GET', { allow: 'GET, HEAD', connection: 'close' });
      return;
    }
    if (asset) {
      reply(res, 200, asset.type, asset.body, { 'cache-control': 'public, max-age=31536000, immutable' });
      return;
    }
    if (path === '/') return page(req, res);
    if (path === '/api/status') return status(req, res);
    return events(req, res);
  }

  const server = http.createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      const answer =
        e instanceof AgentAnswerError ? e : new AgentAnswerError('INTERNAL', (e as Error).message, 500);
      if (answer.code === 'INTERNAL') {
        log.error('portal: request failed', { path: req.url, message: answer.message });
      }
      if (!res.headersSent) refuse(res, answer.status, answer.code, answer.message);
      else res.destroy();
    });
  });
  // Bounded: a LAN host that opens thousands of sockets or trickles its headers holds none for long.
  server.maxConnections = opts.maxConnections ?? 256;
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.setTimeout(30_000, (socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if ('fd' in opts.listen) server.listen({ fd: opts.listen.fd }, done);
    else server.listen(opts.listen.port, opts.listen.host, done);
  });
  if ('host' in opts.listen) port = (server.address() as AddressInfo).port;
  const url = localPortalUrl('host' in opts.listen ? opts.listen.host : '0.0.0.0', port);
  // A socket from systemd listens wherever its unit says (every address, port 80 on the box).
  log.info(
    'portal listening',
    'fd' in opts.listen ? { socket: `fd ${opts.listen.fd} from systemd` } : { url },
  );

  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.res.end();
        streams.clear();
        stopTimersIfIdle();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

class BodyError extends Error {
  constructor(
    readonly status: number,
    readonly code: PortalErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** One header's value (the first, when sent twice). */
function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
