/**
 * The portal's view model: status → exactly what the page shows, as display-ready text. The
 * server renders the first page from it and sends it again over the event stream; the page's
 * script only copies these texts into the elements named after them (`data-field`, `data-show`,
 * `data-list`), so every decision about wording and formatting lives here, once.
 * Pure: no `node:*` imports.
 */
import { plainError } from '@clgw/agent/advice.js';
import {
  type PortalDiagnostics,
  type PortalInput,
  type PortalStatus,
  portalOffers,
} from '@clgw/agent/api/portal-contract.js';
import { checkWarning, describeCheck } from '@clgw/agent/check-words.js';
import type { UpdateState } from '@clgw/agent/machine/journal.js';
import { formatBytes, formatTime, LOCAL_NAME, PRODUCT_NAME, portalUrl } from '@clgw/core/format.js';

export type PortalMode = 'normal' | 'updating' | 'error';

/** The page's text elements (`data-field`). */
export const FIELD_NAMES = [
  'gatewayOs',
  'cloudSoftware',
  'voipSoftware',
  'osPatchLevel',
  'profile',
  'ip',
  'hostname',
  'urlLocal',
  'urlIp',
  'network',
  'deployment',
  'diagnostics',
  'lastUpdate',
  'lastCheck',
  'updatePhase',
  'updateTarget',
  'updatePercent',
  'updateBytes',
  'updateRate',
  'updateEta',
  'updateNote',
  'errorTitle',
  'errorAdvice',
  'errorDetail',
  'alarm',
  'checkWarning',
] as const;
export type FieldName = (typeof FIELD_NAMES)[number];

/** The page's parts shown or hidden (`data-show`). */
export const SECTION_NAMES = [
  'updating',
  'error',
  'progress',
  'alarm',
  'retry',
  'reboot',
  'factoryReset',
  'diagnosticsList',
  'services',
  'deployment',
  'checkWarning',
] as const;
export type SectionName = (typeof SECTION_NAMES)[number];

export type ItemState = 'pass' | 'fail' | 'warn' | 'info';
export interface ListItem {
  text: string;
  state: ItemState;
}

export const LIST_NAMES = ['diagnostics', 'services'] as const;
export type ListName = (typeof LIST_NAMES)[number];

export interface PortalView {
  mode: PortalMode;
  /** The browser tab's title. */
  documentTitle: string;
  fields: Record<FieldName, string>;
  show: Record<SectionName, boolean>;
  lists: Record<ListName, ListItem[]>;
  /** The progress bar's value (0–100); null: no bar or an indeterminate one. */
  percent: number | null;
}

/** What the view is made from: the agent's answer on its portal socket. */
export type ViewInput = PortalInput;

export interface ViewContext {
  /** The appliance address the browser's connection arrived at (the server socket's local address). */
  localAddress?: string;
  /** The portal's TCP port (80 on the appliance: left out of the URLs). */
  port: number;
}

// The error page's words come from the agent's one module, shared with the CLI.
export { type PlainError, plainError } from '@clgw/agent/advice.js';

const UNKNOWN = 'unknown';
const NOT_INSTALLED = 'not installed yet';

const PHASES: Partial<Record<UpdateState, string>> = {
  checking: 'Checking for an update',
  downloading: 'Downloading the update',
  verifying: 'Verifying the update',
  installing: 'Installing the update',
  waitingForCalls: 'Waiting for calls to end before restarting',
  lastLook: 'Checking that the vendor still offers the update',
  switching: 'Switching to the new release',
  rebooting: 'Restarting the gateway',
  confirming: 'Checking the new release after the restart',
  rollingBack: 'Going back to the previous release',
  recovering: 'Handing over to the recovery system',
  factoryResetting: 'Resetting to factory defaults',
};

/** The states shown as "System update in progress". */
export function isUpdating(state: UpdateState): boolean {
  return PHASES[state] !== undefined;
}

export function modeOf(status: Pick<PortalStatus, 'state'>): PortalMode {
  if (status.state === 'failed') return 'error';
  return isUpdating(status.state) ? 'updating' : 'normal';
}

export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '—';
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Seconds as `45 s`, `2 min 05 s`, `1 h 20 min`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** Time left at the current rate; `calculating…` until there is a rate. */
export function formatEta(bytes: number, total: number, rate: number): string {
  if (total > 0 && bytes >= total) return 'done';
  if (!(rate > 0) || !(total > 0)) return 'calculating…';
  return `about ${formatDuration((total - bytes) / rate)}`;
}

