/**
 * The freeswitch stand-in as the voice-service tests use it (scripts/standins.ts): its call count
 * set inside a running container, and one started on a test's private engine with its event
 * socket on a port and password of the test's choosing.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from '@clgw/core/platform/exec.js';
import { archiveFile, createEngine } from '../../agent/src/containers/engine.js';
import { type ContainerSpec, LABELS } from '../../agent/src/containers/engine-port.js';
import { engineEnv, enginePaths } from '../../scripts/lib/engine.js';
import { buildStandin } from '../../scripts/standins.js';
import { until } from './appliance.js';
import type { TestEngine } from './engine.js';
import { freePort } from './ports.js';

/** Sets the calls the stand-in in `container` reports (its `/www/calls`, read at each question). */
export async function setStandinCalls(engine: TestEngine, container: string, calls: number): Promise<void> {
  const p = enginePaths(engine.dir);
  await execFile(
    'podman',
    [
      '--root',
      p.root,
      '--runroot',
      p.runroot,
      'exec',
      container,
      '/bin/busybox',
      'sh',
      '-c',
      `echo ${calls} > /www/calls`,
    ],
    { env: engineEnv(engine.dir), timeoutMs: 60_000 },
  );
}

/** A freeswitch stand-in container as the tests create it: host network, its two ports, no restart. */
export function standinSpec(
  name: string,
  image: string,
  o: { httpPort: number; eslPort: number; password: string },
): ContainerSpec {
  return {
    name,
    image,
    env: [`PORT=${o.httpPort}`, `ESL_PORT=${o.eslPort}`, `ESL_PASSWORD=${o.password}`],
    labels: {
      [LABELS.service]: 'freeswitch',
      [LABELS.version]: '1.10.9',
      [LABELS.healthPort]: String(o.httpPort),
    },
    volumes: [],
    restartPolicy: 'no',
    memoryBytes: 64 * 1024 * 1024,
  };
}

export interface VoiceStandin {
  eslPort: number;
  setCalls(calls: number): Promise<void>;
  /** Removes the container and the image's build directory. */
  remove(): Promise<void>;
}

/**
 * Builds, loads and starts a freeswitch stand-in named `name` on `engine` (host network, as on the
 * appliance), its event socket on a free port with `password`; resolves once it answers `exec`.
 */
export async function startVoiceStandin(
  engine: TestEngine,
  name: string,
  password: string,
): Promise<VoiceStandin> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-voice-standin-'));
  const port = createEngine(engine.socket);
  const standin = await buildStandin({ service: 'freeswitch', version: '1.10.9', out: work });
  await port.loadImage(archiveFile(standin.file));
  const eslPort = await freePort();
  const httpPort = await freePort();
  await port.createContainer(standinSpec(name, standin.reference, { httpPort, eslPort, password }));
  await port.startContainer(name);
  const setCalls = (calls: number) => setStandinCalls(engine, name, calls);
  await until(() => setCalls(0).then(() => true), `the freeswitch stand-in ${name} started`, 20_000);
  return {
    eslPort,
    setCalls,
    remove: async () => {
      await port.removeContainer(name).catch(() => undefined);
      await fs.rm(work, { recursive: true, force: true });
    },
  };
}
