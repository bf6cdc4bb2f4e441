/**
 * The portal page, rendered on the server from the view model so that it is right at the first
 * paint (and readable without JavaScript); the page's script then keeps the same elements up to
 * date from the event stream. Every text from the appliance goes through {@link escapeHtml}.
 * Pure: no `node:*` imports.
 */
import { PRODUCT_NAME } from '@clgw/core/format.js';
import type { FieldName, ListName, PortalView, SectionName } from './view.js';

/** What the confirmation dialog says for each action that needs the code from the gateway's screen. */
export const CONFIRMATIONS = {
  reboot: {
    title: 'Reboot the gateway?',
    text: 'The gateway restarts. Calls in progress are dropped and its services are unavailable for a few minutes; this page reconnects by itself.',
    button: 'Reboot',
  },
  'factory-reset': {
    title: 'Factory Reset?',
    text: 'The gateway restarts into its recovery system, which restores the factory release and erases ALL settings and data on it: network settings, onboarding, logs. This takes 15 to 20 minutes; do not switch the gateway off.',
    button: 'Factory Reset',
  },
} as const;

/** Where the technician finds the code (SPEC.md §9): only the appliance's own screen shows it. */
export const WHERE_IS_THE_CODE =
  "Enter the code shown on the gateway's own screen: the home screen of its console (ALT+F1 on the gateway, or the VMware console of a virtual one) and the top of its menu (ALT+F2). The code changes every few minutes and after each use.";

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text safe in HTML content and in quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

export interface PageAssets {
  /** URL path of the stylesheet and of the script (content-hashed: served as immutable). */
  css: string;
  js: string;
}

