/**
 * The agent's event socket client (agent/src/voice/esl.ts) against the real freeswitch stand-in
 * (scripts/standins.ts, its ESL program scripts/standins/esl-standin.c) in a container on a
 * private Podman engine, with the host's network as on the appliance: the call count a test sets
 * inside the container is what the agent reads, a wrong password is refused, and the listener
 * is on loopback only.
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveFile, createEngine } from '../../../agent/src/containers/engine.js';
import type { EnginePort } from '../../../agent/src/containers/engine-port.js';
import { activeCalls } from '../../../agent/src/voice/esl.js';
import { engineEnv, enginePaths } from '../../../scripts/lib/engine.js';
import { buildStandin, type StandinArchive } from '../../../scripts/standins.js';
import { until } from '../../support/appliance.js';
import { engineSkipReason, startEngine, type TestEngine } from '../../support/engine.js';
import { freePort } from '../../support/ports.js';
import { recordSkip } from '../../support/skip.js';
import { standinSpec } from '../../support/voice.js';

const unavailable = await engineSkipReason();
if (unavailable) recordSkip('test/integration/voice/standin.test.ts', unavailable);

const PASSWORD = 'Cl0seTheDoor';
const NAME = 'clgw-freeswitch';

/** `podman` on the test's private engine (its own storage and configuration). */
function podman(engine: TestEngine, args: string[]) {
  const p = enginePaths(engine.dir);
  return execFile('podman', ['--root', p.root, '--runroot', p.runroot, ...args], {
    env: engineEnv(engine.dir),
    timeoutMs: 60_000,
  });
}

/** What a test does to change the stand-in's call count (scripts/standins.ts). */
async function setCalls(engine: TestEngine, container: string, calls: number): Promise<void> {
  await podman(engine, ['exec', container, '/bin/busybox', 'sh', '-c', `echo ${calls} > /www/calls`]);
}

/**
 * The local addresses (hex, as the kernel lists them) of the TCP sockets listening on `port`, IPv4
 * and IPv6. The containers share the test's network namespace, so its /proc/net shows them.
 */
async function listeningOn(port: number): Promise<string[]> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const found: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await fs.readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      const [address, localPort] = (local ?? '').split(':');
      if (localPort === hexPort && state === '0A' /* LISTEN */) found.push(address!);
    }
  }
  return found;
}

async function failure(p: Promise<unknown>): Promise<ClgwError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ClgwError);
  return e as ClgwError;
}

