/**
 * grubenv is written in place, as GRUB's save_env writes it (the ESP is FAT, where a rename is not
 * atomic): same inode, same size, never created or resized by writeGrubenv, and every variable in
 * the block's first 512-byte sector so that a write torn between sectors leaves the old or the new
 * variables, never a mix.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClgwError } from '@clgw/core/errors.js';
import {
  defaultGrubenv,
  markBad,
  markGood,
  requestRecovery,
  selectBootFromBlock,
  switchTo,
} from '@clgw/core/slot/bootchooser.js';
import { GRUBENV_SECTOR, GRUBENV_SIZE, parseGrubenv, serializeGrubenv } from '@clgw/core/slot/grubenv.js';
import {
  createGrubenv,
  readGrubenv,
  writeGrubenv,
  writeGrubenvBlock,
  writeOrCreateGrubenv,
} from '@clgw/core/slot/grubenv-file.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir: string;
let n = 0;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-grubenv-inplace-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A fresh directory per test, so its listing shows exactly what the write left. */
async function freshDir(): Promise<string> {
  const sub = path.join(dir, `t${n++}`);
  await fs.mkdir(sub);
  return sub;
}

async function invalid(p: Promise<unknown>): Promise<ClgwError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ClgwError);
  expect((e as ClgwError).code).toBe('GRUBENV_INVALID');
  return e as ClgwError;
}

/**
 * The largest variable set the appliance writes: every bootchooser variable (with its longest
 * realistic value) and the recovery reason (the longest of RECOVERY_REASONS).
 */
function largestRealistic(): Map<string, string> {
  const vars = requestRecovery(switchTo(markGood(defaultGrubenv(), 'A'), 'B'));
  vars.set('A_TRY', '1');
  vars.set('B_TRY', '1');
  vars.set('LAST_GOOD_TRIES', '3');
  vars.set('CLGW_RECOVERY_REASON', 'boot-environment-torn');
  vars.set('CLGW_RECOVERY_REASON', 'critical-phase-failed');
  return vars;
}

