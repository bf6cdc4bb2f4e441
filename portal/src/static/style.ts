/**
 * The portal's stylesheet, served as `/static/portal.<hash>.css`. Kept in a TS module so the
 * agent's `tsc -b` build carries it into `dist/` without a copy step. System fonts only: the
 * appliance's page must work without any CDN.
 */
export const PORTAL_CSS = `
:root {
  --fg: #1d2329;
  --muted: #5b6670;
  --bg: #f4f6f8;
  --panel: #ffffff;
  --line: #d5dbe0;
  --accent: #0a5ea8;
  --ok: #1e7b34;
  --warn: #9a6200;
  --bad: #b3261e;
  color-scheme: light;
}
* { box-sizing: border-box; }
html { font-size: 100%; }
body {
  margin: 0;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  line-height: 1.45;
  color: var(--fg);
  background: var(--bg);
}
header {
  background: var(--accent);
  color: #fff;
  padding: 0.9rem 1.25rem;
}
header h1 { margin: 0; font-size: 1.35rem; font-weight: 600; letter-spacing: 0.01em; }
/* Messages carry URLs and addresses without spaces: they break anywhere rather than widen the
   page past a phone's screen (with large text, a word is wider than the screen). */
main { max-width: 52rem; margin: 0 auto; padding: 1rem; overflow-wrap: anywhere; }
footer { max-width: 52rem; margin: 0 auto; padding: 0 1rem 1.5rem; color: var(--muted); font-size: 0.85rem; }
.panel {
  background: var(--panel);
  border: 1px solid var(--line);
  border-radius: 6px;
  padding: 1rem 1.25rem;
  margin-bottom: 1rem;
}
.panel h2 { margin: 0 0 0.6rem; font-size: 1.2rem; }
.panel h3 { margin: 1rem 0 0.4rem; font-size: 1rem; }
[hidden] { display: none !important; }
dl.facts {
  display: grid;
  grid-template-columns: minmax(9rem, max-content) 1fr;
  gap: 0.35rem 1rem;
  margin: 0;
}
dl.facts dt { color: var(--muted); }
dl.facts > div { display: contents; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
dl.facts dd a { margin-right: 0.75rem; }
a { color: var(--accent); }
ul.checks { margin: 0.35rem 0 0; padding-left: 1.1rem; }
ul.checks li.st-pass { color: var(--ok); }
ul.checks li.st-fail { color: var(--bad); font-weight: 600; }
ul.checks li.st-warn { color: var(--warn); }
ul.checks li.st-info { color: var(--fg); }
.updating { border-left: 6px solid var(--accent); }
.updating .phase { font-size: 1.05rem; margin: 0 0 0.75rem; }
progress {
  width: 100%;
  height: 1.4rem;
  accent-color: var(--accent);
}
.percent { font-size: 1.6rem; margin: 0.25rem 0 0.5rem; }
.note { color: var(--muted); margin-bottom: 0; }
.error { border-left: 6px solid var(--bad); }
.error .error-title { font-size: 1.05rem; color: var(--bad); }
.error .detail { color: var(--muted); overflow-wrap: anywhere; }
.error code { font-size: 0.9rem; }
.actions { display: flex; gap: 0.75rem; flex-wrap: wrap; margin: 0.75rem 0; }
button {
  font: inherit;
  padding: 0.45rem 1.2rem;
  border-radius: 4px;
  border: 1px solid var(--accent);
  background: var(--accent);
  color: #fff;
  cursor: pointer;
}
button:disabled { opacity: 0.45; cursor: not-allowed; }
button:focus-visible, input:focus-visible, a:focus-visible { outline: 3px solid #f2b600; outline-offset: 2px; }
.actions button.danger { background: var(--bad); border-color: var(--bad); }
dialog {
  max-width: 34rem;
  width: calc(100% - 2rem);
  border: 1px solid var(--bad);
  border-radius: 8px;
  padding: 1rem 1.25rem;
}
dialog::backdrop { background: rgba(0, 0, 0, 0.45); }
dialog h2 { color: var(--bad); margin-top: 0.2rem; }
dialog .where { color: var(--muted); }
dialog label { display: block; margin: 0.75rem 0 0.25rem; font-weight: 600; }
dialog input {
  font: 1.3rem ui-monospace, monospace;
  letter-spacing: 0.08em;
  padding: 0.35rem 0.5rem;
  width: 12em;
  max-width: 100%;
  text-transform: uppercase;
}
#confirm-cancel { background: #fff; color: var(--accent); }
#confirm-error { min-height: 1.4em; color: var(--bad); margin: 0.5rem 0 0; }
/* The gateway's answer to an action: a panel of its own, above the update's and the error's, so
   that it stays in view whichever of them the action leads to; none while there is no answer. */
.answer { margin-top: 0; border-left: 6px solid var(--accent); font-weight: 600; }
.answer.refused { border-left-color: var(--bad); color: var(--bad); }
#action-result:empty { display: none; }
.alarm { border-left: 6px solid var(--bad); background: #fdf1f0; }
.lost { border-left: 6px solid var(--warn); background: #fff8e6; }
.warning { border-left: 6px solid var(--warn); background: #fff8e6; }
body[data-connection="lost"] #updating,
body[data-connection="lost"] #error,
body[data-connection="lost"] #alarm,
body[data-connection="lost"] #info { opacity: 0.45; }
body[data-connection="lost"] button { pointer-events: none; }
@media (max-width: 34rem) {
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: 0.4rem; }
}
`;
