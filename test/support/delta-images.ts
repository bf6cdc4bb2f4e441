/**
 * Release images for the adaptive-update tests: real ext4 file systems laid out like the
 * simulator's (scripts/sim/images.ts — the boot emulator boots them), built with 4 KiB blocks and a
 * fixed UUID, hash seed and times, so that two releases differ where their files do (and in the
 * inodes' ctime, which mkfs copies from the staged files and nobody can set).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from '@clgw/core/platform/exec.js';
import type { ReleaseImages } from '../../scripts/sim/images.js';
import { REPO } from './appliance.js';
import { artifactBytes } from './mirror.js';

const UUID = '6c6c6777-6465-4c74-a000-000000000001';
const BLOCK = 4096;
const MIB = 1024 * 1024;
const FIXED_TIME = 1767225600;

export interface RootContent {
  version: string;
  /** Files under /usr/share/clgw/ (name → bytes), written in name order. */
  files: Record<string, Buffer>;
  /** Size of the root file system. */
  rootMiB: number;
}

export interface DeltaImages {
  /** 1.0.0: a 32 MiB payload and two "package" files (3 and 2 MiB) in a 48 MiB root. */
  base: ReleaseImages;
  /** 1.1.0 with 1 % of the root image's 4 KiB blocks changed at random places (in the payload). */
  scattered: ReleaseImages & { changed: number[] };
  /** 1.1.0 with the 3 MiB package replaced by a 3.5 MiB one: the files after it move. */
  upgraded: ReleaseImages;
}

/** The release pairs of the adaptive-update tests, built in `.cache/test/delta-images/<name>`. */
export async function deltaImages(name: string): Promise<DeltaImages> {
  const dir = path.join(REPO, '.cache/test/delta-images', name);
  await fs.mkdir(path.join(dir, 'scattered'), { recursive: true });
  await fs.mkdir(path.join(dir, 'upgraded'), { recursive: true });
  const files = {
    'payload.bin': artifactBytes(32 * MIB, 3),
    'pkg-a.bin': artifactBytes(3 * MIB, 4),
    'pkg-b.bin': artifactBytes(2 * MIB, 5),
  };
  const base = await buildImages(dir, { version: '1.0.0', files, rootMiB: 48 });
  const s = await buildImages(path.join(dir, 'scattered'), { version: '1.1.0', files, rootMiB: 48 });
  const payload = await fileBlocks(s.root, '/usr/share/clgw/payload.bin');
  const scattered = { ...s, changed: await scatterChanges(s.root, s.root, payload, 0.01, 11) };
  const upgraded = await buildImages(path.join(dir, 'upgraded'), {
    version: '1.1.0',
    files: { ...files, 'pkg-a.bin': artifactBytes(3.5 * MIB, 6) },
    rootMiB: 48,
  });
  return { base, scattered, upgraded };
}

/** `boot-<v>.img` and `root-<v>.img` in `dir`: the boot one the same for every version but its kernel line. */
export async function buildImages(dir: string, content: RootContent): Promise<ReleaseImages> {
  const boot = path.join(dir, `boot-${content.version}.img`);
  const root = path.join(dir, `root-${content.version}.img`);
  await mkfs(
    {
      vmlinuz: `clgw simulated kernel for gateway OS ${content.version}\n`,
      'initrd.img': artifactBytes(1024 * 1024, 7),
    },
    boot,
    'boot',
    8,
  );
  const files: Record<string, string | Buffer> = {
    'etc/os-release': `NAME="CloudLink Gateway OS"\nID=clgw\nVERSION_ID=${content.version}\n`,
    'usr/lib/clgw/health.d/10-os-release': '#!/bin/sh\ngrep -q "^ID=clgw$" "$CLGW_ROOT/etc/os-release"\n',
  };
  for (const name of Object.keys(content.files).sort())
    files[`usr/share/clgw/${name}`] = content.files[name] as Buffer;
  await mkfs(files, root, 'root', content.rootMiB);
  return { version: content.version, boot, root };
}

async function mkfs(files: Record<string, string | Buffer>, image: string, label: string, mib: number) {
  const stage = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-stage-'));
  try {
    for (const [name, data] of Object.entries(files)) {
      const file = path.join(stage, name);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, data, { mode: name.includes('health.d/') ? 0o755 : 0o644 });
    }
    // mkfs copies the files' times into the inodes: the same for every build, ctime aside.
    const entries = await fs.readdir(stage, { recursive: true });
    for (const name of [...entries, '.']) await fs.utimes(path.join(stage, name), FIXED_TIME, FIXED_TIME);
    await fs.rm(image, { force: true });
    await execFile(
      'mkfs.ext4',
      [
        '-q',
        '-F',
        '-b',
        String(BLOCK),
        '-L',
        label,
        '-U',
        UUID,
        '-E',
        `root_owner=0:0,hash_seed=${UUID}`,
        '-d',
        stage,
        image,
        `${mib}M`,
      ],
      { env: { ...process.env, E2FSPROGS_FAKE_TIME: String(FIXED_TIME) } },
    );
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}

/** The image blocks (4 KiB) holding a file's data, from debugfs. */
export async function fileBlocks(image: string, file: string): Promise<number[]> {
  const { stdout } = await execFile('debugfs', ['-R', `blocks ${file}`, image]);
  return stdout
    .trim()
    .split(/\s+/)
    .filter((w) => /^\d+$/.test(w))
    .map(Number);
}

/**
 * Copies `from` to `to` with `fraction` of all the image's 4 KiB blocks overwritten, picked at
 * random (seeded) among `candidates` (a file's data blocks, so the file system stays sound): the
 * "1 % of the blocks changed, scattered" case. Returns the blocks changed.
 */
export async function scatterChanges(
  from: string,
  to: string,
  candidates: number[],
  fraction: number,
  seed: number,
): Promise<number[]> {
  const image = await fs.readFile(from);
  const want = Math.round((image.length / BLOCK) * fraction);
  if (want > candidates.length) throw new Error(`${from}: only ${candidates.length} blocks to change`);
  const pool = [...candidates];
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const picked: number[] = [];
  for (let i = 0; i < want; i++) {
    const j = i + (next() % (pool.length - i));
    [pool[i], pool[j]] = [pool[j] as number, pool[i] as number];
    picked.push(pool[i] as number);
  }
  const noise = artifactBytes(want * BLOCK, seed + 1);
  for (const [i, block] of picked.entries()) noise.copy(image, block * BLOCK, i * BLOCK, (i + 1) * BLOCK);
  await fs.writeFile(to, image);
  return picked.sort((a, b) => a - b);
}
