/**
 * The container upgrade planner: from what the engine shows for one service (its container, a
 * `-next` container an earlier run left, whether the target image is loaded) and what
 * compat.yaml asks for, the steps that lead there. Planning from what is observed — not from a
 * remembered step number — is what makes every cut converge: after a power cut the agent plans
 * again and continues from whatever the engine shows. Pure: no `node:*` imports.
 */
import type { ContainerName, ContainerRef } from '@clgw/core/release/schema.js';
import { PROFILES, type ProfileName } from '@clgw/core/system/profiles.js';
import { type ContainerInfo, type ContainerSpec, containerName, LABELS } from './engine-port.js';

export type ArchiveRef = ContainerRef['archive'];

/** What compat.yaml names for one service. */
export type ServiceTarget = Pick<ContainerRef, 'name' | 'version' | 'image' | 'imageId' | 'archive'>;

/** What the engine shows for one service. */
export interface Observed {
  /** The service's container (`clgw-<service>`). */
  main?: ContainerInfo;
  /** A container an upgrade created and has not yet renamed (`clgw-<service>-next`). */
  next?: ContainerInfo;
  /** The target image is loaded in the engine (its tag points at the image ID compat.yaml signs). */
  imagePresent: boolean;
}

/** `upgrade`: towards the target. `rollback`: the new container failed; back to the old one. */
export type Intent = 'upgrade' | 'rollback';

/** How a service's container is configured when there is no old container to copy. */
export interface ServiceDefaults {
  /** Port of `GET /health` and `GET /version` on 127.0.0.1 (the container's env `PORT`). */
  port: number;
  /** Host directory mounted at `/data` (on the data partition). */
  dataDir: string;
  /** More of a first install's env, after `PORT` (an upgrade copies the old container's). */
  env?: string[];
}

export type Step =
  | { kind: 'fetch'; service: ContainerName; archive: ArchiveRef }
  | { kind: 'load'; service: ContainerName; archive: ArchiveRef; image: string; imageId?: string }
  | { kind: 'create'; service: ContainerName; spec: ContainerSpec }
  | { kind: 'stop'; service: ContainerName; name: string }
  | { kind: 'start'; service: ContainerName; name: string }
  | { kind: 'waitHealthy'; service: ContainerName; name: string; port: number; version: string }
  | { kind: 'remove'; service: ContainerName; name: string }
  | { kind: 'rename'; service: ContainerName; from: string; to: string };

export type PlanAction = 'none' | 'start' | 'install' | 'upgrade' | 'resume' | 'rollback' | 'remove' | 'held';

export interface ServicePlan {
  service: ContainerName;
  action: PlanAction;
  /** The version running once the steps are done (undefined: none). */
  version: string | undefined;
  steps: Step[];
}

export interface PlanInput {
  service: ContainerName;
  observed: Observed;
  /** Undefined: compat.yaml lists no such container for this platform. */
  target: ServiceTarget | undefined;
  intent: Intent;
  profile: ProfileName;
  defaults: ServiceDefaults;
  /** Versions whose upgrade failed here before: not tried again unless `force`. */
  rejected: readonly string[];
  force?: boolean;
}

/** The name of the container an upgrade creates beside the running one. */
export function nextName(service: ContainerName): string {
  return `${containerName(service)}-next`;
}

function versionOf(c: ContainerInfo | undefined): string | undefined {
  return c?.labels[LABELS.version];
}

/**
 * Runs the target: the version label and the image reference match, and so does the image ID
 * where compat.yaml signs one (a container of an image that only bears the tag is not the target).
 */
function isTarget(c: ContainerInfo | undefined, t: ServiceTarget): boolean {
  return (
    c !== undefined &&
    versionOf(c) === t.version &&
    c.image === t.image &&
    (t.imageId === undefined || sameImageId(c.imageId, t.imageId))
  );
}

/** Image IDs compared with or without their `sha256:` (engines report both forms). */
export function sameImageId(a: string, b: string): boolean {
  const bare = (id: string) => id.replace(/^sha256:/, '');
  return bare(a) === bare(b);
}

/**
 * Whether a service's `GET /version` answer names exactly this version: the version alone or
 * `<service> <version>` (what the stand-ins answer). Another service's answer, or a version that
 * merely contains this one (1.1.0 in 11.1.0), is not it. An empty `version` (a container not
 * labelled with one) accepts any answer.
 */
export function versionAnswerMatches(body: string, service: ContainerName, version: string): boolean {
  if (version === '') return true;
  const answer = body.trim();
  return answer === version || answer === `${service} ${version}`;
}

/** The health port a container was created with (its label), else the default. */
export function healthPortOf(c: ContainerInfo | undefined, defaults: ServiceDefaults): number {
  const label = Number(c?.labels[LABELS.healthPort]);
  return Number.isInteger(label) && label > 0 && label < 65536 ? label : defaults.port;
}

/**
 * The new container's configuration: the old container's (env, volumes, restart policy, labels)
 * when there is one, else the service's defaults; then the target's image and version, and the
 * performance profile's memory limit (and, for FreeSWITCH, its RTP port range).
 */
