/**
 * What writeFileAtomic asks of the file system, and what a power cut can take from it (issue #24).
 *
 * The write runs in a child Node process with the power-cut model's recorder preloaded
 * (test/powercut/fs-recorder.mjs): it sees Node's own file system calls, not the appliance's crash
 * point labels, so a directory "fsync" turned into a stat, or a target rewritten in place, shows
 * as exactly that. Then the model (test/powercut/durability.ts) is applied as after a cut.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyDurabilityLoss, type FsOp, readFsRecord } from '../../powercut/durability.js';
import { Rng } from '../../powercut/rng.js';
import { REPO } from '../../support/appliance.js';

const run = promisify(execFile);
const ATOMIC = pathToFileURL(path.join(REPO, 'core/dist/platform/atomic.js')).href; // built by `make test`
const RECORDER = pathToFileURL(path.join(REPO, 'test/powercut/fs-recorder.mjs')).href;

let dir: string;
let root: string;
let record: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-atomic-dur-'));
  root = path.join(dir, 'root');
  record = path.join(dir, 'record');
  await fs.mkdir(path.join(root, 'var/clgw'), { recursive: true });
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Runs `body` (module code; `fsp` is node:fs/promises, `atomic` the built atomic.js) under the recorder. */
async function recorded(body: string): Promise<FsOp[]> {
  const script = `import * as atomic from ${JSON.stringify(ATOMIC)}; import fsp from 'node:fs/promises'; ${body}`;
  // Crash points counted (not frozen at): their labels go into the record beside the calls.
  const crash = path.join(dir, 'crash');
  await fs.mkdir(crash, { recursive: true });
  await fs.writeFile(path.join(crash, 'armed'), 'count');
  await run(process.execPath, ['--import', RECORDER, '--input-type=module', '-e', script], {
    env: { ...process.env, CLGW_FSLOG_DIR: record, CLGW_FSLOG_ROOT: root, CLGW_CRASH_DIR: crash },
    timeout: 60_000,
  });
  return readFsRecord(record);
}

const file = () => path.join(root, 'var/clgw/update-journal.json');
const q = JSON.stringify;

describe('writeFileAtomic as the file system sees it', () => {
  it.each([
    ['a new file', false],
    ['a file it replaces', true],
  ])(
    '%s: temp file created and fsynced, renamed over the target, then the directory fsynced',
    async (_, exists) => {
      if (exists) await fs.writeFile(file(), 'old\n');
      const ops = await recorded(`await atomic.writeFileAtomic(${q(file())}, 'new\\n');`);
      expect(await fs.readFile(file(), 'utf8')).toBe('new\n');

      const target = 'var/clgw/update-journal.json';
      const created = ops.findIndex((o) => o.op === 'create');
      expect(created, `no temp file created: ${q(ops)}`).toBeGreaterThanOrEqual(0);
      const temp = (ops[created] as { path: string }).path;
      expect(path.dirname(temp)).toBe('var/clgw'); // the same file system: the rename is atomic
      const synced = ops.findIndex((o) => o.op === 'fsync' && o.path === temp);
      const renamed = ops.findIndex((o) => o.op === 'rename' && o.from === temp && o.to === target);
      const dirSynced = ops.findLastIndex((o) => o.op === 'dirsync' && o.path === 'var/clgw');
      expect(synced, 'the temp file is fsynced').toBeGreaterThan(created);
      expect(renamed, 'then renamed over the target').toBeGreaterThan(synced);
      expect(dirSynced, 'then the directory is fsynced').toBeGreaterThan(renamed);
      // The target itself is never written: its old content stays whole until the rename.
      expect(ops.filter((o) => o.op === 'write' && o.path === target)).toEqual([]);
    },
  );

  it('a directory it creates is fsynced into its parent before the file goes in', async () => {
    const deep = path.join(root, 'var/clgw/chunk-index/a/B.idx');
    const ops = await recorded(`await atomic.writeFileAtomic(${q(deep)}, 'x');`);
    for (const d of ['var/clgw/chunk-index', 'var/clgw/chunk-index/a']) {
      const made = ops.findIndex((o) => o.op === 'mkdir' && o.path === d);
      const parentSynced = ops.findIndex(
        (o, i) => i > made && o.op === 'dirsync' && o.path === path.dirname(d),
      );
      expect(made, `${d} created`).toBeGreaterThanOrEqual(0);
      expect(parentSynced, `${path.dirname(d)} fsynced after ${d} was made`).toBeGreaterThan(made);
    }
    const report = await applyDurabilityLoss(root, record, new Rng(1), 'worst');
    expect(report.violations).toEqual([]);
    expect(await fs.readFile(deep, 'utf8')).toBe('x');
  });
});

