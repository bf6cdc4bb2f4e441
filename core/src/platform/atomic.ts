import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError } from '../errors.js';
import { crashpoint } from './crashpoint.js';

/**
 * Writes a file so that after a power cut it holds either the old or the new content, never a
 * mix: temp file in the same directory → fsync → rename over the target → fsync the directory
 * (so the rename itself is durable). Every persisted file of the appliance goes through here.
 */
export async function writeFileAtomic(
  file: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  await writeFileAtomicWith(file, (handle) => handle.writeFile(data), options);
}

/**
 * {@link writeFileAtomic} for content produced piece by piece (too large to hold in memory, or
 * checked while it is written): `fill` writes it through the temp file's handle. When `fill` throws,
 * the temp file is removed and its error passes through unchanged.
 */
export async function writeFileAtomicWith(
  file: string,
  fill: (handle: fs.FileHandle) => Promise<void>,
  options: { mode?: number } = {},
): Promise<void> {
  const dir = path.dirname(file);
  await makeDirDurable(dir);
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: fs.FileHandle | undefined;
  let filling = false;
  try {
    handle = await fs.open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      options.mode ?? 0o644,
    );
    filling = true;
    await fill(handle);
    filling = false;
    crashpoint(`written ${path.basename(file)}`);
    await handle.sync();
    await handle.close();
    handle = undefined;
    crashpoint(`synced ${path.basename(file)}`);
    await fs.rename(temp, file);
    crashpoint(`renamed ${path.basename(file)}`);
  } catch (e) {
    await handle?.close().catch(() => undefined);
    await fs.rm(temp, { force: true }).catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    // File system failures are named here; anything else `fill` threw is the caller's own error.
    if (filling && err.syscall === undefined) throw e;
    throw new ClgwError(
      err.code === 'ENOSPC' ? 'NO_SPACE' : 'INTERNAL',
      `cannot write ${file}: ${err.message}`,
      { cause: e, details: { file } },
    );
  }
  await fsyncDir(dir);
}

/** The temp files writeFileAtomic creates: `.<name>.<12 hex>.tmp`. */
const TEMP_NAME = /^\..+\.[0-9a-f]{12}\.tmp$/;

/**
 * Removes the temp files a power cut left behind in `dir` (never renamed, so never part of any
 * file's content) and returns their names. Only for start-up, before anything writes there.
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const names = await fs.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  const stale = names.filter((n) => TEMP_NAME.test(n));
  for (const name of stale) await fs.rm(path.join(dir, name), { force: true });
  return stale;
}

/**
 * `mkdir -p` whose new directories survive a power cut: each one is an entry in its parent, durable
 * only once the parent is fsynced (the file written into it afterwards would vanish with it).
 */
export async function makeDirDurable(dir: string): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let d = dir; ; d = path.dirname(d)) {
    await fsyncDir(path.dirname(d));
    if (d === first) break;
  }
}

/** Makes a directory entry change (create, rename, unlink) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  // The parent's name too: `var/clgw/` and `run/clgw/` are different directories to the power-cut model.
  crashpoint(`dirsynced ${path.basename(path.dirname(dir))}/${path.basename(dir)}/`);
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Reads a JSON file; `undefined` when it does not exist, a STATE_INVALID error when unreadable. */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ClgwError('STATE_INVALID', `cannot read ${file}: ${(e as Error).message}`, {
      cause: e,
      details: { file },
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ClgwError('STATE_INVALID', `${file} is not valid JSON: ${(e as Error).message}`, {
      cause: e,
      details: { file },
    });
  }
}

/**
 * Reads at most `limit` bytes, so a path that turns out to be a huge file or a block device
 * cannot make the agent read it all; anything longer than a block is reported as the wrong size.
 */
export async function readAtMost(file: string, limit: number): Promise<Uint8Array> {
  const handle = await fs.open(file, constants.O_RDONLY);
  try {
    const buf = Buffer.alloc(limit);
    let filled = 0;
    while (filled < limit) {
      const { bytesRead } = await handle.read(buf, filled, limit - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, filled);
  } finally {
    await handle.close();
  }
}
