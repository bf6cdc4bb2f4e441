#!/usr/bin/env node
import { serializeError } from '@clgw/core/errors.js';
import { localPortalUrl } from '@clgw/core/format.js';
import { groupId } from '@clgw/core/platform/accounts.js';
import { removeStaleTemps, writeFileAtomic } from '@clgw/core/platform/atomic.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { fileLogger } from '@clgw/core/platform/log.js';
import { type AppliancePaths, appliancePaths } from '@clgw/core/platform/paths.js';
import { Agent } from './agent.js';
import { startPortalSocket } from './api/portal-socket.js';
import { startApiServer } from './api/server.js';
import { composeDeps } from './compose.js';
import { startInstalledContainers } from './containers/run.js';
import type { RebootPort } from './deps.js';
import { removeLeftoverArchives } from './logs/service.js';
import type { Journal } from './machine/journal.js';
import { startScheduler } from './schedule/scheduler.js';
import { ensureApplianceId } from './ssh/appliance-id.js';
import { readJournal } from './state/journal-file.js';

function rebootPort(
  kind: 'systemd' | 'simulator',
  paths: AppliancePaths,
  shutdown: () => Promise<void>,
): RebootPort {
  if (kind === 'systemd') {
    return { reboot: async () => void (await execFile('systemctl', ['reboot'])) };
  }
  return {
    reboot: async (reason) => {
      // In the simulator a reboot is the agent leaving its request for the boot emulator and exiting.
      await writeFileAtomic(paths.rebootRequest, `${reason}\n`);
      await shutdown();
      process.exit(0);
    },
  };
}

/** The composition root: builds the dependencies, restores the journal, starts the API and the machine. */
async function main(): Promise<void> {
  const paths = appliancePaths(process.env.CLGW_ROOT ?? '/');
  const clock = systemClock;
  const log = fileLogger({
    file: paths.logFile,
    clock,
    echo: process.env.CLGW_LOG_ECHO ? process.stderr : undefined,
  });

  let agent: Agent | undefined;
  let stopApi: () => Promise<void> = async () => undefined;
  let stopScheduler: () => void = () => undefined;
  const shutdown = async () => {
    stopScheduler();
    await agent?.stop();
    await stopApi();
    await log.flush();
  };
  // The reboot port depends on the configuration, which composeDeps reads.
  let port: RebootPort | undefined;
  const deps = await composeDeps({ paths, clock, log, reboot: { reboot: (reason) => port!.reboot(reason) } });
  port = rebootPort(deps.config.reboot, paths, shutdown);

  // Nothing writes yet: temp files now are leftovers of writes a power cut interrupted. Not on the
  // ESP: grubenv is written in place there, and on FAT a temp file a cut rename left behind may
  // share its clusters with grubenv — deleting it would free them under GRUB's feet.
  for (const dir of [paths.dataDir, paths.networkDir]) {
    const stale = await removeStaleTemps(dir);
    if (stale.length > 0) log.info('removed temp files of interrupted writes', { dir, files: stale });
  }

  // Log archives a previous agent left (their links died with it): nothing else would delete them.
  for (const dir of [paths.logArchives, paths.logSnapshots]) {
    try {
      const leftovers = await removeLeftoverArchives(dir);
      if (leftovers.length > 0)
        log.info('removed log archives a previous agent left', { dir, files: leftovers });
    } catch (e) {
      log.warn('leftover log archives not removed', { dir, error: serializeError(e) });
    }
  }

  // This appliance's identity for support certificates (principal appliance-<id>): made at the
  // first start. Its failure must not keep the agent from updating: SSH access retries it.
  try {
    const { id, created } = await ensureApplianceId(paths.applianceId);
    if (created) log.info('appliance ID made', { applianceId: id });
  } catch (e) {
    log.error('appliance ID not made', { error: serializeError(e) });
  }

  let journal: Journal | undefined;
  try {
    journal = await readJournal(paths.journal);
  } catch (e) {
    // An unreadable journal cannot be trusted to resume from; start afresh and say so.
    log.error('update journal unreadable; starting without it', { error: serializeError(e) });
  }
  log.info('agent starting', {
    root: paths.root,
    platform: deps.config.platform,
    journalState: journal?.state ?? 'none',
  });

  agent = new Agent(deps, journal);
  const api = await startApiServer(agent, paths.socket, log);
  stopApi = () => api.close();
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info(`agent stopping (${sig})`);
      void shutdown().then(() => process.exit(0));
    });
  }
  const startedAt = clock.now();
  agent.start();
  // The portal is its own unprivileged process (clgw-portal); this socket is all it may reach.
  // Without it the page cannot work, but the box must keep updating itself: logged, not fatal.
  try {
    const portalGroup = deps.config.portal.group;
    const gid = await groupId(portalGroup);
    if (gid === undefined) {
      // On the appliance the image makes the group; on a development machine, where every process
      // is the same user, there is none and none is needed.
      log.warn('portal socket left in its owner group: no such group', { group: portalGroup });
    }
    const portalSocket = await startPortalSocket({
      socketPath: paths.portalSocket,
      ...(gid === undefined ? {} : { gid }),
      log,
      side: agent.portalSide(),
    });
    const previous = stopApi;
    stopApi = async () => {
      await portalSocket.close();
      await previous();
    };
  } catch (e) {
    log.error('portal socket not started', { error: serializeError(e) });
  }
  // Where the portal answers (its own unit listens there): the log download links name it.
  const portal = deps.config.portal;
  await writeFileAtomic(paths.portalUrl, `${localPortalUrl(portal.host, portal.port)}\n`);
  await agent.ssh.start().catch((e) => log.error('SSH access not restored', { error: serializeError(e) }));
  await startInstalledContainers(deps);
  // At every start, beside the boot-time update (which does not wait for it).
  void agent.diagnose().catch((e) => log.warn('startup diagnostics not run', { error: serializeError(e) }));
  const scheduler = startScheduler({
    file: paths.schedule,
    clock,
    log,
    run: () => agent!.windowUpdate(),
  });
  stopScheduler = scheduler.stop;

  const settled = await agent.waitSettled();
  // A check this start gave up (cut off at each of the last starts) is not begun again at once: if
  // what stopped the agent was the check itself, that would only start the loop over. The next
  // update window or start checks again, or a technician.
  const check = agent.journal.check;
  const gaveUp = check?.error?.code === 'CHECK_INTERRUPTED' && Date.parse(check.at) >= startedAt;
  if (gaveUp) log.warn('boot-time update skipped: the check was given up at this start', { check });
  else if (deps.config.updateAtBoot && settled !== 'failed') {
    try {
      // A gateway OS update ends in a reboot; otherwise the containers follow (SPEC §3).
      await agent.automaticUpdate('boot');
    } catch (e) {
      log.warn('boot-time update not completed', { error: serializeError(e) });
    }
  }
}

main().catch((e) => {
  process.stderr.write(`clgw-agent: ${serializeError(e).code}: ${(e as Error).message}\n`);
  process.exit(1);
});
