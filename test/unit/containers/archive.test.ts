/**
 * The container archive is read before the engine sees it (issue #19): what it must hold, what is
 * refused, and what the engine gets. Archives are made with node-tar, entry by entry, so that the
 * hostile ones (duplicates, links out, devices) can be made at all.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { archiveForLoad, inspectImageArchive } from '@clgw/core/containers/archive.js';
import { Header, Pack, Parser, ReadEntry } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

interface Spec {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice';
  body?: string | Buffer;
  linkpath?: string;
}

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-archive-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function tarOf(entries: Spec[]): Promise<Buffer> {
  const pack = new Pack({ portable: true, preservePaths: true });
  const chunks: Buffer[] = [];
  pack.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const type = e.type ?? 'File';
    const entry = new ReadEntry(
      new Header({
        path: e.path,
        type,
        size: type === 'File' ? body.length : 0,
        mode: 0o644,
        mtime: new Date(0),
        ...(e.linkpath ? { linkpath: e.linkpath } : {}),
      }),
    );
    pack.add(entry);
    if (type === 'File') entry.end(body);
    else entry.end();
  }
  pack.end();
  await done;
  return Buffer.concat(chunks);
}

let n = 0;
async function write(bytes: Buffer): Promise<string> {
  const file = path.join(dir, `a${n++}.tar`);
  await fs.writeFile(file, bytes);
  return file;
}

const CONFIG = '{"architecture":"amd64","os":"linux","config":{}}';
const CONFIG_HEX = createHash('sha256').update(CONFIG).digest('hex');
const REF = 'localhost/tunnel-standin:1.4.0';
const manifest = (over: Record<string, unknown> = {}) =>
  JSON.stringify([{ Config: `${CONFIG_HEX}.json`, RepoTags: [REF], Layers: ['l1/layer.tar'], ...over }]);
/** A docker-archive as `podman save` writes it, with `more` entries after its own. */
const image = (more: Spec[] = [], m = manifest()): Spec[] => [
  { path: `${CONFIG_HEX}.json`, body: CONFIG },
  { path: 'l1/', type: 'Directory' },
  { path: 'l1/layer.tar', body: Buffer.alloc(2048, 7) },
  ...more,
  { path: 'manifest.json', body: m },
];

async function refusal(entries: Spec[] | Buffer): Promise<string> {
  const file = await write(Buffer.isBuffer(entries) ? entries : await tarOf(entries));
  const e = (await inspectImageArchive(file).then(
    () => undefined,
    (err: unknown) => err,
  )) as { code: string; message: string } | undefined;
  expect(e, 'expected a refusal').toBeDefined();
  expect(e!.code).toBe('IMAGE_INVALID');
  expect(e!.message).toContain(file);
  return e!.message;
}

