/**
 * Test harness for the local portal: the real portal process (portal/dist/clgw-portal.mjs, as the
 * appliance's unit runs it) on 127.0.0.1, in front of a real agent on a simulated appliance
 * (test/support/appliance.ts) serving its narrow portal socket; a raw HTTP client that sends
 * exactly the headers a test gives (Host, Origin, Sec-Fetch-Site…), and an event-stream reader.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { startPortalSocket } from '../../agent/src/api/portal-socket.js';
import { startApiServer } from '../../agent/src/api/server.js';
import type { ServiceResult } from '../../agent/src/containers/state.js';
import type { DiagnosticResult } from '../../agent/src/diagnostics/checks.js';
import { PORTAL_MAIN, PORTAL_NODE_OPTIONS } from '../../scripts/sim/boot-emulator.js';
import { type AgentOptions, makeWorld, type RunningAgent, startAgent, type World } from './appliance.js';

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** Tuning flags of clgw-portal (its main.ts) for tests that want fast streams or other limits. */
export interface PortalTuning {
  updateMs?: number;
  pingMs?: number;
  /** POSTs a minute per client address. */
  rateLimit?: number;
  maxStreams?: number;
  maxConnections?: number;
}

export interface PortalProcess {
  url: string;
  pid: number;
  /** Its log (JSON lines on stdout), parsed. */
  log: { lines: LogLine[] };
  /** SIGTERM, and resolves when it exited. */
  close(): Promise<void>;
}

/** Starts `clgw-portal --listen 127.0.0.1:<port>` on the appliance at `root`; resolves once it listens. */
export async function startPortalProcess(
  root: string,
  opts: PortalTuning & { port?: number } = {},
): Promise<PortalProcess> {
  const flags: [string, number | undefined][] = [
    ['--update-ms', opts.updateMs],
    ['--ping-ms', opts.pingMs],
    ['--rate-limit', opts.rateLimit],
    ['--max-streams', opts.maxStreams],
    ['--max-connections', opts.maxConnections],
  ];
  const args = [
    ...PORTAL_NODE_OPTIONS,
    PORTAL_MAIN,
    '--listen',
    `127.0.0.1:${opts.port ?? 0}`,
    ...flags.flatMap(([f, v]) => (v === undefined ? [] : [f, String(v)])),
  ];
  const child: ChildProcess = spawn(process.execPath, args, {
    env: { ...process.env, CLGW_ROOT: root },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: LogLine[] = [];
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let rest = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop() ?? '';
      for (const part of parts) {
        if (!part.trim()) continue;
        const line = JSON.parse(part) as LogLine;
        lines.push(line);
        if (line.msg === 'portal listening') resolve(String(line.url));
      }
    });
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    void exited.then(() => reject(new Error(`clgw-portal exited before it listened: ${stderr.trim()}`)));
  });
  return {
    url,
    pid: child.pid!,
    log: { lines },
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface PortalWorld {
  world: World;
  running: RunningAgent;
  portal: PortalProcess;
  /** The portal's log lines (its current process's). */
  log: { lines: LogLine[] };
  /** Starts the portal process again on the same port (after `portal.close()`). */
  restartPortal(): Promise<PortalProcess>;
  close(): Promise<void>;
}

/**
 * A simulated appliance with its agent running and both its sockets served as main.ts serves them
 * (root's agent.sock for the console and CLI, the narrow portal.sock), and the portal process in front.
 */
export async function startPortalWorld(
  opts: {
    platform?: 'physical' | 'virtual' | 'kvm';
    /** The mirror's pace in bytes per second (see makeWorld). */
    mirrorRate?: number;
    /** etc/clgw/agent.json besides the world's own settings (see makeWorld). */
    config?: Record<string, unknown>;
    portal?: PortalTuning;
    agent?: AgentOptions;
  } = {},
): Promise<PortalWorld> {
  const world = await makeWorld({
    platform: opts.platform,
    mirrorRate: opts.mirrorRate,
    config: opts.config,
  });
  const running = await startAgent(world, opts.agent);
  const api = await startApiServer(running.agent, world.paths.socket, running.deps.log);
  const socket = await startPortalSocket({
    socketPath: world.paths.portalSocket,
    log: running.deps.log,
    side: running.agent.portalSide(),
  });
  const portal = await startPortalProcess(world.root, opts.portal);
  const pw: PortalWorld = {
    world,
    running,
    portal,
    get log() {
      return pw.portal.log;
    },
    restartPortal: async () => {
      pw.portal = await startPortalProcess(world.root, {
        ...opts.portal,
        port: Number(new URL(pw.portal.url).port),
      });
      return pw.portal;
    },
    close: async () => {
      await pw.portal.close();
      await socket.close();
      await api.close();
      await running.stop();
      await world.close();
    },
  };
  return pw;
}

/**
 * Writes the records the agent keeps of its last container upgrades and startup diagnostics, as
 * the agent itself writes them, so that a page shows versions and checks without running them.
 */
export async function plantRecords(
  paths: AppliancePaths,
  records: {
    containers?: Partial<Record<'tunnel' | 'micloud' | 'freeswitch', string>>;
    diagnostics?: {
      at: string;
      results: Pick<DiagnosticResult, 'name' | 'target' | 'verdict' | 'summary'>[];
    };
  },
): Promise<void> {
  if (records.containers) {
    const last: Record<string, ServiceResult> = {};
    for (const [service, version] of Object.entries(records.containers)) {
      last[service] = { outcome: 'installed', version, at: '2025-11-21T08:55:00.000Z' };
    }
    await writeJsonAtomic(paths.containersState, { schema: 1, last, rejected: {} });
  }
  if (records.diagnostics) {
    const { at, results } = records.diagnostics;
    await writeJsonAtomic(paths.diagnostics, {
      at,
      ok: results.every((r) => r.verdict !== 'failed'),
      results: results.map((r) => ({ ...r, durationMs: 5 })),
    });
  }
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request with exactly these headers (Node adds only Host, unless given, and Content-Length). */
export function request(
  url: string,
  opts: {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string;
    /** The address the request comes from (127.0.0.2 …: another host on the "LAN"). */
    from?: string;
  } = {},
): Promise<RawResponse> {
  const u = new URL(opts.path ?? '/', url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        ...(opts.from ? { localAddress: opts.from } : {}),
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
  from?: string,
): Promise<RawResponse> {
  const origin = new URL(url).origin;
  return request(url, {
    ...(from ? { from } : {}),
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
