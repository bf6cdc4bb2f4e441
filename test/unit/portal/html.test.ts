import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { escapeHtml, renderPage } from '../../../portal/src/html.js';
import { PORTAL_JS } from '../../../portal/src/static/script.js';
import { PORTAL_CSS } from '../../../portal/src/static/style.js';
import { FIELD_NAMES, LIST_NAMES, portalView, SECTION_NAMES } from '../../../portal/src/view.js';
import { sampleStatus } from '../../support/status.js';

const assets = { css: '/static/portal.0123.css', js: '/static/portal.4567.js' };
const ctx = { localAddress: '192.0.2.10', port: 80 };

describe('the page', () => {
  it('escapes every text from the appliance', () => {
    expect(escapeHtml(`<img src=x onerror="alert('1')">&`)).toBe(
      '&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;',
    );
    const hostile = '<script>alert(1)</script>';
    const status = sampleStatus({
      state: 'failed',
      error: { code: 'HTTP_STATUS', message: `GET "${hostile}": 500`, transient: false },
      network: {
        settings: { hostname: 'gw"><b>', ipv4: { mode: 'dhcp' } },
        source: 'default',
        summary: hostile,
      },
    });
    const html = renderPage(portalView({ status }, ctx), 'tok"en', assets);
    expect(html).not.toContain(hostile);
    expect(html).not.toContain('gw"><b>');
    expect(html).toContain('GET &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;: 500 (HTTP_STATUS)');
    expect(html).toContain('<meta name="clgw-token" content="tok&quot;en">');
  });

  it('has no inline script or style, and loads only its own assets', () => {
    const html = renderPage(portalView({ status: sampleStatus() }, ctx), 't', assets);
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
    expect(html).not.toMatch(/<style/);
    expect(html).not.toMatch(/\sstyle=/);
    expect(html).not.toMatch(/\son[a-z]+=/);
    expect(html).not.toMatch(/https?:\/\/(?!cloudlink\.local|192\.0\.2\.10)/);
    expect(html).toContain(`<script src="${assets.js}" defer></script>`);
    expect(html).toContain(`<link rel="stylesheet" href="${assets.css}">`);
  });

  it('has an element for every field, section and list of the view model', () => {
    const html = renderPage(portalView({ status: sampleStatus() }, ctx), 't', assets);
    for (const f of FIELD_NAMES) expect(html, f).toContain(`data-field="${f}"`);
    for (const s of SECTION_NAMES) expect(html, s).toContain(`data-show="${s}"`);
    for (const l of LIST_NAMES) expect(html, l).toContain(`data-list="${l}"`);
    expect(html).toContain('Lost Connection to Gateway');
  });

  it('renders the state it is given: normal, in progress, error', () => {
    const normal = renderPage(portalView({ status: sampleStatus() }, ctx), 't', assets);
    expect(normal).toContain('<body data-mode="normal"');
    expect(normal).toMatch(/<section id="updating"[^>]* hidden>/);
    expect(normal).toMatch(/<section id="error"[^>]* hidden>/);
    const updating = renderPage(
      portalView(
        {
          status: sampleStatus({
            state: 'downloading',
            progress: { phase: 'd', bytes: 50, total: 200, rate: 10, startedAt: 0, percent: 25 },
          }),
        },
        ctx,
      ),
      't',
      assets,
    );
    expect(updating).toMatch(/<section id="updating"[^>]*data-show="updating">/);
    expect(updating).toContain('<progress max="100" value="25.0">');
    const failed = renderPage(
      portalView({ status: sampleStatus({ state: 'failed', platform: 'physical' }) }, ctx),
      't',
      assets,
    );
    expect(failed).toMatch(/<section id="error"[^>]*data-show="error">/);
    expect(failed).toMatch(
      /<button type="button" id="factory-reset"[^>]*data-show="factoryReset">Factory Reset</,
    );
    // Reboot and Factory Reset open the dialog that asks for the code on the gateway's own screen.
    expect(failed).toMatch(/<button type="button" id="reboot"[^>]*data-confirm-title="Reboot the gateway\?"/);
    expect(failed).toContain('<dialog id="confirm"');
    expect(failed).toContain('Enter the code shown on the gateway&#39;s own screen');
    expect(failed).toContain('<input id="presence-code" name="code"');
    // The answer to an action sits outside the panels a change of mode hides (issue #18).
    const errorPanel = /<section id="error"[\s\S]*?<\/section>/.exec(failed)![0];
    expect(errorPanel).not.toContain('action-result');
    expect(failed).toMatch(
      /<p id="action-result" class="panel answer" role="status"><\/p>\n<section id="updating"/,
    );
  });

  it('the script and stylesheet are plain text that parses', () => {
    expect(() => new vm.Script(PORTAL_JS)).not.toThrow();
    expect(PORTAL_JS).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    expect(PORTAL_CSS).not.toMatch(/@import|url\(/);
  });
});
