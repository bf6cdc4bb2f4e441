/**
 * Test harness for the local portal: a real portal on 127.0.0.1 in front of a real agent on a
 * simulated appliance (test/support/appliance.ts), a raw HTTP client that sends exactly the
 * headers a test gives (Host, Origin, Sec-Fetch-Site…), and an event-stream reader.
 */
import http from 'node:http';
import type { Logger } from '../../agent/src/platform/log.js';
import { type PortalExtras, portalAgentOf } from '../../agent/src/portal/port.js';
import { type Portal, type PortalOptions, startPortal } from '../../agent/src/portal/server.js';
import { makeWorld, type RunningAgent, startAgent, type World } from './appliance.js';

export interface LogLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

/** A logger that keeps its lines in memory. */
export function memoryLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    void lines.push({ level, msg, fields });
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    flush: async () => {},
  };
}

export interface PortalWorld {
  world: World;
  running: RunningAgent;
  portal: Portal;
  log: ReturnType<typeof memoryLogger>;
  /** Starts the portal again on the same port (after `portal.close()`). */
  restartPortal(): Promise<Portal>;
  close(): Promise<void>;
}

/** A simulated appliance with its agent running and the portal in front of it. */
export async function startPortalWorld(
  opts: {
    platform?: 'physical' | 'virtual' | 'kvm';
    /** The mirror's pace in bytes per second (see makeWorld). */
    mirrorRate?: number;
    portal?: Partial<Omit<PortalOptions, 'agent' | 'log'>>;
    extras?: PortalExtras;
  } = {},
): Promise<PortalWorld> {
  const world = await makeWorld({ platform: opts.platform, mirrorRate: opts.mirrorRate });
  const running = await startAgent(world);
  const log = memoryLogger();
  const agent = portalAgentOf(running.agent, opts.extras);
  const portalOpts: PortalOptions = { host: '127.0.0.1', port: 0, agent, log, ...opts.portal };
  const pw: PortalWorld = {
    world,
    running,
    portal: await startPortal(portalOpts),
    log,
    restartPortal: async () => {
      pw.portal = await startPortal({ ...portalOpts, port: Number(new URL(pw.portal.url).port) });
      return pw.portal;
    },
    close: async () => {
      await pw.portal.close();
      await running.stop();
      await world.close();
    },
  };
  return pw;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request with exactly these headers (Node adds only Host, unless given, and Content-Length). */
export function request(
  url: string,
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  const u = new URL(opts.path ?? '/', url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A POST as the portal's own page sends it. */
export function post(
  url: string,
  action: string,
  token: string | undefined,
  body: unknown = {},
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const origin = new URL(url).origin;
  return request(url, {
    method: 'POST',
    path: `/api/${action}`,
    headers: {
      'content-type': 'application/json',
      origin,
      'sec-fetch-site': 'same-origin',
      ...(token === undefined ? {} : { 'x-clgw-token': token }),
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

/** The page's token (from the `<meta name="clgw-token">` of `GET /`). */
export async function pageToken(url: string): Promise<string> {
  const page = await request(url);
  const m = /<meta name="clgw-token" content="([^"]+)">/.exec(page.body);
  if (!m) throw new Error('the page has no token');
  return m[1]!;
}

export interface SseEvent {
  event: string;
  data: string;
}

export interface EventReader {
  status: number;
  headers: http.IncomingHttpHeaders;
  events: SseEvent[];
  /** Resolves with the first event (already received or coming) that matches. */
  next(match: (e: SseEvent) => boolean, what: string, ms?: number): Promise<SseEvent>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens `GET /api/events` and parses the stream as it arrives. */
export function readEvents(url: string): Promise<EventReader> {
  return new Promise((resolve, reject) => {
    const req = http.get(new URL('/api/events', url), { agent: false }, (res) => {
      const events: SseEvent[] = [];
      const waiters: { match: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void }[] = [];
      let buf = '';
      let endedResolve: () => void = () => {};
      const ended = new Promise<void>((r) => {
        endedResolve = r;
      });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length === 0) continue;
          const e = { event, data: data.join('\n') };
          events.push(e);
          for (const w of [...waiters]) {
            if (w.match(e)) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(e);
            }
          }
        }
      });
      res.on('end', () => endedResolve());
      res.on('close', () => endedResolve());
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        ended,
        next: (match, what, ms = 60_000) => {
          const seen = events.find(match);
          if (seen) return Promise.resolve(seen);
          return new Promise((res2, rej2) => {
            const timer = setTimeout(() => rej2(new Error(`timed out waiting for ${what}`)), ms);
            waiters.push({
              match,
              resolve: (e) => {
                clearTimeout(timer);
                res2(e);
              },
            });
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}
