import type { AgentConfig } from '@clgw/core/config.js';
import type { Clock } from '@clgw/core/platform/clock.js';
import type { HttpClient } from '@clgw/core/platform/http.js';
import type { Logger } from '@clgw/core/platform/log.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import type { RateBudget } from '@clgw/core/platform/rate-budget.js';
import type { MachineShape, Profile } from '@clgw/core/system/profiles.js';
import type { CompatCache } from './actors/check.js';
import type { ProgressTracker } from './actors/progress.js';
import type { EnginePort } from './containers/engine-port.js';
import type { Journal } from './machine/journal.js';
import type { ProxySetting } from './network/proxy.js';
import type { SshServer } from './ssh/ssh.js';

/** Restarting the appliance: `systemctl reboot` on the box, the boot emulator in the simulator. */
export interface RebootPort {
  reboot(reason: string): Promise<void>;
}

/** Everything the effects need, built once in main.ts — no module singletons. */
export interface Deps {
  paths: AppliancePaths;
  config: AgentConfig;
  clock: Clock;
  log: Logger;
  http: HttpClient;
  reboot: RebootPort;
  progress: ProgressTracker;
  /** PEM of the extra CA trusted for the download server (a local mirror), if configured. */
  downloadCa?: string;
  /** The download budget every artifact byte books against (agent.json downloadBudgetMbit). */
  downloadBudget?: RateBudget;
  /** PEM of the release signing root(s) pinned on this appliance. */
  trustedRootsPem: string;
  /** The last compat.yaml that verified, which the next check revalidates (actors/check.ts). */
  compatCache: CompatCache;
  /** The performance profile in effect, and the machine it was chosen for (SPEC §6). */
  profile: Profile;
  machine: MachineShape;
  /** Makes `http` use this proxy from the next request on (undefined: none). */
  useProxy(proxy: ProxySetting | undefined): void;
  /** The OpenSSH server that "Enable SSH access" starts. */
  ssh: SshServer;
  /** The container engine (Podman's Docker-compatible API). */
  engine: EnginePort;
  /** Persist the update journal (atomic). Effects call it at download checkpoints. */
  persistJournal(journal: Journal): Promise<void>;
}
