/**
 * Proof of presence end to end (issue #16): a simulated physical appliance run by the boot
 * emulator (the real agent and the real portal, each its own process), its update failed. The
 * technician reads the code off tty1 — `clgw-console home` in tmux, TERM=linux, 80x25 — and types
 * it into the page's Factory Reset dialog in headless Chromium; a wrong code first is refused in
 * the dialog. The factory reset then runs for real: the recovery system restores slot A and the
 * agent starts again on the factory release. Screenshots and the tty1 capture go to
 * .cache/test/portal/.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../../agent/src/api/client.js';
import type { Status } from '../../../agent/src/status.js';
import { runAppliance } from '../../../scripts/sim/boot-emulator.js';
import { makeWorld, REPO, until, type World } from '../../support/appliance.js';
import { chromiumMissing, launchChromium } from '../../support/browser.js';
import { request } from '../../support/portal.js';
import { recordSkip } from '../../support/skip.js';
import { Tmux, tmuxPath } from '../../support/tmux.js';

const SHOTS = path.join(REPO, '.cache/test/portal');
const missing = [
  chromiumMissing,
  tmuxPath ? undefined : 'tmux is not installed (scripts/setup console installs it)',
].filter((m): m is string => m !== undefined);
if (missing.length) recordSkip('test/e2e/portal/presence.test.ts', missing.join('; '));

let browser: Browser | undefined;
let world: World | undefined;
let appliance: ReturnType<typeof runAppliance> | undefined;
const tmux = new Tmux('presence', SHOTS);

afterAll(async () => {
  await browser?.close();
  await tmux.close();
  await appliance?.stop();
  await world?.close();
});

describe.skipIf(missing.length > 0)('Factory Reset from the page with the code on tty1', () => {
  it('a wrong code is refused in the dialog; the code read off tty1 starts the reset, which runs', async () => {
    await fs.mkdir(SHOTS, { recursive: true });
    world = await makeWorld({ platform: 'physical', boot: false });
    const narration: string[] = [];
    appliance = runAppliance({ root: world.root, say: (l) => narration.push(l), maxBoots: 6 });
    const agent = new AgentClient(world.paths.socket, 10_000);
    const status = () => agent.status();
    await until(async () => (await status()).state === 'idle', 'the agent to start');

    // The update fails: its artifacts are missing on the mirror.
    await world.publish('1.1.0');
    world.mirror.setFault('/releases/', { status: 404 });
    await agent.post('/v1/update', {});
    await until(async () => (await status()).state === 'failed', 'the update to fail');

    // tty1, as the technician sees it.
    await tmux.start('home', world.root);
    const screen = await tmux.waitFor('home', /Portal code: +[A-Z0-9]{5}-[A-Z0-9]{5}/);
    await tmux.save('home', 'tty1-portal-code');
    const code = /Portal code: +([A-Z0-9]{5}-[A-Z0-9]{5})/.exec(screen)![1]!;

    const url = (await fs.readFile(world.paths.portalUrl, 'utf8')).trim();
    await until(async () => (await request(url, { path: '/api/status' })).status === 200, 'the portal');
    browser = await launchChromium();
    const page = await (await browser.newContext({ viewport: { width: 1000, height: 900 } })).newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(url);
    await page.locator('#error').waitFor({ state: 'visible' });

    await page.locator('#factory-reset').click();
    const dialog = page.locator('dialog#confirm');
    await dialog.waitFor({ state: 'visible' });
    expect(await page.locator('#confirm-title').textContent()).toBe('Factory Reset?');
    expect(await dialog.textContent()).toContain("Enter the code shown on the gateway's own screen");

    // Mistyped: refused in the dialog, which stays open; nothing happens to the appliance.
    await page.locator('#presence-code').fill(code.startsWith('2') ? '33333-33333' : '22222-22222');
    await page.locator('#confirm-ok').click();
    await page
      .locator('#confirm-error')
      .filter({ hasText: /That is not the code on the gateway's screen.*4 tries left/ })
      .waitFor();
    expect(await dialog.isVisible()).toBe(true);
    await page.screenshot({ path: path.join(SHOTS, 'presence-wrong-code.png'), fullPage: true });
    expect((await status()).state).toBe('failed');

    // The code from tty1, typed as read: the page says what it started, and keeps saying it once
    // the state has moved on (issue #18: the text used to go with the first view after it).
    await page.locator('#presence-code').fill(code);
    const answer = page.waitForResponse(
      (r) => r.url().endsWith('/api/factory-reset') && r.request().method() === 'POST',
    );
    await page.locator('#confirm-ok').click();
    const res = await answer;
    expect(res.status()).toBe(202);
    await dialog.waitFor({ state: 'hidden' });
    const said = page.locator('#action-result').filter({ hasText: /^Factory reset started/ });
    await said.waitFor({ state: 'visible', timeout: 5_000 });
    // The next view (the reset under way), or else the gateway gone before the page saw one.
    await until(
      async () =>
        (await page.evaluate(
          "document.body.getAttribute('data-mode') !== 'error' || document.body.getAttribute('data-connection') === 'lost'",
        )) === true,
      'the page to leave the error view',
      8_000,
    );
    expect(await said.isVisible()).toBe(true);
    await page.screenshot({ path: path.join(SHOTS, 'presence-reset-started.png'), fullPage: true });

    // The reset runs: recovery restores slot A, the agent comes back on the factory release.
    await until(
      () => narration.some((l) => l.includes('recovery completed')),
      'the recovery system to finish',
      120_000,
    );
    const back = await until(
      async () => {
        const s: Status = await status();
        return s.state === 'idle' && s.bootedSlot === 'A' ? s : undefined;
      },
      'the agent on the factory release',
      60_000,
    );
    expect(back.gatewayVersion).toBe('1.0.0');
    expect(narration.some((l) => /GRUB chose the recovery system/.test(l))).toBe(true);
    expect(problems).toEqual([]);
    // A whole factory reset (the recovery system included) under the waits above, not the
    // default 60 s: on a loaded machine it took 50 s.
  }, 240_000);
});
