/**
 * What both of the agent's API sockets share: the bounds every server gets (connections, time to
 * send the request), the bounded JSON body reader, and the HTTP status of each refusal.
 */
import type http from 'node:http';
import { ClgwError, type ErrorCode } from '@clgw/core/errors.js';

/** The HTTP status a refusal is answered with. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'BUSY':
    case 'NOT_ALLOWED':
    case 'CALLS_CHANGED':
      return 409;
    case 'INVALID_REQUEST':
    case 'SETTING_INVALID':
      return 400;
    case 'PRESENCE_CODE_INVALID':
      return 403;
    case 'PRESENCE_LOCKED':
      return 423;
    default:
      return 500;
  }
}

/**
 * Bounds a server: at most `maxConnections` sockets (more are closed at once by Node), headers
 * within 5 s and the whole request within 10 s (a client that trickles bytes cannot hold a socket),
 * idle kept-alive sockets closed after 5 s. Answers may take longer (a check waits for the server).
 */
export function limitServer(server: http.Server, opts: { maxConnections: number }): void {
  server.maxConnections = opts.maxConnections;
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
}

/** The request's JSON body (`{}` when empty), at most `max` bytes. */
export async function readJsonBody(req: http.IncomingMessage, max: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw new ClgwError('INVALID_REQUEST', `request body over ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new ClgwError('INVALID_REQUEST', `request body over ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (e) {
    throw new ClgwError('INVALID_REQUEST', `request body is not JSON: ${(e as Error).message}`);
  }
}
