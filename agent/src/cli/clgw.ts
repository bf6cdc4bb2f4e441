#!/usr/bin/env node
import { promises as fs } from 'node:fs';
import { ClgwError, isClgwError, type SerializedError, toClgwError } from '@clgw/core/errors.js';
import type { FirstBootView } from '@clgw/core/firstboot/report.js';
import { formatTime } from '@clgw/core/format.js';
import { toInput } from '@clgw/core/network/settings.js';
import { type AppliancePaths, appliancePaths } from '@clgw/core/platform/paths.js';
import { parseOsRelease } from '@clgw/core/system/os-release.js';
import { profileText } from '@clgw/core/system/profiles.js';
import { type ActionNames, CLI_ACTIONS, ownWords } from '../advice.js';
import { AgentClient } from '../api/client.js';
import { describeCheck } from '../check-words.js';
import type { ContainersView } from '../containers/view.js';
import { formatDiagnostics } from '../diagnostics/checks.js';
import type { ScheduleView } from '../schedule/scheduler.js';
import { sshBanner, sshSupportLine } from '../ssh/view.js';
import { collectStatus, type Status } from '../status.js';
import { describeResult, formatContainers, seconds } from './containers.js';
import { fitText, hasByteProgress, outputWidth, progressLine, wrapLine } from './output.js';

/**
 * `clgw` — the command line of the update agent. Its exit codes are listed in USAGE (EXIT below);
 * every failure is one message on stderr, and with `--json` stdout holds one JSON document.
 */
const USAGE = `usage: clgw <command> [options]

commands:
  status [--json]          update state, slots, versions (from disk: agent down)
  check [--json]           look for a new release (does not install it)
  update [--force] [--json]
                           install the newest release, following it to the end
                           (--force: also one rolled back on this appliance,
                           or one not yet offered to it by a staged rollout)
  update --containers [--force] [--json]
                           upgrade only the service containers (compat.yaml)
  containers [--json]      the service containers and their last upgrade
  retry                    after a failed update: start it again
  reboot                   after a failed update: restart the appliance
                           (once no call is up, when a voice service is set)
  reboot-now --calls N     while it waits for calls: restart now, cutting the
                           N calls it shows (N: as in status; unknown)
  mark-good                mark the booted slot good
  mark-bad                 mark the booted slot bad (next boot: the other slot)
  factory-reset --confirm  erase all data, reinstall the factory software
                           (physical appliance; refused in the critical phase)
  data-reset --confirm     erase the onboarding data; keep software and network
  ssh [status] [--json]    SSH access, its time left, the support principal
  ssh on | off             turn SSH access on (for 24 hours) or off
  diagnose [--json]        DNS, NTP, HTTPS, STUN and SIP-TLS checks, now
  proxy [show] [--json]    the HTTP(S) proxy for outbound requests
  proxy set --server HOST --port N [--user USER --password PASSWORD]
  proxy off                connect directly
  schedule [show] [--json] the daily update window and its next start
  schedule set --at HH:MM --tz ZONE [--spread MINUTES]
                           update daily in that window (IANA zone; spread 30)
  schedule off             no window (updates run at boot and on request)
  network [--json]         the network settings in effect
  network --dhcp [--hostname NAME]
  network --static --address IP --netmask MASK [--gateway IP] [--dns IP,IP]
          [--hostname NAME]
  network --hostname NAME  change the LAN port's IPv4 settings or the hostname
                           (MASK: dotted or a prefix length; the rest stays)
  version [--json]         the CLI's version and the gateway OS release
  help                     this text (also --help; --version: version)

--json: one JSON document on stdout (check, update: the status at the end).

exit codes:
  0  done
  1  failed: the operation, the update, or a diagnostic check
  2  usage: unknown command or option, or a value refused
  3  the agent is not reachable
  4  refused now: busy, or a recovery action outside a failed update

environment: CLGW_ROOT (appliance root, default /), COLUMNS (width, default 80)`;

const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, refused: 4 } as const;

function exitCodeOf(e: ClgwError): number {
  if (e.code === 'AGENT_UNREACHABLE') return EXIT.unreachable;
  if (e.code === 'BUSY' || e.code === 'NOT_ALLOWED' || e.code === 'CALLS_CHANGED') return EXIT.refused;
  if (e.code === 'INVALID_REQUEST' || e.code === 'SETTING_INVALID') return EXIT.usage;
  return EXIT.failed;
}

