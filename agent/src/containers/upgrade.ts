import { createHash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import type { AgentConfig } from '@clgw/core/config.js';
import { archiveForLoad, inspectImageArchive } from '@clgw/core/containers/archive.js';
import { ClgwError, isClgwError, serializeError } from '@clgw/core/errors.js';
import { fsyncDir } from '@clgw/core/platform/atomic.js';
import type { Clock } from '@clgw/core/platform/clock.js';
import { crashpoint } from '@clgw/core/platform/crashpoint.js';
import type { HttpClient } from '@clgw/core/platform/http.js';
import type { Logger } from '@clgw/core/platform/log.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { CONTAINER_NAMES, type ContainerName, type ContainerRef } from '@clgw/core/release/schema.js';
import type { Profile } from '@clgw/core/system/profiles.js';
import { waitForCallsToEnd } from '../voice/wait.js';
import { type ContainerInfo, containerName, type EnginePort, type ImageInfo, LABELS } from './engine-port.js';
import {
  type ArchiveRef,
  nextName,
  type Observed,
  planService,
  type Step,
  sameImageId,
  versionAnswerMatches,
} from './plan.js';
import { probe } from './probe.js';
import { type ContainersState, readContainersState, type ServiceRun, writeContainersState } from './state.js';

/** The services whose container swap drops the site's calls. */
const CALL_CARRIERS: ReadonlySet<ContainerName> = new Set(['freeswitch', 'tunnel']);

export interface ContainerDeps {
  paths: AppliancePaths;
  config: Pick<AgentConfig, 'baseUrl' | 'containerPorts' | 'containerHealthTimeoutMs' | 'voice'>;
  /** The performance profile in effect (memory limits, FreeSWITCH's RTP range). */
  profile: Profile;
  clock: Clock;
  log: Logger;
  http: HttpClient;
  engine: EnginePort;
}

export interface ContainerRunRequest {
  trigger: 'boot' | 'window' | 'user';
  /** Retry versions that failed here before. */
  force?: boolean;
  /** What compat.yaml names for this platform (verified by the caller). */
  targets: readonly ContainerRef[];
  signal?: AbortSignal;
}

/** A safety net: a service whose plan does not reach its end within this many rounds is an error. */
const MAX_ROUNDS = 4;
const HEALTH_POLL_MS = 200;

/**
 * Brings every service container to what compat.yaml names, one service at a time: plan from
 * what the engine shows, persist each step before it runs, run it (one engine call, or the
 * archive fetch, or the health wait). A new container that does not become healthy is rolled
 * back (old one started again, the version remembered as failed). An engine error ends the run
 * with the state kept, so the next run continues where this one stopped.
 */
export async function upgradeContainers(
  deps: ContainerDeps,
  req: ContainerRunRequest,
): Promise<ContainersState> {
  const file = deps.paths.containersState;
  const state = await readContainersState(file).catch((e) => {
    deps.log.error('container state unreadable; starting it afresh', { error: serializeError(e) });
    return { schema: 1, last: {}, rejected: {} } as ContainersState;
  });
  const now = () => new Date(deps.clock.now()).toISOString();
  state.run ??= { startedAt: now(), trigger: req.trigger, force: req.force ?? false, services: {} };
  const run = state.run;
  if (req.force) run.force = true;
  const persist = () => writeContainersState(file, state);
  await persist();
  try {
    for (const service of CONTAINER_NAMES) {
      await converge(
        deps,
        state,
        service,
        req.targets.find((t) => t.name === service),
        persist,
        req.signal,
      );
    }
    state.run = undefined;
    state.lastRun = { at: now(), outcome: 'done' };
    await persist();
    return state;
  } catch (e) {
    const error = serializeError(e);
    state.lastRun = { at: now(), outcome: 'failed', error };
    await persist().catch(() => undefined);
    deps.log.error('container upgrade stopped', { error });
    throw e;
  }
}

async function converge(
  deps: ContainerDeps,
  state: ContainersState,
  service: ContainerName,
  target: ContainerRef | undefined,
  persist: () => Promise<void>,
  signal: AbortSignal | undefined,
): Promise<void> {
  const run = state.run!;
  const voice = deps.config.voice;
  const defaults = {
    port: deps.config.containerPorts[service],
    dataDir: path.join(deps.paths.containerData, service),
    // The event socket's port the agent asks on (the stand-in listens where ESL_PORT says; a
    // real FreeSWITCH image's event_socket.conf must agree with agent.json).
    ...(service === 'freeswitch' && voice ? { env: [`ESL_PORT=${voice.port}`] } : {}),
  };
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const observed = await observe(deps, service, target);
    let sr = run.services[service];
    const plan = planService({
      service,
      observed,
      target,
      intent: sr?.intent ?? 'upgrade',
      profile: deps.profile.name,
      defaults,
      rejected: (state.rejected[service] ?? []).map((r) => r.version),
      force: run.force,
    });
    if (plan.steps.length === 0) {
      await finish(deps, state, service, persist);
      return;
    }
    if (!sr) {
      sr = {
        intent: 'upgrade',
        action: plan.action,
        from: observed.main?.labels[LABELS.version],
        to: plan.version,
      };
      run.services[service] = sr;
      deps.log.info(`container ${service}: ${plan.action}`, { from: sr.from, to: sr.to });
    }
    if (plan.action === 'upgrade' || plan.action === 'install')
      await fs.mkdir(defaults.dataDir, { recursive: true });
    for (const step of plan.steps) {
      signal?.throwIfAborted();
      // Stopping the voice service, or the tunnel its calls go through, drops every call up.
      if (step.kind === 'stop' && step.name === containerName(service) && CALL_CARRIERS.has(service))
        await waitForCallsToEnd(deps, {
          calls: run.calls,
          save: (calls) => {
            run.calls = calls;
            return persist();
          },
          signal,
        });
      run.step = step;
      await persist();
      crashpoint(`container ${step.kind} ${service}`);
      try {
        await execute(deps, step, sr, signal);
      } catch (e) {
        // The new container never became healthy: back to the old one. Anything else (engine
        // gone, disk full, bad archive) ends the run; the next run plans again from here.
        if (step.kind === 'waitHealthy' && sr.intent === 'upgrade' && step.name === nextName(service)) {
          sr.intent = 'rollback';
          sr.reason = serializeError(e);
          deps.log.error(`container ${service}: the new container is not healthy; rolling back`, {
            version: step.version,
            error: sr.reason,
          });
          break;
        }
        throw e;
      }
      if (step.kind === 'stop' && step.name === containerName(service))
        sr.stoppedAt = new Date(deps.clock.now()).toISOString();
    }
  }
  throw new ClgwError(
    'INTERNAL',
    `container ${service}: the upgrade plan did not converge in ${MAX_ROUNDS} rounds`,
  );
}

