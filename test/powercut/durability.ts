/**
 * What a disk can lose at a power cut, from the record of file system changes the appliance's
 * processes made since the last power-on or clean reboot (fs-recorder.mjs). Issue #24; the rules
 * are in README.md ("The loss model"), the anchors ALICE (OSDI '14) and CrashMonkey (OSDI '18).
 *
 * - A directory's entries are durable as of its last fsync. The changes made in it since (create,
 *   rename, unlink, mkdir, removal of a tree) are kept as a prefix, in order: from none of them
 *   (every one rolled back: the old name back, the new one gone) to all of them.
 * - A file's content is durable as of its last fsync (or the power-on, or empty for a file created
 *   since). Changed since, it comes back dropped (its durable content), kept, torn (new blocks up to
 *   a block boundary, old ones after it) or cut short (new blocks up to a boundary, nothing after:
 *   only where the change truncated or created it); an appended file keeps its durable prefix. A
 *   block is 4 KiB, 512 bytes on the ESP (FAT sectors).
 *
 * Two contracts of the appliance's persisted writes are checked against every outcome, not only
 * the one applied, so that a cut anywhere after a faulty write finds the fault:
 * - atomic: a file that is replaced by rename or rewritten in place with fsync holds, after any
 *   cut, a content it held at the power-on or at one of its fsyncs — never a torn or empty one;
 * - durable: once `writeFileAtomic` has returned (its crash points `renamed <file>` then
 *   `dirsynced <parent>/<dir>/` passed), the rename is in a durable directory.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import type { Rng } from './rng.js';

/** One line of the record (fs-recorder.mjs documents the fields). */
export type FsOp =
  | { op: 'create'; path: string; ino: number; pid: number }
  | {
      op: 'write';
      path: string;
      ino: number;
      base?: string;
      append?: boolean;
      size?: number;
      trunc?: boolean;
      pid: number;
    }
  | { op: 'fsync'; path: string; ino: number; snap: string; pid: number }
  | { op: 'dirsync'; path: string; pid: number }
  | { op: 'rename'; from: string; to: string; ino: number; replaced?: number; snap?: string; pid: number }
  | { op: 'unlink'; path: string; ino: number; snap: string; pid: number }
  | { op: 'rmtree'; path: string; snap: string; pid: number }
  | { op: 'mkdir'; path: string; pid: number }
  | { op: 'label'; n: number; label: string; pid: number };

/** How the outcomes are chosen: every loss the rules allow at once, or one at random per item. */
export type LossMode = 'worst' | 'random';

/** What the model did, and which contract a write broke. */
export interface DurabilityReport {
  /** Each thing lost, as `path: what` (for failure lines). */
  lost: string[];
  /** Broken contracts, each naming the file. */
  violations: string[];
}

/** A file's identity across renames: the inode while it lives. */
interface Node {
  id: number;
  /** Created since the power-on (its durable content starts empty). */
  created: boolean;
  /** Its content at the power-on, when a change copied it (`write.base`). */
  base?: string;
  /** The copy taken at its last fsync. */
  synced?: string;
  /** Every fsync copy, for the atomic contract. */
  syncs: string[];
  /** Changed since its last fsync (or created and never fsynced). */
  dirty: boolean;
  /** The change truncated it (or it was created): a cut may leave it short. */
  truncated: boolean;
  /** Appended to since its last fsync: the size it had before. */
  appendFrom?: number;
  /** The copy taken when its last name went (unlink, replaced by a rename). */
  gone?: string;
  /** Replaced by a rename or rewritten in place with fsync: held to the atomic contract. */
  stateFile: boolean;
  /** Ever appended to: a log, never held to the atomic contract. */
  appended: boolean;
}

type Entry =
  | { kind: 'file'; node: Node }
  | { kind: 'dir' }
  | { kind: 'tree'; snap: string }
  | { kind: 'absent' };

const BLOCK = 4096;
/** The ESP is FAT with 512-byte sectors. */
const ESP = 'boot/efi/';
const SECTOR = 512;
const blockOf = (p: string) => (p.startsWith(ESP) ? SECTOR : BLOCK);

