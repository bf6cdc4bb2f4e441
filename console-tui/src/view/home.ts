/**
 * The tty1 home screen's view model: the agent's status → the lines a technician reads at the
 * appliance (product, version, addresses and portal URLs, update state with a progress bar,
 * alarm, startup diagnostics, SSH banner). Lines are blessed markup with every outside text
 * escaped; plain ASCII and the 8 basic colours only, so they draw on the Linux VGA console.
 */
import { checkWarning, describeCheck } from '@clgw/agent/check-words.js';
import type { DiagnosticsReport } from '@clgw/agent/diagnostics/checks.js';
import type { PresenceView } from '@clgw/agent/presence/presence.js';
import type { Status } from '@clgw/agent/status.js';
import type { FirstBootView } from '@clgw/core/firstboot/report.js';
import { formatBytes, formatTime, LOCAL_NAME, PRODUCT_NAME } from '@clgw/core/format.js';
import { AGENT_AWAY } from './agent.js';
import { presenceText } from './presence.js';
import { clip, escapeText, progressBar, wrapEscaped } from './text.js';

/** The screen is 80 columns on the VGA console; lines leave one column of margin each side. */
export const WIDTH = 78;

export interface HomeInput {
  /** The agent's last answer; null until it has answered once. */
  status: Status | null;
  /** Why the agent could not be asked just now (null: it answered). */
  unreachable: string | null;
  /** The LAN port's IPv4 addresses as the kernel has them (DHCP leases included). */
  addresses: readonly string[];
  /**
   * The agent's SSH banner line while SSH access is on (`sshBanner` of the status's `ssh`), made
   * by the caller: the agent's ssh module also runs sshd, and a view model imports no I/O.
   */
  sshBanner?: string;
  /** The code the web page asks for Reboot and Factory Reset (null: not known yet). */
  presence?: PresenceView | null;
  /** Now, for how long the code lasts (ms since the epoch). */
  now?: number;
  /** The line under it: the account and the principal support needs (`sshSupportLine`). */
  sshSupport?: string;
}

const STATE_WORDS: Record<Status['state'], string> = {
  idle: 'no update in progress',
  checking: 'checking for an update',
  downloading: 'downloading the update',
  verifying: 'verifying the update',
  installing: 'installing the update',
  // The line under it says how many calls it waits for, and until when.
  waitingForCalls: 'ready to restart into',
  lastLook: 'checking that the vendor still offers',
  switching: 'switching to the new release (do not switch off)',
  rebooting: 'restarting the gateway',
  confirming: 'checking the new release after the restart',
  rollingBack: 'going back to the previous release',
  recovering: 'handing over to the recovery system',
  factoryResetting: 'resetting to factory defaults',
  committed: 'the last update was installed',
  rolledBack: 'the last update was rolled back',
  failed: 'the last update failed',
};

const label = (name: string): string => `${name}:`.padEnd(14);
const row = (name: string, value: string): string => `${label(name)}${value}`;
/** The indent of a continuation line under a row's value. */
const INDENT = ' '.repeat(14);
const paint = (text: string, colour: string): string => (colour ? `{${colour}}${text}{/}` : text);

/**
 * Outside text wrapped into lines of `width` columns after `first` (the label, or an indent),
 * continuation lines indented by as much as `first` takes; each line coloured on its own.
 */
function wrapped(first: string, text: string, colour = '', width = WIDTH - first.length): string[] {
  const indent = ' '.repeat(first.length);
  return wrapEscaped(text, width).map((l, i) => `${i ? indent : first}${paint(l, colour)}`);
}

/** A row whose value is outside text: wrapped under the value column, never cut. */
const textRow = (name: string, text: string, colour = ''): string[] => wrapped(label(name), text, colour);

/** Under the agent being away, when it had answered before: what the rest of the screen is. */
export const STALE = 'Below: its last answer, which may be out of date.';

/** How the home screen tells where the menu is (tty1 takes no commands itself). */
export const MENU_HINT = 'Menu (Data Reset, SSH, network, logs): press ALT+F2';

/** The addresses to show: the static one first, then the interfaces' (no duplicates). */
export function displayAddresses(status: Status | null, addresses: readonly string[]): string[] {
  const out: string[] = [];
  const ipv4 = status?.network.settings.ipv4;
  if (ipv4?.mode === 'static') out.push(ipv4.address);
  for (const a of addresses) if (!out.includes(a)) out.push(a);
  return out;
}

/** The update line (and the progress bar line while bytes move). */
export function updateLines(status: Status): string[] {
  const words = STATE_WORDS[status.state] ?? status.state;
  const target = status.target ? ` ${escapeText(status.target.version)}` : '';
  const busy = !['idle', 'committed', 'rolledBack', 'failed'].includes(status.state);
  const lines = [
    row(
      'Update',
      `${busy ? '{yellow-fg}' : ''}${escapeText(words)}${busy ? target : ''}${busy ? '{/}' : ''}`,
    ),
  ];
  if (status.state === 'failed' && status.error) {
    lines.push(...wrapped(INDENT, status.error.message, 'red-fg'));
  }
  // "Waiting for 2 active calls to end before restarting — at the latest 04:00 EST"
  if (status.calls && status.phase) lines.push(...wrapped(INDENT, status.phase, 'yellow-fg'));
  const p = status.progress;
  if (p && busy) {
    const bytes = `${formatBytes(p.bytes)} of ${formatBytes(p.total)}`;
    lines.push(`${INDENT}${progressBar(p.percent, 40)} ${escapeText(bytes)}`);
  }
  return lines;
}

