/**
 * The physical limit of a full install, stage by stage, each alone on the same artifact:
 *   mirror read  HTTPS from the same mirror with the agent's own client (its own process)
 *   sha256sum    coreutils over the artifact file
 *   slot write   1 MiB positional writes into a fresh slot-like file on the slots' filesystem + fsync,
 *                with O_DIRECT where the filesystem allows it, as the agent writes (slot/direct-io.ts)
 * and for information: node:crypto SHA-256 (the agent's hash), and the mirror read and the slot
 * write at once in one process (what the machine gives both halves of an install together).
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from '../../agent/src/platform/exec.js';
import { alignedBuffers, openDirect } from '../../agent/src/slot/direct-io.js';
import type { Mirror } from '../lib/mirror.js';
import {
  BenchBroken,
  MIB,
  makeSlotFile,
  PEERS_DIR,
  REPO,
  RUNS,
  seconds,
  settle,
  spawnTracked,
} from './common.js';

const READ_MIRROR = path.join(PEERS_DIR, 'read-mirror.ts');

/** The artifact the stages work on. */
export interface StageInput {
  mirror: Mirror;
  /** Its URL path on the mirror, e.g. `/releases/2.0.0/root.img`. */
  urlPath: string;
  file: string;
  bytes: number;
  sha256: string;
  slotBytes: number;
}

/** Seconds to stream the artifact from the mirror into nothing (and write `alsoWrite` meanwhile). */
export async function mirrorStage(a: StageInput, alsoWrite?: string): Promise<number> {
  const url = `${a.mirror.url}${a.urlPath}`;
  const args = [READ_MIRROR, url, String(a.bytes), a.mirror.caFile, ...(alsoWrite ? [alsoWrite] : [])];
  const child = spawnTracked(process.execPath, ['--import', 'tsx', ...args], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  const last = out.trim().split('\n').pop() ?? '';
  let result: { bytes?: number; seconds?: number } = {};
  try {
    result = JSON.parse(last);
  } catch {
    // reported below
  }
  if (code !== 0 || result.bytes !== a.bytes || typeof result.seconds !== 'number')
    throw new BenchBroken(`mirror read of ${url} (exit ${code}): ${err.trim() || out.trim() || 'no result'}`);
  return result.seconds;
}

export async function sha256Stage(a: StageInput): Promise<number> {
  const t0 = process.hrtime.bigint();
  const { stdout } = await execFile('sha256sum', [a.file], { timeoutMs: 10 * 60 * 1000 });
  const s = seconds(t0);
  const digest = stdout.split(/\s/)[0];
  if (digest !== a.sha256)
    throw new BenchBroken(`sha256sum ${a.file} printed ${digest}, expected ${a.sha256}`);
  return s;
}

/**
 * 1 MiB positional writes of the artifact's size into a new slot-sized file made the way the
 * simulator makes slot B (ftruncate, so sparse), in the same directory tree as the appliance
 * roots, then one fsync: O_DIRECT from aligned buffers like the agent's whole blocks, or through
 * the page cache where the filesystem refuses O_DIRECT. Nothing is dropped from the page cache first.
 */
export async function writeStage(run: number, a: StageInput): Promise<number> {
  const file = path.join(RUNS, `slot-write-${run}.img`);
  try {
    await settle();
    await makeSlotFile(file, a.slotBytes);
    const [buf] = alignedBuffers(1, MIB) as [Buffer];
    randomBytes(MIB).copy(buf);
    const h = (await openDirect(file)) ?? (await fs.open(file, 'r+'));
    try {
      const t0 = process.hrtime.bigint();
      for (let off = 0; off < a.bytes; ) {
        const n = Math.min(buf.length, a.bytes - off);
        const { bytesWritten } = await h.write(buf, 0, n, off);
        off += bytesWritten;
      }
      await h.sync();
      return seconds(t0);
    } finally {
      await h.close();
    }
  } finally {
    await fs.rm(file, { force: true });
  }
}

/** Mirror read and slot write at once, in one process like the agent's: seconds until both end. */
export async function concurrentStage(run: number, a: StageInput): Promise<number> {
  const file = path.join(RUNS, `slot-both-${run}.img`);
  try {
    await settle();
    await makeSlotFile(file, a.slotBytes);
    return await mirrorStage(a, file);
  } finally {
    await fs.rm(file, { force: true });
  }
}

/** SHA-256 of the artifact with node:crypto (the agent's hash), read in 1 MiB pieces. */
export async function nodeSha256Stage(a: StageInput): Promise<number> {
  const buf = Buffer.allocUnsafe(MIB);
  const hash = createHash('sha256');
  const h = await fs.open(a.file, 'r');
  const t0 = process.hrtime.bigint();
  try {
    for (;;) {
      const { bytesRead } = await h.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await h.close();
  }
  const s = seconds(t0);
  const digest = hash.digest('hex');
  if (digest !== a.sha256)
    throw new BenchBroken(`node:crypto SHA-256 of ${a.file} is ${digest}, expected ${a.sha256}`);
  return s;
}