/** The service reached its plan's end: record what happened. */
async function finish(
  deps: ContainerDeps,
  state: ContainersState,
  service: ContainerName,
  persist: () => Promise<void>,
): Promise<void> {
  const sr = state.run!.services[service];
  if (!sr) return;
  const at = new Date(deps.clock.now()).toISOString();
  if (sr.intent === 'rollback') {
    const message = sr.reason?.message ?? 'the new container did not become healthy';
    state.last[service] = {
      outcome: 'rolledBack',
      version: sr.from,
      attempted: sr.to,
      at,
      ...(sr.reason ? { error: sr.reason } : {}),
    };
    if (sr.to) {
      const others = (state.rejected[service] ?? []).filter((r) => r.version !== sr.to);
      state.rejected[service] = [...others, { version: sr.to, at, message }];
    }
    deps.log.warn(`container ${service}: ${sr.to} rolled back`, { running: sr.from, reason: message });
  } else if (sr.action === 'remove') {
    state.last[service] = { outcome: 'removed', at, from: sr.from };
  } else if (sr.action === 'upgrade' || sr.action === 'install') {
    const downtimeMs =
      sr.stoppedAt && sr.healthyAt ? Date.parse(sr.healthyAt) - Date.parse(sr.stoppedAt) : undefined;
    state.last[service] = {
      outcome: sr.action === 'install' ? 'installed' : 'upgraded',
      version: sr.to,
      ...(sr.from ? { from: sr.from } : {}),
      at,
      ...(downtimeMs !== undefined ? { downtimeMs } : {}),
    };
    deps.log.info(`container ${service}: ${sr.to} running`, { from: sr.from, downtimeMs });
  }
  delete state.run!.services[service];
  state.run!.step = undefined;
  await persist();
}