const stdoutWidth = () => outputWidth(process.stdout.columns, process.env);
const stderrWidth = () => outputWidth(process.stderr.columns, process.env);

/** Text on stdout, wrapped to the terminal (80 columns when it is not one). */
function print(text: string): void {
  process.stdout.write(`${fitText(text, stdoutWidth())}\n`);
}

/** One JSON document on stdout: what `--json` prints, unwrapped. */
function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * A failure, once, on stderr: `clgw: CODE: message`, then — for the errors the portal explains —
 * the portal's plain words and advice (agent/src/advice.ts) with the CLI's commands in them.
 */
function printFailure(
  error: Pick<SerializedError, 'code' | 'message' | 'details'>,
  actions?: ActionNames,
): void {
  const width = stderrWidth();
  const lines = wrapLine(`clgw: ${error.code}: ${error.message}`, width, 6);
  const plain = actions && ownWords(error, actions);
  if (plain) lines.push(...wrapLine(plain.title, width), ...wrapLine(plain.advice, width));
  process.stderr.write(`${lines.join('\n')}\n`);
}

/** After a failed check the retry is another check (`clgw retry` would also install). */
const CHECK_ACTIONS: ActionNames = { ...CLI_ACTIONS, retry: 'clgw check' };
/** After an update whose check failed, nothing was installed: the update itself is run again. */
const UPDATE_CHECK_ACTIONS: ActionNames = { ...CLI_ACTIONS, retry: 'clgw update' };

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** `, 1.2 MiB downloaded, 40.0 MiB reused` while an update writes its slot; empty otherwise. */
function sources(p: { downloaded?: number; reused?: number }): string {
  return p.downloaded === undefined || p.reused === undefined
    ? ''
    : `, ${mib(p.downloaded)} downloaded, ${mib(p.reused)} reused`;
}

export function formatStatus(s: Status): string {
  const lines = [
    `gateway OS:   ${s.gatewayVersion ?? 'unknown'} (slot ${s.bootedSlot ?? '?'}, platform ${s.platform ?? '?'})`,
    `patch level:  ${s.osPatchLevel ?? 'unknown'}`,
    `update state: ${s.state}${s.critical ? ' (critical phase)' : ''}${s.source === 'persisted' ? ' [agent not running: from disk]' : ''}`,
  ];
  if (s.progress) {
    // A phase that does not count its bytes as it goes shows none (see hasByteProgress).
    lines.push(
      hasByteProgress(s.progress)
        ? `progress:     ${s.progress.phase}: ${mib(s.progress.bytes)} / ${mib(s.progress.total)} (${s.progress.percent.toFixed(0)} %)${sources(s.progress)}`
        : `progress:     ${s.progress.phase}…`,
    );
  }
  if (s.calls && s.phase) {
    lines.push(`calls:        ${s.phase}`);
    // The technician's way out, naming what it cuts (a container upgrade's wait has none).
    if (s.calls.for !== 'containers')
      lines.push(
        `              (clgw reboot-now --calls ${s.calls.active ?? 'unknown'}: restart now, cutting them)`,
      );
  }
  if (s.target && !['idle', 'committed', 'rolledBack'].includes(s.state)) {
    lines.push(`target:       ${s.target.version} → slot ${s.target.slot}`);
  }
  if (s.error) lines.push(`error:        ${s.error.code}: ${s.error.message}`);
  for (const a of s.alarms.filter((x) => !x.clearedAt)) {
    lines.push(
      `ALARM:        ${a.code}: ${a.message} (raised ${a.raisedAt}${a.recoveredAt ? `, recovered ${a.recoveredAt}` : ''})`,
    );
  }
  if (s.result)
    lines.push(`last update:  ${s.result.outcome}: ${s.result.message} (${formatTime(s.result.at)})`);
  const check = describeCheck(s);
  if (check && s.check) lines.push(`last check:   ${check.text} (${formatTime(s.check.at)})`);
  for (const slot of ['A', 'B'] as const) {
    const v = s.slots[slot];
    const flags = [v.booted ? 'booted' : '', v.ok ? 'good' : 'not bootable', v.try ? 'being tried' : '']
      .filter(Boolean)
      .join(', ');
    lines.push(`slot ${slot}:       ${v.version ?? '(empty)'} — ${flags}`);
  }
  for (const [service, r] of Object.entries(s.containers)) {
    lines.push(
      `container:    ${service} ${r.version ?? '-'} — ${describeResult(r)} (${formatTime(r.at)})${r.downtimeMs !== undefined ? `, downtime ${seconds(r.downtimeMs)}` : ''}`,
    );
  }
  const banner = sshBanner(s.ssh, statusTime(s));
  if (banner) lines.push(`ssh:          ${banner}`);
  const support = sshSupportLine(s.ssh);
  if (support) lines.push(`              ${support}`);
  if (s.diagnostics) {
    const [head, ...checks] = formatDiagnostics(s.diagnostics, formatTime);
    lines.push(`${head}`, ...checks);
  } else lines.push('diagnostics:  not run');
  if (s.profile)
    lines.push(`profile:      ${profileText(s.profile.name, s.profile.memoryBytes, s.profile.rtpPorts)}`);
  lines.push(`network:      ${s.network.settings.hostname}, ${s.network.summary}`);
  if (s.firstBoot) lines.push(...formatFirstBoot(s.firstBoot));
  lines.push(
    `boot order:   ${s.order.join(' ') || '?'}${s.bootEnvironment.readable ? '' : ` (boot environment unreadable: ${s.bootEnvironment.error})`}`,
  );
  return lines.join('\n');
}

