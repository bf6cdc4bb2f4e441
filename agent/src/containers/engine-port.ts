/**
 * The narrow port through which the agent drives the container engine (Podman's
 * Docker-compatible API on a unix socket on the appliance and in tests). Everything the
 * container upgrade does to the engine is one of these calls; the planner's steps map onto them
 * one to one. Pure types: no `node:*` imports.
 */
import type { ContainerName } from '@clgw/core/release/schema.js';

/** Labels the agent puts on every container it creates, so it can find and judge them later. */
export const LABELS = {
  /** Which service the container is (`tunnel`, `micloud`, `freeswitch`). */
  service: 'io.clgw.service',
  /** The service version the container runs (compat.yaml `containers[].version`). */
  version: 'io.clgw.version',
  /** The TCP port on 127.0.0.1 where the service answers `GET /health` and `GET /version`. */
  healthPort: 'io.clgw.health-port',
} as const;

/** What the agent asks the engine to create. Containers run with the host's network. */
export interface ContainerSpec {
  /** Engine-wide unique container name, e.g. `clgw-tunnel` or `clgw-tunnel-next`. */
  name: string;
  /** Image reference exactly as loaded (compat.yaml `image`), or an image ID. */
  image: string;
  /** `KEY=value` entries. */
  env: string[];
  labels: Record<string, string>;
  /** host path → container path; `ro` when read-only. */
  volumes: { host: string; container: string; readOnly: boolean }[];
  restartPolicy: 'no' | 'always' | 'unless-stopped' | 'on-failure';
  /** Memory limit in bytes (performance profile); undefined: none. */
  memoryBytes?: number;
}

/** A container as the engine reports it. */
export interface ContainerInfo {
  id: string;
  name: string;
  image: string;
  /** The image ID the container was created from (`sha256:…`). */
  imageId: string;
  /** Engine state: `created`, `running`, `exited`, `paused`, … */
  state: string;
  running: boolean;
  /** When it was last started (ISO), if ever. */
  startedAt?: string;
  labels: Record<string, string>;
  /** The spec it was created with, as far as the engine reports it back. */
  spec: ContainerSpec;
}

/** An image as the engine reports it. */
export interface ImageInfo {
  /** `sha256:<hex>` */
  id: string;
  /** References that point at it, e.g. `localhost/tunnel-standin:1.1.0`. */
  tags: string[];
}

/**
 * The engine. Every method throws a ClgwError: `ENGINE_UNAVAILABLE` (socket missing, refused,
 * no answer — transient), `ENGINE_ERROR` (the engine answered with an error; the message carries
 * its status and text), `IMAGE_INVALID` (an archive the engine cannot load).
 */
export interface EnginePort {
  /** The engine answers (`GET /_ping`). */
  ping(): Promise<void>;
  /** All containers, running or not. */
  listContainers(): Promise<ContainerInfo[]>;
  /** Undefined when there is no such container. */
  inspectContainer(name: string): Promise<ContainerInfo | undefined>;
  /** Loads a docker-archive tar, read once in order; returns the references the engine loaded. */
  loadImage(archive: ArchiveBody): Promise<string[]>;
  /** Undefined when there is no such image. */
  inspectImage(reference: string): Promise<ImageInfo | undefined>;
  /** Points `reference` (`repository:tag`) at the image `id`, wherever it pointed before. */
  tagImage(id: string, reference: string): Promise<void>;
  /**
   * Removes the reference: only the name when the image has others, the image when it was its
   * last and no container uses it. A reference that does not exist is not an error.
   */
  removeImage(reference: string): Promise<void>;
  createContainer(spec: ContainerSpec): Promise<string>;
  startContainer(name: string): Promise<void>;
  /** Stops within `timeoutSeconds` (then kills); a container already stopped is not an error. */
  stopContainer(name: string, timeoutSeconds: number): Promise<void>;
  /** Removes (forced); a container that does not exist is not an error. */
  removeContainer(name: string): Promise<void>;
  /** Renames a container (used to give the new container the service's name once it is healthy). */
  renameContainer(name: string, newName: string): Promise<void>;
}

/** An image archive as a stream of bytes (a file, or one rewritten on the way to the engine). */
export interface ArchiveBody {
  /** Names it in errors: `image archive /var/clgw/….tar`. */
  what: string;
  read(): AsyncIterable<Uint8Array>;
}

/** The engine-wide container name of a service. */
export function containerName(service: ContainerName): string {
  return `clgw-${service}`;
}
