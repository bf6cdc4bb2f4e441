import { promises as fs } from 'node:fs';
import path from 'node:path';
import { configPath, loadConfig } from '@clgw/core/config.js';
import { ClgwError, serializeError } from '@clgw/core/errors.js';
import type { Clock } from '@clgw/core/platform/clock.js';
import { createHttpClient, type HttpClient } from '@clgw/core/platform/http.js';
import type { Logger } from '@clgw/core/platform/log.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { mbitToBytesPerSecond, RateBudget } from '@clgw/core/platform/rate-budget.js';
import { PROFILES, profileLogLine, selectProfile } from '@clgw/core/system/profiles.js';
import { ProgressTracker } from './actors/progress.js';
import { createEngine } from './containers/engine.js';
import type { Deps, RebootPort } from './deps.js';
import { type ProxySetting, proxyUrl, readProxy } from './network/proxy.js';
import { simulatorSsh, systemdSsh } from './ssh/ssh.js';
import { writeJournal } from './state/journal-file.js';
import { detectMachine } from './system/machine.js';

export interface ComposeOptions {
  paths: AppliancePaths;
  clock: Clock;
  log: Logger;
  reboot: RebootPort;
  env?: NodeJS.ProcessEnv;
}

/**
 * Builds the agent's dependencies from the appliance root: configuration, pinned release roots,
 * the download server's extra CA, the HTTP client. Used by main.ts and by tests alike, so tests
 * run the same composition as the appliance.
 */
export async function composeDeps(opts: ComposeOptions): Promise<Deps> {
  const { paths, clock, log } = opts;
  const config = await loadConfig(paths, opts.env);
  const trustedRootsPem = await fs.readFile(paths.trustedRoots, 'utf8').catch((e: Error) => {
    throw new ClgwError(
      'CONFIG_INVALID',
      `cannot read the pinned release roots ${paths.trustedRoots}: ${e.message}`,
      {
        details: { file: paths.trustedRoots },
      },
    );
  });
  let ca: string | undefined;
  if (config.downloadCa) {
    const file = configPath(paths, config.downloadCa);
    ca = await fs.readFile(file, 'utf8').catch((e: Error) => {
      throw new ClgwError('CONFIG_INVALID', `cannot read the download server CA ${file}: ${e.message}`, {
        details: { file },
      });
    });
  }
  const { shape: machine, detected } = await detectMachine(config.platform);
  if (detected && detected !== config.platform) {
    log.warn('the hypervisor does not match the image', { image: config.platform, detected });
  }
  // Every outbound request goes through one client; a proxy change replaces it for the next one
  // (the download budget stays one, shared by whichever client runs).
  const rateBudget =
    config.downloadBudgetMbit === undefined
      ? undefined
      : new RateBudget(clock, mbitToBytesPerSecond(config.downloadBudgetMbit));
  const makeClient = (proxy: ProxySetting | undefined) =>
    createHttpClient({
      clock,
      ca,
      dnsServers: config.dnsServers,
      ...(rateBudget ? { rateBudget } : {}),
      ...config.http,
      ...(proxy ? { proxy: { url: proxyUrl(proxy), all: true } } : {}),
    });
  const saved = await readProxy(paths.proxy).catch((e) => {
    log.error('proxy setting unreadable; going direct', { error: serializeError(e) });
    return undefined;
  });
  let client = makeClient(saved);
  const http: HttpClient = {
    getBuffer: (url, o) => client.getBuffer(url, o),
    getIfChanged: (url, o) => client.getIfChanged(url, o),
    openStream: (url, o) => client.openStream(url, o),
    receive: (url, o, onStart, sink) => client.receive(url, o, onStart, sink),
    receiveRange: (url, o, sink) => client.receiveRange(url, o, sink),
    receiveRanges: (url, o, parts) => client.receiveRanges(url, o, parts),
  };
  const profile = config.profile ? PROFILES[config.profile] : selectProfile(machine);
  log.info(profileLogLine(profile, machine), { cores: machine.cores, forced: config.profile !== undefined });
  return {
    paths,
    config,
    profile,
    machine,
    clock,
    log,
    http,
    useProxy: (proxy) => {
      client = makeClient(proxy);
    },
    reboot: opts.reboot,
    progress: new ProgressTracker(() => clock.now()),
    trustedRootsPem,
    compatCache: {},
    ssh:
      config.ssh.server === 'simulator'
        ? simulatorSsh(paths, { port: config.ssh.port, account: config.ssh.account })
        : systemdSsh({ port: config.ssh.port, account: config.ssh.account }),
    ...(ca ? { downloadCa: ca } : {}),
    ...(rateBudget ? { downloadBudget: rateBudget } : {}),
    engine: createEngine(
      path.isAbsolute(config.engineSocket) ? config.engineSocket : configPath(paths, config.engineSocket),
    ),
    persistJournal: (j) => writeJournal(paths.journal, j),
  };
}