/** The first boot: its summary; when and where from; each deployed property; each reason. */
function formatFirstBoot(f: FirstBootView): string[] {
  const indent = ' '.repeat(14);
  const lines = [
    `first boot:   ${f.summary}`,
    `${indent}${formatTime(f.at)}${f.source ? `, from ${f.source}` : ''}`,
  ];
  // The properties as `key=value` words, as many to a line as fit in 80 columns.
  let line = '';
  for (const [k, v] of Object.entries(f.properties)) {
    const w = `${k}=${v === '' ? "''" : v}`;
    if (line && indent.length + line.length + 1 + w.length > 80) {
      lines.push(indent + line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(indent + line);
  for (const r of f.reasons) lines.push(`${indent}- ${r}`);
  return lines;
}

/**
 * When a status was made, by the agent's clock, which stamps every time in it (the check, the
 * result, the progress, SSH's expiry): the CLI compares those with this, never with its own clock,
 * which on a test bench or before NTP may tell another time. Its own clock only from an agent
 * that does not say (`now` is newer than some agents).
 */
function statusTime(s: Pick<Status, 'now'>): number {
  const t = Date.parse(s.now);
  return Number.isFinite(t) ? t : Date.now();
}

/** The agent's clock now (ms), from its status. */
async function agentNow(client: AgentClient): Promise<number> {
  return statusTime(await client.status());
}

/** `clgw update --containers`: starts the run and follows it to its end. */
async function updateContainers(client: AgentClient, force: boolean, json: boolean): Promise<number> {
  const since = (await agentNow(client)) - 1000;
  try {
    await client.upgradeContainers(force);
  } catch (e) {
    if (!(isClgwError(e) && e.code === 'BUSY' && e.message.includes('container upgrade'))) throw e;
    if (!json) print('a container upgrade is already running — following it');
  }
  let v: ContainersView;
  for (;;) {
    v = await client.containers();
    if (!v.running && v.lastRun && Date.parse(v.lastRun.at) >= since) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  if (json) printJson(v);
  else print(formatContainers(v, { lastRun: false, width: stdoutWidth() }));
  if (v.lastRun?.outcome === 'failed') {
    printFailure(v.lastRun.error ?? { code: 'INTERNAL', message: 'the container upgrade failed' });
    return EXIT.failed;
  }
  const rolledBack = v.containers.filter(
    (c) => c.last?.outcome === 'rolledBack' && Date.parse(c.last.at) >= since,
  );
  return rolledBack.length > 0 ? EXIT.failed : EXIT.ok;
}

/**
 * Follows an update to its end. On a terminal the progress is one line redrawn in place, fitted to
 * the terminal's width at each redraw; elsewhere (a pipe, a log) a line per change of phase or of
 * ten percent. `quiet` (`--json`): nothing, stdout is for the document at the end.
 */
async function follow(client: AgentClient, since: number, tty: boolean, quiet: boolean): Promise<Status> {
  let lastLine = '';
  let live = false; // a progress line is on the terminal, without its newline yet
  let livePhase = '';
  let downSince: number | undefined;
  const say = (line: string) => {
    if (quiet || line === lastLine) return;
    lastLine = line;
    if (live) process.stdout.write('\n');
    live = false;
    print(line);
  };
  const redraw = (line: string) => {
    if (quiet) return;
    lastLine = '';
    live = true;
    process.stdout.write(`\r${line}\x1b[K`);
  };
  for (;;) {
    let s: Status;
    try {
      s = await client.status();
      downSince = undefined;
    } catch (e) {
      if (!(isClgwError(e) && e.code === 'AGENT_UNREACHABLE')) throw e;
      // The appliance reboots during an update: wait for the agent to come back.
      downSince ??= Date.now();
      say('appliance restarting… waiting for the agent');
      if (Date.now() - downSince > 180_000) throw e;
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    if (s.progress) {
      const p = s.progress;
      if (tty) {
        // A new phase starts on a new line: the finished one's last line stays on the screen.
        if (live && p.phase !== livePhase && !quiet) process.stdout.write('\n');
        livePhase = p.phase;
        // One column short of the width: a line that fills it exactly wraps on some terminals.
        redraw(progressLine(p, stdoutWidth() - 1, statusTime(s)));
      } else if (hasByteProgress(p)) say(`${p.phase}: ${Math.floor(p.percent / 10) * 10} %`);
      else say(`${p.phase}…`);
    } else {
      say(
        `state: ${s.state}${s.target && s.state !== 'idle' ? ` (${s.target.version} → slot ${s.target.slot})` : ''}`,
      );
    }
    const settled = ['idle', 'committed', 'rolledBack', 'failed'].includes(s.state);
    const newResult = s.result !== null && Date.parse(s.result.at) >= since;
    const newCheck = s.check !== null && Date.parse(s.check.at) >= since && s.check.outcome !== 'available';
    if (settled && (newResult || (newCheck && s.state === 'idle'))) {
      if (live) process.stdout.write('\n');
      return s;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** `clgw proxy [show] | off | set --server HOST --port N [--user U --password P]`. */
async function proxy(client: AgentClient, args: string[], json: boolean): Promise<number> {
  const [sub = 'show', ...rest] = args;
  let view: Awaited<ReturnType<AgentClient['proxy']>>;
  if (sub === 'show' && rest.length === 0) view = await client.proxy();
  else if (sub === 'off' && rest.length === 0) view = await client.setProxy({ off: true });
  else if (sub === 'set') {
    const values: Record<string, string> = {};
    for (let i = 0; i < rest.length; i += 2) {
      const flag = rest[i]!;
      if (!['--server', '--port', '--user', '--password'].includes(flag))
        throw new ClgwError('INVALID_REQUEST', `unknown option "${flag}" for proxy set`);
      const v = rest[i + 1];
      if (v === undefined) throw new ClgwError('INVALID_REQUEST', `${flag} needs a value`);
      values[flag.slice(2)] = v;
    }
    view = await client.setProxy(values);
  } else throw new ClgwError('INVALID_REQUEST', `unknown proxy command "${args.join(' ')}"`);
  const p = view.proxy;
  if (json) printJson(view);
  else
    print(
      p
        ? `proxy: ${p.server}:${p.port}${p.user ? ` as ${p.user}${p.password ? ' (password set)' : ''}` : ''}`
        : 'proxy: none (direct connections)',
    );
  return EXIT.ok;
}

/** `clgw schedule [show] | off | set --at HH:MM --tz ZONE [--spread MINUTES]`. */
async function schedule(client: AgentClient, args: string[], json: boolean): Promise<number> {
  const [sub = 'show', ...rest] = args;
  let view: ScheduleView;
  if (sub === 'show' && rest.length === 0) view = await client.schedule();
  else if (sub === 'off' && rest.length === 0) view = await client.setSchedule({ off: true });
  else if (sub === 'set') {
    const values: Record<string, string> = {};
    for (let i = 0; i < rest.length; i += 2) {
      const flag = rest[i]!;
      if (!['--at', '--tz', '--spread'].includes(flag))
        throw new ClgwError('INVALID_REQUEST', `unknown option "${flag}" for schedule set`);
      const v = rest[i + 1];
      if (v === undefined) throw new ClgwError('INVALID_REQUEST', `${flag} needs a value`);
      values[flag.slice(2)] = v;
    }
    if (!values.at || !values.tz)
      throw new ClgwError('INVALID_REQUEST', 'schedule set needs --at HH:MM and --tz ZONE');
    const spread = values.spread === undefined ? undefined : Number(values.spread);
    view = await client.setSchedule({
      at: values.at,
      tz: values.tz,
      ...(spread === undefined ? {} : { spreadMinutes: Number.isFinite(spread) ? spread : values.spread }),
    });
  } else throw new ClgwError('INVALID_REQUEST', `unknown schedule command "${args.join(' ')}"`);
  if (json) printJson(view);
  else if (!view.window) print('update window: off (updates run at every boot and on request)');
  else {
    const w = view.window;
    print(`update window: ${w.at} ${w.tz}, spread over ${w.spreadMinutes} min`);
    if (view.next) print(`next start:    ${view.next.local} (${view.next.at})`);
  }
  return EXIT.ok;
}

const NETWORK_VALUES = ['--hostname', '--address', '--netmask', '--gateway', '--dns'] as const;

/** `clgw network …`: shows the settings, or changes them starting from the ones in effect. */
async function network(client: AgentClient, args: string[]): Promise<number> {
  const values: Record<string, string> = {};
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if ((NETWORK_VALUES as readonly string[]).includes(a)) {
      const v = args[++i];
      if (v === undefined) throw new ClgwError('INVALID_REQUEST', `${a} needs a value`);
      values[a.slice(2)] = v;
    } else if (a === '--dhcp' || a === '--static' || a === '--json') flags.add(a);
    else throw new ClgwError('INVALID_REQUEST', `unknown option "${a}" for network`);
  }
  if (flags.has('--dhcp') && flags.has('--static'))
    throw new ClgwError('INVALID_REQUEST', 'choose one of --dhcp and --static');
  const current = await client.network();
  if (Object.keys(values).length === 0 && !flags.has('--dhcp') && !flags.has('--static')) {
    const s = current.settings;
    if (flags.has('--json')) printJson(current);
    else
      print(
        `hostname: ${s.hostname}\nIPv4:     ${current.summary}${current.source === 'default' ? ' (factory default)' : ''}${current.error ? `\nwarning:  ${current.error}` : ''}`,
      );
    return EXIT.ok;
  }
  const staticArgs = ['address', 'netmask', 'gateway', 'dns'].filter((k) => k in values);
  if (staticArgs.length > 0 && !flags.has('--static'))
    throw new ClgwError('INVALID_REQUEST', `--${staticArgs[0]} needs --static`);
  const keep = toInput(current.settings);
  const input = flags.has('--static')
    ? { hostname: values.hostname ?? keep.hostname, mode: 'static', ...values }
    : flags.has('--dhcp')
      ? { hostname: values.hostname ?? keep.hostname, mode: 'dhcp' }
      : { ...keep, hostname: values.hostname };
  const view = await client.changeNetwork(input);
  if (flags.has('--json')) printJson(view);
  else print(`network settings applied: hostname ${view.settings.hostname}, ${view.summary}`);
  return EXIT.ok;
}

/** The CLI's own version: agent/package.json, beside dist/ here and on the appliance. */
async function cliVersion(): Promise<string | null> {
  try {
    const pkg = JSON.parse(await fs.readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : null;
  } catch {
    return null;
  }
}

/** `clgw version`: the CLI's (and agent's: one package) version and the booted gateway OS release. */
async function version(paths: AppliancePaths, json: boolean): Promise<number> {
  const cli = await cliVersion();
  let os: Record<string, string> = {};
  let osError: string | undefined;
  try {
    os = parseOsRelease(await fs.readFile(paths.osRelease, 'utf8'));
  } catch (e) {
    osError = `cannot read ${paths.osRelease}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  const gateway = { version: os.VERSION_ID ?? null, name: os.PRETTY_NAME ?? os.NAME ?? null };
  if (json) printJson({ clgw: cli, gatewayOs: gateway, ...(osError ? { error: osError } : {}) });
  else
    print(
      `clgw ${cli ?? 'unknown'}\ngateway OS ${gateway.version ?? 'unknown'}${gateway.name ? ` (${gateway.name})` : ''}${osError ? `\nwarning: ${osError}` : ''}`,
    );
  return EXIT.ok;
}

/**
 * `clgw reboot-now --calls N`: the technician names the calls they were shown (`unknown` when the
 * voice service could not tell), so a count that changed in between is refused, not cut.
 */
async function rebootNow(client: AgentClient, args: string[]): Promise<number> {
  const [flag, value, ...more] = args;
  if (flag !== '--calls' || value === undefined || more.length > 0 || !/^(\d{1,6}|unknown)$/.test(value))
    throw new ClgwError(
      'INVALID_REQUEST',
      'reboot-now needs --calls N: the number of active calls clgw status shows (or unknown), which the restart cuts',
    );
  const s = await client.post('/v1/reboot-now', { calls: value === 'unknown' ? null : Number(value) });
  print(
    `reboot started (state ${s.state}), cutting ${value} call(s): the appliance restarts; this session may end`,
  );
  return EXIT.ok;
}

/** The commands and the options each takes (`network`, `proxy` and `schedule` parse their own). */
const KNOWN: Record<string, string[]> = {
  status: ['--json'],
  check: ['--json'],
  update: ['--force', '--containers', '--json'],
  containers: ['--json'],
  version: ['--json'],
  diagnose: ['--json'],
  retry: [],
  reboot: [],
  'mark-good': [],
  'mark-bad': [],
  'factory-reset': ['--confirm'],
  'data-reset': ['--confirm'],
};

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === 'help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  if (!command) {
    // No command is a usage error: the text goes where errors go, so a script's stdout stays empty.
    process.stderr.write(`${USAGE}\n`);
    return EXIT.usage;
  }
  const flags = new Set(rest);
  const json = flags.has('--json');
  const paths = appliancePaths(process.env.CLGW_ROOT ?? '/');
  const client = new AgentClient(paths.socket);
  const without = (args: string[]) => args.filter((a) => a !== '--json');
  if (command === 'network') return network(client, rest);
  if (command === 'schedule') return schedule(client, without(rest), json);
  if (command === 'proxy') return proxy(client, without(rest), json);
  if (command === 'reboot-now') return rebootNow(client, rest);
  if (command === 'ssh') {
    const args = without(rest);
    const [sub = 'status', ...more] = args;
    if (more.length || !['status', 'on', 'off'].includes(sub) || (json && sub !== 'status'))
      throw new ClgwError('INVALID_REQUEST', `unknown ssh command "${rest.join(' ')}" (status, on, off)`);
    const view = sub === 'status' ? await client.ssh() : await client.setSsh(sub === 'on');
    if (json) printJson(view);
    else {
      const support = sshSupportLine(view);
      const banner = view.enabled ? sshBanner(view, await agentNow(client)) : undefined;
      print(`${banner ?? 'SSH access is disabled'}${support ? `\n${support}` : ''}`);
    }
    return EXIT.ok;
  }
  const name = command === '--version' ? 'version' : command;
  const allowed = KNOWN[name];
  if (!allowed) throw new ClgwError('INVALID_REQUEST', `unknown command "${command}"`);
  for (const f of rest)
    if (!allowed.includes(f)) throw new ClgwError('INVALID_REQUEST', `unknown option "${f}" for ${name}`);

  switch (name) {
    case 'version':
      return version(paths, json);
    case 'diagnose': {
      const report = await client.diagnose();
      if (json) printJson(report);
      else print(formatDiagnostics(report, formatTime).join('\n'));
      return report.ok ? EXIT.ok : EXIT.failed;
    }
    case 'status': {
      let s: Status;
      try {
        s = await client.status();
      } catch (e) {
        if (!(isClgwError(e) && e.code === 'AGENT_UNREACHABLE')) throw e;
        s = await collectStatus(paths);
      }
      if (json) printJson(s);
      else print(formatStatus(s));
      return EXIT.ok;
    }
    case 'check': {
      const s = await client.post('/v1/check');
      // The check could not be done (a warning on the appliance: nothing was installed).
      const failure = s.check?.outcome === 'failed' ? s.check.error : undefined;
      if (json) printJson(s);
      else if (!failure) print(s.check?.message ?? s.state);
      if (failure) {
        printFailure(failure, CHECK_ACTIONS);
        return EXIT.failed;
      }
      return EXIT.ok;
    }
    case 'containers': {
      const v = await client.containers();
      if (json) printJson(v);
      else print(formatContainers(v, { width: stdoutWidth() }));
      return EXIT.ok;
    }
    case 'update': {
      if (flags.has('--containers')) return updateContainers(client, flags.has('--force'), json);
      // The check and the result it waits for are stamped by the agent's clock.
      const since = (await agentNow(client)) - 1000;
      try {
        await client.post('/v1/update', { force: flags.has('--force') });
      } catch (e) {
        if (!(isClgwError(e) && e.code === 'BUSY')) throw e;
        if (!json) print('an update is already in progress — following it');
      }
      const s = await follow(client, since, Boolean(process.stdout.isTTY), json);
      if (json) printJson(s);
      // The update's own result if it got that far, else what its check found. A failure is
      // said once, on stderr (its message is the result's message).
      if (s.result && Date.parse(s.result.at) >= since) {
        const r = s.result;
        // Halted: the vendor withdrew (or replaced) the release before the switch, and this box
        // keeps its own — nothing failed here.
        if (r.outcome === 'committed' || r.outcome === 'halted') {
          if (!json) print(r.message);
          return EXIT.ok;
        }
        if (r.error) printFailure(r.error, CLI_ACTIONS);
        else
          process.stderr.write(
            `${wrapLine(`clgw: ${r.outcome}: ${r.message}`, stderrWidth(), 6).join('\n')}\n`,
          );
        return EXIT.failed;
      }
      if (s.check?.outcome === 'failed') {
        const err = s.check.error ?? { code: 'INTERNAL' as const, message: s.check.message };
        printFailure(err, UPDATE_CHECK_ACTIONS);
        return EXIT.failed;
      }
      if (s.check?.outcome === 'rejected') {
        process.stderr.write(`${wrapLine(`clgw: ${s.check.message}`, stderrWidth(), 6).join('\n')}\n`);
        return EXIT.failed;
      }
      // Not in the release's staged rollout (yet): nothing failed — exit 0, as when up to date —
      // but the technician who asked may take it now.
      if (s.check?.outcome === 'notOffered') {
        if (!json) print(`${s.check.message}\n"clgw update --force" installs it now`);
        return EXIT.ok;
      }
      if (!json) print(s.check?.message ?? s.state);
      return EXIT.ok;
    }
    case 'factory-reset':
    case 'data-reset': {
      if (!flags.has('--confirm')) {
        throw new ClgwError(
          'INVALID_REQUEST',
          command === 'factory-reset'
            ? 'factory-reset erases all data and restores the factory software; add --confirm to go ahead'
            : 'data-reset erases the onboarding data (account link, PBX settings, tokens, advanced settings); add --confirm to go ahead',
        );
      }
      const s = await client.post(`/v1/${command}`, { confirm: true });
      print(
        command === 'factory-reset'
          ? `factory reset started: the appliance restarts into the recovery system (state ${s.state})`
          : 'data reset done: onboarding data erased',
      );
      return EXIT.ok;
    }
    case 'retry':
    case 'reboot': {
      // The agent answers as soon as the action has started. The CLI does not wait for its
      // outcome: a retry is a whole update (download, install, reboot: minutes, through a restart
      // that ends this SSH session), a reboot ends it at once. It says what has started and how
      // to follow it; `clgw update` also follows an update already running.
      const s = await client.post(`/v1/${command}`);
      print(
        command === 'retry'
          ? `retry started (state ${s.state}): the update runs again; see clgw status`
          : s.state === 'waitingForCalls'
            ? `reboot requested: ${s.phase ?? 'waiting for calls to end'}\n(clgw reboot-now --calls N restarts at once, cutting them)`
            : `reboot started (state ${s.state}): the appliance restarts; this session may end`,
      );
      return EXIT.ok;
    }
    case 'mark-good':
    case 'mark-bad': {
      const s = await client.post(`/v1/${command}`);
      print(`${command}: done (state ${s.state})`);
      return EXIT.ok;
    }
  }
  return EXIT.usage;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    const err = toClgwError(e);
    const code = exitCodeOf(err);
    printFailure(err);
    if (code === EXIT.usage) process.stderr.write('see clgw --help\n');
    process.exit(code);
  },
);
