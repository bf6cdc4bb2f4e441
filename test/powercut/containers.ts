/**
 * The container engine of a power-cut case: a private Podman in the case's directory, started
 * before the first power-on, taken down hard by every cut (as a real power cut takes it down) and
 * started again before the next power-on; the service containers installed before the first
 * power-on by the agent's own code; and the container invariants checked at the end.
 * README.md in this directory explains the model and its limits.
 */
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { fileLogger } from '@clgw/core/platform/log.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import type { ContainerName } from '@clgw/core/release/schema.js';
import { composeDeps } from '../../agent/src/compose.js';
import { createEngine } from '../../agent/src/containers/engine.js';
import { containerName, type EnginePort, LABELS } from '../../agent/src/containers/engine-port.js';
import { probe } from '../../agent/src/containers/probe.js';
import { runContainerUpgrade } from '../../agent/src/containers/run.js';
import { readContainersState } from '../../agent/src/containers/state.js';
import { enginePaths, startEngineIn, stopEngineIn } from '../../scripts/lib/engine.js';
import { descendants, signal, sleep } from './crash.js';
import type { ContainerExpectation } from './scenarios.js';

/**
 * Health ports are taken from here, below Linux's default ephemeral range (32768–60999), so that
 * no outgoing connection of the machine holds one while its container is down between power-ons.
 */
const PORT_LOW = 20_000;
const PORT_HIGH = 32_000;
/** Where the runtime (runc, as Podman runs it rootful) keeps the state of running containers: /run, a tmpfs. */
const RUNC_STATE = '/run/runc';
/** The cgroup file systems, and where Podman's cgroupfs manager puts a container (`libpod-<id>`). */
const CGROUPS = '/sys/fs/cgroup';
const CGROUP_PARENT = 'libpod_parent';
/** A health answer may lag the end of the run (a container started without a health wait): this long. */
const HEALTH_GRACE_MS = 5_000;

let nextPort = PORT_LOW + ((process.pid * 7) % (PORT_HIGH - PORT_LOW));