/** Reads the record; an absent record is an empty one. */
export async function readFsRecord(dir: string): Promise<FsOp[]> {
  const text = await fs.readFile(path.join(dir, 'ops.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FsOp);
}

/**
 * Applies the loss the record allows to the appliance tree under `root` (the processes are dead)
 * and checks the two contracts. `recordDir` holds the record and its copies.
 */
export async function applyDurabilityLoss(
  root: string,
  recordDir: string,
  rng: Rng,
  mode: LossMode,
): Promise<DurabilityReport> {
  const ops = await readFsRecord(recordDir);
  const snap = (name: string) => path.join(recordDir, 'snap', name);
  const report: DurabilityReport = { lost: [], violations: [] };
  if (ops.length === 0) return report;

  // ── Replay: the nodes, each path's entry at the power-on, and the real entries now ───────────
  let nodes = 0;
  const byIno = new Map<number, Node>();
  const newNode = (ino: number, created: boolean): Node => {
    const n: Node = {
      id: nodes++,
      created,
      syncs: [],
      dirty: created,
      truncated: created,
      stateFile: false,
      appended: false,
    };
    byIno.set(ino, n);
    return n;
  };
  const nodeOf = (ino: number) => byIno.get(ino) ?? newNode(ino, false);
  const initial = new Map<string, Entry>();
  const real = new Map<string, Entry>();
  /** Every file that had a name at some moment, for the contents valid there. */
  const everAt = new Map<string, Set<Node>>();
  const was = (p: string, e: Entry) => {
    if (e.kind !== 'file') return;
    if (!everAt.has(p)) everAt.set(p, new Set());
    everAt.get(p)!.add(e.node);
  };
  const touch = (p: string, before: Entry) => {
    if (!initial.has(p)) initial.set(p, before);
    was(p, before);
  };
  const at = (p: string): Entry => real.get(p) ?? initial.get(p) ?? { kind: 'absent' };
  /** The namespace changes, in order, with the directories they belong to. */
  const changes: { i: number; dirs: string[]; apply: (m: Map<string, Entry>) => void }[] = [];
  const lastDirsync = new Map<string, number>();
  /** `dirsynced` claims: the path whose atomic write returned, its rename in the record, the label. */
  const claims: { file: string; rename: number; label: string }[] = [];
  /** Per process, the basename of its last `renamed <file>` crash point. */
  const lastRenamedBy = new Map<number, string>();

  ops.forEach((op, i) => {
    switch (op.op) {
      case 'create': {
        touch(op.path, { kind: 'absent' });
        const node = newNode(op.ino, true);
        const e: Entry = { kind: 'file', node };
        real.set(op.path, e);
        was(op.path, e);
        changes.push({ i, dirs: [path.dirname(op.path)], apply: (m) => m.set(op.path, e) });
        break;
      }
      case 'write': {
        const node = nodeOf(op.ino);
        touch(op.path, { kind: 'file', node });
        was(op.path, { kind: 'file', node });
        if (op.base && node.base === undefined && !node.created && node.synced === undefined)
          node.base = op.base;
        if (op.append) {
          if (!node.dirty) node.appendFrom = op.size ?? 0;
          node.appended = true;
        } else {
          node.appendFrom = undefined;
          node.truncated ||= op.trunc === true;
          // An existing file rewritten whole stands for its old content: it must be old or new.
          if (op.trunc && !node.created) node.stateFile = true;
        }
        node.dirty = true;
        break;
      }
      case 'fsync': {
        const node = nodeOf(op.ino);
        touch(op.path, { kind: 'file', node });
        was(op.path, { kind: 'file', node });
        node.synced = op.snap;
        node.syncs.push(op.snap);
        node.dirty = false;
        node.truncated = false;
        node.appendFrom = undefined;
        if (!node.created) node.stateFile = true;
        break;
      }
      case 'dirsync':
        lastDirsync.set(op.path, i);
        break;
      case 'rename': {
        const moved =
          at(op.from).kind === 'file' ? at(op.from) : { kind: 'file' as const, node: nodeOf(op.ino) };
        touch(op.from, moved);
        const old: Entry =
          op.replaced !== undefined ? { kind: 'file', node: nodeOf(op.replaced) } : { kind: 'absent' };
        touch(op.to, old);
        if (old.kind === 'file' && op.snap) old.node.gone = op.snap;
        if (moved.kind === 'file') {
          moved.node.stateFile ||= old.kind === 'file' || !moved.node.dirty;
        }
        real.set(op.from, { kind: 'absent' });
        real.set(op.to, moved);
        was(op.to, moved);
        changes.push({
          i,
          dirs: [...new Set([path.dirname(op.from), path.dirname(op.to)])],
          apply: (m) => {
            m.set(op.to, m.get(op.from) ?? moved);
            m.set(op.from, { kind: 'absent' });
          },
        });
        break;
      }
      case 'unlink': {
        const node = nodeOf(op.ino);
        touch(op.path, { kind: 'file', node });
        node.gone = op.snap;
        real.set(op.path, { kind: 'absent' });
        changes.push({ i, dirs: [path.dirname(op.path)], apply: (m) => m.set(op.path, { kind: 'absent' }) });
        break;
      }
      case 'rmtree': {
        touch(op.path, { kind: 'tree', snap: op.snap });
        for (const p of [...real.keys()]) if (p.startsWith(`${op.path}/`)) real.set(p, { kind: 'absent' });
        real.set(op.path, { kind: 'absent' });
        changes.push({
          i,
          dirs: [path.dirname(op.path)],
          apply: (m) => {
            for (const p of [...m.keys()]) if (p.startsWith(`${op.path}/`)) m.set(p, { kind: 'absent' });
            m.set(op.path, { kind: 'absent' });
          },
        });
        break;
      }
      case 'mkdir':
        touch(op.path, { kind: 'absent' });
        real.set(op.path, { kind: 'dir' });
        changes.push({ i, dirs: [path.dirname(op.path)], apply: (m) => m.set(op.path, { kind: 'dir' }) });
        break;
      case 'label': {
        const named = /^renamed (.+)$/.exec(op.label);
        if (named) lastRenamedBy.set(op.pid, named[1]!);
        const synced = /^dirsynced (.+)\/$/.exec(op.label);
        const base = lastRenamedBy.get(op.pid);
        if (synced && base !== undefined) {
          lastRenamedBy.delete(op.pid);
          let r = i - 1;
          for (; r >= 0; r--) {
            const o = ops[r]!;
            if (o.op === 'rename' && o.pid === op.pid && path.basename(o.to) === base) break;
          }
          const rename = ops[r];
          // Another write of the same process may have fsynced its own directory in between.
          if (rename?.op === 'rename' && `/${path.dirname(rename.to)}`.endsWith(`/${synced[1]}`))
            claims.push({ file: rename.to, rename: r, label: `${op.n} ${op.label}` });
        }
        break;
      }
    }
  });

  // ── The durable namespace: per directory, a prefix of its changes since its last fsync ───────
  const pending = (dir: string, i: number) => i > (lastDirsync.get(dir) ?? -1);
  const pendingCount = new Map<string, number>();
  for (const c of changes)
    for (const d of c.dirs) if (pending(d, c.i)) pendingCount.set(d, (pendingCount.get(d) ?? 0) + 1);
  const keep = new Map<string, number>();
  for (const [dir, n] of [...pendingCount].sort(([a], [b]) => a.localeCompare(b)))
    keep.set(dir, mode === 'worst' ? 0 : rng.int(0, n + 1));
  const namespace = (kept: (dir: string) => number): Map<string, Entry> => {
    const m = new Map(initial);
    const seen = new Map<string, number>();
    for (const c of changes) {
      let durable = true;
      for (const d of c.dirs) {
        if (!pending(d, c.i)) continue;
        const k = seen.get(d) ?? 0;
        seen.set(d, k + 1);
        if (k >= kept(d)) durable = false;
      }
      if (durable) c.apply(m);
    }
    // Below a directory that is not there (or came back whole from before its removal), nothing
    // recorded stands on its own.
    for (const p of [...m.keys()]) {
      for (let a = path.dirname(p); a !== '.' && a !== '/'; a = path.dirname(a)) {
        const e = m.get(a);
        if (e?.kind === 'absent') m.set(p, { kind: 'absent' });
        if (e?.kind === 'tree') m.delete(p);
        if (e && e.kind !== 'dir') break;
      }
    }
    return m;
  };
  const durable = namespace((d) => keep.get(d) ?? 0);

  // ── Contents ──────────────────────────────────────────────────────────────────────────────────
  const realPathOf = new Map<number, string>();
  for (const p of new Set([...initial.keys(), ...real.keys()])) {
    const e = at(p);
    if (e.kind === 'file') realPathOf.set(e.node.id, p);
  }
  const read = (file: string) => fs.readFile(file).catch(() => Buffer.alloc(0));
  const current = async (n: Node): Promise<Buffer> => {
    const p = realPathOf.get(n.id);
    if (p !== undefined) return read(path.join(root, p));
    if (n.gone) return read(snap(n.gone));
    return Buffer.alloc(0);
  };
  /** The content as of the last fsync (or the power-on). */
  const stable = async (n: Node): Promise<Buffer> => {
    if (n.synced) return read(snap(n.synced));
    if (n.created) return Buffer.alloc(0);
    if (n.appendFrom !== undefined) return (await current(n)).subarray(0, n.appendFrom);
    if (n.base) return read(snap(n.base));
    return current(n);
  };
  /**
   * Every content a cut can leave in a node, the worst first: a truncated change cut short to
   * nothing, else the change dropped (for a log: its tail). The contracts look at all of them; a
   * cut applies the worst or one at random.
   */
  const outcomes = async (n: Node, file: string): Promise<{ bytes: Buffer; what?: string }[]> => {
    const now = await current(n);
    if (!n.dirty) return [{ bytes: now }];
    const old = await stable(n);
    const cuts = boundaries(now.length, blockOf(file));
    if (n.appendFrom !== undefined) {
      const ends = [old.length, ...cuts.filter((k) => k > old.length)];
      return [
        ...ends.map((k) => ({ bytes: now.subarray(0, k), what: `appended bytes ${k}..${now.length} lost` })),
        { bytes: now, what: 'appended bytes kept' },
      ];
    }
    const short = n.truncated
      ? cuts.map((k) => ({ bytes: now.subarray(0, k), what: `cut short at byte ${k}` }))
      : [];
    return [
      ...short,
      { bytes: old, what: 'un-fsynced change dropped' },
      ...cuts
        .filter((k) => k > 0)
        .map((k) => ({
          bytes: Buffer.concat([now.subarray(0, k), old.subarray(k)]),
          what: `torn at byte ${k}`,
        })),
      { bytes: now, what: 'un-fsynced change kept' },
    ];
  };
  const choose = async (n: Node, file: string): Promise<{ bytes: Buffer; what?: string }> => {
    const all = await outcomes(n, file);
    return all[mode === 'worst' ? 0 : rng.int(0, all.length)]!;
  };

  // ── The contracts ───────────────────────────────────────────────────────────────────────────
  const valid = new Map<string, Set<string>>();
  const key = (b: Buffer) => b.toString('base64');
  for (const [p, candidates] of everAt) {
    const at0 = initial.get(p);
    if (![...candidates].some((n) => n.stateFile && !n.appended)) continue;
    const ok = new Set<string>();
    if (at0?.kind === 'file') ok.add(key(await (at0.node.dirty ? stable(at0.node) : current(at0.node))));
    for (const n of candidates) {
      for (const s of n.syncs) ok.add(key(await read(snap(s))));
      // What the writer had finished writing when the power went is as good as the old content.
      ok.add(key(await current(n)));
    }
    valid.set(p, ok);
  }
  const everyPrefix = namespace(() => Number.POSITIVE_INFINITY);
  const unsynced = namespace(() => 0);
  const nodesAt = (p: string) =>
    [durable.get(p), everyPrefix.get(p), unsynced.get(p)].flatMap((e) =>
      e?.kind === 'file' ? [e.node] : [],
    );
  for (const [p, ok] of valid) {
    const bad = await firstMatch(nodesAt(p), async (n) =>
      (await outcomes(n, p)).map((o) => o.bytes).find((bytes) => !ok.has(key(bytes))),
    );
    if (bad) {
      report.violations.push(
        `${p} can be left holding ${describe(bad)}: neither its content at the power-on nor one it was fsynced with (rewritten in place, or renamed before its fsync)`,
      );
    }
  }
  const mkdirAt = new Map<string, number>();
  ops.forEach((o, i) => {
    if (o.op === 'mkdir') mkdirAt.set(o.path, i);
  });
  for (const c of claims) {
    const rename = ops[c.rename] as Extract<FsOp, { op: 'rename' }>;
    const undurable = [path.dirname(rename.from), path.dirname(rename.to)].some((d) => pending(d, c.rename));
    const above: number[] = [];
    for (let a = path.dirname(c.file); a !== '.'; a = path.dirname(a)) {
      const made = mkdirAt.get(a);
      if (made !== undefined) above.push(made);
    }
    if (!undurable && above.every((m) => !pending(path.dirname((ops[m] as { path: string }).path), m)))
      continue;
    report.violations.push(
      `${c.file} is lost by a cut now although its atomic write returned (crash point ${c.label}): its rename is not in a durable directory (no fsync of ${path.dirname(c.file)}/ or of a directory above it, created since, followed)`,
    );
  }

  // ── Apply the chosen outcome to the tree ────────────────────────────────────────────────────
  const paths = [...durable.keys()].sort(
    (a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b),
  );
  for (const p of paths) {
    const want = durable.get(p)!;
    const abs = path.join(root, p);
    const have = await fs.lstat(abs).catch(() => undefined);
    switch (want.kind) {
      case 'absent':
        if (have) {
          await fs.rm(abs, { recursive: true, force: true });
          report.lost.push(`${p}: rolled back (gone)`);
        }
        break;
      case 'dir':
        if (!have?.isDirectory()) {
          await fs.rm(abs, { recursive: true, force: true });
          await fs.mkdir(abs, { recursive: true });
        }
        break;
      case 'tree':
        await fs.rm(abs, { recursive: true, force: true });
        await fs.cp(snap(want.snap), abs, { recursive: true });
        report.lost.push(`${p}: its removal rolled back`);
        break;
      case 'file': {
        const { bytes, what } = await choose(want.node, p);
        const real0 = realPathOf.get(want.node.id);
        const mode0 = (await fs.stat(real0 ? path.join(root, real0) : abs).catch(() => undefined))?.mode;
        const now = have?.isFile() ? await read(abs) : undefined;
        if (now?.equals(bytes)) break;
        if (have && !have.isFile()) await fs.rm(abs, { recursive: true, force: true });
        await fs.mkdir(path.dirname(abs), { recursive: true });
        await fs.writeFile(abs, bytes);
        if (mode0 !== undefined) await fs.chmod(abs, mode0 & 0o7777);
        const moved = real0 !== p ? (real0 ? `the name back from ${real0}` : 'the name back') : '';
        report.lost.push(`${p}: ${[moved, what].filter(Boolean).join(', ') || 'restored'}`);
        break;
      }
    }
  }
  return report;
}

async function firstMatch<T, R>(items: T[], f: (item: T) => Promise<R | undefined>): Promise<R | undefined> {
  for (const item of items) {
    const r = await f(item);
    if (r !== undefined) return r;
  }
  return undefined;
}

/** Where a cut may split `length` bytes: every multiple of `block` below it, at most 16 of them. */
function boundaries(length: number, block: number): number[] {
  const all: number[] = [];
  for (let k = 0; k < length; k += block) all.push(k);
  if (all.length <= 16) return all;
  const step = all.length / 16;
  return Array.from({ length: 16 }, (_, i) => all[Math.floor(i * step)]!);
}

function describe(bytes: Buffer): string {
  if (bytes.length === 0) return 'nothing (empty)';
  return `${bytes.length} bytes beginning ${JSON.stringify(bytes.subarray(0, 24).toString('latin1'))}`;
}

/**
 * Where one appliance's processes record their file system changes, and the environment that makes
 * them do it: the recorder preloaded into every Node process of the appliance. Slot devices (their
 * loss follows the journal's durable offsets, loss.ts), `run/` and `proc/` (tmpfs) and the
 * container engine's storage (not modelled: README) are left out.
 */
export class FsRecord {
  constructor(
    readonly dir: string,
    private readonly paths: AppliancePaths,
  ) {}

  env(): NodeJS.ProcessEnv {
    const r = this.paths.root;
    const ignore = [
      path.join(r, 'dev'),
      path.join(r, 'run'),
      path.join(r, 'proc'),
      this.paths.containerStorage,
      this.paths.containerArchives,
    ];
    const preload = `--import=${pathToFileURL(RECORDER).href}`;
    return {
      CLGW_FSLOG_DIR: this.dir,
      CLGW_FSLOG_ROOT: r,
      CLGW_FSLOG_IGNORE: ignore.join(':'),
      NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(' '),
    };
  }

  /** A clean boot (after a reboot, which syncs, or after the loss of a cut): everything is durable. */
  async reset(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
    await fs.mkdir(path.join(this.dir, 'snap'), { recursive: true });
  }
}

const RECORDER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fs-recorder.mjs');