describe('reading a container archive before the engine sees it', () => {
  it('gives the image its config digest names, and its tags', async () => {
    const file = await write(await tarOf(image()));
    const held = await inspectImageArchive(file);
    expect(held.imageId).toBe(`sha256:${CONFIG_HEX}`);
    expect(held.tags).toEqual([REF]);
  });

  it('follows a link inside the archive to the config (as docker save writes it)', async () => {
    const entries = image(
      [
        { path: 'blobs/', type: 'Directory' },
        { path: 'blobs/sha256/', type: 'Directory' },
        { path: `blobs/sha256/${CONFIG_HEX}`, body: CONFIG },
        { path: 'l2/', type: 'Directory' },
        { path: 'l2/layer.tar', type: 'SymbolicLink', linkpath: '../l1/layer.tar' },
      ],
      manifest({ Config: `blobs/sha256/${CONFIG_HEX}`, Layers: ['l2/layer.tar'] }),
    );
    const held = await inspectImageArchive(await write(await tarOf(entries)));
    expect(held.imageId).toBe(`sha256:${CONFIG_HEX}`);
  });

  it.each([
    [
      'a name twice (the engine may read the other one)',
      image([{ path: './manifest.json', body: manifest() }]),
      'appears twice',
    ],
    ['an absolute path', image([{ path: '/etc/passwd', body: 'x' }]), 'leaves the archive'],
    ['a path that climbs out', image([{ path: 'l1/../../x', body: 'x' }]), 'leaves the archive'],
    [
      'a symbolic link out of the archive',
      image([{ path: 'evil', type: 'SymbolicLink', linkpath: '../../etc/shadow' }]),
      'outside the archive',
    ],
    [
      'an absolute symbolic link',
      image([{ path: 'evil', type: 'SymbolicLink', linkpath: '/etc/shadow' }]),
      'outside the archive',
    ],
    [
      'a hard link out of the archive',
      image([{ path: 'evil', type: 'Link', linkpath: '../x' }]),
      'outside the archive',
    ],
    ['a device', image([{ path: 'dev', type: 'CharacterDevice' }]), 'is a CharacterDevice'],
    ['no manifest', image().slice(0, 3), 'no manifest.json'],
    [
      'two images',
      image([], JSON.stringify([JSON.parse(manifest())[0], JSON.parse(manifest())[0]])),
      'exactly one image',
    ],
    ['a manifest that is not JSON', image([], '[{'), 'manifest.json is not JSON'],
    ['an unknown manifest key', image([], manifest({ Parent: 'x' })), 'unknown key Parent'],
    [
      'a missing config',
      image([], manifest({ Config: 'nope.json' })),
      'the config nope.json the manifest names is not in the archive',
    ],
    [
      'a missing layer',
      image([], manifest({ Layers: ['l9/layer.tar'] })),
      'the layer l9/layer.tar the manifest names is not in the archive',
    ],
  ] as [string, Spec[], string][])('refuses %s', async (_what, entries, why) => {
    expect(await refusal(entries)).toContain(why);
  });

  it('refuses a compressed archive rather than unpacking it, and a file that is not a tar', async () => {
    expect(await refusal(gzipSync(await tarOf(image())))).toContain('not an uncompressed tar archive');
    expect(await refusal(Buffer.from('not a tar\n'.repeat(100)))).toContain(
      'not an uncompressed tar archive',
    );
    // A tar cut short inside its layer.
    const whole = await tarOf(image());
    expect(await refusal(whole.subarray(0, 1536))).toMatch(/no manifest|not a readable tar/);
  });

  it('hands the engine every entry as it was, the manifest with the given tags, and no repositories file', async () => {
    const file = await write(
      await tarOf(image([{ path: 'repositories', body: '{"localhost/other":{"1":"x"}}' }])),
    );
    const held = await inspectImageArchive(file);
    const out: { path: string; body: string }[] = [];
    const parser = new Parser({
      onReadEntry: (e) => {
        const chunks: Buffer[] = [];
        e.on('data', (c: Buffer) => chunks.push(c));
        e.on('end', () => out.push({ path: e.path, body: Buffer.concat(chunks).toString('latin1') }));
      },
    });
    const body = archiveForLoad(file, held, ['localhost/clgw-incoming-tunnel:load']);
    expect(body.what).toBe(`image archive ${file}`);
    for await (const chunk of body.read()) parser.write(Buffer.from(chunk));
    await new Promise<void>((r) => parser.end(r));
    expect(out.map((e) => e.path)).toEqual([`${CONFIG_HEX}.json`, 'l1/', 'l1/layer.tar', 'manifest.json']);
    expect(out[2]!.body).toBe(Buffer.alloc(2048, 7).toString('latin1'));
    expect(JSON.parse(out[3]!.body)).toEqual([
      {
        Config: `${CONFIG_HEX}.json`,
        RepoTags: ['localhost/clgw-incoming-tunnel:load'],
        Layers: ['l1/layer.tar'],
      },
    ]);
  });
});
