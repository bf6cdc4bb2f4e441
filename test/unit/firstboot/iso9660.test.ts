/**
 * The ISO 9660 reader against real images made by `xorriso -as mkisofs` (with and without Joliet
 * and Rock Ridge, ISO level 1), and against images corrupted on purpose: every bad length or
 * extent is a typed error, never a read past the end.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ClgwError } from '@clgw/core/errors.js';
import { MAX_OVF_ENV_BYTES } from '@clgw/core/firstboot/ovf-env.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BlockReader,
  isOvfEnvName,
  isoRootEntries,
  readOvfEnvFromIso,
} from '../../../firstboot/src/iso9660.js';
import { readIso } from '../../../firstboot/src/sources.js';
import { mkisofs } from '../../support/iso.js';
import { recordSkip } from '../../support/skip.js';

const run = promisify(execFile);
const skip = await run('xorriso', ['-version']).then(
  () => undefined,
  () => 'xorriso is not installed (Debian package xorriso; scripts/setup image-tests)',
);
if (skip) recordSkip('test/unit/firstboot/iso9660.test.ts', skip);

const DOC = '<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1"/>\n';
let dir: string;

/** An ISO of `files` (name → content) made with `xorriso -as mkisofs <flags>`. */
async function makeIso(
  name: string,
  flags: string[],
  files: Record<string, string | Buffer>,
): Promise<string> {
  const src = path.join(dir, `${name}.d`);
  await fs.mkdir(src, { recursive: true });
  for (const [f, content] of Object.entries(files)) await fs.writeFile(path.join(src, f), content);
  const iso = path.join(dir, `${name}.iso`);
  await mkisofs([...flags, '-V', 'OVFENV', '-o', iso, src]);
  return iso;
}

function fromBuffer(name: string, buf: Buffer): BlockReader & { reads: [number, number][] } {
  const reads: [number, number][] = [];
  return {
    name,
    size: buf.length,
    reads,
    read: async (offset, length) => {
      reads.push([offset, length]);
      return new Uint8Array(buf.subarray(offset, offset + length));
    },
  };
}

async function isoError(dev: BlockReader): Promise<ClgwError> {
  const e = await readOvfEnvFromIso(dev, MAX_OVF_ENV_BYTES).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ClgwError);
  return e as ClgwError;
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-iso-'));
});
afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('isOvfEnvName', () => {
  it.each([
    ['ovf-env.xml', true],
    ['OVF-ENV.XML', true],
    ['OVF_ENV.XML;1', true],
    ['ovf_env.xml', true],
    ['Ovf-Env.Xml;12', true],
    ['ovf-env.xml.', true],
    ['ovf-env.xml.bak', false],
    ['ovfenv.xml', false],
    ['OVF_ENV.XM;1', false],
    ['x/ovf-env.xml', false],
  ])('%s → %s', (name, yes) => {
    expect(isOvfEnvName(name)).toBe(yes);
  });
});

