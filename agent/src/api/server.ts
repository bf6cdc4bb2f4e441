import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ClgwError, toClgwError } from '@clgw/core/errors.js';
import type { Logger } from '@clgw/core/platform/log.js';
import * as z from 'zod';
import type { Agent, AgentRequest } from '../agent.js';
import { httpStatusOf, limitServer, readJsonBody } from './serve.js';

const MAX_BODY = 16 * 1024;
const updateBody = z.object({ force: z.boolean().optional() }).strict();
const emptyBody = z.object({}).strict();
/** "Reboot now" names the calls it cuts, as the technician confirmed them (null: unknown). */
const rebootNowBody = z
  .object({
    calls: z
      .number({ error: 'send {"calls": N}: the calls confirmed (null: unknown)' })
      .int()
      .nonnegative()
      .nullable(),
  })
  .strict();
/** Destructive requests must say so explicitly. */
const confirmedBody = z
  .object({ confirm: z.literal(true, { error: 'send {"confirm": true} to confirm' }) })
  .strict();

/** A request without options: its body must be empty (or `{}`). */
const plain =
  (type: 'check' | 'retry' | 'reboot' | 'markGood' | 'markBad') =>
  (body: unknown): AgentRequest => {
    emptyBody.parse(body);
    return { type };
  };

/** A destructive request: its body must be `{"confirm": true}`. */
const confirmed =
  (type: 'factoryReset' | 'dataReset') =>
  (body: unknown): AgentRequest => {
    confirmedBody.parse(body);
    return { type };
  };

const ROUTES: Record<string, (body: unknown) => AgentRequest> = {
  '/v1/check': plain('check'),
  '/v1/update': (b) => ({ type: 'update', force: updateBody.parse(b).force ?? false }),
  '/v1/retry': plain('retry'),
  '/v1/reboot': plain('reboot'),
  '/v1/reboot-now': (b) => ({ type: 'rebootNow', calls: rebootNowBody.parse(b).calls }),
  '/v1/mark-good': plain('markGood'),
  '/v1/mark-bad': plain('markBad'),
  '/v1/factory-reset': confirmed('factoryReset'),
  '/v1/data-reset': confirmed('dataReset'),
};

const readBody = (req: http.IncomingMessage) => readJsonBody(req, MAX_BODY);

/**
 * The local API: JSON over HTTP on a unix socket (root-only), for the CLI and the console.
 * `GET /v1/status`; `GET /v1/presence` the code the portal asks for Reboot and Factory Reset (for the
 * console's screens only: this socket is root's); `POST /v1/{check,update,retry,reboot,mark-good,mark-bad}`,
 * `POST /v1/reboot-now` `{"calls": N}` (restart now, cutting the N calls confirmed). A check answers when it is done; an update answers at once (202) and is followed through the status.
 * `GET /v1/network` the settings in effect; `POST /v1/network` changes them (answers once applied).
 * `GET /v1/ssh` SSH access and its time left; `POST /v1/ssh` `{"enabled": true|false}` (on for 24 hours).
 * `POST /v1/diagnose` runs the startup diagnostics now and answers the report (also in status).
 * `GET /v1/proxy` the proxy (no password); `POST /v1/proxy` sets it (`{server, port, user?, password?}` or `{off: true}`).
 * `GET /v1/schedule` the update window; `POST /v1/schedule` sets it (`{at, tz, spreadMinutes}` or `{off: true}`).
 * `POST /v1/logs` builds a log archive and answers `{url, expiresAt}`; `DELETE /v1/logs` revokes every link.
 * `GET /v1/containers` the service containers; `POST /v1/containers/update` starts their upgrade (202).
 */
