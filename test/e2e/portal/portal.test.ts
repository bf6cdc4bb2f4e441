/**
 * The portal end to end: Debian's Chromium (headless, driven by playwright-core) on the page of a
 * real portal in front of a real agent on a simulated appliance. The normal page; an update in
 * progress whose percentage moves (the mirror paces the download); an update error with its three
 * options, and Retry; the appliance going away (the portal closes) shows "Lost Connection to
 * Gateway", and the page recovers by itself when it is back. A screenshot of each state goes to
 * .cache/test/portal/.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REPO, until } from '../../support/appliance.js';
import { chromiumMissing, launchChromium } from '../../support/browser.js';
import { type PortalWorld, plantRecords, startPortalWorld } from '../../support/portal.js';
import { recordSkip } from '../../support/skip.js';

const SHOTS = path.join(REPO, '.cache/test/portal');
const available = chromiumMissing === undefined;
if (chromiumMissing) recordSkip('test/e2e/portal', chromiumMissing);

/** Fast stream updates and pings so that a test sees changes and a lost connection quickly. */
const PORTAL = { updateMs: 200, pingMs: 1000 };

let browser: Browser | undefined;
let pw: PortalWorld | undefined;
let page: Page | undefined;
/** Console errors and failed page scripts, CSP violations included. */
let problems: string[] = [];

beforeAll(async () => {
  if (!available) return;
  await fs.mkdir(SHOTS, { recursive: true });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
});

afterEach(async () => {
  await page?.context().close();
  await pw?.close();
  page = undefined;
  pw = undefined;
});

async function open(url: string, width = 1000): Promise<Page> {
  const context = await browser!.newContext({ viewport: { width, height: 900 } });
  page = await context.newPage();
  problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.location().url.endsWith('/favicon.ico')) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(url);
  return page;
}

