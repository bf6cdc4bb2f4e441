/**
 * The engine adapter (agent/src/containers/engine.ts) against a real, private Podman: stand-in
 * images built by scripts/standins.ts are loaded, run with the host network and answer their
 * health and version checks on loopback; the error codes are the ones the port promises.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveFile, createEngine, SPEC_LABEL } from '../../../agent/src/containers/engine.js';
import { type ContainerSpec, type EnginePort, LABELS } from '../../../agent/src/containers/engine-port.js';
import { buildStandin, type StandinArchive } from '../../../scripts/standins.js';
import { until } from '../../support/appliance.js';
import { engineSkipReason, startEngine, type TestEngine } from '../../support/engine.js';
import { freePort } from '../../support/ports.js';
import { recordSkip } from '../../support/skip.js';

const unavailable = await engineSkipReason();
if (unavailable) recordSkip('test/integration/containers/engine.test.ts', unavailable);

function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** What `fn` threw, as a ClgwError (fails the test when it threw nothing or something else). */
async function thrown(fn: () => Promise<unknown>): Promise<ClgwError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ClgwError);
    return e as ClgwError;
  }
  throw new Error('expected a ClgwError, nothing was thrown');
}

describe.skipIf(unavailable !== undefined)('Podman engine adapter', () => {
  let engine: TestEngine | undefined;
  let port: EnginePort;
  let work: string;
  let healthy: StandinArchive;
  let broken: StandinArchive;

  beforeAll(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-engine-test-'));
    const started = startEngine();
    healthy = await buildStandin({ service: 'tunnel', version: '1.1.0', out: work });
    broken = await buildStandin({ service: 'tunnel', version: '1.2.0', broken: true, out: work });
    engine = await started;
    port = createEngine(engine.socket);
  });

  afterAll(async () => {
    try {
      await engine?.stop();
    } finally {
      if (work) await fs.rm(work, { recursive: true, force: true });
    }
  });

  async function specFor(name: string, image: string, version: string): Promise<ContainerSpec> {
    const data = path.join(work, `${name}-data`);
    const conf = path.join(work, `${name}-conf`);
    await fs.mkdir(data, { recursive: true });
    await fs.mkdir(conf, { recursive: true });
    const p = await freePort();
    return {
      name,
      image,
      env: [`PORT=${p}`, 'TUNNEL_SERVER=tunnel.example.test'],
      labels: { [LABELS.service]: 'tunnel', [LABELS.version]: version, [LABELS.healthPort]: String(p) },
      volumes: [
        { host: data, container: '/data', readOnly: false },
        { host: conf, container: '/conf', readOnly: true },
      ],
      restartPolicy: 'unless-stopped',
      memoryBytes: 64 * 1024 * 1024,
    };
  }

  it('answers ping, loads a stand-in archive and reports the image', async () => {
    await port.ping();
    expect(await port.loadImage(archiveFile(healthy.file))).toEqual([healthy.reference]);
    expect(await port.inspectImage(healthy.reference)).toEqual({
      id: healthy.imageId,
      tags: [healthy.reference],
    });
    expect(await port.inspectImage(healthy.imageId)).toMatchObject({ id: healthy.imageId });
    expect(await port.inspectImage('localhost/no-such-standin:1.0.0')).toBeUndefined();
  });

  it('tags an image by its ID, and removing a name untags it; its last name removes the image', async () => {
    await port.tagImage(healthy.imageId, 'localhost/clgw-test-extra:1');
    expect((await port.inspectImage(healthy.reference))?.tags.sort()).toEqual(
      ['localhost/clgw-test-extra:1', healthy.reference].sort(),
    );
    // One of two names: only the name goes.
    await port.removeImage('localhost/clgw-test-extra:1');
    expect(await port.inspectImage(healthy.reference)).toEqual({
      id: healthy.imageId,
      tags: [healthy.reference],
    });
    // A name that does not exist is not an error.
    await port.removeImage('localhost/clgw-test-extra:1');
    // A tag moves: pointed at another image, it leaves the first.
    await port.loadImage(archiveFile(broken.file));
    await port.tagImage(broken.imageId, 'localhost/clgw-test-moving:1');
    await port.tagImage(healthy.imageId, 'localhost/clgw-test-moving:1');
    expect((await port.inspectImage('localhost/clgw-test-moving:1'))?.id).toBe(healthy.imageId);
    expect((await port.inspectImage(broken.imageId))?.tags).toEqual([broken.reference]);
    await port.removeImage('localhost/clgw-test-moving:1');
    // The last name of an image no container uses: the image goes.
    await port.tagImage(broken.imageId, 'localhost/clgw-test-only:1');
    await port.removeImage(broken.reference);
    await port.removeImage('localhost/clgw-test-only:1');
    expect(await port.inspectImage(broken.imageId)).toBeUndefined();
  });

  it('runs a healthy stand-in: create, start, /health and /version, inspect and list', async () => {
    const spec = await specFor('clgw-tunnel', healthy.reference, '1.1.0');
    const servicePort = Number(spec.labels[LABELS.healthPort]);
    const id = await port.createContainer(spec);
    expect(id).toMatch(/^[0-9a-f]{64}$/);

    const created = await port.inspectContainer('clgw-tunnel');
    expect(created).toMatchObject({ id, name: 'clgw-tunnel', state: 'created', running: false });
    expect(created?.startedAt).toBeUndefined();

    await port.startContainer('clgw-tunnel');
    await port.startContainer('clgw-tunnel'); // already running: fine
    const health = await until(
      () => get(servicePort, '/health').then((r) => r.status === 200 && r),
      `the stand-in on 127.0.0.1:${servicePort}`,
      20_000,
    );
    expect(health.body).toBe('ok');
    expect(await get(servicePort, '/version')).toEqual({ status: 200, body: 'tunnel 1.1.0' });

    const info = await port.inspectContainer('clgw-tunnel');
    expect(info).toMatchObject({
      id,
      name: 'clgw-tunnel',
      image: healthy.reference,
      imageId: healthy.imageId,
      state: 'running',
      running: true,
    });
    expect(Date.parse(info!.startedAt!)).toBeGreaterThan(Date.now() - 5 * 60_000);
    expect(info!.labels).toMatchObject(spec.labels);
    expect(info!.labels).toHaveProperty('io.clgw.standin', 'healthy'); // the image's own label
    expect(info!.labels).not.toHaveProperty(SPEC_LABEL);
    // The spec reads back as created: without the image's env (STANDIN_VERSION…) or labels;
    // volumes in the order of their container paths.
    const byContainerPath = [...spec.volumes].sort((x, y) => x.container.localeCompare(y.container));
    expect(info!.spec).toEqual({ ...spec, volumes: byContainerPath });

    const listed = await port.listContainers();
    expect(listed.find((c) => c.name === 'clgw-tunnel')).toEqual(info);
  });

  it('runs a broken stand-in: /version answers, /health is 404', async () => {
    expect(await port.loadImage(archiveFile(broken.file))).toEqual([broken.reference]);
    const spec = await specFor('clgw-tunnel-next', broken.reference, '1.2.0');
    const servicePort = Number(spec.labels[LABELS.healthPort]);
    await port.createContainer(spec);
    await port.startContainer('clgw-tunnel-next');
    const version = await until(
      () => get(servicePort, '/version').then((r) => r.status === 200 && r),
      `the broken stand-in on 127.0.0.1:${servicePort}`,
      20_000,
    );
    expect(version.body).toBe('tunnel 1.2.0');
    expect((await get(servicePort, '/health')).status).toBe(404);
    expect(await port.inspectContainer('clgw-tunnel-next')).toMatchObject({
      state: 'running',
      running: true,
    });
  });

  it('stops (twice), renames and removes (twice)', async () => {
    const before = await port.inspectContainer('clgw-tunnel-next');
    const servicePort = Number(before!.labels[LABELS.healthPort]);
    await port.stopContainer('clgw-tunnel-next', 5);
    await port.stopContainer('clgw-tunnel-next', 5); // already stopped: fine
    const stopped = await port.inspectContainer('clgw-tunnel-next');
    expect(stopped).toMatchObject({ state: 'exited', running: false });
    await expect(get(servicePort, '/version')).rejects.toThrow();

    await port.renameContainer('clgw-tunnel-next', 'clgw-tunnel-old');
    expect(await port.inspectContainer('clgw-tunnel-next')).toBeUndefined();
    expect(await port.inspectContainer('clgw-tunnel-old')).toMatchObject({
      id: before!.id,
      name: 'clgw-tunnel-old',
    });

    await port.removeContainer('clgw-tunnel-old');
    await port.removeContainer('clgw-tunnel-old'); // already gone: fine
    expect(await port.inspectContainer('clgw-tunnel-old')).toBeUndefined();
    expect((await port.listContainers()).map((c) => c.name)).not.toContain('clgw-tunnel-old');
  });

  it('reads the spec of a container it did not create without the image defaults', async () => {
    // Created straight through the API, without the adapter's spec label.
    const body = JSON.stringify({
      Image: healthy.reference,
      Env: ['PORT=18999'],
      Labels: { [LABELS.service]: 'tunnel' },
      HostConfig: { NetworkMode: 'host' },
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: engine!.socket,
          method: 'POST',
          path: '/v1.41/containers/create?name=foreign',
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(status).toBe(201);
    const info = await port.inspectContainer('foreign');
    expect(info?.spec).toMatchObject({
      env: ['PORT=18999'],
      labels: { [LABELS.service]: 'tunnel' },
      volumes: [],
      restartPolicy: 'no',
    });
    expect(info?.spec.memoryBytes).toBeUndefined();
    await port.removeContainer('foreign');
  });

  it('maps failures to ENGINE_UNAVAILABLE, IMAGE_INVALID and ENGINE_ERROR', async () => {
    const missing = path.join(work, 'no-engine', 'podman.sock');
    const down = await thrown(() => createEngine(missing).ping());
    expect(down.code).toBe('ENGINE_UNAVAILABLE');
    expect(down.transient).toBe(true);
    expect(down.message).toContain(missing);
    expect((await thrown(() => createEngine(missing).listContainers())).code).toBe('ENGINE_UNAVAILABLE');

    const notTar = path.join(work, 'not-an-image.tar');
    await fs.writeFile(notTar, 'this is not a tar archive\n'.repeat(100));
    const invalid = await thrown(() => port.loadImage(archiveFile(notTar)));
    expect(invalid.code).toBe('IMAGE_INVALID');
    expect(invalid.message).toContain(notTar);
    expect((await thrown(() => port.loadImage(archiveFile(path.join(work, 'absent.tar'))))).code).toBe(
      'IMAGE_INVALID',
    );
    // A download cut short: the archive ends inside its layer.
    const cut = path.join(work, 'cut.tar');
    await fs.writeFile(cut, (await fs.readFile(broken.file)).subarray(0, Math.floor(broken.size / 2)));
    expect((await thrown(() => port.loadImage(archiveFile(cut)))).code).toBe('IMAGE_INVALID');

    const taken = await thrown(async () =>
      port.createContainer(await specFor('clgw-tunnel', healthy.reference, '1.1.0')),
    );
    expect(taken.code).toBe('ENGINE_ERROR');
    expect(taken.message).toContain('clgw-tunnel');
    expect(taken.details).toMatchObject({ status: expect.any(Number) });

    const noImage = await thrown(async () =>
      port.createContainer(await specFor('clgw-micloud', 'localhost/micloud-standin:9.9.9', '9.9.9')),
    );
    expect(noImage.code).toBe('ENGINE_ERROR');

    expect(await port.inspectContainer('clgw-missing')).toBeUndefined();
    await port.removeContainer('clgw-missing');
    const noStart = await thrown(() => port.startContainer('clgw-missing'));
    expect(noStart.code).toBe('ENGINE_ERROR');
    expect(noStart.message).toMatch(/clgw-missing.*404/);
  });
});