async function observe(
  deps: ContainerDeps,
  service: ContainerName,
  target: ContainerRef | undefined,
): Promise<Observed> {
  const [main, next, image] = await Promise.all([
    inspectOrFinishRemoval(deps, containerName(service)),
    inspectOrFinishRemoval(deps, nextName(service)),
    target ? inspectImageOrReload(deps, target.image) : Promise.resolve(undefined),
  ]);
  // By the ID compat.yaml signs where it signs one: a tag alone says nothing of what it points at.
  const imagePresent =
    image !== undefined && (target?.imageId === undefined || sameImageId(image.id, target.imageId));
  return { main, next, imagePresent };
}

/**
 * An image the engine has but cannot read counts as absent, so the plan loads it again. Podman
 * commits a loaded image in several writes; a cut in between leaves an image without its
 * manifest, and inspecting any image that shares layers with it then fails ("locating item named
 * manifest … consider removing the image"). The half-loaded image has no name yet, so its own
 * plan loads it again, which completes it; meanwhile an image that cannot be read is loaded again
 * where a plan needs it, which is harmless.
 */
async function inspectImageOrReload(deps: ContainerDeps, reference: string): Promise<ImageInfo | undefined> {
  try {
    return await deps.engine.inspectImage(reference);
  } catch (e) {
    if (!(isClgwError(e) && e.code === 'ENGINE_ERROR')) throw e;
    deps.log.warn(`image ${reference} cannot be read; it will be loaded again`, { error: serializeError(e) });
    return undefined;
  }
}

/**
 * The engine cannot read a container whose storage is gone while its record is still there
 * (Podman deletes a container's storage first and its database record last, so a cut in between
 * leaves one that inspect, list and start fail on: "container not known", "layer not known").
 * Only a removal deletes storage, so the removal is finished (forced, by name) and the container
 * looked at again — without this every later run would stop at the same inspect.
 */
async function inspectOrFinishRemoval(deps: ContainerDeps, name: string): Promise<ContainerInfo | undefined> {
  try {
    return await deps.engine.inspectContainer(name);
  } catch (e) {
    if (!(isClgwError(e) && e.code === 'ENGINE_ERROR' && /\b(container|layer) not known\b/.test(e.message)))
      throw e;
    deps.log.warn(`container ${name}: its storage is gone (a removal cut short); removing it`, {
      error: serializeError(e),
    });
    await deps.engine.removeContainer(name);
    return deps.engine.inspectContainer(name);
  }
}

