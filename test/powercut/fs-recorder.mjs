/**
 * The power-cut model's eyes in the appliance's processes (issue #24): a preload
 * (`node --import <this file>`) that records every file system change a process makes under the
 * appliance root through Node's `fs` module — creates, writes, fsyncs, renames, unlinks, removals,
 * directory creations and directory fsyncs — in the order they happen, with a copy of what each
 * change puts at risk. After a cut, `loss.ts` replays the record to decide what a disk could have
 * lost (durability.ts has the rules).
 *
 * It watches Node's API, not the appliance's own labels: a directory "fsync" turned into a stat,
 * or a file rewritten in place, shows here as exactly that, whatever the code calls it.
 *
 * Environment (unset `CLGW_FSLOG_DIR`: the module does nothing):
 *   CLGW_FSLOG_DIR     the record: `<dir>/ops.jsonl` (one JSON object per line) and `<dir>/snap/`;
 *   CLGW_FSLOG_ROOT    only paths under it are recorded (relative to it in the record);
 *   CLGW_FSLOG_IGNORE  colon-separated paths under the root left out (slot devices, tmpfs, the
 *                      container engine's storage: modelled elsewhere or not at all).
 *
 * Record lines (paths relative to the root; `snap` names a copy in `<dir>/snap/`):
 *   {op:'create', path, ino}                 a new file (open with O_CREAT that created it)
 *   {op:'write', path, ino, base?, trunc?, append?, size?}
 *                                            the first change to a file since it was opened or
 *                                            last fsynced, logged before the change (a whole-file
 *                                            write by path: after it); `base` is its content just
 *                                            before (absent for a file created by this handle),
 *                                            `trunc` that the change truncated it; an append
 *                                            carries `size`, the length before it, instead
 *   {op:'fsync', path, ino, snap}            fsync/fdatasync of a file done; `snap` its content then
 *   {op:'dirsync', path}                     fsync of a directory done
 *   {op:'rename', from, to, ino, replaced?, snap?}
 *                                            done; `replaced`/`snap`: the file `to` named before
 *   {op:'unlink', path, ino, snap}           done; `snap`: its content before
 *   {op:'rmtree', path, snap}                a directory removed with everything in it; `snap` a copy
 *   {op:'mkdir', path}                       a directory created
 *   {op:'label', n, pid, label}              a crash point reached (written by crashpoint.ts)
 * Every line also carries `pid`.
 */
import fs from 'node:fs';
import path from 'node:path';

const DIR = process.env.CLGW_FSLOG_DIR || undefined;
const ROOT = DIR && process.env.CLGW_FSLOG_ROOT ? path.resolve(process.env.CLGW_FSLOG_ROOT) : undefined;

if (DIR && ROOT) await install(DIR, ROOT);

/**
 * @param {string} dir
 * @param {string} root
 */
