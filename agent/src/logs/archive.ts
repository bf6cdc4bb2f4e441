/**
 * The log archive behind "Download logs" (SPEC.md §4, §8, §9): a `.tar.gz` of the agent's logs,
 * the system journal, a status snapshot and the state records named in `select.ts` — an
 * allow-list, so keys, tokens, passwords, onboarding data, container data and the engine's
 * storage never go in, and are never even walked. Capped in total size, newest first, logs
 * before state. Regular files only: links are listed as skipped, never followed.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, createWriteStream, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { ClgwError } from '@clgw/core/errors.js';
import { GarbageGauge } from '@clgw/core/platform/memory.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { fitNewestFirst, neverIncluded, type Skipped, stateRecords } from './select.js';

export interface LogArchiveOptions {
  paths: AppliancePaths;
  /** Where the archive is written (created 0700). */
  outDir: string;
  /**
   * Where the copies the archive is made from go while it is built (created 0700): on the data
   * partition, not beside the archive in `/run` — that is RAM, and the copies can reach the cap.
   */
  snapshotDir: string;
  /** Total bytes of file content (before compression) the archive may hold. */
  maxBytes: number;
  /** When the archive is made (its name and MANIFEST say so). */
  now: number;
  /** The agent's live status, saved as `status.json` (absent: no snapshot). */
  status?: () => Promise<unknown>;
  /** Export the system journal too (`journalctl`), when there is one. */
  journal?: boolean;
  /** Deadline and size bound of the journal export. */
  journalTimeoutMs?: number;
  journalMaxBytes?: number;
  /** The `journalctl` program (tests point it elsewhere). */
  journalctl?: string;
}

export interface LogArchive {
  /** The archive file (mode 0600). */
  file: string;
  /** The name a browser saves it as, e.g. `clgw-logs-20261121T093000Z-3fa2c1.tar.gz`. */
  name: string;
  /** Compressed size. */
  bytes: number;
  /** Names of the files it holds in archive order, MANIFEST.txt aside. */
  included: string[];
  /** What was left out and why (also in MANIFEST.txt). */
  skipped: Skipped[];
  /** State records this appliance does not have (also in MANIFEST.txt). */
  absent: string[];
}

/** The log directory's layout is flat; subdirectories (a service's own logs) are walked this deep. */
const MAX_LOG_DEPTH = 4;
/** Entries of the log directory looked at, at most (rotation keeps a handful). */
const MAX_LOG_ENTRIES = 1000;
const LOG_DIR_NAME = 'var/log/clgw';
const STATUS_NAME = 'status.json';
const JOURNAL_NAME = 'journal.txt';

/**
 * One file of the archive: read from disk (a path), made by the archive itself (the status
 * snapshot), or written straight into the snapshot directory under its name (the journal export).
 */
interface Planned {
  name: string;
  source: string | Buffer | 'in-snapshot';
  mode: number;
  mtimeMs: number;
  size: number;
}

/** Chunk of the bounded copy into the snapshot, and of node-tar's reads from it. */
const CHUNK = 64 * 1024;

/** `20261121T093000Z`: sortable, and safe in a file name. */
export function archiveStamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Builds the archive under `outDir`: first the log directory's files newest first, then the
 * journal export, then the status snapshot and state records newest first, each while the size
 * cap has room. What does not fit, links, special files and a journal export that failed are
 * listed in MANIFEST.txt as skipped. The chosen files are first copied, each up to the size it
 * was planned with, into a private snapshot directory under `snapshotDir`, which node-tar then
 * archives: a live log goes on growing (and is rotated) while the archive is written, and
 * node-tar, which writes the size it stat()ed into each header, fails on a file that changes under
 * it ("did not encounter expected EOF"). The snapshot is under the cap and is removed afterwards
 * (a start of the agent removes one a crash left). Memory
 * stays bounded: copies and reads go in 64 KiB chunks, one file at a time, through gzip to disk.
 * The name is the time plus 24 random bits, reserved with an exclusive create, so two archives
 * never share a file.
 */