describe('the power-cut model on real files', () => {
  it('keeps everything writeFileAtomic finished, whatever it may drop', async () => {
    await fs.writeFile(file(), 'v1');
    await recorded(
      `await atomic.writeFileAtomic(${q(file())}, 'v2'); await atomic.writeFileAtomic(${q(file())}, 'v3');`,
    );
    const report = await applyDurabilityLoss(root, record, new Rng(1), 'worst');
    expect(report.violations).toEqual([]);
    expect(await fs.readFile(file(), 'utf8')).toBe('v3');
  });

  it('rolls back a rename whose directory was never fsynced, and says whose write returned too early', async () => {
    await fs.writeFile(file(), 'old');
    const temp = path.join(root, 'var/clgw/.update-journal.json.0123456789ab.tmp');
    // writeFileAtomic with its directory fsync turned into a stat, crash points included.
    await recorded(`
      const { crashpoint } = await import(${q(pathToFileURL(path.join(REPO, 'core/dist/platform/crashpoint.js')).href)});
      const h = await fsp.open(${q(temp)}, 'wx'); await h.writeFile('new'); await h.sync(); await h.close();
      await fsp.rename(${q(temp)}, ${q(file())}); crashpoint('renamed update-journal.json');
      const d = await fsp.open(${q(path.dirname(file()))}, 'r'); await d.stat(); await d.close();
      crashpoint('dirsynced var/clgw/');`);
    const report = await applyDurabilityLoss(root, record, new Rng(1), 'worst');
    expect(await fs.readFile(file(), 'utf8')).toBe('old');
    await expect(fs.stat(temp)).rejects.toThrow(/ENOENT/); // its create was not durable either
    expect(report.violations).toEqual([
      expect.stringMatching(
        /^var\/clgw\/update-journal\.json is lost by a cut now although its atomic write returned/,
      ),
    ]);
  });

  it('may leave a file rewritten in place (O_TRUNC) empty before its fsync, and names it', async () => {
    await fs.writeFile(file(), 'old content');
    await recorded(
      `const h = await fsp.open(${q(file())}, 'w'); await h.writeFile('new content'); await h.close();`,
    );
    const report = await applyDurabilityLoss(root, record, new Rng(1), 'worst');
    expect(await fs.readFile(file(), 'utf8')).toBe('');
    expect(report.violations).toEqual([
      expect.stringMatching(/^var\/clgw\/update-journal\.json can be left holding nothing \(empty\)/),
    ]);
  });

  it('tears an in-place block at a sector on the ESP, and a block whose changes fit one sector is old or new', async () => {
    const env = path.join(root, 'boot/efi/grub/grubenv');
    await fs.mkdir(path.dirname(env), { recursive: true });
    const block = (c: string) => Buffer.concat([Buffer.alloc(512, c), Buffer.alloc(512, '#')]);
    await fs.writeFile(env, block('a'));
    await recorded(
      `const h = await fsp.open(${q(env)}, 'r+'); await h.write(${q(block('b').toString())}, 0); await h.close();`,
    );
    const report = await applyDurabilityLoss(root, record, new Rng(3), 'random');
    expect(report.violations).toEqual([]);
    expect([block('a').toString(), block('b').toString()]).toContain(await fs.readFile(env, 'utf8'));
  });

  it("keeps an appended log's durable prefix and may lose its tail", async () => {
    const log = path.join(root, 'var/log/clgw/clgw.log');
    await fs.mkdir(path.dirname(log), { recursive: true });
    await fs.writeFile(log, 'line 1\n');
    await recorded(
      `await fsp.appendFile(${q(log)}, 'line 2\\n'); await fsp.appendFile(${q(log)}, 'line 3\\n');`,
    );
    const report = await applyDurabilityLoss(root, record, new Rng(1), 'worst');
    expect(report.violations).toEqual([]);
    expect(await fs.readFile(log, 'utf8')).toBe('line 1\n');
  });
});