/** The executor table: each step is one engine call (or the fetch, or the health wait). */
async function execute(deps: ContainerDeps, step: Step, sr: ServiceRun, signal?: AbortSignal): Promise<void> {
  const { engine } = deps;
  switch (step.kind) {
    case 'fetch':
      await fetchArchive(deps, step.archive, signal);
      return;
    case 'load':
      await loadArchive(deps, step);
      return;
    case 'create':
      // A cut while the engine was creating it can leave a container that holds the name in the
      // engine's storage but is not in its database (Podman: an "external" storage-only
      // container, invisible to inspect and list); the create would then fail on every later
      // boot. A forced remove by name evicts it (and is a 404, fine, when there is none).
      await engine.removeContainer(step.spec.name);
      await engine.createContainer(step.spec);
      return;
    case 'stop':
      await engine.stopContainer(step.name, 10);
      return;
    case 'start':
      await engine.startContainer(step.name);
      return;
    case 'waitHealthy':
      await waitHealthy(deps, step, signal);
      sr.healthyAt = new Date(deps.clock.now()).toISOString();
      return;
    case 'remove':
      await engine.removeContainer(step.name);
      return;
    case 'rename':
      await engine.renameContainer(step.from, step.to);
      return;
  }
}

function archiveFile(deps: ContainerDeps, archive: ArchiveRef): string {
  return path.join(deps.paths.containerArchives, `${archive.sha256}.tar`);
}

async function sha256File(file: string): Promise<string | undefined> {
  const hash = createHash('sha256');
  try {
    const handle = await fs.open(file, 'r');
    try {
      for await (const chunk of handle.createReadStream()) hash.update(chunk as Buffer);
    } finally {
      await handle.close().catch(() => undefined);
    }
  } catch {
    return undefined;
  }
  return hash.digest('hex');
}

/**
 * Downloads an image archive to the archive cache, verified against compat.yaml's size and
 * SHA-256 before it is renamed into place; an archive already there and intact is kept.
 */
async function fetchArchive(deps: ContainerDeps, archive: ArchiveRef, signal?: AbortSignal): Promise<void> {
  const file = archiveFile(deps, archive);
  if ((await sha256File(file)) === archive.sha256) return;
  await fs.mkdir(deps.paths.containerArchives, { recursive: true });
  const temp = `${file}.part`;
  const url = new URL(
    archive.path,
    deps.config.baseUrl.endsWith('/') ? deps.config.baseUrl : `${deps.config.baseUrl}/`,
  );
  const { stream } = await deps.http.openStream(url.toString(), { expectedSize: archive.size, signal });
  const hash = createHash('sha256');
  const out = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  let size = 0;
  try {
    for await (const chunk of stream) {
      const buf = chunk as Buffer;
      hash.update(buf);
      size += buf.length;
      await out.write(buf);
    }
    await out.sync();
  } catch (e) {
    await out.close().catch(() => undefined);
    await fs.rm(temp, { force: true });
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOSPC')
      throw new ClgwError(
        'NO_SPACE',
        `no space left for the image archive ${archive.path} (${archive.size} bytes) in ${deps.paths.containerArchives}`,
        {
          cause: e,
          details: { file: temp, size: archive.size },
        },
      );
    throw e;
  }
  await out.close();
  const digest = hash.digest('hex');
  if (digest !== archive.sha256 || size !== archive.size) {
    await fs.rm(temp, { force: true });
    throw new ClgwError(
      'HASH_MISMATCH',
      `image archive ${url.pathname}: sha256 ${digest} (${size} bytes), compat.yaml says ${archive.sha256} (${archive.size} bytes)`,
      { details: { url: url.toString(), expected: archive.sha256, actual: digest } },
    );
  }
  await fs.rename(temp, file);
  await fsyncDir(deps.paths.containerArchives);
}

/** Where a service's image is loaded before it is checked: never a name a container runs from. */
function incomingReference(service: ContainerName): string {
  return `localhost/clgw-incoming-${service}:load`;
}

/**
 * Loads the archive so that nothing the engine runs can point at the wrong image: the archive is
 * read first (it must hold exactly the image compat.yaml declares, by tag and by the config digest
 * it signs), loaded under the service's incoming reference only, and the declared tag moved to it
 * only once the engine shows the image ID the archive's config gives. A refused load leaves the
 * engine's images and tags as they were (the incoming reference is removed; an image that only it
 * named goes with it).
 */
