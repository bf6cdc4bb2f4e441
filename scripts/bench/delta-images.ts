/**
 * The delta benchmark's root images: real ext4 filesystems made with `mkfs.ext4 -d` from staged
 * trees, all generated from fixed seeds (the same bytes on every machine and every run).
 *
 *   old       a root filesystem of packages filling ~60 % of the image: per package 10–90 files of
 *             512 B–2 MiB (a few of 4–16 MiB), a fifth text, a quarter incompressible, the rest
 *             binary-like (compressible about 2:1); plus os-release, a health hook, dpkg's status
 *             file and per-package docs. Version 1.0.0.
 *   new-1pct  the same tree with 1 % of the image's 4 KiB blocks rewritten inside files, at places
 *             picked by a seeded PRNG over all file data (so scattered over the whole image), and
 *             VERSION_ID 2.0.0. File sizes are unchanged, so the layout is too.
 *   new-pkg   the old tree with one package upgraded: a package of 50 files and 4 MiB in the middle
 *             of the tree gets new contents (sizes −15 %…+20 %), loses 2 files and gains 3; its
 *             changelog and dpkg's status file change; VERSION_ID 2.0.0. mkfs lays out the new tree
 *             afresh, so whatever follows the package on disk moves — as in a real image build.
 *
 * mkfs runs with a fixed UUID, hash seed and creation time, adds files in name order (e2fsprogs
 * 1.47 sorts each directory), and every inode's timestamps are set to the same instant afterwards
 * (debugfs, also under the fixed time): the same tree always gives the same image, on any machine
 * with the same e2fsprogs, and the images differ only where the trees and the layout do. The
 * count of differing 4 KiB blocks is measured and reported. Images and a stamp are kept in the
 * work directory and reused.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '@clgw/core/platform/atomic.js';
import { execFile } from '@clgw/core/platform/exec.js';
import { BenchBroken, MIB, say, seconds, sha256Prefix } from './common.js';

const GENERATOR = 'clgw-bench-delta/v2';
const BLOCK = 4096;
/** Share of the image the old tree fills. */
const FILL = 0.6;
const UPGRADED_FILES = 50;
const UPGRADED_BYTES = 4 * MIB;
/** 2026-01-01T00:00:00Z: mkfs's creation time and every inode's timestamps. */
const FAKE_TIME = 1767225600;
const FS_UUID = '6f1c2b7e-3d4a-4c5b-9e8f-0a1b2c3d4e5f';
const HASH_SEED = '3c0e5d1a-2b4f-4a6c-8d7e-9f0a1b2c3d4e';

type Kind = 'text' | 'binary' | 'random';
interface FileSpec {
  rel: string;
  size: number;
  kind: Kind;
  seed: string;
}
interface Package {
  name: string;
  version: string;
  files: FileSpec[];
  changelog: string;
}
type Variant = 'old' | '1pct' | 'pkg';

export interface DeltaImage {
  file: string;
  sha256: string;
  /** 4 KiB blocks that differ from the old image. */
  changedBlocks: number;
}

