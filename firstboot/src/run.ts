/**
 * The first boot (SPEC.md §5): once per data partition, before systemd-networkd starts, the OVF
 * environment's network settings are saved exactly as a technician's change is (settings.json,
 * the networkd unit, the hostname) and what was found is recorded in `firstboot.json`, whose
 * presence means "done". Safe to run twice: a cut before the record is written runs it again.
 */
import { promises as fs } from 'node:fs';
import type { AgentConfig } from '@clgw/core/config.js';
import { isClgwError } from '@clgw/core/errors.js';
import {
  CL_KEYS,
  MAX_OVF_ENV_BYTES,
  type OvfEnvironment,
  parseOvfEnvironment,
} from '@clgw/core/firstboot/ovf-env.js';
import type { FirstBootOutcome, FirstBootRecord } from '@clgw/core/firstboot/report.js';
import { oneLine } from '@clgw/core/format.js';
import { saveNetwork } from '@clgw/core/network/network.js';
import { describeNetwork, toInput } from '@clgw/core/network/settings.js';
import { readAtMost, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import type { Logger } from '@clgw/core/platform/log.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { planNetwork } from './plan.js';
import { type FoundEnvironment, readCdroms, readGuestinfo, type SourceDeps } from './sources.js';

export interface FirstBootDeps extends Omit<SourceDeps, 'note'> {
  paths: AppliancePaths;
  config: Pick<AgentConfig, 'lanInterface' | 'platform'>;
  /** Every reason and note goes here, one line each (the CLI echoes them to the journal). */
  log: Logger;
}

/**
 * Where to look: VMware guestinfo (on the VMware image, for up to `guestinfoWaitMs`) and then
 * these CD-ROM drives (block devices, or ISO images standing in for them); or one document file.
 */
export type FirstBootSource = { cdroms: readonly string[]; guestinfoWaitMs?: number } | { document: string };

/**
 * Every environment there is, most trusted first: guestinfo (what vSphere and ovftool hand over)
 * then the first CD-ROM with `ovf-env.xml`. Off the VMware image guestinfo is not asked: there
 * is none, and the tools would only say so.
 */
async function locate(
  deps: FirstBootDeps,
  source: FirstBootSource,
  note: (line: string) => void,
): Promise<FoundEnvironment[]> {
  if ('document' in source) {
    // One byte over the cap is enough for the parser to say the document is too large.
    const document = await readAtMost(source.document, MAX_OVF_ENV_BYTES + 1);
    return [{ transport: 'file', source: source.document, document }];
  }
  const found: FoundEnvironment[] = [];
  if (deps.config.platform === 'virtual') {
    const guestinfo = await readGuestinfo({ ...deps, note }, source.guestinfoWaitMs);
    if (guestinfo) found.push(guestinfo);
  } else {
    deps.log.info(`guestinfo not asked: this is the ${deps.config.platform} image, not VMware's`);
  }
  const cdrom = await readCdroms({ note }, source.cdroms);
  if (cdrom) found.push(cdrom);
  return found;
}

/**
 * Runs the first boot unless `firstboot.json` says it ran; the record written, or undefined when
 * there was nothing to do. Throws only when it cannot read the given document or write its files
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
    const one = oneLine(line);
    notes.push(one);
    deps.log.warn(one);
  });
  let record: FirstBootRecord;
  if (found.length === 0) {
    record = { at, outcome: 'none', transport: 'none', reasons: notes };
    deps.log.info('no OVF environment found: keeping the factory default (DHCP)');
  } else {
    const result = await configure(deps, found);
    record = { at, ...result, reasons: [...notes, ...result.reasons.map(oneLine)] };
  }
  await writeJsonAtomic(deps.paths.firstBoot, record);
  return record;
}

type Parsed = { found: FoundEnvironment; env: OvfEnvironment };

/** The `cl.*` keys two environments give differently. */
function disagreement(a: OvfEnvironment['cl'], b: OvfEnvironment['cl']): string[] {
  return CL_KEYS.filter((k) => (a[k] ?? '').trim() !== (b[k] ?? '').trim()).map((k) => `cl.${k}`);
}

/**
 * Parses every environment found, uses the first usable one (guestinfo before a CD-ROM), says
 * why any other was not used, then plans and saves. Nothing usable leaves the factory default.
 */
async function configure(
  deps: FirstBootDeps,
  found: FoundEnvironment[],
): Promise<Omit<FirstBootRecord, 'at'>> {
  const reasons: string[] = [];
  const parsed: Parsed[] = [];
  for (const f of found) {
    if ('error' in f) {
      reasons.push(f.error.message);
      continue;
    }
    try {
      parsed.push({ found: f, env: parseOvfEnvironment(f.document) });
    } catch (e) {
      if (!isClgwError(e) || e.code !== 'OVF_ENV_INVALID') throw e;
      reasons.push(`${f.source}: ${e.message}`);
    }
  }
  const chosen = parsed[0];
  if (!chosen) {
    const first = found[0]!;
    const all = reasons.map((r) => `${r}; keeping the factory default (DHCP)`);
    for (const r of all) deps.log.error(oneLine(r));
    return { outcome: 'refused', transport: first.transport, source: first.source, reasons: all };
  }
  const { found: from, env } = chosen;
  for (const other of parsed.slice(1)) {
    const keys = disagreement(env.cl, other.env.cl);
    if (keys.length > 0)
      reasons.push(
        `${from.source} and ${other.found.source} disagree on ${keys.join(', ')}: using ${from.source}`,
      );
  }
  for (const r of reasons) deps.log.warn(oneLine(r));
  const ignored = env.ignored.map((line) => `${from.source}: ${line}`);
  for (const line of ignored) deps.log.warn(oneLine(line));
  const plan = planNetwork(env.cl);
  for (const reason of plan.reasons) deps.log.warn(reason);
  await saveNetwork(deps, toInput(plan.settings));
  deps.log.info(
    `first boot: ${describeNetwork(plan.settings)}, hostname ${plan.settings.hostname} (from ${from.source})`,
  );
  const wantedStatic = (env.cl.ip0 ?? '').trim() !== '';
  const outcome: FirstBootOutcome =
    wantedStatic && plan.settings.ipv4.mode === 'dhcp'
      ? 'refused'
      : plan.reasons.length > 0 || ignored.length > 0
        ? 'partial'
        : 'applied';
  return {
    outcome,
    transport: from.transport,
    source: from.source,
    ...(env.platform ? { platform: env.platform } : {}),
    properties: env.cl,
    network: plan.settings,
    reasons: [...reasons, ...ignored, ...plan.reasons],
  };
}
