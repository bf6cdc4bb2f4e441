/**
 * The first boot (SPEC.md §5): once per data partition, before systemd-networkd starts, the OVF
 * environment's network settings are saved exactly as a technician's change is (settings.json,
 * the networkd unit, the hostname) and what was found is recorded in `firstboot.json`, whose
 * presence means "done". Safe to run twice: a cut before the record is written runs it again.
 */
import { promises as fs } from 'node:fs';
import type { AgentConfig } from '../config.js';
import { isClgwError } from '../errors.js';
import { saveNetwork } from '../network/network.js';
import { describeNetwork, type NetworkSettings, toInput } from '../network/settings.js';
import { readAtMost, writeJsonAtomic } from '../platform/atomic.js';
import type { Logger } from '../platform/log.js';
import type { AppliancePaths } from '../platform/paths.js';
import { MAX_OVF_ENV_BYTES, type OvfEnvironment, parseOvfEnvironment } from './ovf-env.js';
import { planNetwork } from './plan.js';
import {
  type FoundEnvironment,
  readCdroms,
  readGuestinfo,
  readIso,
  type SourceDeps,
  type Transport,
} from './sources.js';

export interface FirstBootDeps extends Omit<SourceDeps, 'note'> {
  paths: AppliancePaths;
  config: Pick<AgentConfig, 'lanInterface'>;
  /** Every reason and note goes here, one line each (the CLI echoes them to the journal). */
  log: Logger;
  now: () => number;
}

/** Where to look: guestinfo then these CD-ROM drives, or one ISO image, or one document file. */
export type FirstBootSource = { devices: readonly string[] } | { iso: string } | { envFile: string };

/** `firstboot.json`. */
export interface FirstBootRecord {
  at: string;
  transport: Transport | 'none';
  source?: string;
  /** The hypervisor's PlatformSection, where the environment has one. */
  platform?: OvfEnvironment['platform'];
  /** The `cl.*` properties as found (other products' properties are not kept). */
  properties?: OvfEnvironment['cl'];
  /** The settings saved; absent when nothing usable was found (the factory DHCP default stays). */
  network?: NetworkSettings;
  /** Every value or document not used, and why. */
  reasons: string[];
}

async function locate(
  deps: FirstBootDeps,
  source: FirstBootSource,
  note: (line: string) => void,
): Promise<FoundEnvironment | undefined> {
  if ('iso' in source) return readIso(source.iso);
  if ('envFile' in source) {
    // One byte over the cap is enough for the parser to say the document is too large.
    const document = await readAtMost(source.envFile, MAX_OVF_ENV_BYTES + 1);
    return { transport: 'file', source: source.envFile, document };
  }
  return (await readGuestinfo({ ...deps, note })) ?? (await readCdroms({ note }, source.devices));
}

/**
 * Runs the first boot unless `firstboot.json` says it ran; the record written, or undefined when
 * there was nothing to do. Throws only when it cannot read the given source or write its files
 * (then nothing is recorded and the next boot tries again).
 */
export async function runFirstBoot(
  deps: FirstBootDeps,
  source: FirstBootSource,
): Promise<FirstBootRecord | undefined> {
  const done = await fs.stat(deps.paths.firstBoot).then(
    () => true,
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false;
      throw e;
    },
  );
  if (done) {
    deps.log.info(`first boot already done (${deps.paths.firstBoot})`);
    return undefined;
  }

  const at = new Date(deps.now()).toISOString();
  // Sources that were there but unreadable: reasons too (why guestinfo or a CD-ROM was not used).
  const notes: string[] = [];
  const found = await locate(deps, source, (line) => {
    notes.push(line);
    deps.log.warn(line);
  });
  let record: FirstBootRecord;
  if (!found) {
    record = { at, transport: 'none', reasons: notes };
    deps.log.info('no OVF environment found: keeping the factory default (DHCP)');
  } else {
    const result = await configure(deps, found);
    record = {
      at,
      transport: found.transport,
      source: found.source,
      ...result,
      reasons: [...notes, ...result.reasons],
    };
  }
  await writeJsonAtomic(deps.paths.firstBoot, record);
  return record;
}

/** Parses, plans and saves; an unusable document leaves the factory default in place. */
async function configure(
  deps: FirstBootDeps,
  found: FoundEnvironment,
): Promise<Pick<FirstBootRecord, 'platform' | 'properties' | 'network' | 'reasons'>> {
  const unusable = (why: string) => {
    const reason = `${why}; keeping the factory default (DHCP)`;
    deps.log.error(reason);
    return { reasons: [reason] };
  };
  if ('error' in found) return unusable(found.error.message);
  let env: OvfEnvironment;
  try {
    env = parseOvfEnvironment(found.document);
  } catch (e) {
    if (!isClgwError(e) || e.code !== 'OVF_ENV_INVALID') throw e;
    return unusable(`${found.source}: ${e.message}`);
  }
  const ignored = env.ignored.map((line) => `${found.source}: ${line}`);
  for (const line of ignored) deps.log.warn(line);
  const plan = planNetwork(env.cl);
  for (const reason of plan.reasons) deps.log.warn(reason);
  await saveNetwork(deps, toInput(plan.settings));
  deps.log.info(
    `first boot: ${describeNetwork(plan.settings)}, hostname ${plan.settings.hostname} (from ${found.source})`,
  );
  return {
    ...(env.platform ? { platform: env.platform } : {}),
    properties: env.cl,
    network: plan.settings,
    reasons: [...ignored, ...plan.reasons],
  };
}