export function specFor(
  service: ContainerName,
  name: string,
  target: ServiceTarget,
  base: ContainerInfo | undefined,
  profile: ProfileName,
  defaults: ServiceDefaults,
): ContainerSpec {
  const p = PROFILES[profile];
  const port = healthPortOf(base, defaults);
  const old = base?.spec;
  const env = (old?.env ?? [`PORT=${port}`, ...(defaults.env ?? [])]).filter(
    (e) => !e.startsWith('RTP_PORTS='),
  );
  if (service === 'freeswitch') env.push(`RTP_PORTS=${p.rtpPorts.low}-${p.rtpPorts.high}`);
  const memoryMiB = service === 'freeswitch' ? p.freeswitchMemoryMiB : p.cloudlinkMemoryMiB;
  return {
    name,
    image: target.image,
    env,
    labels: {
      ...(old?.labels ?? {}),
      [LABELS.service]: service,
      [LABELS.version]: target.version,
      [LABELS.healthPort]: String(port),
    },
    volumes: old?.volumes ?? [{ host: defaults.dataDir, container: '/data', readOnly: false }],
    restartPolicy: old?.restartPolicy ?? 'always',
    memoryBytes: memoryMiB * 1024 * 1024,
  };
}

/** The steps for one service. */
export function planService(input: PlanInput): ServicePlan {
  const { service, observed, target, defaults } = input;
  const { main, next } = observed;
  const mainName = containerName(service);
  const newName = nextName(service);
  const steps: Step[] = [];
  const plan = (action: PlanAction, version: string | undefined): ServicePlan => ({
    service,
    action: steps.length === 0 ? 'none' : action,
    version,
    steps,
  });
  // Started (and its health awaited) only when it is not running: a running one is left be.
  const ensureRunning = (c: ContainerInfo, name: string) => {
    if (c.running) return;
    steps.push({ kind: 'start', service, name });
    steps.push({
      kind: 'waitHealthy',
      service,
      name,
      port: healthPortOf(c, defaults),
      version: versionOf(c) ?? '',
    });
  };

  // No longer wanted on this platform: remove what there is.
  if (!target) {
    if (next) steps.push({ kind: 'remove', service, name: newName });
    if (main)
      steps.push({ kind: 'stop', service, name: mainName }, { kind: 'remove', service, name: mainName });
    return plan('remove', undefined);
  }

  // The new container failed: drop it, and the old one runs again.
  if (input.intent === 'rollback') {
    if (next)
      steps.push({ kind: 'stop', service, name: newName }, { kind: 'remove', service, name: newName });
    if (main) ensureRunning(main, mainName);
    return plan('rollback', versionOf(main));
  }

  // An upgrade to this version failed here before: keep what runs (unless forced).
  if (input.rejected.includes(target.version) && !input.force && !isTarget(main, target)) {
    if (next) steps.push({ kind: 'remove', service, name: newName });
    if (main) {
      if (!main.running) steps.push({ kind: 'start', service, name: mainName });
    }
    return { service, action: 'held', version: versionOf(main), steps };
  }

  // Already there.
  if (isTarget(main, target)) {
    if (next) steps.push({ kind: 'remove', service, name: newName });
    ensureRunning(main!, mainName);
    return plan('start', target.version);
  }

  const load = () => {
    if (observed.imagePresent) return;
    steps.push(
      { kind: 'fetch', service, archive: target.archive },
      {
        kind: 'load',
        service,
        archive: target.archive,
        image: target.image,
        ...(target.imageId ? { imageId: target.imageId } : {}),
      },
    );
  };
  const nextIsTarget = isTarget(next, target);
  if (next && !nextIsTarget) steps.push({ kind: 'remove', service, name: newName }); // a stale attempt
  const port = healthPortOf(nextIsTarget ? next : main, defaults);
  const wait: Step = { kind: 'waitHealthy', service, name: newName, port, version: target.version };

  // First install: no old container to keep serving.
  if (!main) {
    if (!nextIsTarget) {
      load();
      steps.push({
        kind: 'create',
        service,
        spec: specFor(service, newName, target, undefined, input.profile, defaults),
      });
    }
    if (!next?.running || !nextIsTarget) steps.push({ kind: 'start', service, name: newName });
    steps.push(wait, { kind: 'rename', service, from: newName, to: mainName });
    return plan(nextIsTarget ? 'resume' : 'install', target.version);
  }

  // Upgrade: new container beside the old, stop old, start new, healthy, remove old, rename new.
  if (!nextIsTarget) {
    load();
    steps.push({
      kind: 'create',
      service,
      spec: specFor(service, newName, target, main, input.profile, defaults),
    });
  }
  if (main.running) steps.push({ kind: 'stop', service, name: mainName });
  if (!nextIsTarget || !next!.running) steps.push({ kind: 'start', service, name: newName });
  steps.push(
    wait,
    { kind: 'remove', service, name: mainName },
    { kind: 'rename', service, from: newName, to: mainName },
  );
  return plan(nextIsTarget ? 'resume' : 'upgrade', target.version);
}
