import { promises as fs } from 'node:fs';
import { type SerializedError, serializeError } from '@clgw/core/errors.js';
import { type FirstBootView, firstBootView } from '@clgw/core/firstboot/report.js';
import { type NetworkView, readNetwork } from '@clgw/core/network/network.js';
import { readJsonFile } from '@clgw/core/platform/atomic.js';
import type { AppliancePaths, SlotName } from '@clgw/core/platform/paths.js';
import { describeSlots } from '@clgw/core/slot/bootchooser.js';
import { readGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { parseOsRelease, patchLevelOf } from '@clgw/core/system/os-release.js';
import type { Progress } from './actors/progress.js';
import { type ContainersState, readContainersState } from './containers/state.js';
import type { DiagnosticsReport } from './diagnostics/checks.js';
import { readDiagnostics } from './diagnostics/service.js';
import type { CheckResult, Journal, UpdateResult, UpdateState } from './machine/journal.js';
import { describeSchedule, readSchedule, type ScheduleView } from './schedule/scheduler.js';
import { bootedSlotFromCmdline } from './slot/cmdline.js';
import { readSlotStatus } from './slot/status.js';
import { describeSsh, readSsh, type SshView } from './ssh/ssh.js';
import { type Alarm, readAlarms } from './state/alarms.js';
import { readHistory } from './state/history.js';
import { readJournal } from './state/journal-file.js';
import { describeCallWait } from './voice/wait.js';

export interface SlotView {
  version: string | null;
  /** Marked good in the boot environment. */
  ok: boolean;
  /** Being tried: booted and not yet marked good. */
  try: boolean;
  booted: boolean;
}

/** The performance profile in effect and the machine it was chosen for (SPEC.md §6). */
export interface StatusProfile {
  name: string;
  /** The log line, e.g. `performance profile: small (4GiB RAM), RTP port range: 65336-65534`. */
  line: string;
  cores: number;
  memoryBytes: number;
  rtpPorts: { low: number; high: number };
}

/** What `clgw status --json`, the console and the portal show. */
export interface Status {
  /** `agent`: live from the running agent; `persisted`: read from disk while the agent is down. */
  source: 'agent' | 'persisted';
  state: UpdateState;
  /** In the critical phase destructive requests are refused. */
  critical: boolean;
  phase: string | null;
  /**
   * While waiting for the site's calls to end before a restart (state `waitingForCalls`) or before
   * a container upgrade stops the voice service or the tunnel.
   */
  calls: { for: 'update' | 'reboot' | 'containers'; active: number | null; deadline: string | null } | null;
  progress: (Progress & { percent: number }) | null;
  error: SerializedError | null;
  /** How the last update attempt ended. */
  result: UpdateResult | null;
  /** What the last check found. */
  check: CheckResult | null;
  /**
   * When the update window next opens, which is when the appliance checks again by itself (it
   * also checks at every start); null without a window.
   */
  nextWindow: ScheduleView['next'];
  target: { version: string; slot: SlotName } | null;
  bootedSlot: SlotName | null;
  gatewayVersion: string | null;
  /** The running root's OS patch level (os-release `CLGW_PATCH_LEVEL`, YYYY-MM-DD). */
  osPatchLevel: string | null;
  highestVersion: string | null;
  platform: string | null;
  order: string[];
  slots: Record<SlotName, SlotView>;
  bootEnvironment: { readable: boolean; error?: string; recoveryRequested: boolean };
  /** Each service container's last upgrade (version, downtime); `clgw containers` has the live view. */
  containers: ContainersState['last'];
  /** SSH access (live agent: also its time left). */
  ssh: SshView;
  /** The last startup diagnostics (null: not run yet). */
  diagnostics: DiagnosticsReport | null;
  /** The performance profile in effect (live agent only). */
  profile: StatusProfile | null;
  /** The network settings in effect. */
  network: NetworkView;
  /** What the first boot made of the deployment settings (null: not run yet, or unreadable). */
  firstBoot: FirstBootView | null;
  /** Alarm history, newest last; an alarm without `clearedAt` is active. */
  alarms: Alarm[];
  updatedAt: string | null;
  /**
   * When this status was made, by the clock of whoever made it: the agent's when live, which
   * stamps every time above. A client compares those with this, never with its own clock.
   */
  now: string;
}

async function readText(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch(() => undefined);
}

/**
 * Assembles the status from the journal and the appliance's files. Works without the agent
 * (everything it reads is persisted); a live agent adds its in-memory state and progress.
 */
export async function collectStatus(
  paths: AppliancePaths,
  live?: {
    journal: Journal;
    progress: Progress | undefined;
    platform: string;
    ssh?: SshView;
    profile?: StatusProfile;
    /** The agent's clock (ms): its status is told by it. */
    now: number;
  },
): Promise<Status> {
  const now = live?.now ?? Date.now();
  const journal = live?.journal ?? (await readJournal(paths.journal).catch(() => undefined));
  const cmdline = await readText(paths.cmdline);
  const bootedSlot = cmdline ? (bootedSlotFromCmdline(cmdline) ?? null) : null;
  const osRelease = await readText(paths.osRelease);
  const release = osRelease ? parseOsRelease(osRelease) : {};
  const gatewayVersion = release.VERSION_ID ?? null;
  const osPatchLevel = patchLevelOf(release) ?? null;
  const history = await readHistory(paths.history).catch(() => ({ highestVersion: undefined }));
  const slotStatus = await readSlotStatus(paths.slotStatus).catch(() => ({}) as Record<string, undefined>);
  let platform = live?.platform ?? null;
  if (!platform) {
    const cfg = await readText(paths.config);
    try {
      platform = cfg ? ((JSON.parse(cfg) as { platform?: string }).platform ?? null) : null;
    } catch {
      platform = null;
    }
    platform ??= (await readText(paths.platformFile))?.trim() || null;
  }

  let order: string[] = [];
  const flags: Record<SlotName, { ok: boolean; try: boolean }> = {
    A: { ok: false, try: false },
    B: { ok: false, try: false },
  };
  const bootEnvironment: Status['bootEnvironment'] = { readable: true, recoveryRequested: false };
  try {
    const d = describeSlots(await readGrubenv(paths.grubenv));
    order = d.order;
    flags.A = d.A;
    flags.B = d.B;
    bootEnvironment.recoveryRequested = d.recovery;
  } catch (e) {
    bootEnvironment.readable = false;
    bootEnvironment.error = serializeError(e).message;
  }

  const slotView = (slot: SlotName): SlotView => ({
    version:
      (slotStatus as Record<string, { version: string } | undefined>)[slot]?.version ??
      (slot === bootedSlot ? gatewayVersion : null),
    ok: flags[slot].ok,
    try: flags[slot].try,
    booted: slot === bootedSlot,
  });

  const state = journal?.state ?? 'idle';
  const progress = live?.progress;
  const schedule = describeSchedule(await readSchedule(paths.schedule), now);
  const containers = await readContainersState(paths.containersState).catch(() => undefined);
  // The update's wait before its reboot, else a container upgrade's before a swap.
  const calls = state === 'waitingForCalls' ? journal?.calls : containers?.run?.calls;
  return {
    source: live ? 'agent' : 'persisted',
    state,
    critical: state === 'switching',
    phase: calls ? describeCallWait(calls, now, schedule.window?.tz) : (progress?.phase ?? null),
    calls: calls ? { for: calls.for, active: calls.active, deadline: calls.deadline ?? null } : null,
    progress: progress
      ? {
          ...progress,
          percent: progress.total > 0 ? Math.min(100, (100 * progress.bytes) / progress.total) : 0,
        }
      : null,
    error: journal?.error ?? null,
    result: journal?.result ?? null,
    check: journal?.check ?? null,
    nextWindow: schedule.next,
    target: journal?.target ? { version: journal.target.version, slot: journal.target.slot } : null,
    bootedSlot,
    gatewayVersion,
    osPatchLevel,
    highestVersion: history.highestVersion ?? null,
    platform,
    order,
    slots: { A: slotView('A'), B: slotView('B') },
    bootEnvironment,
    profile: live?.profile ?? null,
    ssh: live?.ssh ?? describeSsh(await readSsh(paths.sshState), now),
    diagnostics: (await readDiagnostics(paths.diagnostics)) ?? null,
    containers: containers?.last ?? {},
    network: await readNetwork(paths),
    firstBoot: firstBootView(await readJsonFile(paths.firstBoot).catch(() => undefined)),
    alarms: await readAlarms(paths.alarms).catch(() => []),
    updatedAt: journal?.updatedAt ?? null,
    now: new Date(now).toISOString(),
  };
}
