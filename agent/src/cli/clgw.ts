#!/usr/bin/env node
import { SingleBar } from 'cli-progress';
import { AgentClient } from '../api/client.js';
import { describeCheck } from '../check-words.js';
import type { ServiceResult } from '../containers/state.js';
import type { ContainersView } from '../containers/view.js';
import { formatDiagnostics } from '../diagnostics/checks.js';
import { ClgwError, isClgwError, toClgwError } from '../errors.js';
import type { FirstBootView } from '../firstboot/report.js';
import { formatTime } from '../format.js';
import { toInput } from '../network/settings.js';
import { appliancePaths } from '../platform/paths.js';
import type { ScheduleView } from '../schedule/scheduler.js';
import { sshBanner, sshSupportLine } from '../ssh/view.js';
import { collectStatus, type Status } from '../status.js';

/**
 * `clgw` — the command line of the update agent.
 *
 * Exit codes: 0 done; 1 the operation failed (update failed or rolled back: the error code is
 * printed); 2 usage error; 3 the agent is not reachable; 4 refused in the current state (busy,
 * or a recovery action outside the failed state).
 */
const USAGE = `usage: clgw <command> [options]
  status [--json]      state, slots, versions (from disk when the agent is down)
  check                look for a new release (does not install)
  update [--force]     install the newest release and follow it to the end
                       (--force: also a release that was rolled back on this appliance)
  update --containers [--force]
                       upgrade only the service containers to what compat.yaml names
  containers [--json]  the service containers: version, image, state, health, uptime,
                       and the last upgrade with its downtime
  retry                recovery action after a failed update: try again
  reboot               recovery action after a failed update: restart the appliance
  mark-good            mark the booted slot good
  mark-bad             mark the booted slot bad (the next boot uses the other slot)
  factory-reset --confirm
                       reset to factory default through the recovery system (physical
                       appliance only; erases all data; refused in the critical phase)
  data-reset --confirm erase the onboarding data (account link, PBX settings, tokens,
                       advanced settings); keeps software and network configuration
  ssh [status]         whether SSH access is on, for how long, and the certificate
                       principal support needs (appliance-<id>)
  ssh on | off         turn SSH access on (it turns itself off after 24 hours) or off;
                       on only once sshd answers
  diagnose             run the startup diagnostics now (DNS, NTP, HTTPS, STUN, SIP-TLS);
                       exit 1 when a check failed
  proxy [show]         the HTTP(S) proxy for outbound requests (password not shown)
  proxy set --server HOST --port N [--user USER --password PASSWORD]
  proxy off            connect directly
  schedule [show]      the update window and when it next starts
  schedule set --at HH:MM --tz ZONE [--spread MINUTES]
                       update automatically every day in that window (IANA zone, e.g.
                       America/New_York; a fleet spreads over MINUTES, default 30)
  schedule off         no update window (updates still run at every boot)
  network [--json]     the network settings in effect
  network --dhcp [--hostname NAME]
  network --static --address IP --netmask MASK [--gateway IP] [--dns IP,IP] [--hostname NAME]
  network --hostname NAME
                       change the LAN port's IPv4 settings and/or the hostname (MASK: dotted
                       or a prefix length); the other settings stay as they are
environment: CLGW_ROOT (appliance root, default /)`;

const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, refused: 4 } as const;

function exitCodeOf(e: unknown): number {
  if (!isClgwError(e)) return EXIT.failed;
  if (e.code === 'AGENT_UNREACHABLE') return EXIT.unreachable;
  if (e.code === 'BUSY' || e.code === 'NOT_ALLOWED') return EXIT.refused;
  if (e.code === 'SETTING_INVALID') return EXIT.usage;
  return EXIT.failed;
}

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
    `update state: ${s.state}${s.critical ? ' (critical phase)' : ''}${s.source === 'persisted' ? ' [agent not running: from disk]' : ''}`,
  ];
  if (s.progress) {
    lines.push(
      `progress:     ${s.progress.phase}: ${mib(s.progress.bytes)} / ${mib(s.progress.total)} (${s.progress.percent.toFixed(0)} %)${sources(s.progress)}`,
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
  if (s.result) lines.push(`last update:  ${s.result.outcome}: ${s.result.message} (${s.result.at})`);
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
      `container:    ${service} ${r.version ?? '-'} — ${describeResult(r)} at ${r.at}${r.downtimeMs !== undefined ? `, downtime ${seconds(r.downtimeMs)}` : ''}`,
    );
  }
  const banner = sshBanner(s.ssh);
  if (banner) lines.push(`ssh:          ${banner}`);
  const support = sshSupportLine(s.ssh);
  if (support) lines.push(`              ${support}`);
  if (s.diagnostics) {
    const [head, ...checks] = formatDiagnostics(s.diagnostics);
    lines.push(`${head}`, ...checks);
  } else lines.push('diagnostics:  not run');
  if (s.profile) lines.push(`profile:      ${s.profile.line.replace(/^performance profile: /, '')}`);
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