describe('writeGrubenv writes in place', () => {
  it('keeps the inode and the size across writes, and leaves nothing else in the directory', async () => {
    const sub = await freshDir();
    const file = path.join(sub, 'grubenv');
    await createGrubenv(file, defaultGrubenv());
    const before = await fs.stat(file);
    const sets = [
      switchTo(defaultGrubenv(), 'B'),
      markBad(switchTo(defaultGrubenv(), 'B'), 'B'),
      largestRealistic(),
      new Map<string, string>(),
      defaultGrubenv(),
    ];
    for (const vars of sets) {
      await writeGrubenv(file, vars);
      const after = await fs.stat(file);
      expect(after.ino).toBe(before.ino);
      expect(after.size).toBe(GRUBENV_SIZE);
      expect([...(await readGrubenv(file))]).toEqual([...vars]);
      expect(Buffer.from(await fs.readFile(file))).toEqual(Buffer.from(serializeGrubenv(vars)));
    }
    expect(await fs.readdir(sub)).toEqual(['grubenv']);
  });

  it('a missing file: GRUBENV_INVALID naming it, nothing created', async () => {
    const sub = await freshDir();
    const file = path.join(sub, 'grubenv');
    const e = await invalid(writeGrubenv(file, defaultGrubenv()));
    expect(e.message).toContain(file);
    expect(e.message).toMatch(/does not exist.*never created/);
    expect(e.details).toMatchObject({ file, problem: 'missing' });
    expect(await fs.readdir(sub)).toEqual([]);
    // Nor its directory.
    const deeper = path.join(sub, 'nope', 'grubenv');
    await invalid(writeGrubenv(deeper, defaultGrubenv()));
    expect(await fs.readdir(sub)).toEqual([]);
  });

  it('a file of the wrong size: GRUBENV_INVALID naming it and its size, the file unchanged', async () => {
    const sub = await freshDir();
    const good = serializeGrubenv(defaultGrubenv());
    for (const content of [
      new Uint8Array(0),
      good.subarray(0, 512),
      Buffer.concat([good, Buffer.from('#')]),
    ]) {
      const file = path.join(sub, `size-${content.length}`);
      await fs.writeFile(file, content);
      const inode = (await fs.stat(file)).ino;
      const e = await invalid(writeGrubenv(file, switchTo(defaultGrubenv(), 'B')));
      expect(e.message).toContain(file);
      expect(e.message).toContain(`is ${content.length} bytes, a GRUB environment block is exactly 1024`);
      expect(e.details).toMatchObject({ file, problem: 'size', size: content.length });
      expect(Buffer.from(await fs.readFile(file))).toEqual(Buffer.from(content));
      expect((await fs.stat(file)).ino).toBe(inode);
    }
  });

  it('a directory where the file should be: GRUBENV_INVALID, nothing written', async () => {
    const sub = await freshDir();
    const e = await invalid(writeGrubenv(sub, defaultGrubenv()));
    expect(e.message).toContain(sub);
    expect(await fs.readdir(sub)).toEqual([]);
  });

  it('variables that do not fit in the first sector: GRUBENV_INVALID naming the size, file unchanged', async () => {
    const sub = await freshDir();
    const file = path.join(sub, 'grubenv');
    await createGrubenv(file, defaultGrubenv());
    const e = await invalid(writeGrubenv(file, new Map([['v', 'x'.repeat(GRUBENV_SECTOR)]])));
    expect(e.message).toMatch(/need 540 bytes, they must fit in the block's first 512-byte sector/);
    expect(e.details).toMatchObject({ needed: 540, limit: GRUBENV_SECTOR });
    expect(await readGrubenv(file)).toEqual(defaultGrubenv());
  });

  it('a torn block (a write cut between its sectors) reads as the old or the new variables', async () => {
    // What the file holds after each possible cut of an in-place write: sector 0 new and sector 1
    // old, or the other way round.
    const sub = await freshDir();
    const file = path.join(sub, 'grubenv');
    const before = defaultGrubenv();
    const after = largestRealistic();
    const oldBlock = serializeGrubenv(before);
    const newBlock = serializeGrubenv(after);
    for (const [name, torn, expected] of [
      ['new sector 0, old sector 1', [newBlock, oldBlock], after],
      ['old sector 0, new sector 1', [oldBlock, newBlock], before],
    ] as const) {
      const block = new Uint8Array(GRUBENV_SIZE);
      block.set(torn[0].subarray(0, GRUBENV_SECTOR), 0);
      block.set(torn[1].subarray(GRUBENV_SECTOR), GRUBENV_SECTOR);
      await fs.writeFile(file, block);
      expect([...(await readGrubenv(file))], name).toEqual([...expected]);
    }
  });
});

describe('writeGrubenvBlock (the boot emulator writes what GRUB save_env made of the file)', () => {
  it('writes GRUB save_env’s block in place', async () => {
    const sub = await freshDir();
    const file = path.join(sub, 'grubenv');
    await createGrubenv(file, switchTo(defaultGrubenv(), 'B'));
    const inode = (await fs.stat(file)).ino;
    const choice = selectBootFromBlock(await fs.readFile(file));
    expect(choice.target).toBe('B');
    await writeGrubenvBlock(file, choice.block!);
    expect((await fs.stat(file)).ino).toBe(inode);
    expect((await readGrubenv(file)).get('B_TRY')).toBe('1');
    expect(await fs.readdir(sub)).toEqual(['grubenv']);
  });

  it('a shorter file GRUB still boots from keeps its size', async () => {
    const sub = await freshDir();
    const file = path.join(sub, 'grubenv');
    await fs.writeFile(file, serializeGrubenv(defaultGrubenv()).subarray(0, 200));
    const choice = selectBootFromBlock(await fs.readFile(file));
    expect(choice.block?.length).toBe(200);
    await writeGrubenvBlock(file, choice.block!);
    expect(Buffer.from(await fs.readFile(file))).toEqual(Buffer.from(choice.block!));
    // A block of another size than the file's is refused, the file unchanged.
    const e = await invalid(writeGrubenvBlock(file, serializeGrubenv(defaultGrubenv())));
    expect(e.details).toMatchObject({ problem: 'size', size: 200, expected: GRUBENV_SIZE });
    expect(Buffer.from(await fs.readFile(file))).toEqual(Buffer.from(choice.block!));
  });
});

describe('createGrubenv and writeOrCreateGrubenv', () => {
  it('createGrubenv makes the file (and its directory)', async () => {
    const sub = await freshDir();
    const file = path.join(sub, 'grub', 'grubenv');
    await createGrubenv(file, defaultGrubenv());
    expect((await fs.stat(file)).size).toBe(GRUBENV_SIZE);
    expect(await readGrubenv(file)).toEqual(defaultGrubenv());
  });

  it('writeOrCreateGrubenv writes in place when it can, creates a missing or wrong-size file', async () => {
    const sub = await freshDir();
    const file = path.join(sub, 'grubenv');
    expect(await writeOrCreateGrubenv(file, defaultGrubenv())).toBe('created');
    const inode = (await fs.stat(file)).ino;
    const request = requestRecovery(defaultGrubenv());
    expect(await writeOrCreateGrubenv(file, request)).toBe('written');
    expect((await fs.stat(file)).ino).toBe(inode);
    expect(await readGrubenv(file)).toEqual(request);

    await fs.writeFile(file, 'short');
    expect(await writeOrCreateGrubenv(file, defaultGrubenv())).toBe('created');
    expect(await readGrubenv(file)).toEqual(defaultGrubenv());
    expect(await fs.readdir(sub)).toEqual(['grubenv']);
  });

  it('writeOrCreateGrubenv still refuses variables that do not fit, creating nothing', async () => {
    const sub = await freshDir();
    const file = path.join(sub, 'grubenv');
    await invalid(writeOrCreateGrubenv(file, new Map([['v', 'x'.repeat(600)]])));
    expect(await fs.readdir(sub)).toEqual([]);
  });
});

describe('every block we write keeps its variables in sector 0', () => {
  it('the largest realistic set ends well before byte 512', () => {
    const block = serializeGrubenv(largestRealistic());
    const lastLf = block.lastIndexOf(0x0a);
    expect(lastLf).toBeLessThan(GRUBENV_SECTOR);
    // Room to spare: the set is far from the limit.
    expect(lastLf).toBeLessThan(GRUBENV_SECTOR / 2);
    expect(block.subarray(lastLf + 1).every((b) => b === 0x23)).toBe(true);
    expect(parseGrubenv(block)).toEqual(largestRealistic());
  });

  it('sector 1 is the same in every block, so only sector 0 ever changes', () => {
    const sets = [
      defaultGrubenv(),
      largestRealistic(),
      new Map<string, string>(),
      switchTo(defaultGrubenv(), 'B'),
    ];
    const sector1 = Buffer.alloc(GRUBENV_SIZE - GRUBENV_SECTOR, '#');
    for (const vars of sets) {
      expect(Buffer.from(serializeGrubenv(vars).subarray(GRUBENV_SECTOR))).toEqual(sector1);
    }
  });

  it('torn between two realistic blocks, in either order, parses to exactly one of them', () => {
    const sets = [
      defaultGrubenv(),
      switchTo(defaultGrubenv(), 'B'),
      markBad(switchTo(defaultGrubenv(), 'B'), 'B'),
      largestRealistic(),
    ];
    for (const a of sets) {
      for (const b of sets) {
        const blockA = serializeGrubenv(a);
        const blockB = serializeGrubenv(b);
        const torn = Buffer.concat([blockA.subarray(0, GRUBENV_SECTOR), blockB.subarray(GRUBENV_SECTOR)]);
        expect([...parseGrubenv(torn)]).toEqual([...a]);
      }
    }
  });
});