/** A whole percentage that never shows 100 before the last byte: `0 %` … `99 %`, `100 %`. */
export function formatPercent(bytes: number, total: number): string {
  if (!(total > 0)) return '0 %';
  if (bytes >= total) return '100 %';
  return `${Math.min(99, Math.floor((100 * bytes) / total))} %`;
}

/** `::ffff:192.0.2.1` (an IPv4 client on a dual-stack socket) as `192.0.2.1`. */
export function plainAddress(address: string | undefined): string | undefined {
  if (!address) return undefined;
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** The appliance's address: the static one, else the interfaces', else the one the browser reached. */
export function applianceAddress(input: ViewInput, ctx: ViewContext): string | undefined {
  const ipv4 = input.status.network.settings.ipv4;
  if (ipv4.mode === 'static') return ipv4.address;
  return input.addresses?.[0] ?? plainAddress(ctx.localAddress);
}

const CHECK_LABEL: Record<ItemState, string> = {
  pass: 'passed',
  fail: 'FAILED',
  warn: 'warning',
  info: 'skipped',
};

function diagnosticsView(d: PortalDiagnostics | undefined): { summary: string; items: ListItem[] } {
  if (!d || d.checks.length === 0) return { summary: 'not run', items: [] };
  const items = d.checks.map((c): ListItem => {
    const state: ItemState = c.status === 'skip' ? 'info' : c.status;
    return { text: `${c.name}: ${CHECK_LABEL[state]}${c.message ? ` — ${c.message}` : ''}`, state };
  });
  const failed = d.checks.filter((c) => c.status === 'fail').length;
  const warned = d.checks.filter((c) => c.status === 'warn').length;
  const n = d.checks.length;
  let summary =
    failed > 0
      ? `${failed} of ${n} checks failed`
      : warned > 0
        ? `${n - warned} of ${n} checks passed, ${warned} with a warning`
        : `all ${n} checks passed`;
  if (d.at) summary += ` (${formatTime(d.at)})`;
  return { summary, items };
}

function lastUpdate(status: PortalStatus): string {
  const r = status.result;
  if (!r) return 'none yet';
  const what =
    r.outcome === 'committed'
      ? `Installed ${r.version}`
      : r.outcome === 'rolledBack'
        ? `Rolled back from ${r.version}`
        : r.outcome === 'halted'
          ? `Update to ${r.version} halted`
          : `Update to ${r.version || 'a new release'} failed`;
  const why = r.outcome === 'committed' ? '' : r.message ? `: ${r.message}` : '';
  return `${what} on ${formatTime(r.at)}${why}`;
}

function lastCheck(status: PortalStatus): string {
  const words = describeCheck(status);
  return words && status.check ? `${words.text} (checked ${formatTime(status.check.at)})` : 'not yet';
}

function services(status: PortalStatus): ListItem[] {
  const out: ListItem[] = [];
  // A container upgrade holding the voice service's restart until the site's calls end:
  // "Waiting for 2 active calls to end before restarting the voice service — at the latest …".
  if (status.calls?.for === 'containers' && status.phase)
    out.push({ text: `${status.phase}.`, state: 'info' });
  for (const [name, r] of Object.entries(status.containers)) {
    if (!r) continue;
    // What runs now, first; then what happened to the attempt.
    const attempted = r.attempted ?? 'a new version';
    const text =
      r.outcome === 'rolledBack'
        ? r.version
          ? `${name} ${r.version} runs (the upgrade to ${attempted} was rolled back)`
          : `${name}: not running (installing ${attempted} failed and was undone)`
        : r.outcome === 'removed'
          ? `${name}: removed`
          : `${name} ${r.version ?? UNKNOWN}`;
    out.push({ text, state: r.outcome === 'rolledBack' ? 'warn' : 'info' });
  }
  return out;
}

/** The page's content for one status (and the address the browser reached). */
export function portalView(input: ViewInput, ctx: ViewContext): PortalView {
  const { status } = input;
  const mode = modeOf(status);
  const ip = applianceAddress(input, ctx);
  const diag = diagnosticsView(input.diagnostics);
  const serviceItems = services(status);
  const activeAlarm = [...status.alarms].reverse().find((a) => !a.clearedAt);
  const p = status.progress;
  // "Waiting for 2 active calls to end before restarting — at the latest 04:00 EST"
  const callsWait = status.calls !== null && status.phase !== null;
  const showProgress = mode === 'updating' && p !== null && p.total > 0;
  const err = mode === 'error' ? status.error : null;
  const plain = plainError(err);
  // What the agent accepts from the page is what the page shows (one rule, in the agent's contract).
  const offers = portalOffers(status);
  // What became of the deployment settings, where there is something to say (not on a box that
  // was never given any and looked nowhere).
  // A check that could not be done, shown apart from any update error (nothing was installed).
  const warning = checkWarning(status);
  const first = status.firstBoot;
  const deployment = first && (first.outcome !== 'none' || first.reasons.length > 0) ? first : null;
  const profile = input.profile
    ? `${input.profile.name}${input.profile.detail ? ` (${input.profile.detail})` : ''}`
    : UNKNOWN;

  const fields: Record<FieldName, string> = {
    gatewayOs: status.gatewayVersion ?? UNKNOWN,
    // No version: no container of it was ever installed here (the agent knows every one it put in).
    cloudSoftware: input.versions?.cloudSoftware ?? NOT_INSTALLED,
    voipSoftware: input.versions?.voipSoftware ?? NOT_INSTALLED,
    osPatchLevel: input.versions?.osPatchLevel ?? UNKNOWN,
    profile,
    ip: ip ?? UNKNOWN,
    hostname: status.network.settings.hostname,
    urlLocal: portalUrl(LOCAL_NAME, ctx.port),
    urlIp: ip ? portalUrl(ip, ctx.port) : '',
    network:
      status.network.summary +
      (status.network.error ? ` (saved settings unusable: ${status.network.error})` : ''),
    deployment: deployment ? deployment.summary : '',
    diagnostics: diag.summary,
    lastUpdate: lastUpdate(status),
    lastCheck: lastCheck(status),
    updatePhase:
      mode !== 'updating'
        ? ''
        : callsWait
          ? `${status.target ? `Release ${status.target.version} is ready. ` : ''}${status.phase}.`
          : (PHASES[status.state] ?? status.state),
    updateTarget:
      mode === 'updating' && status.target && !callsWait ? `to release ${status.target.version}` : '',
    updatePercent: showProgress ? formatPercent(p.bytes, p.total) : '',
    updateBytes: showProgress
      ? `${formatBytes(p.bytes)} of ${formatBytes(p.total)}${p.reused ? ` (${formatBytes(p.reused)} already on the gateway)` : ''}`
      : '',
    updateRate: showProgress ? formatRate(p.rate) : '',
    updateEta: showProgress ? formatEta(p.bytes, p.total, p.rate) : '',
    updateNote:
      mode !== 'updating'
        ? ''
        : status.critical
          ? 'Critical step: do not switch the gateway off now.'
          : 'Do not switch the gateway off. Its services may be briefly unavailable; this page follows the update by itself.',
    errorTitle: err || mode === 'error' ? plain.title : '',
    errorAdvice: mode === 'error' ? plain.advice : '',
    errorDetail: err ? `${err.message} (${err.code})` : '',
    alarm: activeAlarm ? `${activeAlarm.code}: ${activeAlarm.message}` : '',
    checkWarning: warning ? warning.text : '',
  };
  return {
    mode,
    documentTitle:
      mode === 'updating'
        ? `System update in progress — ${PRODUCT_NAME}`
        : mode === 'error'
          ? `Update Error — ${PRODUCT_NAME}`
          : PRODUCT_NAME,
    fields,
    show: {
      updating: mode === 'updating',
      error: mode === 'error',
      progress: showProgress,
      alarm: activeAlarm !== undefined,
      retry: offers.retry,
      reboot: offers.reboot,
      factoryReset: offers['factory-reset'],
      diagnosticsList: diag.items.length > 0,
      services: serviceItems.length > 0,
      deployment: deployment !== null,
      checkWarning: warning !== null,
    },
    lists: { diagnostics: diag.items, services: serviceItems },
    percent: showProgress ? Math.min(100, Math.max(0, (100 * p.bytes) / p.total)) : null,
  };
}