export interface DeltaImages {
  imageBytes: number;
  totalBlocks: number;
  old: DeltaImage;
  new1pct: DeltaImage;
  newPkg: DeltaImage;
  files: number;
  packages: number;
  upgraded: { name: string; filesOld: number; filesNew: number; bytesOld: number; bytesNew: number };
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

/** sfc32 seeded from a text: uniform floats in [0, 1). */
function prng(seed: string): () => number {
  const h = createHash('sha256').update(seed).digest();
  let a = h.readUInt32LE(0);
  let b = h.readUInt32LE(4);
  let c = h.readUInt32LE(8);
  let d = h.readUInt32LE(12);
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

const logUniform = (r: () => number, lo: number, hi: number) =>
  Math.round(Math.exp(Math.log(lo) + r() * (Math.log(hi) - Math.log(lo))));

/** AES-256-CTR keystream under a key derived from the seed: incompressible, reproducible bytes. */
function keystream(seed: string, bytes: number): Buffer {
  const key = createHash('sha256').update(`clgw-bench-bytes:${seed}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(bytes));
}

const VOCABULARY = Array.from({ length: 256 }, (_, i) => {
  const h = createHash('sha256').update(`word ${i}`).digest();
  const len = 2 + (h[0]! % 8);
  return Array.from({ length: len }, (_, j) => 97 + (h[j + 1]! % 26));
});

function contents(spec: FileSpec): Buffer {
  const k = keystream(spec.seed, spec.size);
  if (spec.kind === 'random') return k;
  if (spec.kind === 'binary') {
    // Four bits of entropy a byte: compresses about 2:1, like executables and libraries.
    for (let i = 0; i < k.length; i++) k[i] = k[i]! & 0x0f;
    return k;
  }
  // Words from a small vocabulary, a line break every ten or so: compresses well, like text.
  const out = Buffer.alloc(spec.size);
  let o = 0;
  for (let i = 0; o < out.length; i++) {
    const word = VOCABULARY[k[i % k.length]!]!;
    for (let j = 0; j < word.length && o < out.length; j++) out[o++] = word[j]!;
    if (o < out.length) out[o++] = (k[(i + 7) % k.length]! & 0x0f) === 0 ? 10 : 32;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The trees

function fileName(r: () => number, j: number, kind: Kind): string {
  const ext =
    kind === 'text' ? ['conf', 'py', 'txt', 'json'] : kind === 'binary' ? ['so', 'bin'] : ['gz', 'png'];
  return `f${String(j).padStart(3, '0')}.${ext[Math.floor(r() * ext.length)]}`;
}

function kindOf(r: () => number): Kind {
  const x = r();
  return x < 0.2 ? 'text' : x < 0.45 ? 'random' : 'binary';
}

/** The old tree's packages; the one in the middle is the one that gets upgraded. */
function planPackages(imageBytes: number): { packages: Package[]; upgraded: number } {
  const r = prng(`${GENERATOR}:tree`);
  const packages: Package[] = [];
  let total = 0;
  while (total < imageBytes * FILL) {
    const i = packages.length;
    const name = `pkg${String(i).padStart(3, '0')}-${VOCABULARY[Math.floor(r() * 256)]!.map((c) => String.fromCharCode(c)).join('')}`;
    const files: FileSpec[] = [];
    const n = 10 + Math.floor(r() * 81);
    for (let j = 0; j < n; j++) {
      const kind = kindOf(r);
      const size = r() < 0.03 ? logUniform(r, 4 * MIB, 16 * MIB) : logUniform(r, 512, 2 * MIB);
      files.push({ rel: `usr/lib/${name}/${fileName(r, j, kind)}`, size, kind, seed: `${name}/${j}` });
      total += size;
    }
    const version = `${1 + Math.floor(r() * 9)}.${Math.floor(r() * 20)}.${Math.floor(r() * 10)}-1`;
    packages.push({ name, version, files, changelog: `${name} (${version}) stable; urgency=medium\n` });
  }
  // The upgraded package: 50 files, 4 MiB in all.
  const upgraded = Math.floor(packages.length / 2);
  const pkg = packages[upgraded]!;
  const sizes = Array.from({ length: UPGRADED_FILES }, () => logUniform(r, 4096, 512 * 1024));
  const scale = UPGRADED_BYTES / sizes.reduce((a, b) => a + b, 0);
  pkg.files = sizes.map((s, j) => {
    const kind = kindOf(r);
    return {
      rel: `usr/lib/${pkg.name}/${fileName(r, j, kind)}`,
      size: Math.max(64, Math.round(s * scale)),
      kind,
      seed: `${pkg.name}/${j}`,
    };
  });
  return { packages, upgraded };
}

/** The upgraded package's new version: new contents and sizes, 2 files gone, 3 new. */
function upgrade(pkg: Package): Package {
  const r = prng(`${GENERATOR}:upgrade`);
  const files = pkg.files
    .filter((_, j) => j !== 7 && j !== 23)
    .map((f) => ({
      ...f,
      size: Math.max(64, Math.round(f.size * (0.85 + 0.35 * r()))),
      seed: `${f.seed}@new`,
    }));
  for (let j = 0; j < 3; j++) {
    const kind = kindOf(r);
    files.push({
      rel: `usr/lib/${pkg.name}/new${j}.${kind === 'text' ? 'py' : 'so'}`,
      size: logUniform(r, 4096, 256 * 1024),
      kind,
      seed: `${pkg.name}/new${j}`,
    });
  }
  const version = pkg.version.replace(
    /^(\d+)\.(\d+)\..*$/,
    (_, a: string, b: string) => `${a}.${Number(b) + 1}.0-1`,
  );
  return { name: pkg.name, version, files, changelog: `${pkg.name} (${version}) stable; urgency=medium\n` };
}

/** Which 4 KiB blocks of which files the 1 % variant rewrites: file index → block numbers. */
function planPatches(packages: Package[], imageBytes: number): Map<string, number[]> {
  const files = packages.flatMap((p) => p.files);
  const starts: number[] = [];
  let blocks = 0;
  for (const f of files) {
    starts.push(blocks);
    blocks += Math.floor(f.size / BLOCK);
  }
  const want = Math.round((imageBytes / BLOCK) * 0.01);
  if (want > blocks) throw new BenchBroken(`the tree has ${blocks} full file blocks, fewer than ${want}`);
  const r = prng(`${GENERATOR}:patches`);
  const chosen = new Set<number>();
  while (chosen.size < want) chosen.add(Math.floor(r() * blocks));
  const out = new Map<string, number[]>();
  for (const g of chosen) {
    // The file holding global block g: the last start ≤ g (binary search).
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= g) lo = mid;
      else hi = mid - 1;
    }
    const f = files[lo]!;
    out.set(f.rel, [...(out.get(f.rel) ?? []), g - starts[lo]!]);
  }
  return out;
}

async function writeTree(
  stage: string,
  variant: Variant,
  plan: ReturnType<typeof planPackages>,
  imageBytes: number,
) {
  await fs.rm(stage, { recursive: true, force: true });
  const version = variant === 'old' ? '1.0.0' : '2.0.0';
  const packages = plan.packages.map((p, i) => (variant === 'pkg' && i === plan.upgraded ? upgrade(p) : p));
  const patches = variant === '1pct' ? planPatches(plan.packages, imageBytes) : new Map<string, number[]>();
  const put = async (rel: string, data: Buffer | string, mode = 0o644) => {
    const file = path.join(stage, rel);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, data, { mode });
  };
  await put(
    'etc/os-release',
    [
      'NAME="CloudLink Gateway OS"',
      'ID=clgw',
      `VERSION_ID=${version}`,
      `PRETTY_NAME="CloudLink Gateway OS ${version}"`,
      '',
    ].join('\n'),
  );
  await put(
    'usr/lib/clgw/health.d/10-os-release',
    [
      '#!/bin/sh',
      '# The running root must identify itself as a CloudLink Gateway OS.',
      'grep -q "^ID=clgw$" "$CLGW_ROOT/etc/os-release" || { echo "os-release does not say ID=clgw" >&2; exit 1; }',
      '',
    ].join('\n'),
    0o755,
  );
  const status: string[] = [];
  for (const p of packages) {
    for (const f of p.files) {
      const data = contents(f);
      for (const b of patches.get(f.rel) ?? []) keystream(`${f.seed}#patch${b}`, BLOCK).copy(data, b * BLOCK);
      await put(f.rel, data);
    }
    const installed = Math.ceil(p.files.reduce((a, f) => a + f.size, 0) / 1024);
    status.push(
      `Package: ${p.name}\nStatus: install ok installed\nVersion: ${p.version}\nInstalled-Size: ${installed}\n`,
    );
    // Every package's changelog: its newest entry over the same history.
    await put(
      `usr/share/doc/${p.name}/changelog`,
      p.changelog + contents({ rel: '', size: 2048, kind: 'text', seed: `${p.name}/changelog` }).toString(),
    );
  }
  await put('var/lib/dpkg/status', `${status.join('\n')}\n`);
  return packages;
}

/** Every path of a staged tree as debugfs names it ("/", "/etc", "/etc/os-release", …). */
async function treePaths(stage: string): Promise<string[]> {
  const out = ['/', '/lost+found'];
  const walk = async (dir: string, rel: string) => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const r = `${rel}/${e.name}`;
      out.push(r);
      if (e.isDirectory()) await walk(path.join(dir, e.name), r);
    }
  };
  await walk(stage, '');
  return out;
}