export async function buildLogArchive(opts: LogArchiveOptions): Promise<LogArchive> {
  const { paths } = opts;
  await fs.mkdir(opts.outDir, { recursive: true, mode: 0o700 });
  const stamp = archiveStamp(opts.now);
  const { name, file } = await reserveName(opts.outDir, stamp);
  const partial = `${file}.partial`;
  // Private (0700): it holds copies of the logs and state records until they are archived.
  await fs.mkdir(opts.snapshotDir, { recursive: true, mode: 0o700 });
  const snapshot = path.join(opts.snapshotDir, name);
  const journalOut = path.join(snapshot, JOURNAL_NAME);
  const skipped: Skipped[] = [];
  const absent: string[] = [];
  const planned: Planned[] = [];

  try {
    await fs.mkdir(snapshot, { mode: 0o700 });
    // 1. The logs: what support reads first, so they never compete with anything else.
    const logs = fitNewestFirst(await listLogs(paths, skipped), opts.maxBytes, opts.maxBytes);
    planned.push(...logs.taken);
    skipped.push(...logs.skipped);
    let budget = logs.left;

    // 2. The system journal, cut at what the cap leaves.
    if (opts.journal !== false) {
      const limit = Math.min(opts.journalMaxBytes ?? 16 * 1024 * 1024, budget);
      const result = await exportJournal(opts, journalOut, limit);
      if (result.ok) {
        budget -= result.bytes;
        planned.push({
          name: JOURNAL_NAME,
          source: 'in-snapshot',
          mode: 0o644,
          mtimeMs: opts.now,
          size: result.bytes,
        });
        if (result.truncated)
          skipped.push({ name: JOURNAL_NAME, reason: `cut at ${limit} bytes (size cap)` });
      } else {
        await fs.rm(journalOut, { force: true });
        skipped.push({ name: JOURNAL_NAME, reason: result.reason });
      }
    }

    // 3. The status snapshot and the state records, newest first (the snapshot is the newest).
    const state: Planned[] = [];
    if (opts.status) {
      const snapshot = await statusSnapshot(opts.status);
      if (Buffer.isBuffer(snapshot))
        state.push({
          name: STATUS_NAME,
          source: snapshot,
          mode: 0o644,
          mtimeMs: opts.now,
          size: snapshot.length,
        });
      else skipped.push(snapshot);
    }
    for (const record of stateRecords(paths)) {
      const st = await fs.lstat(record.file).catch((e: NodeJS.ErrnoException) => e);
      if (st instanceof Error) {
        if (st.code === 'ENOENT' || st.code === 'ENOTDIR') absent.push(record.name);
        else skipped.push({ name: record.name, reason: `not readable: ${st.code ?? st.message}` });
      } else if (st.isSymbolicLink()) {
        skipped.push({ name: record.name, reason: 'symbolic link (not followed)' });
      } else if (!st.isFile()) {
        skipped.push({ name: record.name, reason: 'not a regular file' });
      } else {
        state.push({
          name: record.name,
          source: record.file,
          mode: 0o644,
          mtimeMs: st.mtimeMs,
          size: st.size,
        });
      }
    }
    const fitted = fitNewestFirst(state, budget, opts.maxBytes);
    planned.push(...fitted.taken);
    skipped.push(...fitted.skipped);

    const included = planned.map((p) => p.name);
    const manifest = Buffer.from(manifestText(opts, stamp, included, skipped, absent), 'utf8');
    const entries = await takeSnapshot(snapshot, planned, manifest, opts.now);
    // Loaded here, not at start: the agent builds an archive only when support asks for one.
    const { create: createTar } = await import('tar');
    const pack = createTar(
      {
        cwd: snapshot,
        // No uid, gid, owner names, atime or ctime: the archive says nothing of the build host.
        portable: true,
        // The entries are named one by one, directories before their files, in the cap's order.
        noDirRecurse: true,
        // A warning (an entry it could not add) fails the archive rather than leaving a hole.
        strict: true,
        maxReadSize: CHUNK,
        jobs: 1,
      },
      entries,
    );
    // node-tar reads each chunk into a new buffer, and gzip's output comes in new buffers too:
    // dead at once, but freed only when V8 collects the young generation, which their small
    // JavaScript side fills slowly. Collected every 2 MiB of tar, as a download does: the agent's
    // RssAnon while it archived 40 MiB of logs peaked ~7 MiB above the old writer's without.
    const gauge = new GarbageGauge();
    await pipeline(
      pack,
      async function* (tar: AsyncIterable<Buffer>) {
        for await (const chunk of tar) {
          gauge.received(chunk.length);
          yield chunk;
        }
      },
      createGzip({ level: 6 }),
      createWriteStream(partial, { mode: 0o600 }),
    );
    // Over the empty file that reserved the name.
    await fs.rename(partial, file);
    const { size } = await fs.stat(file);
    return { file, name, bytes: size, included, skipped, absent };
  } catch (e) {
    await fs.rm(partial, { force: true });
    await fs.rm(file, { force: true });
    throw new ClgwError('LOG_ARCHIVE_FAILED', `log archive ${file} not written: ${(e as Error).message}`, {
      cause: e,
      details: { file },
    });
  } finally {
    await fs.rm(snapshot, { recursive: true, force: true });
  }
}