export async function startApiServer(
  agent: Agent,
  socketPath: string,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  await fs.mkdir(path.dirname(socketPath), { recursive: true });
  await fs.rm(socketPath, { force: true });
  const server = http.createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    (async () => {
      const url = new URL(req.url ?? '/', 'http://agent');
      // One shared snapshot for every poller (two consoles, scripts): a flood costs one build.
      if (req.method === 'GET' && url.pathname === '/v1/status')
        return reply(200, await agent.sharedStatus());
      if (url.pathname === '/v1/presence') {
        if (req.method !== 'GET')
          return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use GET' } });
        return reply(200, agent.presence.view());
      }
      if (url.pathname === '/v1/containers') {
        if (req.method !== 'GET')
          return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use GET' } });
        return reply(200, await agent.containers());
      }
      if (url.pathname === '/v1/containers/update') {
        if (req.method !== 'POST')
          return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use POST' } });
        let force: boolean;
        try {
          force = updateBody.parse(await readBody(req)).force ?? false;
        } catch (e) {
          throw new ClgwError(
            'INVALID_REQUEST',
            e instanceof z.ZodError ? `invalid request: ${e.issues[0]?.message}` : toClgwError(e).message,
          );
        }
        // Answers once the run started; its progress and end are in GET /v1/containers.
        agent
          .upgradeContainers({ trigger: 'user', force })
          .catch((e) => log.warn('container upgrade failed', { error: toClgwError(e).message }));
        return reply(202, await agent.containers());
      }
      if (url.pathname === '/v1/ssh') {
        if (req.method === 'GET') return reply(200, await agent.ssh.view());
        if (req.method !== 'POST')
          return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use GET or POST' } });
        const body = (await readBody(req)) as { enabled?: unknown };
        if (typeof body?.enabled !== 'boolean')
          throw new ClgwError('INVALID_REQUEST', 'send {"enabled": true} or {"enabled": false}');
        return reply(200, body.enabled ? await agent.ssh.enable() : await agent.ssh.disable());
      }
      if (url.pathname === '/v1/diagnose') {
        if (req.method !== 'POST')
          return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use POST' } });
        return reply(200, await agent.diagnose());
      }
      if (url.pathname === '/v1/proxy') {
        if (req.method === 'GET') return reply(200, { proxy: await agent.proxy() });
        if (req.method !== 'POST')
          return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use GET or POST' } });
        const body = await readBody(req);
        if (typeof body !== 'object' || body === null || Array.isArray(body))
          throw new ClgwError('INVALID_REQUEST', 'the proxy setting must be a JSON object');
        const b = body as Record<string, unknown>;
        return reply(200, { proxy: await agent.setProxy(b.off === true ? { off: true } : b) });
      }
      if (url.pathname === '/v1/schedule') {
        if (req.method === 'GET') return reply(200, await agent.schedule());
        if (req.method !== 'POST')
          return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use GET or POST' } });
        const body = await readBody(req);
        if (typeof body !== 'object' || body === null || Array.isArray(body))
          throw new ClgwError('INVALID_REQUEST', 'the update window must be a JSON object');
        const b = body as Record<string, unknown>;
        return reply(200, await agent.setSchedule(b.off === true ? { off: true } : b));
      }
      if (url.pathname === '/v1/logs') {
        if (req.method === 'POST') {
          if (!emptyBody.safeParse(await readBody(req)).success)
            throw new ClgwError('INVALID_REQUEST', 'POST /v1/logs takes no options');
          return reply(201, await agent.createLogLink());
        }
        if (req.method === 'DELETE') return reply(200, await agent.revokeLogLinks());
        return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use POST or DELETE' } });
      }
      if (url.pathname === '/v1/network') {
        if (req.method === 'GET') return reply(200, await agent.network());
        if (req.method !== 'POST')
          return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use GET or POST' } });
        const body = await readBody(req);
        if (typeof body !== 'object' || body === null || Array.isArray(body))
          throw new ClgwError('INVALID_REQUEST', 'the network settings must be a JSON object');
        return reply(200, await agent.changeNetwork(body));
      }
      const route = ROUTES[url.pathname];
      if (!route)
        return reply(404, {
          error: { code: 'INVALID_REQUEST', message: `no such endpoint ${url.pathname}` },
        });
      if (req.method !== 'POST')
        return reply(405, { error: { code: 'INVALID_REQUEST', message: 'use POST' } });
      let request: AgentRequest;
      try {
        request = route(await readBody(req));
      } catch (e) {
        const msg =
          e instanceof z.ZodError ? `invalid request: ${e.issues[0]?.message}` : toClgwError(e).message;
        throw new ClgwError('INVALID_REQUEST', msg);
      }
      await agent.request(request);
      if (request.type === 'check') {
        await agent.waitSettled(AbortSignal.timeout(300_000));
        return reply(200, await agent.status());
      }
      return reply(202, await agent.status());
    })().catch((e) => {
      const err = toClgwError(e);
      log.warn('API request refused', { path: req.url, code: err.code, message: err.message });
      reply(httpStatusOf(err.code), {
        error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
      });
    });
  });
  // Root's clients only (CLI, consoles): a few at once; bounded all the same.
  limitServer(server, { maxConnections: 32 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await fs.chmod(socketPath, 0o660);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
