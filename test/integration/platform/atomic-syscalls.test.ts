/**
 * What writeFileAtomic asks of the kernel, watched with strace (issue #24): the new content in a
 * temp file, that file fsynced, renamed over the target, then the directory fsynced — so that after
 * a power cut the target holds the old content or the new, and the rename itself is durable. The
 * crash-point labels cannot show this (a directory "fsync" turned into a stat still passes its
 * label); the system calls can.
 *
 * The write runs in a child node process under `strace -f -y` (paths beside every descriptor)
 * with one libuv worker, so its file system calls come in the order they were made.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO } from '../../support/appliance.js';

const run = promisify(execFile);
const ATOMIC = path.join(REPO, 'core/dist/platform/atomic.js'); // built by `make test`

let dir: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-atomic-sys-'));
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** One system call on a path under the test's directory, as strace printed it. */
interface Call {
  call: 'openat' | 'fsync' | 'fdatasync' | 'rename' | 'unlink';
  /** openat, fsync, fdatasync, unlink: the path; rename: the source. */
  path: string;
  /** rename: the target. */
  to?: string;
  /** openat: its flags. */
  flags?: string;
}

/** The calls writeFileAtomic(file, data) makes under `dir`, in order. */
async function traceWrite(file: string, data: string): Promise<Call[]> {
  const log = path.join(dir, '..', `${path.basename(dir)}.strace`);
  const script = `import { writeFileAtomic } from ${JSON.stringify(ATOMIC)}; await writeFileAtomic(${JSON.stringify(file)}, ${JSON.stringify(data)});`;
  try {
    await run(
      'strace',
      [
        '-f',
        '-qq',
        '-y',
        '-e',
        'trace=openat,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat',
        '-o',
        log,
        process.execPath,
        '--input-type=module',
        '-e',
        script,
      ],
      { env: { ...process.env, UV_THREADPOOL_SIZE: '1' }, timeout: 60_000 },
    );
    const calls: Call[] = [];
    for (const line of (await fs.readFile(log, 'utf8')).split('\n')) {
      // `<pid> openat(AT_FDCWD</cwd>, "/tmp/…/.f.0123456789ab.tmp", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0644) = 18</…>`
      let m = /^\d+ openat\([^,]+, "([^"]+)", ([A-Z_|]+)/.exec(line);
      if (m) calls.push({ call: 'openat', path: m[1]!, flags: m[2]! });
      m = /^\d+ (fsync|fdatasync)\(\d+<([^>]+)>\)/.exec(line);
      if (m) calls.push({ call: m[1] as 'fsync' | 'fdatasync', path: m[2]! });
      m = /^\d+ rename(?:at2?)?\((?:[^,]+, )?"([^"]+)", (?:[^,]+, )?"([^"]+)"/.exec(line);
      if (m) calls.push({ call: 'rename', path: m[1]!, to: m[2]! });
      m = /^\d+ unlink(?:at)?\((?:[^,]+, )?"([^"]+)"/.exec(line);
      if (m) calls.push({ call: 'unlink', path: m[1]! });
    }
    return calls.filter((c) => c.path === dir || c.path.startsWith(`${dir}/`));
  } finally {
    await fs.rm(log, { force: true });
  }
}

/** Where the first call matching `ok` is in `calls` (-1 when none). */
const at = (calls: Call[], ok: (c: Call) => boolean) => calls.findIndex(ok);

describe('writeFileAtomic as the kernel sees it', () => {
  it.each([
    ['a new file', false],
    ['a file it replaces', true],
  ])('%s: temp file, its fsync, the rename over the target, then the directory fsync', async (_, exists) => {
    const file = path.join(dir, 'grubenv');
    if (exists) await fs.writeFile(file, 'old\n');
    const calls = await traceWrite(file, 'new\n');
    expect(await fs.readFile(file, 'utf8')).toBe('new\n');

    const created = at(calls, (c) => c.call === 'openat' && /O_CREAT/.test(c.flags!) && c.path !== file);
    expect(created, `no temp file created:\n${JSON.stringify(calls, null, 1)}`).toBeGreaterThanOrEqual(0);
    const temp = calls[created]!;
    expect(temp.flags).toMatch(/O_EXCL/);
    expect(path.dirname(temp.path)).toBe(dir); // the same file system: the rename is atomic

    const tempSynced = at(calls, (c) => c.call === 'fsync' && c.path === temp.path);
    const renamed = at(calls, (c) => c.call === 'rename' && c.path === temp.path && c.to === file);
    const dirSynced = calls.findLastIndex((c) => c.call === 'fsync' && c.path === dir);
    expect(tempSynced, 'the temp file is fsynced').toBeGreaterThan(created);
    expect(renamed, 'the temp file is renamed over the target after its fsync').toBeGreaterThan(tempSynced);
    expect(dirSynced, 'the directory is fsynced after the rename').toBeGreaterThan(renamed);

    // The target itself is never opened to write: its old content stays whole until the rename.
    expect(calls.filter((c) => c.path === file && c.call === 'openat')).toEqual([]);
  });
});
