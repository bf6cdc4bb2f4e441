/**
 * The physical limit of a full install, stage by stage, each alone on the same artifact, with
 * reference tools written in C:
 *   mirror read  curl over HTTPS from the same mirror into /dev/null
 *   SHA-256      openssl dgst -sha256 over the artifact file
 *   slot write   1 MiB positional writes into a fresh slot-like file on the slots' filesystem + fsync,
 *                with O_DIRECT where the filesystem allows it, as the agent writes (slot/direct-io.ts)
 * and the reference pipeline doing all three at once from the same mirror (PIPELINE below): what
 * plain C tools make of the same install. For information: the mirror read with the agent's own
 * client, coreutils sha256sum, node:crypto SHA-256 (the agent's hash), and the mirror read and the
 * slot write at once in one node process.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from '@clgw/core/platform/exec.js';
import { alignedBuffers, openDirect } from '@clgw/core/slot/direct-io.js';
import type { Mirror } from '../lib/mirror.js';
import {
  BenchBroken,
  describeRun,
  MIB,
  makeSlotFile,
  PEERS_DIR,
  REPO,
  RUNS,
  runTimed,
  seconds,
  settle,
  sha256Prefix,
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

/** Seconds and user+system CPU-seconds of one reference stage. */
export interface Timed {
  seconds: number;
  cpuSeconds: number;
}

const STAGE_TIMEOUT_MS = 10 * 60 * 1000;

/** `curl` (C, libcurl + OpenSSL) streaming the artifact from the mirror into /dev/null. */
export async function curlStage(a: StageInput): Promise<Timed> {
  const url = `${a.mirror.url}${a.urlPath}`;
  const r = await runTimed(
    'curl',
    [
      '--silent',
      '--show-error',
      '--fail',
      '--cacert',
      a.mirror.caFile,
      '--output',
      '/dev/null',
      '--write-out',
      '%{size_download}',
      url,
    ],
    { timeoutMs: STAGE_TIMEOUT_MS },
  );
  if (r.code !== 0 || Number(r.stdout.trim()) !== a.bytes)
    throw new BenchBroken(
      `${describeRun(`curl ${url}`, r)} (downloaded ${r.stdout.trim() || '?'} of ${a.bytes} bytes)`,
    );
  return { seconds: r.seconds, cpuSeconds: r.cpuSeconds };
}

/** `openssl dgst -sha256` over the artifact file. */
export async function opensslStage(a: StageInput): Promise<Timed> {
  const r = await runTimed('openssl', ['dgst', '-sha256', '-r', a.file], { timeoutMs: STAGE_TIMEOUT_MS });
  const digest = /^[0-9a-f]{64}/.exec(r.stdout)?.[0];
  if (r.code !== 0 || digest !== a.sha256)
    throw new BenchBroken(
      `${describeRun(`openssl dgst -sha256 ${a.file}`, r)}: digest ${digest ?? 'none'}, expected ${a.sha256}`,
    );
  return { seconds: r.seconds, cpuSeconds: r.cpuSeconds };
}

/**
 * The reference C pipeline: curl from the mirror, tee into `openssl dgst -sha256` (through a
 * FIFO, so the shell waits for it and its CPU is counted) and into `dd` writing the slot file with
 * O_DIRECT in whole 1 MiB blocks, fsync at the end. A constant script: paths and the URL arrive as
 * positional parameters.
 */
const PIPELINE = [
  'set -eu -o pipefail',
  'openssl dgst -sha256 -r "$4" > "$5" & hash=$!',
  'curl --silent --show-error --fail --cacert "$2" "$1" | tee "$4" |',
  '  dd of="$3" bs=1M iflag=fullblock oflag=direct conv=notrunc,fsync status=none',
  'wait "$hash"',
].join('\n');

/** Seconds and CPU-seconds of the reference pipeline writing a fresh slot file; checks what it wrote. */
export async function pipelineStage(run: number, a: StageInput): Promise<Timed> {
  const url = `${a.mirror.url}${a.urlPath}`;
  const file = path.join(RUNS, `slot-pipeline-${run}.img`);
  const fifo = path.join(RUNS, `pipeline-${run}.fifo`);
  const digestFile = path.join(RUNS, `pipeline-${run}.sha256`);
  try {
    await settle();
    await makeSlotFile(file, a.slotBytes);
    await fs.rm(fifo, { force: true });
    await execFile('mkfifo', ['-m', '600', fifo]);
    const r = await runTimed(
      'bash',
      ['-c', PIPELINE, 'pipeline', url, a.mirror.caFile, file, fifo, digestFile],
      {
        timeoutMs: STAGE_TIMEOUT_MS,
      },
    );
    if (r.code !== 0) throw new BenchBroken(describeRun(`reference pipeline from ${url}`, r));
    const digest = /^[0-9a-f]{64}/.exec(await fs.readFile(digestFile, 'utf8'))?.[0];
    if (digest !== a.sha256)
      throw new BenchBroken(
        `reference pipeline: openssl printed ${digest ?? 'nothing'}, expected ${a.sha256}`,
      );
    const written = await sha256Prefix(file, a.bytes);
    if (written !== a.sha256)
      throw new BenchBroken(`reference pipeline: ${file} holds sha256 ${written}, expected ${a.sha256}`);
    return { seconds: r.seconds, cpuSeconds: r.cpuSeconds };
  } finally {
    for (const f of [file, fifo, digestFile]) await fs.rm(f, { force: true });
  }
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
