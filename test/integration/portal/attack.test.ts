/**
 * A stranger on the LAN against the gateway (issue #16), over real HTTP on loopback: the real
 * portal process in front of a real agent on a simulated physical appliance. Each refused attempt
 * leaves the slots, the boot environment and the update state as they were.
 *
 * - Reboot and Factory Reset need the code shown on the appliance's own screen: without it, with
 *   a wrong one, with a used one, with one from before a lockout, with one that changed and whose
 *   grace ran out, with 10 characters outside its alphabet → refused with a clear message;
 * - wrong codes are counted for everybody together: five from five addresses lock every code, and
 *   the console shows the lockout;
 * - what the page does not offer is refused whatever the code (Factory Reset when idle);
 * - the portal's socket offers none of the root-only routes, and never the code itself;
 * - floods of requests and event streams leave both processes up and bounded.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import type { PresenceView } from '../../../agent/src/presence/presence.js';
import { presenceText } from '../../../console-tui/src/view/presence.js';
import { type AgentOptions, fingerprint, until } from '../../support/appliance.js';
import { type PortalWorld, pageToken, post, request, startPortalWorld } from '../../support/portal.js';

let pw: PortalWorld | undefined;
afterEach(async () => {
  await pw?.close();
  pw = undefined;
});

/**
 * An appliance whose update failed: the page offers Retry and Reboot, and Factory Reset on a
 * physical one. `config`: agent.json settings besides the world's (a short-lived code, say);
 * `agent`: how the agent is started (a reboot port that fails).
 */
async function failedAppliance(
  platform: 'physical' | 'virtual' = 'physical',
  config?: Record<string, unknown>,
  agent?: AgentOptions,
): Promise<{ pw: PortalWorld; agent: AgentClient }> {
  const w = await startPortalWorld({ platform, config, agent, portal: { rateLimit: 1000 } });
  await w.world.publish('1.1.0');
  w.world.mirror.setFault('/releases/', { status: 404 });
  await w.running.agent.request({ type: 'update' });
  expect(await w.running.agent.waitSettled(AbortSignal.timeout(60_000))).toBe('failed');
  return { pw: w, agent: new AgentClient(w.world.paths.socket, 10_000) };
}