/** Renders the whole page for `view`, with the per-page `token` the page's POSTs carry. */
export function renderPage(view: PortalView, token: string, assets: PageAssets): string {
  const f = (name: FieldName, tag = 'span', attrs = '') =>
    `<${tag} data-field="${name}"${attrs}>${escapeHtml(view.fields[name])}</${tag}>`;
  const link = (name: FieldName) =>
    `<a data-field="${name}" data-href href="${escapeHtml(view.fields[name])}">${escapeHtml(view.fields[name])}</a>`;
  const shown = (name: SectionName) => ` data-show="${name}"${view.show[name] ? '' : ' hidden'}`;
  const list = (name: ListName) =>
    view.lists[name].map((i) => `<li class="st-${i.state}">${escapeHtml(i.text)}</li>`).join('');
  const percent = view.percent === null ? '' : ` value="${view.percent.toFixed(1)}"`;
  const row = (label: string, value: string) => `<dt>${label}</dt><dd>${value}</dd>`;
  const confirmButton = (action: keyof typeof CONFIRMATIONS, show: string) => {
    const c = CONFIRMATIONS[action];
    return `<button type="button" id="${action}" class="${action === 'factory-reset' ? 'danger' : ''}" data-action="${action}" data-confirm-title="${escapeHtml(c.title)}" data-confirm-text="${escapeHtml(c.text)}" data-confirm-button="${escapeHtml(c.button)}"${show}>${escapeHtml(c.button)}</button>`;
  };

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="clgw-token" content="${escapeHtml(token)}">
<title>${escapeHtml(view.documentTitle)}</title>
<link rel="stylesheet" href="${assets.css}">
<script src="${assets.js}" defer></script>
</head>
<body data-mode="${view.mode}" data-connection="ok">
<header>
<h1>${PRODUCT_NAME}</h1>
</header>
<main>
<section id="lost" class="panel lost" role="alert" hidden>
<h2>Lost Connection to Gateway</h2>
<p>This page cannot reach the gateway. It may be restarting, or the network between this computer and the gateway is down.</p>
<p>The page keeps trying and comes back by itself when the gateway answers. <span id="lost-next"></span></p>
</section>
<section id="check-warning" class="panel warning" role="status"${shown('checkWarning')}>
<h2>Update check</h2>
<p>${f('checkWarning')}</p>
</section>
<section id="alarm" class="panel alarm" role="alert"${shown('alarm')}>
<h2>Alarm</h2>
<p>${f('alarm')}</p>
</section>
<p id="action-result" class="panel answer" role="status"></p>
<section id="updating" class="panel updating"${shown('updating')}>
<h2>System update in progress</h2>
<p class="phase">${f('updatePhase')} ${f('updateTarget')}</p>
<div id="progress"${shown('progress')}>
<progress max="100"${percent}>${escapeHtml(view.fields.updatePercent)}</progress>
<p class="percent">${f('updatePercent', 'strong')}</p>
<dl class="facts">
${row('Downloaded', f('updateBytes'))}
${row('Rate', f('updateRate'))}
${row('Time left', f('updateEta'))}
</dl>
</div>
<p class="note">${f('updateNote')}</p>
</section>
<section id="error" class="panel error"${shown('error')}>
<h2>Update Error</h2>
<p class="error-title">${f('errorTitle', 'strong')}</p>
<p>${f('errorAdvice')}</p>
<p class="detail">Details: ${f('errorDetail', 'code')}</p>
<div class="actions">
<button type="button" id="retry" data-action="retry"${shown('retry')}>Retry</button>
${confirmButton('reboot', shown('reboot'))}
${confirmButton('factory-reset', shown('factoryReset'))}
</div>
</section>
<dialog id="confirm" aria-labelledby="confirm-title" aria-describedby="confirm-text">
<form method="dialog" id="confirm-form">
<h2 id="confirm-title"></h2>
<p id="confirm-text"></p>
<p class="where">${escapeHtml(WHERE_IS_THE_CODE)}</p>
<label for="presence-code">Code from the gateway's screen</label>
<input id="presence-code" name="code" type="text" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="16" placeholder="XXXXX-XXXXX" required>
<p id="confirm-error" role="alert"></p>
<div class="actions">
<button type="button" id="confirm-cancel">Cancel</button>
<button type="submit" id="confirm-ok" class="danger"></button>
</div>
</form>
</dialog>
<section id="info" class="panel info">
<h2>Gateway</h2>
<dl class="facts">
${row('Gateway OS release', f('gatewayOs'))}
${row('Cloud Software', f('cloudSoftware'))}
${row('VOIP Software', f('voipSoftware'))}
${row('Operating System Patch Level', f('osPatchLevel'))}
${row('Profile', f('profile'))}
${row('IP address', f('ip'))}
${row('Hostname', f('hostname'))}
${row('Portal', `${link('urlLocal')} ${link('urlIp')}`)}
${row('Network', f('network'))}
<div${shown('deployment')}>${row('Deployment', f('deployment'))}</div>
${row('Diagnostics', `${f('diagnostics')}<ul data-list="diagnostics" class="checks"${shown('diagnosticsList')}>${list('diagnostics')}</ul>`)}
${row('Last update', f('lastUpdate'))}
${row('Last check', f('lastCheck'))}
</dl>
<div id="services"${shown('services')}>
<h3>Services</h3>
<ul data-list="services" class="checks">${list('services')}</ul>
</div>
</section>
</main>
<footer><p>${PRODUCT_NAME} local portal</p></footer>
</body>
</html>
`;
}

/**
 * A page of one notice, without script: the stylesheet, the header and one panel. `head` adds to
 * the head (a refresh), `connection` marks the page as the main page does while the agent is away.
 */
function noticePage(
  assets: PageAssets,
  o: { title: string; panel: string; heading: string; text: string; head?: string; connection?: string },
): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${o.head ? `${o.head}\n` : ''}<title>${o.title}</title>
<link rel="stylesheet" href="${assets.css}">
</head>
<body data-mode="normal"${o.connection ? ` data-connection="${o.connection}"` : ''}>
<header>
<h1>${PRODUCT_NAME}</h1>
</header>
<main>
<section class="panel ${o.panel}" role="alert">
<h2>${o.heading}</h2>
<p>${o.text}</p>
</section>
</main>
</body>
</html>
`;
}

/**
 * The page while the agent does not answer (starting, restarting, updating itself): it says so
 * and loads itself again every few seconds.
 */
export function renderUnavailable(assets: PageAssets): string {
  return noticePage(assets, {
    title: PRODUCT_NAME,
    head: '<meta http-equiv="refresh" content="5">',
    connection: 'lost',
    panel: 'lost',
    heading: 'The gateway is starting',
    text: "The gateway's services are starting or restarting. This page loads again by itself every few seconds.",
  });
}

/**
 * What a browser gets for a log link that is not (or no longer) valid: the same page for every
 * reason — unknown, expired, revoked — so it tells a visitor nothing about which links exist.
 */
export function renderLogLinkGone(assets: PageAssets): string {
  return noticePage(assets, {
    title: `Log download — ${PRODUCT_NAME}`,
    panel: 'warning',
    heading: 'This log download link does not work (any more)',
    text: "A log download link lasts 10 minutes, and ends sooner when it is revoked. Make a new one on the gateway's console: its menu (ALT+F2), Download logs.",
  });
}