async function shot(p: Page, name: string): Promise<void> {
  await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

const field = (p: Page, name: string) => p.locator(`[data-field="${name}"]`).first();
const text = (p: Page, name: string) => field(p, name).textContent();
const visible = (p: Page, selector: string) => p.locator(selector).isVisible();

/** Brings the world's agent into the failed state: the release's artifacts answer 404. */
async function failUpdate(w: PortalWorld): Promise<void> {
  await w.world.publish('1.1.0');
  w.world.mirror.setFault('/releases/', { status: 404 });
  await w.running.agent.request({ type: 'update' });
  expect(await w.running.agent.waitSettled(AbortSignal.timeout(60_000))).toBe('failed');
}

describe.skipIf(!available)('portal in headless Chromium', () => {
  it('normal page: product, versions, address, URLs, profile, diagnostics, last update', async () => {
    pw = await startPortalWorld({ portal: PORTAL });
    // What the agent recorded of its last container upgrades and startup diagnostics.
    await plantRecords(pw.world.paths, {
      containers: { tunnel: '1.1.0.01-296', micloud: '1.1.0.01-296', freeswitch: '111' },
      diagnostics: {
        at: '2025-11-21T09:00:00Z',
        results: [
          { name: 'dns', target: '192.0.2.53', verdict: 'ok', summary: 'download.mitel.io resolved' },
          {
            name: 'https',
            target: 'download.mitel.io:443',
            verdict: 'ok',
            summary: 'TLS handshake in 40 ms',
          },
        ],
      },
    });
    const p = await open(pw.portal.url);
    expect(await p.title()).toBe('CloudLink Gateway');
    expect(await p.locator('h1').textContent()).toBe('CloudLink Gateway');
    expect(await text(p, 'gatewayOs')).toBe('1.0.0');
    expect(await text(p, 'cloudSoftware')).toBe('1.1.0.01-296');
    expect(await text(p, 'voipSoftware')).toBe('111');
    // The running root's os-release (the simulated 1.0.0's patch level).
    expect(await text(p, 'osPatchLevel')).toBe('2025-10-01');
    expect(await text(p, 'profile')).toMatch(
      /^(small|small-plus|medium|large) \([\d.]+[GM]iB RAM, RTP port range: \d+-65534\)$/,
    );
    expect(await text(p, 'ip')).toBe('127.0.0.1');
    const port = new URL(pw.portal.url).port;
    expect(await text(p, 'urlLocal')).toBe(`http://cloudlink.local:${port}/`);
    expect(await p.locator('[data-field="urlIp"]').getAttribute('href')).toBe(`http://127.0.0.1:${port}/`);
    expect(await text(p, 'diagnostics')).toBe('all 2 checks passed (2025-11-21 09:00 UTC)');
    expect(await p.locator('[data-list="diagnostics"] li').allTextContents()).toEqual([
      'dns 192.0.2.53: passed — download.mitel.io resolved',
      'https download.mitel.io:443: passed — TLS handshake in 40 ms',
    ]);
    expect(await text(p, 'lastUpdate')).toBe('none yet');
    for (const hidden of ['#updating', '#error', '#lost', '#alarm'])
      expect(await visible(p, hidden), hidden).toBe(false);

    // The script runs and takes over from the server-rendered page: a check's result appears live.
    await pw.world.publish('1.1.0');
    await pw.running.agent.request({ type: 'check' });
    await pw.running.agent.waitSettled();
    await field(p, 'lastCheck')
      .filter({ hasText: /^Release 1\.1\.0 available \(checked \d{4}-\d\d-\d\d \d\d:\d\d UTC\)$/ })
      .waitFor();
    await shot(p, 'normal');
    expect(problems).toEqual([]);
  });

  it('an update in progress: the percentage moves, with bytes, rate and time left', async () => {
    // 26 MiB of artifacts at 4 MiB/s: six or seven seconds of download to watch.
    pw = await startPortalWorld({ portal: PORTAL, mirrorRate: 4 * 1024 * 1024 });
    // Without a chunk index: the streaming download, whose bytes all come over the paced mirror
    // (the adaptive path would copy most of them from slot A at once).
    await pw.world.publish('1.1.0', { chunkIndex: false });
    const p = await open(pw.portal.url);
    await pw.running.agent.request({ type: 'update' });
    await p.locator('#updating').waitFor({ state: 'visible', timeout: 30_000 });
    await p.locator('#progress').waitFor({ state: 'visible', timeout: 30_000 });
    expect(await p.title()).toBe('System update in progress — CloudLink Gateway');
    expect(await text(p, 'updatePhase')).toBe('Downloading the update');
    expect(await text(p, 'updateTarget')).toBe('to release 1.1.0');

    const seen: number[] = [];
    let shotTaken = false;
    await until(
      async () => {
        const t = (await text(p, 'updatePercent')) ?? '';
        const m = /^(\d+) %$/.exec(t);
        if (m && Number(m[1]) !== seen.at(-1)) seen.push(Number(m[1]));
        if (!shotTaken && seen.length >= 3 && Number(m?.[1]) > 10) {
          expect(await text(p, 'updateBytes')).toMatch(/^[\d.]+ (KiB|MiB) of 26\.0 MiB$/);
          expect(await text(p, 'updateRate')).toMatch(/^[\d.]+ (KiB|MiB)\/s$/);
          expect(await text(p, 'updateEta')).toMatch(/^(about \d+ s|calculating…)$/);
          expect(Number(await p.locator('progress').getAttribute('value'))).toBeGreaterThan(0);
          await shot(p, 'updating');
          shotTaken = true;
        }
        return seen.length >= 4 && shotTaken;
      },
      'the percentage to move',
      60_000,
    );
    // It only goes up.
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    // The download ends, the update goes on to the reboot, and the page follows.
    await until(() => pw!.running.reboots.length > 0, 'the update to reach its reboot');
    await field(p, 'updatePhase').filter({ hasText: 'Restarting the gateway' }).waitFor();
    expect(await visible(p, '#progress')).toBe(false);
    expect(problems).toEqual([]);
  });

  it('a check that cannot reach the server: a warning, no Update Error; fits a phone at 200 % text', async () => {
    pw = await startPortalWorld({ portal: PORTAL });
    pw.world.mirror.setFault('/compat.yaml', { status: 404 });
    await pw.running.agent.request({ type: 'check' });
    await pw.running.agent.waitSettled(AbortSignal.timeout(60_000));
    const p = await open(pw.portal.url, 390);
    await p.locator('#check-warning').waitFor({ state: 'visible' });
    expect(await text(p, 'checkWarning')).toMatch(
      /^Cannot reach the download server: GET https:\/\/\S+\/compat\.yaml.* returned HTTP 404.* — the gateway keeps running 1\.0\.0 and will try again at its next start$/,
    );
    expect(await visible(p, '#error')).toBe(false);
    expect(await visible(p, '#retry')).toBe(false);
    // The browser's text at 200 % (the page is sized in rem): nothing wider than the phone, long
    // URLs in the messages included.
    // (Expressions as text: the tests are type-checked without the DOM's types.)
    await p.evaluate("document.documentElement.style.fontSize = '200%'");
    expect(await p.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await shot(p, 'check-warning-390-text200');
    expect(problems).toEqual([]);
  });

  it('an update error shows the error and the three options; Retry starts the update again', async () => {
    pw = await startPortalWorld({ portal: PORTAL, platform: 'physical' });
    await failUpdate(pw);
    const p = await open(pw.portal.url);
    await p.locator('#error').waitFor({ state: 'visible' });
    expect(await p.title()).toBe('Update Error — CloudLink Gateway');
    expect(await text(p, 'errorTitle')).toBe(
      "The download server does not offer the update's files (HTTP 404).",
    );
    expect(await text(p, 'errorDetail')).toMatch(/returned HTTP 404.*\(HTTP_STATUS\)$/);
    for (const option of ['#retry', '#reboot', '#factory-reset']) {
      expect(await visible(p, option), option).toBe(true);
    }
    // Factory Reset asks, in a dialog, for the code on the gateway's own screen; Cancel closes it.
    await p.locator('#factory-reset').click();
    await p.locator('dialog#confirm').waitFor({ state: 'visible' });
    expect(await p.locator('#confirm-title').textContent()).toBe('Factory Reset?');
    expect(await p.locator('#confirm-ok').textContent()).toBe('Factory Reset');
    await shot(p, 'factory-reset-dialog');
    await p.locator('#confirm-cancel').click();
    await p.locator('dialog#confirm').waitFor({ state: 'hidden' });
    await shot(p, 'error');

    // The cause is fixed; Retry: a check runs and the update starts again.
    pw.world.mirror.setFault('/releases/', undefined);
    const checks = pw.world.mirror.stats('/compat.yaml').requests;
    await p.locator('#retry').click();
    await p.locator('#updating').waitFor({ state: 'visible', timeout: 30_000 });
    expect(await visible(p, '#error')).toBe(false);
    // The gateway's answer is still there to read, although the mode it was given in is gone
    // (issue #18: it used to vanish with the error panel the moment the update started).
    await p
      .locator('#action-result')
      .filter({ hasText: /^Retrying: the gateway checks for the update again\.$/ })
      .waitFor({ state: 'visible', timeout: 5_000 });
    expect(await p.evaluate("document.body.getAttribute('data-mode')")).toBe('updating');
    await shot(p, 'retry-answer');
    expect(pw.world.mirror.stats('/compat.yaml').requests).toBeGreaterThan(checks);
    await until(() => pw!.running.reboots.length > 0, 'the update to reach its reboot');
    await field(p, 'updatePhase').filter({ hasText: 'Restarting the gateway' }).waitFor();
    expect(pw.running.reboots).toEqual(['update']);
    // Overtaken by the update, the answer goes after its ten seconds.
    await p.locator('#action-result').waitFor({ state: 'hidden', timeout: 20_000 });
    expect(problems).toEqual([]);
  });

  it('the appliance going away shows Lost Connection; back, the page recovers by itself (and its actions work)', async () => {
    pw = await startPortalWorld({ portal: PORTAL });
    await failUpdate(pw);
    const p = await open(pw.portal.url);
    await p.locator('#error').waitFor({ state: 'visible' });
    expect(await visible(p, '#lost')).toBe(false);

    await pw.portal.close();
    await p.locator('#lost').waitFor({ state: 'visible', timeout: 20_000 });
    expect(await p.locator('#lost h2').textContent()).toBe('Lost Connection to Gateway');
    expect(await p.locator('body').getAttribute('data-connection')).toBe('lost');
    await p
      .locator('#lost-next')
      .filter({ hasText: /^Next try in \d+ s\.$/ })
      .waitFor();
    await shot(p, 'lost');

    // Gone for a few probes, then back (a restarted portal: its old page tokens are void).
    await new Promise((r) => setTimeout(r, 3000));
    const started = Date.now();
    await pw.restartPortal();
    await p.locator('#lost').waitFor({ state: 'hidden', timeout: 20_000 });
    const recoveredMs = Date.now() - started;
    expect(await p.locator('body').getAttribute('data-connection')).toBe('ok');
    expect(await visible(p, '#error')).toBe(true);
    await shot(p, 'recovered');

    // The page picked up the new portal's token: Retry is accepted.
    pw.world.mirror.setFault('/releases/', undefined);
    await p.locator('#retry').click();
    await p.locator('#updating').waitFor({ state: 'visible', timeout: 30_000 });
    expect(pw.log.lines.filter((l) => l.msg === 'portal: request accepted')).toHaveLength(1);
    await until(() => pw!.running.reboots.length > 0, 'the update to reach its reboot');
    expect(problems.filter((m) => /Content Security Policy/i.test(m))).toEqual([]);
    expect(recoveredMs).toBeLessThan(20_000);
  });
});