const VERDICT: Record<string, string> = {
  ok: '{green-fg}ok  {/}',
  warning: '{yellow-fg}WARN{/}',
  failed: '{red-fg}FAIL{/}',
};

/** The startup diagnostics: a summary line and one line per check; "not run" before the first run. */
export function diagnosticsLines(report: DiagnosticsReport | null, max = 6): string[] {
  if (!report) return [row('Diagnostics', 'not run')];
  const failed = report.results.filter((r) => r.verdict === 'failed').length;
  const warnings = report.results.filter((r) => r.verdict === 'warning').length;
  const head = `${formatTime(report.at)}: ${failed ? `{red-fg}${failed} failed{/}` : 'all passed'}${
    warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''
  }`;
  const lines = [row('Diagnostics', head)];
  for (const r of report.results.slice(0, max)) {
    // The summary wraps under itself: verdict (5 columns) and name (11) stay a column of their own.
    const [first = '', ...rest] = wrapEscaped(r.summary, WIDTH - 14 - 5 - 11);
    const verdict = VERDICT[r.verdict] ?? escapeText(clip(r.verdict, 4).padEnd(4));
    lines.push(`${INDENT}${verdict} ${escapeText(r.name.padEnd(10))} ${first}`);
    for (const l of rest) lines.push(`${INDENT}${' '.repeat(16)}${l}`);
  }
  return lines;
}

const DEPLOYMENT_COLOUR: Record<FirstBootView['outcome'], string> = {
  applied: '',
  partial: 'yellow-fg',
  refused: 'red-fg',
  none: 'yellow-fg',
};

/**
 * What became of the deployment settings (OVF properties), in one line; none on a box that was
 * never given any and had nowhere to look (a physical appliance, a KVM guest without an ISO).
 */
export function deploymentLines(first: FirstBootView | null): string[] {
  if (!first || (first.outcome === 'none' && first.reasons.length === 0)) return [];
  return textRow('Deployment', first.summary, DEPLOYMENT_COLOUR[first.outcome]);
}

/** Every line of the home screen, top to bottom (blessed markup); the screen pages what does not fit. */
export function homeLines(input: HomeInput): string[] {
  const { status } = input;
  const lines = [`{bold}${PRODUCT_NAME}{/bold}`, ''];
  if (input.unreachable !== null) {
    lines.push(`{red-fg}${AGENT_AWAY}{/}`, ...wrapped('', input.unreachable));
    if (status) lines.push(STALE);
    lines.push('');
  }
  // SSH access on is who may reach the box: right under the title, on the first page always
  // (under the agent being away, which makes everything below the last answer it gave).
  const banner = status ? input.sshBanner : undefined;
  if (banner) {
    lines.push(...wrapped('', banner, 'yellow-fg'));
    if (input.sshSupport) lines.push(...wrapped('', input.sshSupport, 'yellow-fg'));
    lines.push('');
  }
  if (!status) return lines;
  const patches = status.osPatchLevel ? `, patch level ${status.osPatchLevel}` : '';
  lines.push(...textRow('Gateway OS', `${status.gatewayVersion ?? 'unknown'}${patches}`));
  const addresses = displayAddresses(status, input.addresses);
  lines.push(...textRow('Hostname', status.network.settings.hostname));
  lines.push(
    ...(addresses.length ? textRow('IP address', addresses.join(', ')) : [row('IP address', 'none yet')]),
  );
  lines.push(...textRow('Network', status.network.summary));
  lines.push(...deploymentLines(status.firstBoot));
  const urls = [`http://${LOCAL_NAME}/`, ...addresses.map((a) => `http://${a}/`)];
  lines.push(...textRow('Portal', urls.join('  ')));
  if (input.presence) lines.push(row('Portal code', presenceText(input.presence, input.now ?? Date.now())));
  lines.push(...updateLines(status));
  // A check that could not be done: a warning apart from the update line (nothing was installed).
  const warning = checkWarning(status);
  if (warning) lines.push(...textRow('Last check', warning.text, 'yellow-fg'));
  // A release held back by a staged rollout: no warning, but why the gateway does not take it.
  const held =
    status.state === 'idle' && status.check?.outcome === 'notOffered' ? describeCheck(status) : null;
  if (held) lines.push(...textRow('Last check', held.text));
  // An update the vendor halted before this gateway switched to it: why it was discarded.
  if (status.state === 'idle' && status.result?.outcome === 'halted')
    lines.push(...textRow('Last update', status.result.message, 'yellow-fg'));
  const active = status.alarms.filter((a) => !a.clearedAt);
  for (const a of active.slice(-1)) {
    lines.push(...textRow('Alarm', a.code, 'red-fg'));
    lines.push(...wrapped(INDENT, a.message, 'red-fg'));
  }
  lines.push(...diagnosticsLines(status.diagnostics));
  return lines;
}