async function loadArchive(deps: ContainerDeps, step: Extract<Step, { kind: 'load' }>): Promise<void> {
  const { archive, image, imageId, service } = step;
  const file = archiveFile(deps, archive);
  // A cut between fetch and load may have left no archive (a fresh boot cleans nothing, but a
  // factory reset does): fetch it again.
  if ((await sha256File(file)) !== archive.sha256) await fetchArchive(deps, archive);
  const held = await inspectImageArchive(file);
  const mismatch = (what: string) =>
    new ClgwError('IMAGE_MISMATCH', `image archive ${archive.path} ${what}`, {
      details: {
        archive: archive.path,
        declared: image,
        declaredId: imageId,
        tags: held.tags,
        imageId: held.imageId,
      },
    });
  if (held.tags.length !== 1 || held.tags[0] !== image)
    throw mismatch(
      `holds ${held.tags.join(', ') || 'no tagged image'}, not ${image} as compat.yaml declares`,
    );
  if (imageId !== undefined && !sameImageId(held.imageId, imageId))
    throw mismatch(`holds image ${held.imageId}, not ${imageId} as compat.yaml signs for ${image}`);
  const incoming = incomingReference(service);
  // What a load cut off before its check left under this name is not trusted either.
  await deps.engine.removeImage(incoming);
  try {
    await deps.engine.loadImage(archiveForLoad(file, held, [incoming]));
    const stored = await deps.engine.inspectImage(incoming);
    if (!stored || !sameImageId(stored.id, held.imageId))
      throw mismatch(
        `was stored by the engine as ${stored?.id ?? 'nothing'}, not ${held.imageId} as its config gives`,
      );
    crashpoint(`container image loaded ${service}`);
    await deps.engine.tagImage(held.imageId, image);
  } finally {
    // Not to hide why the load failed (the engine gone, say): the next load removes it first.
    await deps.engine
      .removeImage(incoming)
      .catch((e) => deps.log.warn(`image ${incoming} not removed`, { error: serializeError(e) }));
  }
  await fs.rm(file, { force: true });
}

/**
 * Waits until the container answers `GET /health` with 200 on its port, and `GET /version` names
 * the version, within the configured deadline; fails at once when the container stops.
 */
async function waitHealthy(
  deps: ContainerDeps,
  step: Extract<Step, { kind: 'waitHealthy' }>,
  signal?: AbortSignal,
): Promise<void> {
  const { name, port, version, service } = step;
  const deadline = deps.clock.now() + deps.config.containerHealthTimeoutMs;
  let last = 'no answer yet';
  for (;;) {
    signal?.throwIfAborted();
    const info: ContainerInfo | undefined = await deps.engine.inspectContainer(name);
    if (!info?.running) {
      throw new ClgwError(
        'HEALTH_CHECK_FAILED',
        `container ${name} ${info ? `is ${info.state}` : 'is gone'} (last health answer: ${last})`,
        {
          details: { container: name, port },
        },
      );
    }
    const health = await probe(port, '/health');
    if (health.status === 200) {
      const v = await probe(port, '/version');
      if (v.status === 200 && versionAnswerMatches(v.body, service, version)) return;
      last = `GET /version: ${v.status || v.error} ${JSON.stringify(v.body.slice(0, 80))}, expected ${JSON.stringify(`${service} ${version}`)}`;
    } else {
      last = health.status ? `GET /health: HTTP ${health.status}` : `GET /health: ${health.error}`;
    }
    if (deps.clock.now() >= deadline) {
      throw new ClgwError(
        'HEALTH_CHECK_FAILED',
        `container ${name} did not become healthy within ${deps.config.containerHealthTimeoutMs / 1000} s on 127.0.0.1:${port} (${last})`,
        { details: { container: name, port } },
      );
    }
    await new Promise((r) => setTimeout(r, HEALTH_POLL_MS));
  }
}