/**
 * A fresh name, `clgw-logs-<stamp>-<6 hex>.tar.gz`, taken by creating it exclusively: two archives
 * of the same second (or millisecond) get different files, even when built at once.
 */
async function reserveName(outDir: string, stamp: string): Promise<{ name: string; file: string }> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const name = `clgw-logs-${stamp}-${randomBytes(3).toString('hex')}.tar.gz`;
    const file = path.join(outDir, name);
    try {
      await (await fs.open(file, 'wx', 0o600)).close();
      return { name, file };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new ClgwError('LOG_ARCHIVE_FAILED', `log archive ${file} not created: ${(e as Error).message}`, {
        cause: e,
        details: { file },
      });
    }
  }
  throw new ClgwError(
    'LOG_ARCHIVE_FAILED',
    `no free log archive name in ${outDir} for ${stamp} after 8 tries`,
    {
      details: { file: outDir },
    },
  );
}

/**
 * The log directory to read: a real directory, or — as on the appliance, where `/var` is a
 * tmpfs — the tmpfiles.d link to the log store on the data partition, and no other link.
 */
async function logDirectory(paths: AppliancePaths): Promise<{ dir: string } | { reason: string }> {
  const st = await fs.lstat(paths.logDir).catch(() => undefined);
  if (!st) return { reason: 'does not exist' };
  if (st.isDirectory()) return { dir: paths.logDir };
  if (!st.isSymbolicLink()) return { reason: 'not a directory' };
  const store = await fs.lstat(paths.logStore).catch(() => undefined);
  const [target, real] = await Promise.all([
    fs.realpath(paths.logDir).catch(() => undefined),
    fs.realpath(paths.logStore).catch(() => undefined),
  ]);
  if (store?.isDirectory() && target !== undefined && target === real) return { dir: paths.logStore };
  return { reason: `symbolic link, not to ${paths.logStore} (not followed)` };
}

/** Every regular file under the log directory, as candidates; anything else goes to `skipped`. */
async function listLogs(paths: AppliancePaths, skipped: Skipped[]): Promise<Planned[]> {
  const found: Planned[] = [];
  const top = await logDirectory(paths);
  if ('reason' in top) {
    skipped.push({ name: LOG_DIR_NAME, reason: top.reason });
    return found;
  }
  let seen = 0;
  const walk = async (dir: string, name: string, depth: number): Promise<void> => {
    let entries: string[];
    try {
      entries = (await fs.readdir(dir)).sort();
    } catch (e) {
      skipped.push({ name, reason: `not readable: ${(e as NodeJS.ErrnoException).code ?? 'error'}` });
      return;
    }
    for (const entry of entries) {
      const source = path.join(dir, entry);
      const rel = `${name}/${entry}`;
      if (++seen > MAX_LOG_ENTRIES) {
        skipped.push({ name: rel, reason: `over ${MAX_LOG_ENTRIES} entries` });
        continue;
      }
      const st = await fs.lstat(source).catch(() => undefined);
      if (!st) continue; // gone since readdir: rotated away
      if (st.isSymbolicLink()) {
        skipped.push({ name: rel, reason: 'symbolic link (not followed)' });
      } else if (st.isDirectory()) {
        if (depth >= MAX_LOG_DEPTH)
          skipped.push({ name: rel, reason: `deeper than ${MAX_LOG_DEPTH} levels` });
        else await walk(source, rel, depth + 1);
      } else if (st.isFile()) {
        const mode = st.mode & 0o111 ? 0o755 : 0o644;
        found.push({ name: rel, source, mode, mtimeMs: st.mtimeMs, size: st.size });
      } else {
        skipped.push({ name: rel, reason: 'not a regular file or directory' });
      }
    }
  };
  await walk(top.dir, LOG_DIR_NAME, 1);
  return found;
}

