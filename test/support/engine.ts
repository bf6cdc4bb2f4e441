/**
 * A private Podman engine for one test file: a temp directory, started the way `scripts/engine`
 * starts one (the same code: scripts/lib/engine.ts). Start it in `beforeAll` and stop it in
 * `afterAll`; `engineSkipReason()` says when Podman truly cannot run here.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { engineUnavailable, startEngineIn, stopEngineIn } from '../../scripts/lib/engine.js';

export interface TestEngine {
  /** The Docker-compatible API socket. */
  socket: string;
  /** The engine's temp directory (removed by `stop`). */
  dir: string;
  /** Stops the containers and the engine, unmounts its storage, removes the directory. */
  stop(): Promise<void>;
}

/** Starts a private Podman engine in a fresh temp directory. */
export async function startEngine(): Promise<TestEngine> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-engine-'));
  const stop = async () => {
    await stopEngineIn(dir);
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    const engine = await startEngineIn(dir);
    return { socket: engine.socket, dir, stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}

/**
 * Why Podman truly cannot run on this machine (not Linux, not root, no cgroups), else undefined.
 * A missing podman is no reason: `make test` installs it, and a test without it fails.
 */
export function engineSkipReason(): Promise<string | undefined> {
  return engineUnavailable();
}