async function install(dir, root) {
  const LOG = path.join(dir, 'ops.jsonl');
  const SNAP = path.join(dir, 'snap');
  fs.mkdirSync(SNAP, { recursive: true });
  const ignored = (process.env.CLGW_FSLOG_IGNORE ?? '')
    .split(':')
    .filter(Boolean)
    .map((p) => path.resolve(p));
  const orig = {
    appendFileSync: fs.appendFileSync,
    copyFileSync: fs.copyFileSync,
    cpSync: fs.cpSync,
    statSync: fs.statSync,
  };
  let snaps = 0;

  /** The path relative to the root when it is recorded, else undefined. @param {unknown} p */
  const rel = (p) => {
    if (typeof p !== 'string' && !(p instanceof URL) && !Buffer.isBuffer(p)) return undefined;
    const abs = path.resolve(p instanceof URL ? p.pathname : String(p));
    if (abs !== root && !abs.startsWith(`${root}/`)) return undefined;
    if (ignored.some((i) => abs === i || abs.startsWith(`${i}/`))) return undefined;
    return path.relative(root, abs) || '.';
  };
  /** @param {Record<string, unknown>} entry */
  const log = (entry) => orig.appendFileSync(LOG, `${JSON.stringify({ ...entry, pid: process.pid })}\n`);
  /** @param {string} p */
  const stat = (p) => {
    try {
      return orig.statSync(p);
    } catch {
      return undefined;
    }
  };
  /** A copy of a file or directory tree; its name in snap/. @param {string} from */
  const snapshot = (from) => {
    const name = `${process.pid}.${++snaps}`;
    const st = stat(from);
    if (st?.isDirectory()) orig.cpSync(from, path.join(SNAP, name), { recursive: true });
    else orig.copyFileSync(from, path.join(SNAP, name));
    return name;
  };

  /** @param {string | number | undefined} flags */
  const parseFlags = (flags) => {
    const c = fs.constants;
    if (typeof flags === 'number') {
      const acc = flags & 3;
      return {
        write: acc === c.O_WRONLY || acc === c.O_RDWR,
        create: (flags & c.O_CREAT) !== 0,
        trunc: (flags & c.O_TRUNC) !== 0,
        append: (flags & c.O_APPEND) !== 0,
      };
    }
    const f = String(flags ?? 'r');
    return {
      write: /[wa+]/.test(f),
      create: /[wa]/.test(f),
      trunc: f.startsWith('w'),
      append: f.startsWith('a'),
    };
  };

  /** What is open for writing: fd → path, inode, whether a change since open/fsync is logged. */
  /** @type {Map<number, {path: string, ino: number, dirty: boolean, created: boolean, append: boolean}>} */
  const open = new Map();
  /** Files this process has appended to: their durable part is a prefix, logged once. */
  const appended = new Set();
  /** An append: the size before it bounds what a cut can take. @param {string} r @param {number} ino @param {number} size */
  const logAppend = (r, ino, size) => {
    if (appended.has(ino)) return;
    appended.add(ino);
    log({ op: 'write', path: r, ino, append: true, size });
  };

  /**
   * Before opening `p` with `flags`: a truncating open of an existing file logs its change (and
   * copies its content) now, before the kernel truncates it. Returns what to do once the fd exists.
   * @param {unknown} p @param {string | number | undefined} flags
   */
  const beforeOpen = (p, flags) => {
    const r = rel(p);
    const f = parseFlags(flags);
    // A new fd replaces whatever an fd of that number was (a descriptor closed behind our back).
    /** @param {number} fd */
    const untracked = (fd) => void open.delete(fd);
    if (r === undefined || !f.write) return untracked;
    const abs = path.join(root, r);
    const before = stat(abs);
    if (before?.isDirectory()) return untracked;
    const base = before && f.trunc && before.size > 0 ? snapshot(abs) : undefined;
    /** @param {number} fd */
    return (fd) => {
      const ino = fs.fstatSync(fd).ino;
      const created = !before;
      if (created) log({ op: 'create', path: r, ino });
      else if (f.trunc && before.size > 0) log({ op: 'write', path: r, ino, base, trunc: true });
      open.set(fd, {
        path: r,
        ino,
        dirty: created || (f.trunc && before.size > 0),
        created,
        append: f.append,
      });
    };
  };
  /** Before a change through an fd: logged once until the next fsync. @param {number} fd */
  const beforeWrite = (fd) => {
    const o = open.get(fd);
    if (!o || o.dirty) return;
    o.dirty = true;
    if (o.append) return logAppend(o.path, o.ino, fs.fstatSync(fd).size);
    const base = o.created ? undefined : snapshot(`/proc/self/fd/${fd}`);
    log({ op: 'write', path: o.path, ino: o.ino, ...(base ? { base } : {}) });
  };
  /** After an fsync: the content is durable. @param {number} fd */
  const afterSync = (fd) => {
    const o = open.get(fd);
    if (o) {
      o.dirty = false;
      o.created = false;
      appended.delete(o.ino);
      log({ op: 'fsync', path: o.path, ino: o.ino, snap: snapshot(`/proc/self/fd/${fd}`) });
      return;
    }
    const target = fdPath(fd);
    if (target === undefined) return;
    const r = rel(target);
    if (r !== undefined && stat(target)?.isDirectory()) log({ op: 'dirsync', path: r });
  };
  /** @param {number} fd */
  const fdPath = (fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return undefined;
    }
  };
  /** Before replacing or removing a file: its inode and a copy. @param {string} abs */
  const saveFile = (abs) => {
    const st = stat(abs);
    if (!st) return undefined;
    return { ino: st.ino, snap: snapshot(abs), dir: st.isDirectory() };
  };
  /** Directories `mkdir -p` would create, outermost first. @param {string} abs */
  const missingDirs = (abs) => {
    const out = [];
    for (let d = abs; !stat(d); d = path.dirname(d)) out.unshift(d);
    return out;
  };
  /** Whole-file writes by path (writeFile, appendFile, copyFile). @param {unknown} p @param {string} flag */
  const pathWrite = (p, flag) => {
    const r = rel(p);
    if (r === undefined) return () => undefined;
    const abs = path.join(root, r);
    const before = stat(abs);
    const append = flag.startsWith('a');
    const base = before && before.size > 0 && !append ? snapshot(abs) : undefined;
    return () => {
      const st = stat(abs);
      if (!st) return;
      if (!before) log({ op: 'create', path: r, ino: st.ino });
      if (append) logAppend(r, st.ino, before?.size ?? 0);
      else log({ op: 'write', path: r, ino: st.ino, ...(base ? { base } : {}), trunc: true });
    };
  };

  // ── fs.promises ───────────────────────────────────────────────────────────────────────────
  const fsp = fs.promises;
  const p = { ...fsp };
  fsp.open = async (file, flags, mode) => {
    const after = beforeOpen(file, flags);
    const handle = await p.open(file, flags, mode);
    after(handle.fd);
    // `close` is the handle's own property, not its prototype's.
    const fd = handle.fd;
    const close = handle.close;
    handle.close = function (...args) {
      open.delete(fd);
      return close.apply(this, args);
    };
    return handle;
  };
  fsp.rename = async (from, to) => {
    const rf = rel(from);
    const rt = rel(to);
    if (rf === undefined || rt === undefined) return p.rename(from, to);
    const ino = stat(path.join(root, rf))?.ino;
    const replaced = saveFile(path.join(root, rt));
    await p.rename(from, to);
    log({
      op: 'rename',
      from: rf,
      to: rt,
      ino,
      ...(replaced ? { replaced: replaced.ino, snap: replaced.snap } : {}),
    });
  };
  fsp.unlink = async (file) => {
    const r = rel(file);
    const saved = r === undefined ? undefined : saveFile(path.join(root, r));
    await p.unlink(file);
    if (saved) log({ op: 'unlink', path: r, ino: saved.ino, snap: saved.snap });
  };
  fsp.rm = async (file, options) => {
    const r = rel(file);
    const saved = r === undefined ? undefined : saveFile(path.join(root, r));
    await p.rm(file, options);
    if (saved?.dir) log({ op: 'rmtree', path: r, snap: saved.snap });
    else if (saved) log({ op: 'unlink', path: r, ino: saved.ino, snap: saved.snap });
  };
  fsp.rmdir = async (dir, options) => {
    const r = rel(dir);
    const saved = r === undefined ? undefined : saveFile(path.join(root, r));
    await p.rmdir(dir, options);
    if (saved) log({ op: 'rmtree', path: r, snap: saved.snap });
  };
  fsp.mkdir = async (dir, options) => {
    const r = rel(dir);
    const made = r === undefined ? [] : missingDirs(path.join(root, r));
    const out = await p.mkdir(dir, options);
    for (const d of made) if (rel(d) !== undefined) log({ op: 'mkdir', path: rel(d) });
    return out;
  };
  fsp.writeFile = async (file, data, options) => {
    if (typeof file === 'object' && file && 'fd' in file) {
      beforeWrite(/** @type {{fd: number}} */ (file).fd);
      return p.writeFile(file, data, options);
    }
    const flag = (typeof options === 'object' && options?.flag) || 'w';
    const after = pathWrite(file, String(flag));
    await p.writeFile(file, data, options);
    after();
  };
  fsp.appendFile = async (file, data, options) => {
    if (typeof file === 'object' && file && 'fd' in file) {
      beforeWrite(/** @type {{fd: number}} */ (file).fd);
      return p.appendFile(file, data, options);
    }
    const after = pathWrite(file, 'a');
    await p.appendFile(file, data, options);
    after();
  };
  fsp.copyFile = async (from, to, mode) => {
    const after = pathWrite(to, 'w');
    await p.copyFile(from, to, mode);
    after();
  };

  // ── FileHandle ────────────────────────────────────────────────────────────────────────────
  const probe = await p.open(process.execPath, 'r');
  const FH = Object.getPrototypeOf(probe);
  await probe.close();
  for (const name of ['write', 'writev', 'writeFile', 'appendFile', 'truncate']) {
    const method = FH[name];
    FH[name] = function (...args) {
      beforeWrite(this.fd);
      return method.apply(this, args);
    };
  }
  for (const name of ['sync', 'datasync']) {
    const method = FH[name];
    FH[name] = async function (...args) {
      const fd = this.fd;
      await method.apply(this, args);
      afterSync(fd);
    };
  }

  // ── the callback API (write streams) and the few synchronous writers ────────────────────────
  const cb = {
    open: fs.open,
    write: fs.write,
    writev: fs.writev,
    fsync: fs.fsync,
    fdatasync: fs.fdatasync,
    close: fs.close,
  };
  fs.open = (file, flags, mode, callback) => {
    const done = typeof flags === 'function' ? flags : typeof mode === 'function' ? mode : callback;
    const fl = typeof flags === 'function' ? 'r' : flags;
    const after = beforeOpen(file, fl);
    const wrapped = (err, fd) => {
      if (!err) after(fd);
      done(err, fd);
    };
    if (typeof flags === 'function') return cb.open(file, wrapped);
    if (typeof mode === 'function') return cb.open(file, flags, wrapped);
    return cb.open(file, flags, mode, wrapped);
  };
  for (const name of ['write', 'writev']) {
    fs[name] = (fd, ...args) => {
      beforeWrite(fd);
      return cb[name](fd, ...args);
    };
  }
  for (const name of ['fsync', 'fdatasync']) {
    fs[name] = (fd, done) =>
      cb[name](fd, (err) => {
        if (!err) afterSync(fd);
        done(err);
      });
  }
  fs.close = (fd, done) => {
    open.delete(fd);
    return cb.close(fd, done);
  };
  for (const name of ['appendFileSync', 'writeFileSync']) {
    const method = fs[name];
    fs[name] = (file, data, options) => {
      const after =
        typeof file === 'number' ? () => undefined : pathWrite(file, name === 'appendFileSync' ? 'a' : 'w');
      method(file, data, options);
      after();
    };
  }
  // The record's own writes go through the originals kept above.
}