describe.skipIf(skip)('ISO 9660 images made by xorriso', () => {
  it.each([
    ['plain (no Rock Ridge, no Joliet)', ['--norock'], false, 'OVF_ENV.XML;1'],
    ['Rock Ridge', ['-R'], false, 'OVF_ENV.XML;1'],
    ['Joliet and Rock Ridge', ['-J', '-R'], true, 'ovf-env.xml'],
    ['Joliet only', ['-J', '--norock'], true, 'ovf-env.xml'],
    ['ISO level 1', ['-iso-level', '1', '--norock'], false, 'OVF_ENV.XML;1'],
    ['ISO level 1 with Joliet', ['-iso-level', '1', '-J'], true, 'ovf-env.xml'],
  ])('%s: finds the file (%s)', async (name, flags, joliet, recorded) => {
    const iso = await makeIso(name.replace(/\W+/g, '-'), flags, {
      'ovf-env.xml': DOC,
      'README.txt': 'hello\n',
    });
    const dev = fromBuffer(iso, await fs.readFile(iso));
    const root = await isoRootEntries(dev);
    expect(root.joliet).toBe(joliet);
    expect(root.entries.map((e) => e.name).sort()).toEqual(
      joliet ? ['README.txt', 'ovf-env.xml'] : ['OVF_ENV.XML;1', 'README.TXT;1'],
    );
    const found = await readOvfEnvFromIso(dev, MAX_OVF_ENV_BYTES);
    expect(found?.name).toBe(recorded);
    expect(new TextDecoder().decode(found?.data)).toBe(DOC);
  });

  it('a root directory over several sectors', async () => {
    const files: Record<string, string> = { 'ovf-env.xml': DOC };
    for (let i = 0; i < 150; i++) files[`a-rather-long-file-name-to-fill-sectors-${i}.txt`] = `${i}\n`;
    const iso = await makeIso('many', ['-J'], files);
    const dev = fromBuffer(iso, await fs.readFile(iso));
    const root = await isoRootEntries(dev);
    expect(root.entries).toHaveLength(151);
    // The directory really spans more than one 2048-byte sector.
    expect(Math.max(...dev.reads.map(([, length]) => length))).toBeGreaterThan(2048);
    expect(new TextDecoder().decode((await readOvfEnvFromIso(dev, MAX_OVF_ENV_BYTES))?.data)).toBe(DOC);
  });

  it('only the root directory counts', async () => {
    const src = path.join(dir, 'nested.d', 'sub');
    await fs.mkdir(src, { recursive: true });
    await fs.writeFile(path.join(src, 'ovf-env.xml'), DOC);
    const iso = path.join(dir, 'nested.iso');
    await mkisofs(['-J', '-o', iso, path.dirname(src)]);
    const dev = fromBuffer(iso, await fs.readFile(iso));
    expect((await isoRootEntries(dev)).entries.map((e) => [e.name, e.directory])).toEqual([['sub', true]]);
    expect(await readOvfEnvFromIso(dev, MAX_OVF_ENV_BYTES)).toBeUndefined();
  });

  it('a disc without the file: undefined', async () => {
    const iso = await makeIso('other', ['-J'], { 'setup.exe': 'MZ' });
    expect(
      await readOvfEnvFromIso(fromBuffer(iso, await fs.readFile(iso)), MAX_OVF_ENV_BYTES),
    ).toBeUndefined();
  });

  it('a file larger than the cap is OVF_ENV_INVALID, and is not read', async () => {
    const iso = await makeIso('large', ['-J'], { 'ovf-env.xml': Buffer.alloc(MAX_OVF_ENV_BYTES + 1, 0x20) });
    const dev = fromBuffer(iso, await fs.readFile(iso));
    const e = await isoError(dev);
    expect(e.code).toBe('OVF_ENV_INVALID');
    expect(e.message).toBe(
      `${iso}: ovf-env.xml is ${MAX_OVF_ENV_BYTES + 1} bytes (at most ${MAX_OVF_ENV_BYTES})`,
    );
    expect(dev.reads.every(([, length]) => length <= 2048)).toBe(true);
  });

  it('two spellings of the file on one disc: OVF_ENV_INVALID naming both', async () => {
    const iso = await makeIso('two', ['-J'], { 'ovf-env.xml': DOC, 'OVF_ENV.XML': DOC });
    const e = await isoError(fromBuffer(iso, await fs.readFile(iso)));
    expect(e.code).toBe('OVF_ENV_INVALID');
    expect(e.message).toMatch(
      /more than one OVF environment file \((OVF_ENV\.XML, ovf-env\.xml|ovf-env\.xml, OVF_ENV\.XML)\)/,
    );
  });

  it('readIso reads an image file through the file system', async () => {
    const iso = await makeIso('file', ['-J', '-R'], { 'ovf-env.xml': DOC });
    const found = await readIso(iso);
    expect(found).toEqual({ transport: 'iso', source: `${iso}: ovf-env.xml`, document: Buffer.from(DOC) });
  });
});

