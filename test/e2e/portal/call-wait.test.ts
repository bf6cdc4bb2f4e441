/**
 * The local page while an update waits for the site's calls to end (issue #22): real Chromium on
 * the portal of a simulated appliance whose voice service is the freeswitch stand-in on a private
 * Podman engine, 2 calls up. The page says how many and until when, and offers nothing that cuts
 * them (a stranger on the LAN must not). Screenshot: .cache/test/portal/waiting-for-calls.png.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO, until } from '../../support/appliance.js';
import { chromiumMissing, launchChromium } from '../../support/browser.js';
import { engineSkipReason, startEngine, type TestEngine } from '../../support/engine.js';
import { type PortalWorld, startPortalWorld } from '../../support/portal.js';
import { recordSkip } from '../../support/skip.js';
import { startVoiceStandin, type VoiceStandin } from '../../support/voice.js';

const SHOTS = path.join(REPO, '.cache/test/portal');
const PASSWORD = 'Portal-Calls-3';
const missing = [chromiumMissing, await engineSkipReason()].filter((m): m is string => m !== undefined);
if (missing.length) recordSkip('test/e2e/portal/call-wait.test.ts', missing.join('; '));

let browser: Browser | undefined;
let engine: TestEngine | undefined;
let voice: VoiceStandin | undefined;
let pw: PortalWorld | undefined;

describe.skipIf(missing.length > 0)('the portal while an update waits for calls to end', () => {
  beforeAll(async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    engine = await startEngine();
    voice = await startVoiceStandin(engine, 'clgw-portal-call-wait-freeswitch', PASSWORD);
    await voice.setCalls(2);
    pw = await startPortalWorld({
      portal: { updateMs: 200, pingMs: 1000 },
      config: { voice: { port: voice.eslPort, passwordFile: 'etc/clgw/voice-password', pollMs: 200 } },
    });
    await fs.writeFile(path.join(pw.world.root, 'etc/clgw/voice-password'), `${PASSWORD}\n`, { mode: 0o600 });
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await pw?.close();
    await voice?.remove();
    await engine?.stop();
  });

  it('says how many calls it waits for and until when, with nothing to cut them', async () => {
    await pw!.world.publish('1.1.0');
    await pw!.running.agent.request({ type: 'update' });
    const status = await until(async () => {
      const s = await pw!.running.agent.status();
      return s.state === 'waitingForCalls' && s.calls?.deadline ? s : undefined;
    }, 'the update waiting for calls');
    // The deadline's time; its date too when that is not today (a run near midnight UTC).
    const deadline = new Date(status.calls!.deadline!).toISOString();
    const context = await browser!.newContext({ viewport: { width: 1000, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(pw!.portal.url);
    const phase = page.locator('[data-field="updatePhase"]').first();
    await phase
      .filter({
        hasText: new RegExp(
          `^Release 1\\.1\\.0 is ready\\. Waiting for 2 active calls to end before restarting — at the latest (${deadline.slice(0, 10)} )?${deadline.slice(11, 16)} UTC\\.$`,
        ),
      })
      .waitFor({ timeout: 60_000 });
    expect(await page.locator('[data-field="updateTarget"]').first().textContent()).toBe('');
    await page.screenshot({ path: path.join(SHOTS, 'waiting-for-calls.png'), fullPage: true });
    // Reboot now is the technician's, at the console or over SSH: the page offers no button.
    expect(await page.getByRole('button', { name: /reboot/i }).count()).toBe(0);
    expect(problems).toEqual([]);
    await context.close();
  });
});
