import { isClgwError, serializeError } from '@clgw/core/errors.js';
import { CONTAINER_NAMES } from '@clgw/core/release/schema.js';
import { readRunningRelease } from '@clgw/core/system/os-release.js';
import { fetchCompat, requireClockSet } from '../actors/check.js';
import { holdToBudget } from '../actors/download-resume.js';
import type { Deps } from '../deps.js';
import { containersFor } from '../release/policy.js';
import { readHistory, updateHistory } from '../state/history.js';
import { containerName, LABELS } from './engine-port.js';
import { nextName } from './plan.js';
import { type ContainersState, emptyContainersState, readContainersState } from './state.js';
import { upgradeContainers } from './upgrade.js';

/**
 * At boot, before anything is fetched: every service container that is installed but stopped
 * (the appliance was powered off) is started, so the services come back even when the download
 * server cannot be reached. A `-next` container that runs (an upgrade cut off after starting it)
 * keeps the port: the upgrade resumes when compat.yaml can be fetched. Never throws.
 */
export async function startInstalledContainers(deps: Pick<Deps, 'engine' | 'log'>): Promise<void> {
  for (const service of CONTAINER_NAMES) {
    try {
      const [main, next] = await Promise.all([
        deps.engine.inspectContainer(containerName(service)),
        deps.engine.inspectContainer(nextName(service)),
      ]);
      if (!main || main.running || next?.running) continue;
      await deps.engine.startContainer(main.name);
      deps.log.info(`container ${service}: started at boot`, { version: main.labels[LABELS.version] });
    } catch (e) {
      if (isClgwError(e) && e.code === 'ENGINE_UNAVAILABLE') {
        deps.log.info('container engine not reachable at boot; no containers started', { error: e.message });
        return;
      }
      deps.log.warn(`container ${service}: not started at boot`, { error: serializeError(e) });
    }
  }
}

/**
 * One container upgrade run: fetch and verify compat.yaml (the same signature, expiry and replay
 * checks as a gateway OS check), take this platform's container list, and bring the engine there.
 */
export async function runContainerUpgrade(
  deps: Deps,
  opts: { trigger: 'boot' | 'window' | 'user'; force?: boolean; signal?: AbortSignal },
): Promise<ContainersState> {
  const now = deps.clock.now();
  const signal = opts.signal ?? new AbortController().signal;
  // The same clock check as the gateway OS check; an unreadable os-release (which the gateway
  // check reports) only leaves the containers without a floor.
  const running = await readRunningRelease(deps.paths.osRelease).catch(() => undefined);
  requireClockSet(now, running?.patchLevel);
  const { compat } = await fetchCompat(deps, now, signal);
  const history = await readHistory(deps.paths.history);
  const targets = containersFor(compat, {
    platform: deps.config.platform,
    lastSerial: history.lastSerial,
    now,
  });
  if (history.lastSerial === undefined || compat.serial > history.lastSerial) {
    await updateHistory(deps.paths.history, (h) => ({ ...h, lastSerial: compat.serial }));
  }
  const state = await readContainersState(deps.paths.containersState).catch(() => undefined);
  if (targets.length === 0 && !state?.run && Object.keys(state?.last ?? {}).length === 0) {
    // Nothing named and nothing of ours installed: the engine has no part in this appliance.
    deps.log.info('compat.yaml names no containers for this platform', { serial: compat.serial });
    return state ?? emptyContainersState();
  }
  deps.log.info('container upgrade', {
    trigger: opts.trigger,
    serial: compat.serial,
    targets: targets.map((t) => `${t.name} ${t.version}`),
  });
  holdToBudget(deps, opts.trigger);
  return upgradeContainers(deps, { trigger: opts.trigger, force: opts.force, targets, signal });
}
