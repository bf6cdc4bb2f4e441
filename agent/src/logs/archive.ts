/**
 * The log archive behind "Download logs" (SPEC.md §4, §8): a `.tar.gz` of `/var/clgw` and
 * `/var/log/clgw`, plus the system journal where there is one, capped in total size. Regular
 * files and directories only: links are listed as skipped, never followed. Secrets stay out.
 */
import { spawn } from 'node:child_process';
import { constants, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { ClgwError } from '../errors.js';
import type { AppliancePaths } from '../platform/paths.js';
import { fileContent, padding, TAR_END, tarHeader, ustarNameFits } from './tar.js';

export interface LogArchiveOptions {
  paths: AppliancePaths;
  /** Where the archive is written (created 0700). */
  outDir: string;
  /** Total bytes of file content (before compression) the archive may hold. */
  maxBytes: number;
  /** When the archive is made (its name and MANIFEST say so). */
  now: number;
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
  /** The name a browser saves it as, e.g. `clgw-logs-20261121T093000Z.tar.gz`. */
  name: string;
  /** Compressed size. */
  bytes: number;
  /** Names of the files it holds, MANIFEST.txt aside. */
  included: string[];
  /** What was left out and why (also in MANIFEST.txt). */
  skipped: { name: string; reason: string }[];
}

/**
 * What never goes in the archive (a file, or a directory with all it holds), by its name in the
 * archive, and why: secrets, and bulk that is not logs and would only eat the size cap.
 */
const EXCLUDED: Record<string, string> = {
  'var/clgw/proxy.json': 'excluded: holds the proxy password',
  'var/clgw/onboarding': 'excluded: onboarding data (account link, PBX settings, tokens)',
  'var/clgw/containers/archives': 'excluded: downloaded container image archives (not logs)',
};

/** How deep the trees are walked: the data partition's layout is shallow; anything deeper is odd. */
const MAX_DEPTH = 16;
/** Entries listed at most: bounds the walk on a data partition full of small files. */
const MAX_ENTRIES = 20_000;

interface Planned {
  name: string;
  source: string;
  type: 'file' | 'dir';
  mode: number;
  mtimeMs: number;
  size: number;
}

/** `20261121T093000Z`: sortable, and safe in a file name. */
export function archiveStamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Builds the archive under `outDir`. Files are taken in walk order until the size cap; those
 * that do not fit any more are listed in MANIFEST.txt as skipped, as are links, special files,
 * secrets, names tar cannot hold, and a journal export that failed. Memory stays bounded: every
 * file is streamed in 64 KiB chunks through gzip to disk.
 */
export async function buildLogArchive(opts: LogArchiveOptions): Promise<LogArchive> {
  const { paths } = opts;
  await fs.mkdir(opts.outDir, { recursive: true, mode: 0o700 });
  const stamp = archiveStamp(opts.now);
  const name = `clgw-logs-${stamp}.tar.gz`;
  const file = path.join(opts.outDir, name);
  const partial = `${file}.partial`;
  const skipped: { name: string; reason: string }[] = [];
  const planned: Planned[] = [];
  let budget = opts.maxBytes;

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
      if (source === opts.outDir || source === partial) continue;
      if (planned.length >= MAX_ENTRIES) {
        skipped.push({ name: rel, reason: `over ${MAX_ENTRIES} entries` });
        continue;
      }
      const excluded = EXCLUDED[rel];
      if (excluded) {
        skipped.push({ name: rel, reason: excluded });
        continue;
      }
      const st = await fs.lstat(source).catch(() => undefined);
      if (!st) continue; // gone since readdir: rotated away
      if (!ustarNameFits(rel)) {
        skipped.push({ name: rel, reason: 'name too long for the archive' });
        continue;
      }
      if (st.isSymbolicLink()) {
        skipped.push({ name: rel, reason: 'symbolic link (not followed)' });
      } else if (st.isDirectory()) {
        if (depth >= MAX_DEPTH) {
          skipped.push({ name: rel, reason: `deeper than ${MAX_DEPTH} levels` });
          continue;
        }
        planned.push({ name: rel, source, type: 'dir', mode: 0o755, mtimeMs: st.mtimeMs, size: 0 });
        await walk(source, rel, depth + 1);
      } else if (st.isFile()) {
        if (st.size > budget) {
          skipped.push({
            name: rel,
            reason: `size cap: ${st.size} bytes, ${budget} of ${opts.maxBytes} left`,
          });
          continue;
        }
        budget -= st.size;
        const mode = st.mode & 0o111 ? 0o755 : 0o644;
        planned.push({ name: rel, source, type: 'file', mode, mtimeMs: st.mtimeMs, size: st.size });
      } else {
        skipped.push({ name: rel, reason: 'not a regular file or directory' });
      }
    }
  };

  const roots: [string, string][] = [
    [paths.dataDir, 'var/clgw'],
    [paths.logDir, 'var/log/clgw'],
  ];
  for (const [dir, rel] of roots) {
    const st = await fs.lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) {
      skipped.push({ name: rel, reason: st ? 'not a directory' : 'does not exist' });
      continue;
    }
    planned.push({ name: rel, source: dir, type: 'dir', mode: 0o755, mtimeMs: st.mtimeMs, size: 0 });
    await walk(dir, rel, 1);
  }

  let journalFile: string | undefined;
  if (opts.journal !== false) {
    const out = path.join(opts.outDir, `journal-${stamp}.txt`);
    const limit = Math.min(opts.journalMaxBytes ?? 16 * 1024 * 1024, budget);
    const result = await exportJournal(opts, out, limit);
    if (result.ok) {
      journalFile = out;
      budget -= result.bytes;
      planned.push({
        name: 'journal.txt',
        source: out,
        type: 'file',
        mode: 0o644,
        mtimeMs: opts.now,
        size: result.bytes,
      });
      if (result.truncated) skipped.push({ name: 'journal.txt', reason: `cut at ${limit} bytes (size cap)` });
    } else {
      await fs.rm(out, { force: true });
      skipped.push({ name: 'journal.txt', reason: result.reason });
    }
  }

  try {
    const included = planned.filter((p) => p.type === 'file').map((p) => p.name);
    const manifest = Buffer.from(manifestText(opts, stamp, included, skipped), 'utf8');
    await pipeline(
      Readable.from(tarStream(planned, manifest, opts.now)),
      createGzip({ level: 6 }),
      createWriteStream(partial, { mode: 0o600 }),
    );
    await fs.rename(partial, file);
    const { size } = await fs.stat(file);
    return { file, name, bytes: size, included, skipped };
  } catch (e) {
    await fs.rm(partial, { force: true });
    throw new ClgwError('LOG_ARCHIVE_FAILED', `log archive ${file} not written: ${(e as Error).message}`, {
      cause: e,
      details: { file },
    });
  } finally {
    if (journalFile) await fs.rm(journalFile, { force: true });
  }
}