/** `upgraded from 1.0.0`, `installed`, `rolled back 1.1.0`, `removed`. */
function describeResult(r: ServiceResult): string {
  switch (r.outcome) {
    case 'upgraded':
      return `upgraded${r.from ? ` from ${r.from}` : ''}`;
    case 'rolledBack':
      return `rolled back ${r.attempted ?? ''}`.trimEnd();
    default:
      return r.outcome;
  }
}

function seconds(ms: number | undefined): string {
  return ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`;
}

function uptime(s: number | undefined): string {
  if (s === undefined) return '-';
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

export function formatContainers(v: ContainersView): string {
  const lines: string[] = [];
  if (!v.engine.reachable) lines.push(`container engine not reachable: ${v.engine.error?.message ?? '?'}`);
  const header = ['NAME', 'VERSION', 'IMAGE', 'STATE', 'HEALTH', 'UPTIME', 'LAST UPGRADE', 'DOWNTIME'];
  const rows = v.containers.map((c) => [
    c.service,
    c.version ?? '-',
    c.image ?? '-',
    c.state,
    c.health,
    uptime(c.uptimeSeconds),
    c.last ? `${describeResult(c.last)} ${c.last.at}` : '-',
    seconds(c.last?.downtimeMs),
  ]);
  if (rows.length === 0) lines.push('no service containers');
  else {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    for (const r of [header, ...rows])
      lines.push(
        r
          .map((x, i) => x.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      );
  }
  for (const c of v.containers) {
    if (c.last?.outcome === 'rolledBack' && c.last.error)
      lines.push(`${c.service}: rolled back: ${c.last.error.message}`);
    if (c.rejected.length)
      lines.push(
        `${c.service}: not installed again automatically: ${c.rejected.join(', ')} (clgw update --containers --force)`,
      );
  }
  if (v.running) lines.push('a container upgrade is running');
  else if (v.lastRun?.outcome === 'failed')
    lines.push(`last run failed: ${v.lastRun.error?.code}: ${v.lastRun.error?.message}`);
  return lines.join('\n');
}

/** `clgw update --containers`: starts the run and follows it to its end. */
async function updateContainers(client: AgentClient, force: boolean): Promise<number> {
  const since = Date.now() - 1000;
  try {
    await client.upgradeContainers(force);
  } catch (e) {
    if (!(isClgwError(e) && e.code === 'BUSY' && e.message.includes('container upgrade'))) throw e;
    process.stdout.write('a container upgrade is already running — following it\n');
  }
  let v: ContainersView;
  for (;;) {
    v = await client.containers();
    if (!v.running && v.lastRun && Date.parse(v.lastRun.at) >= since) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  process.stdout.write(`${formatContainers(v)}\n`);
  if (v.lastRun?.outcome === 'failed') {
    process.stderr.write(`clgw: ${v.lastRun.error?.code}: ${v.lastRun.error?.message}\n`);
    return EXIT.failed;
  }
  const rolledBack = v.containers.filter(
    (c) => c.last?.outcome === 'rolledBack' && Date.parse(c.last.at) >= since,
  );
  return rolledBack.length > 0 ? EXIT.failed : EXIT.ok;
}

async function follow(client: AgentClient, since: number, tty: boolean): Promise<Status> {
  const bar = tty
    ? new SingleBar({
        format: ' {phase} [{bar}] {percentage}% | {done}/{all} MiB{sources} | {rate} MiB/s',
        barCompleteChar: '#',
        barIncompleteChar: '.',
        hideCursor: true,
      })
    : undefined;
  let barPhase = '';
  let lastLine = '';
  let downSince: number | undefined;
  const say = (line: string) => {
    if (line === lastLine) return;
    lastLine = line;
    if (bar && barPhase) {
      bar.stop();
      barPhase = '';
    }
    process.stdout.write(`${line}\n`);
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
      if (bar) {
        const payload = {
          phase: p.phase,
          done: (p.bytes / 1048576).toFixed(1),
          all: (p.total / 1048576).toFixed(1),
          sources: sources(p),
          rate: (p.rate / 1048576).toFixed(1),
        };
        if (barPhase !== p.phase) {
          if (barPhase) bar.stop();
          bar.start(100, Math.floor(p.percent), payload);
          barPhase = p.phase;
          lastLine = '';
        } else bar.update(Math.floor(p.percent), payload);
      } else {
        say(`${p.phase}: ${Math.floor(p.percent / 10) * 10} %`);
      }
    } else {
      say(
        `state: ${s.state}${s.target && s.state !== 'idle' ? ` (${s.target.version} → slot ${s.target.slot})` : ''}`,
      );
    }
    const settled = ['idle', 'committed', 'rolledBack', 'failed'].includes(s.state);
    const newResult = s.result !== null && Date.parse(s.result.at) >= since;
    const newCheck = s.check !== null && Date.parse(s.check.at) >= since && s.check.outcome !== 'available';
    if (settled && (newResult || (newCheck && s.state === 'idle'))) {
      if (bar && barPhase) bar.stop();
      return s;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** `clgw proxy [show] | off | set --server HOST --port N [--user U --password P]`. */
async function proxy(client: AgentClient, args: string[]): Promise<number> {
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
  process.stdout.write(
    p
      ? `proxy: ${p.server}:${p.port}${p.user ? ` as ${p.user}${p.password ? ' (password set)' : ''}` : ''}\n`
      : 'proxy: none (direct connections)\n',
  );
  return EXIT.ok;
}

/** `clgw schedule [show] | off | set --at HH:MM --tz ZONE [--spread MINUTES]`. */
async function schedule(client: AgentClient, args: string[]): Promise<number> {
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
  if (!view.window) process.stdout.write('update window: off (updates run at every boot and on request)\n');
  else {
    const w = view.window;
    process.stdout.write(`update window: ${w.at} ${w.tz}, spread over ${w.spreadMinutes} min\n`);
    if (view.next) process.stdout.write(`next start:    ${view.next.local} (${view.next.at})\n`);
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
    process.stdout.write(
      flags.has('--json')
        ? `${JSON.stringify(current, null, 2)}\n`
        : `hostname: ${s.hostname}\nIPv4:     ${current.summary}${current.source === 'default' ? ' (factory default)' : ''}\n${current.error ? `warning:  ${current.error}\n` : ''}`,
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
  process.stdout.write(`network settings applied: hostname ${view.settings.hostname}, ${view.summary}\n`);
  return EXIT.ok;
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const flags = new Set(rest);
  const known: Record<string, string[]> = {
    status: ['--json'],
    check: [],
    update: ['--force', '--containers'],
    containers: ['--json'],
    retry: [],
    reboot: [],
    'mark-good': [],
    'mark-bad': [],
    'factory-reset': ['--confirm'],
    'data-reset': ['--confirm'],
  };
  if (!command || command === '--help' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command ? EXIT.ok : EXIT.usage;
  }
  const paths = appliancePaths(process.env.CLGW_ROOT ?? '/');
  const client = new AgentClient(paths.socket);
  if (command === 'network') return network(client, rest);
  if (command === 'schedule') return schedule(client, rest);
  if (command === 'proxy') return proxy(client, rest);
  if (command === 'ssh') {
    const [sub = 'status', ...more] = rest;
    if (more.length || !['status', 'on', 'off'].includes(sub))
      throw new ClgwError('INVALID_REQUEST', `unknown ssh command "${rest.join(' ')}" (status, on, off)`);
    const view = sub === 'status' ? await client.ssh() : await client.setSsh(sub === 'on');
    const support = sshSupportLine(view);
    process.stdout.write(`${sshBanner(view) ?? 'SSH access is disabled'}\n${support ? `${support}\n` : ''}`);
    return EXIT.ok;
  }
  if (command === 'diagnose') {
    if (rest.length) throw new ClgwError('INVALID_REQUEST', `unknown option "${rest[0]}" for diagnose`);
    const report = await client.diagnose();
    process.stdout.write(`${formatDiagnostics(report).join('\n')}\n`);
    return report.ok ? EXIT.ok : EXIT.failed;
  }
  const allowed = known[command];
  if (!allowed) throw new ClgwError('INVALID_REQUEST', `unknown command "${command}"`);
  for (const f of rest)
    if (!allowed.includes(f)) throw new ClgwError('INVALID_REQUEST', `unknown option "${f}" for ${command}`);

  switch (command) {
    case 'status': {
      let s: Status;
      try {
        s = await client.status();
      } catch (e) {
        if (!(isClgwError(e) && e.code === 'AGENT_UNREACHABLE')) throw e;
        s = await collectStatus(paths);
      }
      process.stdout.write(flags.has('--json') ? `${JSON.stringify(s, null, 2)}\n` : `${formatStatus(s)}\n`);
      return EXIT.ok;
    }
    case 'check': {
      const s = await client.post('/v1/check');
      // The check could not be done (a warning on the appliance: nothing was installed).
      const failure = s.check?.outcome === 'failed' ? s.check.error : undefined;
      if (failure) {
        process.stderr.write(`clgw: ${failure.code}: ${failure.message}\n`);
        return EXIT.failed;
      }
      process.stdout.write(`${s.check?.message ?? s.state}\n`);
      return EXIT.ok;
    }
    case 'containers': {
      const v = await client.containers();
      process.stdout.write(
        flags.has('--json') ? `${JSON.stringify(v, null, 2)}\n` : `${formatContainers(v)}\n`,
      );
      return EXIT.ok;
    }
    case 'update': {
      if (flags.has('--containers')) return updateContainers(client, flags.has('--force'));
      const since = Date.now() - 1000;
      try {
        await client.post('/v1/update', { force: flags.has('--force') });
      } catch (e) {
        if (!(isClgwError(e) && e.code === 'BUSY')) throw e;
        process.stdout.write('an update is already in progress — following it\n');
      }
      const s = await follow(client, since, Boolean(process.stdout.isTTY));
      // The update's own result if it got that far, else what its check found.
      if (s.result && Date.parse(s.result.at) >= since) {
        process.stdout.write(`${s.result.message}\n`);
        if (s.result.outcome === 'committed') return EXIT.ok;
        const err = s.result.error;
        if (err) process.stderr.write(`clgw: ${err.code}: ${err.message}\n`);
        return EXIT.failed;
      }
      if (s.check?.outcome === 'failed') {
        const err = s.check.error;
        process.stderr.write(`clgw: ${err ? `${err.code}: ` : ''}${s.check.message}\n`);
        return EXIT.failed;
      }
      process.stdout.write(`${s.check?.message ?? s.state}\n`);
      return s.check?.outcome === 'rejected' ? EXIT.failed : EXIT.ok;
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
      process.stdout.write(
        command === 'factory-reset'
          ? `factory reset started: the appliance restarts into the recovery system (state ${s.state})\n`
          : 'data reset done: onboarding data erased\n',
      );
      return EXIT.ok;
    }
    case 'retry':
    case 'reboot':
    case 'mark-good':
    case 'mark-bad': {
      const s = await client.post(`/v1/${command}`);
      process.stdout.write(`${command}: done (state ${s.state})\n`);
      return EXIT.ok;
    }
  }
  return EXIT.usage;
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    const err = toClgwError(e);
    process.stderr.write(`clgw: ${err.code}: ${err.message}\n`);
    if (err.code === 'INVALID_REQUEST') process.stderr.write(`${USAGE}\n`);
    process.exit(err.code === 'INVALID_REQUEST' ? EXIT.usage : exitCodeOf(err));
  },
);