async function mkfs(stage: string, image: string, imageMiB: number, cmdFile: string): Promise<void> {
  await fs.rm(image, { force: true });
  await fs.mkdir(path.dirname(image), { recursive: true });
  await execFile(
    'mkfs.ext4',
    [
      '-q',
      '-F',
      '-T',
      'default',
      '-b',
      String(BLOCK),
      '-L',
      'root',
      '-U',
      FS_UUID,
      '-E',
      `root_owner=0:0,hash_seed=${HASH_SEED}`,
      '-d',
      stage,
      image,
      `${imageMiB}M`,
    ],
    { env: { ...process.env, E2FSPROGS_FAKE_TIME: String(FAKE_TIME) }, timeoutMs: 10 * 60 * 1000 },
  );
  // mkfs copies each file's atime/ctime from the staged tree (ctime cannot be set there, and
  // reading a file moves its atime): set all four timestamps of every inode to the fixed instant.
  const stamp = new Date(FAKE_TIME * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const cmds: string[] = [];
  for (const p of await treePaths(stage))
    for (const field of ['atime', 'mtime', 'ctime', 'crtime'])
      cmds.push(`sif "${p}" ${field} ${stamp}`, `sif "${p}" ${field}_extra 0`);
  await fs.writeFile(cmdFile, `${cmds.join('\n')}\n`);
  // debugfs stamps the superblock's write time on close: the fixed instant again.
  const { stderr } = await execFile('debugfs', ['-w', '-f', cmdFile, image], {
    env: { ...process.env, E2FSPROGS_FAKE_TIME: String(FAKE_TIME) },
    timeoutMs: 10 * 60 * 1000,
  });
  const complaints = stderr
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('debugfs '))
    .slice(0, 3);
  if (complaints.length) throw new BenchBroken(`debugfs on ${image}: ${complaints.join(' | ')}`);
}

