import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as z from 'zod';
import { isClgwError, toClgwError } from '../errors.js';
import type { Logger } from '../platform/log.js';
import { crossSiteReason, isAllowedHost, SECURITY_HEADERS } from './headers.js';
import { type PageAssets, renderPage } from './html.js';
import type { PortalAgent } from './port.js';
import { createRateLimiter } from './rate-limit.js';
import { PORTAL_JS } from './static/script.js';
import { PORTAL_CSS } from './static/style.js';
import { createTokenIssuer } from './token.js';
import { FACTORY_RESET_WORDS, portalUrl, portalView, type ViewInput } from './view.js';

export interface PortalOptions {
  /** Address to listen on (`0.0.0.0` on the appliance, `127.0.0.1` in the simulator and tests). */
  host: string;
  /** TCP port (80 on the appliance; 0: a free one). */
  port: number;
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
  /** The temporary log download links (`GET /logs/<token>`); absent: every such request is 404. */
  logs?: { lookup(token: string): Promise<{ file: string; name: string } | undefined> };
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
  | 'CONFIRMATION_REQUIRED'
  | 'TOO_MANY_STREAMS';

const MAX_BODY = 1024;
const MAX_STREAM_BUFFER = 256 * 1024;

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

const ACTIONS: Record<string, { run: (a: PortalAgent) => Promise<void>; done: string; confirm?: string }> = {
  '/api/retry': { run: (a) => a.retry(), done: 'Retrying: the gateway checks for the update again.' },
  '/api/reboot': {
    run: (a) => a.reboot(),
    done: 'The gateway is restarting. This page reconnects by itself.',
  },
  '/api/factory-reset': {
    run: (a) => a.factoryReset(),
    done: 'Factory reset started: the gateway restarts into its recovery system. This page reconnects by itself.',
    confirm: FACTORY_RESET_WORDS,
  },
};

const READ_ROUTES = new Set(['/', '/api/status', '/api/events']);
/** Retry and Reboot take no options; Factory Reset takes the typed confirmation. */
const PLAIN_BODY = z.object({}).strict();
const CONFIRM_BODY = z.object({ confirm: z.string().max(64).optional() }).strict();

/**
 * The local portal (SPEC.md §3, §5): one page at `/` with the gateway's versions, address,
 * profile, diagnostics and last update; "System update in progress" with live progress; "Update
 * Error" with Retry, Reboot and (physical appliances) Factory Reset; the page itself shows "Lost
 * Connection to Gateway" when it loses the appliance, and recovers by itself.
 *
 * Routes: `GET /` (rendered on the server from the view model, `no-store`), `GET /static/*`
 * (content-hashed CSS and JS, immutable), `GET /api/status` (view, status and a fresh token,
 * `no-store`), `GET /api/events` (Server-Sent Events: `hello`, `view` on every change, `ping`),
 * `POST /api/{retry,reboot,factory-reset}` (JSON body; the page's token in `X-CLGW-Token`;
 * same-origin only; 5 a minute per client address). Every response carries the strict headers of
 * headers.ts; anything else is 404 (405 for a wrong method).
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
  let applianceName: string | undefined;
  let port = opts.port;

  /** An optional source that failed counts as absent: the page shows it as unknown. */
  const optional = async <T>(what: string, get: (() => Promise<T>) | undefined): Promise<T | undefined> => {
    if (!get) return undefined;
    try {
      return await get();
    } catch (e) {
      log.debug('portal: optional source failed', { what, error: toClgwError(e).message });
      return undefined;
    }
  };