/** One request on the narrow socket, as a compromised portal could send it. */
function onPortalSocket(
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json' } : {},
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const errorOf = (body: string) => (JSON.parse(body) as { error: { code: string; message: string } }).error;

/** Another code of the same form that is surely not the current one. */
const otherThan = (code: string) => (code.startsWith('2') ? '33333-33333' : '22222-22222');

describe('proof of presence for Reboot and Factory Reset', () => {
  it('refuses no code, a wrong code and a used code, each with a clear message; nothing changes', async () => {
    let agent: AgentClient;
    ({ pw, agent } = await failedAppliance());
    const before = await fingerprint(pw.world.paths);
    const url = pw.portal.url;
    const token = await pageToken(url);

    const none = await post(url, 'factory-reset', token, {});
    expect(none.status).toBe(400);
    expect(errorOf(none.body)).toEqual({
      code: 'CODE_REQUIRED',
      message: "Enter the code shown on the gateway's own screen.",
    });

    const code = (await agent.presence()).code;
    const wrong = await post(url, 'factory-reset', token, { code: otherThan(code) });
    expect(wrong.status).toBe(403);
    expect(errorOf(wrong.body).code).toBe('PRESENCE_CODE_INVALID');
    expect(errorOf(wrong.body).message).toMatch(
      /^That is not the code on the gateway's screen.*4 tries left before a lockout\.$/,
    );
    const wrongReboot = await post(url, 'reboot', token, { code: otherThan(code) });
    expect(wrongReboot.status).toBe(403);

    expect(await fingerprint(pw.world.paths)).toEqual(before);
    expect(pw.running.reboots).toEqual([]);
    expect((await agent.status()).state).toBe('failed');
    expect((await agent.presence()).failures).toBe(2);

    // The right code, typed as a person would (lower case, no dash), is taken once.
    const reboot = await post(url, 'reboot', token, { code: code.toLowerCase().replace('-', '') });
    expect(reboot.status).toBe(202);
    expect(JSON.parse(reboot.body).message).toMatch(/restarting/);
    await until(() => pw!.running.reboots.length > 0, 'the reboot');
    const after = await agent.presence();
    expect(after.code).not.toBe(code);
    expect(after.failures).toBe(0);
    // Not offered any more: the state moved on (a replay where it is still offered: below).
    const replay = await post(url, 'factory-reset', token, { code });
    expect(replay.status).toBe(409);
    expect(errorOf(replay.body).code).toBe('NOT_ALLOWED');
    expect(pw.running.reboots).toHaveLength(1);
    expect(pw.log.lines.some((l) => l.msg === 'portal: request refused by the agent')).toBe(true);
  });

  it('counts a code of 10 characters outside the alphabet as a wrong code: 403, never a 500', async () => {
    let agent: AgentClient;
    ({ pw, agent } = await failedAppliance());
    const before = await fingerprint(pw.world.paths);
    const url = pw.portal.url;
    const token = await pageToken(url);
    const code = (await agent.presence()).code;
    // 10 characters but 20 bytes: the comparison once threw on them (500 INTERNAL, not counted).
    const typed = ['ÉÉÉÉÉ-ÉÉÉÉÉ', 'éééééééééé'];
    for (const [i, given] of typed.entries()) {
      const res = await post(url, 'reboot', token, { code: given });
      expect(res.status, given).toBe(403);
      expect(errorOf(res.body).code, given).toBe('PRESENCE_CODE_INVALID');
      expect(errorOf(res.body).message, given).toMatch(
        new RegExp(`; ${4 - i} tries left before a lockout\\.$`),
      );
    }
    // The same straight on the narrow socket, as a compromised portal could send it.
    const direct = await onPortalSocket(pw.world.paths.portalSocket, 'POST', '/v1/factory-reset', {
      code: 'ÄÄÄÄÄÄÄÄÄÄ',
    });
    expect(direct.status).toBe(403);
    expect(errorOf(direct.body).code).toBe('PRESENCE_CODE_INVALID');
    expect(await agent.presence()).toMatchObject({ code, failures: 3 });
    await pw.running.deps.log.flush();
    const agentLog = await fs.readFile(pw.world.paths.logFile, 'utf8');
    expect(agentLog).not.toContain('request failed');
    expect(agentLog.match(/portal: wrong presence code/g)).toHaveLength(3);
    expect(await fingerprint(pw.world.paths)).toEqual(before);
    expect(pw.running.reboots).toEqual([]);
  });

  it('refuses a used code where the action is still offered: 403 PRESENCE_CODE_INVALID, nothing changes', async () => {
    let agent: AgentClient;
    // The hand-over to the recovery system fails at its reboot: the update state is failed again,
    // where the page still offers Reboot and Factory Reset — and the code was used.
    ({ pw, agent } = await failedAppliance('physical', undefined, {
      rebootFails: (reason) => reason === 'recovery',
    }));
    const url = pw.portal.url;
    const token = await pageToken(url);
    const code = (await agent.presence()).code;
    const reset = await post(url, 'factory-reset', token, { code });
    expect(reset.status).toBe(202);
    await until(
      async () => pw!.running.reboots.length > 0 && (await agent.status()).state === 'failed',
      'the hand-over to fail back to failed',
    );
    expect(pw.running.reboots).toEqual(['recovery']);
    const before = await fingerprint(pw.world.paths);
    const current = (await agent.presence()).code;
    expect(current).not.toBe(code);
    for (const action of ['reboot', 'factory-reset']) {
      const replay = await post(url, action, token, { code });
      expect(replay.status, action).toBe(403);
      expect(errorOf(replay.body).code, action).toBe('PRESENCE_CODE_INVALID');
      expect(errorOf(replay.body).message, action).toMatch(/^That is not the code on the gateway's screen/);
    }
    expect(await agent.presence()).toMatchObject({ code: current, failures: 2 });
    expect(await fingerprint(pw.world.paths)).toEqual(before);
    expect(pw.running.reboots).toEqual(['recovery']);
    expect((await agent.status()).state).toBe('failed');
  });

  it('refuses Factory Reset on a failed virtual appliance with the right code: 409, the code unused', async () => {
    let agent: AgentClient;
    ({ pw, agent } = await failedAppliance('virtual'));
    const before = await fingerprint(pw.world.paths);
    const url = pw.portal.url;
    const token = await pageToken(url);
    const code = (await agent.presence()).code;
    const page = await post(url, 'factory-reset', token, { code });
    const direct = await onPortalSocket(pw.world.paths.portalSocket, 'POST', '/v1/factory-reset', { code });
    for (const [via, res] of [
      ['portal', page],
      ['portal socket', direct],
    ] as const) {
      expect(res.status, via).toBe(409);
      expect(errorOf(res.body).code, via).toBe('NOT_ALLOWED');
      expect(errorOf(res.body).message, via).toMatch(
        /^Factory Reset is offered on the physical appliance only; this is a virtual appliance — redeploy it from its image instead$/,
      );
    }
    // Refused before the code was looked at: not used, no failure counted.
    expect(await agent.presence()).toMatchObject({ code, failures: 0 });
    expect(await fingerprint(pw.world.paths)).toEqual(before);
    expect(pw.running.reboots).toEqual([]);
    // Still good for what the page does offer there.
    const reboot = await post(url, 'reboot', token, { code });
    expect(reboot.status).toBe(202);
    await until(() => pw!.running.reboots.length > 0, 'the reboot');
    expect(pw.running.reboots).toEqual(['user']);
  });

  it('refuses a code read before it changed once its grace is over, with a clear message; nothing changes', async () => {
    let agent: AgentClient;
    // A code that lives 2 s, the previous one taken for 1 s more (agent.json; only ever shorter).
    ({ pw, agent } = await failedAppliance('physical', { presence: { lifetimeMs: 2000, graceMs: 1000 } }));
    const before = await fingerprint(pw.world.paths);
    const url = pw.portal.url;
    const token = await pageToken(url);
    const read = await agent.presence();
    // The technician reads the code, and types it after it changed and its grace ran out.
    await until(() => Date.now() > read.expiresAt + 1000 + 200, 'the code to change and its grace to end');
    const late = await post(url, 'reboot', token, { code: read.code });
    expect(late.status).toBe(403);
    expect(errorOf(late.body)).toMatchObject({
      code: 'PRESENCE_CODE_INVALID',
      message:
        "That is not the code on the gateway's screen (it changes every few minutes and after each use); 4 tries left before a lockout.",
    });
    const now = await agent.presence();
    expect(now.code).not.toBe(read.code);
    expect(now.failures).toBe(1);
    expect(await fingerprint(pw.world.paths)).toEqual(before);
    expect(pw.running.reboots).toEqual([]);
    expect((await agent.status()).state).toBe('failed');
  });

  it('locks every code after five wrong ones from five addresses; the console shows it', async () => {
    let agent: AgentClient;
    ({ pw, agent } = await failedAppliance());
    const before = await fingerprint(pw.world.paths);
    const url = pw.portal.url;
    const code = (await agent.presence()).code;
    const statuses: number[] = [];
    for (let i = 2; i <= 6; i++) {
      const from = `127.0.0.${i}`; // five hosts of the LAN, one wrong code each
      const token = await pageToken(url);
      statuses.push((await post(url, 'reboot', token, { code: otherThan(code) }, {}, from)).status);
    }
    expect(statuses).toEqual([403, 403, 403, 403, 423]);
    const view: PresenceView = await agent.presence();
    expect(view.lockedUntil).toBeGreaterThan(Date.now() + 14 * 60_000);
    expect(view.code).not.toBe(code);
    // Even the right code is refused while locked, from anywhere.
    const right = await post(
      url,
      'factory-reset',
      await pageToken(url),
      { code: view.code },
      {},
      '127.0.0.9',
    );
    expect(right.status).toBe(423);
    expect(errorOf(right.body)).toMatchObject({ code: 'PRESENCE_LOCKED' });
    expect(errorOf(right.body).message).toMatch(
      /^Too many wrong codes: .* locked until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(the gateway's clock\)\.$/,
    );
    // What tty1 and the tty2 menu header draw from the agent's answer.
    expect(presenceText(view, Date.now())).toMatch(/locked until \d\d:\d\d UTC.* after 5 wrong codes/);
    expect(await fingerprint(pw.world.paths)).toEqual(before);
    expect(pw.running.reboots).toEqual([]);
    // Retry needs no code and is not locked.
    pw.world.mirror.setFault('/releases/', undefined);
    expect((await post(url, 'retry', await pageToken(url))).status).toBe(202);
  });

  it('refuses what the page does not offer, whatever the code: Factory Reset and Reboot when idle', async () => {
    pw = await startPortalWorld({ platform: 'physical', portal: { rateLimit: 1000 } });
    const agent = new AgentClient(pw.world.paths.socket, 10_000);
    const before = await fingerprint(pw.world.paths);
    const token = await pageToken(pw.portal.url);
    const code = (await agent.presence()).code;
    for (const action of ['factory-reset', 'reboot', 'retry']) {
      const res = await post(pw.portal.url, action, token, action === 'retry' ? {} : { code });
      expect(res.status, action).toBe(409);
      expect(errorOf(res.body).code, action).toBe('NOT_ALLOWED');
      expect(errorOf(res.body).message, action).toMatch(/only after a failed update/);
    }
    // Refused before the code was looked at: it is still the same and counts no failure.
    expect(await agent.presence()).toMatchObject({ code, failures: 0 });
    expect(await fingerprint(pw.world.paths)).toEqual(before);
    expect(pw.running.reboots).toEqual([]);
    expect((await agent.status()).state).toBe('idle');
  });
});

describe("the portal's socket", () => {
  it('offers none of the root-only routes, and never the code; the view has no SSH state', async () => {
    pw = await startPortalWorld({ platform: 'physical' });
    const sock = pw.world.paths.portalSocket;
    const before = await fingerprint(pw.world.paths);
    const rootOnly: [string, string, unknown?][] = [
      ['GET', '/v1/status'],
      ['GET', '/v1/presence'],
      ['POST', '/v1/check', {}],
      ['POST', '/v1/update', { force: true }],
      ['POST', '/v1/mark-good', {}],
      ['POST', '/v1/mark-bad', {}],
      ['POST', '/v1/data-reset', { confirm: true }],
      ['GET', '/v1/ssh'],
      ['POST', '/v1/ssh', { enabled: true }],
      ['GET', '/v1/network'],
      ['POST', '/v1/network', { mode: 'dhcp' }],
      ['GET', '/v1/proxy'],
      ['POST', '/v1/proxy', { off: true }],
      ['GET', '/v1/schedule'],
      ['POST', '/v1/schedule', { off: true }],
      ['POST', '/v1/logs', {}],
      ['DELETE', '/v1/logs'],
      ['GET', '/v1/containers'],
      ['POST', '/v1/containers/update', {}],
      ['POST', '/v1/diagnose', {}],
    ];
    for (const [method, path, body] of rootOnly) {
      const res = await onPortalSocket(sock, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    // The root API's own form of a factory reset is not this socket's.
    const rootStyle = await onPortalSocket(sock, 'POST', '/v1/factory-reset', { confirm: true });
    expect(rootStyle.status).toBe(400);
    expect(errorOf(rootStyle.body).message).toContain('unknown option "confirm"');
    const noCode = await onPortalSocket(sock, 'POST', '/v1/factory-reset', {});
    expect(noCode.status).toBe(409); // idle: not offered
    expect(await fingerprint(pw.world.paths)).toEqual(before);
    expect(pw.running.reboots).toEqual([]);
    expect(await pw.running.agent.ssh.view()).toMatchObject({ enabled: false });

    const view = await onPortalSocket(sock, 'GET', '/v1/view');
    expect(view.status).toBe(200);
    expect(JSON.parse(view.body).status).not.toHaveProperty('ssh');
    // The code never leaves through the portal: not in its page, status or stream.
    const code = (await new AgentClient(pw.world.paths.socket).presence()).code;
    const compact = code.replace('-', '');
    for (const path of ['/', '/api/status']) {
      const res = await request(pw.portal.url, { path });
      expect(res.body, path).not.toContain(code);
      expect(res.body, path).not.toContain(compact);
    }
    expect(view.body).not.toContain(compact);
  });
});

describe('under load', () => {
  it('takes the event-stream cap before any wait: 400 at once open at most 32', async () => {
    // Connections uncapped here, so that every one of the 400 reaches the stream cap.
    pw = await startPortalWorld({ portal: { pingMs: 60_000, maxConnections: 1000 } });
    const url = new URL('/api/events', pw.portal.url);
    const outcomes = await Promise.all(
      Array.from(
        { length: 400 },
        () =>
          new Promise<{ status: number; req: http.ClientRequest }>((resolve) => {
            const req = http.get(url, { agent: false }, (res) => {
              res.resume();
              resolve({ status: res.statusCode ?? 0, req });
            });
            req.on('error', () => resolve({ status: 0, req }));
          }),
      ),
    );
    const open = outcomes.filter((o) => o.status === 200).length;
    const refused = outcomes.filter((o) => o.status === 503).length;
    for (const o of outcomes) o.req.destroy();
    expect(open).toBeLessThanOrEqual(32);
    expect(open).toBeGreaterThan(0);
    expect(open + refused).toBe(400);
  });

  it('answers or refuses 1,500 simultaneous status requests and stays up, as does the agent', async () => {
    pw = await startPortalWorld();
    const url = new URL('/api/status', pw.portal.url);
    const statuses = await Promise.all(
      Array.from(
        { length: 1500 },
        () =>
          new Promise<number>((resolve) => {
            const req = http.get(url, { agent: false }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            });
            // Connections past the cap are closed as they arrive.
            req.on('error', () => resolve(0));
          }),
      ),
    );
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200 || s === 0)).toBe(true);
    // Both still answer, and the portal process is the one that started.
    expect(process.kill(pw.portal.pid, 0)).toBe(true);
    expect((await request(pw.portal.url, { path: '/api/status' })).status).toBe(200);
    expect((await new AgentClient(pw.world.paths.socket).status()).state).toBe('idle');
  });
});