/** 4 KiB blocks at which two equally long images differ. */
async function changedBlocks(a: string, b: string, bytes: number): Promise<number> {
  const ha = await fs.open(a, 'r');
  const hb = await fs.open(b, 'r');
  const ba = Buffer.alloc(4 * MIB);
  const bb = Buffer.alloc(4 * MIB);
  let n = 0;
  try {
    for (let off = 0; off < bytes; off += ba.length) {
      const len = Math.min(ba.length, bytes - off);
      await ha.read(ba, 0, len, off);
      await hb.read(bb, 0, len, off);
      for (let o = 0; o < len; o += BLOCK)
        if (!ba.subarray(o, o + BLOCK).equals(bb.subarray(o, o + BLOCK))) n++;
    }
  } finally {
    await ha.close();
    await hb.close();
  }
  return n;
}

/**
 * The floor under any delta's bytes for `neu` (issue #21, point 4): the 4 KiB blocks whose contents
 * appear nowhere in `old` at a block boundary (what the agent's index cannot take from the active
 * slot), concatenated and compressed as one stream by `xz -9e` — a stronger codec over a larger
 * window than any chunked format can use. A delta that sends less would have to know the new
 * bytes from the old ones; the generator makes the upgraded package's new contents independent of
 * its old ones, as a new build of a binary mostly is.
 */
export async function newContentFloor(
  old: string,
  neu: string,
  bytes: number,
  workDir: string,
): Promise<{ blocks: number; rawBytes: number; xzBytes: number }> {
  const held = new Set<string>();
  const each = async (file: string, block: (b: Buffer) => Promise<void> | void) => {
    const h = await fs.open(file, 'r');
    const buf = Buffer.alloc(4 * MIB);
    try {
      for (let off = 0; off < bytes; off += buf.length) {
        const len = Math.min(buf.length, bytes - off);
        await h.read(buf, 0, len, off);
        for (let o = 0; o < len; o += BLOCK) await block(buf.subarray(o, o + BLOCK));
      }
    } finally {
      await h.close();
    }
  };
  const digest = (b: Buffer) => createHash('sha256').update(b).digest('base64');
  await each(old, (b) => {
    held.add(digest(b));
  });
  const rawFile = path.join(workDir, 'new-content.bin');
  const out = await fs.open(rawFile, 'w');
  let blocks = 0;
  try {
    await each(neu, async (b) => {
      if (held.has(digest(b))) return;
      blocks++;
      await out.write(b);
    });
  } finally {
    await out.close();
  }
  const xzFile = `${rawFile}.xz`;
  await execFile('xz', ['-9e', '-T1', '-k', '-f', rawFile]);
  const xzBytes = (await fs.stat(xzFile)).size;
  await fs.rm(rawFile);
  await fs.rm(xzFile);
  return { blocks, rawBytes: blocks * BLOCK, xzBytes };
}