describe.skipIf(unavailable !== undefined)('the freeswitch stand-in answers the event socket', () => {
  let engine: TestEngine | undefined;
  let port: EnginePort;
  let work: string;
  let standin: StandinArchive;
  let eslPort: number;
  const made: string[] = [];

  const ask = (password = PASSWORD) =>
    activeCalls({ host: '127.0.0.1', port: eslPort, password }, { clock: systemClock, timeoutMs: 5000 });

  /** Creates and starts a freeswitch stand-in container with the given ports. */
  async function run(name: string, httpPort: number, esl: number): Promise<void> {
    await port.createContainer(
      standinSpec(name, standin.reference, { httpPort, eslPort: esl, password: PASSWORD }),
    );
    made.push(name);
    await port.startContainer(name);
  }

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-esl-standin-'));
    const started = startEngine();
    standin = await buildStandin({ service: 'freeswitch', version: '1.10.9', out: work });
    engine = await started;
    port = createEngine(engine.socket);
    expect(await port.loadImage(archiveFile(standin.file))).toEqual([standin.reference]);
  });

  afterAll(async () => {
    try {
      for (const name of made) await port?.removeContainer(name).catch(() => undefined);
      await engine?.stop();
    } finally {
      if (work) await fs.rm(work, { recursive: true, force: true });
    }
  });

  it('reports 0 calls at start, then what the test sets inside the container', async () => {
    eslPort = await freePort();
    await run(NAME, await freePort(), eslPort);
    // Listening a moment after the start: until then the client is refused (VOICE_UNREACHABLE).
    expect(
      await until(() => ask().then((n) => ({ n })), `the event socket on 127.0.0.1:${eslPort}`, 20_000),
    ).toEqual({ n: 0 });
    await setCalls(engine!, NAME, 2);
    expect(await ask()).toBe(2);
    await setCalls(engine!, NAME, 0);
    expect(await ask()).toBe(0);
  });

  it('refuses a wrong password: VOICE_AUTH_FAILED', async () => {
    const e = await failure(ask('ClueCon'));
    expect(e.code).toBe('VOICE_AUTH_FAILED');
    expect(e.message).toContain(`127.0.0.1:${eslPort}`);
  });

  it('listens on 127.0.0.1 only, never on every address', async () => {
    // 0100007F: 127.0.0.1 in the kernel's byte order; 00000000 would be 0.0.0.0.
    expect(await listeningOn(eslPort)).toEqual(['0100007F']);
  });

  it('serves connections side by side, and outlives garbage and clients that vanish', async () => {
    await setCalls(engine!, NAME, 3);
    // A client that connected and says nothing holds only its own connection: the others are served.
    const idle = net.connect({ host: '127.0.0.1', port: eslPort });
    idle.on('error', () => undefined);
    await new Promise<void>((r) => idle.once('data', () => r()));
    try {
      expect(await Promise.all(Array.from({ length: 8 }, () => ask()))).toEqual(Array(8).fill(3));
    } finally {
      idle.destroy();
    }
    for (const bytes of [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from(`auth ${'x'.repeat(5000)}`),
      Buffer.from([0, 1, 2, 0xff, 0x0a, 0x0a, 0x0a]),
      Buffer.alloc(0),
    ]) {
      const socket = net.connect({ host: '127.0.0.1', port: eslPort });
      socket.on('error', () => undefined);
      await new Promise<void>((r) => socket.once('connect', () => r()));
      socket.write(bytes);
      socket.destroy();
    }
    expect(await ask()).toBe(3);
  });

  it('a calls file that is not a number is a refusal (VOICE_PROTOCOL), never 0', async () => {
    await podman(engine!, ['exec', NAME, '/bin/busybox', 'sh', '-c', 'echo many > /www/calls']);
    const bad = await failure(ask());
    expect(bad.code).toBe('VOICE_PROTOCOL');
    expect(bad.message).toContain('calls file holds no number');
    await podman(engine!, ['exec', NAME, '/bin/busybox', 'rm', '/www/calls']);
    const missing = await failure(ask());
    expect(missing.code).toBe('VOICE_PROTOCOL');
    expect(missing.message).toContain('no calls file');
    await setCalls(engine!, NAME, 1);
    expect(await ask()).toBe(1);
  });

  it('stops at once', async () => {
    const started = Date.now();
    await port.stopContainer(NAME, 10);
    expect(Date.now() - started).toBeLessThan(5000);
    expect((await port.inspectContainer(NAME))?.running).toBe(false);
    expect(await listeningOn(eslPort)).toEqual([]);
  });

  it('a port it cannot listen on ends the container, with the cause in its log', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const takenPort = (taken.address() as net.AddressInfo).port;
    try {
      await run(`${NAME}-taken`, await freePort(), takenPort);
      // Podman reports `stopped` for a moment, until its cleanup makes it `exited`.
      await until(
        async () => (await port.inspectContainer(`${NAME}-taken`))?.state === 'exited',
        'the stand-in whose event socket port is taken to exit',
        20_000,
      );
      const status = await podman(engine!, ['inspect', '--format', '{{.State.ExitCode}}', `${NAME}-taken`]);
      expect(status.stdout.trim()).toBe('1');
      const log = (await podman(engine!, ['logs', `${NAME}-taken`])).stdout;
      expect(log).toContain(`cannot listen on 127.0.0.1:${takenPort}`);
      expect(log).toContain('esl exited with status 1');
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});
