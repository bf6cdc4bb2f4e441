/**
 * What the log archive may take, as pure rules (SPEC.md §9: "logs and state records only —
 * never keys, tokens, passwords, onboarding secrets or container data"). An allow-list: the log
 * directory, the journal export, a status snapshot and the state records named here. Nothing
 * else on the data partition is looked at, so nothing added there later can leak by default,
 * and container data or the engine's storage (hundreds of thousands of files) is never walked.
 */
import { ClgwError } from '@clgw/core/errors.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';

/** A state record the archive takes when it exists. */
export interface StateRecord {
  /** Its name in the archive (relative to the appliance root). */
  name: string;
  file: string;
  /** What it is, for the MANIFEST. */
  what: string;
}

/** A file the archive may take: its name in the archive, size and modification time. */
export interface Sized {
  name: string;
  size: number;
  mtimeMs: number;
}

export interface Skipped {
  name: string;
  reason: string;
}

/** `var/clgw/history.json` for `<root>/var/clgw/history.json`: names in the archive are relative. */
export function archiveName(root: string, file: string): string {
  const base = root.endsWith('/') ? root : `${root}/`;
  if (!file.startsWith(base) || file.length === base.length)
    throw new ClgwError('INTERNAL', `${file} is not under the appliance root ${root}`, {
      details: { file, root },
    });
  return file.slice(base.length);
}

/**
 * The state records, each named explicitly. None holds a secret: the update journal, history,
 * slot status, alarms and container records hold versions, states and errors; diagnostics hold
 * probe results (hosts, ports, certificate checks); the schedule a time and zone; the first-boot
 * record only the `cl.*` network properties; the SSH state two times; the network files the
 * addresses, DNS servers and hostname.
 */
export function stateRecords(paths: AppliancePaths): StateRecord[] {
  const record = (file: string, what: string): StateRecord => ({
    name: archiveName(paths.root, file),
    file,
    what,
  });
  return [
    record(paths.journal, 'update journal'),
    record(paths.history, 'update history'),
    record(paths.slotStatus, 'slot status'),
    record(paths.alarms, 'alarm history'),
    record(paths.containersState, 'container upgrade records'),
    record(paths.diagnostics, 'startup diagnostics'),
    record(paths.schedule, 'update window'),
    record(paths.firstBoot, 'first boot record'),
    record(paths.recoveryRecord, 'recovery record'),
    record(paths.sshState, 'SSH access state'),
    record(paths.networkSettings, 'network settings'),
    record(paths.networkUnit, 'rendered networkd unit'),
    record(paths.hostnameFile, 'hostname'),
  ];
}

/**
 * What the MANIFEST says is never taken, by category, so that a reader knows it was left out on
 * purpose. Only named, never looked at: listing them would mean walking them.
 */
export function neverIncluded(paths: AppliancePaths): Skipped[] {
  const dir = (file: string) => `${archiveName(paths.root, file)}/`;
  return [
    { name: dir(paths.sshDir), reason: 'SSH host private keys' },
    { name: archiveName(paths.root, paths.proxy), reason: 'the proxy setting (may hold a password)' },
    { name: dir(paths.onboardingDir), reason: 'onboarding data (account link, PBX settings, tokens)' },
    { name: dir(paths.containerData), reason: "each container's own data" },
    { name: dir(paths.containerStorage), reason: "the container engine's storage (images, layers)" },
    { name: dir(paths.containerArchives), reason: 'downloaded container image archives' },
    { name: dir(paths.chunkIndexes), reason: "chunk indexes of the slots' contents" },
    { name: dir(paths.dataDir), reason: 'anything else on the data partition not listed as included' },
  ];
}

/** Newest first; equal times by name, so `clgw.log` comes before `clgw.log.1`. */
export function newestFirst(a: Sized, b: Sized): number {
  return b.mtimeMs - a.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Takes `items` newest first while they fit in `budget` bytes; one that does not fit is skipped
 * with the reason, and smaller older ones may still fit after it. `maxBytes` is the whole cap
 * (for the reason's text). Returns what was taken, in order, and the bytes left.
 */
export function fitNewestFirst<T extends Sized>(
  items: readonly T[],
  budget: number,
  maxBytes: number,
): { taken: T[]; skipped: Skipped[]; left: number } {
  const taken: T[] = [];
  const skipped: Skipped[] = [];
  let left = budget;
  for (const item of [...items].sort(newestFirst)) {
    if (item.size > left) {
      skipped.push({ name: item.name, reason: `size cap: ${item.size} bytes, ${left} of ${maxBytes} left` });
      continue;
    }
    left -= item.size;
    taken.push(item);
  }
  return { taken, skipped, left };
}