const sizeOf = (f: string) =>
  fs.stat(f).then(
    (s) => s.size,
    () => -1,
  );

/**
 * Builds (or reuses) the old image in `workDir` and the two new images at the given paths.
 */
export async function ensureDeltaImages(o: {
  workDir: string;
  new1pct: string;
  newPkg: string;
  imageMiB: number;
}): Promise<DeltaImages> {
  const imageBytes = o.imageMiB * MIB;
  const old = path.join(o.workDir, 'old.img');
  const stampFile = path.join(o.workDir, 'images.json');
  const stampKey = { generator: GENERATOR, imageBytes };
  const previous = await fs
    .readFile(stampFile, 'utf8')
    .then((t) => JSON.parse(t) as { key: unknown; images: DeltaImages })
    .catch(() => undefined);
  const sizes = await Promise.all([old, o.new1pct, o.newPkg].map(sizeOf));
  if (
    previous &&
    JSON.stringify(previous.key) === JSON.stringify(stampKey) &&
    previous.images.old.file === old &&
    previous.images.new1pct.file === o.new1pct &&
    previous.images.newPkg.file === o.newPkg &&
    sizes.every((s) => s === imageBytes)
  )
    return previous.images;

  if (o.imageMiB < 32)
    throw new BenchBroken(`delta images need at least 32 MiB (BENCH_ARTIFACT_MIB=${o.imageMiB})`);
  const t0 = process.hrtime.bigint();
  await fs.rm(stampFile, { force: true });
  await fs.mkdir(o.workDir, { recursive: true });
  const plan = planPackages(imageBytes);
  const stage = path.join(o.workDir, 'stage');
  const cmdFile = path.join(o.workDir, 'debugfs-times.cmd');
  const build = async (variant: Variant, image: string) => {
    const packages = await writeTree(stage, variant, plan, imageBytes);
    await mkfs(stage, image, o.imageMiB, cmdFile);
    await fs.rm(stage, { recursive: true, force: true });
    return packages;
  };
  const oldPackages = await build('old', old);
  await build('1pct', o.new1pct);
  const newPackages = await build('pkg', o.newPkg);
  await fs.rm(cmdFile, { force: true });

  const image = async (file: string): Promise<DeltaImage> => ({
    file,
    sha256: await sha256Prefix(file, imageBytes),
    changedBlocks: file === old ? 0 : await changedBlocks(old, file, imageBytes),
  });
  const before = oldPackages[plan.upgraded]!;
  const after = newPackages[plan.upgraded]!;
  const bytesOf = (p: Package) => p.files.reduce((a, f) => a + f.size, 0);
  const images: DeltaImages = {
    imageBytes,
    totalBlocks: imageBytes / BLOCK,
    old: await image(old),
    new1pct: await image(o.new1pct),
    newPkg: await image(o.newPkg),
    files: oldPackages.reduce((a, p) => a + p.files.length + 1, 0) + 3,
    packages: oldPackages.length,
    upgraded: {
      name: before.name,
      filesOld: before.files.length,
      filesNew: after.files.length,
      bytesOld: bytesOf(before),
      bytesNew: bytesOf(after),
    },
  };
  await writeFileAtomic(stampFile, `${JSON.stringify({ key: stampKey, images }, null, 2)}\n`);
  say(
    `prepare: built 3 ext4 images of ${o.imageMiB} MiB (${images.files} files in ${images.packages} packages) ` +
      `in ${seconds(t0).toFixed(1)} s`,
  );
  return images;
}
