import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { removeStaleTemps, writeFileAtomic } from '@clgw/core/platform/atomic.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-atomic-'));
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('removeStaleTemps', () => {
  it('removes exactly the temp files writeFileAtomic leaves when a power cut stops it', async () => {
    await writeFileAtomic(path.join(dir, 'update-journal.json'), '{}\n');
    const leftovers = ['.update-journal.json.0123456789ab.tmp', '.grubenv.a1b2c3d4e5f6.tmp'];
    const kept = [
      'update-journal.json',
      '.hidden',
      'notes.tmp',
      '.short.123.tmp', // not 12 hex digits: not ours
      '.upper.0123456789AB.tmp',
      '.x.0123456789ab.tmp.bak',
    ];
    for (const name of [...leftovers, ...kept.slice(1)]) await fs.writeFile(path.join(dir, name), 'x');
    expect((await removeStaleTemps(dir)).sort()).toEqual([...leftovers].sort());
    expect((await fs.readdir(dir)).sort()).toEqual([...kept].sort());
    expect(await fs.readFile(path.join(dir, 'update-journal.json'), 'utf8')).toBe('{}\n');
  });

  it('treats a missing directory as empty', async () => {
    expect(await removeStaleTemps(path.join(dir, 'absent'))).toEqual([]);
  });
});
