import { randomBytes } from 'node:crypto';
import { ClgwError, serializeError } from '@clgw/core/errors.js';
import { formatTime } from '@clgw/core/format.js';
import { changeNetwork, type NetworkView, readNetwork } from '@clgw/core/network/network.js';
import type { NetworkInput } from '@clgw/core/network/settings.js';
import { peakRssKiB } from '@clgw/core/platform/memory.js';
import { markBad, markGood } from '@clgw/core/slot/bootchooser.js';
import { readGrubenv, writeGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { profileLogLine } from '@clgw/core/system/profiles.js';
import { type Actor, createActor } from 'xstate';
import { updateEffects } from './actors/effects.js';
import { needsPresence, type PortalAction, portalInput, portalOffers } from './api/portal-contract.js';
import type { PortalSide } from './api/portal-socket.js';
import { type SharedSnapshot, sharedSnapshot } from './api/snapshot.js';
import { runContainerUpgrade } from './containers/run.js';
import type { ContainersState } from './containers/state.js';
import { type ContainersView, containersView } from './containers/view.js';
import type { Deps } from './deps.js';
import type { DiagnosticsReport } from './diagnostics/checks.js';
import { diagnose } from './diagnostics/service.js';
import { LogDownloads, type LogLinkView } from './logs/service.js';
import type { Journal, Trigger } from './machine/journal.js';
import {
  createUpdateMachine,
  journalStateOf,
  type UpdateEvent,
  type UpdateMachine,
} from './machine/update.machine.js';
import { describeProxy, readProxy, validateProxy, writeProxy } from './network/proxy.js';
import { constantTimeEqual } from './presence/equal.js';
import { createPresence, type Presence } from './presence/presence.js';
import { describeSchedule, readSchedule, type ScheduleView, setSchedule } from './schedule/scheduler.js';
import { readBootedSlot } from './slot/booted.js';
import { SshAccess } from './ssh/ssh.js';
import { inOrder } from './state/journal-file.js';
import { collectStatus, type Status } from './status.js';
import { dataReset } from './system/data-reset.js';

/** The requests the local API (CLI, console, portal) can make. */
export type AgentRequest =
  | { type: 'check' }
  | { type: 'update'; force?: boolean; trigger?: Trigger }
  | { type: 'retry' }
  | { type: 'reboot' }
  /**
   * While waiting for calls to end: restart now, cutting them. `calls` is the number the technician
   * was shown and confirmed (null: the voice service's count was unknown); refused when it is not
   * the number up now, so nobody cuts calls they were not told of.
   */
  | { type: 'rebootNow'; calls: number | null }
  | { type: 'markGood' }
  | { type: 'markBad' }
  | { type: 'factoryReset' }
  | { type: 'dataReset' };

const SETTLED = new Set(['idle', 'committed', 'rolledBack', 'failed']);

/**
 * How often a check deferred because the clock was not set looks at the clock again: NTP sets it
 * within moments of answering, and looking costs nothing (no file, no network).
 */
export const CLOCK_POLL_MS = 60_000;

/**
 * What to run again for a check deferred because the clock was not set, as it was asked: a
 * boot-time or window run as that run (a boot-time one only while the agent still updates at boot:
 * else a check); a technician's Retry of a failed update (the machine is still `failed`) as a
 * Retry, which keeps that failure if it fails again; a technician's update as an update, with its
 * `--force`; a check as a check.
 */
export function deferredRun(
  deferred: Pick<Journal, 'trigger' | 'install' | 'force'>,
  state: string,
  updateAtBoot: boolean,
):
  | { type: 'automatic'; trigger: 'boot' | 'window' }
  | Extract<AgentRequest, { type: 'check' | 'update' | 'retry' }> {
  const trigger = deferred.trigger ?? 'user';
  if (trigger === 'window' || (trigger === 'boot' && updateAtBoot)) return { type: 'automatic', trigger };
  if (trigger === 'boot') return { type: 'check' };
  if (state === 'failed') return { type: 'retry' };
  if (deferred.install) return { type: 'update', force: deferred.force ?? false };
  return { type: 'check' };
}

/** Why the page may not do `action` now, in words a visitor understands. */
function portalRefusal(action: PortalAction, status: { state: string; platform: string }): string {
  if (action === 'factory-reset' && status.platform !== 'physical') {
    return `Factory Reset is offered on the physical appliance only; this is a ${status.platform} appliance — redeploy it from its image instead`;
  }
  const what = { retry: 'Retry', reboot: 'Reboot', 'factory-reset': 'Factory Reset' }[action];
  return `${what} is offered on this page only after a failed update (the gateway's update state is ${status.state}); at the gateway itself, use its console`;
}

/**
 * The running agent: the update machine's actor plus the requests that act on it. It is the one
 * owner of the journal and the boot environment while it runs.
 */
export class Agent {
  private readonly actor: Actor<UpdateMachine>;
  private readonly deps: Deps;
  private lastState = '';
  private dataResetRunning = false;
  private networkChanging = false;
  private containerRun: Promise<ContainersState> | undefined;
  /** SSH access: on for 24 hours at a time. */
  readonly ssh: SshAccess;
  /** "Download logs": the archive and its temporary links (the portal serves them). */
  readonly logs: LogDownloads;
  /** The code on the appliance's own screen that the portal asks for Reboot and Factory Reset. */
  readonly presence: Presence;
  /** The status as every poller shares it (consoles, portal, scripts): built at most every 250 ms. */
  private readonly statusSnapshot: SharedSnapshot<Status>;
  /** Journal writes under way, so stop() can let them finish. */
  private readonly persisting = new Set<Promise<void>>();
  /** The `at` of the last check deferred for the clock that a wait was begun for. */
  private clockDeferredAt: string | undefined;
  /** The wait for the clock to be set, and the latest check it will run again (see waitForClock). */
  private clockWait: { deferred: Journal; stop: AbortController } | undefined;

  constructor(deps: Deps, journal: Journal | undefined) {
    const persistInOrder = inOrder(deps.persistJournal);
    this.deps = {
      ...deps,
      persistJournal: (j) => {
        const write = persistInOrder(j);
        this.persisting.add(write);
        const done = () => void this.persisting.delete(write);
        write.then(done, done);
        return write;
      },
    };
    this.ssh = new SshAccess({
      paths: deps.paths,
      clock: deps.clock,
      log: deps.log,
      server: deps.ssh,
      account: deps.config.ssh.account,
    });
    this.logs = new LogDownloads({ ...deps, status: () => this.status() });
    this.presence = createPresence({
      now: () => deps.clock.now(),
      random: (n) => randomBytes(n),
      equal: constantTimeEqual,
      lifetimeMs: deps.config.presence.lifetimeMs,
      graceMs: deps.config.presence.graceMs,
    });
    this.statusSnapshot = sharedSnapshot(() => this.status(), {
      maxAgeMs: 250,
      now: () => deps.clock.now(),
    });
    const machine = createUpdateMachine(updateEffects(this.deps));
    this.actor = createActor(machine, { input: { journal, now: () => deps.clock.now() } });
    this.actor.subscribe({
      next: (snap) => {
        const state = String(snap.value);
        const check = snap.context.journal.check;
        if (
          SETTLED.has(state) &&
          check?.error?.code === 'CLOCK_NOT_SET' &&
          check.at !== this.clockDeferredAt
        ) {
          this.clockDeferredAt = check.at;
          this.waitForClock(snap.context.journal);
        }
        if (state !== this.lastState) {
          this.lastState = state;
          this.statusSnapshot.invalidate();
          const j = snap.context.journal;
          deps.log.info(`update state: ${state}`, {
            target: j.target?.version,
            // Peak resident memory so far: the 256 MiB budget is checked from the log.
            maxRssKiB: peakRssKiB(),
            ...(state === 'failed' && j.error ? { error: j.error } : {}),
          });
        }
      },
      error: (e) => deps.log.error('update machine stopped on an error', { error: String(e) }),
    });
  }

  start(): void {
    this.actor.start();
  }

  /** Stops the machine; resolves once no journal write is left under way. */
  async stop(): Promise<void> {
    this.clockWait?.stop.abort();
    this.ssh.stop();
    await this.logs.stop();
    this.actor.stop();
    await Promise.allSettled([...this.persisting]);
  }

  /** The machine's current state name as the journal names it. */
  get state(): string {
    return journalStateOf(String(this.actor.getSnapshot().value));
  }

  get journal(): Journal {
    const snap = this.actor.getSnapshot();
    return { ...snap.context.journal, state: journalStateOf(String(snap.value)) };
  }

  async status(): Promise<Status> {
    return collectStatus(this.deps.paths, {
      now: this.deps.clock.now(),
      journal: this.journal,
      progress: this.deps.progress.snapshot(),
      platform: this.deps.config.platform,
      ssh: await this.ssh.view(),
      profile: {
        name: this.deps.profile.name,
        line: profileLogLine(this.deps.profile, this.deps.machine),
        cores: this.deps.machine.cores,
        memoryBytes: this.deps.machine.memoryBytes,
        rtpPorts: { ...this.deps.profile.rtpPorts },
      },
    });
  }

  /** The status as last built for anyone within 250 ms (a new state always builds anew). */
  sharedStatus(): Promise<Status> {
    return this.statusSnapshot.get();
  }

  /** What the portal socket offers, over this agent (main.ts and the tests serve it alike). */
  portalSide(): PortalSide {
    return {
      view: async () => portalInput(await this.sharedStatus()),
      act: (action, code, client) => this.portalAction(action, code, client),
      logArchive: (token) => this.logs.lookup(token),
    };
  }

  /**
   * What the portal asks (SPEC.md §9): only what its page offers in the current state
   * ({@link portalOffers}), and Reboot and Factory Reset only with the code shown on the
   * appliance's own screen. `client` is the address the portal says the request came from (for
   * the log only). Every attempt is logged.
   */
  async portalAction(action: PortalAction, code: string | undefined, client: string): Promise<void> {
    const { log } = this.deps;
    const status = { state: this.state as Status['state'], platform: this.deps.config.platform };
    if (!portalOffers(status)[action]) {
      log.warn('portal: action refused in this state', { action, client, state: status.state });
      throw new ClgwError('NOT_ALLOWED', portalRefusal(action, status), { details: { state: status.state } });
    }
    if (needsPresence(action)) {
      if (code === undefined || code.trim() === '') {
        throw new ClgwError('INVALID_REQUEST', "Enter the code shown on the gateway's own screen.");
      }
      const checked = this.presence.verify(code);
      if (!checked.ok && checked.reason === 'locked') {
        const until = new Date(checked.lockedUntil).toISOString();
        log.error('portal: presence code locked after too many wrong codes', { action, client, until });
        throw new ClgwError(
          'PRESENCE_LOCKED',
          `Too many wrong codes: Reboot and Factory Reset from this page are locked until ${formatTime(until)} (the gateway's clock).`,
          { details: { lockedUntil: until } },
        );
      }
      if (!checked.ok) {
        log.warn('portal: wrong presence code', { action, client, attemptsLeft: checked.attemptsLeft });
        throw new ClgwError(
          'PRESENCE_CODE_INVALID',
          `That is not the code on the gateway's screen (it changes every few minutes and after each use); ${checked.attemptsLeft} ${checked.attemptsLeft === 1 ? 'try' : 'tries'} left before a lockout.`,
          { details: { attemptsLeft: checked.attemptsLeft } },
        );
      }
    }
    log.warn('portal: action accepted', { action, client });
    await this.request({ type: action === 'factory-reset' ? 'factoryReset' : action });
  }

  /** Resolves when the machine reaches a settled state (idle, committed, rolledBack, failed). */
  waitSettled(signal?: AbortSignal): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const s = String(this.actor.getSnapshot().value);
        if (SETTLED.has(s)) {
          sub.unsubscribe();
          resolve(s);
        }
      };
      const sub = this.actor.subscribe(check);
      signal?.addEventListener('abort', () => {
        sub.unsubscribe();
        reject(signal.reason);
      });
      check();
    });
  }

  /**
   * Waits for a gateway OS run begun at `since` (ms) to settle; whether it went wrong — its update
   * failed, or the check it began with could not be done. Either way the containers wait: their
   * archives come from the same server.
   */
  async gatewayRunFailed(since: number): Promise<boolean> {
    if ((await this.waitSettled()) === 'failed') return true;
    const check = this.actor.getSnapshot().context.journal.check;
    return check?.outcome === 'failed' && Date.parse(check.at) >= since;
  }

  /** Carries out a request; refuses (BUSY / NOT_ALLOWED) what the current state does not allow. */
  async request(req: AgentRequest): Promise<void> {
    switch (req.type) {
      case 'check':
        return this.send({ type: 'CHECK', install: false, trigger: 'user' }, 'check for a release');
      case 'update':
        if (this.containerRun)
          throw new ClgwError('BUSY', 'cannot start an update: a container upgrade is running');
        return this.send(
          { type: 'CHECK', install: true, trigger: req.trigger ?? 'user', force: req.force ?? false },
          'start an update',
        );
      case 'retry':
        return this.send({ type: 'RETRY' }, 'retry', 'NOT_ALLOWED');
      case 'reboot':
        return this.send({ type: 'REBOOT' }, 'reboot', 'NOT_ALLOWED');
      case 'rebootNow': {
        const calls = this.journal.calls;
        if (this.state !== 'waitingForCalls' || !calls)
          throw new ClgwError(
            'NOT_ALLOWED',
            `"Reboot now" is for a restart that waits for calls to end; the update state is ${this.state}`,
          );
        if (calls.active !== req.calls) {
          const up = (n: number | null) => (n === null ? 'an unknown number of' : String(n));
          throw new ClgwError(
            'CALLS_CHANGED',
            `${up(calls.active)} call(s) are up now, not ${up(req.calls)} as confirmed: confirm again`,
            { details: { active: calls.active, confirmed: req.calls } },
          );
        }
        return this.send({ type: 'REBOOT_NOW' }, 'reboot now', 'NOT_ALLOWED');
      }
      case 'markGood':
      case 'markBad':
        return this.markBooted(req.type === 'markGood' ? 'good' : 'bad');
      case 'factoryReset':
        this.refuseInCriticalPhase('factory reset');
        if (this.deps.config.platform !== 'physical') {
          throw new ClgwError(
            'NOT_ALLOWED',
            `factory reset is offered on the physical appliance only; this is a ${this.deps.config.platform} appliance — redeploy it from its image instead`,
            { details: { platform: this.deps.config.platform } },
          );
        }
        return this.send({ type: 'FACTORY_RESET' }, 'start a factory reset');
      case 'dataReset':
        this.refuseInCriticalPhase('data reset');
        if (this.dataResetRunning) throw new ClgwError('BUSY', 'a data reset is already running');
        this.dataResetRunning = true;
        try {
          await dataReset(this.deps.paths, this.deps.log);
        } finally {
          this.dataResetRunning = false;
        }
        return;
    }
  }

  /**
   * Starts a container upgrade (compat.yaml's containers for this platform) and returns its
   * promise. Refused (BUSY) while one runs, and while a gateway OS update is under way: the
   * containers follow an OS update only once its new slot is committed.
   */
  upgradeContainers(opts: {
    trigger: 'boot' | 'window' | 'user';
    force?: boolean;
  }): Promise<ContainersState> {
    if (this.containerRun) throw new ClgwError('BUSY', 'a container upgrade is already running');
    if (!SETTLED.has(String(this.actor.getSnapshot().value))) {
      throw new ClgwError(
        'BUSY',
        `cannot upgrade the containers while the gateway OS update is under way (state ${this.state}); they follow once it is committed`,
        { details: { state: this.state } },
      );
    }
    const run = runContainerUpgrade(this.deps, opts).finally(() => {
      this.containerRun = undefined;
    });
    this.containerRun = run;
    return run;
  }

  /**
   * The boot-time or update window's run: a gateway OS check that installs what it finds (the
   * appliance reboots into it), else the containers. Refused (BUSY) like any update while one runs.
   */
  async automaticUpdate(trigger: 'boot' | 'window'): Promise<void> {
    const since = this.deps.clock.now();
    await this.request({ type: 'update', trigger });
    if (!(await this.gatewayRunFailed(since))) await this.upgradeContainers({ trigger });
  }

  /** The update window's run ({@link automaticUpdate}). */
  windowUpdate(): Promise<void> {
    return this.automaticUpdate('window');
  }

  /**
   * A check deferred because the clock was not set (CLOCK_NOT_SET) runs again by itself once the
   * clock has reached the floor it was held to, looked at every minute: what was deferred, as it
   * was asked — a boot-time or window run as that run, a technician's check, update or Retry as
   * that (see {@link deferredRun}). Not when a check ran meanwhile. One wait at a time; a later
   * deferral only becomes the one it runs again.
   */
  private waitForClock(deferred: Journal): void {
    if (this.clockWait) {
      this.clockWait.deferred = deferred;
      return;
    }
    const { clock, log } = this.deps;
    const floor = Date.parse(String(deferred.check?.error?.details?.floor));
    const wait = { deferred, stop: new AbortController() };
    this.clockWait = wait;
    const rerun = async () => {
      // At least one poll first: a deferral restored at start-up leaves the boot-time run its turn.
      // A deferral without its floor (none recorded) is run again after that one poll.
      do {
        await clock.sleep(CLOCK_POLL_MS, wait.stop.signal);
      } while (clock.now() < floor);
      this.clockWait = undefined;
      const last = wait.deferred;
      if (this.journal.check?.at !== last.check?.at) return;
      const run = deferredRun(last, this.state, this.deps.config.updateAtBoot);
      log.info('the clock is set: running the check it deferred again', {
        now: new Date(clock.now()).toISOString(),
        trigger: last.trigger,
        run: run.type,
      });
      if (run.type === 'automatic') await this.automaticUpdate(run.trigger);
      else await this.request(run);
    };
    rerun().catch((e) => {
      if (this.clockWait === wait) this.clockWait = undefined;
      if (!wait.stop.signal.aborted)
        log.warn('the check deferred for the clock was not run again', { error: serializeError(e) });
    });
  }

  /** The update window setting and when it next starts. */
  async schedule(): Promise<ScheduleView> {
    return describeSchedule(await readSchedule(this.deps.paths.schedule), this.deps.clock.now());
  }

  /** Sets the update window (SETTING_INVALID naming the field) or turns it off. */
  async setSchedule(
    input: { off: true } | { at?: unknown; tz?: unknown; spreadMinutes?: unknown },
  ): Promise<ScheduleView> {
    const state = await setSchedule(this.deps.paths.schedule, input);
    this.deps.log.info(state.window ? 'update window set' : 'update window off', { window: state.window });
    return describeSchedule(state, this.deps.clock.now());
  }

  /** The service containers as the engine shows them, with their health and last upgrade. */
  containers(): Promise<ContainersView> {
    return containersView(this.deps, this.containerRun !== undefined);
  }

  /** Runs the startup diagnostics now (also at every start); the report is kept and logged. */
  diagnose(): Promise<DiagnosticsReport> {
    return diagnose(this.deps);
  }

  /** The proxy setting (without its password). */
  async proxy(): Promise<ReturnType<typeof describeProxy>> {
    return describeProxy(await readProxy(this.deps.paths.proxy));
  }

  /** Sets (validated: SETTING_INVALID) or removes the proxy; used from the next request on. */
  async setProxy(
    input: { off: true } | { server?: unknown; port?: unknown; user?: unknown; password?: unknown },
  ) {
    const setting = 'off' in input ? undefined : validateProxy(input);
    await writeProxy(this.deps.paths.proxy, setting);
    this.deps.useProxy(setting);
    this.deps.log.info(setting ? 'proxy set' : 'proxy off', { proxy: describeProxy(setting) });
    return describeProxy(setting);
  }

  /** Builds a log archive and a temporary link to it (`clgw-log-download`, console "Download logs"). */
  createLogLink(): Promise<LogLinkView> {
    return this.logs.create();
  }

  /** Revokes every log download link and deletes the archives. */
  revokeLogLinks(): Promise<{ revoked: number }> {
    return this.logs.revoke();
  }

  /** The network settings in effect (saved, or the factory default). */
  network(): Promise<NetworkView> {
    return readNetwork(this.deps.paths);
  }

  /** A technician's network change: validated (SETTING_INVALID), saved, rendered, applied. */
  async changeNetwork(input: NetworkInput): Promise<NetworkView> {
    if (this.networkChanging) throw new ClgwError('BUSY', 'a network change is already being applied');
    this.networkChanging = true;
    try {
      return await changeNetwork(this.deps, input);
    } finally {
      this.networkChanging = false;
    }
  }

  /** Destructive requests wait until the boot environment switch is over. */
  private refuseInCriticalPhase(what: string): void {
    if (this.state === 'switching' || this.state === 'recovering' || this.state === 'factoryResetting') {
      throw new ClgwError(
        'NOT_ALLOWED',
        this.state === 'switching'
          ? `${what} refused: an update is in its critical phase (switching the boot environment); try again in a minute`
          : `${what} refused: the appliance is handing over to the recovery system`,
        { details: { state: this.state } },
      );
    }
  }

  private send(event: UpdateEvent, what: string, code: 'BUSY' | 'NOT_ALLOWED' = 'BUSY'): void {
    const snap = this.actor.getSnapshot();
    if (!snap.can(event)) {
      throw new ClgwError(
        code,
        code === 'BUSY'
          ? `cannot ${what}: an update is in progress (state ${this.state})`
          : `cannot ${what} in state ${this.state}: only a failed update offers it`,
        { details: { state: this.state } },
      );
    }
    this.actor.send(event);
  }

  /** RAUC's `mark-good` / `mark-bad` for the booted slot; refused while an update runs. */
  private async markBooted(mark: 'good' | 'bad'): Promise<void> {
    if (!SETTLED.has(String(this.actor.getSnapshot().value))) {
      throw new ClgwError(
        'BUSY',
        `cannot mark the booted slot ${mark}: an update is in progress (state ${this.state})`,
      );
    }
    const slot = await readBootedSlot(this.deps.paths);
    const env = await readGrubenv(this.deps.paths.grubenv);
    await writeGrubenv(this.deps.paths.grubenv, mark === 'good' ? markGood(env, slot) : markBad(env, slot));
    this.deps.log.info(`booted slot marked ${mark} by request`, { slot });
  }
}
