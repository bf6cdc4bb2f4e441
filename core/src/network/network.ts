import { promises as fs } from 'node:fs';
import type { AgentConfig } from '../config.js';
import { ClgwError, serializeError } from '../errors.js';
import { fsyncDir, readJsonFile, writeFileAtomic, writeJsonAtomic } from '../platform/atomic.js';
import { execFile } from '../platform/exec.js';
import type { Logger } from '../platform/log.js';
import type { AppliancePaths } from '../platform/paths.js';
import {
  DEFAULT_NETWORK,
  describeNetwork,
  type NetworkInput,
  type NetworkSettings,
  renderHostname,
  renderNetworkUnit,
  toInput,
  validateNetworkSettings,
} from './settings.js';

export interface NetworkDeps {
  paths: AppliancePaths;
  config: Pick<AgentConfig, 'lanInterface' | 'networkApply' | 'netns'>;
  log: Logger;
}

/** What status shows about the network settings. */
export interface NetworkView {
  settings: NetworkSettings;
  /** `saved`: chosen by a technician (or deployment); `default`: factory DHCP. */
  source: 'saved' | 'default';
  summary: string;
  /** Why saved settings could not be used (the appliance then runs the factory default). */
  error?: string;
}

/**
 * The saved settings, or the factory default when there are none. Saved settings that no longer
 * validate (an edited file) are reported and replaced by the default in effect, never trusted:
 * a technician locked out by a bad address is worse than a box on DHCP.
 */
export async function readNetwork(paths: AppliancePaths): Promise<NetworkView> {
  const fallback = (error?: string): NetworkView => ({
    settings: DEFAULT_NETWORK,
    source: 'default',
    summary: describeNetwork(DEFAULT_NETWORK),
    ...(error ? { error } : {}),
  });
  let raw: unknown;
  try {
    raw = await readJsonFile(paths.networkSettings);
  } catch (e) {
    return fallback(serializeError(e).message);
  }
  if (raw === undefined) return fallback();
  try {
    const settings = validateNetworkSettings(toInput(raw as NetworkSettings));
    return { settings, source: 'saved', summary: describeNetwork(settings) };
  } catch (e) {
    return fallback(`${paths.networkSettings}: ${(e as Error).message}`);
  }
}

/** What saving and rendering the settings needs (applying them needs all of {@link NetworkDeps}). */
export type SaveNetworkDeps = Pick<NetworkDeps, 'paths' | 'log'> & {
  config: Pick<AgentConfig, 'lanInterface'>;
};

/**
 * Validates the settings, saves them (the one atomic write that decides) and renders the files
 * for systemd-networkd and the hostname, without applying them: enough where systemd-networkd
 * has not started yet (first boot), and the first half of {@link changeNetwork}.
 */
export async function saveNetwork(deps: SaveNetworkDeps, input: NetworkInput): Promise<NetworkView> {
  const settings = validateNetworkSettings(input);
  await writeJsonAtomic(deps.paths.networkSettings, settings);
  deps.log.info('network settings saved', {
    network: describeNetwork(settings),
    hostname: settings.hostname,
  });
  await render(deps, settings);
  return { settings, source: 'saved', summary: describeNetwork(settings) };
}

/**
 * Applies a technician's change: validated, saved and rendered ({@link saveNetwork}), then
 * applied. A cut after the save is finished by {@link reconcileNetwork} at the next start.
 */
export async function changeNetwork(deps: NetworkDeps, input: NetworkInput): Promise<NetworkView> {
  const view = await saveNetwork(deps, input);
  await apply(deps, view.settings);
  return view;
}

/**
 * At every start: the rendered files follow the saved settings (a change cut off after its save
 * is finished here and applied); without saved settings, rendered files are removed so the
 * image's DHCP default applies.
 */
export async function reconcileNetwork(deps: NetworkDeps): Promise<void> {
  const view = await readNetwork(deps.paths);
  if (view.error)
    deps.log.error('network settings unusable; running the factory default', { error: view.error });
  if (view.source === 'default') {
    let removed = false;
    for (const file of [deps.paths.networkUnit, deps.paths.hostnameFile]) {
      removed =
        (await fs.rm(file).then(
          () => true,
          () => false,
        )) || removed;
    }
    if (removed) await fsyncDir(deps.paths.networkDir);
    return;
  }
  if (await render(deps, view.settings)) {
    deps.log.warn('finishing a network change cut off by a restart', { network: view.summary });
    await apply(deps, view.settings);
  }
}

/** Writes the files that differ from what the settings render to; true when one did. */
async function render(deps: SaveNetworkDeps, settings: NetworkSettings): Promise<boolean> {
  const files: [string, string][] = [
    [deps.paths.networkUnit, renderNetworkUnit(settings, deps.config.lanInterface)],
    [deps.paths.hostnameFile, renderHostname(settings)],
  ];
  let changed = false;
  for (const [file, content] of files) {
    if ((await fs.readFile(file, 'utf8').catch(() => undefined)) === content) continue;
    await writeFileAtomic(file, content);
    changed = true;
  }
  return changed;
}

/** The commands that put the settings on the interface, per `networkApply`. */
function applySteps(deps: NetworkDeps, settings: NetworkSettings): [string, string[]][] {
  const iface = deps.config.lanInterface;
  if (deps.config.networkApply === 'systemd') {
    return [
      ['networkctl', ['reload']],
      ['networkctl', ['reconfigure', iface]],
      // Transient: the static name is /etc/hostname, which the image links to the rendered file.
      ['hostnamectl', ['--transient', 'hostname', settings.hostname]],
    ];
  }
  // netns: the rendered unit's addresses and gateway set with `ip` on the namespace's interface.
  // DHCP leaves the interface without a static address for a DHCP client (none runs here).
  const ns = deps.config.netns;
  if (!ns) throw new ClgwError('CONFIG_INVALID', 'networkApply "netns" needs "netns" (the namespace name)');
  const ip = (...args: string[]): [string, string[]] => ['ip', ['-n', ns, ...args]];
  // Flushing the addresses also drops the routes through them (the kernel removes a route whose
  // gateway is no longer on a connected network).
  const steps = [ip('addr', 'flush', 'dev', iface), ip('link', 'set', iface, 'up')];
  const s = settings.ipv4;
  if (s.mode === 'static') {
    steps.push(ip('addr', 'add', `${s.address}/${s.prefixLength}`, 'dev', iface));
    if (s.gateway) steps.push(ip('route', 'replace', 'default', 'via', s.gateway, 'dev', iface));
  }
  return steps;
}

async function apply(deps: NetworkDeps, settings: NetworkSettings): Promise<void> {
  if (deps.config.networkApply === 'none') return;
  const iface = deps.config.lanInterface;
  const steps = applySteps(deps, settings);
  for (const [cmd, args] of steps) {
    try {
      await execFile(cmd, args);
    } catch (e) {
      throw new ClgwError(
        'NETWORK_APPLY_FAILED',
        `network settings saved, but applying them failed: ${cmd} ${args.join(' ')}: ${(e as Error).message}`,
        { cause: e, details: { command: cmd, args } },
      );
    }
  }
  deps.log.info('network settings applied', { interface: iface, network: describeNetwork(settings) });
}
