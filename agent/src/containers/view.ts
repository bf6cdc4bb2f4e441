import { type SerializedError, serializeError } from '@clgw/core/errors.js';
import type { Clock } from '@clgw/core/platform/clock.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { CONTAINER_NAMES, type ContainerName } from '@clgw/core/release/schema.js';
import { containerName, type EnginePort, LABELS } from './engine-port.js';
import { probe } from './probe.js';
import { type ContainersState, readContainersState, type ServiceResult } from './state.js';

/** One row of `clgw containers`. */
export interface ContainerRow {
  service: ContainerName;
  name: string;
  /** Absent when the service has no container. */
  version?: string;
  image?: string;
  /** Engine state, or `absent`. */
  state: string;
  /** `GET /health` on its port right now (only asked of a running container). */
  health: 'healthy' | 'unhealthy' | 'not running';
  uptimeSeconds?: number;
  /** The service's last upgrade (with its downtime). */
  last?: ServiceResult;
  /** Versions not installed again automatically. */
  rejected: string[];
}

export interface ContainersView {
  engine: { reachable: boolean; error?: SerializedError };
  containers: ContainerRow[];
  /** A container upgrade is running now. */
  running: boolean;
  lastRun?: ContainersState['lastRun'];
}

/** What `GET /v1/containers` answers: the engine's containers with their health, and the state. */
export async function containersView(
  deps: { engine: EnginePort; paths: AppliancePaths; clock: Clock },
  running: boolean,
): Promise<ContainersView> {
  const state = await readContainersState(deps.paths.containersState).catch(() => undefined);
  const rows: ContainerRow[] = [];
  let engine: ContainersView['engine'] = { reachable: true };
  for (const service of CONTAINER_NAMES) {
    const name = containerName(service);
    const base = {
      service,
      name,
      rejected: (state?.rejected[service] ?? []).map((r) => r.version),
      ...(state?.last[service] ? { last: state.last[service] } : {}),
    };
    if (!engine.reachable) {
      rows.push({ ...base, state: 'unknown', health: 'not running' });
      continue;
    }
    let info: Awaited<ReturnType<EnginePort['inspectContainer']>>;
    try {
      info = await deps.engine.inspectContainer(name);
    } catch (e) {
      engine = { reachable: false, error: serializeError(e) };
      rows.push({ ...base, state: 'unknown', health: 'not running' });
      continue;
    }
    if (!info) {
      if (base.last || base.rejected.length) rows.push({ ...base, state: 'absent', health: 'not running' });
      continue;
    }
    const port = Number(info.labels[LABELS.healthPort]);
    const health = info.running
      ? Number.isInteger(port) && (await probe(port, '/health')).status === 200
        ? 'healthy'
        : 'unhealthy'
      : 'not running';
    const started = info.startedAt ? Date.parse(info.startedAt) : Number.NaN;
    rows.push({
      ...base,
      version: info.labels[LABELS.version],
      image: info.image,
      state: info.state,
      health,
      ...(info.running && Number.isFinite(started)
        ? { uptimeSeconds: Math.max(0, Math.round((deps.clock.now() - started) / 1000)) }
        : {}),
    });
  }
  return {
    engine,
    containers: rows,
    running,
    ...(state?.lastRun ? { lastRun: state.lastRun } : {}),
  };
}
