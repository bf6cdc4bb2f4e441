/**
 * The stand-in images are built without an engine and must be reproducible: the same inputs give
 * a byte-identical docker-archive, whose layout a real tar reads. The freeswitch stand-in also
 * holds its compiled event socket program (scripts/standins/esl-standin.c), cached once built.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from '@clgw/core/platform/exec.js';
import { afterAll, describe, expect, it } from 'vitest';
import { buildStandin, eslStandin } from '../../../scripts/standins.js';

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-standins-'));
afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

describe('buildStandin', () => {
  it('gives byte-identical archives for the same inputs', async () => {
    const a = await buildStandin({ service: 'micloud', version: '2.0.1-7', out: path.join(work, 'a') });
    const b = await buildStandin({ service: 'micloud', version: '2.0.1-7', out: path.join(work, 'b') });
    expect(path.basename(a.file)).toBe('micloud-standin-2.0.1-7.tar');
    expect(a.reference).toBe('localhost/micloud-standin:2.0.1-7');
    expect(Buffer.compare(await fs.readFile(a.file), await fs.readFile(b.file))).toBe(0);
    expect({ ...b, file: a.file }).toEqual(a);
    expect(a.size).toBe((await fs.stat(a.file)).size);
    expect(a.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('gives the same bytes whatever the umask (modes are set, not inherited)', async () => {
    const a = await buildStandin({ service: 'tunnel', version: '3.0.0', out: path.join(work, 'u1') });
    const umask = process.umask(0o077);
    try {
      const b = await buildStandin({ service: 'tunnel', version: '3.0.0', out: path.join(work, 'u2') });
      expect(b.sha256).toBe(a.sha256);
    } finally {
      process.umask(umask);
    }
  });

  it('bakes "broken" into the image: another image, another file', async () => {
    const ok = await buildStandin({ service: 'tunnel', version: '1.0.0', out: work });
    const broken = await buildStandin({ service: 'tunnel', version: '1.0.0', broken: true, out: work });
    expect(path.basename(broken.file)).toBe('tunnel-standin-1.0.0-broken.tar');
    expect(broken.reference).toBe(ok.reference);
    expect(broken.imageId).not.toBe(ok.imageId);
    const config = await tarRead(broken.file, `${broken.imageId.slice('sha256:'.length)}.json`);
    expect(JSON.parse(config).config.Env).toContain('STANDIN_BROKEN=1');
  });

  it('writes a docker-archive a real tar reads: manifest, config, one layer with busybox and the script', async () => {
    const built = await buildStandin({ service: 'freeswitch', version: '1.10.9', out: work });
    const manifest = JSON.parse(await tarRead(built.file, 'manifest.json')) as {
      Config: string;
      RepoTags: string[];
      Layers: string[];
    }[];
    expect(manifest).toHaveLength(1);
    expect(manifest[0]!.RepoTags).toEqual(['localhost/freeswitch-standin:1.10.9']);
    expect(manifest[0]!.Layers).toHaveLength(1);
    const config = JSON.parse(await tarRead(built.file, manifest[0]!.Config));
    expect(config.config.Entrypoint).toEqual(['/bin/busybox', 'sh', '/standin/run.sh']);
    expect(config.config.Env).toContain('PORT=8083');
    const listing = (await execFile('tar', ['-tvf', built.file])).stdout;
    expect(listing).toMatch(/0\/0 .* 1970-01-01 00:00 manifest\.json/);
    await execFile('tar', ['-xf', built.file, '-C', work, manifest[0]!.Layers[0]!]);
    const layer = (await execFile('tar', ['-tvf', path.join(work, manifest[0]!.Layers[0]!)])).stdout;
    expect(layer).toMatch(/^-rwxr-xr-x 0\/0 .* bin\/busybox$/m);
    expect(layer).toMatch(/^-rw-r--r-- 0\/0 .* standin\/run\.sh$/m);
  });

  it('puts the event socket program into the freeswitch image only, and stays byte-identical', async () => {
    // Two empty caches: each build compiles, and the two compilations must give the same bytes.
    const a = await buildStandin({
      service: 'freeswitch',
      version: '1.10.9',
      out: path.join(work, 'fs-a'),
      cacheDir: path.join(work, 'cache-a'),
    });
    const b = await buildStandin({
      service: 'freeswitch',
      version: '1.10.9',
      out: path.join(work, 'fs-b'),
      cacheDir: path.join(work, 'cache-b'),
    });
    expect(b.sha256).toBe(a.sha256);
    expect(Buffer.compare(await fs.readFile(a.file), await fs.readFile(b.file))).toBe(0);

    const layer = await layerOf(a.file, path.join(work, 'fs-a'));
    expect((await execFile('tar', ['-tvf', layer])).stdout).toMatch(/^-rwxr-xr-x 0\/0 .* standin\/esl$/m);
    const eslFile = await tarExtract(layer, 'standin/esl');
    const esl = await fs.readFile(eslFile);
    expect(Buffer.compare(esl, await eslStandin(path.join(work, 'cache-a')))).toBe(0);
    // Static (the image has no libc): no program interpreter. readelf comes with gcc (binutils).
    const headers = (await execFile('readelf', ['-lW', eslFile])).stdout;
    expect(headers).toMatch(/^\s+LOAD\s/m);
    expect(headers).not.toMatch(/INTERP/);
    expect(esl.includes(Buffer.from('clgw stand-in, not FreeSWITCH'))).toBe(true);

    const tunnel = await buildStandin({ service: 'tunnel', version: '1.10.9', out: path.join(work, 'fs-a') });
    const tunnelLayer = await layerOf(tunnel.file, path.join(work, 'fs-a'));
    expect((await execFile('tar', ['-tf', tunnelLayer])).stdout.split('\n')).not.toContain('standin/esl');
  });

  it('compiles the event socket program once: a second build takes it from the cache', async () => {
    const cache = path.join(work, 'cache-once');
    const first = await eslStandin(cache);
    const [entry, ...others] = await fs.readdir(cache);
    expect(others).toEqual([]);
    expect(entry).toMatch(/^esl-standin-[0-9a-f]{64}$/);
    expect(Buffer.compare(await fs.readFile(path.join(cache, entry!)), first)).toBe(0);
    // What the cache holds is what the next build uses (no compiler run would give these bytes).
    await fs.writeFile(path.join(cache, entry!), 'from the cache');
    expect((await eslStandin(cache)).toString()).toBe('from the cache');
  });

  it('refuses a version that cannot be a tag', async () => {
    await expect(buildStandin({ service: 'tunnel', version: '1.0+build', out: work })).rejects.toThrow(/tag/);
  });
});

async function tarRead(file: string, member: string): Promise<string> {
  return (await execFile('tar', ['-xOf', file, member])).stdout;
}

/** Extracts one member into a fresh directory and returns its path (execFile's stdout is text). */
async function tarExtract(file: string, member: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(work, 'member-'));
  await execFile('tar', ['-xf', file, '-C', dir, member]);
  return path.join(dir, member);
}

/** The one layer of a stand-in archive, extracted into `dir`. */
async function layerOf(file: string, dir: string): Promise<string> {
  const [manifest] = JSON.parse(await tarRead(file, 'manifest.json')) as { Layers: string[] }[];
  const layer = manifest!.Layers[0]!;
  await execFile('tar', ['-xf', file, '-C', dir, layer]);
  return path.join(dir, layer);
}
