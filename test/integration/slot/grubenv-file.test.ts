import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { defaultGrubenv, disableSlot, switchTo } from '@clgw/core/slot/bootchooser.js';
import { GRUBENV_SIZE, serializeGrubenv } from '@clgw/core/slot/grubenv.js';
import { createGrubenv, readGrubenv, updateGrubenv, writeGrubenv } from '@clgw/core/slot/grubenv-file.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// grub-editenv comes with Debian's grub-common (scripts/setup installs it): GRUB's own tool is
// the reference for what a valid block is.
let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-grubenv-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function editenvList(file: string): Promise<string> {
  return (await execFile('grub-editenv', [file, 'list'])).stdout;
}

async function expectInvalid(p: Promise<unknown>, pattern: RegExp): Promise<ClgwError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ClgwError);
  expect((e as ClgwError).code).toBe('GRUBENV_INVALID');
  expect((e as ClgwError).message).toMatch(pattern);
  return e as ClgwError;
}

const SAMPLE = new Map([
  ['ORDER', 'B A'],
  ['A_OK', '1'],
  ['A_TRY', '0'],
  ['B_OK', '1'],
  ['B_TRY', '1'],
  ['CLGW_RECOVERY', '0'],
  ['saved_entry', 'clgw-B'],
  ['odd', 'back\\slash, new\nline, tab\t, #hash, a=b, Zoë'],
]);

describe('writeGrubenv → grub-editenv', () => {
  it('grub-editenv list reads back exactly what we wrote', async () => {
    const file = path.join(dir, 'ours.env');
    await createGrubenv(file, defaultGrubenv());
    await writeGrubenv(file, SAMPLE);
    expect((await fs.stat(file)).size).toBe(GRUBENV_SIZE);
    const expected = [...SAMPLE].map(([k, v]) => `${k}=${v}\n`).join('');
    expect(await editenvList(file)).toBe(expected);
  });

  it('grub-editenv can edit our block, and we read its edit', async () => {
    const file = path.join(dir, 'edited.env');
    await createGrubenv(file, defaultGrubenv());
    await execFile('grub-editenv', [file, 'set', 'B_OK=1', 'NEW=x\\y']);
    await execFile('grub-editenv', [file, 'unset', 'A_TRY']);
    expect([...(await readGrubenv(file))]).toEqual([
      ['ORDER', 'A B'],
      ['A_OK', '1'],
      ['B_OK', '1'],
      ['B_TRY', '0'],
      ['LAST_GOOD', 'A'],
      ['LAST_GOOD_TRIES', '0'],
      ['NEW', 'x\\y'],
    ]);
  });

  it('rewrites the file in place (same inode, same size) and leaves no temp files behind', async () => {
    const sub = path.join(dir, 'inplace');
    await fs.mkdir(sub);
    const file = path.join(sub, 'grubenv');
    await createGrubenv(file, defaultGrubenv());
    const inodeBefore = (await fs.stat(file)).ino;
    await writeGrubenv(file, switchTo(defaultGrubenv(), 'B'));
    const after = await fs.stat(file);
    expect(after.ino).toBe(inodeBefore);
    expect(after.size).toBe(GRUBENV_SIZE);
    expect(await fs.readdir(sub)).toEqual(['grubenv']);
    expect((await readGrubenv(file)).get('ORDER')).toBe('B A');
    expect(await editenvList(file)).toContain('ORDER=B A\n');
  });

  it('refuses variables that do not fit, leaving the old file intact', async () => {
    const file = path.join(dir, 'toolarge.env');
    await createGrubenv(file, defaultGrubenv());
    await expectInvalid(writeGrubenv(file, new Map([['v', 'x'.repeat(2000)]])), /need \d+ bytes/);
    await expectInvalid(
      writeGrubenv(file, new Map([['v', 'x'.repeat(600)]])),
      /need \d+ bytes.*512-byte sector/,
    );
    expect(await readGrubenv(file)).toEqual(defaultGrubenv());
  });
});

