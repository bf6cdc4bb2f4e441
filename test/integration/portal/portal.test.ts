/**
 * The portal over real HTTP on 127.0.0.1, in front of a real agent on a simulated appliance:
 * the strict headers on every response, routes and methods, the page token and same-origin
 * checks, the rate limit, bounded bodies, the event stream, and Retry after an update error.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PortalView } from '../../../portal/src/view.js';
import { until } from '../../support/appliance.js';
import {
  type PortalWorld,
  pageToken,
  plantRecords,
  post,
  readEvents,
  request,
  startPortalProcess,
  startPortalWorld,
} from '../../support/portal.js';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

function expectStrictHeaders(headers: Record<string, unknown>, what: string): void {
  expect(headers['content-security-policy'], what).toBe(CSP);
  expect(headers['x-content-type-options'], what).toBe('nosniff');
  expect(headers['referrer-policy'], what).toBe('no-referrer');
  expect(headers['x-frame-options'], what).toBe('DENY');
}

describe('portal on a running agent', () => {
  let pw: PortalWorld;
  let url: string;

  beforeAll(async () => {
    pw = await startPortalWorld();
    await plantRecords(pw.world.paths, { containers: { freeswitch: '111' } });
    url = pw.portal.url;
  });
  afterAll(async () => {
    await pw?.close();
  });

  it('serves the page rendered from the status, with a token and content-hashed assets', async () => {
    const res = await request(url);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expectStrictHeaders(res.headers, 'GET /');
    expect(res.body).toContain('<h1>CloudLink Gateway</h1>');
    expect(res.body).toContain('<dd><span data-field="gatewayOs">1.0.0</span></dd>');
    expect(res.body).toContain('<span data-field="voipSoftware">111</span>');
    expect(res.body).toContain('<span data-field="cloudSoftware">not installed yet</span>');
    expect(res.body).toContain('<span data-field="diagnostics">not run</span>');
    expect(res.body).toContain(`href="http://127.0.0.1:${new URL(url).port}/"`);
    expect(res.body).toMatch(/<meta name="clgw-token" content="[\w-]+\.\d+\.[\w-]+">/);

    const css = /href="(\/static\/portal\.[0-9a-f]{16}\.css)"/.exec(res.body)![1]!;
    const js = /src="(\/static\/portal\.[0-9a-f]{16}\.js)"/.exec(res.body)![1]!;
    for (const [p, type] of [
      [css, 'text/css; charset=utf-8'],
      [js, 'text/javascript; charset=utf-8'],
    ] as const) {
      const asset = await request(url, { path: p });
      expect(asset.status, p).toBe(200);
      expect(asset.headers['content-type']).toBe(type);
      expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expectStrictHeaders(asset.headers, p);
      const head = await request(url, { path: p, method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.body).toBe('');
      expect(head.headers['content-length']).toBe(asset.headers['content-length']);
    }
    // Another hash, or the bare name, is not an asset.
    expect((await request(url, { path: '/static/portal.0000000000000000.js' })).status).toBe(404);
    expect((await request(url, { path: '/static/portal.js' })).status).toBe(404);
  });

  it('GET /api/status: the view, the status and a token, never cached', async () => {
    const res = await request(url, { path: '/api/status' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expectStrictHeaders(res.headers, '/api/status');
    const body = JSON.parse(res.body) as { token: string; view: PortalView; status: { state: string } };
    expect(body.status.state).toBe('idle');
    expect(body.view.mode).toBe('normal');
    expect(body.view.fields.gatewayOs).toBe('1.0.0');
    expect(body.view.fields.ip).toBe('127.0.0.1');
    expect(body.token).toMatch(/^[\w-]+\.\d+\.[\w-]+$/);
  });

  it('404 for everything else, 405 for a wrong method, 421 for a foreign host name; strict headers on all', async () => {
    const cases: [string, { method?: string; path?: string; headers?: Record<string, string> }, number][] = [
      ['unknown path', { path: '/admin' }, 404],
      ['traversal', { path: '/static/../server.ts' }, 404],
      ['favicon', { path: '/favicon.ico' }, 404],
      ['POST /', { method: 'POST', path: '/' }, 405],
      ['PUT status', { method: 'PUT', path: '/api/status' }, 405],
      ['DELETE events', { method: 'DELETE', path: '/api/events' }, 405],
      ['GET retry', { path: '/api/retry' }, 405],
      ['rebinding', { path: '/', headers: { host: 'evil.example' } }, 421],
      ['rebinding API', { path: '/api/status', headers: { host: 'attacker.example:80' } }, 421],
    ];
    for (const [what, opts, status] of cases) {
      const res = await request(url, opts);
      expect(res.status, what).toBe(status);
      expectStrictHeaders(res.headers, what);
      if (status === 405) expect(res.headers.allow, what).toMatch(/POST|GET, HEAD/);
    }
    // The appliance's own names are fine.
    for (const host of [
      'cloudlink.local',
      'cloudlink-gateway',
      'cloudlink-gateway.local',
      'localhost:8080',
    ]) {
      expect((await request(url, { headers: { host } })).status, host).toBe(200);
    }
    expect((await request(url, { method: 'HEAD' })).status).toBe(200);
  });

  it('refuses POSTs without the page token, with a wrong one, or from another site', async () => {
    // Each refused case gets its own portal so the rate limit does not mix in.
    const own = await startPortalProcess(pw.world.root, { rateLimit: 100 });
    try {
      const token = await pageToken(own.url);
      const refusals: [
        string,
        Promise<{ status: number; body: string; headers: Record<string, unknown> }>,
        number,
        string,
      ][] = [
        ['no token', post(own.url, 'retry', undefined), 403, 'TOKEN_INVALID'],
        ['wrong token', post(own.url, 'retry', `${token.slice(0, -2)}xx`), 403, 'TOKEN_INVALID'],
        ['a token of another portal', post(own.url, 'retry', await pageToken(url)), 403, 'TOKEN_INVALID'],
        [
          'cross-site Origin',
          post(
            own.url,
            'retry',
            token,
            {},
            { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
          ),
          403,
          'CROSS_SITE',
        ],
        [
          'cross-site Origin alone',
          post(own.url, 'retry', token, {}, { origin: 'http://evil.example' }),
          403,
          'CROSS_SITE',
        ],
        [
          'Sec-Fetch-Site same-site',
          post(own.url, 'reboot', token, {}, { 'sec-fetch-site': 'same-site' }),
          403,
          'CROSS_SITE',
        ],
        [
          'a form post (text/plain)',
          post(own.url, 'reboot', token, {}, { 'content-type': 'text/plain' }),
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        ],
        ['body too large', post(own.url, 'retry', token, { pad: 'x'.repeat(4096) }), 413, 'BODY_TOO_LARGE'],
        ['not an object', post(own.url, 'retry', token, [1, 2]), 400, 'INVALID_REQUEST'],
        ['unknown option', post(own.url, 'reboot', token, { force: true }), 400, 'INVALID_REQUEST'],
        [
          'not JSON',
          request(own.url, {
            method: 'POST',
            path: '/api/reboot',
            headers: { 'content-type': 'application/json', 'x-clgw-token': token },
            body: '{reboot',
          }),
          400,
          'INVALID_REQUEST',
        ],
        ['factory reset without the code', post(own.url, 'factory-reset', token, {}), 400, 'CODE_REQUIRED'],
        ['reboot with a blank code', post(own.url, 'reboot', token, { code: '  ' }), 400, 'CODE_REQUIRED'],
        ['a code that is not text', post(own.url, 'reboot', token, { code: 12345 }), 400, 'INVALID_REQUEST'],
        ['retry with a code', post(own.url, 'retry', token, { code: 'AAAAA-AAAAA' }), 400, 'INVALID_REQUEST'],
        [
          'the old typed confirmation',
          post(own.url, 'factory-reset', token, { confirm: 'FACTORY RESET' }),
          400,
          'INVALID_REQUEST',
        ],
      ];
      for (const [what, pending, status, code] of refusals) {
        const res = await pending;
        expect(res.status, what).toBe(status);
        expectStrictHeaders(res.headers, what);
        expect(JSON.parse(res.body).error.code, what).toBe(code);
      }
      // A valid request the agent refuses in its state: the agent's code and message.
      const retry = await post(own.url, 'retry', token);
      expect(retry.status).toBe(409);
      expect(JSON.parse(retry.body).error.code).toBe('NOT_ALLOWED');
      const reset = await post(own.url, 'factory-reset', token, { code: 'AAAAA-AAAAA' });
      expect(reset.status).toBe(409);
      expect(JSON.parse(reset.body).error.message).toContain('physical appliance only');
      // Nothing changed on the appliance.
      expect(pw.running.reboots).toEqual([]);
      expect(pw.running.agent.state).toBe('idle');
    } finally {
      await own.close();
    }
  });

  it('rate-limits POSTs per client address: the sixth in a minute is 429 with Retry-After', async () => {
    const own = await startPortalProcess(pw.world.root);
    try {
      const token = await pageToken(own.url);
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await post(own.url, 'retry', token)).status);
      expect(statuses).toEqual([409, 409, 409, 409, 409]);
      // Counted before the token is looked at: guessing tokens is rate-limited too.
      const limited = await post(own.url, 'retry', undefined);
      expect(limited.status).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(50);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(JSON.parse(limited.body).error.code).toBe('RATE_LIMITED');
      expectStrictHeaders(limited.headers, '429');
      // Reads are not limited.
      expect((await request(own.url, { path: '/api/status' })).status).toBe(200);
    } finally {
      await own.close();
    }
  });
});

describe('event stream and recovery options', () => {
  let pw: PortalWorld | undefined;
  afterEach(async () => {
    await pw?.close();
    pw = undefined;
  });

  it('streams the update error, and Retry from the page starts the update again', async () => {
    pw = await startPortalWorld({ portal: { updateMs: 100, pingMs: 300 } });
    const { world, running } = pw;
    await world.publish('1.1.0');
    const events = await readEvents(pw.portal.url);
    try {
      expect(events.status).toBe(200);
      expect(events.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(events.headers['cache-control']).toBe('no-store');
      expectStrictHeaders(events.headers, 'events');
      const hello = JSON.parse((await events.next((e) => e.event === 'hello', 'hello')).data);
      expect(hello.pingMs).toBe(300);
      const first = JSON.parse((await events.next((e) => e.event === 'view', 'view')).data) as PortalView;
      expect(first.mode).toBe('normal');
      await events.next((e) => e.event === 'ping', 'a ping');

      // The artifacts are missing on the mirror: the download fails with HTTP 404.
      world.mirror.setFault('/releases/', { status: 404 });
      await running.agent.request({ type: 'update' });
      expect(await running.agent.waitSettled(AbortSignal.timeout(60_000))).toBe('failed');
      const failed = JSON.parse(
        (
          await events.next(
            (e) => e.event === 'view' && JSON.parse(e.data).mode === 'error',
            'the error view',
          )
        ).data,
      ) as PortalView;
      expect(failed.fields.errorTitle).toBe(
        "The download server does not offer the update's files (HTTP 404).",
      );
      expect(failed.fields.errorDetail).toMatch(/returned HTTP 404.*\(HTTP_STATUS\)$/);
      expect(failed.show).toMatchObject({ retry: true, reboot: true, factoryReset: false });
      // Views are sent on change only.
      const views = events.events.filter((e) => e.event === 'view').map((e) => e.data);
      expect(new Set(views).size).toBe(views.length);

      // The firewall is fixed; Retry with the stream's token.
      world.mirror.setFault('/releases/', undefined);
      const retry = await post(pw.portal.url, 'retry', hello.token);
      expect(retry.status).toBe(202);
      expect(JSON.parse(retry.body).message).toContain('Retrying');
      await events.next(
        (e) => e.event === 'view' && JSON.parse(e.data).mode === 'updating',
        'the update view',
      );
      // The update runs through to the reboot it asks for.
      await until(() => running.reboots.length > 0, 'the reboot into the new slot');
      expect(running.reboots).toEqual(['update']);
      expect(pw.log.lines.some((l) => l.msg === 'portal: request accepted')).toBe(true);
    } finally {
      events.close();
    }
  });

  it('ends its streams when it closes, and a portal started again on the port serves them again', async () => {
    pw = await startPortalWorld({ portal: { updateMs: 100, pingMs: 300 } });
    const events = await readEvents(pw.portal.url);
    await events.next((e) => e.event === 'view', 'view');
    await pw.portal.close();
    await events.ended;
    await expect(request(pw.portal.url)).rejects.toThrow(/ECONNREFUSED/);
    const again = await pw.restartPortal();
    const events2 = await readEvents(again.url);
    await events2.next((e) => e.event === 'hello', 'hello');
    events2.close();
  });
});