  const gather = async (): Promise<ViewInput> => {
    const [status, versions, profile, diagnostics, addresses] = await Promise.all([
      agent.status(),
      optional('versions', agent.versions && (() => agent.versions!())),
      optional('profile', agent.profile && (() => agent.profile!())),
      optional('diagnostics', agent.diagnostics && (() => agent.diagnostics!())),
      optional('addresses', agent.addresses && (() => agent.addresses!())),
    ]);
    applianceName = status.network.settings.hostname;
    return { status, versions, profile, diagnostics, addresses };
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
  const sendView = (s: Stream, input: ViewInput) => {
    const json = JSON.stringify(portalView(input, { localAddress: s.localAddress, port }));
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
      log.warn('portal: status unavailable', { error: toClgwError(e).message });
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
    res.end(buf);
  };
  const json = (res: http.ServerResponse, status: number, body: unknown, headers?: Record<string, string>) =>
    reply(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`, headers);
  const refuse = (
    res: http.ServerResponse,
    status: number,
    code: PortalErrorCode | string,
    message: string,
    headers?: Record<string, string>,
  ) => json(res, status, { error: { code, message } }, headers);

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
    const view = portalView(await gather(), { localAddress: req.socket.localAddress, port });
    reply(res, 200, 'text/html; charset=utf-8', renderPage(view, tokens.issue(), assets.paths));
  }

  async function status(req: http.IncomingMessage, res: http.ServerResponse) {
    const input = await gather();
    json(res, 200, {
      token: tokens.issue(),
      view: portalView(input, { localAddress: req.socket.localAddress, port }),
      status: input.status,
    });
  }

  async function events(req: http.IncomingMessage, res: http.ServerResponse) {
    if (streams.size >= maxStreams) {
      refuse(res, 503, 'TOO_MANY_STREAMS', 'too many open event streams', { 'retry-after': '5' });
      return;
    }
    const input = await gather();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
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

  async function action(req: http.IncomingMessage, res: http.ServerResponse, path: string) {
    const act = ACTIONS[path]!;
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
      log.warn('portal: request rate-limited', { path, client });
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
      log.warn('portal: cross-site request refused', { path, client, reason: crossSite });
      refuse(res, 403, 'CROSS_SITE', `cross-site request refused (${crossSite})`, close);
      return;
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      refuse(res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'send the request as application/json', close);
      return;
    }
    if (!tokens.verify(header(req, 'x-clgw-token'))) {
      log.warn('portal: request without a valid page token refused', { path, client });
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
    const parsed = (act.confirm === undefined ? PLAIN_BODY : CONFIRM_BODY).safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
      refuse(res, 400, 'INVALID_REQUEST', `invalid request body: ${where}${issue?.message ?? 'invalid'}`);
      return;
    }
    if (act.confirm !== undefined && (parsed.data as { confirm?: string }).confirm !== act.confirm) {
      refuse(res, 400, 'CONFIRMATION_REQUIRED', `type ${act.confirm} to confirm`);
      return;
    }
    try {
      await act.run(agent);
    } catch (e) {
      const err = toClgwError(e);
      const refused = isClgwError(e) && (err.code === 'BUSY' || err.code === 'NOT_ALLOWED');
      log.warn('portal: request refused by the agent', {
        path,
        client,
        code: err.code,
        message: err.message,
      });
      refuse(res, refused ? 409 : 500, err.code, err.message);
      return;
    }
    log.info('portal: request accepted', { path, client });
    json(res, 202, { message: act.done });
  }

  /**
   * `GET /logs/<token>`: the log archive, streamed, never cached. Every failure — unknown,
   * expired or revoked token, a missing file, another method — is the same 404 as any unknown path.
   */
  async function logDownload(req: http.IncomingMessage, res: http.ServerResponse, token: string) {
    const notFound = () => refuse(res, 404, 'NOT_FOUND', 'not found');
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !opts.logs) return notFound();
    const link = await opts.logs.lookup(token).catch(() => undefined);
    const handle = link && (await fs.open(link.file, 'r').catch(() => undefined));
    if (!link || !handle) return notFound();
    try {
      const { size } = await handle.stat();
      res.writeHead(200, {
        'content-type': 'application/gzip',
        'content-length': String(size),
        'content-disposition': `attachment; filename="${link.name.replace(/[^A-Za-z0-9._-]/g, '_')}"`,
        'cache-control': 'no-store',
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      log.info('portal: log archive downloaded', { client: req.socket.remoteAddress, name: link.name });
      const stream = handle.createReadStream({ start: 0, end: Math.max(0, size - 1), autoClose: false });
      await new Promise<void>((resolve) => {
        stream.on('error', () => res.destroy());
        res.on('close', resolve);
        stream.pipe(res);
      });
    } finally {
      await handle.close();
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
    if (path in ACTIONS) return action(req, res, path);
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

  const server = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000 }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = toClgwError(e);
      log.error('portal: request failed', { path: req.url, code: err.code, message: err.message });
      if (!res.headersSent) refuse(res, 500, err.code, err.message);
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const shownHost = opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host === '::' ? '::1' : opts.host;
  const url = portalUrl(shownHost, port);
  log.info('portal listening', { url });

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