async function bindable(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port no other case of this run uses and nothing listens on now. */
export async function takePort(): Promise<number> {
  for (let tries = 0; tries < 1000; tries++) {
    const port = nextPort;
    nextPort = nextPort + 1 >= PORT_HIGH ? PORT_LOW : nextPort + 1;
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port between ${PORT_LOW} and ${PORT_HIGH}`);
}

/** Live processes (not this one) whose command line names a path under `dir`: the service, conmon, cleanups. */
function processesUsing(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(`${dir}/`)) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Mount points under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m): m is string => m !== undefined)
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((m) => m.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** One case's engine (its own directory and health ports). */
export class CaseEngine {
  readonly socket: string;
  private port: EnginePort | undefined;

  private constructor(
    readonly dir: string,
    readonly ports: Record<ContainerName, number>,
  ) {
    this.socket = enginePaths(dir).socket;
  }

  /** Starts a new engine in `dir` with free health ports for the case. */
  static async create(dir: string): Promise<CaseEngine> {
    const ports = { tunnel: await takePort(), micloud: await takePort(), freeswitch: await takePort() };
    const engine = new CaseEngine(path.resolve(dir), ports);
    await engine.start();
    return engine;
  }

  /** The engine's API as the agent sees it. */
  api(): EnginePort {
    this.port ??= createEngine(this.socket);
    return this.port;
  }

  /** Starts the engine (power-on); one that runs already is kept. */
  async start(): Promise<void> {
    await startEngineIn(this.dir);
  }

  /**
   * The power goes: every process of the engine (the API service, each container's conmon and
   * the container's own processes) is frozen, then SIGKILLed — nothing stops cleanly, no exit is
   * recorded. Then what a reboot clears: the mounts (the containers' root file systems, their
   * shm), the engine's run directory, the runtime's state of its containers (both on tmpfs on the
   * appliance) and their cgroups (empty now). Podman's database and image/container storage stay as
   * they are. Returns the number of processes killed.
   */
  async cut(): Promise<number> {
    const killed = new Set<number>();
    // A conmon may be starting a cleanup while we look: look again until nothing is left.
    for (let round = 0; round < 20; round++) {
      const roots = processesUsing(this.dir);
      if (roots.length === 0) break;
      for (const p of roots) signal(p, 'SIGSTOP');
      const all = new Set(roots);
      for (const p of roots) for (const c of await descendants(p)) all.add(c);
      for (const p of all) signal(p, 'SIGSTOP');
      for (const p of all) {
        signal(p, 'SIGKILL');
        killed.add(p);
      }
      await sleep(5);
    }
    if (processesUsing(this.dir).length > 0) throw new Error(`the engine in ${this.dir} does not die`);
    this.port = undefined;
    const p = enginePaths(this.dir);
    for (const m of mountsUnder(this.dir)) await execFile('umount', ['--lazy', m]).catch(() => undefined);
    const stored = await fs
      .readFile(path.join(p.root, 'overlay-containers/containers.json'), 'utf8')
      .then((t) => JSON.parse(t) as { id?: unknown }[])
      .catch(() => [] as { id?: unknown }[]);
    const hierarchies = await fs.readdir(CGROUPS).catch(() => [] as string[]);
    for (const c of stored) {
      if (typeof c.id !== 'string' || !/^[0-9a-f]{64}$/.test(c.id)) continue;
      await fs.rm(path.join(RUNC_STATE, c.id), { recursive: true, force: true });
      for (const h of hierarchies) {
        await fs.rmdir(path.join(CGROUPS, h, CGROUP_PARENT, `libpod-${c.id}`)).catch(() => undefined);
      }
    }
    await fs.rm(p.runroot, { recursive: true, force: true });
    await fs.rm(p.pidFile, { force: true });
    await fs.rm(p.socket, { force: true });
    return killed.size;
  }

  /** What the engine holds now, one entry per container: `name version state`. */
  async describe(): Promise<string> {
    const list = await this.api()
      .listContainers()
      .catch((e: Error) => [e.message]);
    return (
      list
        .map((c) => (typeof c === 'string' ? c : `${c.name} ${c.labels[LABELS.version] ?? '?'} ${c.state}`))
        .sort()
        .join(', ') || 'no containers'
    );
  }

  /** Stops the engine and its containers, unmounts, removes the directory. */
  async close(): Promise<void> {
    await stopEngineIn(this.dir);
    // Anything a cut left that the orderly stop did not see (it looks at the pid file only).
    if (processesUsing(this.dir).length > 0 || mountsUnder(this.dir).length > 0) await this.cut();
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}

/** The agent.json fields that point the case's appliance at its engine. */
export function engineConfig(engine: CaseEngine): Record<string, unknown> {
  return {
    engineSocket: engine.socket,
    containerPorts: engine.ports,
    // Long enough for a stand-in to answer on a busy machine, short enough for a quick rollback.
    containerHealthTimeoutMs: 5000,
  };
}

/**
 * Installs the containers the mirror (the appliance's configured `baseUrl`) names before the first
 * power-on, with the agent's own code in this process: compat.yaml fetched and verified, each
 * service installed and healthy, containers.json and the accepted serial written as on the
 * appliance. Throws unless every service was installed.
 */
export async function installContainers(paths: AppliancePaths, services: ContainerName[]): Promise<void> {
  const log = fileLogger({ file: paths.logFile, clock: systemClock });
  try {
    const deps = await composeDeps({
      paths,
      clock: systemClock,
      log,
      reboot: {
        reboot: async () => {
          throw new ClgwError('INTERNAL', 'no reboot while the containers are installed');
        },
      },
    });
    const state = await runContainerUpgrade(deps, { trigger: 'user' });
    for (const service of services) {
      if (state.last[service]?.outcome !== 'installed') {
        throw new Error(
          `setting up the case: ${service} was not installed (${JSON.stringify(state.last[service])})`,
        );
      }
    }
  } finally {
    await log.flush();
  }
}

/**
 * How the container run of this power-on stands, from containers.json: `done` (ended after
 * `since` with nothing left under way), `failed` (ended after `since` on an error), else `running`
 * (not started yet, or under way).
 */
export async function containerRun(
  paths: AppliancePaths,
  since: number,
): Promise<'running' | 'done' | 'failed'> {
  const state = await readContainersState(paths.containersState).catch(() => undefined);
  const last = state?.lastRun;
  if (!last || !(Date.parse(last.at) >= since)) return 'running';
  if (last.outcome === 'failed') return 'failed';
  return state.run ? 'running' : 'done';
}

/**
 * Invariant 6 on the appliance at the end (engine still running): exactly the expected service
 * containers — no `-next` and nothing else of ours — each with the expected version (label, image
 * reference, `GET /version`), running and answering `GET /health` 200 on the case's port;
 * containers.json with no run under way, the last run done, each service's last result and its
 * rejected versions as expected.
 */
export async function checkContainers(
  paths: AppliancePaths,
  engine: CaseEngine,
  expected: Partial<Record<ContainerName, ContainerExpectation>>,
  imageOf: (service: ContainerName, version: string) => string,
): Promise<string[]> {
  const out: string[] = [];
  const list = await engine
    .api()
    .listContainers()
    .catch((e: Error) => e);
  if (list instanceof Error) return [`the engine cannot list its containers: ${list.message}`];
  const wanted = Object.keys(expected).map((s) => containerName(s as ContainerName));
  const extra = list.map((c) => c.name).filter((n) => !wanted.includes(n));
  if (extra.length > 0)
    out.push(`the engine holds ${extra.sort().join(', ')} besides the service containers`);
  for (const [service, exp] of Object.entries(expected) as [ContainerName, ContainerExpectation][]) {
    const name = containerName(service);
    const c = list.find((x) => x.name === name);
    if (!c) {
      out.push(`${name} does not exist`);
      continue;
    }
    const label = c.labels[LABELS.version];
    if (label !== exp.version || c.image !== imageOf(service, exp.version)) {
      out.push(
        `${name} is ${label} (${c.image}), expected ${exp.version} (${imageOf(service, exp.version)})`,
      );
    }
    const port = engine.ports[service];
    if (c.labels[LABELS.healthPort] !== String(port)) {
      out.push(`${name} has health port ${c.labels[LABELS.healthPort]}, the case's is ${port}`);
    }
    if (!c.running) {
      out.push(`${name} is ${c.state}, not running`);
      continue;
    }
    let health = await probe(port, '/health');
    for (const end = Date.now() + HEALTH_GRACE_MS; health.status !== 200 && Date.now() < end; ) {
      await sleep(100);
      health = await probe(port, '/health');
    }
    if (health.status !== 200) {
      out.push(`${name}: GET /health on port ${port} answers ${health.status || health.error}`);
    }
    const version = await probe(port, '/version');
    if (version.body !== `${service} ${exp.version}`) {
      out.push(
        `${name}: GET /version on port ${port} answers ${version.status || version.error} ${JSON.stringify(version.body)}, expected "${service} ${exp.version}"`,
      );
    }
  }

  const state = await readContainersState(paths.containersState).catch((e: Error) => e);
  if (state instanceof Error) {
    out.push(`containers.json unreadable: ${state.message}`);
    return out;
  }
  if (state.run) out.push(`containers.json still has a run under way (${JSON.stringify(state.run)})`);
  if (state.lastRun?.outcome !== 'done') {
    out.push(`containers.json: the last run ${state.lastRun?.outcome ?? 'is not recorded'}`);
  }
  for (const [service, exp] of Object.entries(expected) as [ContainerName, ContainerExpectation][]) {
    const last = state.last[service];
    if (
      last?.outcome !== exp.last.outcome ||
      last.version !== exp.last.version ||
      (exp.last.from !== undefined && last.from !== exp.last.from)
    ) {
      out.push(
        `containers.json: ${service}'s last result is ${last ? `${last.outcome} ${last.version} from ${last.from}` : 'none'}, expected ${exp.last.outcome} ${exp.last.version}${exp.last.from ? ` from ${exp.last.from}` : ''}`,
      );
    }
    const rejected = (state.rejected[service] ?? []).map((r) => r.version).sort();
    if (JSON.stringify(rejected) !== JSON.stringify([...exp.rejected].sort())) {
      out.push(
        `containers.json: ${service} rejects ${rejected.join(', ') || 'nothing'}, expected ${exp.rejected.join(', ') || 'nothing'}`,
      );
    }
  }
  return out;
}