describe('grub-editenv → readGrubenv', () => {
  it('parses a block made by grub-editenv create + set (Debian adds a comment line)', async () => {
    const file = path.join(dir, 'theirs.env');
    await execFile('grub-editenv', [file, 'create']);
    expect((await readGrubenv(file)).size).toBe(0);
    await execFile('grub-editenv', [
      file,
      'set',
      'ORDER=A B',
      'A_OK=1',
      'A_TRY=0',
      'multi=one\ntwo',
      'slashes=a\\b\\\\c',
      'empty=',
    ]);
    await execFile('grub-editenv', [file, 'set', 'A_TRY=1']);
    expect([...(await readGrubenv(file))]).toEqual([
      ['ORDER', 'A B'],
      ['A_OK', '1'],
      ['A_TRY', '1'],
      ['multi', 'one\ntwo'],
      ['slashes', 'a\\b\\\\c'],
      ['empty', ''],
    ]);
  });
});

describe('updateGrubenv', () => {
  it('skips the write when nothing changes', async () => {
    const file = path.join(dir, 'update.env');
    await createGrubenv(file, disableSlot(defaultGrubenv(), 'B'));
    const inode = (await fs.stat(file)).ino;
    const same = await updateGrubenv(file, (v) => disableSlot(v, 'B'));
    expect(same.changed).toBe(false);
    expect((await fs.stat(file)).ino).toBe(inode);
    const changed = await updateGrubenv(file, (v) => disableSlot(v, 'A'));
    expect(changed.changed).toBe(true);
    expect((await readGrubenv(file)).get('A_OK')).toBe('0');
    expect((await fs.stat(file)).ino).toBe(inode);
  });
});

describe('readGrubenv detects a missing, unreadable or torn file, naming it', () => {
  const good = serializeGrubenv(SAMPLE);

  it('missing file', async () => {
    const file = path.join(dir, 'nope', 'grubenv');
    const e = await expectInvalid(readGrubenv(file), /grubenv .*nope\/grubenv does not exist/);
    expect(e.details.file).toBe(file);
  });

  it('a directory where the file should be', async () => {
    await expectInvalid(readGrubenv(dir), new RegExp(`grubenv ${dir} cannot be read`));
  });

  it('truncated at several offsets', async () => {
    for (const cut of [0, 10, 24, 25, 40, 100, 150, 200, 512, 1023]) {
      const file = path.join(dir, `trunc-${cut}.env`);
      await fs.writeFile(file, good.subarray(0, cut));
      await expectInvalid(readGrubenv(file), new RegExp(`${file}: is ${cut} bytes`));
    }
  });

  it('too long', async () => {
    const file = path.join(dir, 'long.env');
    await fs.writeFile(file, Buffer.concat([good, Buffer.from('#'.repeat(5000))]));
    await expectInvalid(readGrubenv(file), /is 1025 bytes/);
  });

  it('torn in place: the end of the block zero-filled or overwritten with garbage', async () => {
    for (const cut of [30, 60, 90, 130, 200, 700]) {
      const zeroed = Buffer.from(good);
      zeroed.fill(0, cut);
      const file = path.join(dir, `zero-${cut}.env`);
      await fs.writeFile(file, zeroed);
      await expectInvalid(readGrubenv(file), new RegExp(`${file}: .*NUL byte at offset ${cut}`));
    }
    const garbage = Buffer.from(good);
    for (let i = 600; i < 1024; i++) garbage[i] = (i * 37 + 11) & 0x7f || 1;
    const file = path.join(dir, 'garbage.env');
    await fs.writeFile(file, garbage);
    await expectInvalid(
      readGrubenv(file),
      /byte 0x[0-9a-f]{2} at offset \d+ after the '#' padding began at offset 151/,
    );
  });

  it('entirely zero-filled or entirely garbage', async () => {
    const zero = path.join(dir, 'allzero.env');
    await fs.writeFile(zero, Buffer.alloc(1024));
    await expectInvalid(readGrubenv(zero), /all zero bytes/);
    const junk = path.join(dir, 'junk.env');
    await fs.writeFile(junk, Buffer.alloc(1024, 'x'));
    await expectInvalid(readGrubenv(junk), /does not start with the signature/);
  });

  it('what GRUB itself reports about the same torn file', async () => {
    // Sanity check of the premise: grub-editenv also refuses a block without its signature.
    const junk = path.join(dir, 'junk2.env');
    await fs.writeFile(junk, Buffer.alloc(1024, 'x'));
    await expect(editenvList(junk)).rejects.toThrow(/invalid environment block/);
  });
});