/** The live status as indented JSON, or why there is none. */
async function statusSnapshot(status: () => Promise<unknown>): Promise<Buffer | Skipped> {
  try {
    return Buffer.from(`${JSON.stringify(await status(), null, 2)}\n`, 'utf8');
  } catch (e) {
    const err = e as { code?: unknown; message?: unknown };
    return { name: STATUS_NAME, reason: `status not read: ${String(err?.code ?? err?.message ?? e)}` };
  }
}

function manifestText(
  opts: LogArchiveOptions,
  stamp: string,
  included: string[],
  skipped: Skipped[],
  absent: string[],
): string {
  const never = neverIncluded(opts.paths);
  const lines = [
    `CloudLink Gateway log archive ${stamp}`,
    `size cap: ${opts.maxBytes} bytes of file content`,
    '',
    `included (${included.length}), logs first, then the journal, then state, each newest first:`,
    ...included.map((n) => `  ${n}`),
    '',
    `skipped (${skipped.length}):`,
    ...skipped.map((s) => `  ${s.name}: ${s.reason}`),
    '',
    `not on this appliance (${absent.length}):`,
    ...absent.map((n) => `  ${n}`),
    '',
    'never included (not looked at):',
    ...never.map((s) => `  ${s.name}: ${s.reason}`),
    '',
  ];
  return lines.join('\n');
}

/**
 * Opens a file listed as regular, or undefined when it is not one any more: O_NOFOLLOW, so a file
 * swapped for a link after it was listed is not followed; O_NONBLOCK, so one swapped for a FIFO
 * does not hang the build (no effect on a regular file); and the handle checked to be a file.
 */
async function openRegular(file: string): Promise<FileHandle | undefined> {
  const handle = await fs
    .open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    .catch(() => undefined);
  if (!handle) return undefined;
  const st = await handle.stat().catch(() => undefined);
  if (st?.isFile()) return handle;
  await handle.close();
  return undefined;
}