describe.skipIf(skip)('damaged images: typed errors, nothing read past the end', () => {
  let plain: Buffer;
  /** Byte offset of the primary tree's directory record of OVF_ENV.XML;1. */
  let record: number;

  beforeAll(async () => {
    plain = await fs.readFile(await makeIso('damage', ['--norock'], { 'ovf-env.xml': DOC }));
    record = plain.indexOf('OVF_ENV.XML;1') - 33;
    expect(record).toBeGreaterThan(16 * 2048);
  });

  const damaged = (patch: (b: Buffer) => void): BlockReader & { reads: [number, number][] } => {
    const b = Buffer.from(plain);
    patch(b);
    return fromBuffer('damaged.iso', b);
  };

  it.each([
    [
      'too small to be an ISO',
      () => fromBuffer('tiny.img', Buffer.alloc(4096)),
      /^tiny\.img: volume descriptor at sector 16 \(bytes 32768-34816\) lies beyond the end \(4096 bytes\)$/,
    ],
    [
      'not an ISO',
      () => fromBuffer('zeros.img', Buffer.alloc(64 * 1024)),
      /^zeros\.img: no ISO 9660 volume descriptor at sector 16/,
    ],
    [
      'zeros where the descriptors are',
      () => damaged((b) => b.fill(0, 16 * 2048, 17 * 2048)),
      /no ISO 9660 volume descriptor at sector 16/,
    ],
    [
      'cut after the primary volume descriptor: its root directory is gone',
      () => fromBuffer('cut.iso', plain.subarray(0, 17 * 2048)),
      /^cut\.iso: extent of 2048 bytes at byte 36864 lies beyond the end \(34816 bytes\)$/,
    ],
    [
      'root directory extent beyond the end',
      () => damaged((b) => b.writeUInt32LE(0x00ffffff, 16 * 2048 + 156 + 2)),
      /extent of 2048 bytes at byte 34359736320 lies beyond the end/,
    ],
    [
      'root directory larger than any real one',
      () => {
        // The image made as large as the claim, so only the size limit refuses it.
        const b = Buffer.concat([plain, Buffer.alloc(3 * 1024 * 1024)]);
        b.writeUInt32LE(2 * 1024 * 1024, 16 * 2048 + 156 + 10);
        return fromBuffer('huge-root.iso', b);
      },
      /root directory is 2097152 bytes \(at most 1048576\)/,
    ],
    [
      'file extent beyond the end',
      () => damaged((b) => b.writeUInt32LE(0x7fffffff, record + 10)),
      /extent of 2147483647 bytes/,
    ],
    [
      'record shorter than its identifier',
      () => damaged((b) => b.writeUInt8(40, record)),
      /malformed directory record \(length 40, identifier length 13\)/,
    ],
    [
      'logical block size 4096',
      () => damaged((b) => b.writeUInt16LE(4096, 16 * 2048 + 128)),
      /logical block size 4096 at sector 16/,
    ],
    [
      'no terminator: 32 primary descriptors in a row',
      () =>
        damaged((b) => {
          for (let s = 17; s < 48; s++) b.set(b.subarray(16 * 2048, 17 * 2048), s * 2048);
        }),
      /no volume descriptor set terminator in 32 sectors/,
    ],
  ])('%s', async (_name, make, message) => {
    const dev = make();
    const e = await isoError(dev);
    expect(e.code).toBe('ISO_INVALID');
    expect(e.message).toMatch(message);
    for (const [offset, length] of (dev as { reads: [number, number][] }).reads)
      expect(offset + length).toBeLessThanOrEqual(dev.size);
  });

  it('a record whose identifier runs past the sector is refused, not read beyond', async () => {
    const e = await isoError(damaged((b) => b.writeUInt8(255, record + 32)));
    expect(e.code).toBe('ISO_INVALID');
    expect(e.message).toMatch(/malformed directory record/);
  });
});