function manifestText(
  opts: LogArchiveOptions,
  stamp: string,
  included: string[],
  skipped: { name: string; reason: string }[],
): string {
  const lines = [
    `CloudLink Gateway log archive ${stamp}`,
    `size cap: ${opts.maxBytes} bytes of file content`,
    '',
    `included (${included.length}):`,
    ...included.map((n) => `  ${n}`),
    '',
    `skipped (${skipped.length}):`,
    ...skipped.map((s) => `  ${s.name}: ${s.reason}`),
    '',
  ];
  return lines.join('\n');
}

async function* tarStream(planned: Planned[], manifest: Buffer, now: number): AsyncGenerator<Buffer> {
  yield tarHeader({ name: 'MANIFEST.txt', type: 'file', mode: 0o644, mtimeMs: now, size: manifest.length });
  yield manifest;
  yield padding(manifest.length);
  for (const p of planned) {
    if (p.type === 'dir') {
      yield tarHeader({ name: p.name, type: 'dir', mode: p.mode, mtimeMs: p.mtimeMs, size: 0 });
      continue;
    }
    // O_NOFOLLOW: a file swapped for a link after the walk is not followed either.
    const handle = await fs.open(p.source, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => undefined);
    // Gone since the walk (rotated): the MANIFEST lists it, the archive has it empty.
    const size = handle ? p.size : 0;
    yield tarHeader({ name: p.name, type: 'file', mode: p.mode, mtimeMs: p.mtimeMs, size });
    if (handle) {
      try {
        yield* fileContent(handle, size);
      } finally {
        await handle.close();
      }
    }
    yield padding(size);
  }
  yield TAR_END;
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