/** `var/`, `var/clgw/` for `var/clgw/x.json`: the directories above a name, outermost first. */
function parents(name: string): string[] {
  const parts = name.split('/').slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

/**
 * Lays the archive out in `dir`: MANIFEST.txt, then each planned file under its archive name (0644
 * or 0755, its own mtime), a file on disk copied at most up to its planned size. Returns the
 * entries to archive in order: the MANIFEST, then each directory once before its first file,
 * files in the cap's order (newest first).
 */
async function takeSnapshot(
  dir: string,
  planned: Planned[],
  manifest: Buffer,
  now: number,
): Promise<string[]> {
  const entries = ['MANIFEST.txt'];
  await place(path.join(dir, 'MANIFEST.txt'), manifest, 0o644, now);
  const dirs = new Set<string>();
  for (const p of planned) {
    for (const parent of parents(p.name)) {
      if (dirs.has(parent)) continue;
      dirs.add(parent);
      const at = path.join(dir, parent);
      await fs.mkdir(at);
      // Explicit: the process's umask must not decide what the archive says.
      await fs.chmod(at, 0o755);
      entries.push(parent);
    }
    const target = path.join(dir, p.name);
    if (p.source === 'in-snapshot') await place(target, undefined, p.mode, p.mtimeMs);
    else if (Buffer.isBuffer(p.source)) await place(target, p.source, p.mode, p.mtimeMs);
    else {
      await copyAtMost(p.source, target, p.size);
      await place(target, undefined, p.mode, p.mtimeMs);
    }
    entries.push(p.name);
  }
  return entries;
}

/** Writes `data` to `file` (when given), then sets its mode and mtime as the archive must say them. */
async function place(file: string, data: Buffer | undefined, mode: number, mtimeMs: number): Promise<void> {
  if (data) await fs.writeFile(file, data, { flag: 'wx', mode: 0o600 });
  await fs.chmod(file, mode & 0o777);
  const at = new Date(mtimeMs);
  await fs.utimes(file, at, at);
}

/**
 * Copies the first `limit` bytes of `source` (less if it is shorter now) to a new file `target`,
 * in 64 KiB chunks. A file that grew since it was listed is cut where the cap counted it; one gone
 * since it was listed (rotated away, or no longer a regular file) becomes an empty file — the
 * MANIFEST lists it.
 */
async function copyAtMost(source: string, target: string, limit: number): Promise<void> {
  const out = await fs.open(target, 'wx', 0o600);
  try {
    const input = await openRegular(source);
    if (!input) return;
    try {
      const buf = Buffer.alloc(Math.min(CHUNK, Math.max(limit, 1)));
      let done = 0;
      while (done < limit) {
        const { bytesRead } = await input.read(buf, 0, Math.min(buf.length, limit - done), done);
        if (bytesRead === 0) break;
        await out.write(buf, 0, bytesRead);
        done += bytesRead;
      }
    } finally {
      await input.close();
    }
  } finally {
    await out.close();
  }
}

type JournalResult = { ok: true; bytes: number; truncated: boolean } | { ok: false; reason: string };

/**
 * `journalctl --no-pager -o short-iso` into `out`, at most `limit` bytes and `journalTimeoutMs`.
 * Under a simulated appliance root only that root's `var/log/journal` counts — the host's journal
 * is not the appliance's.
 */
async function exportJournal(opts: LogArchiveOptions, out: string, limit: number): Promise<JournalResult> {
  const args = ['--no-pager', '-o', 'short-iso', '-q'];
  if (opts.paths.root !== '/') {
    const dir = path.join(opts.paths.root, 'var/log/journal');
    if (!(await fs.stat(dir).catch(() => undefined))?.isDirectory())
      return { ok: false, reason: 'no journal on this appliance' };
    args.push('--directory', dir);
  }
  const bin = opts.journalctl ?? 'journalctl';
  const timeoutMs = opts.journalTimeoutMs ?? 60_000;
  return new Promise<JournalResult>((resolve) => {
    const sink = createWriteStream(out, { mode: 0o600 });
    let bytes = 0;
    let settled = false;
    let stderr = '';
    // Its own process group, so that a stop reaches whatever it started (a pager, a wrapper's child).
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const stop = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      child.stdout.destroy();
      child.stderr.destroy();
    };
    const timer = setTimeout(() => {
      stop();
      finish({ ok: false, reason: `journalctl stopped after ${timeoutMs} ms` });
    }, timeoutMs);
    const finish = (r: JournalResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sink.end(() => resolve(r.ok ? { ...r, bytes } : r));
    };
    child.stdout.on('data', (chunk: Buffer) => {
      if (settled) return;
      const room = limit - bytes;
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      bytes += part.length;
      if (!sink.write(part)) child.stdout.pause();
      if (chunk.length > room) {
        stop();
        finish({ ok: true, bytes, truncated: true });
      }
    });
    sink.on('drain', () => child.stdout.resume());
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 1000) stderr += c.toString('utf8');
    });
    child.on('error', (e: NodeJS.ErrnoException) =>
      finish({ ok: false, reason: `journalctl not run: ${e.code ?? e.message}` }),
    );
    child.on('close', (code, signal) => {
      if (code === 0) finish({ ok: true, bytes, truncated: false });
      else if (signal) finish({ ok: false, reason: `journalctl stopped (${signal})` });
      else finish({ ok: false, reason: `journalctl exited ${code}: ${stderr.trim().split('\n')[0] ?? ''}` });
    });
  });
}
