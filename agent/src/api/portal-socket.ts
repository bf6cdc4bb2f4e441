import { constants, promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ClgwError, toClgwError } from '@clgw/core/errors.js';
import type { Logger } from '@clgw/core/platform/log.js';
import { PORTAL_ACTIONS, type PortalAction, type PortalInput, portalBody } from './portal-contract.js';
import { httpStatusOf, limitServer, readJsonBody } from './serve.js';

/** What the agent does for the portal (agent.ts implements it). */
export interface PortalSide {
  /** The page's input: one shared snapshot for every caller within a short interval. */
  view(): Promise<PortalInput>;
  /** Carries out an action the page offers; refuses (ClgwError) what the rules or the code do not allow. */
  act(action: PortalAction, code: string | undefined, client: string): Promise<void>;
  /** The archive behind a temporary log link, or undefined for any other token. */
  logArchive(token: string): Promise<{ file: string; name: string } | undefined>;
}

export interface PortalSocketOptions {
  socketPath: string;
  /** Group given the socket (mode 0660) so the portal's own user may connect; absent: left as made. */
  gid?: number;
  log: Logger;
  side: PortalSide;
  /** Connections at once (default 16): only the portal connects, with a few kept-alive sockets. */
  maxConnections?: number;
}

const MAX_BODY = 1024;
/** Log archives streamed at once: each holds a file open and a socket busy for a while. */
const MAX_LOG_STREAMS = 2;
/** What a client address may look like in the audit log (the portal says it; nothing else trusts it). */
const CLIENT = /^[0-9A-Fa-f:.]{1,64}$/;

/**
 * The narrow API socket (portal-contract.ts): the only way the unprivileged portal reaches the
 * agent. Everything not listed there is 404, whatever the method — the root-only API lives on
 * another socket the portal's user cannot open.
 */
export async function startPortalSocket(opts: PortalSocketOptions): Promise<{ close(): Promise<void> }> {
  const { log, side } = opts;
  let logStreams = 0;

  const reply = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text);
  };
  const refuse = (res: http.ServerResponse, e: unknown) => {
    const err = toClgwError(e);
    reply(res, httpStatusOf(err.code), {
      error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
    });
  };

  async function streamLog(req: http.IncomingMessage, res: http.ServerResponse, token: string) {
    const notFound = () => reply(res, 404, { error: { code: 'INVALID_REQUEST', message: 'not found' } });
    if (req.method !== 'GET') return notFound();
    // Taken before any await: simultaneous requests cannot all pass the check.
    if (logStreams >= MAX_LOG_STREAMS) {
      reply(res, 503, { error: { code: 'BUSY', message: 'log archives are being downloaded; try again' } });
      return;
    }
    logStreams += 1;
    try {
      const link = await side.logArchive(token);
      const handle = link && (await fs.open(link.file, constants.O_RDONLY).catch(() => undefined));
      if (!link || !handle) return notFound();
      try {
        const { size } = await handle.stat();
        res.writeHead(200, {
          'content-type': 'application/gzip',
          'content-length': String(size),
          'x-clgw-filename': path.basename(link.name),
          'cache-control': 'no-store',
        });
        const stream = handle.createReadStream({ start: 0, end: Math.max(0, size - 1), autoClose: false });
        await new Promise<void>((resolve) => {
          stream.on('error', () => res.destroy());
          res.on('close', resolve);
          stream.pipe(res);
        });
      } finally {
        await handle.close();
      }
    } finally {
      logStreams -= 1;
    }
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://portal.sock');
    if (url.pathname.startsWith('/v1/logs/'))
      return streamLog(req, res, url.pathname.slice('/v1/logs/'.length));
    if (url.pathname === '/v1/view') {
      if (req.method !== 'GET') throw new ClgwError('INVALID_REQUEST', 'use GET');
      return reply(res, 200, await side.view());
    }
    const action = PORTAL_ACTIONS.find((a) => url.pathname === `/v1/${a}`);
    if (!action) {
      // The root-only routes (status, check, update, ssh, network, data-reset …) are not here at all.
      return reply(res, 404, {
        error: { code: 'INVALID_REQUEST', message: `no such endpoint ${url.pathname} on the portal socket` },
      });
    }
    if (req.method !== 'POST') throw new ClgwError('INVALID_REQUEST', 'use POST');
    const body = portalBody(action, await readJsonBody(req, MAX_BODY));
    if ('problem' in body) throw new ClgwError('INVALID_REQUEST', body.problem);
    const said = req.headers['x-clgw-client'];
    const client = typeof said === 'string' && CLIENT.test(said) ? said : 'unknown';
    await side.act(action, body.code, client);
    reply(res, 202, { accepted: action });
  }

  await fs.mkdir(path.dirname(opts.socketPath), { recursive: true });
  await fs.rm(opts.socketPath, { force: true });
  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = toClgwError(e);
      if (err.code === 'INTERNAL')
        log.error('portal socket: request failed', { path: req.url, message: err.message });
      if (res.headersSent) res.destroy();
      else refuse(res, err);
    });
  });
  limitServer(server, { maxConnections: opts.maxConnections ?? 16 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socketPath, () => resolve());
  });
  // Owner root, group the portal's: nobody else may connect.
  await fs.chmod(opts.socketPath, 0o660);
  if (opts.gid !== undefined) await fs.chown(opts.socketPath, 0, opts.gid);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
